"""Sphinx extension for the course site: live ipywidgets become one short note on a static page.

A widget (an explorer's sliders, a training progress bar) needs a running kernel. Every lesson
draws the figures of its explorers in the cells next to them (the course's rule), so on the site
each cell's widget outputs are replaced by one note that says so, instead of an empty box, the
widget's Python repr, or a progress bar frozen at 0 %.
"""
from __future__ import annotations

from docutils import nodes

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
NOTE = ("Live widget (an explorer or a progress bar): it runs when you open this lesson in JupyterLab. "
        "On this page, the figures in the cells around it show what it draws.")


def _is_widget(node: nodes.Node) -> bool:
    return isinstance(node, nodes.raw) and WIDGET_MIME in node.astext()


def _cell_of(node: nodes.Node) -> nodes.Node:
    cell = node.parent
    while cell.parent is not None and "cell" not in cell.get("classes", []):
        cell = cell.parent
    return cell


def _replace_widgets(app, doctree) -> None:
    cells: list[nodes.Node] = []
    for raw in doctree.findall(_is_widget):
        cell = _cell_of(raw)
        if not any(cell is c for c in cells):
            cells.append(cell)
    for cell in cells:
        # One note per cell: a training cell shows one progress bar per epoch.
        widgets = list(cell.findall(_is_widget))
        widgets[0].replace_self(nodes.paragraph(text=NOTE, classes=["course-widget-note"]))
        for extra in widgets[1:]:
            holder = extra.parent
            holder.remove(extra)
            # myst-nb wraps each output in its own container: drop the emptied one too.
            if isinstance(holder, nodes.container) and not holder.children and holder.parent is not None:
                holder.parent.remove(holder)


def setup(app):
    app.connect("doctree-read", _replace_widgets)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
