"""Lesson 04's exercises: max and average pooling from scratch, and shapes through a layer stack."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..shapes import conv_out, pool_out
from .core import Case, Exercise
from .forbidden import POOL_CALLS
from .registry import register
from .lesson03 import _call_on_copies, _tensor

LESSON = "04_pooling_and_activation"


# --------------------------------------------------------------------------------------------
# max_pool2d and avg_pool2d
# --------------------------------------------------------------------------------------------


def max_pool2d(x: torch.Tensor, kernel_size: int, stride: int | None = None) -> torch.Tensor:
    """Reference: max pooling without padding; ``stride`` defaults to ``kernel_size``."""
    return F.max_pool2d(x, kernel_size, stride=kernel_size if stride is None else stride)


def avg_pool2d(x: torch.Tensor, kernel_size: int, stride: int | None = None) -> torch.Tensor:
    """Reference: average pooling without padding; ``stride`` defaults to ``kernel_size``."""
    return F.avg_pool2d(x, kernel_size, stride=kernel_size if stride is None else stride)


def _pool_case(rng, n, c, h, w, k, s, label="random", negative=False) -> Case:
    x = _tensor(rng, n, c, h, w)
    if negative:
        # all values below zero: a running maximum that starts at 0 gives a wrong answer
        x = -x.abs() - 0.5
    kwargs = {} if s is None else {"stride": s}
    return Case((x, k), kwargs, label=label)


def _pool_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        _pool_case(rng, 2, 3, 7, 7, 3, 2, label="edge: overlapping windows (kernel 3, stride 2)"),
        _pool_case(rng, 1, 2, 8, 8, 2, 3, label="edge: stride larger than the kernel"),
        _pool_case(rng, 2, 2, 7, 5, 2, 2, label="edge: 2 does not divide 7 or 5 (last row/column dropped)"),
        _pool_case(rng, 1, 3, 4, 4, 4, 4, label="edge: one output pixel"),
        _pool_case(rng, 2, 2, 5, 9, 3, 1, label="edge: non-square input, stride 1"),
        _pool_case(rng, 2, 3, 6, 6, 2, None, label="edge: stride left out (defaults to kernel_size)"),
        _pool_case(rng, 1, 1, 3, 4, 1, 1, label="edge: kernel 1 copies the input"),
        _pool_case(rng, 2, 2, 6, 6, 2, 2, label="edge: every value negative", negative=True),
    ]
    while len(cases) < n:
        k = int(rng.integers(1, 5))
        s = int(rng.integers(1, 5))
        h = int(rng.integers(k, 13))
        w = int(rng.integers(k, 13))
        cases.append(
            _pool_case(rng, int(rng.integers(1, 4)), int(rng.integers(1, 5)), h, w, k, s, negative=bool(rng.random() < 0.2))
        )
    return cases[:n]


_PUBLIC_RNG = np.random.default_rng(5)
_POOL_PUBLIC = (
    Case((torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4), 2), {"stride": 2}, label="a 4×4 ramp, 2×2 windows"),
    _pool_case(_PUBLIC_RNG, 2, 3, 8, 8, 2, 2, label="2×2, stride 2"),
    _pool_case(_PUBLIC_RNG, 1, 2, 7, 7, 3, 2, label="3×3, stride 2"),
)

register(
    Exercise(
        id="max_pool2d",
        lesson=LESSON,
        name="max_pool2d",
        points=2,
        reference=max_pool2d,
        public_cases=_POOL_PUBLIC,
        make_cases=_pool_cases,
        run=_call_on_copies,
        rtol=0.0,
        atol=0.0,
        n_cases=15,
        title="Max pooling from scratch (no padding), equal to F.max_pool2d.",
        hints=(
            'When stride is None the windows touch without overlapping; how many fit along H and along W?',
            'Take the k×k window of every image and channel at once by slicing, and reduce it over its last two axes.',
            'Fill an output tensor of the right size with two loops over the window positions.',
        ),
        forbidden=POOL_CALLS + (
            'course_utils.shapes.pool_out',
            'course_utils.shapes.pool_out_2d',
        ),
    )
)

register(
    Exercise(
        id="avg_pool2d",
        lesson=LESSON,
        name="avg_pool2d",
        points=2,
        reference=avg_pool2d,
        public_cases=_POOL_PUBLIC,
        make_cases=_pool_cases,
        run=_call_on_copies,
        rtol=1e-5,
        atol=1e-6,
        n_cases=15,
        title="Average pooling from scratch (no padding), equal to F.avg_pool2d.",
        hints=(
            'The windows are the same as for max pooling; only the reduction changes.',
            'Slice the k×k window of every image and channel at once and average it over its last two axes; when stride is None it equals kernel_size.',
        ),
        forbidden=POOL_CALLS + (
            'course_utils.shapes.pool_out',
            'course_utils.shapes.pool_out_2d',
        ),
    )
)


# --------------------------------------------------------------------------------------------
# stack_shapes
# --------------------------------------------------------------------------------------------


def stack_shapes(input_shape: Sequence[int], layers: Sequence[Sequence[Any]]) -> list[tuple[int, int, int, int]]:
    """Reference: the N×C×H×W shape after each layer of a stack.

    ``layers`` holds ``("conv", out_channels, kernel_size, stride, padding)``,
    ``("pool", kernel_size, stride)`` and ``("relu",)`` entries.
    """
    n, c, h, w = (int(v) for v in input_shape)
    shapes = []
    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            _, out_channels, k, s, p = layer
            c, h, w = int(out_channels), conv_out(h, k, s, p), conv_out(w, k, s, p)
        elif kind == "pool":
            _, k, s = layer
            h, w = pool_out(h, k, s), pool_out(w, k, s)
        elif kind != "relu":
            raise ValueError(f"layers: unknown layer kind {kind!r}; use 'conv', 'pool' or 'relu'")
        shapes.append((n, c, h, w))
    return shapes


def _random_stack(rng: np.random.Generator, h: int, w: int) -> list[tuple]:
    layers: list[tuple] = []
    for _ in range(int(rng.integers(3, 8))):
        choice = rng.random()
        if choice < 0.45:
            k = int(rng.choice([1, 3, 5, 7]))
            layer: tuple = ("conv", int(rng.choice([8, 16, 24, 32, 64])), k, int(rng.choice([1, 1, 2, 3])), int(rng.integers(0, k // 2 + 2)))
        elif choice < 0.75:
            layer = ("pool", int(rng.integers(2, 4)), int(rng.integers(1, 4)))
        else:
            layer = ("relu",)
        try:
            stack_shapes((1, 3, h, w), layers + [layer])
        except ValueError:
            break  # the map got too small for this layer: end the stack here
        layers.append(layer)
    return layers


def _stack_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case(((2, 3, 7, 7), [("conv", 8, 3, 2, 0), ("relu",), ("pool", 2, 2)]), label="edge: sizes that do not divide"),
        Case(((1, 1, 5, 9), [("pool", 3, 1), ("conv", 4, 1, 1, 0), ("pool", 3, 3)]), label="edge: non-square, 1-pixel rows"),
        Case(((4, 3, 32, 32), [("relu",), ("relu",)]), label="edge: activations only"),
        Case(((8, 3, 32, 32), [("conv", 16, 5, 1, 2), ("relu",), ("pool", 3, 2), ("conv", 32, 3, 3, 1)]), label="edge: overlapping pool, stride 3"),
    ]
    while len(cases) < n:
        h, w = int(rng.integers(8, 65)), int(rng.integers(8, 65))
        shape = (int(rng.integers(1, 17)), int(rng.choice([1, 3, 8])), h, w)
        layers = _random_stack(rng, h, w)
        if layers:
            cases.append(Case((shape, layers), label="random"))
    return cases[:n]


register(
    Exercise(
        id="stack_shapes",
        lesson=LESSON,
        name="stack_shapes",
        points=2,
        reference=stack_shapes,
        public_cases=(
            Case(((4, 3, 64, 64), [("conv", 16, 3, 1, 1), ("relu",), ("pool", 2, 2)]), label="the lesson's block"),
            Case(((1, 3, 32, 32), [("conv", 8, 5, 1, 0), ("pool", 2, 2), ("conv", 16, 5, 1, 0), ("pool", 2, 2)]), label="LeNet-style"),
        ),
        make_cases=_stack_cases,
        n_cases=15,
        title="The N×C×H×W shape after each layer of a conv / relu / pool stack.",
        hints=(
            'Keep the four numbers (n, c, h, w) and update them layer by layer; return one shape per layer.',
            'A convolution sets the channels to its out_channels and shrinks h and w by the output-size rule; pooling follows the same rule without padding; ReLU changes nothing.',
        ),
        forbidden=(
            'course_utils.shapes.conv_out',
            'course_utils.shapes.conv_out_2d',
            'course_utils.shapes.pool_out',
            'course_utils.shapes.pool_out_2d',
            'course_utils.shapes.trace',
        ),
    )
)
