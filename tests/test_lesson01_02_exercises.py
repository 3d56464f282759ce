"""Lessons 01 and 02's exercise banks: references agree with PyTorch, cases are valid, wrong answers fail.

Grading is simulated with the exercise model only (draw cases, produce, compare), the way the
grader does it, so these tests do not depend on the in-notebook checker.
"""
from __future__ import annotations

import re

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
    # Easiest first (issue 15): the order of the notebook's exercises.
    assert [e.id for e in exercises_for_lesson(LESSON01)] == ["dense_params", "conv_macs", "corr2d"]
    assert [e.id for e in exercises_for_lesson(LESSON02)] == ["conv_out", "same_padding", "stack_sizes",
                                                              "design_conv"]


@pytest.mark.parametrize("exercise_id", ["dense_params", "conv_macs", "corr2d", "conv_out",
                                         "same_padding", "stack_sizes", "design_conv"])
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


def _macs_by_loops(cin: int, cout: int, kernel, h: int, w: int, padding: int = 0) -> int:
    # Counted, not computed: walk every output value of every map and add the taps it multiplies,
    # one padded-image position at a time, independently of the reference's forward hook.
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    total = 0
    for _ in range(cout):
        for top in range(h + 2 * padding):
            for left in range(w + 2 * padding):
                if top + kh <= h + 2 * padding and left + kw <= w + 2 * padding:
                    total += cin * kh * kw
    return total


@pytest.mark.parametrize("seed", SEEDS)
def test_conv_macs_reference_counts_what_the_layer_computes(seed):
    ex = get_exercise("conv_macs")
    cases = list(ex.public_cases) + ex.draw_cases(np.random.default_rng(seed))
    assert any(c.args[3] != c.args[4] for c in cases), "no non-square image"
    assert any(not isinstance(c.args[2], int) and c.args[2][0] != c.args[2][1] for c in cases), "no non-square kernel"
    assert any(c.kwargs.get("padding", 0) > 0 for c in cases)
    for case in cases:
        cin, cout, k, h, w = case.args
        if cout * h * w > 40_000:
            continue  # the loop count is slow for the lesson's 224×224 layer; checked below
        assert ex.expected(case) == _macs_by_loops(cin, cout, k, h, w, case.kwargs.get("padding", 0)), case
    # The lesson's ledger (cost_ledger's conv row) and the 3×3 example of section 2 (4 outputs × 4 taps).
    assert ex.reference(3, 64, 3, 224, 224, padding=1) == 86_704_128
    assert ex.reference(1, 1, 2, 3, 3) == 16


def conv_macs_right(cin, cout, kernel_size, height, width, padding=0):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    return cout * (height + 2 * padding - kh + 1) * (width + 2 * padding - kw + 1) * cin * kh * kw


def conv_macs_by_a_real_layer(cin, cout, kernel_size, height, width, padding=0):
    # Allowed: measuring the output shape on a real layer is a method, not the course's counter.
    out = nn.Conv2d(cin, cout, kernel_size, padding=padding, device="meta")(torch.empty(1, cin, height, width, device="meta"))
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    return out.numel() * cin * kh * kw


@pytest.mark.parametrize("right", [conv_macs_right, conv_macs_by_a_real_layer])
def test_conv_macs_right_answers_pass(right):
    for seed in SEEDS[:2]:
        passed, total, reasons = score(get_exercise("conv_macs"), right, seed)
        assert passed == total, reasons


CONV_MACS_WRONG = [
    # the parameter count, not the arithmetic
    lambda cin, cout, k, h, w, padding=0: cout * cin * (k if isinstance(k, int) else k[0] * k[1]) ** (2 if isinstance(k, int) else 1),
    # output as large as the input (forgets that a valid window does not fit everywhere)
    lambda cin, cout, k, h, w, padding=0: conv_macs_right(cin, cout, k, h, w, padding) * 0 + cout * h * w * cin * (
        k * k if isinstance(k, int) else k[0] * k[1]),
    # padding on one side only
    lambda cin, cout, k, h, w, padding=0: conv_macs_right(cin, cout, k, h - padding, w - padding, padding),
    # swaps the kernel's rows and columns
    lambda cin, cout, k, h, w, padding=0: conv_macs_right(cin, cout, k if isinstance(k, int) else (k[1], k[0]), h, w, padding),
    # forgets the input channels
    lambda cin, cout, k, h, w, padding=0: conv_macs_right(1, cout, k, h, w, padding),
    # counts the bias as one more multiply-add per output value
    lambda cin, cout, k, h, w, padding=0: conv_macs_right(cin, cout, k, h, w, padding) + cout * (
        h + 2 * padding - (k if isinstance(k, int) else k[0]) + 1) * (w + 2 * padding - (k if isinstance(k, int) else k[1]) + 1),
    # a float
    lambda cin, cout, k, h, w, padding=0: float(conv_macs_right(cin, cout, k, h, w, padding)),
]


@pytest.mark.parametrize("wrong", CONV_MACS_WRONG)
def test_conv_macs_wrong_answers_fail(wrong):
    passed, total, reasons = score(get_exercise("conv_macs"), wrong)
    assert passed < total and reasons


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
    ],
)
def test_parameter_count_wrong_answers_fail(exercise_id, wrong):
    passed, total, reasons = score(get_exercise(exercise_id), wrong)
    assert passed < total
    assert reasons


@pytest.mark.parametrize("exercise_id, right", [
    ("dense_params", lambda h, w, c, units, bias=True: (h * w * c + int(bias)) * units),
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


def _all_designs(n: int, out: int, k: int) -> list[tuple[int, int]]:
    """Every (stride, padding) with padding <= k // 2 that a real nn.Conv1d maps n to out with."""
    found = []
    for stride in range(1, n + k + 2):
        for padding in range(k // 2 + 1):
            if n + 2 * padding < k:
                continue
            layer = nn.Conv1d(1, 1, k, stride=stride, padding=padding, device="meta")
            if layer(torch.empty(1, 1, n, device="meta")).shape[-1] == out:
                found.append((stride, padding))
    return found


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_design_conv_reference_is_the_smallest_design_a_real_layer_confirms(seed):
    ex = get_exercise("design_conv")
    cases = list(ex.public_cases) + ex.draw_cases(np.random.default_rng(seed), 40)
    assert sum(c.args[0][0] != c.args[0][1] for c in cases) >= 30, "inputs should be non-square"
    impossible = 0
    for case in cases:
        in_hw, out_hw, kernel = case.args
        kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
        designs = [_all_designs(n, o, k) for n, o, k in zip(in_hw, out_hw, kernel)]
        expected = ex.expected(case)
        if not all(designs):
            impossible += 1
            assert expected == {"raised": "ValueError"}, case
            continue
        stride, padding = expected["returned"]
        # Smallest stride first, then the smallest padding with it: min of (stride, padding) pairs.
        assert [tuple(p) for p in zip(stride, padding)] == [min(d) for d in designs], case
        layer = nn.Conv2d(2, 2, kernel, stride=tuple(stride), padding=tuple(padding))
        assert tuple(layer(torch.zeros(1, 2, *in_hw)).shape[-2:]) == tuple(out_hw), case
    assert impossible >= 2
    assert ex.reference((32, 32), (16, 16), 5) == ((2, 2), (2, 2))
    with pytest.raises(ValueError, match="height"):
        ex.reference((8, 8), (10, 8), 3)


def design_conv_right(in_hw, out_hw, kernel_size):
    kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    strides, paddings = [], []
    for n, out, k in zip(in_hw, out_hw, kernel):
        pairs = [(s, p) for s in range(1, n + k + 1) for p in range(k // 2 + 1)
                 if n + 2 * p >= k and (n + 2 * p - k) // s + 1 == out]
        if not pairs:
            raise ValueError("no design for this axis")
        strides.append(pairs[0][0])
        paddings.append(pairs[0][1])
    return tuple(strides), tuple(paddings)


def design_conv_padding_unlimited(in_hw, out_hw, kernel_size):
    # Forgets the limit of half a kernel on the padding: "designs" layers for impossible shapes.
    kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    strides, paddings = [], []
    for n, out, k in zip(in_hw, out_hw, kernel):
        pairs = [(s, p) for s in range(1, n + k + 1) for p in range(n + k)
                 if n + 2 * p >= k and (n + 2 * p - k) // s + 1 == out]
        if not pairs:
            raise ValueError("no design")
        strides.append(pairs[0][0])
        paddings.append(pairs[0][1])
    return tuple(strides), tuple(paddings)


DESIGN_WRONG = [
    design_conv_padding_unlimited,
    # the ratio of sizes and "same" padding: right only for some cases
    lambda in_hw, out_hw, k: (tuple(n // o for n, o in zip(in_hw, out_hw)),
                              tuple(kk // 2 for kk in ((k, k) if isinstance(k, int) else k))),
    # width and height swapped in the answer
    lambda in_hw, out_hw, k: tuple(pair[::-1] for pair in design_conv_right(in_hw, out_hw, k)),
    # answers (padding, stride) instead of (stride, padding)
    lambda in_hw, out_hw, k: design_conv_right(in_hw, out_hw, k)[::-1],
    # never raises: returns None for an impossible shape
    lambda in_hw, out_hw, k: _or_none(design_conv_right, in_hw, out_hw, k),
    # raises the wrong exception type for an impossible shape
    lambda in_hw, out_hw, k: _or_raise(design_conv_right, RuntimeError, in_hw, out_hw, k),
]


def _or_none(fn, *args):
    try:
        return fn(*args)
    except ValueError:
        return None


def _or_raise(fn, exc_type, *args):
    try:
        return fn(*args)
    except ValueError as exc:
        raise exc_type(str(exc)) from None


def test_design_conv_right_answers_pass():
    ex = get_exercise("design_conv")
    for seed in SEEDS[:3]:
        passed, total, reasons = score(ex, design_conv_right, seed)
        assert passed == total, reasons
    # lists instead of tuples are the same plain data
    passed, total, reasons = score(ex, lambda *a: [list(p) for p in design_conv_right(*a)])
    assert passed == total, reasons


@pytest.mark.parametrize("wrong", DESIGN_WRONG)
def test_design_conv_wrong_answers_fail(wrong):
    passed, total, _ = score(get_exercise("design_conv"), wrong)
    assert passed < total


@pytest.mark.parametrize("exercise_id, wrong", [
    ("conv_macs", CONV_MACS_WRONG[1]),
    ("conv_macs", CONV_MACS_WRONG[3]),
    ("design_conv", DESIGN_WRONG[0]),
    ("design_conv", DESIGN_WRONG[2]),
    ("design_conv", DESIGN_WRONG[4]),
])
def test_design_tasks_fail_with_input_and_returned_but_never_the_expected_value(exercise_id, wrong):
    core = pytest.importorskip("course_utils.exercises.check")
    ex = get_exercise(exercise_id)
    report = core.run_checks(exercise_id, wrong, seed=3)
    text = report.text()
    assert report.status == "failed", text
    failure = report.first_failure
    assert failure.status == "fail" and f"input:    {exercise_id}(" in text and "returned:" in text, text
    assert failure.expected == "" and "expected:" not in text, text
    # The expected value of the failing case appears nowhere in the report (nor in any hint).
    expected = ex.expected([c for c in list(ex.public_cases) + ex.draw_cases(np.random.default_rng(3))
                            if c.label == failure.label][0])
    if isinstance(expected, int):
        assert str(expected) not in text, text
    elif "returned" in expected:
        shown = describe_pairs(expected["returned"])
        assert shown not in text, text
    for hint in ex.hints:  # no count and no case's answer in a hint: no number of two digits or more
        assert not re.search(r"\d{2,}", hint), hint


def describe_pairs(pairs) -> str:
    return str([list(p) for p in pairs])


def test_unanswered_and_stub_answers_are_not_attempted():
    core = pytest.importorskip("course_utils.exercises.check")

    def stub(*args, **kwargs):
        raise NotImplementedError("Replace this line with your solution")

    for exercise_id in ("dense_params", "conv_macs", "corr2d", "conv_out", "same_padding", "stack_sizes",
                        "design_conv"):
        assert core.run_checks(exercise_id, stub, seed=0).status == "not-attempted"
        # The course's own reference is forbidden inside its exercise (issue 12): it cannot answer.
        refused = core.run_checks(exercise_id, get_exercise(exercise_id).reference, seed=0)
        assert refused.status == "failed" and refused.first_failure.status == "forbidden"
    assert core.run_checks("design_conv", None).status == "not-attempted"
    assert core.run_checks("design_conv", design_conv_right, seed=0).status == "passed"
    report = core.run_checks("corr2d", corr2d_flipped, seed=0)
    assert report.status == "failed" and report.first_failure is not None
