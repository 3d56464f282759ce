"""Repository-wide test set-up: the order in which files start, and a check on every nbval run.

Order. ``pytest`` runs on two workers (``-n 2 --dist loadfile`` in pyproject.toml), each taking
whole files. Without help the longest files (the lessons that train, the browser suite) would
start last and leave one core idle at the end; ``LONGEST_FIRST`` puts them first, alternating so
that the two longest start at once on different workers.

Threads. Each worker trains networks (nbval's kernels, the browser's kernels, the grader's
submissions). PyTorch would give each of them one thread per core, so two workers would run four
spinning threads on two cores, which measured 2.3 times slower than one thread each. Every
worker's processes get their share of the cores through ``OMP_NUM_THREADS``, which PyTorch,
``fit`` and ``course grade`` honour, unless the person running pytest set it.

Figures. nbval compares each cell's ``text/plain`` with the stored one and ignores images, so a
figure that reaches the learner as its text fallback (``<Figure size 900x280 with 2 Axes>``)
passes it as long as the stored output is the same text. The hook below looks at what the fresh
execution produced and fails the cell when a displayed figure came without a picture, whatever
was stored.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))
from figure_outputs import figures_without_image  # noqa: E402

_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)  # set by xdist before this file loads
if _workers > 1 and not os.environ.get("OMP_NUM_THREADS"):
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _workers))

pytest_plugins = ["pytester"]  # tests/test_figure_display.py runs nbval on probe notebooks

# Files by how long they take (measured; see the durations CI prints), longest first. xdist hands
# each worker one file, then a second, in this order: 06 and 07 start together on both workers.
LONGEST_FIRST = (
    "notebooks/06_",
    "notebooks/07_",
    "tests/browser/",
    "tests/test_grade_attacks.py",
    "tests/test_lesson06_07_exercises.py",
    "tests/test_exercises_01_03_graded.py",
    "tests/test_grade.py",
    "tests/test_exercises_04_05_graded.py",
)


def _rank(nodeid: str) -> int:
    for rank, prefix in enumerate(LONGEST_FIRST):
        if nodeid.startswith(prefix):
            return rank
    return len(LONGEST_FIRST)


def pytest_collection_modifyitems(session, config, items):
    # A stable sort keeps every file's tests together and in their own order.
    items.sort(key=lambda item: _rank(item.nodeid))


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
