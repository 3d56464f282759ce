"""Lesson 01's exercises: what a dense layer stores, what a conv layer computes, and a 2-D cross-correlation."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..shapes import linear_params
from .adapters import call_on_copies as _call_on_copies
from .core import Case, Exercise
from .forbidden import CONV_CALLS
from .registry import register

LESSON = "01_why_convolution"


# --------------------------------------------------------------------------------------------
# dense_params
# --------------------------------------------------------------------------------------------


def dense_params(height: int, width: int, channels: int, units: int, bias: bool = True) -> int:
    """Reference: parameters of ``nn.Linear`` on a flattened ``channels×height×width`` image."""
    return linear_params(height * width * channels, units, bias=bias)


def _dense_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case((1, 1, 1, 1), {"bias": True}, label="edge: one pixel, one unit, with bias"),
        Case((1, 1, 1, 1), {"bias": False}, label="edge: one pixel, one unit, no bias"),
        Case((224, 224, 3, 1000), {"bias": False}, label="edge: the lesson's layer without bias"),
        Case((28, 28, 1, 10), {"bias": True}, label="edge: one channel (MNIST-sized)"),
        Case((17, 40, 3, 7), {"bias": True}, label="edge: height != width"),
    ]
    while len(cases) < n:
        h, w = (int(v) for v in rng.integers(1, 257, size=2))
        cases.append(
            Case(
                (h, w, int(rng.choice([1, 3, 4, 16])), int(rng.integers(1, 2049))),
                {"bias": bool(rng.random() < 0.6)},
                label="random",
            )
        )
    return cases[:n]


register(
    Exercise(
        id="dense_params",
        lesson=LESSON,
        name="dense_params",
        points=1,
        reference=dense_params,
        public_cases=(
            Case((224, 224, 3, 1), {"bias": False}, label="one neuron on a 224×224 RGB image"),
            Case((224, 224, 3, 1000), {"bias": True}, label="1,000 units with bias"),
            Case((32, 32, 3, 10), {"bias": True}, label="a CIFAR-10 image to 10 classes"),
        ),
        make_cases=_dense_cases,
        # The count is the answer; a ❌ shows the input and what came back, as for the other exercises.
        show_expected=False,
        title="How many parameters does a dense layer have on a flattened H×W×C image?",
        hints=(
            'Count one unit first: how many input values is it connected to?',
            'A flattened image has one value per pixel and channel, and every unit sees all of them; add one bias per unit only when bias is True.',
        ),
        forbidden=(
            'course_utils.shapes.linear_params',
        ),
    )
)


# --------------------------------------------------------------------------------------------
# conv_macs: a multiply-add count, measured on a real layer
# --------------------------------------------------------------------------------------------


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def conv_macs(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    height: int,
    width: int,
    padding: int = 0,
) -> int:
    """Reference: multiply-adds of ``nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)``
    on one ``in_channels×height×width`` image, bias additions not counted.

    Measured rather than computed from a formula: a real layer (on PyTorch's ``meta`` device, which
    tracks shapes without allocating memory) runs on the input, and a forward hook multiplies the
    number of values it wrote by the number of weights one output value used.

    Examples
    --------
    >>> conv_macs(3, 64, 3, 224, 224, padding=1)
    86704128
    """
    layer = torch.nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False, device="meta")
    counted: dict[str, int] = {}

    def count(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        # Every output value is one dot product between one kernel (weight[o]) and one window.
        counted["macs"] = output.numel() * module.weight[0].numel()

    handle = layer.register_forward_hook(count)
    try:
        layer(torch.empty(1, in_channels, height, width, device="meta"))
    finally:
        handle.remove()
    return int(counted["macs"])


def _macs_case(rng: np.random.Generator) -> Case:
    kernel = _pair(int(rng.choice([1, 3, 5, 7]))) if rng.random() < 0.5 else tuple(int(v) for v in rng.integers(1, 8, size=2))
    padding = int(rng.integers(0, 4))
    # The kernel must fit inside the padded image on both axes.
    height = int(rng.integers(max(1, kernel[0] - 2 * padding), 97))
    width = int(rng.integers(max(1, kernel[1] - 2 * padding), 97))
    kernel_arg: int | tuple[int, int] = kernel[0] if kernel[0] == kernel[1] and rng.random() < 0.5 else kernel
    return Case((int(rng.integers(1, 65)), int(rng.integers(1, 129)), kernel_arg, height, width),
                {"padding": padding}, label="random")


def _macs_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case((1, 1, 1, 1, 1), {"padding": 0}, label="edge: one pixel, one weight"),
        Case((4, 8, 5, 5, 5), {"padding": 0}, label="edge: kernel as large as the image (one output position)"),
        Case((3, 16, (3, 5), 20, 41), {"padding": 0}, label="edge: non-square kernel on a non-square image"),
        Case((3, 16, (5, 3), 20, 41), {"padding": 0}, label="edge: the same kernel turned (rows and columns swapped)"),
        Case((8, 2, 3, 12, 30), {"padding": 2}, label="edge: padding 2 makes the output larger than the image"),
        Case((16, 32, 1, 7, 9), {"padding": 0}, label="edge: 1×1 kernel"),
        Case((3, 64, 3, 224, 224), label="edge: padding left at its default"),
    ]
    while len(cases) < n:
        cases.append(_macs_case(rng))
    return cases[:n]


register(
    Exercise(
        id="conv_macs",
        lesson=LESSON,
        name="conv_macs",
        points=2,
        reference=conv_macs,
        public_cases=(
            Case((3, 64, 3, 224, 224), {"padding": 1}, label="the lesson's layer: RGB to 64 maps, 3×3, padding 1"),
            Case((1, 1, 2, 3, 3), {"padding": 0}, label="the 3×3 example of section 2 (one channel, 2×2 kernel)"),
            Case((3, 8, (3, 5), 32, 48), {"padding": 0}, label="a 3×5 kernel on a 32×48 image"),
        ),
        make_cases=_macs_cases,
        n_cases=20,
        # The count for a case is the answer to a small question: check shows what came back, never it.
        show_expected=False,
        title="How many multiply-adds does nn.Conv2d(in, out, kernel_size, padding=...) do on one H×W image?",
        hints=(
            'Count for one output value first: how many input values does it multiply by a weight?',
            'Then count the output values: how many positions does the kernel take on the padded image along each axis, '
            'and how many maps are there? The two axes can differ.',
            'Each output value costs one product per weight of the kernel it uses, across all its input channels, '
            'each added into its sum; count the output values, and leave the bias out (an addition with no product). '
            'Try your method on the 3×3 example of section 2 by hand.',
        ),
        forbidden=(
            'course_utils.shapes.conv_macs',
            'course_utils.shapes.conv_params',
            'course_utils.shapes.conv_out',
            'course_utils.shapes.conv_out_2d',
            'course_utils.shapes.cost_ledger',
            'course_utils.shapes.trace',
            # refused as it starts counting, before it runs the layer under the guard's own modes
            'torch.utils.flop_counter.FlopCounterMode.__enter__',
            'torch.utils.flop_counter.FlopCounterMode.get_total_flops',
        ),
    )
)


# --------------------------------------------------------------------------------------------
# corr2d
# --------------------------------------------------------------------------------------------


def corr2d(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Reference: the valid 2-D cross-correlation of an H×W tensor with a kh×kw kernel."""
    return F.conv2d(x[None, None], k[None, None])[0, 0]


def _tensor(rng: np.random.Generator, *shape: int) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))


def _corr_case(rng: np.random.Generator, h: int, w: int, kh: int, kw: int, label: str = "random") -> Case:
    return Case((_tensor(rng, h, w), _tensor(rng, kh, kw)), label=label)


def _corr_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        _corr_case(rng, 5, 6, 1, 1, label="edge: 1×1 kernel"),
        _corr_case(rng, 4, 4, 4, 4, label="edge: kernel as large as the input (one output)"),
        _corr_case(rng, 4, 9, 2, 3, label="edge: non-square input and kernel"),
        _corr_case(rng, 7, 3, 3, 1, label="edge: tall input, 3×1 kernel"),
        # An asymmetric kernel on a non-square input catches a flipped kernel and swapped axes.
        _corr_case(rng, 6, 8, 3, 2, label="edge: asymmetric kernel"),
        _corr_case(rng, 1, 5, 1, 5, label="edge: a single row"),
    ]
    while len(cases) < n:
        h, w = (int(v) for v in rng.integers(1, 13, size=2))
        kh, kw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        cases.append(_corr_case(rng, h, w, kh, kw))
    return cases[:n]


_PUBLIC = (
    Case(
        (torch.arange(9.0).reshape(3, 3), torch.tensor([[0.0, 1.0], [2.0, 3.0]])),
        label="the 3×3 example of the lesson",
    ),
    Case((torch.ones(4, 5), torch.ones(2, 2)), label="ones: every output is 4"),
    Case(
        (torch.arange(12.0).reshape(3, 4), torch.tensor([[1.0, -1.0]])),
        label="a horizontal difference",
    ),
)

register(
    Exercise(
        id="corr2d",
        lesson=LESSON,
        name="corr2d",
        points=3,
        reference=corr2d,
        public_cases=_PUBLIC,
        make_cases=_corr_cases,
        run=_call_on_copies,
        rtol=1e-4,
        atol=1e-5,
        n_cases=15,
        title="A 2-D cross-correlation from scratch (no padding, stride 1), equal to F.conv2d.",
        hints=(
            'Slide the kernel over every position where it fits entirely inside the image: how many positions are there along each axis?',
            'At each position, multiply the window of x under the kernel element by element with k and add everything up; do not flip the kernel.',
            'Make a float output tensor of the right size first, then fill it with two loops over the positions.',
        ),
        forbidden=CONV_CALLS + (
            'scipy.signal.correlate2d',
            'scipy.signal.convolve2d',
            'scipy.signal.correlate',
            'scipy.signal.convolve',
            'scipy.ndimage.correlate',
            'scipy.ndimage.convolve',
            'numpy.convolve',
            'numpy.correlate',
        ),
    )
)
