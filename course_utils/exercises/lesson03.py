"""Lesson 03's exercises, easiest first: parameter counts, a depthwise-separable pair as one full convolution,
and a conv2d forward pass with stride, padding and dilation."""
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
# conv2d_param_count (exercise 1)
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
        # The count is the answer; a ❌ shows the input and what came back, never the expected value.
        show_expected=False,
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
# separable_as_full (exercise 2: a depthwise-separable pair as one full convolution)
# --------------------------------------------------------------------------------------------


def separable_as_full(depthwise_weight: torch.Tensor, pointwise_weight: torch.Tensor) -> torch.Tensor:
    """Reference: the ``(C_out, C_in, kh, kw)`` weight of the one convolution that equals a depthwise
    conv (``groups=C_in``, weight ``(C_in, 1, kh, kw)``) followed by a 1×1 conv (weight ``(C_out, C_in, 1, 1)``),
    both without bias.

    Each full kernel slice ``[o, c]`` is channel ``c``'s depthwise kernel scaled by the pointwise
    weight ``[o, c]``: a full convolution restricted to kernels of that form.
    """
    return pointwise_weight[:, :, 0, 0, None, None] * depthwise_weight[:, 0][None]


def _separable_case(rng, cin, cout, kh, kw, label="random") -> Case:
    return Case((_tensor(rng, cin, 1, kh, kw), _tensor(rng, cout, cin, 1, 1)), label=label)


def _separable_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        _separable_case(rng, 1, 1, 3, 3, label="edge: one channel in, one out"),
        _separable_case(rng, 4, 4, 3, 3, label="edge: as many outputs as inputs (a transposed mix gives a wrong answer)"),
        _separable_case(rng, 3, 5, 1, 1, label="edge: 1×1 depthwise kernels"),
        _separable_case(rng, 2, 3, 3, 5, label="edge: non-square kernel"),
        _separable_case(rng, 6, 2, 5, 2, label="edge: more inputs than outputs"),
    ]
    while len(cases) < n:
        kh, kw = (int(v) for v in rng.choice([1, 2, 3, 5, 7], size=2))
        cases.append(_separable_case(rng, int(rng.integers(1, 9)), int(rng.integers(1, 9)), kh, kw))
    return cases[:n]


_PUBLIC_RNG_SEP = np.random.default_rng(4)

register(
    Exercise(
        id="separable_as_full",
        lesson=LESSON,
        name="separable_as_full",
        points=2,
        reference=separable_as_full,
        public_cases=(
            _separable_case(_PUBLIC_RNG_SEP, 3, 2, 3, 3, label="3 channels in, 2 out, 3×3"),
            _separable_case(_PUBLIC_RNG_SEP, 32, 64, 3, 3, label="the section's layer: 32 to 64 channels"),
        ),
        make_cases=_separable_cases,
        run=_call_on_copies,
        rtol=1e-5,
        atol=1e-6,
        n_cases=15,
        title="The full conv weight (C_out, C_in, kh, kw) that computes what a depthwise + pointwise pair computes.",
        hints=(
            'Follow one output channel o back to the input: which input channels does it read, and through which '
            'depthwise kernel and which pointwise weight does each of them pass?',
            'Both steps are linear and have no bias, so they compose into one convolution; its kernel slice for '
            '(o, c) is a depthwise kernel scaled by one number. Check your shapes: the result is out × in × kh × kw.',
            'Two loops over o and c that fill the result slice by slice are fine. To do it without loops, line both '
            'weights up on the four axes (out, in, kh, kw), with an axis of size 1 wherever a weight does not vary, and '
            'let broadcasting multiply them.',
        ),
        forbidden=CONV_CALLS,
    )
)


# --------------------------------------------------------------------------------------------
# conv2d_forward (exercise 3, the hardest: stride, padding and dilation, from scratch)
# --------------------------------------------------------------------------------------------


def conv2d_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
) -> torch.Tensor:
    """Reference: a multi-channel 2-D convolution (PyTorch's cross-correlation), N×C×H×W in and out."""
    return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)


def _conv_case(rng, n, cin, cout, h, w, kh, kw, stride, padding, bias=True, label="random", dilation=1) -> Case:
    x = _tensor(rng, n, cin, h, w)
    weight = _tensor(rng, cout, cin, kh, kw)
    b = _tensor(rng, cout) if bias else None
    return Case((x, weight, b), {"stride": stride, "padding": padding, "dilation": dilation}, label=label)


def _conv_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        _conv_case(rng, 2, 3, 4, 6, 6, 3, 3, 1, 1, bias=False, label="edge: bias is None"),
        _conv_case(rng, 2, 2, 3, 7, 7, 3, 3, 2, 0, label="edge: stride 2 does not divide 7 - 3"),
        _conv_case(rng, 3, 4, 5, 5, 6, 1, 1, 1, 0, label="edge: 1×1 kernel"),
        _conv_case(rng, 1, 3, 2, 8, 8, 3, 3, 1, 1, label="edge: batch of one"),
        _conv_case(rng, 2, 2, 3, 5, 9, 3, 2, 1, 0, label="edge: non-square input and kernel"),
        _conv_case(rng, 1, 1, 1, 3, 3, 3, 3, 1, 0, label="edge: a single output pixel"),
        _conv_case(rng, 2, 3, 2, 6, 5, 5, 3, 3, 2, label="edge: stride 3 with padding 2"),
        _conv_case(rng, 2, 2, 3, 9, 10, 3, 3, 1, 0, dilation=2, label="edge: dilation 2, no padding"),
        _conv_case(rng, 1, 3, 2, 8, 11, 3, 2, 2, 2, dilation=3, label="edge: dilation 3 with stride 2 and padding 2"),
        _conv_case(rng, 2, 2, 2, 5, 5, 2, 2, 1, 1, dilation=4, label="edge: dilated taps that land in the padding"),
    ]
    while len(cases) < n:
        kh, kw = (int(v) for v in rng.choice([1, 2, 3, 5], size=2))
        stride = int(rng.integers(1, 4))
        padding = int(rng.integers(0, 3))
        dilation = int(rng.choice([1, 1, 2, 3]))
        # The dilated kernel must fit in the padded input on both axes.
        low_h = max(1, dilation * (kh - 1) + 1 - 2 * padding)
        low_w = max(1, dilation * (kw - 1) + 1 - 2 * padding)
        h = int(rng.integers(low_h, low_h + 10))
        w = int(rng.integers(low_w, low_w + 10))
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
                dilation=dilation,
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
            _conv_case(_PUBLIC_RNG, 1, 2, 3, 9, 9, 3, 3, 1, 2, dilation=2, label="dilation 2 with padding 2"),
        ),
        make_cases=_conv_cases,
        run=_call_on_copies,
        rtol=1e-4,
        atol=1e-4,
        n_cases=18,
        title="A multi-channel conv2d forward pass (stride, zero padding, dilation, optional bias), equal to F.conv2d.",
        hints=(
            'Pad the input with zeros first, then count how many windows fit along H and along W; a dilated kernel '
            'spans more pixels than it has taps.',
            'One output value is a sum over every input channel and every kernel tap; write it for a single output pixel '
            'first, then see which input pixel tap (i, j) meets in every window.',
            "From conv2d_loops: in the padded input, each window now starts stride pixels after the previous one "
            "along each axis, and takes every dilation-th pixel, kh of them down and kw across, which is one slice "
            "with a step. (Faster: loop over the kernel taps instead; the pixels one tap meets in all windows form one "
            "strided slice of the padded input.) Add the bias only when it is not None.",
        ),
        forbidden=CONV_CALLS,
    )
)
