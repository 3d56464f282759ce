"""Lessons 01 and 02's exercise banks: references agree with PyTorch, cases are valid, wrong answers fail.

Grading is simulated with the exercise model only (draw cases, produce, compare), the way the
grader does it, so these tests do not depend on the in-notebook checker.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.exercises.core import Exercise, compare
from course_utils.exercises.registry import exercises_for_lesson, get_exercise

LESSON01 = "01_why_convolution"
LESSON02 = "02_output_size"
SEEDS = [0, 1, 2, 3, 4]


def score(exercise: Exercise, answer, seed: int = 0) -> tuple[int, int, list[str]]:
    """(passed, total, reasons) for an answer on the public cases and one batch of graded cases."""
    cases = list(exercise.public_cases) + exercise.draw_cases(np.random.default_rng(seed))
    if exercise.kind == "value":
        cases = exercise.draw_cases(np.random.default_rng(seed))
    passed, reasons = 0, []
    for case in cases:
        try:
            got = exercise.produce(answer, case)
        except Exception as exc:  # a wrong answer may raise; that case fails
            reasons.append(f"{type(exc).__name__}: {exc}")
            continue
        verdict = compare(exercise.expected(case), got, rtol=exercise.rtol, atol=exercise.atol)
        passed += verdict.ok
        if not verdict.ok:
            reasons.append(verdict.reason)
    return passed, len(cases), reasons


def test_both_lessons_register_their_exercises():
    assert [e.id for e in exercises_for_lesson(LESSON01)] == ["dense_params", "conv_layer_params", "corr2d"]
    assert [e.id for e in exercises_for_lesson(LESSON02)] == ["conv_out", "same_padding", "stack_sizes",
                                                              "padding_32_to_16"]


@pytest.mark.parametrize("exercise_id", ["dense_params", "conv_layer_params", "corr2d", "conv_out",
                                         "same_padding", "stack_sizes"])
def test_cases_are_seeded_sized_and_include_edge_cases(exercise_id):
    ex = get_exercise(exercise_id)
    a = ex.draw_cases(np.random.default_rng(7), 12)
    b = ex.draw_cases(np.random.default_rng(7), 12)
    assert len(a) == 12
    assert [c.label for c in a] == [c.label for c in b]
    assert all(compare(ex.expected(x), ex.expected(y)).ok for x, y in zip(a, b))
    assert sum(c.label.startswith("edge") for c in a) >= 4
    assert len(ex.draw_cases(np.random.default_rng(7), 40)) == 40


# --------------------------------------------------------------------------------------------
# Lesson 01
# --------------------------------------------------------------------------------------------


def _meta_param_count(module_factory) -> int:
    # The meta device holds shapes but no memory, so a 150-million-weight layer costs nothing.
    return sum(p.numel() for p in module_factory().parameters())


@pytest.mark.parametrize("seed", SEEDS)
def test_dense_params_matches_nn_linear(seed):
    ex = get_exercise("dense_params")
    for case in list(ex.public_cases) + ex.draw_cases(np.random.default_rng(seed)):
        h, w, c, units = case.args
        bias = case.kwargs.get("bias", True)
        real = _meta_param_count(lambda: nn.Linear(h * w * c, units, bias=bias, device="meta"))
        assert ex.expected(case) == real


def test_dense_params_numbers_of_the_lesson():
    ref = get_exercise("dense_params").reference
    assert ref(224, 224, 3, 1, bias=False) == 150_528
    assert ref(224, 224, 3, 1000) == 150_529_000


@pytest.mark.parametrize("seed", SEEDS)
def test_conv_layer_params_matches_nn_conv2d(seed):
    ex = get_exercise("conv_layer_params")
    for case in list(ex.public_cases) + ex.draw_cases(np.random.default_rng(seed)):
        cin, cout, k = case.args
        real = _meta_param_count(lambda: nn.Conv2d(cin, cout, k, bias=case.kwargs["bias"], device="meta"))
        assert ex.expected(case) == real
    assert ex.reference(3, 64, 3) == 1792


def _corr2d_loops(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    # Written independently of the reference (which calls F.conv2d), straight from the definition.
    oh, ow = x.shape[0] - k.shape[0] + 1, x.shape[1] - k.shape[1] + 1
    out = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[i, j] = (x[i : i + k.shape[0], j : j + k.shape[1]] * k).sum()
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_corr2d_reference_is_the_definition(seed):
    ex = get_exercise("corr2d")
    for case in list(ex.public_cases) + ex.draw_cases(np.random.default_rng(seed)):
        x, k = (a.double().numpy() for a in case.args)
        np.testing.assert_allclose(ex.expected(case), _corr2d_loops(x, k), rtol=1e-4, atol=1e-5)


def test_corr2d_public_example_values():
    ex = get_exercise("corr2d")
    expected = ex.expected(ex.public_cases[0])
    np.testing.assert_allclose(expected, [[19.0, 25.0], [37.0, 43.0]])


def corr2d_loops_torch(x, k):
    kh, kw = k.shape
    out = torch.zeros(x.shape[0] - kh + 1, x.shape[1] - kw + 1)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (x[i : i + kh, j : j + kw] * k).sum()
    return out


def corr2d_flipped(x, k):  # true convolution: right for symmetric kernels only
    return corr2d_loops_torch(x, torch.flip(k, (0, 1)))


def corr2d_same_size(x, k):  # pads to keep the size: wrong shape
    return F.conv2d(x[None, None], k[None, None], padding="same")[0, 0]


def corr2d_transposed_kernel(x, k):
    return corr2d_loops_torch(x, k.T) if k.shape[0] == k.shape[1] else corr2d_loops_torch(x, k)


def corr2d_in_place(x, k):
    out = corr2d_loops_torch(x, k)
    x.zero_()  # vandalises its input; the reference must not see this
    return out


def test_corr2d_right_answers_pass():
    ex = get_exercise("corr2d")
    for answer in (corr2d_loops_torch, corr2d_in_place, lambda x, k: corr2d_loops_torch(x.double(), k.double())):
        passed, total, reasons = score(ex, answer)
        assert passed == total, reasons


@pytest.mark.parametrize("wrong", [corr2d_flipped, corr2d_same_size, corr2d_transposed_kernel,
                                   lambda x, k: corr2d_loops_torch(x, k).tolist(),
                                   lambda x, k: corr2d_loops_torch(x, k) + 1e-3])
def test_corr2d_wrong_answers_fail(wrong):
    passed, total, _ = score(get_exercise("corr2d"), wrong)
    assert passed < total


@pytest.mark.parametrize(
    "exercise_id, wrong",
    [
        ("dense_params", lambda h, w, c, units, bias=True: h * w * c * units),  # forgets the bias
        ("dense_params", lambda h, w, c, units, bias=True: h * w * units + (units if bias else 0)),  # no channels
        ("dense_params", lambda h, w, c, units, bias=True: float(h * w * c * units + (units if bias else 0))),
        ("conv_layer_params", lambda cin, cout, k, bias=True: cout * k * k + (cout if bias else 0)),  # no cin
        ("conv_layer_params", lambda cin, cout, k, bias=True: cin * cout * k * k + (cin if bias else 0)),
        ("conv_layer_params", lambda cin, cout, k, bias=True: cin * cout * k * k + cout),  # bias always
    ],
)
def test_parameter_count_wrong_answers_fail(exercise_id, wrong):
    passed, total, reasons = score(get_exercise(exercise_id), wrong)
    assert passed < total
    assert reasons


@pytest.mark.parametrize("exercise_id, right", [
    ("dense_params", lambda h, w, c, units, bias=True: (h * w * c + int(bias)) * units),
    ("conv_layer_params", lambda cin, cout, k, bias=True: cout * (cin * k * k + int(bias))),
])
def test_parameter_count_right_answers_pass(exercise_id, right):
    passed, total, reasons = score(get_exercise(exercise_id), right)
    assert passed == total, reasons


# --------------------------------------------------------------------------------------------
# Lesson 02
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_conv_out_cases_are_valid_and_match_nn_conv1d(seed):
    ex = get_exercise("conv_out")
    cases = list(ex.public_cases) + ex.draw_cases(np.random.default_rng(seed))
    assert any(c.kwargs.get("dilation", 1) > 1 for c in cases)
    assert any((c.args[0] + 2 * c.kwargs.get("padding", 0) - c.kwargs.get("dilation", 1) * (c.args[1] - 1) - 1)
               % c.kwargs.get("stride", 1) for c in cases), "no case where the stride does not divide"
    for case in cases:
        n, k = case.args
        conv = nn.Conv1d(1, 1, k, bias=False, **case.kwargs)
        with torch.no_grad():
            real = conv(torch.zeros(1, 1, n)).shape[-1]
        assert ex.expected(case) == real, case


def conv_out_no_dilation(in_size, kernel_size, stride=1, padding=0, dilation=1):
    return (in_size + 2 * padding - kernel_size) // stride + 1


def conv_out_true_division(in_size, kernel_size, stride=1, padding=0, dilation=1):
    return (in_size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride + 1


def conv_out_one_side_padding(in_size, kernel_size, stride=1, padding=0, dilation=1):
    return (in_size + padding - dilation * (kernel_size - 1) - 1) // stride + 1


def conv_out_rounds_up(in_size, kernel_size, stride=1, padding=0, dilation=1):
    return -(-(in_size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride) + 1


@pytest.mark.parametrize("wrong", [conv_out_no_dilation, conv_out_true_division, conv_out_one_side_padding,
                                   conv_out_rounds_up])
def test_conv_out_wrong_answers_fail(wrong):
    passed, total, _ = score(get_exercise("conv_out"), wrong)
    assert passed < total


def test_conv_out_right_answer_passes_even_without_defaults_handled_the_same_way():
    def conv_out_via_pytorch(in_size, kernel_size, stride=1, padding=0, dilation=1):
        conv = nn.Conv1d(1, 1, kernel_size, stride, padding, dilation)
        return conv(torch.zeros(1, 1, in_size)).shape[-1]

    for seed in SEEDS:
        passed, total, reasons = score(get_exercise("conv_out"), conv_out_via_pytorch, seed)
        assert passed == total, reasons


@pytest.mark.parametrize("seed", SEEDS)
def test_same_padding_keeps_the_size_in_pytorch(seed):
    ex = get_exercise("same_padding")
    for case in list(ex.public_cases) + ex.draw_cases(np.random.default_rng(seed)):
        k, = case.args
        d = case.kwargs.get("dilation", 1)
        p = ex.expected(case)
        assert isinstance(p, int)
        n = 2 * d * k + 3  # large enough for any of these kernels
        conv = nn.Conv1d(1, 1, k, padding=p, dilation=d)
        with torch.no_grad():
            assert conv(torch.zeros(1, 1, n)).shape[-1] == n, case


@pytest.mark.parametrize("wrong", [
    lambda k, dilation=1: k // 2,  # ignores dilation
    lambda k, dilation=1: dilation * k // 2,  # wrong for even k with even dilation
    lambda k, dilation=1: (dilation * (k - 1)) / 2,  # a float
])
def test_same_padding_wrong_answers_fail(wrong):
    passed, total, _ = score(get_exercise("same_padding"), wrong)
    assert passed < total


def _pytorch_stack(layers):
    modules = []
    for spec in layers:
        if spec["layer"] == "conv":
            modules.append(nn.Conv2d(1, 1, spec["kernel"], spec["stride"], spec["padding"], spec["dilation"]))
        else:
            modules.append(nn.MaxPool2d(spec["kernel"], spec["stride"]))
    return modules


@pytest.mark.parametrize("seed", SEEDS)
def test_stack_sizes_matches_a_real_pytorch_stack(seed):
    ex = get_exercise("stack_sizes")
    cases = list(ex.public_cases) + ex.draw_cases(np.random.default_rng(seed))
    assert any(any(s["layer"] == "pool" for s in c.args[1]) for c in cases)
    for case in cases:
        in_size, layers = case.args
        x = torch.zeros(1, 1, in_size, in_size)
        real = [in_size]
        with torch.no_grad():
            for m in _pytorch_stack(layers):
                x = m(x)
                real.append(x.shape[-1])
        assert ex.expected(case) == real, case


def stack_without_input(in_size, layers):
    sizes = get_exercise("stack_sizes").reference(in_size, layers)
    return sizes[1:]


def stack_pool_padding_like_conv(in_size, layers):
    sizes = [in_size]
    for spec in layers:
        n = sizes[-1]
        d = spec.get("dilation", 1)
        p = spec.get("padding", 0)
        s = 1 if spec["layer"] == "pool" else spec["stride"]  # forgets the pool's stride
        sizes.append((n + 2 * p - d * (spec["kernel"] - 1) - 1) // s + 1)
    return sizes


def stack_consumes_its_input(in_size, layers):
    sizes = get_exercise("stack_sizes").reference(in_size, layers)
    layers.clear()  # a learner's destructive loop; the next case must still be intact
    return sizes


def test_stack_sizes_answers():
    ex = get_exercise("stack_sizes")
    assert score(ex, stack_consumes_its_input)[0] == score(ex, stack_consumes_its_input)[1]
    for wrong in (stack_without_input, stack_pool_padding_like_conv, lambda n, layers: tuple(range(len(layers) + 1))):
        passed, total, _ = score(ex, wrong)
        assert passed < total
    assert ex.reference(32, ex.public_cases[0].args[1]) == [32, 32, 16, 16, 8]
    assert ex.reference(28, ex.public_cases[1].args[1]) == [28, 24, 12, 8, 4]
    assert ex.reference(224, ex.public_cases[2].args[1]) == [224, 112, 55]


def test_padding_32_to_16_value():
    ex = get_exercise("padding_32_to_16")
    assert ex.kind == "value"
    assert score(ex, 2)[0:2] == (1, 1)
    conv = nn.Conv2d(1, 1, 5, stride=2, padding=2)
    assert conv(torch.zeros(1, 1, 32, 32)).shape[-2:] == (16, 16)
    for wrong in (1, 3, 2.0, "2", [2]):
        assert score(ex, wrong)[0] == 0, wrong


def test_unanswered_and_stub_answers_are_not_attempted():
    core = pytest.importorskip("course_utils.exercises.check")

    def stub(*args, **kwargs):
        raise NotImplementedError("Replace this line with your solution")

    for exercise_id in ("dense_params", "conv_layer_params", "corr2d", "conv_out", "same_padding", "stack_sizes"):
        assert core.run_checks(exercise_id, stub, seed=0).status == "not-attempted"
        # The course's own reference is forbidden inside its exercise (issue 12): it cannot answer.
        refused = core.run_checks(exercise_id, get_exercise(exercise_id).reference, seed=0)
        assert refused.status == "failed" and refused.first_failure.status == "forbidden"
    assert core.run_checks("padding_32_to_16", None).status == "not-attempted"
    assert core.run_checks("padding_32_to_16", 2).status == "passed"
    report = core.run_checks("corr2d", corr2d_flipped, seed=0)
    assert report.status == "failed" and report.first_failure is not None
