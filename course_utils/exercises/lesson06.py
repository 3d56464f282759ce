"""Lesson 06's exercises: designing a compact CNN within a budget, one training step, evaluating a model (mode handling graded)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# The adapters live in adapters.py, which the grading sandbox may import; this module it hides.
from .adapters import eval_model as _eval_model, run_design, run_evaluate, run_model, run_train_step  # noqa: F401
from .core import Case, Exercise
from .registry import register

LESSON = "06_tinycnn_cifar10"

__all__ = ["CompactCNN", "train_step", "evaluate_model", "run_design", "run_model", "run_train_step", "run_evaluate"]


# --------------------------------------------------------------------------------------------
# compact_cnn: a design task (many right answers, checked by properties)
# --------------------------------------------------------------------------------------------

# The brief the prompt states: at most BUDGET parameters for 10 classes, `features` ending in
# FEATURE_SHAPE, at least MIN_CONVS convolutions. TinyCNN (60,362 parameters, 64×8×8) meets none of it.
BUDGET = 40_000
FEATURE_SHAPE = (64, 4, 4)
MIN_CONVS = 3
LEARN_STEPS = 20


class CompactCNN(nn.Module):
    """Reference: one network that meets the lesson 06 design brief (33,834 parameters for 10 classes).

    Three blocks of 3×3 convolution (padding 1), ReLU and 2×2 max pooling take 3×32×32 to 64×4×4
    (channels 3 → 16 → 32 → 64), then flatten and one linear layer. Other designs pass too.

    Parameters
    ----------
    num_classes : int
        Number of class scores.

    Examples
    --------
    >>> m = CompactCNN()
    >>> tuple(m.features(torch.zeros(2, 3, 32, 32)).shape), sum(p.numel() for p in m.parameters())
    ((2, 64, 4, 4), 33834)
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 4 * 4, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores, N×num_classes, for images N×3×32×32."""
        return self.classifier(self.features(x))


def _design_case(num_classes: int, batch: int, seed: int, learn: bool, label: str) -> Case:
    return Case((num_classes, batch, seed, LEARN_STEPS if learn else 0, BUDGET, list(FEATURE_SHAPE), MIN_CONVS),
                label=label)


def _design_cases(rng: np.random.Generator, n: int) -> list[Case]:
    def draw_seed() -> int:
        return int(rng.integers(1 << 30))

    cases = [
        _design_case(10, int(rng.integers(2, 9)), draw_seed(), True, "edge: trains for 20 steps on a tiny task"),
        _design_case(2, 1, draw_seed(), False, "edge: a batch of one image, two classes"),
        _design_case(100, int(rng.integers(2, 6)), draw_seed(), False, "edge: 100 classes (CIFAR-100)"),
    ]
    while len(cases) < n:
        cases.append(_design_case(int(rng.integers(2, 20)), int(rng.integers(1, 17)), draw_seed(), False, "random"))
    return cases[:n]


register(
    Exercise(
        id="compact_cnn",
        lesson=LESSON,
        name="CompactCNN",
        points=3,
        reference=CompactCNN,
        public_cases=(
            _design_case(10, 2, 0, True, "10 classes, batch of 2, and 20 training steps on a tiny task"),
            _design_case(5, 3, 1, False, "5 classes, batch of 3"),
        ),
        make_cases=_design_cases,
        run=run_design,
        rtol=1e-4,
        atol=1e-5,
        n_cases=5,
        time_limit=30.0,
        title=("Design CompactCNN(num_classes): features turn N×3×32×32 into N×64×4×4 with at least 3 Conv2d "
               "layers, classifier gives N×num_classes scores, at most 40,000 parameters, and it learns."),
        hints=(
            "Work backwards from the brief: 32 must become 4. How many times must the height be halved, "
            "and which layers halve it?",
            "Count before you build: lesson 03 counted a convolution's parameters and lesson 05 a linear "
            "head's. print(trace(CompactCNN(), (1, 3, 32, 32))) shows, layer by layer, where your budget goes.",
            "Parameters grow with the product of neighbouring widths, so the widest layers cost the most. "
            "If you are over budget, make the earlier convolutions narrower (only the last one must "
            "output 64 channels), and count the head too: a flatten head reads every value of the final "
            "maps, while lesson 05's global average pooling reads one per channel.",
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
