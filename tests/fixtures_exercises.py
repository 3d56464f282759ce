"""A tiny test-only exercise bank and a matching lesson notebook.

Ids start with ``_test_`` so they never collide with the course's own exercises, and they are
stable: the checker, release and grade tests all use them. Importing this module twice (for
example once by pytest and once by path inside a grading worker) registers each exercise once.

Exercises (all in lesson ``_test_lesson``):

===============  =========  ============  ==============================================
id               kind       name          what it asks for
===============  =========  ============  ==============================================
``_test_add``    function   ``add``       ``a + b`` for two floats (tolerance: defaults)
``_test_matmul`` function   ``matmul``    ``a @ b`` for two float tensors (rtol 1e-4)
``_test_shape``  function   ``out_shape`` output shape of a 3x3, padding-1 conv, as a tuple
``_test_value``  value      ``padding``   the int 2
===============  =========  ============  ==============================================

:func:`lesson_notebook` builds a lesson notebook holding the solutions between markers, with a
``check`` cell after each exercise, in the same layout as a real lesson.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import numpy as np
import torch

from course_utils.exercises import Case, Exercise, get_exercise, register

LESSON = "_test_lesson"
HERE = Path(__file__).resolve().parent
IDS = ("_test_add", "_test_matmul", "_test_shape", "_test_value")


def add(a: float, b: float) -> float:
    """Reference for ``_test_add``."""
    return a + b


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Reference for ``_test_matmul``."""
    return torch.matmul(a, b)


def out_shape(n: int, c_out: int, h: int, w: int) -> tuple[int, int, int, int]:
    """Reference for ``_test_shape``: a 3x3 conv with padding 1 keeps the spatial size."""
    return (n, c_out, h, w)


def _add_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [Case((0.0, 0.0), label="edge: zeros"), Case((-1e6, 1e-6), label="edge: very different sizes")]
    while len(cases) < n:
        a, b = (float(v) for v in rng.normal(0.0, 10.0, size=2))
        cases.append(Case((a, b), label="random"))
    return cases[:n]


def _matmul_cases(rng: np.random.Generator, n: int) -> list[Case]:
    def pair(m: int, k: int, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.from_numpy(rng.standard_normal((m, k)).astype(np.float32))
        b = torch.from_numpy(rng.standard_normal((k, p)).astype(np.float32))
        return a, b

    cases = [Case(pair(1, 1, 1), label="edge: 1x1"), Case(pair(2, 5, 3), label="edge: not square")]
    while len(cases) < n:
        m, k, p = (int(v) for v in rng.integers(1, 6, size=3))
        cases.append(Case(pair(m, k, p), label="random"))
    return cases[:n]


def _shape_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [Case((1, 1, 1, 1), label="edge: one pixel"), Case((2, 8, 1, 9), label="edge: one row")]
    while len(cases) < n:
        cases.append(Case(tuple(int(v) for v in rng.integers(1, 33, size=4)), label="random"))
    return cases[:n]


def _register_once(exercise: Exercise) -> Exercise:
    try:
        return get_exercise(exercise.id)
    except KeyError:
        return register(exercise)


ADD = _register_once(
    Exercise(
        id="_test_add",
        lesson=LESSON,
        name="add",
        points=2,
        reference=add,
        public_cases=(Case((1.0, 2.0), label="small"), Case((0.5, -0.25), label="fractions")),
        make_cases=_add_cases,
        title="Add two numbers.",
        hint="Return a + b.",
        n_cases=6,
        time_limit=2.0,
    )
)

MATMUL = _register_once(
    Exercise(
        id="_test_matmul",
        lesson=LESSON,
        name="matmul",
        points=3,
        reference=matmul,
        public_cases=(
            Case((torch.eye(2), torch.tensor([[1.0, 2.0], [3.0, 4.0]])), label="identity"),
        ),
        make_cases=_matmul_cases,
        rtol=1e-4,
        atol=1e-5,
        title="Multiply two matrices.",
        hint="Use the @ operator; the result has shape (rows of a, columns of b).",
        n_cases=5,
        time_limit=2.0,
    )
)

SHAPE = _register_once(
    Exercise(
        id="_test_shape",
        lesson=LESSON,
        name="out_shape",
        points=1,
        reference=out_shape,
        public_cases=(Case((4, 16, 32, 32), label="CIFAR-10 batch"),),
        make_cases=_shape_cases,
        title="Shape after a 3x3 convolution with padding 1.",
        hint="Padding 1 keeps height and width; the channels become c_out.",
        n_cases=5,
        time_limit=2.0,
    )
)

VALUE = _register_once(
    Exercise(
        id="_test_value",
        lesson=LESSON,
        name="padding",
        kind="value",
        points=1,
        reference=lambda: 2,
        title="The padding that keeps a 5x5 convolution's output size.",
        hint="(kernel_size - 1) / 2",
        time_limit=2.0,
    )
)

# Solution sources, as a lesson writes them (function bodies indented, a value at top level).
SOLUTIONS = {
    "_test_add": "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
    "_test_matmul": (
        "import torch\n\n\ndef matmul(a, b):\n    \"\"\"Matrix product.\"\"\"\n"
        "    ### BEGIN SOLUTION\n    out = a @ b\n    return out\n    ### END SOLUTION"
    ),
    "_test_shape": (
        "def out_shape(n, c_out, h, w):\n    ### BEGIN SOLUTION\n    return (n, c_out, h, w)\n"
        "    ### END SOLUTION"
    ),
    "_test_value": "### BEGIN SOLUTION\npadding = 2\n### END SOLUTION",
}


def setup_source() -> str:
    """The setup cell: makes this module importable in a fresh kernel and imports ``check``."""
    return (
        "# NBVAL: a test notebook\n"
        "import sys\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "import fixtures_exercises  # registers the _test_ exercises\n"
        "from course_utils.exercises import check"
    )


def _exercise_meta(ex_id: str) -> dict:
    return {"tags": ["exercise"], "course": {"exercise": ex_id}}


def lesson_notebook(ids: tuple[str, ...] = IDS) -> nbformat.NotebookNode:
    """A lesson notebook for ``_test_lesson`` with solutions between markers and check cells.

    Parameters
    ----------
    ids : tuple of str
        Which exercises to include, in order (all four by default).

    Returns
    -------
    nbformat.NotebookNode
        Version 4 notebook; exercise and check cells are tagged ``exercise`` and carry
        ``course.exercise`` metadata, as in the real lessons.
    """
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["course"] = {"lesson": LESSON, "title": "Test lesson"}
    nb.cells.append(nbformat.v4.new_markdown_cell("# Test lesson"))
    nb.cells.append(nbformat.v4.new_code_cell(setup_source()))
    nb.cells.append(nbformat.v4.new_code_cell("print('not an exercise')"))
    for ex_id in ids:
        ex = get_exercise(ex_id)
        nb.cells.append(nbformat.v4.new_markdown_cell(f"**Exercise.** {ex.title}"))
        nb.cells.append(nbformat.v4.new_code_cell(SOLUTIONS[ex_id], metadata=_exercise_meta(ex_id)))
        nb.cells.append(nbformat.v4.new_code_cell(f'check("{ex_id}", {ex.name})', metadata=_exercise_meta(ex_id)))
    return nb


if str(HERE) not in sys.path:  # a worker that loads this file by path can still import it by name
    sys.path.insert(0, str(HERE))
