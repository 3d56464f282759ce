"""Lesson 00's warm-up exercise: how many numbers an image tensor holds."""
from __future__ import annotations

import numpy as np

from .core import Case, Exercise
from .registry import register

LESSON = "00_start_here"


def count_values(n: int, c: int, h: int, w: int) -> int:
    """Reference: the number of values in an N×C×H×W tensor."""
    return n * c * h * w


def _cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [Case((1, 1, 1, 1), label="edge: a single pixel"), Case((7, 3, 1, 32), label="edge: one row")]
    while len(cases) < n:
        n_, h, w = (int(v) for v in rng.integers(1, 65, size=3))
        # One channel is the first edge case's job; random cases keep c >= 2 so an answer that drops
        # the channels fails every one of them, and lesson 00's wrong-answer demo prints the same
        # report on every run.
        c = int(rng.integers(2, 65))
        cases.append(Case((n_, c, h, w), label="random"))
    return cases[:n]


register(
    Exercise(
        id="count_values",
        lesson=LESSON,
        name="count_values",
        points=1,
        reference=count_values,
        public_cases=(Case((1, 3, 32, 32), label="one CIFAR-10 image"), Case((4, 3, 64, 64), label="the lessons' batch")),
        make_cases=_cases,
        title="How many numbers does an N×C×H×W batch of images hold?",
        hints=(
            'The batch holds N images; how many numbers does one image of C maps, each H rows by W columns, hold?',
            'Count level by level: one row holds W numbers, one map H rows, one image C maps, the batch N images. Return an int, not a float.',
        ),
    )
)
