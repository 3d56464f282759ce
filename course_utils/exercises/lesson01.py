"""Lesson 01's exercises: what a dense layer and a conv layer cost, and a 2-D cross-correlation."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..shapes import conv_params, linear_params
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
# conv_layer_params
# --------------------------------------------------------------------------------------------


def conv_layer_params(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> int:
    """Reference: parameters of ``nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias)``."""
    return conv_params(in_channels, out_channels, kernel_size, bias=bias)


def _conv_param_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case((1, 1, 1), {"bias": False}, label="edge: a single weight"),
        Case((1, 1, 1), {"bias": True}, label="edge: a single weight and its bias"),
        Case((64, 64, 3), {"bias": False}, label="edge: no bias"),
        Case((3, 64, 7), {"bias": True}, label="edge: 7×7 kernel"),
        Case((16, 3, 5), {"bias": True}, label="edge: more inputs than outputs"),
    ]
    while len(cases) < n:
        cases.append(
            Case(
                (int(rng.integers(1, 257)), int(rng.integers(1, 257)), int(rng.choice([1, 3, 5, 7, 9, 11]))),
                {"bias": bool(rng.random() < 0.6)},
                label="random",
            )
        )
    return cases[:n]


register(
    Exercise(
        id="conv_layer_params",
        lesson=LESSON,
        name="conv_layer_params",
        points=1,
        reference=conv_layer_params,
        public_cases=(
            Case((3, 64, 3), {"bias": True}, label="RGB to 64 maps, 3×3, with bias"),
            Case((3, 64, 3), {"bias": False}, label="the same without bias"),
            Case((64, 128, 3), {"bias": True}, label="a deeper layer"),
        ),
        make_cases=_conv_param_cases,
        title="How many parameters does nn.Conv2d(in_channels, out_channels, kernel_size, bias=...) have?",
        hints=(
            'Does the size of the image change how many weights a convolution has?',
            'One output channel owns one small square kernel for every input channel; count its taps, then add the biases (one per output channel, only when bias is True).',
        ),
        forbidden=(
            'course_utils.shapes.conv_params',
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
