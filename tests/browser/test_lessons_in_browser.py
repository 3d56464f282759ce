"""Every lesson's workbook, run in JupyterLab in headless Chromium the way a learner runs it.

For each lesson: release it, open the workbook from the file browser, Run All Cells, wait for the
kernel, then check that no cell shows an error, every plot shows an image, every widget renders, a
slider moves its output, and every exercise check says "not attempted yet". Lessons 06-07 run in quick
mode on the synthetic stand-in (no data folder, see conftest.py), which they must name, and nothing
may be written into the data or cache folder. This is the one execution of each released workbook
(``tests/test_release.py`` runs them with nbclient only where this suite cannot run).
Screenshots for the README are written only when asked:

    COURSE_SCREENSHOTS=1 pytest tests/browser

The negative tests build a small probe notebook and break it on purpose (widget extension disabled,
a widget callback that raises, a figure shown as text) to show that the checks fail, naming the
lesson and the cell, and pass the probe's working cells in the same run.
"""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import lab_driver
from conftest import LESSONS, REPO, require_browser

pytestmark = pytest.mark.browser

LESSON_TIMEOUT_S = 900
SCREENSHOTS = REPO / "docs" / "screenshots"
# The README shows these crops: the cell whose source contains the key, in the lesson named.
CROPS = {
    "output_size_explorer": ("02_output_size", "output_size_explorer("),
    "kernel_explorer": ("01_why_convolution", "kernel_explorer("),
    "training_curves": ("06_tinycnn_cifar10", "fit("),
}


def _save_screenshots(page, lesson: Path) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
    full_sources = [
        "".join(c.get("source", "")) for c in nbformat.read(lesson, as_version=4)["cells"]
    ]
    for name, (stem, key) in CROPS.items():
        if stem != lesson.stem:
            continue
        matches = [i for i, src in enumerate(full_sources) if key in src]
        if matches:
            target = cells.nth(matches[0])
            target.scroll_into_view_if_needed()
            target.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    # The lesson page as a learner sees it, at its first widget or plot.
    shown = [i for i, cell in enumerate(lab_driver.expectations(lesson)) if cell.widget or cell.image]
    if shown:
        cells.nth(shown[0]).scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / f"{lesson.stem}.png"))


def test_every_lesson_is_found():
    stems = [p.stem for p in LESSONS]
    assert stems and stems[0].startswith("00_"), f"lessons found: {stems}"


def _learner_path_problems(page, workbook: Path, offline: dict[str, Path]) -> list[str]:
    """What the released workbook must show when run untouched: each check "not attempted yet";
    in lessons 06-07, quick mode and the stand-in named, and nothing written for data."""
    from course_utils.grading.release import check_calls

    problems = []
    texts = lab_driver.cell_texts(page)
    cells = nbformat.read(workbook, as_version=4).cells
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or "exercise" not in cell.metadata.get("tags", []):
            continue
        for _, ex_id in check_calls(cell.source):
            if f"⏳ {ex_id}: not attempted yet" not in texts[index]:
                problems.append(f"{workbook.stem}, cell {index}: check('{ex_id}') should say "
                                f"'not attempted yet'; the page shows {texts[index][:300]!r}")
    if workbook.stem.startswith(("06_", "07_")):
        shown = "\n".join(texts)
        for needed in ("QUICK MODE (COURSE_QUICK=1)", "SYNTHETIC stand-in, not CIFAR-10"):
            if needed not in shown:
                problems.append(f"{workbook.stem}: the page never says {needed!r}")
        for name, folder in offline.items():
            written = sorted(p.name for p in folder.iterdir())
            if written:
                problems.append(f"{workbook.stem}: wrote {written} into the empty {name} folder")
    return problems


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_in_jupyterlab(lab, page, lesson, offline):
    workbook = lab.root / lesson.name  # the released workbook, copied into the server's folder
    report = lab_driver.run_lesson(page, lab, workbook, timeout_s=LESSON_TIMEOUT_S)
    if os.environ.get("COURSE_SCREENSHOTS") == "1":
        _save_screenshots(page, workbook)
    if lesson.stem == "02_output_size":
        explorer = next(c for c in lab_driver.expectations(workbook) if "output_size_explorer(" in c.source)
        if explorer.index not in lab_driver.slider_cells(page):
            report.add(explorer, "the output-size explorer shows no slider")
    report.problems.extend(_learner_path_problems(page, workbook, offline))
    lab_driver.shutdown_kernels(lab)  # a finished lesson's kernel would hold its memory until the end
    assert not report.problems, "\n" + str(report) + "\n\nserver log:\n" + lab.log_tail(15)


# --------------------------------------------------------------------------------------------
# The checks themselves fail when a widget is broken
# --------------------------------------------------------------------------------------------

SLIDER_PROBE = (
    # a slider driving an Output, the same pattern as the lessons' explorers ({n}: one per slider)
    "out{n} = widgets.Output()\nslider{n} = widgets.IntSlider(value=3, min=1, max=9, description='k')\n"
    "def redraw{n}(change=None):\n"
    "    {body}\n"
    "    with out{n}:\n"
    "        out{n}.clear_output(wait=True)\n"
    "        print('k =', slider{n}.value)\n"
    "slider{n}.observe(redraw{n}, names='value')\n"
    "with out{n}:\n    print('k =', slider{n}.value)\n"
    "display(widgets.VBox([slider{n}, out{n}]))"
)
IMPORTS = "import ipywidgets as widgets\nimport matplotlib.pyplot as plt\nfrom IPython.display import display"
PYPLOT_FIGURE = "fig, ax = plt.subplots(figsize=(2, 2))\nax.plot([0, 1], [1, 0])\nplt.show()"
# A figure drawn without pyplot and without ``setup()`` reaches the page as its text fallback; the
# stored outputs say the same text, so only the absolute check can catch it.
FIGURE_AS_TEXT = "from matplotlib.figure import Figure\nfig = Figure(figsize=(2, 2))\nfig.add_subplot().plot([0, 1])\nfig"


def _probe_notebook(folder: Path, name: str, sources: list[str]) -> Path:
    """A small notebook of ``sources``, executed so that its stored outputs are the real ones."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def test_probe_checks_fail_exactly_where_it_is_broken(lab, page):
    """One probe, run once: a working slider, a slider whose callback raises, a pyplot figure and a
    figure that reaches the page as text. The checks must flag the two broken cells and pass the two
    working ones, in the same run, so they are shown both to fail and to pass."""
    probe = _probe_notebook(lab.root, "97_probe", [
        FIGURE_AS_TEXT,  # first: importing pyplot (next cell) would register a PNG formatter for figures
        IMPORTS,
        SLIDER_PROBE.replace("{n}", "1").replace("{body}", "pass"),
        SLIDER_PROBE.replace("{n}", "2").replace("{body}", "raise RuntimeError('broken on purpose')"),
        PYPLOT_FIGURE,
    ])
    report = lab_driver.run_lesson(page, lab, probe, timeout_s=180, slider=False)
    assert lab_driver.slider_cells(page) == [2, 3]
    assert lab_driver.move_slider(page, 2, timeout_s=30), "the working slider's output did not change"
    # The raising callback never changes its output, so the whole wait is spent: 10 s, where the
    # working slider above shows a change within a second or two.
    assert not lab_driver.move_slider(page, 3, timeout_s=10), "the raising slider's output changed"
    assert any(p.startswith("97_probe, cell 0 ('from matplotlib.figure import Figure')") and "instead of a picture" in p
               for p in report.problems), str(report)
    for working in ("cell 1 ", "cell 2 ", "cell 4 "):
        assert not any(p.startswith(f"97_probe, {working}") for p in report.problems), str(report)


def test_disabled_widget_extension_is_reported(browser, tmp_path):
    require_browser()
    probe = _probe_notebook(tmp_path, "96_probe_no_extension", [IMPORTS, SLIDER_PROBE.replace("{n}", "1").replace("{body}", "pass")])
    server = lab_driver.start_lab([probe], tmp_path / "broken", disabled_extensions=(lab_driver.WIDGET_MANAGER,))
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        report = lab_driver.run_lesson(context.new_page(), server, probe, timeout_s=180)
    finally:
        context.close()
        lab_driver.stop_lab(server)
    assert not lab_driver._processes_of(server), "the broken-extension server left processes behind"
    assert any(
        p.startswith("96_probe_no_extension, cell 1") and "widget should render" in p for p in report.problems
    ), str(report)
