"""A test-only exercise bank for the grader's tests (lesson ``_test_grade``).

The grader and its worker import it through ``COURSE_EXTRA_EXERCISES=<path to this file>``, so the
adversarial tests do not depend on the lesson exercises.
"""
from __future__ import annotations

import numpy as np
import torch

from course_utils.exercises.core import Case, Exercise
from course_utils.exercises.registry import register

LESSON = "_test_grade"


def add(a: int, b: int) -> int:
    """Reference for ``_tg_add``."""
    return a + b


def _add_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [Case((0, 0), label="edge: zeros"), Case((-5, 5), label="edge: cancels")]
    while len(cases) < n:
        a, b = (int(v) for v in rng.integers(-1000, 1000, size=2))
        cases.append(Case((a, b), label="random"))
    return cases[:n]


def relu_sum(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Reference for ``_tg_relu_sum``: sum of the positive part over one axis."""
    return torch.clamp(x, min=0).sum(dim=dim)


def _relu_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = []
    for i in range(n):
        shape = tuple(int(v) for v in rng.integers(1, 5, size=4))
        x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
        cases.append(Case((x,), {"dim": int(i % 4)}, label="random N×C×H×W"))
    return cases


register(
    Exercise(
        id="_tg_add",
        lesson=LESSON,
        name="add",
        points=2,
        reference=add,
        public_cases=(Case((1, 2)),),
        make_cases=_add_cases,
        n_cases=8,
        title="Add two integers.",
        time_limit=1.0,
    )
)

register(
    Exercise(
        id="_tg_relu_sum",
        lesson=LESSON,
        name="relu_sum",
        points=3,
        reference=relu_sum,
        public_cases=(Case((torch.ones(1, 2, 2, 2),)),),
        make_cases=_relu_cases,
        n_cases=6,
        title="Sum the positive part of a tensor over one axis.",
        time_limit=1.0,
    )
)

register(
    Exercise(
        id="_tg_value",
        lesson=LESSON,
        name="answer_value",
        points=1,
        reference=lambda: 42,
        kind="value",
        title="The answer.",
    )
)
