"""Exercises of lessons 03-05: the reference passes, plausible wrong answers fail, cases are sound.

References are checked against PyTorch's own layers (not against themselves), every random case
the bank can draw is checked to be valid, and each wrong answer below is one a learner could
plausibly write.
"""
from __future__ import annotations

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
    "03_conv2d_in_pytorch": {"conv2d_forward", "conv2d_param_count", "separable_as_full"},
    "04_pooling_and_activation": {"max_pool2d", "avg_pool2d", "stack_shapes", "stack_receptive_field"},
    "05_global_average_pooling": {"head_param_counts", "class_activation_map", "padded_global_avg_pool"},
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


def conv2d_loops(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """An independent, loop-based convolution (the textbook formula), written for the tests."""
    x = F.pad(x, (padding, padding, padding, padding))
    n, c, h, w = x.shape
    out_c, _, kh, kw = weight.shape
    span_h, span_w = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1   # what a dilated window covers
    oh, ow = (h - span_h) // stride + 1, (w - span_w) // stride + 1
    out = torch.zeros(n, out_c, oh, ow, dtype=torch.float64)
    x64, w64 = x.double(), weight.double()
    for i in range(oh):
        for j in range(ow):
            window = x64[:, :, i * stride : i * stride + span_h : dilation, j * stride : j * stride + span_w : dilation]
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


def test_conv2d_forward_cases_cover_dilation():
    exercise = get_exercise("conv2d_forward")
    cases = list(exercise.public_cases) + _cases(exercise, 0)
    assert sum(c.kwargs.get("dilation", 1) > 1 for c in cases) >= 4
    assert any(c.kwargs.get("dilation", 1) > 1 and c.kwargs["stride"] > 1 and c.kwargs["padding"] > 0 for c in cases)


def test_conv2d_forward_wrong_answers_fail():
    def ignores_padding(x, weight, bias=None, stride=1, padding=0, dilation=1):
        return conv2d_loops(x, weight, bias, stride, 0, dilation)

    def ignores_stride(x, weight, bias=None, stride=1, padding=0, dilation=1):
        return conv2d_loops(x, weight, bias, 1, padding, dilation)

    def ignores_dilation(x, weight, bias=None, stride=1, padding=0, dilation=1):
        return conv2d_loops(x, weight, bias, stride, padding)

    def no_dilation_argument(x, weight, bias=None, stride=1, padding=0):
        # last lesson's signature: every dilated case raises TypeError
        return conv2d_loops(x, weight, bias, stride, padding)

    def dilates_the_stride(x, weight, bias=None, stride=1, padding=0, dilation=1):
        # spreads the windows instead of the taps
        return conv2d_loops(x, weight, bias, stride * dilation, padding)

    def true_convolution(x, weight, bias=None, stride=1, padding=0, dilation=1):
        # flips the kernel: a real convolution, not PyTorch's cross-correlation
        return conv2d_loops(x, weight.flip(-1, -2), bias, stride, padding, dilation)

    def crashes_without_bias(x, weight, bias=None, stride=1, padding=0, dilation=1):
        return conv2d_loops(x, weight, None, stride, padding, dilation) + bias.view(1, -1, 1, 1)

    def rounds_up(x, weight, bias=None, stride=1, padding=0, dilation=1):
        # ceil instead of floor for the number of windows: pads the input at the end
        extra = stride - 1
        return conv2d_loops(F.pad(x, (0, extra, 0, extra)), weight, bias, stride, padding, dilation)

    for wrong in (ignores_padding, ignores_stride, ignores_dilation, no_dilation_argument, dilates_the_stride,
                  true_convolution, crashes_without_bias, rounds_up):
        _assert_fails("conv2d_forward", wrong)
    reasons = _assert_fails("conv2d_forward", crashes_without_bias)
    assert any("bias is None" in r for r in reasons)


def test_conv2d_forward_answer_that_pads_in_place_does_not_corrupt_the_reference():
    def scales_input_in_place(x, weight, bias=None, stride=1, padding=0, dilation=1):
        x.mul_(2)
        return F.conv2d(x / 2, weight, bias, stride=stride, padding=padding, dilation=dilation)

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


def _separable_pair(depthwise_weight, pointwise_weight, x):
    """The pair itself, as real layers: depthwise (groups=C_in), then pointwise."""
    c_in = depthwise_weight.shape[0]
    return F.conv2d(F.conv2d(x, depthwise_weight, groups=c_in, padding=1), pointwise_weight)


@pytest.mark.parametrize("seed", SEEDS)
def test_separable_as_full_reference_computes_what_the_pair_computes(seed):
    exercise = get_exercise("separable_as_full")
    cases = _cases(exercise, seed)
    assert any(c.args[0].shape[2] != c.args[0].shape[3] for c in cases), "no non-square kernel"
    for case in cases:
        dw, pw = case.args
        full = exercise.reference(dw, pw)
        assert full.shape == (pw.shape[0], dw.shape[0], dw.shape[2], dw.shape[3])
        x = torch.randn(2, dw.shape[0], 9, 11, dtype=torch.float64)
        torch.testing.assert_close(F.conv2d(x, full.double(), padding=1),
                                   _separable_pair(dw.double(), pw.double(), x), rtol=1e-5, atol=1e-5)

    def by_loops(depthwise_weight, pointwise_weight):
        c_out, c_in = pointwise_weight.shape[:2]
        out = torch.zeros(c_out, c_in, *depthwise_weight.shape[2:])
        for o in range(c_out):
            for c in range(c_in):
                out[o, c] = pointwise_weight[o, c, 0, 0] * depthwise_weight[c, 0]
        return out

    _assert_full_marks("separable_as_full", by_loops, seed)
    _assert_full_marks("separable_as_full", lambda dw, pw: torch.einsum("oc,cuv->ocuv", pw[:, :, 0, 0], dw[:, 0]), seed)


SEPARABLE_WRONG = {
    # mixes with the transposed pointwise matrix (right shape only when C_in == C_out)
    "transposed_mix": lambda dw, pw: pw[:, :, 0, 0].T[:, :, None, None] * dw[:, 0][None],
    # sums over the input channels: one kernel per output, broadcast back (the pair's output, not its weight)
    "summed": lambda dw, pw: (pw * dw[:, 0][None]).sum(1, keepdim=True).expand(-1, dw.shape[0], -1, -1),
    # forgets the pointwise weights: every output channel gets the depthwise kernels
    "no_mix": lambda dw, pw: dw[:, 0][None].expand(pw.shape[0], -1, -1, -1),
    # flips the kernels, as if composing meant convolving
    "flipped": lambda dw, pw: (pw * dw[:, 0][None]).flip(-1, -2),
    # keeps the pointwise layout: (C_out, C_in, 1, 1) times a sum over the kernel
    "wrong_shape": lambda dw, pw: pw * dw.sum(dim=(2, 3))[None, :, 0, None, None],
}


@pytest.mark.parametrize("name", sorted(SEPARABLE_WRONG))
def test_separable_as_full_wrong_answers_fail(name):
    _assert_fails("separable_as_full", SEPARABLE_WRONG[name])


def test_separable_as_full_by_running_the_layers_is_forbidden():
    check_module = pytest.importorskip("course_utils.exercises.check")

    def impulse_response(depthwise_weight, pointwise_weight):
        # right values, but measured by running the pair on one-hot images with F.conv2d
        c_in, _, kh, kw = depthwise_weight.shape
        x = torch.zeros(c_in, c_in, 2 * kh - 1, 2 * kw - 1)
        x[range(c_in), range(c_in), kh - 1, kw - 1] = 1
        y = F.conv2d(F.conv2d(x, depthwise_weight, groups=c_in), pointwise_weight)
        return y.transpose(0, 1).flip(-1, -2)

    _assert_full_marks("separable_as_full", impulse_response)  # right values outside the guard
    report = check_module.run_checks("separable_as_full", impulse_response, seed=0)
    assert report.status == "failed" and report.first_failure.status == "forbidden", report.text()
    assert "F.conv2d" in report.text()


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


# --------------------------------------------------------------------------------------------
# Through the in-notebook checker, when it is available
# --------------------------------------------------------------------------------------------


def test_check_reports_stub_and_wrong_answer():
    check_module = pytest.importorskip("course_utils.exercises.check")

    def stub(x, weight, bias=None, stride=1, padding=0, dilation=1):
        raise NotImplementedError("Replace this line with your solution")

    assert check_module.run_checks("conv2d_forward", stub, seed=0).status == "not-attempted"
    report = check_module.run_checks("max_pool2d", lambda x, k, stride=None: F.avg_pool2d(x, k, stride), seed=0)
    assert report.status == "failed" and report.first_failure is not None
    padded_gap = lambda x, sizes: torch.stack([x[i, :, :h, :w].mean(dim=(1, 2)) for i, (h, w) in enumerate(sizes)])  # noqa: E731
    assert check_module.run_checks("padded_global_avg_pool", padded_gap, seed=0).status == "passed"


# End to end (release, attempt wrongly and with forbidden calls, grade): one batch per lesson in
# tests/test_exercises_01_03_graded.py (03) and tests/test_exercises_04_05_graded.py (04, 05).
