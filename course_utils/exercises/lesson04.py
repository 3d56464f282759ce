"""Lesson 04's exercises, easiest first: shapes through a layer stack, max and average pooling from
scratch, and the receptive field of a stack (checked against a gradient measurement)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..shapes import conv_out, pool_out
from .core import Case, Exercise
from .forbidden import CONV_CALLS, POOL_CALLS
from .registry import register
from .adapters import call_on_copies as _call_on_copies

LESSON = "04_pooling_and_activation"


def _tensor(rng: np.random.Generator, *shape: int) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))


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
        show_expected=False,
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
        show_expected=False,
        title="Max pooling from scratch (no padding), equal to F.max_pool2d.",
        hints=(
            'When stride is None the windows touch without overlapping; how many fit along H and along W?',
            'Fill an output tensor of the right size with two loops over the window positions.',
            'Take the k×k window of every image and channel at once by slicing, and reduce it over its last two axes.',
        ),
        # A convolution with a one-hot or constant kernel, or F.unfold's strided columns, would slide
        # the window for the learner just as a pooling call does.
        forbidden=POOL_CALLS + CONV_CALLS + (
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
        show_expected=False,
        title="Average pooling from scratch (no padding), equal to F.avg_pool2d.",
        hints=(
            'The windows are the same as for max pooling; only the reduction changes.',
            'Slice the k×k window of every image and channel at once and average it over its last two axes; when stride is None it equals kernel_size.',
        ),
        # A convolution with a one-hot or constant kernel, or F.unfold's strided columns, would slide
        # the window for the learner just as a pooling call does.
        forbidden=POOL_CALLS + CONV_CALLS + (
            'course_utils.shapes.pool_out',
            'course_utils.shapes.pool_out_2d',
        ),
    )
)


# --------------------------------------------------------------------------------------------
# stack_receptive_field: the reference is a measurement, not the formula
# --------------------------------------------------------------------------------------------


def _layer_module(kernel_size: int, stride: int, padding: int, dilation: int) -> torch.nn.Module:
    # A real layer with this geometry whose backward reaches every input pixel it reads: average
    # pooling where PyTorch allows it, else a 1-channel convolution with all-one weights (max
    # pooling would send the gradient to one pixel per window and hide the rest of the field).
    # One-dimensional: a square layer's field is the same along H and W, and a line of pixels costs
    # far less to back-propagate through than a square image.
    if dilation == 1 and stride > 1 and padding <= kernel_size // 2:
        return torch.nn.AvgPool1d(kernel_size, stride=stride, padding=padding)
    conv = torch.nn.Conv1d(1, 1, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    return conv


def _extent(net: torch.nn.Module, x: torch.Tensor, i: int) -> tuple[int, int] | None:
    # Input pixels that output pixel i depends on: where its gradient is non-zero (None when it
    # sees only padding).
    x.grad = None
    net(x)[0, 0, i].backward()
    rows = torch.nonzero(x.grad[0, 0]).flatten()
    return (int(rows.min()), int(rows.max())) if rows.numel() else None


def _measure(net: torch.nn.Module, size: int) -> tuple[int, int, float] | None:
    # (rf, jump, start) read from three neighbouring output pixels in the middle of an input of
    # `size` pixels, or None when they disagree (a field cut short by some padding or the border).
    x = torch.ones(1, 1, size, dtype=torch.float64, requires_grad=True)
    try:
        out_size = net(x).shape[-1]
    except RuntimeError:  # the map got smaller than a later kernel: try a larger input
        return None
    if out_size < 5:
        return None
    i = out_size // 2
    extents = [_extent(net, x, j) for j in (i - 1, i, i + 1)]
    if None in extents:
        return None
    widths = {hi - lo for lo, hi in extents}
    centres = [(lo + hi) / 2 for lo, hi in extents]
    if len(widths) != 1 or centres[1] - centres[0] != centres[2] - centres[1]:
        return None
    if any(lo == 0 or hi == size - 1 for lo, hi in extents):
        return None
    jump = centres[1] - centres[0]
    return extents[1][1] - extents[1][0] + 1, int(jump), centres[1] - i * jump


def stack_receptive_field(layers: Sequence[Sequence[int]]) -> tuple[int, int, float]:
    """Reference, by measurement: receptive field, jump and start after a stack of square layers.

    Builds the stack from real PyTorch layers (``nn.AvgPool1d`` or an all-ones ``nn.Conv1d``, in
    float64: a square layer's field is the same along each axis), back-propagates from three neighbouring output pixels in the middle of the input,
    and reads the non-zero extent of each gradient: its size is the receptive field, the distance
    between neighbouring extents' centres is the jump, and the middle one's centre less
    ``i * jump`` is the start. A measurement counts once it agrees on an input twice as large,
    so no field cut short by padding is read. No receptive-field formula is used.

    Parameters
    ----------
    layers : sequence of (kernel_size, stride, padding, dilation)

    Returns
    -------
    (int, int, float)
        ``(rf, jump, start)`` after the last layer; ``(1, 1, 0.0)`` for an empty stack.

    Examples
    --------
    >>> stack_receptive_field([(3, 1, 1, 1), (2, 2, 0, 1)])
    (4, 2, 0.5)
    """
    specs = [tuple(int(v) for v in layer) for layer in layers]
    if not specs:
        return 1, 1, 0.0
    net = torch.nn.Sequential(*(_layer_module(*spec) for spec in specs)).double()
    threads = torch.get_num_threads()
    # Layers this small run tens of times faster on one thread than split across busy cores.
    torch.set_num_threads(1)
    try:
        size, previous = 16, None
        while size <= 65536:
            current = _measure(net, size)
            if current is not None and current == previous:
                return current
            previous, size = current, size * 2
    finally:
        torch.set_num_threads(threads)
    raise ValueError(f"layers: the receptive field of {specs} could not be measured on a 65536-pixel line")


def _rf_layer(rng: np.random.Generator) -> tuple[int, int, int, int]:
    k = int(rng.choice([1, 2, 3, 3, 5, 7]))
    s = int(rng.choice([1, 1, 2, 2, 3]))
    d = int(rng.choice([1, 1, 1, 2, 3])) if k > 1 else 1
    p = int(rng.integers(0, (d * (k - 1)) // 2 + 2))
    return k, s, p, d


def _rf_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case(([],), label="edge: no layers (the input row of the table)"),
        Case(([(2, 2, 0, 1)],), label="edge: one pool, output 0 centred between two pixels"),
        Case(([(3, 1, 1, 1), (2, 2, 0, 1)] * 3,), label="edge: the lesson's three blocks"),
        Case(([(2, 2, 0, 1), (3, 1, 0, 2)],), label="edge: a dilated conv after a stride-2 pool"),
        Case(([(1, 2, 0, 1), (1, 3, 0, 1), (3, 1, 0, 1)],), label="edge: 1×1 strided layers grow only the jump"),
        Case(([(3, 1, 3, 1), (5, 2, 0, 1)],), label="edge: more padding than 'same' (start below 0)"),
        Case(([(3, 1, 0, 3)],), label="edge: one dilated conv, no padding"),
    ]
    while len(cases) < n:
        layers: list[tuple[int, int, int, int]] = []
        jump = 1
        for _ in range(int(rng.integers(1, 6))):
            layer = _rf_layer(rng)
            if jump * layer[1] > 12:
                layer = (layer[0], 1, layer[2], layer[3])  # keep the field small enough to measure fast
            jump *= layer[1]
            layers.append(layer)
        cases.append(Case((layers,), label="random"))
    return cases[:n]


register(
    Exercise(
        id="stack_receptive_field",
        lesson=LESSON,
        name="stack_receptive_field",
        points=3,
        reference=stack_receptive_field,
        public_cases=(
            Case(([(3, 1, 1, 1)],), label="one 3×3 conv, padding 1"),
            Case(([(3, 1, 1, 1), (2, 2, 0, 1)] * 2,), label="two conv → pool blocks of the lesson"),
            Case(([(3, 1, 2, 2), (3, 1, 2, 2)],), label="two dilated 3×3 convs"),
        ),
        make_cases=_rf_cases,
        rtol=0.0,
        atol=1e-9,
        n_cases=16,
        time_limit=10.0,
        show_expected=False,
        title="Receptive field, jump and start after a stack of (kernel, stride, padding, dilation) layers.",
        hints=(
            'Walk the layers in order and keep three running numbers, starting from what the table\'s input row says.',
            'A dilated kernel covers more input than its kernel_size; lesson 02 counted how much. Each layer grows the field by that span less one, measured in steps of the jump it receives, not the one it passes on.',
            'For start: the centre of a layer\'s first window lies half of (its span less one) to the right of the window\'s left edge, and padding moves that edge left; both distances are in steps of the incoming jump.',
        ),
        forbidden=CONV_CALLS + POOL_CALLS + (
            'course_utils.shapes.receptive_field',
            'torch.autograd.grad',
            'torch.Tensor.backward',
        ),
    )
)
