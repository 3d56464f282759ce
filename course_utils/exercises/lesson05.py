"""Lesson 05's exercises: global average pooling, head parameter counts, a GAP classifier head."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..shapes import linear_params
from .adapters import run_head
from .core import Case, Exercise
from .forbidden import POOL_CALLS
from .registry import register
from .lesson03 import _call_on_copies, _tensor

LESSON = "05_global_average_pooling"


# --------------------------------------------------------------------------------------------
# global_avg_pool
# --------------------------------------------------------------------------------------------


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """Reference: global average pooling, N×C×H×W -> N×C (the mean of each channel's map)."""
    return torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)


def _gap_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case((_tensor(rng, 2, 3, 1, 1),), label="edge: 1×1 maps (GAP is a reshape)"),
        Case((_tensor(rng, 1, 4, 3, 7),), label="edge: batch of one, non-square maps"),
        Case((_tensor(rng, 3, 1, 5, 5),), label="edge: one channel"),
        Case((_tensor(rng, 2, 5, 4, 4) + 3.0,), label="edge: a large positive offset"),
    ]
    while len(cases) < n:
        shape = [int(v) for v in rng.integers(1, 9, size=4)]
        cases.append(Case((_tensor(rng, *shape),), label="random"))
    return cases[:n]


register(
    Exercise(
        id="global_avg_pool",
        lesson=LESSON,
        name="global_avg_pool",
        points=1,
        reference=global_avg_pool,
        public_cases=(
            Case((torch.arange(8, dtype=torch.float32).reshape(1, 2, 2, 2),), label="two 2×2 maps"),
            Case((_tensor(np.random.default_rng(6), 4, 16, 8, 8),), label="the lesson's 4×16×8×8"),
        ),
        make_cases=_gap_cases,
        run=_call_on_copies,
        rtol=1e-5,
        atol=1e-6,
        n_cases=12,
        title="Global average pooling from scratch: N×C×H×W in, N×C out.",
        hints=(
            'Which two axes of an N×C×H×W tensor hold the positions in the image?',
            'Average over those two axes only; the result is N×C, not N×C×1×1.',
        ),
        forbidden=POOL_CALLS,
    )
)


# --------------------------------------------------------------------------------------------
# head_param_counts
# --------------------------------------------------------------------------------------------


def head_param_counts(channels: int, height: int, width: int, num_classes: int) -> tuple[int, int]:
    """Reference: parameters of (flatten + linear, GAP + linear) heads on a C×H×W feature map."""
    return linear_params(channels * height * width, num_classes), linear_params(channels, num_classes)


def _head_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case((64, 1, 1, 10), label="edge: 1×1 map (both heads are the same)"),
        Case((512, 7, 7, 1000), label="edge: an ImageNet-sized head"),
        Case((3, 5, 2, 1), label="edge: one class, non-square map"),
    ]
    while len(cases) < n:
        cases.append(
            Case(
                (int(rng.choice([8, 16, 32, 64, 128, 256])), int(rng.integers(1, 17)), int(rng.integers(1, 17)), int(rng.integers(1, 101))),
                label="random",
            )
        )
    return cases[:n]


register(
    Exercise(
        id="head_param_counts",
        lesson=LESSON,
        name="head_param_counts",
        points=1,
        reference=head_param_counts,
        public_cases=(Case((64, 8, 8, 10), label="the lesson's 64×8×8 map, 10 classes"),),
        make_cases=_head_cases,
        n_cases=15,
        title="Parameters of a flatten + linear head and of a GAP + linear head, as a pair.",
        hints=(
            'A linear layer has one weight for every pair of input feature and class, plus one bias per class.',
            'After flattening, every value of the feature map is a feature; after global average pooling, each channel gives one.',
        ),
        forbidden=(
            'course_utils.shapes.linear_params',
            'course_utils.shapes.conv_params',
        ),
    )
)


# --------------------------------------------------------------------------------------------
# GAPHead
# --------------------------------------------------------------------------------------------


class GAPHead(nn.Module):
    """Reference: global average pooling, then one linear layer from channels to classes."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(x).flatten(1))


def _head_module_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case((16, 10, 4, (8, 8), (1, 1)), label="edge: a 1×1 map"),
        Case((3, 1, 1, (5, 9), (32, 32)), label="edge: one class, batch of one"),
        Case((64, 100, 2, (4, 4), (7, 3)), label="edge: more classes than channels, non-square"),
    ]
    while len(cases) < n:
        sizes = [(int(rng.integers(1, 17)), int(rng.integers(1, 17))) for _ in range(2)]
        cases.append(
            Case(
                (int(rng.choice([4, 8, 16, 32])), int(rng.integers(1, 21)), int(rng.integers(1, 5)), sizes[0], sizes[1]),
                label="random",
            )
        )
    return cases[:n]


register(
    Exercise(
        id="gap_head",
        lesson=LESSON,
        name="GAPHead",
        points=2,
        reference=GAPHead,
        public_cases=(
            Case((64, 10, 4, (8, 8), (16, 16)), label="64 channels, 10 classes, two input sizes"),
            Case((16, 2, 2, (32, 32), (64, 64)), label="16 channels, 2 classes"),
        ),
        make_cases=_head_module_cases,
        run=run_head,
        rtol=1e-4,
        atol=1e-5,
        n_cases=8,
        title="A classifier head: GAP then one linear layer; any H×W in, N×num_classes out.",
        hints=(
            'Two layers are enough: one that averages each channel to a single number, and one that maps channels to class scores.',
            'In forward, pool, flatten from axis 1, then apply the linear layer; the check builds GAPHead(in_channels, num_classes) and loads known weights, so keep exactly those two layers.',
        ),
    )
)
