"""How the built-in exercises call a learner's answer: the ``run`` adapters, and nothing else.

The grading worker imports this module inside the sandbox (``Exercise.run`` is sent to it as
``"course_utils.exercises.adapters:<name>"``), while the lesson modules ``lessonNN.py``, which hold
the references and the case generators, are hidden there. So this module must never hold a
reference, an expected value or a case generator, and must never import a lesson module.

Every adapter takes ``(answer, case)`` and returns what the answer produced, or plain facts about
it (a model's parameter count, its outputs on seeded inputs), which the grader then compares with
the same adapter applied to the reference outside the sandbox.
"""
from __future__ import annotations

import copy
import zlib
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .core import Case

__all__ = [
    "call_on_copies",
    "call_on_copy",
    "call_or_value_error",
    "run_head",
    "fill_by_shape",
    "require_module",
    "run_model",
    "small_model",
    "as_loss",
    "run_train_step",
    "eval_model",
    "as_number",
    "run_evaluate",
    "run_design",
    "run_cam",
]


# --------------------------------------------------------------------------------------------
# Lessons 01, 03, 04, 05, 07: plain calls on copies of the tensors
# --------------------------------------------------------------------------------------------


def call_on_copies(answer: Callable[..., Any], case: Case) -> Any:
    """Call ``answer`` on clones of the case's tensor arguments (positional and keyword).

    A learner's function that pads, scales or updates its input in place (running statistics
    often are) must not change the tensors the reference or the next case sees. Imported by the
    grading worker inside the sandbox.

    Parameters
    ----------
    answer : callable
        The learner's function (or the reference).
    case : Case
        Its arguments; tensors are cloned, anything else is passed as it is.

    Returns
    -------
    Any
        What ``answer`` returned.

    Examples
    --------
    >>> import torch
    >>> x = torch.ones(2)
    >>> call_on_copies(lambda t: t.mul_(3), Case((x,))).tolist(), x.tolist()
    ([3.0, 3.0], [1.0, 1.0])
    """
    args = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in case.args)
    kwargs = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in dict(case.kwargs).items()}
    return answer(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# Lesson 02: deep copies
# --------------------------------------------------------------------------------------------


def call_on_copy(answer: Callable[..., Any], case: Case) -> Any:
    """Call ``answer`` on deep copies of the case's arguments.

    A learner's function that pops from the list of layers must not change the next call's input.
    Imported by the grading worker inside the sandbox.

    Parameters
    ----------
    answer : callable
        The learner's function (or the reference).
    case : Case
        Its arguments, deep-copied for this call.

    Returns
    -------
    Any
        What ``answer`` returned.

    Examples
    --------
    >>> layers = [1, 2]
    >>> call_on_copy(lambda xs: xs.pop(), Case((layers,))), layers
    (2, [1, 2])
    """
    return answer(*copy.deepcopy(tuple(case.args)), **copy.deepcopy(dict(case.kwargs)))


def call_or_value_error(answer: Callable[..., Any], case: Case) -> dict[str, Any]:
    """Like :func:`call_on_copy`, but says whether the answer returned or raised ``ValueError``.

    For exercises whose contract is "raise ValueError when there is no answer" (lesson 02's
    ``design_conv``): the result is ``{"returned": value}`` or ``{"raised": "ValueError"}``, so a
    comparison names the difference ("missing ['raised']") without showing an expected value. Any
    other exception still propagates and is reported as an error. Imported by the grading worker
    inside the sandbox.

    Examples
    --------
    >>> call_or_value_error(lambda n: int(n), Case(("x",)))
    {'raised': 'ValueError'}
    >>> call_or_value_error(lambda n: int(n), Case(("7",)))
    {'returned': 7}
    """
    try:
        return {"returned": call_on_copy(answer, case)}
    except ValueError:
        return {"raised": "ValueError"}


# --------------------------------------------------------------------------------------------
# Lesson 05: a GAP classifier head
# --------------------------------------------------------------------------------------------


def run_head(answer: Any, case: Case) -> dict[str, Any]:
    """Build the head, give it known weights, and report its size and its outputs on two input sizes.

    Parameters are filled in ``parameters()`` order with one fixed sequence of numbers, so any head
    made of a C→K weight followed by a K bias (``nn.Linear``, or a 1×1 ``nn.Conv2d``) computes the
    same function as the reference; only plain data leaves this function. Imported by the grading
    worker inside the sandbox.

    Parameters
    ----------
    answer : callable
        ``answer(in_channels, num_classes)`` builds an ``nn.Module``.
    case : Case
        ``(in_channels, num_classes, batch, (h1, w1), (h2, w2))``.

    Returns
    -------
    dict
        ``parameters``, ``output_shapes`` and ``outputs`` (the two output tensors).

    Examples
    --------
    >>> from torch import nn
    >>> class Head(nn.Module):
    ...     def __init__(self, c, k):
    ...         super().__init__()
    ...         self.fc = nn.Linear(c, k)
    ...     def forward(self, x):
    ...         return self.fc(x.mean(dim=(2, 3)))
    >>> run_head(Head, Case((4, 3, 2, (5, 5), (1, 1))))["output_shapes"]
    [[2, 3], [2, 3]]
    """
    in_channels, num_classes, batch, (h1, w1), (h2, w2) = case.args
    torch.manual_seed(0)
    head = answer(in_channels, num_classes)
    if not isinstance(head, nn.Module):
        raise TypeError(f"{getattr(answer, '__name__', 'the answer')}(...) must build an nn.Module, got {type(head).__name__}")
    params = list(head.parameters())
    count = sum(p.numel() for p in params)
    values = torch.linspace(-1.0, 1.0, max(count, 1), dtype=torch.float32).sin()
    start = 0
    with torch.no_grad():
        for p in params:
            p.copy_(values[start : start + p.numel()].reshape(p.shape))
            start += p.numel()
    head.eval()
    g = torch.Generator().manual_seed(in_channels * 1000 + num_classes)
    x1 = torch.randn(batch, in_channels, h1, w1, generator=g)
    x2 = torch.randn(batch, in_channels, h2, w2, generator=g)
    with torch.no_grad():
        y1, y2 = head(x1), head(x2)
    return {
        "parameters": int(count),
        "output_shapes": [list(y1.shape), list(y2.shape)],
        "outputs": [y1, y2],
    }


# --------------------------------------------------------------------------------------------
# Lesson 06: TinyCNN, one training step, evaluating a model
# --------------------------------------------------------------------------------------------


def fill_by_shape(params: list[torch.Tensor]) -> None:
    """Give each parameter values that depend only on its shape (seeded by the shape's CRC-32).

    Two models built from the same layers then compute the same function whatever order their
    layers were registered in. Used by :func:`run_model` inside the grading sandbox.

    Parameters
    ----------
    params : list of torch.Tensor
        The parameters, overwritten in place.

    Returns
    -------
    None

    Examples
    --------
    >>> a, b = torch.zeros(2, 3), torch.ones(2, 3)
    >>> fill_by_shape([a, b]); torch.equal(a, b)
    True
    """
    with torch.no_grad():
        for p in params:
            key = "x".join(str(s) for s in p.shape)
            gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
            fan_in = max(1, p[0].numel()) if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)


def require_module(answer: Any, obj: Any, what: str) -> nn.Module:
    """Return ``obj`` if it is an ``nn.Module``, else raise a ``TypeError`` naming ``answer``.

    Used by the lesson 06 adapters inside the grading sandbox.

    Parameters
    ----------
    answer : callable
        The learner's builder, named in the message.
    obj : Any
        What it built.
    what : str
        The call as written in the message, e.g. ``"(10)"``.

    Returns
    -------
    torch.nn.Module
        ``obj`` itself.

    Examples
    --------
    >>> require_module(nn.ReLU, nn.ReLU(), "()")
    ReLU()
    """
    if not isinstance(obj, nn.Module):
        name = getattr(answer, "__name__", "the answer")
        raise TypeError(f"{name}{what} must build a torch.nn.Module, got {type(obj).__name__}")
    return obj


def run_model(answer: Any, case: Case) -> dict[str, Any]:
    """Build ``answer(num_classes)``, give it known weights and report plain facts about it.

    Returns the parameter count, the output shapes of its ``Conv2d`` and ``Linear`` layers in the
    order they run, the output shape, and the outputs on a seeded batch. Weights are filled by
    shape (see :func:`fill_by_shape`), so any model with the seed's layers matches the reference.
    Imported by the grading worker inside the sandbox.

    Parameters
    ----------
    answer : callable
        ``answer(num_classes)`` builds the model.
    case : Case
        ``(num_classes, batch, input_seed)``.

    Returns
    -------
    dict
        ``parameters``, ``layer_shapes``, ``output_shape`` and ``output``.

    Examples
    --------
    >>> from course_utils.models import TinyCNN
    >>> run_model(TinyCNN, Case((10, 2, 0)))["output_shape"]
    [2, 10]
    """
    num_classes, batch, input_seed = case.args
    model = require_module(answer, answer(num_classes), f"({num_classes})")
    params = list(model.parameters())
    count = sum(p.numel() for p in params)
    fill_by_shape(params)
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


def small_model(channels: int, size: int, num_classes: int) -> nn.Module:
    """The small conv net :func:`run_train_step` trains: conv, ReLU, 2×2 max pool, linear.

    Parameters
    ----------
    channels, size, num_classes : int
        Conv channels, input height and width, and classes.

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> small_model(4, 8, 3)(torch.zeros(1, 3, 8, 8)).shape
    torch.Size([1, 3])
    """
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * (size // 2) ** 2, num_classes),
    )


def _one_number(value: Any, must: str, advice: str = "") -> float:
    """``value`` as a float if it is one number (float, NumPy scalar, one-element tensor); else a
    ``TypeError`` that starts with ``must`` ("train_step must return the loss") and ends with ``advice``."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"{must} as one number, got a tensor of shape {tuple(value.shape)}")
        return float(value.detach().item())
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{must} as a float{advice}, got {type(value).__name__}")
    return float(value)


def as_loss(value: Any) -> float:
    """The loss ``train_step`` returned, as a float; a ``TypeError`` for anything but one number.

    Parameters
    ----------
    value : Any
        A float, a NumPy scalar or a one-element tensor.

    Returns
    -------
    float

    Examples
    --------
    >>> as_loss(torch.tensor(0.5))
    0.5
    """
    return _one_number(value, "train_step must return the loss", " (loss.item())")


def run_train_step(answer: Any, case: Case) -> dict[str, Any]:
    """Run ``answer`` for a few steps on a freshly built, seeded model; report losses and weights.

    Several steps in a row catch a missing ``zero_grad`` (gradients pile up from the second step
    on) as well as a missing ``backward`` or ``step`` (the weights do not move). Only plain data
    leaves: the losses and the final parameters. Imported by the grading worker inside the sandbox.

    Parameters
    ----------
    answer : callable
        ``answer(model, optimizer, images, labels)`` takes one step and returns the loss.
    case : Case
        ``(seed, channels, size, num_classes, batch, lr, momentum, steps)``.

    Returns
    -------
    dict
        ``losses`` (one float per step) and ``parameters`` (the final tensors).

    Examples
    --------
    >>> import torch.nn.functional as F
    >>> def step(model, opt, x, y):
    ...     opt.zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward(); opt.step()
    ...     return loss.item()
    >>> len(run_train_step(step, Case((0, 2, 4, 3, 4, 0.1, 0.0, 2)))["losses"])
    2
    """
    seed, channels, size, num_classes, batch, lr, momentum, steps = case.args
    torch.manual_seed(seed)
    model = small_model(channels, size, num_classes)
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
        losses.append(as_loss(answer(model, optimizer, images, labels)))
    return {
        "losses": losses,
        "parameters": [p.detach().clone() for p in model.parameters()],
    }


def eval_model(channels: int, num_classes: int) -> nn.Module:
    """The model :func:`run_evaluate` evaluates: conv, BatchNorm, ReLU, Dropout, GAP, linear.

    BatchNorm and Dropout make the numbers depend on the mode: train mode uses the batch's
    statistics and drops channels, so an answer that forgets ``model.eval()`` gets other numbers.

    Parameters
    ----------
    channels, num_classes : int
        Conv channels and classes; inputs have 3 channels.

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> eval_model(4, 3).eval()(torch.zeros(2, 3, 8, 8)).shape
    torch.Size([2, 3])
    """
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes),
    )


def as_number(value: Any, what: str) -> float:
    """One of the numbers ``evaluate`` returned, as a float; a ``TypeError`` naming ``what`` otherwise.

    Parameters
    ----------
    value : Any
        A float, a NumPy scalar or a one-element tensor.
    what : str
        ``"loss"`` or ``"accuracy"``, for the message.

    Returns
    -------
    float

    Examples
    --------
    >>> as_number(np.float32(0.25), "accuracy")
    0.25
    """
    return _one_number(value, f"evaluate must return the {what}")


def run_evaluate(answer: Any, case: Case) -> dict[str, Any]:
    """Call ``answer`` on a seeded model with BatchNorm and Dropout; report the numbers and the mode facts.

    A forward hook notes, at every forward pass, whether the model was in training mode and whether
    gradients were being recorded. Only plain data leaves: the loss, the accuracy, whether every
    forward pass ran in eval mode without gradients, whether the model's mode was restored, and
    whether BatchNorm's running statistics were left untouched. Imported by the grading worker
    inside the sandbox.

    Parameters
    ----------
    answer : callable
        ``answer(model, images, labels, batch_size)`` returns ``(loss, accuracy)``.
    case : Case
        ``(seed, n, batch_size, start_training, channels, num_classes)``.

    Returns
    -------
    dict
        The loss, the accuracy and four booleans about modes and running statistics.

    Examples
    --------
    >>> def evaluate(model, images, labels, batch_size):
    ...     model.eval()
    ...     with torch.no_grad():
    ...         scores = model(images)
    ...     return 0.0, (scores.argmax(1) == labels).float().mean().item()
    >>> run_evaluate(evaluate, Case((0, 10, 4, False, 4, 3)))["forward passes in eval mode"]
    True
    """
    seed, n, batch_size, start_training, channels, num_classes = case.args
    torch.manual_seed(seed)
    model = eval_model(channels, num_classes)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn = model[1]
        bn.running_mean.copy_(torch.randn(channels, generator=gen) * 0.3)
        bn.running_var.copy_(torch.rand(channels, generator=gen) + 0.5)
    images = torch.randn(n, 3, 8, 8, generator=gen) * 2 + 0.5
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    model.train(start_training)
    before = (bn.running_mean.clone(), bn.running_var.clone())
    passes: list[tuple[bool, bool]] = []
    handle = model.register_forward_hook(lambda m, i, o: passes.append((m.training, torch.is_grad_enabled())))
    try:
        result = answer(model, images, labels, batch_size)
    finally:
        handle.remove()
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise TypeError(f"evaluate must return (loss, accuracy), got {type(result).__name__}")
    loss, acc = (as_number(v, what) for v, what in zip(result, ("loss", "accuracy")))
    return {
        "loss": loss,
        "accuracy": acc,
        "forward passes in eval mode": bool(passes) and all(not training for training, _ in passes),
        "forward passes without gradients": bool(passes) and all(not grad for _, grad in passes),
        "mode restored afterwards": model.training == start_training,
        "running statistics untouched": torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1]),
    }


# --------------------------------------------------------------------------------------------
# Lesson 06: designing a compact CNN (properties, not one right answer)
# --------------------------------------------------------------------------------------------


def _verdict(ok: bool, otherwise: str) -> str:
    """``"yes"`` when ``ok``, else ``"no: " + otherwise``: a fact that reads well in a failed check."""
    return "yes" if ok else f"no: {otherwise}"


def run_design(answer: Any, case: Case) -> dict[str, Any]:
    """Build ``answer(num_classes)`` and report whether it meets a design brief, as plain facts.

    Many networks meet the same brief, so nothing is compared with a reference's weights or
    outputs: the report holds the shapes the model produces for this case's batch, and one
    ``"yes"`` or ``"no: <what was found>"`` per requirement. The brief (parameter budget, shape
    after ``features``, least number of ``Conv2d`` layers) travels in the case, so this module holds
    no expected value. When ``learn_steps`` is positive, the model built for 4 classes also trains
    for that many Adam steps (learning rate 0.003) on 16 seeded images whose class is a fixed
    pattern plus noise, and must then classify at least 12 of them right in eval mode. Imported by
    the grading worker inside the sandbox.

    Parameters
    ----------
    answer : callable
        ``answer(num_classes)`` builds an ``nn.Module`` with ``features`` and ``classifier``.
    case : Case
        ``(num_classes, batch, seed, learn_steps, budget, feature_shape, min_convs)``; the budget
        applies to the model built for 10 classes.

    Returns
    -------
    dict
        ``output shape``, ``shape after features``, ``forward is classifier(features(x))``,
        the budget and conv-layer verdicts and, when it trains, ``learns a tiny task``.

    Examples
    --------
    >>> def net(num_classes=10):
    ...     m = nn.Module()
    ...     m.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(8))
    ...     m.classifier = nn.Sequential(nn.Flatten(), nn.Linear(8 * 4 * 4, num_classes))
    ...     m.forward = lambda x: m.classifier(m.features(x))
    ...     return m
    >>> facts = run_design(net, Case((10, 2, 0, 0, 40_000, [8, 4, 4], 3)))
    >>> facts["output shape"], facts["at least 3 Conv2d layers"]
    ([2, 10], 'no: 1 found')
    """
    num_classes, batch, seed, learn_steps, budget, feature_shape, min_convs = case.args
    torch.manual_seed(seed)
    model = require_module(answer, answer(num_classes), f"({num_classes})")
    for part in ("features", "classifier"):
        if not isinstance(getattr(model, part, None), nn.Module):
            raise TypeError(f"the model needs an attribute `{part}` that is an nn.Module "
                            f"(self.{part} = nn.Sequential(...)), got {type(getattr(model, part, None)).__name__}")
    sized = model if num_classes == 10 else require_module(answer, answer(10), "(10)")
    count = sum(p.numel() for p in sized.parameters())
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    model.eval()
    with torch.no_grad():
        out = model(x)
        maps = model.features(x)
        if not isinstance(out, torch.Tensor) or not isinstance(maps, torch.Tensor):
            raise TypeError("the model and its features must return tensors, got "
                            f"{type(out).__name__} and {type(maps).__name__}")
        composed = model.classifier(maps)
    same = isinstance(composed, torch.Tensor) and composed.shape == out.shape and bool(
        torch.allclose(composed.float(), out.float(), rtol=1e-4, atol=1e-5))
    facts: dict[str, Any] = {
        "output shape": list(out.shape),
        "shape after features": list(maps.shape),
        "forward is classifier(features(x))": same,
        f"at most {budget:,} parameters (10 classes)": _verdict(count <= budget, f"{count:,} parameters"),
        f"at least {min_convs} Conv2d layers": _verdict(convs >= min_convs, f"{convs} found"),
    }
    if learn_steps > 0:
        right, first, last = _learn_tiny_task(answer, seed, learn_steps)
        facts["learns a tiny task"] = _verdict(
            right >= 12, f"{right} of 16 images right after {learn_steps} steps (loss {first:.2f} -> {last:.2f})")
    return facts


def _learn_tiny_task(answer: Any, seed: int, steps: int) -> tuple[int, float, float]:
    """Train ``answer(4)`` on 16 seeded images of 4 classes (a fixed pattern per class plus noise).

    Returns how many of the 16 it then classifies right in eval mode, and the first and last
    training losses.
    """
    gen = torch.Generator().manual_seed(seed + 1)
    patterns = torch.randn(4, 3, 32, 32, generator=gen)
    labels = torch.arange(16) % 4
    images = patterns[labels] + torch.randn(16, 3, 32, 32, generator=gen)
    torch.manual_seed(seed)
    model = require_module(answer, answer(4), "(4)")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    # One thread: a batch of 16 small images gains nothing from more, and on a busy machine
    # several threads fighting for cores made this take ten times longer.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.train()
        losses = []
        for _ in range(steps):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        model.eval()
        with torch.no_grad():
            right = int((model(images).argmax(1) == labels).sum())
    finally:
        torch.set_num_threads(threads)
    return right, losses[0], losses[-1]


# --------------------------------------------------------------------------------------------
# Lesson 05: a class activation map, tested on a real GAP head
# --------------------------------------------------------------------------------------------


def _cam_check_bias(num_classes: int) -> torch.Tensor:
    # The bias of run_cam's own GAP head: fixed, different for every class, never zero.
    return torch.linspace(-1.5, 2.0, num_classes) + 0.25


def run_cam(answer: Callable[..., Any], case: Case) -> dict[str, Any]:
    """Call a CAM answer and test it on a real GAP head: ``{"cam": map, "mean + bias - logit": r}``.

    ``case.args`` is ``(features C×H×W, fc_weight K×C, cls)``. The adapter builds
    ``AdaptiveAvgPool2d(1) -> Flatten -> Linear`` with that weight and its own bias, runs it on the
    features, and records ``mean(map) + bias[cls] - logit[cls]``: about 0 for a right map. It is
    ``None`` when the answer is not an H×W tensor or array (the map's own comparison then says so).
    Imported by the grading worker inside the sandbox.
    """
    features, fc_weight, cls = case.args
    cam = answer(features.clone(), fc_weight.clone(), cls)
    num_classes, channels = fc_weight.shape
    bias = _cam_check_bias(num_classes)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, num_classes))
    with torch.no_grad():
        head[2].weight.copy_(fc_weight)
        head[2].bias.copy_(bias)
        logit = float(head(features[None])[0, cls])
    residual = None
    try:
        values = np.asarray(cam.detach().cpu() if isinstance(cam, torch.Tensor) else cam, dtype=np.float64)
        if values.shape == tuple(features.shape[1:]):
            residual = float(values.mean()) + float(bias[cls]) - logit
    except (TypeError, ValueError, RuntimeError):
        residual = None
    return {"cam": cam, "mean + bias - logit": residual}
