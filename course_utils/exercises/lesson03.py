"""Lesson 03's exercises: a conv2d forward pass, parameter counts, a 1×1 convolution as a matrix product."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..shapes import conv_params
from .adapters import call_on_copies as _call_on_copies
from .core import Case, Exercise
from .forbidden import CONV_CALLS
from .registry import register

LESSON = "03_conv2d_in_pytorch"


def _tensor(rng: np.random.Generator, *shape: int) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))


# --------------------------------------------------------------------------------------------
# conv2d_forward
# --------------------------------------------------------------------------------------------


def conv2d_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
) -> torch.Tensor:
    """Reference: a multi-channel 2-D convolution (PyTorch's cross-correlation), N×C×H×W in and out."""
    return F.conv2d(x, weight, bias, stride=stride, padding=padding)


def _conv_case(rng, n, cin, cout, h, w, kh, kw, stride, padding, bias=True, label="random") -> Case:
    x = _tensor(rng, n, cin, h, w)
    weight = _tensor(rng, cout, cin, kh, kw)
    b = _tensor(rng, cout) if bias else None
    return Case((x, weight, b), {"stride": stride, "padding": padding}, label=label)


def _conv_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        _conv_case(rng, 2, 3, 4, 6, 6, 3, 3, 1, 1, bias=False, label="edge: bias is None"),
        _conv_case(rng, 2, 2, 3, 7, 7, 3, 3, 2, 0, label="edge: stride 2 does not divide 7 - 3"),
        _conv_case(rng, 3, 4, 5, 5, 6, 1, 1, 1, 0, label="edge: 1×1 kernel"),
        _conv_case(rng, 1, 3, 2, 8, 8, 3, 3, 1, 1, label="edge: batch of one"),
        _conv_case(rng, 2, 2, 3, 5, 9, 3, 2, 1, 0, label="edge: non-square input and kernel"),
        _conv_case(rng, 1, 1, 1, 3, 3, 3, 3, 1, 0, label="edge: a single output pixel"),
        _conv_case(rng, 2, 3, 2, 6, 5, 5, 3, 3, 2, label="edge: stride 3 with padding 2"),
    ]
    while len(cases) < n:
        kh, kw = (int(v) for v in rng.choice([1, 2, 3, 5], size=2))
        stride = int(rng.integers(1, 4))
        padding = int(rng.integers(0, 3))
        h = int(rng.integers(max(1, kh - 2 * padding), 11))
        w = int(rng.integers(max(1, kw - 2 * padding), 11))
        cases.append(
            _conv_case(
                rng,
                int(rng.integers(1, 4)),
                int(rng.integers(1, 5)),
                int(rng.integers(1, 5)),
                h,
                w,
                kh,
                kw,
                stride,
                padding,
                bias=bool(rng.random() < 0.7),
            )
        )
    return cases[:n]


_PUBLIC_RNG = np.random.default_rng(3)

register(
    Exercise(
        id="conv2d_forward",
        lesson=LESSON,
        name="conv2d_forward",
        points=3,
        reference=conv2d_forward,
        public_cases=(
            _conv_case(_PUBLIC_RNG, 1, 1, 1, 4, 4, 3, 3, 1, 0, label="one channel, no padding"),
            _conv_case(_PUBLIC_RNG, 2, 3, 4, 8, 8, 3, 3, 1, 1, label="RGB in, 4 maps out, padding 1"),
            _conv_case(_PUBLIC_RNG, 1, 3, 2, 8, 8, 3, 3, 2, 1, bias=False, label="stride 2, no bias"),
        ),
        make_cases=_conv_cases,
        run=_call_on_copies,
        rtol=1e-4,
        atol=1e-4,
        n_cases=15,
        title="A multi-channel conv2d forward pass (stride, zero padding, optional bias), equal to F.conv2d.",
        hints=(
            'Pad the input with zeros first, then count how many windows fit along H and along W at this stride.',
            'One output value is a sum over every input channel and every kernel tap; write it for a single output pixel first.',
            "Work on the whole batch at once: slice the window for all images, multiply by one output channel's kernel and sum over three axes; add the bias only when it is not None.",
        ),
        forbidden=CONV_CALLS,
    )
)


# --------------------------------------------------------------------------------------------
# conv2d_param_count
# --------------------------------------------------------------------------------------------


def conv2d_param_count(
    in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], bias: bool = True, groups: int = 1
) -> int:
    """Reference: the number of learnable parameters of ``nn.Conv2d`` with these settings."""
    return conv_params(in_channels, out_channels, kernel_size, bias=bias, groups=groups)


def _param_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case((32, 32, 3), {"bias": False, "groups": 32}, label="edge: depthwise 3×3, no bias"),
        Case((64, 128, 1), {"bias": True, "groups": 1}, label="edge: pointwise 1×1"),
        Case((6, 12, (3, 5)), {"bias": True, "groups": 1}, label="edge: non-square kernel"),
        Case((8, 16, 3), {"bias": True, "groups": 4}, label="edge: 4 groups"),
        Case((1, 1, 1), {"bias": False, "groups": 1}, label="edge: one weight"),
    ]
    while len(cases) < n:
        groups = int(rng.choice([1, 1, 2, 3, 4]))
        cin = groups * int(rng.integers(1, 17))
        cout = groups * int(rng.integers(1, 17))
        if rng.random() < 0.3:
            kernel: Any = (int(rng.integers(1, 8)), int(rng.integers(1, 8)))
        else:
            kernel = int(rng.choice([1, 3, 5, 7]))
        cases.append(Case((cin, cout, kernel), {"bias": bool(rng.random() < 0.6), "groups": groups}, label="random"))
    return cases[:n]


register(
    Exercise(
        id="conv2d_param_count",
        lesson=LESSON,
        name="conv2d_param_count",
        points=1,
        reference=conv2d_param_count,
        public_cases=(
            Case((3, 16, 3), {"bias": False, "groups": 1}, label="the lesson's first layer"),
            Case((3, 32, 5), {"bias": True, "groups": 1}, label="5×5 with bias"),
            Case((16, 16, 3), {"bias": True, "groups": 16}, label="depthwise"),
        ),
        make_cases=_param_cases,
        n_cases=20,
        title="How many parameters does nn.Conv2d(in, out, kernel_size, bias=..., groups=...) have?",
        hints=(
            'Groups split the input channels: how many of them does one output channel actually see?',
            'kernel_size may be an int or a pair; count the taps of one kernel, then add the biases when bias is True.',
        ),
        forbidden=(
            'course_utils.shapes.conv_params',
        ),
    )
)


# --------------------------------------------------------------------------------------------
# pointwise_conv_matmul
# --------------------------------------------------------------------------------------------


def pointwise_conv_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Reference: a 1×1 convolution with an (out, in) weight matrix, N×C_in×H×W -> N×C_out×H×W."""
    return F.conv2d(x, weight[:, :, None, None], bias)


def _pointwise_case(rng, n, cin, cout, h, w, bias=True, label="random") -> Case:
    b = _tensor(rng, cout) if bias else None
    return Case((_tensor(rng, n, cin, h, w), _tensor(rng, cout, cin), b), label=label)


def _pointwise_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        _pointwise_case(rng, 2, 4, 4, 3, 3, label="edge: square weight (a transposed matrix gives a wrong answer)"),
        _pointwise_case(rng, 1, 3, 5, 1, 1, label="edge: one pixel"),
        _pointwise_case(rng, 2, 5, 2, 3, 7, bias=False, label="edge: bias is None, non-square image"),
        _pointwise_case(rng, 3, 1, 3, 4, 2, label="edge: one input channel"),
    ]
    while len(cases) < n:
        cases.append(
            _pointwise_case(
                rng,
                int(rng.integers(1, 4)),
                int(rng.integers(1, 9)),
                int(rng.integers(1, 9)),
                int(rng.integers(1, 9)),
                int(rng.integers(1, 9)),
                bias=bool(rng.random() < 0.7),
            )
        )
    return cases[:n]


_PUBLIC_RNG_1x1 = np.random.default_rng(4)

register(
    Exercise(
        id="pointwise_conv_matmul",
        lesson=LESSON,
        name="pointwise_conv_matmul",
        points=2,
        reference=pointwise_conv_matmul,
        public_cases=(
            _pointwise_case(_PUBLIC_RNG_1x1, 1, 3, 2, 2, 2, label="RGB to 2 channels"),
            _pointwise_case(_PUBLIC_RNG_1x1, 2, 4, 6, 3, 3, bias=False, label="no bias"),
        ),
        make_cases=_pointwise_cases,
        run=_call_on_copies,
        rtol=1e-4,
        atol=1e-5,
        n_cases=12,
        title="A 1×1 convolution written as a matrix product over channels.",
        hints=(
            'A 1×1 convolution mixes the channels of each pixel on its own: which matrix multiplies which vector?',
            'Move the channel axis last so that every pixel is a row, multiply by the transposed weight matrix, add the bias, and move the channels back.',
        ),
        forbidden=CONV_CALLS,
    )
)
