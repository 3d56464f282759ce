"""Lessons 06 and 07 must run where no CIFAR-10 copy exists, on the labelled synthetic stand-in.

Each notebook is executed top to bottom in a fresh kernel with ``COURSE_DATA`` pointing at an empty
folder and ``COURSE_CACHE`` at an empty temporary folder, so no copy can be found and nothing can be
downloaded. The run must finish without an error, name the stand-in in its output, keep the exercise
checks green, and leave both folders empty.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
LESSONS = ["06_tinycnn_cifar10", "07_batchnorm_dropout"]


def _text_outputs(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "text/plain" in out.get("data", {}):
                parts.append(out["data"]["text/plain"])
    return "\n".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_without_data_on_the_labelled_stand_in(lesson, tmp_path, monkeypatch):
    empty_data = tmp_path / "no-data"
    empty_cache = tmp_path / "no-cache"
    empty_data.mkdir()
    empty_cache.mkdir()
    # The kernel inherits this process's environment.
    monkeypatch.setenv("COURSE_DATA", str(empty_data))
    monkeypatch.setenv("COURSE_CACHE", str(empty_cache))
    monkeypatch.delenv("COURSE_GRADING", raising=False)
    # What this test exists to check is the data path (no copy found, the labelled stand-in used,
    # nothing written), not training: quick mode trains a few batches (the full run is nbval's).
    monkeypatch.setenv("COURSE_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    nb = nbformat.read(NOTEBOOKS / f"{lesson}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    client = NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error

    text = _text_outputs(nb)
    assert "SYNTHETIC stand-in, not CIFAR-10" in text, "the stand-in must be named in the output"
    assert "Traceback" not in text
    checks = [line for line in text.splitlines() if line and line[0] in "✅❌⏳❓"]
    assert checks, "the exercise checks must have run"
    assert all(line.startswith("✅") for line in checks), checks
    assert list(empty_data.iterdir()) == [], "nothing may be written into the data folder"
    assert list(empty_cache.iterdir()) == [], "the stand-in must not be cached or downloaded"
    assert "QUICK MODE (COURSE_QUICK=1)" in text
