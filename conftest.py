"""Checks that apply to every nbval run of the lessons (``pytest notebooks/``).

nbval compares each cell's ``text/plain`` with the stored one and ignores images, so a figure that
reaches the learner as its text fallback (``<Figure size 900x280 with 2 Axes>``) passes it as long
as the stored output is the same text. This hook looks at what the fresh execution produced and
fails the cell when a displayed figure came without a picture, whatever was stored.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))
from figure_outputs import figures_without_image  # noqa: E402

pytest_plugins = ["pytester"]  # tests/test_figure_display.py runs nbval on probe notebooks


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    outputs = getattr(item, "test_outputs", None)  # nbval's NbCellItem keeps the fresh outputs here
    if outputs:
        missing = figures_without_image(outputs)
        if missing:
            raise AssertionError(
                f"{item.name}: a figure is displayed as text instead of a picture ({missing[0]}). "
                "Call course_utils.setup() in the notebook's first cell: it registers the PNG formatter."
            )
    return result
