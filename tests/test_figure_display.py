"""Every figure reaches the learner as a picture.

nbval compares text only, so three layers check images instead:
- the stored outputs of every lesson (here, statically);
- every canonical nbval run (the hook in the repository's ``conftest.py``; its own test is below);
- every released workbook executed in ``test_release.py``, and the browser suite's absolute check.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from figure_outputs import figures_without_image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LESSONS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_no_stored_figure_is_text_only(lesson):
    cells = json.loads(lesson.read_text(encoding="utf-8"))["cells"]
    bad = [(i, text) for i, cell in enumerate(cells) if cell["cell_type"] == "code"
           for text in figures_without_image(cell.get("outputs", []))]
    assert not bad, f"{lesson.stem}: figures stored as text, not pictures (cell index, text): {bad}"


def test_helper_recognises_a_figure_only_without_its_picture():
    fig_text = {"text/plain": "<Figure size 900x280 with 2 Axes>"}
    assert figures_without_image([{"data": fig_text}]) == ["<Figure size 900x280 with 2 Axes>"]
    assert figures_without_image([{"data": {**fig_text, "image/png": "iVBOR"}}]) == []
    assert figures_without_image([{"data": {"text/plain": "'<Figure size' is just a string"}}]) == []
    assert figures_without_image([{"output_type": "stream", "text": "<Figure size 1x1 with 0 Axes>"}]) == []


def _notebook(cells: list[str], path: Path) -> Path:
    """A notebook executed here, so its stored outputs are what the kernel produced."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    return path


FIGURE_CELL = "from matplotlib.figure import Figure\nfig = Figure(figsize=(2, 2))\nfig.add_subplot().plot([0, 1])\nfig"


@pytest.mark.slow  # runs `course grade` or a kernel end to end: not for the quick run (tests/README.md)
def test_nbval_hook_fails_a_figure_shown_as_text_and_passes_setup(pytester, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)
    pytester.makeconftest((REPO / "conftest.py").read_text().replace(
        'Path(__file__).resolve().parent / "tests"', repr(str(HERE))))
    broken = _notebook([FIGURE_CELL], pytester.path / "broken.ipynb")
    assert figures_without_image(nbformat.read(broken, as_version=4).cells[0].outputs), \
        "the probe should store the figure as text (no formatter registered)"
    fixed = _notebook(["from course_utils import setup\n_ = setup(0, quiet=True)", FIGURE_CELL],
                      pytester.path / "fixed.ipynb")
    result = pytester.runpytest_subprocess("--nbval", "--nbval-current-env", "-p", "no:cacheprovider",
                                           "broken.ipynb", "fixed.ipynb")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*a figure is displayed as text instead of a picture (<Figure size 200x200 with 1 Axes>)*"])
