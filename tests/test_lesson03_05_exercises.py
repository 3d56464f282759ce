"""Exercises of lessons 03-05: the reference passes, plausible wrong answers fail, cases are sound.

References are checked against PyTorch's own layers (not against themselves), every random case
the bank can draw is checked to be valid, and each wrong answer below is one a learner could
plausibly write.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.exercises.core import Case, compare
from course_utils.exercises.registry import exercises_for_lesson, get_exercise

SEEDS = [0, 1, 2, 12345]


def _cases(exercise, seed: int, n: int | None = None) -> list[Case]:
    return list(exercise.public_cases) + exercise.draw_cases(np.random.default_rng(seed), n)


def _score(exercise_id: str, answer, seed: int = 0, n: int | None = None) -> tuple[int, int, list[str]]:
    """Grade ``answer`` the way the grader does: plain data out of ``run``, compared to the reference."""
    exercise = get_exercise(exercise_id)
    cases = _cases(exercise, seed, n)
    passed, reasons = 0, []
    for case in cases:
        expected = exercise.expected(case)
        try:
            got = exercise.produce(answer, case)
        except Exception as exc:  # a wrong answer may raise; that case earns nothing
            reasons.append(f"{case.label}: raised {type(exc).__name__}: {exc}")
            continue
        verdict = compare(expected, got, exercise.rtol, exercise.atol)
        if verdict.ok:
            passed += 1
        else:
            reasons.append(f"{case.label}: {verdict.reason}")
    return passed, len(cases), reasons


def _assert_full_marks(exercise_id: str, answer, seed: int = 0) -> None:
    passed, total, reasons = _score(exercise_id, answer, seed)
    assert passed == total, reasons[:3]


def _assert_fails(exercise_id: str, answer, seed: int = 0) -> list[str]:
    passed, total, reasons = _score(exercise_id, answer, seed)
    assert passed < total, f"a wrong answer to {exercise_id} passed all {total} cases"
    return reasons


# --------------------------------------------------------------------------------------------
# The bank itself
# --------------------------------------------------------------------------------------------


LESSONS = {
    "03_conv2d_in_pytorch": {"conv2d_forward", "conv2d_param_count", "pointwise_conv_matmul"},
    "04_pooling_and_activation": {"max_pool2d", "avg_pool2d", "stack_shapes"},
    "05_global_average_pooling": {"global_avg_pool", "head_param_counts", "gap_head"},
}


@pytest.mark.parametrize("lesson", sorted(LESSONS))
def test_each_lesson_registers_its_exercises(lesson):
    exercises = exercises_for_lesson(lesson)
    assert {e.id for e in exercises} == LESSONS[lesson]
    for e in exercises:
        assert e.points > 0 and e.title and e.hint
        assert e.public_cases, f"{e.id} shows the learner no public case"


ALL_IDS = sorted(set().union(*LESSONS.values()))


@pytest.mark.parametrize("exercise_id", ALL_IDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_random_cases_are_valid_and_reproducible(exercise_id, seed):
    exercise = get_exercise(exercise_id)
    first = exercise.draw_cases(np.random.default_rng(seed))
    second = exercise.draw_cases(np.random.default_rng(seed))
    assert len(first) == exercise.n_cases
    for a, b in zip(first, second):
        assert a.label == b.label
        # the same seed must give the same graded inputs, and the reference must accept every one
        assert compare(exercise.expected(a), exercise.expected(b)).ok
    labels = [c.label for c in first]
    assert any(label.startswith("edge") for label in labels), "no edge cases among the graded ones"


@pytest.mark.parametrize("exercise_id", ALL_IDS)
def test_small_n_still_returns_n_cases(exercise_id):
    exercise = get_exercise(exercise_id)
    assert len(exercise.draw_cases(np.random.default_rng(0), 2)) == 2
    assert len(exercise.draw_cases(np.random.default_rng(0), 40)) == 40


# --------------------------------------------------------------------------------------------
# Lesson 03
# --------------------------------------------------------------------------------------------


def conv2d_loops(x, weight, bias=None, stride=1, padding=0):
    """An independent, loop-based convolution (the textbook formula), written for the tests."""
    x = F.pad(x, (padding, padding, padding, padding))
    n, c, h, w = x.shape
    out_c, _, kh, kw = weight.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    out = torch.zeros(n, out_c, oh, ow, dtype=torch.float64)
    x64, w64 = x.double(), weight.double()
    for i in range(oh):
        for j in range(ow):
            window = x64[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = torch.einsum("ncuv,ocuv->no", window, w64)
    if bias is not None:
        out += bias.double().view(1, -1, 1, 1)
    return out.float()


@pytest.mark.parametrize("seed", SEEDS)
def test_conv2d_forward_reference_agrees_with_loops(seed):
    exercise = get_exercise("conv2d_forward")
    for case in _cases(exercise, seed):
        ours = exercise.reference(*case.args, **case.kwargs)
        loops = conv2d_loops(*case.args, **case.kwargs)
        assert ours.shape == loops.shape
        torch.testing.assert_close(ours, loops, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", SEEDS)
def test_conv2d_forward_independent_answer_gets_full_marks(seed):
    _assert_full_marks("conv2d_forward", conv2d_loops, seed)


def test_conv2d_forward_wrong_answers_fail():
    def ignores_padding(x, weight, bias=None, stride=1, padding=0):
        return conv2d_loops(x, weight, bias, stride, 0)

    def ignores_stride(x, weight, bias=None, stride=1, padding=0):
        return conv2d_loops(x, weight, bias, 1, padding)

    def true_convolution(x, weight, bias=None, stride=1, padding=0):
        # flips the kernel: a real convolution, not PyTorch's cross-correlation
        return conv2d_loops(x, weight.flip(-1, -2), bias, stride, padding)

    def crashes_without_bias(x, weight, bias=None, stride=1, padding=0):
        return conv2d_loops(x, weight, None, stride, padding) + bias.view(1, -1, 1, 1)

    def rounds_up(x, weight, bias=None, stride=1, padding=0):
        # ceil instead of floor for the number of windows: pads the input at the end
        extra = stride - 1
        return conv2d_loops(F.pad(x, (0, extra, 0, extra)), weight, bias, stride, padding)

    for wrong in (ignores_padding, ignores_stride, true_convolution, crashes_without_bias, rounds_up):
        _assert_fails("conv2d_forward", wrong)
    reasons = _assert_fails("conv2d_forward", crashes_without_bias)
    assert any("bias is None" in r for r in reasons)


def test_conv2d_forward_answer_that_pads_in_place_does_not_corrupt_the_reference():
    def scales_input_in_place(x, weight, bias=None, stride=1, padding=0):
        x.mul_(2)
        return F.conv2d(x / 2, weight, bias, stride=stride, padding=padding)

    _assert_full_marks("conv2d_forward", scales_input_in_place)
    exercise = get_exercise("conv2d_forward")
    case = exercise.public_cases[0]
    before = case.args[0].clone()
    exercise.produce(scales_input_in_place, case)
    assert torch.equal(case.args[0], before)


def _count_with_pytorch(in_channels, out_channels, kernel_size, bias=True, groups=1):
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias, groups=groups)
    return sum(p.numel() for p in layer.parameters())


@pytest.mark.parametrize("seed", SEEDS)
def test_conv2d_param_count_reference_matches_pytorch_layers(seed):
    exercise = get_exercise("conv2d_param_count")
    for case in _cases(exercise, seed):
        assert exercise.reference(*case.args, **case.kwargs) == _count_with_pytorch(*case.args, **case.kwargs)
    _assert_full_marks("conv2d_param_count", _count_with_pytorch, seed)


def test_conv2d_param_count_wrong_answers_fail():
    def ignores_groups(in_channels, out_channels, kernel_size, bias=True, groups=1):
        return _count_with_pytorch(in_channels, out_channels, kernel_size, bias=bias)

    def square_kernel_only(in_channels, out_channels, kernel_size, bias=True, groups=1):
        k = kernel_size if isinstance(kernel_size, int) else kernel_size[0]
        return out_channels * (in_channels // groups) * k * k + (out_channels if bias else 0)

    def always_bias(in_channels, out_channels, kernel_size, bias=True, groups=1):
        return _count_with_pytorch(in_channels, out_channels, kernel_size, True, groups)

    def float_result(in_channels, out_channels, kernel_size, bias=True, groups=1):
        return out_channels * (in_channels / groups) * float(np.prod(np.broadcast_to(kernel_size, 2))) + (
            out_channels if bias else 0
        )

    for wrong in (ignores_groups, square_kernel_only, always_bias, float_result):
        _assert_fails("conv2d_param_count", wrong)


def _pointwise_by_conv(x, weight, bias=None):
    layer = nn.Conv2d(weight.shape[1], weight.shape[0], 1, bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight[:, :, None, None])
        if bias is not None:
            layer.bias.copy_(bias)
        return layer(x)


@pytest.mark.parametrize("seed", SEEDS)
def test_pointwise_conv_matmul_reference_matches_a_1x1_layer(seed):
    exercise = get_exercise("pointwise_conv_matmul")
    for case in _cases(exercise, seed):
        torch.testing.assert_close(exercise.reference(*case.args), _pointwise_by_conv(*case.args))

    def by_einsum(x, weight, bias=None):
        out = torch.einsum("nchw,oc->nohw", x, weight)
        return out if bias is None else out + bias.view(1, -1, 1, 1)

    _assert_full_marks("pointwise_conv_matmul", by_einsum, seed)


def test_pointwise_conv_matmul_wrong_answers_fail():
    def transposed_weight(x, weight, bias=None):
        # (weight works only when C_out == C_in, and then gives the wrong mixing)
        out = x.permute(0, 2, 3, 1) @ weight
        return (out if bias is None else out + bias).permute(0, 3, 1, 2)

    def wrong_axis_order(x, weight, bias=None):
        out = x.permute(0, 2, 3, 1) @ weight.T
        out = out if bias is None else out + bias
        return out.reshape(x.shape[0], weight.shape[0], x.shape[2], x.shape[3])  # reshape, not permute

    def bias_on_wrong_axis(x, weight, bias=None):
        out = torch.einsum("nchw,oc->nohw", x, weight)
        return out if bias is None else out + bias.view(1, 1, 1, -1)[..., : out.shape[-1]]

    reasons = _assert_fails("pointwise_conv_matmul", transposed_weight)
    assert reasons
    _assert_fails("pointwise_conv_matmul", wrong_axis_order)
    _assert_fails("pointwise_conv_matmul", bias_on_wrong_axis)


# --------------------------------------------------------------------------------------------
# Lesson 04
# --------------------------------------------------------------------------------------------


def _pool_loops(x, kernel_size, stride=None, reduce="max"):
    stride = kernel_size if stride is None else stride
    n, c, h, w = x.shape
    oh, ow = (h - kernel_size) // stride + 1, (w - kernel_size) // stride + 1
    out = torch.empty(n, c, oh, ow)
    for i in range(oh):
        for j in range(ow):
            window = x[:, :, i * stride : i * stride + kernel_size, j * stride : j * stride + kernel_size]
            flat = window.reshape(n, c, -1)
            out[:, :, i, j] = flat.amax(-1) if reduce == "max" else flat.double().mean(-1).float()
    return out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reduce", ["max", "avg"])
def test_pool_references_match_pytorch_layers_and_loops(seed, reduce):
    exercise = get_exercise(f"{reduce}_pool2d")
    layer_type = nn.MaxPool2d if reduce == "max" else nn.AvgPool2d
    for case in _cases(exercise, seed):
        x, k = case.args
        s = case.kwargs.get("stride")
        ours = exercise.reference(*case.args, **case.kwargs)
        torch.testing.assert_close(ours, layer_type(k, stride=s)(x))
        torch.testing.assert_close(ours, _pool_loops(x, k, s, reduce))
    _assert_full_marks(exercise.id, lambda x, k, stride=None: _pool_loops(x, k, stride, reduce), seed)


def test_max_pool2d_wrong_answers_fail():
    def running_max_from_zero(x, kernel_size, stride=None):
        return _pool_loops(x, kernel_size, stride, "max").clamp(min=0)

    def stride_one_by_default(x, kernel_size, stride=None):
        return _pool_loops(x, kernel_size, 1 if stride is None else stride, "max")

    def ignores_stride(x, kernel_size, stride=None):
        return _pool_loops(x, kernel_size, kernel_size, "max")

    def ceil_mode(x, kernel_size, stride=None):
        return F.max_pool2d(x, kernel_size, stride, ceil_mode=True)

    reasons = _assert_fails("max_pool2d", running_max_from_zero)
    assert any("negative" in r for r in reasons)
    for wrong in (stride_one_by_default, ignores_stride, ceil_mode):
        _assert_fails("max_pool2d", wrong)
    # max pooling is not average pooling
    _assert_fails("max_pool2d", lambda x, k, stride=None: F.avg_pool2d(x, k, stride))


def test_avg_pool2d_wrong_answers_fail():
    def sum_not_mean(x, kernel_size, stride=None):
        return _pool_loops(x, kernel_size, stride, "avg") * kernel_size * kernel_size

    def divides_by_kernel_once(x, kernel_size, stride=None):
        return _pool_loops(x, kernel_size, stride, "avg") * kernel_size

    for wrong in (sum_not_mean, divides_by_kernel_once):
        _assert_fails("avg_pool2d", wrong)
    _assert_fails("avg_pool2d", lambda x, k, stride=None: F.max_pool2d(x, k, stride))


def _shapes_with_pytorch(input_shape, layers):
    """Build the stack from real layers and run a zero tensor through it."""
    x = torch.zeros(*input_shape)
    shapes = []
    for layer in layers:
        if layer[0] == "conv":
            _, out_channels, k, s, p = layer
            x = nn.Conv2d(x.shape[1], out_channels, k, stride=s, padding=p)(x)
        elif layer[0] == "pool":
            _, k, s = layer
            x = nn.MaxPool2d(k, stride=s)(x)
        else:
            x = nn.ReLU()(x)
        shapes.append(tuple(x.shape))
    return shapes


@pytest.mark.parametrize("seed", SEEDS)
def test_stack_shapes_reference_matches_pytorch_layers(seed):
    exercise = get_exercise("stack_shapes")
    for case in _cases(exercise, seed):
        with torch.no_grad():
            assert exercise.reference(*case.args) == _shapes_with_pytorch(*case.args)


def test_stack_shapes_answers():
    def as_lists(input_shape, layers):
        return [list(s) for s in _shapes_with_pytorch(input_shape, layers)]

    with torch.no_grad():
        _assert_full_marks("stack_shapes", as_lists)

    def pool_keeps_channels_but_forgets_stride(input_shape, layers):
        n, c, h, w = input_shape
        out = []
        for layer in layers:
            if layer[0] == "conv":
                _, c, k, s, p = layer
                h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            elif layer[0] == "pool":
                h, w = h // layer[1], w // layer[1]
            out.append((n, c, h, w))
        return out

    def only_the_final_shape(input_shape, layers):
        return _shapes_with_pytorch(input_shape, layers)[-1]

    def true_division(input_shape, layers):
        return [(n, c, h * 1.0, w) for n, c, h, w in _shapes_with_pytorch(input_shape, layers)]

    with torch.no_grad():
        for wrong in (pool_keeps_channels_but_forgets_stride, only_the_final_shape, true_division):
            _assert_fails("stack_shapes", wrong)


def test_stack_shapes_reference_rejects_unknown_layers():
    with pytest.raises(ValueError, match="layers"):
        get_exercise("stack_shapes").reference((1, 3, 8, 8), [("dropout", 0.5)])


# --------------------------------------------------------------------------------------------
# Lesson 05
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_global_avg_pool(seed):
    exercise = get_exercise("global_avg_pool")
    for case in _cases(exercise, seed):
        (x,) = case.args
        torch.testing.assert_close(exercise.reference(x), nn.AdaptiveAvgPool2d(1)(x).flatten(1))
    _assert_full_marks("global_avg_pool", lambda x: x.mean(dim=(2, 3)), seed)

    wrong = {
        "keeps 1×1": lambda x: x.mean(dim=(2, 3), keepdim=True),
        "mean over everything but N": lambda x: x.mean(dim=(1, 2, 3)),
        "mean over H only, then the first column": lambda x: x.mean(dim=2)[..., 0],
        "max instead of mean": lambda x: x.amax(dim=(2, 3)),
        "sum instead of mean": lambda x: x.sum(dim=(2, 3)),
    }
    for name, answer in wrong.items():
        passed, total, _ = _score("global_avg_pool", answer, seed)
        assert passed < total, name


def test_head_param_counts():
    exercise = get_exercise("head_param_counts")
    assert exercise.reference(64, 8, 8, 10) == (40_970, 650)  # the numbers the lesson quotes
    for case in _cases(exercise, 0):
        c, h, w, k = case.args
        flat = sum(p.numel() for p in nn.Linear(c * h * w, k).parameters())
        gap = sum(p.numel() for p in nn.Linear(c, k).parameters())
        assert exercise.reference(*case.args) == (flat, gap)
    _assert_full_marks("head_param_counts", lambda c, h, w, k: [c * h * w * k + k, c * k + k])
    for wrong in (
        lambda c, h, w, k: (c * h * w * k, c * k),  # forgets the biases
        lambda c, h, w, k: (c * k + k, c * h * w * k + k),  # the pair the wrong way round
        lambda c, h, w, k: c * h * w * k + k,  # only one number
    ):
        _assert_fails("head_param_counts", wrong)


class _SequentialHead(nn.Sequential):
    def __init__(self, in_channels, num_classes):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(in_channels, num_classes))


class _ConvHead(nn.Module):
    """GAP then a 1×1 convolution: the same function, parameters in the same order."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.classify = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, x):
        return self.classify(x.mean(dim=(2, 3), keepdim=True)).flatten(1)


def test_gap_head_reference_and_equivalent_heads_pass():
    exercise = get_exercise("gap_head")
    for case in _cases(exercise, 0):
        got = exercise.produce(exercise.reference, case)
        in_channels, num_classes, batch, _, _ = case.args
        assert got["parameters"] == in_channels * num_classes + num_classes
        assert got["output_shapes"] == [[batch, num_classes], [batch, num_classes]]
    _assert_full_marks("gap_head", _SequentialHead)
    _assert_full_marks("gap_head", _ConvHead)


def test_gap_head_run_reports_plain_data_only():
    exercise = get_exercise("gap_head")
    out = exercise.produce(exercise.reference, exercise.public_cases[0])
    assert set(out) == {"parameters", "output_shapes", "outputs"}
    assert all(isinstance(a, np.ndarray) for a in out["outputs"])


def test_gap_head_wrong_answers_fail():
    class NoBias(nn.Module):
        def __init__(self, in_channels, num_classes):
            super().__init__()
            self.fc = nn.Linear(in_channels, num_classes, bias=False)

        def forward(self, x):
            return self.fc(x.mean(dim=(2, 3)))

    class MaxPooled(_SequentialHead):
        def __init__(self, in_channels, num_classes):
            super().__init__(in_channels, num_classes)
            self[0] = nn.AdaptiveMaxPool2d(1)

    class FixedSizeFlatten(nn.Module):
        # flatten + linear sized for an 8×8 map: breaks on any other input size
        def __init__(self, in_channels, num_classes):
            super().__init__()
            self.fc = nn.Linear(in_channels * 64, num_classes)

        def forward(self, x):
            return self.fc(x.flatten(1))

    class ExtraHidden(nn.Module):
        def __init__(self, in_channels, num_classes):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(in_channels, 32), nn.ReLU(), nn.Linear(32, num_classes))

        def forward(self, x):
            return self.body(x.mean(dim=(2, 3)))

    class KeepsSpatialAxes(_SequentialHead):
        def forward(self, x):
            return self[2](self[0](x).permute(0, 2, 3, 1))

    for wrong in (NoBias, MaxPooled, FixedSizeFlatten, ExtraHidden, KeepsSpatialAxes):
        _assert_fails("gap_head", wrong)
    reasons = _assert_fails("gap_head", lambda c, k: "not a module")
    assert any("nn.Module" in r for r in reasons)


# --------------------------------------------------------------------------------------------
# Through the in-notebook checker, when it is available
# --------------------------------------------------------------------------------------------


def test_check_reports_stub_and_wrong_answer():
    check_module = pytest.importorskip("course_utils.exercises.check")

    def stub(x, weight, bias=None, stride=1, padding=0):
        raise NotImplementedError("Replace this line with your solution")

    assert check_module.run_checks("conv2d_forward", stub, seed=0).status == "not-attempted"
    report = check_module.run_checks("max_pool2d", lambda x, k, stride=None: F.avg_pool2d(x, k, stride), seed=0)
    assert report.status == "failed" and report.first_failure is not None
    assert check_module.run_checks("gap_head", _SequentialHead, seed=0).status == "passed"


# --------------------------------------------------------------------------------------------
# End to end: release each lesson, attempt it (one right, one wrong), grade it with `course grade`
# --------------------------------------------------------------------------------------------

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# lesson stem -> (exercise answered with the lesson's own solution, exercise answered wrongly but
# from scratch, the wrong code, the same exercise answered by calling a forbidden function)
ATTEMPTS = {
    "03_conv2d_in_pytorch": (
        "conv2d_param_count",
        "conv2d_forward",
        # slides the window itself but forgets the padding
        "import torch\n"
        "def conv2d_forward(x, weight, bias=None, stride=1, padding=0):\n"
        "    n, _, h, w = x.shape\n"
        "    oc, _, kh, kw = weight.shape\n"
        "    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1\n"
        "    out = x.new_zeros(n, oc, oh, ow)\n"
        "    for i in range(kh):\n"
        "        for j in range(kw):\n"
        "            seen = x[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]\n"
        "            out += torch.einsum('nchw,oc->nohw', seen, weight[:, :, i, j])\n"
        "    return out if bias is None else out + bias.view(1, -1, 1, 1)\n",
        # right answers, but the library slides the window
        "import torch.nn.functional as F\n"
        "def conv2d_forward(x, weight, bias=None, stride=1, padding=0):\n"
        "    return F.conv2d(x, weight, bias, stride=stride, padding=padding)\n",
    ),
    "04_pooling_and_activation": (
        "stack_shapes",
        "max_pool2d",
        # from scratch, but stride defaults to 1 instead of kernel_size
        "import torch\n"
        "def max_pool2d(x, kernel_size, stride=None):\n"
        "    s, k = (1 if stride is None else stride), kernel_size\n"
        "    oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1\n"
        "    out = torch.full((x.shape[0], x.shape[1], oh, ow), float('-inf'), dtype=x.dtype)\n"
        "    for i in range(k):\n"
        "        for j in range(k):\n"
        "            out = torch.maximum(out, x[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s])\n"
        "    return out\n",
        "import torch.nn.functional as F\n"
        "def max_pool2d(x, kernel_size, stride=None):\n"
        "    return F.max_pool2d(x, kernel_size, kernel_size if stride is None else stride)\n",
    ),
    "05_global_average_pooling": (
        "global_avg_pool",
        "gap_head",
        # no bias in the linear layer
        "import torch.nn as nn\n"
        "class GAPHead(nn.Module):\n"
        "    def __init__(self, in_channels, num_classes):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(in_channels, num_classes, bias=False)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x.mean(dim=(2, 3)))\n",
        None,
    ),
}
# lesson 05's forbidden attempt is on global_avg_pool (its from-scratch exercise)
FORBIDDEN_05 = ("global_avg_pool",
                "import torch.nn.functional as F\n"
                "def global_avg_pool(x):\n"
                "    return F.adaptive_avg_pool2d(x, 1).flatten(1)\n")


def _solution_cell(nb, exercise_id):
    cells = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("course", {}).get("exercise") == exercise_id
             and "check(" not in c.source]
    assert len(cells) == 1, f"expected one solution cell for {exercise_id}, found {len(cells)}"
    return cells[0]


@pytest.mark.slow
@pytest.mark.parametrize("stem", list(ATTEMPTS))
def test_released_lesson_attempted_and_graded(tmp_path, stem):
    """Each lesson is its own assignment: released, attempted (one right, one wrong from scratch,
    one calling a forbidden function in another copy) and graded by ``course grade``."""
    right_id, wrong_id, wrong_code, forbidden_code = ATTEMPTS[stem]
    forbidden_id = wrong_id
    if forbidden_code is None:
        forbidden_id, forbidden_code = FORBIDDEN_05
    released = tmp_path / "released"
    subs = tmp_path / "subs"
    subs.mkdir()
    lesson = NOTEBOOKS / f"{stem}.ipynb"
    done = subprocess.run([sys.executable, "-m", "course_utils", "release", str(lesson), "--out", str(released)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    workbook = nbformat.read(str(released / f"{stem}.ipynb"), as_version=4)
    solution = nbformat.read(str(lesson), as_version=4)
    # every exercise cell of the workbook is a stub, not the solution
    for exercise in exercises_for_lesson(stem):
        stub = _solution_cell(workbook, exercise.id).source
        assert "BEGIN SOLUTION" not in stub and "NotImplementedError" in stub
    _solution_cell(workbook, right_id).source = _solution_cell(solution, right_id).source
    _solution_cell(workbook, wrong_id).source = wrong_code
    nbformat.write(workbook, str(subs / "attempt.ipynb"))
    cheat = nbformat.read(str(released / f"{stem}.ipynb"), as_version=4)
    _solution_cell(cheat, forbidden_id).source = forbidden_code
    nbformat.write(cheat, str(subs / "library.ipynb"))

    out = tmp_path / "out"
    graded = subprocess.run(
        [sys.executable, "-m", "course_utils", "grade", str(subs), "--out", str(out), "--jobs", "2",
         "--timeout", "300", "--seed", "12345", "--quiet", "--lesson", stem],
        capture_output=True, text=True, timeout=900,
    )
    assert graded.returncode == 0, graded.stdout + graded.stderr
    students = json.loads((out / "grades.json").read_text())["students"]
    result = students["attempt"]
    assert result["status"] == "ok", result.get("detail")
    assert result["cells"]["errors"] == []
    scores = result["exercises"]
    assert scores[right_id]["score"] == get_exercise(right_id).points, scores[right_id]
    assert scores[wrong_id]["score"] < get_exercise(wrong_id).points, scores[wrong_id]
    for exercise in exercises_for_lesson(stem):
        if exercise.id not in (right_id, wrong_id):
            assert scores[exercise.id]["score"] == 0
            assert scores[exercise.id]["status"] == "not-attempted", scores[exercise.id]
    # the wrong answers earn what they deserve: padding is used by some graded cases only, a missing
    # bias fails every case (the parameter count is off), the stride default matters in one edge case
    expected_wrong = {"03_conv2d_in_pytorch": (0, 3), "04_pooling_and_activation": (0, 2)}
    if stem in expected_wrong:
        low, high = expected_wrong[stem]
        assert low < scores[wrong_id]["score"] < high, scores[wrong_id]
    else:
        assert scores[wrong_id]["score"] == 0, scores[wrong_id]
    # computing the right answers with the library function the exercise rebuilds earns nothing,
    # and the feedback says why
    cheat = students["library"]["exercises"][forbidden_id]
    assert cheat["score"] == 0, cheat
    assert "off-limits" in json.dumps(cheat), cheat
    feedback = (out / "feedback" / "library.md").read_text()
    assert "off-limits" in feedback
