"""Lesson 02's exercises: the conv output-size formula, "same" padding, sizes through a stack of layers,
and the reverse: the stride and padding that give a wanted output shape."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .. import shapes
from .adapters import call_on_copy as _call_on_copy
from .adapters import call_or_value_error as _call_or_value_error
from .core import Case, Exercise
from .registry import register

LESSON = "02_output_size"


# --------------------------------------------------------------------------------------------
# conv_out
# --------------------------------------------------------------------------------------------


def conv_out(in_size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Reference: the output length of ``nn.Conv1d``/``nn.Conv2d`` along one axis."""
    return shapes.conv_out(in_size, kernel_size, stride=stride, padding=padding, dilation=dilation)


def _random_conv(rng: np.random.Generator, in_size: int | None = None) -> tuple[int, int, int, int, int]:
    """A configuration ``nn.Conv2d`` accepts: the dilated kernel fits in the padded input."""
    while True:
        n = int(rng.integers(1, 65)) if in_size is None else in_size
        k = int(rng.choice([1, 2, 3, 3, 4, 5, 7]))
        d = int(rng.choice([1, 1, 1, 2, 3]))
        s = int(rng.choice([1, 1, 2, 2, 3, 4]))
        p = int(rng.integers(0, (d * (k - 1)) // 2 + 2))
        if d * (k - 1) + 1 <= n + 2 * p:
            return n, k, s, p, d


def _conv_out_case(n: int, k: int, s: int, p: int, d: int, label: str = "random") -> Case:
    return Case((n, k), {"stride": s, "padding": p, "dilation": d}, label=label)


def _conv_out_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        _conv_out_case(7, 3, 2, 0, 1, label="edge: stride 2 does not divide 7 − 3"),
        _conv_out_case(10, 3, 3, 1, 2, label="edge: dilation 2 with stride 3"),
        _conv_out_case(5, 5, 1, 0, 1, label="edge: kernel as large as the input, 1-pixel output"),
        _conv_out_case(1, 3, 1, 1, 1, label="edge: a 1-pixel input kept by padding"),
        _conv_out_case(9, 1, 4, 0, 1, label="edge: 1×1 kernel with stride 4"),
        _conv_out_case(6, 4, 2, 3, 3, label="edge: dilation 3 reaching into the padding"),
        Case((20, 3), label="edge: stride, padding and dilation left at their defaults"),
    ]
    while len(cases) < n:
        cases.append(_conv_out_case(*_random_conv(rng)))
    return cases[:n]


register(
    Exercise(
        id="conv_out",
        lesson=LESSON,
        name="conv_out",
        points=2,
        reference=conv_out,
        public_cases=(
            Case((32, 3), {"stride": 1, "padding": 1}, label="32 in, kernel 3, padding 1"),
            Case((32, 3), {"stride": 2, "padding": 1}, label="the same with stride 2"),
            Case((28, 5), label="kernel 5, no padding"),
            Case((32, 3), {"padding": 2, "dilation": 2}, label="dilation 2"),
        ),
        make_cases=_conv_out_cases,
        n_cases=25,
        # The size is the answer; a ❌ shows the input and what came back, never the expected value.
        show_expected=False,
        title="conv_out(in_size, kernel_size, stride=1, padding=0, dilation=1): the output size of nn.Conv2d.",
        hints=(
            'Draw a 1-D input of 7 pixels and a kernel of 3, and count the positions the kernel can take; then redo it with padding 1, and with stride 2.',
            "Dilation spreads the kernel's taps apart: count how many input pixels one dilated window spans.",
            'Padding adds pixels on both sides. Count the steps the window can move, and note that an incomplete last step does not count (floor division).',
        ),
        forbidden=(
            'course_utils.shapes.conv_out',
            'course_utils.shapes.conv_out_2d',
            'course_utils.shapes.pool_out',
            'course_utils.shapes.pool_out_2d',
            'course_utils.shapes.same_padding',
        ),
    )
)


# --------------------------------------------------------------------------------------------
# same_padding
# --------------------------------------------------------------------------------------------


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Reference: padding per side that keeps the size of a stride-1 convolution."""
    return shapes.same_padding(kernel_size, dilation)


def _same_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case((1,), {"dilation": 1}, label="edge: 1×1 kernel needs no padding"),
        Case((4,), {"dilation": 2}, label="edge: even kernel, dilation 2 (spans 7 pixels)"),
        Case((3,), {"dilation": 4}, label="edge: dilation 4"),
        Case((11,), {"dilation": 1}, label="edge: 11×11 kernel"),
        Case((7,), label="edge: dilation left at its default"),
    ]
    while len(cases) < n:
        d = int(rng.integers(1, 6))
        # Only dilated kernels of odd length have a symmetric "same" padding: k odd, or d even.
        k = int(rng.choice([1, 3, 5, 7, 9])) if d % 2 else int(rng.integers(1, 10))
        cases.append(Case((k,), {"dilation": d}, label="random"))
    return cases[:n]


register(
    Exercise(
        id="same_padding",
        lesson=LESSON,
        name="same_padding",
        points=1,
        reference=same_padding,
        public_cases=(
            Case((3,), {"dilation": 1}, label="3×3"),
            Case((5,), {"dilation": 1}, label="5×5"),
            Case((3,), {"dilation": 2}, label="3×3 with dilation 2"),
        ),
        make_cases=_same_cases,
        # The padding is the answer; a ❌ shows the input and what came back, never the expected value.
        show_expected=False,
        title='same_padding(kernel_size, dilation=1): the padding per side that keeps the size at stride 1.',
        hints=(
            'At stride 1 and no padding, how many pixels smaller than the input is the output?',
            'Padding is added on both sides: share that shrinkage equally between them.',
        ),
        forbidden=(
            'course_utils.shapes.same_padding',
            'course_utils.shapes.same_padding_pair',
            'course_utils.shapes.conv_out',
            'course_utils.shapes.conv_out_2d',
        ),
    )
)


# --------------------------------------------------------------------------------------------
# stack_sizes
# --------------------------------------------------------------------------------------------


def stack_sizes(in_size: int, layers: Sequence[dict[str, Any]]) -> list[int]:
    """Reference: the size before and after every layer of a stack of convolutions and poolings.

    Each layer is ``{"layer": "conv", "kernel": k, "stride": s, "padding": p, "dilation": d}`` or
    ``{"layer": "pool", "kernel": k, "stride": s}``; the result has ``len(layers) + 1`` sizes,
    starting with ``in_size``.
    """
    sizes = [in_size]
    for spec in layers:
        n = sizes[-1]
        if spec["layer"] == "conv":
            n = shapes.conv_out(n, spec["kernel"], stride=spec["stride"], padding=spec["padding"],
                                dilation=spec["dilation"])
        elif spec["layer"] == "pool":
            n = shapes.pool_out(n, spec["kernel"], stride=spec["stride"])
        else:
            raise ValueError(f"layer must be 'conv' or 'pool', got {spec['layer']!r}")
        sizes.append(n)
    return sizes


def conv_layer(kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> dict[str, Any]:
    """A conv layer spec for :func:`stack_sizes`, with every key present."""
    return {"layer": "conv", "kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation}


def pool_layer(kernel: int, stride: int | None = None) -> dict[str, Any]:
    """A pooling layer spec for :func:`stack_sizes`; ``stride`` defaults to ``kernel`` as in PyTorch."""
    return {"layer": "pool", "kernel": kernel, "stride": kernel if stride is None else stride}


def _random_stack(rng: np.random.Generator, in_size: int, depth: int) -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = []
    n = in_size
    for _ in range(depth):
        if n >= 2 and rng.random() < 0.35:
            k = int(rng.choice([2, 2, 3])) if n >= 3 else 2
            s = int(rng.choice([k, k, 1, 2]))
            spec = pool_layer(k, s)
        else:
            _, k, s, p, d = _random_conv(rng, in_size=n)
            spec = conv_layer(k, s, p, d)
        layers.append(spec)
        n = stack_sizes(n, [spec])[-1]
    return layers


def _stack_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case((32, []), label="edge: no layers"),
        Case((7, [conv_layer(3, 2), pool_layer(3, 1)]), label="edge: down to a single pixel"),
        Case((15, [pool_layer(2), conv_layer(3, 2, 1), pool_layer(2)]), label="edge: pooling floors odd sizes"),
        Case((9, [conv_layer(3, 1, 2, 2), conv_layer(3, 3, 0, 1)]), label="edge: dilation, then stride 3"),
        Case((1, [conv_layer(3, 1, 1), conv_layer(1, 1, 0)]), label="edge: a 1-pixel input"),
    ]
    while len(cases) < n:
        in_size = int(rng.integers(4, 97))
        cases.append(Case((in_size, _random_stack(rng, in_size, int(rng.integers(1, 7)))), label="random"))
    return cases[:n]


register(
    Exercise(
        id="stack_sizes",
        lesson=LESSON,
        name="stack_sizes",
        points=2,
        reference=stack_sizes,
        public_cases=(
            Case((32, [conv_layer(3, 1, 1), pool_layer(2), conv_layer(3, 1, 1), pool_layer(2)]),
                 label="two conv + pool blocks"),
            Case((28, [conv_layer(5), pool_layer(2), conv_layer(5), pool_layer(2)]), label="a LeNet-style stack"),
            Case((224, [conv_layer(7, 2, 3), pool_layer(3, 2)]), label="a ResNet-style stem"),
        ),
        make_cases=_stack_cases,
        run=_call_on_copy,
        # The sizes are the answer; a ❌ shows the input and what came back, never the expected value.
        show_expected=False,
        title="stack_sizes(in_size, layers): the size before and after every conv and pooling layer.",
        hints=(
            'Start the list with the input size and apply one layer at a time; the list is one longer than the layers.',
            'A pooling layer follows the same counting rule as a convolution, with no padding and no dilation.',
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


# --------------------------------------------------------------------------------------------
# design_conv: stride and padding for a wanted output shape (a design task over random cases)
# --------------------------------------------------------------------------------------------


def _measured_hw(in_hw: Sequence[int], kernel: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int]) -> tuple[int, int]:
    """The H×W a real ``nn.Conv2d`` writes (on the ``meta`` device: shapes only, no memory)."""
    layer = torch.nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, bias=False, device="meta")
    out = layer(torch.empty(1, 1, int(in_hw[0]), int(in_hw[1]), device="meta"))
    return int(out.shape[2]), int(out.shape[3])


def _kernel_pair(kernel_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(kernel_size, int):
        return kernel_size, kernel_size
    return int(kernel_size[0]), int(kernel_size[1])


def _axis_design(n: int, out: int, k: int) -> tuple[int, int] | None:
    """Smallest stride, then smallest padding in ``0..k // 2``, that give ``out`` windows; else None."""
    # Beyond n + 2·(k // 2) − k + 1 every stride fits a single window, so no larger stride is needed.
    for s in range(1, max(1, n + 2 * (k // 2) - k + 1) + 1):
        for p in range(k // 2 + 1):
            span = n + 2 * p - k
            if span >= 0 and span // s + 1 == out:
                return s, p
    return None


def design_conv(
    in_hw: Sequence[int], out_hw: Sequence[int], kernel_size: int | Sequence[int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Reference: ``(stride, padding)``, each an (H, W) pair, that make ``nn.Conv2d`` map ``in_hw`` to ``out_hw``.

    On each axis: the smallest stride that can work and, with it, the smallest padding, the padding
    being at most half the kernel (``k // 2``). Raises ``ValueError`` when an axis has none. The
    answer is confirmed on a real ``nn.Conv2d`` before it is returned.

    Examples
    --------
    >>> design_conv((32, 48), (16, 24), (5, 3))
    ((2, 2), (2, 1))
    """
    kernel = _kernel_pair(kernel_size)
    found = [_axis_design(int(n), int(o), k) for n, o, k in zip(in_hw, out_hw, kernel)]
    for axis, design in zip(("height", "width"), found):
        if design is None:
            raise ValueError(f"no stride and padding (at most kernel // 2) give that {axis}")
    stride = (found[0][0], found[1][0])
    padding = (found[0][1], found[1][1])
    measured = _measured_hw(in_hw, kernel, stride, padding)
    if measured != (int(out_hw[0]), int(out_hw[1])):  # pragma: no cover - a bug in the search above
        raise AssertionError(f"design_conv reference: nn.Conv2d gives {measured}, wanted {tuple(out_hw)}")
    return stride, padding


def _random_design(rng: np.random.Generator) -> Case:
    """A solvable configuration: a real layer's output for a random kernel, stride and padding."""
    while True:
        kernel = (int(rng.choice([1, 2, 3, 3, 5, 7])), int(rng.choice([1, 2, 3, 3, 5, 7])))
        in_hw = (int(rng.integers(1, 65)), int(rng.integers(1, 65)))
        if in_hw[0] == in_hw[1]:
            continue  # the point of the exercise: the two axes differ
        stride = (int(rng.choice([1, 1, 2, 2, 3, 4])), int(rng.choice([1, 1, 2, 2, 3, 4])))
        padding = (int(rng.integers(0, kernel[0] // 2 + 1)), int(rng.integers(0, kernel[1] // 2 + 1)))
        if all(n + 2 * p >= k for n, p, k in zip(in_hw, padding, kernel)):
            out_hw = _measured_hw(in_hw, kernel, stride, padding)
            kernel_arg: Any = kernel[0] if kernel[0] == kernel[1] else kernel
            return Case((in_hw, out_hw, kernel_arg), label="random")


def _impossible_design(rng: np.random.Generator) -> Case:
    """An output larger than any padding up to half the kernel allows, on one axis."""
    kernel = (int(rng.choice([1, 3, 5])), int(rng.choice([1, 3, 5])))
    in_hw = (int(rng.integers(4, 40)), int(rng.integers(41, 65)))
    if rng.random() < 0.5:
        in_hw, kernel = (in_hw[1], in_hw[0]), (kernel[1], kernel[0])
    axis = int(rng.integers(0, 2))
    out = [in_hw[0] - kernel[0] + 1, in_hw[1] - kernel[1] + 1]
    out[axis] = in_hw[axis] + 2 * (kernel[axis] // 2) - kernel[axis] + 1 + int(rng.integers(1, 4))
    return Case((in_hw, tuple(out), kernel), label="random: impossible, must raise ValueError")


def _design_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case(((32, 48), (16, 24), (5, 3)), label="edge: halve both axes with a non-square kernel"),
        Case(((17, 40), (17, 40), 3), label="edge: keep the size (stride 1)"),
        Case(((28, 9), (14, 9), (3, 1)), label="edge: halve the height only, 1-wide kernel"),
        Case(((7, 12), (3, 4), 3), label="edge: stride 2 on H, 3 on W"),
        Case(((6, 10), (1, 1), (6, 3)), label="edge: a single output pixel"),
        Case(((10, 20), (11, 20), (3, 5)), label="edge: impossible (taller output), must raise ValueError"),
        Case(((12, 8), (6, 9), 3), label="edge: impossible on the width only, must raise ValueError"),
    ]
    while len(cases) < n:
        cases.append(_impossible_design(rng) if rng.random() < 0.15 else _random_design(rng))
    return cases[:n]


register(
    Exercise(
        id="design_conv",
        lesson=LESSON,
        name="design_conv",
        points=3,
        reference=design_conv,
        public_cases=(
            Case(((32, 32), (16, 16), 5), label="32×32 to 16×16 with a 5×5 kernel"),
            Case(((24, 40), (12, 20), 3), label="halve a 24×40 input with a 3×3 kernel"),
            Case(((30, 50), (30, 25), (3, 5)), label="keep the height, halve the width, 3×5 kernel"),
            Case(((8, 8), (10, 8), 3), label="impossible: must raise ValueError"),
        ),
        make_cases=_design_cases,
        run=_call_or_value_error,
        n_cases=25,
        # A case's expected (stride, padding) is the answer to that design question: never shown.
        show_expected=False,
        title="design_conv(in_hw, out_hw, kernel_size): the (stride, padding) pairs that give nn.Conv2d that output shape.",
        hints=(
            'Height and width do not talk to each other: solve one axis at a time with the output-size rule, then put '
            'the pairs together in (H, W) order.',
            'On one axis, try stride 1, 2, 3, ... and for each stride every padding from 0 up to half the kernel, '
            'and keep the first pair whose output size is the one wanted.',
            'If no stride and padding in those ranges works on an axis, no layer of this kind can produce that size: '
            'raise ValueError instead of returning something.',
        ),
        forbidden=(
            'course_utils.shapes.conv_out',
            'course_utils.shapes.conv_out_2d',
            'course_utils.shapes.same_padding',
            'course_utils.shapes.same_padding_pair',
            'course_utils.shapes.trace',
        ),
    )
)
