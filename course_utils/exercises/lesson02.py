"""Lesson 02's exercises: the conv output-size formula, "same" padding, sizes through a stack of layers."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import shapes
from .adapters import call_on_copy as _call_on_copy
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
# padding_32_to_16 (a value)
# --------------------------------------------------------------------------------------------


def _padding_32_to_16() -> int:
    return next(p for p in range(10) if shapes.conv_out(32, 5, stride=2, padding=p) == 16)


register(
    Exercise(
        id="padding_32_to_16",
        lesson=LESSON,
        name="padding_32_to_16",
        points=1,
        reference=_padding_32_to_16,
        kind="value",
        title="The padding that turns a 32×32 input into 16×16 with kernel 5 and stride 2.",
        hints=(
            'Write down the output-size rule for this layer and try small paddings one at a time.',
            'Several paddings can give the same size because of the floor division; the smallest one is asked for.',
        ),
    )
)
