"""Lesson 06's exercises: building TinyCNN, one training step, evaluating a model (mode handling graded)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models import TinyCNN
# The adapters live in adapters.py, which the grading sandbox may import; this module it hides.
from .adapters import eval_model as _eval_model, run_evaluate, run_model, run_train_step  # noqa: F401
from .core import Case, Exercise
from .registry import register

LESSON = "06_tinycnn_cifar10"

__all__ = ["train_step", "evaluate_model", "run_model", "run_train_step", "run_evaluate"]


# --------------------------------------------------------------------------------------------
# TinyCNN
# --------------------------------------------------------------------------------------------


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
        hints=(
            'Two blocks of convolution, ReLU and 2×2 max pooling, then a flatten and one linear layer.',
            'The convolutions are 3×3 with padding 1, so they keep H and W; they go from 3 to 32 and from 32 to 64 channels.',
            "Follow the shape of one image down to the linear layer: channels × height × width after the second pool; the check compares parameter count, layer output shapes and outputs with known weights.",
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
        hints=(
            'One training step has four moves: clear the old gradients, compute the loss, backpropagate, update the weights.',
            'Gradients add up across calls unless they are cleared; the check runs several steps in a row, so a missing clear shows from the second step on.',
            "Use the cross-entropy loss on the model's raw outputs, and return the loss as a Python float, not a tensor.",
        ),
    )
)


# --------------------------------------------------------------------------------------------
# evaluate: the evaluation half of a training loop (mode handling graded as well as the numbers)
# --------------------------------------------------------------------------------------------


def evaluate_model(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> tuple[float, float]:
    """Reference: mean cross-entropy and accuracy over all images, in eval mode, without gradients.

    Parameters
    ----------
    model : nn.Module
        Any classifier; its train/eval mode is put back as it was.
    images : torch.Tensor
        N×C×H×W floats, already normalized.
    labels : torch.Tensor
        N class indices.
    batch_size : int
        Images per forward pass; the last batch may be smaller.

    Returns
    -------
    (float, float)
        The loss averaged over the N images (not over batches) and the fraction classified correctly.

    Examples
    --------
    >>> m = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 2, 2))
    >>> loss, acc = evaluate_model(m, torch.zeros(3, 3, 2, 2), torch.tensor([0, 1, 1]), batch_size=2)
    >>> 0.0 <= acc <= 1.0 and m.training
    True
    """
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            xb, yb = images[start:start + batch_size], labels[start:start + batch_size]
            logits = model(xb)
            total_loss += F.cross_entropy(logits, yb, reduction="sum").item()
            correct += (logits.argmax(dim=1) == yb).sum().item()
    model.train(was_training)
    return total_loss / len(images), correct / len(images)


def _evaluate_cases(rng: np.random.Generator, n: int) -> list[Case]:
    def draw_seed() -> int:
        return int(rng.integers(1 << 30))

    cases = [
        Case((draw_seed(), 10, 4, True, 4, 3), label="edge: model in training mode, last batch smaller (4+4+2)"),
        Case((draw_seed(), 7, 7, False, 3, 5), label="edge: model already in eval mode must stay so"),
        Case((draw_seed(), 5, 1, True, 2, 2), label="edge: batches of one image"),
        Case((draw_seed(), 6, 64, True, 5, 4), label="edge: batch_size larger than the data"),
    ]
    while len(cases) < n:
        count = int(rng.integers(2, 40))
        # Mostly models in training mode: evaluate is usually called from inside a training loop.
        cases.append(Case((draw_seed(), count, int(rng.integers(1, count + 1)), bool(rng.random() < 0.75),
                           int(rng.integers(2, 7)), int(rng.integers(2, 11))), label="random"))
    return cases[:n]


register(
    Exercise(
        id="evaluate",
        lesson=LESSON,
        name="evaluate",
        points=3,
        reference=evaluate_model,
        public_cases=(
            Case((0, 12, 5, True, 4, 3), label="a model in training mode, batches of 5, 5 and 2"),
            Case((1, 8, 8, False, 3, 4), label="a model in eval mode, one batch"),
        ),
        make_cases=_evaluate_cases,
        run=run_evaluate,
        rtol=1e-4,
        atol=1e-5,
        n_cases=8,
        time_limit=10.0,
        title=("evaluate(model, images, labels, batch_size): mean loss and accuracy in eval mode, without "
               "gradients, batch by batch, putting the model's mode back afterwards."),
        hints=(
            "Two switches are involved and they are different: one changes how BatchNorm and Dropout "
            "behave, the other stops autograd from recording. Which does the check say you missed?",
            "Remember the model's mode before you change it (model.training) and set it back at the end; "
            "a model that arrived in eval mode must leave in eval mode.",
            "Average the loss over images, not over batches: the last batch can be smaller. Sum the "
            "per-image losses (reduction='sum') and the correct answers, then divide by the number of images.",
        ),
        forbidden=("course_utils.train.evaluate", "course_utils.train._evaluate_tensors", "course_utils.train.predict"),
    )
)
