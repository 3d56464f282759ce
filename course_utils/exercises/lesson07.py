"""Lesson 07's exercises: BatchNorm2d's forward pass in both modes, and Dropout2d with its scaling."""
from __future__ import annotations

import numpy as np
import torch

from .adapters import call_on_copies as _call_on_copies
from .core import Case, Exercise
from .registry import register

LESSON = "07_batchnorm_dropout"

__all__ = ["batchnorm2d_forward", "dropout2d_forward"]


def _tensor(rng: np.random.Generator, *shape: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    return torch.from_numpy((rng.standard_normal(shape) * scale + shift).astype(np.float32))


# --------------------------------------------------------------------------------------------
# batchnorm2d_forward
# --------------------------------------------------------------------------------------------


def batchnorm2d_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reference: ``nn.BatchNorm2d``'s forward pass, per channel, written out.

    In training mode each channel is normalized with the mean and the biased variance of its
    N·H·W values in the batch, and the running statistics move towards the batch's:
    ``new = (1 - momentum) * old + momentum * batch``, where the variance that goes into the
    running estimate is the unbiased one (divided by N·H·W − 1). In evaluation mode the running
    statistics normalize and stay as they are.

    Parameters
    ----------
    x : torch.Tensor
        N×C×H×W.
    weight, bias : torch.Tensor
        C values each: the learned scale γ and shift β.
    running_mean, running_var : torch.Tensor
        C values each.
    training : bool
    momentum : float
    eps : float
        Added to the variance before the square root.

    Returns
    -------
    (torch.Tensor, torch.Tensor, torch.Tensor)
        The output (N×C×H×W), the new running mean and the new running variance (C each).

    Examples
    --------
    >>> x = torch.randn(4, 2, 3, 3)
    >>> out, rm, rv = batchnorm2d_forward(x, torch.ones(2), torch.zeros(2), torch.zeros(2), torch.ones(2), True)
    >>> out.shape, rm.shape
    (torch.Size([4, 2, 3, 3]), torch.Size([2]))
    """
    if training:
        count = x.shape[0] * x.shape[2] * x.shape[3]
        mean = x.mean(dim=(0, 2, 3))
        var = ((x - mean.view(1, -1, 1, 1)) ** 2).mean(dim=(0, 2, 3))
        new_mean = (1 - momentum) * running_mean + momentum * mean
        new_var = (1 - momentum) * running_var + momentum * var * count / (count - 1)
    else:
        mean, var = running_mean, running_var
        new_mean, new_var = running_mean.clone(), running_var.clone()
    x_hat = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + eps)
    return x_hat * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1), new_mean, new_var


def _bn_case(rng, n, c, h, w, training, momentum=0.1, eps=1e-5, label="random") -> Case:
    # Inputs away from zero mean and unit variance, so normalizing visibly changes them.
    x = _tensor(rng, n, c, h, w, scale=float(rng.uniform(0.5, 3.0)), shift=float(rng.uniform(-2, 2)))
    weight = _tensor(rng, c, scale=0.5, shift=1.0)
    bias = _tensor(rng, c, scale=0.5)
    running_mean = _tensor(rng, c, scale=0.5)
    running_var = torch.from_numpy(rng.uniform(0.5, 2.0, c).astype(np.float32))
    return Case((x, weight, bias, running_mean, running_var, training), {"momentum": momentum, "eps": eps}, label=label)


def _bn_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        _bn_case(rng, 4, 3, 5, 5, True, label="edge: training mode"),
        _bn_case(rng, 4, 3, 5, 5, False, label="edge: evaluation mode leaves the running statistics alone"),
        _bn_case(rng, 1, 2, 4, 3, True, label="edge: batch of one image (statistics over H×W only)"),
        _bn_case(rng, 6, 4, 1, 1, True, label="edge: 1×1 maps (statistics over the batch only)"),
        _bn_case(rng, 2, 1, 1, 1, True, label="edge: two values per channel (unbiased variance divides by 1)"),
        _bn_case(rng, 3, 2, 2, 2, True, momentum=1.0, label="edge: momentum 1 replaces the running statistics"),
        _bn_case(rng, 3, 2, 2, 2, True, momentum=0.0, label="edge: momentum 0 keeps them"),
        _bn_case(rng, 5, 3, 3, 4, True, eps=0.5, label="edge: a large eps"),
        _bn_case(rng, 2, 5, 3, 2, False, eps=0.1, label="edge: evaluation mode with eps 0.1"),
    ]
    while len(cases) < n:
        h, w = int(rng.integers(1, 7)), int(rng.integers(1, 7))
        batch = int(rng.integers(2 if h * w == 1 else 1, 6))
        cases.append(
            _bn_case(
                rng, batch, int(rng.integers(1, 7)), h, w, bool(rng.random() < 0.65),
                momentum=float(rng.choice([0.1, 0.01, 0.5, 0.9])), eps=float(rng.choice([1e-5, 1e-3, 0.1])),
            )
        )
    return cases[:n]


_BN_RNG = np.random.default_rng(7)

register(
    Exercise(
        id="batchnorm2d_forward",
        lesson=LESSON,
        name="batchnorm2d_forward",
        points=4,
        reference=batchnorm2d_forward,
        public_cases=(
            _bn_case(_BN_RNG, 8, 3, 4, 4, True, label="training mode"),
            _bn_case(_BN_RNG, 8, 3, 4, 4, False, label="evaluation mode"),
        ),
        make_cases=_bn_cases,
        run=_call_on_copies,
        rtol=1e-4,
        atol=1e-4,
        n_cases=16,
        title="BatchNorm2d's forward pass from scratch: (out, new_running_mean, new_running_var), in both modes.",
        hints=(
            "In training mode the statistics come from the batch, in evaluation mode from the running estimates. Which axes does one channel's statistic cover?",
            'Normalise with the biased variance, but move the running variance toward the unbiased one; momentum says how far the running estimates move.',
            'Reshape the per-channel vectors so that they broadcast over N, H and W; in evaluation mode return copies of the running statistics unchanged.',
        ),
        forbidden=(
            'torch.nn.functional.batch_norm',
            'torch.nn.functional.instance_norm',
            'torch.batch_norm',
            'torch.nn.BatchNorm1d.forward',
            'torch.nn.BatchNorm2d.forward',
            'torch.nn.BatchNorm3d.forward',
            'torch.ops.aten.native_batch_norm',
        ),
    )
)


# --------------------------------------------------------------------------------------------
# dropout2d_forward
# --------------------------------------------------------------------------------------------


def dropout2d_forward(x: torch.Tensor, p: float, u: torch.Tensor, training: bool = True) -> torch.Tensor:
    """Reference: Dropout2d with its randomness handed in, so the result is reproducible.

    Channel ``c`` of image ``n`` is dropped (set to zero everywhere) when ``u[n, c] < p`` and kept
    otherwise; kept channels are scaled by ``1 / (1 - p)`` so each value's expectation is
    unchanged. In evaluation mode the input passes through untouched.

    Parameters
    ----------
    x : torch.Tensor
        N×C×H×W.
    p : float
        Probability of dropping a channel, ``0 <= p < 1``.
    u : torch.Tensor
        N×C uniform random numbers in ``[0, 1)``, one per channel of each image.
    training : bool

    Returns
    -------
    torch.Tensor
        N×C×H×W.

    Examples
    --------
    >>> x = torch.ones(1, 2, 2, 2)
    >>> dropout2d_forward(x, 0.5, torch.tensor([[0.2, 0.7]]))[0, :, 0, 0]
    tensor([0., 2.])
    """
    if not training:
        return x
    keep = (u >= p).to(x.dtype)
    return x * keep[:, :, None, None] / (1 - p)


def _dropout_case(rng, n, c, h, w, p, training=True, label="random", u=None) -> Case:
    x = _tensor(rng, n, c, h, w, scale=2.0)
    if u is None:
        u = torch.from_numpy(rng.random((n, c)).astype(np.float32))
    return Case((x, p, u), {"training": training}, label=label)


def _dropout_cases(rng: np.random.Generator, n: int) -> list[Case]:
    tie = torch.tensor([[0.25, 0.1, 0.25, 0.9]], dtype=torch.float32)
    cases = [
        _dropout_case(rng, 2, 4, 3, 3, 0.0, label="edge: p = 0 keeps everything and scales by 1"),
        _dropout_case(rng, 2, 4, 3, 3, 0.5, training=False, label="edge: evaluation mode passes x through"),
        _dropout_case(rng, 1, 4, 2, 2, 0.25, u=tie, label="edge: u equal to p is kept (drop when u < p)"),
        _dropout_case(rng, 3, 5, 1, 1, 0.3, label="edge: 1×1 maps"),
        _dropout_case(rng, 2, 3, 4, 5, 0.9, label="edge: p = 0.9, kept channels ×10"),
        _dropout_case(rng, 1, 1, 6, 2, 0.5, u=torch.tensor([[0.1]]), label="edge: the only channel is dropped"),
    ]
    while len(cases) < n:
        cases.append(
            _dropout_case(
                rng, int(rng.integers(1, 5)), int(rng.integers(1, 9)), int(rng.integers(1, 7)), int(rng.integers(1, 7)),
                float(rng.choice([0.1, 0.2, 0.5, 0.75])), training=bool(rng.random() < 0.85),
            )
        )
    return cases[:n]


_DROP_RNG = np.random.default_rng(11)

register(
    Exercise(
        id="dropout2d_forward",
        lesson=LESSON,
        name="dropout2d_forward",
        points=2,
        reference=dropout2d_forward,
        public_cases=(
            _dropout_case(_DROP_RNG, 2, 4, 3, 3, 0.5, label="p = 0.5, training"),
            _dropout_case(_DROP_RNG, 1, 8, 2, 2, 0.1, label="p = 0.1, training"),
        ),
        make_cases=_dropout_cases,
        run=_call_on_copies,
        rtol=1e-5,
        atol=1e-6,
        n_cases=14,
        title="Dropout2d from a given N×C array of uniform numbers: drop whole channels where u < p, scale the rest by 1/(1-p).",
        hints=(
            'A whole channel is dropped or kept: the mask has one entry per image and channel. Which entries of u mean drop?',
            "Make the mask cover every pixel of its channel by broadcasting, and scale what is kept so that each value's expectation does not change.",
            'In evaluation mode nothing is dropped and nothing is scaled.',
        ),
        forbidden=(
            'torch.nn.functional.dropout',
            'torch.nn.functional.dropout1d',
            'torch.nn.functional.dropout2d',
            'torch.nn.functional.dropout3d',
            'torch.nn.functional.alpha_dropout',
            'torch.nn.functional.feature_alpha_dropout',
            'torch.dropout',
            'torch.feature_dropout',
            'torch.nn.Dropout.forward',
            'torch.nn.Dropout2d.forward',
            'torch.nn.Dropout1d.forward',
            'torch.nn.Dropout3d.forward',
        ),
    )
)
