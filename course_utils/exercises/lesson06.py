"""Lesson 06's exercises: the flatten size, building TinyCNN, one training step."""
from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models import TinyCNN
from .core import Case, Exercise
from .registry import register

LESSON = "06_tinycnn_cifar10"

__all__ = ["flatten_size", "train_step", "run_model", "run_train_step"]


# --------------------------------------------------------------------------------------------
# flatten_size
# --------------------------------------------------------------------------------------------


def flatten_size(channels: int, height: int, width: int, num_pools: int) -> int:
    """Reference: numbers left per image after ``num_pools`` blocks of (3×3 conv, padding 1) → 2×2 max pool.

    The convolutions keep the size; each pool halves it, rounding down.

    Parameters
    ----------
    channels : int
        Channels of the last convolution.
    height, width : int
        Input image size.
    num_pools : int
        How many ``MaxPool2d(2)`` layers the image went through.

    Returns
    -------
    int
        ``channels * h * w`` of the last feature map, what ``nn.Flatten`` hands to the linear layer.

    Examples
    --------
    >>> flatten_size(64, 32, 32, 2)
    4096
    """
    h, w = height, width
    for _ in range(num_pools):
        h, w = h // 2, w // 2
    return channels * h * w


def _flatten_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case((64, 33, 33, 2), label="edge: odd size, the pools round down (33 → 16 → 8)"),
        Case((16, 8, 8, 3), label="edge: down to a 1×1 map"),
        Case((10, 32, 24, 2), label="edge: non-square input"),
        Case((128, 7, 5, 0), label="edge: no pooling at all"),
        Case((1, 31, 64, 4), label="edge: one channel, 31 rounds down to 1 after 4 pools"),
        Case((3, 2, 3, 1), label="edge: 3 → 1 after one pool"),
    ]
    while len(cases) < n:
        pools = int(rng.integers(0, 6))
        smallest = 2**pools
        cases.append(
            Case(
                (
                    int(rng.choice([8, 16, 32, 64, 128, 256])),
                    int(rng.integers(smallest, 257)),
                    int(rng.integers(smallest, 257)),
                    pools,
                ),
                label="random",
            )
        )
    return cases[:n]


register(
    Exercise(
        id="flatten_size",
        lesson=LESSON,
        name="flatten_size",
        points=1,
        reference=flatten_size,
        public_cases=(
            Case((64, 32, 32, 2), label="TinyCNN on CIFAR-10: 64·8·8"),
            Case((32, 28, 28, 1), label="one block on a 28×28 image"),
            Case((64, 96, 64, 3), label="three blocks on a 96×64 image"),
        ),
        make_cases=_flatten_cases,
        n_cases=20,
        title="How many numbers reach the linear layer after a stack of conv (padding 1) + 2×2 pool blocks.",
        hint=(
            "A 3×3 convolution with padding 1 keeps H and W; every MaxPool2d(2) halves them, rounding "
            "down (use //, once per pool). Multiply channels × height × width at the end."
        ),
    )
)


# --------------------------------------------------------------------------------------------
# TinyCNN
# --------------------------------------------------------------------------------------------


def _fill_by_shape(params: list[torch.Tensor]) -> None:
    # Each parameter gets values that depend only on its shape, so two models built from the same
    # layers compute the same function whatever order their layers were registered in.
    with torch.no_grad():
        for p in params:
            key = "x".join(str(s) for s in p.shape)
            gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
            fan_in = max(1, p[0].numel()) if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)


def _require_module(answer: Any, obj: Any, what: str) -> nn.Module:
    if not isinstance(obj, nn.Module):
        name = getattr(answer, "__name__", "the answer")
        raise TypeError(f"{name}{what} must build a torch.nn.Module, got {type(obj).__name__}")
    return obj


def run_model(answer: Any, case: Case) -> dict[str, Any]:
    """Build ``answer(num_classes)``, give it known weights and report plain facts about it.

    Returns the parameter count, the output shapes of its ``Conv2d`` and ``Linear`` layers in the
    order they run, the output shape, and the outputs on a seeded batch. Weights are filled by
    shape (see ``_fill_by_shape``), so any model with the seed's layers matches the reference.
    """
    num_classes, batch, input_seed = case.args
    model = _require_module(answer, answer(num_classes), f"({num_classes})")
    params = list(model.parameters())
    count = sum(p.numel() for p in params)
    _fill_by_shape(params)
    model.eval()
    shapes: list[dict[str, Any]] = []

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            shapes.append({"layer": type(module).__name__, "shape": list(output.shape)})

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(input_seed))
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return a tensor of scores, got {type(out).__name__}")
    return {
        "parameters": int(count),
        "layer_shapes": shapes,
        "output_shape": list(out.shape),
        "output": out.detach().float(),
    }


def _model_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case((1, 2, int(rng.integers(1 << 30))), label="edge: one class"),
        Case((2, 1, int(rng.integers(1 << 30))), label="edge: batch of one, two classes"),
        Case((100, 3, int(rng.integers(1 << 30))), label="edge: 100 classes (CIFAR-100)"),
    ]
    while len(cases) < n:
        cases.append(
            Case((int(rng.integers(2, 30)), int(rng.integers(1, 5)), int(rng.integers(1 << 30))), label="random")
        )
    return cases[:n]


register(
    Exercise(
        id="tinycnn",
        lesson=LESSON,
        name="TinyCNN",
        points=3,
        reference=TinyCNN,
        public_cases=(
            Case((10, 2, 0), label="CIFAR-10: 10 classes, batch of 2"),
            Case((5, 3, 1), label="5 classes, batch of 3"),
        ),
        make_cases=_model_cases,
        run=run_model,
        rtol=1e-4,
        atol=1e-5,
        n_cases=5,
        time_limit=10.0,
        title="The seed's TinyCNN as an nn.Module class taking num_classes; 3×32×32 images in, N×num_classes scores out.",
        hint=(
            "features: Conv2d(3, 32, 3, padding=1) → ReLU → MaxPool2d(2) → Conv2d(32, 64, 3, padding=1) → "
            "ReLU → MaxPool2d(2); classifier: Flatten → Linear(64 * 8 * 8, num_classes). The check compares "
            "the parameter count, each conv/linear layer's output shape and the outputs with known weights."
        ),
    )
)


# --------------------------------------------------------------------------------------------
# train_step
# --------------------------------------------------------------------------------------------


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Reference: one step of gradient descent on one batch; returns the batch's loss before the step.

    Parameters
    ----------
    model : nn.Module
    optimizer : torch.optim.Optimizer
        Built on ``model.parameters()``.
    images : torch.Tensor
        N×C×H×W floats.
    labels : torch.Tensor
        N class indices.

    Returns
    -------
    float
        The mean cross-entropy of the batch, as a Python float.
    """
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def _small_model(channels: int, size: int, num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * (size // 2) ** 2, num_classes),
    )


def _as_loss(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"train_step must return the loss as one number, got a tensor of shape {tuple(value.shape)}")
        return float(value.detach().item())
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"train_step must return the loss as a float (loss.item()), got {type(value).__name__}")
    return float(value)


def run_train_step(answer: Any, case: Case) -> dict[str, Any]:
    """Run ``answer`` for a few steps on a freshly built, seeded model; report losses and weights.

    Several steps in a row catch a missing ``zero_grad`` (gradients pile up from the second step
    on) as well as a missing ``backward`` or ``step`` (the weights do not move). Only plain data
    leaves: the losses and the final parameters.
    """
    seed, channels, size, num_classes, batch, lr, momentum, steps = case.args
    torch.manual_seed(seed)
    model = _small_model(channels, size, num_classes)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    losses = []
    model.train()
    for _ in range(steps):
        images = torch.randn(batch, 3, size, size, generator=gen)
        labels = torch.randint(0, num_classes, (batch,), generator=gen)
        losses.append(_as_loss(answer(model, optimizer, images, labels)))
    return {
        "losses": losses,
        "parameters": [p.detach().clone() for p in model.parameters()],
    }


def _step_cases(rng: np.random.Generator, n: int) -> list[Case]:
    def draw_seed() -> int:
        return int(rng.integers(1 << 30))

    cases = [
        Case((draw_seed(), 4, 8, 10, 16, 0.1, 0.9, 3), label="edge: momentum 0.9 over 3 steps"),
        Case((draw_seed(), 2, 4, 2, 1, 0.5, 0.0, 2), label="edge: a batch of one image"),
        Case((draw_seed(), 3, 6, 7, 8, 0.05, 0.0, 1), label="edge: a single step"),
    ]
    while len(cases) < n:
        cases.append(
            Case(
                (
                    draw_seed(),
                    int(rng.integers(1, 6)),
                    int(rng.choice([4, 6, 8])),
                    int(rng.integers(2, 11)),
                    int(rng.integers(1, 17)),
                    float(rng.choice([0.01, 0.05, 0.1, 0.3])),
                    float(rng.choice([0.0, 0.5, 0.9])),
                    int(rng.integers(2, 5)),
                ),
                label="random",
            )
        )
    return cases[:n]


register(
    Exercise(
        id="train_step",
        lesson=LESSON,
        name="train_step",
        points=3,
        reference=train_step,
        public_cases=(
            Case((0, 4, 8, 10, 8, 0.1, 0.0, 2), label="two plain SGD steps on a fresh model"),
            Case((1, 4, 8, 10, 8, 0.1, 0.9, 3), label="three steps with momentum"),
        ),
        make_cases=_step_cases,
        run=run_train_step,
        rtol=1e-4,
        atol=1e-5,
        n_cases=8,
        time_limit=10.0,
        title="One training step: zero_grad, forward, cross-entropy loss, backward, step; return the loss as a float.",
        hint=(
            "optimizer.zero_grad(); loss = F.cross_entropy(model(images), labels); loss.backward(); "
            "optimizer.step(); return loss.item(). The check runs several steps in a row on a fresh model "
            "and compares the losses and the weights afterwards, so a missing zero_grad shows from step 2 on."
        ),
    )
)
