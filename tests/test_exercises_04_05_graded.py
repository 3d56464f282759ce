"""Lessons 04 and 05's exercises after issue 15: checks, wrong answers, forbidden calls, grading.

Quick tests: each check passes a right answer written here, fails several plausible wrong ones
with a ❌ report that shows the input and what was returned but never the expected value, and
refuses the library call it rebuilds. Slow tests: each lesson is released, attempted (wrongly
from scratch, and in another copy by calling the forbidden functions) and graded by
``course grade`` in ONE batch per lesson, next to the solved lesson and the untouched workbook.

Oracles are independent of the references: the receptive-field measurement is compared with
``course_utils.shapes.receptive_field`` (the formula) and with real 2-D layers; the CAM with a real
GAP head and with ``einsum``; padded GAP with ``nn.AdaptiveAvgPool2d`` on each crop.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import shapes
from course_utils.exercises.check import run_checks
from course_utils.exercises.core import Case, compare
from course_utils.exercises.registry import exercises_for_lesson, get_exercise
from graded_batches import assert_solved_and_untouched, grade_lesson_batch

L04, L05 = "04_pooling_and_activation", "05_global_average_pooling"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _score(exercise_id: str, answer, seed: int = 0) -> tuple[int, int]:
    """How many of the public and random cases an answer passes, compared as the grader does."""
    ex = get_exercise(exercise_id)
    cases = list(ex.public_cases) + ex.draw_cases(np.random.default_rng(seed))
    passed = 0
    for case in cases:
        try:
            got = ex.produce(answer, case)
        except Exception:
            continue
        passed += compare(ex.expected(case), got, ex.rtol, ex.atol).ok
    return passed, len(cases)


def _assert_hidden_failure(exercise_id: str, answer, seed: int = 0) -> str:
    """``check`` fails the answer, shows input and returned value, and never the expected value."""
    ex = get_exercise(exercise_id)
    report = run_checks(exercise_id, answer, seed=seed)
    text = report.text()
    assert report.status == "failed", text
    failure = report.first_failure
    assert failure is not None and failure.status == "fail", text
    assert "input:" in text and "returned:" in text, text
    assert "expected:" not in text, text
    # The reason says where the answer differs, not what was expected there.
    why = " ".join(line for line in text.splitlines() if line.strip().startswith("why:"))
    assert not re.search(r"expected\s+[-\d\[(]", why), text
    source, index = failure.source, failure.index
    cases = list(ex.public_cases) if source == "public" else ex.draw_cases(np.random.default_rng(seed))
    expected = ex.expected(cases[index - 1])
    for value in _leaf_numbers(expected):
        if isinstance(value, (int, float)) and value == int(value) and abs(value) < 100:
            continue  # a small whole number can be an index or a count in the reason
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        assert not re.search(rf"(?<![\d.]){re.escape(shown)}(?![\d])", why), (shown, text)
    return text


def _leaf_numbers(value, limit: int = 6) -> list:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, np.ndarray):
        return [float(v) for v in value.flatten()[:limit]]
    if isinstance(value, list):
        return [n for v in value for n in _leaf_numbers(v, limit)][:limit]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    return []


def test_the_lessons_register_these_exercises_easiest_first():
    assert [e.id for e in exercises_for_lesson(L04)] == ["stack_shapes", "max_pool2d", "avg_pool2d", "stack_receptive_field"]
    assert [e.id for e in exercises_for_lesson(L05)] == ["head_param_counts", "class_activation_map", "padded_global_avg_pool"]
    for ex in exercises_for_lesson(L04) + exercises_for_lesson(L05):
        assert not ex.show_expected, ex.id
    # The notebooks hold them in the same order (solution cell, then check cell).
    for lesson in (L04, L05):
        nb = nbformat.read(str(NOTEBOOKS / f"{lesson}.ipynb"), as_version=4)
        order = []
        for cell in nb.cells:
            ex_id = cell.metadata.get("course", {}).get("exercise")
            if ex_id and ex_id not in order:
                order.append(ex_id)
        assert order == [e.id for e in exercises_for_lesson(lesson)]


# --------------------------------------------------------------------------------------------
# show_expected=False in check
# --------------------------------------------------------------------------------------------


def testhide_expected_values_keep_where_but_not_what():
    from course_utils.exercises.check import hide_expected_value

    assert hide_expected_value("expected 22 at [0], got 21") == "that is not the right value at [0]"
    assert hide_expected_value("expected 22, got 21") == "that is not the right value"
    assert hide_expected_value("3 of 12 values differ; first at index (0, 1): expected 1, got 2; largest error 1") == \
        "3 of 12 values differ; first at index (0, 1)"
    assert hide_expected_value("expected an int, got a float (2.0)") == "expected an int, got a float (2.0)"
    assert hide_expected_value("expected shape (2, 3), got shape (3, 2)").startswith("expected shape")
    assert hide_expected_value("expected 3 items, got 2") == "expected 3 items, got 2"


# --------------------------------------------------------------------------------------------
# Lesson 04: stack_receptive_field
# --------------------------------------------------------------------------------------------


def rf_formula(layers):
    """A right answer, written for the tests."""
    rf, jump, start = 1, 1, 0.0
    for k, s, p, d in layers:
        span = d * (k - 1) + 1
        start += ((span - 1) / 2 - p) * jump
        rf += (span - 1) * jump
        jump *= s
    return rf, jump, start


def _rf_variant(*, dilation=True, grow_after_jump=False, padding=True, start_in_jump=True):
    def answer(layers):
        rf, jump, start = 1, 1, 0.0
        for k, s, p, d in layers:
            span = (d * (k - 1) + 1) if dilation else k
            if grow_after_jump:
                jump *= s
            start += ((span - 1) / 2 - (p if padding else 0)) * (jump if start_in_jump else 1)
            rf += (span - 1) * jump
            if not grow_after_jump:
                jump *= s
        return rf, jump, start
    return answer


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_measurement_agrees_with_the_formula_and_with_2d_layers(seed):
    ex = get_exercise("stack_receptive_field")
    for case in list(ex.public_cases) + ex.draw_cases(np.random.default_rng(seed), 30):
        (layers,) = case.args
        measured = ex.reference(layers)
        if layers:
            row = shapes.receptive_field([tuple(layer) for layer in layers])[-1]
            assert measured == (row.rf, row.jump, row.start), layers
        else:
            assert measured == (1, 1, 0.0)
        assert isinstance(measured[0], int) and isinstance(measured[1], int) and isinstance(measured[2], float)
    assert ex.reference([(3, 1, 1, 1), (2, 2, 0, 1)] * 3) == (22, 8, 3.5)  # the lesson's table


def test_the_measurement_matches_a_2d_stack_of_real_layers():
    """The 1-D measurement stands for square 2-D layers: a 2-D stack reads the same extent."""
    layers = [(3, 1, 1, 1), (2, 2, 0, 1), (3, 1, 2, 2), (2, 2, 0, 1)]
    rf, jump, start = get_exercise("stack_receptive_field").reference(layers)
    net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.AvgPool2d(2, 2), nn.Conv2d(1, 1, 3, padding=2, dilation=2), nn.AvgPool2d(2, 2))
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0)
    x = torch.ones(1, 1, 64, 64, requires_grad=True)
    i = 7
    net(x)[0, 0, i, i].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero().flatten()
    assert int(rows.max() - rows.min() + 1) == rf
    assert (rows.min() + rows.max()).item() / 2 == start + i * jump


def test_stack_receptive_field_right_answer_passes_and_wrong_ones_fail_without_the_answer():
    assert run_checks("stack_receptive_field", rf_formula, seed=3).passed
    assert _score("stack_receptive_field", rf_formula) == (19, 19)
    wrong = {
        "ignores dilation": _rf_variant(dilation=False),
        "grows with the outgoing jump": _rf_variant(grow_after_jump=True),
        "start ignores padding": _rf_variant(padding=False),
        "start not in steps of the jump": _rf_variant(start_in_jump=False),
        "rf only": lambda layers: rf_formula(layers)[0],
        "ints for start": lambda layers: tuple(int(v) for v in rf_formula(layers)),
    }
    for name, answer in wrong.items():
        passed, total = _score("stack_receptive_field", answer)
        assert passed < total, name
        text = _assert_hidden_failure("stack_receptive_field", answer)
        assert "stack_receptive_field([" in text, (name, text)


def test_stack_receptive_field_refuses_the_helper_and_autograd():
    def helper(layers):
        row = shapes.receptive_field([tuple(layer) for layer in layers])[-1]
        return row.rf, row.jump, row.start

    def measures(layers):
        x = torch.ones(1, 1, 200, requires_grad=True)
        y = x
        for k, s, p, d in layers:
            y = F.conv1d(y, torch.ones(1, 1, k), stride=s, padding=p, dilation=d)
        y[0, 0, 3].backward()
        return rf_formula(layers)

    def backward_only(layers):
        x = torch.ones(3, requires_grad=True)
        (x * 2).sum().backward()
        return rf_formula(layers)

    def autograd_grad(layers):
        x = torch.ones(3, requires_grad=True)
        torch.autograd.grad((x * 2).sum(), x)
        return rf_formula(layers)

    for answer, name in ((helper, "receptive_field"), (measures, "conv1d"), (backward_only, "backward"),
                         (autograd_grad, "autograd.grad")):
        report = run_checks("stack_receptive_field", answer, seed=0)
        assert report.status == "failed" and report.first_failure.status == "forbidden", report.text()
        assert name in report.first_failure.reason


def test_lesson04_pooling_and_shapes_checks_hide_the_expected_value():
    def stride_one_by_default(x, k, stride=None):
        s = 1 if stride is None else stride
        oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
        return torch.stack([torch.stack([x[:, :, i * s:i * s + k, j * s:j * s + k].amax(dim=(2, 3)) for j in range(ow)], -1)
                            for i in range(oh)], -2)

    text = _assert_hidden_failure("max_pool2d", lambda x, k, stride=None: stride_one_by_default(x, k, stride).clamp(min=0))
    assert "values differ" in text or "shape" in text
    _assert_hidden_failure("avg_pool2d", lambda x, k, stride=None: stride_one_by_default(x, k, stride))

    def forgets_stride(input_shape, layers):
        n, c, h, w = input_shape
        out = []
        for layer in layers:
            if layer[0] == "conv":
                _, c, k, s, p = layer
                h, w = h + 2 * p - k + 1, w + 2 * p - k + 1
            elif layer[0] == "pool":
                h, w = h - layer[1] + 1, w - layer[1] + 1
            out.append((n, c, h, w))
        return out

    _assert_hidden_failure("stack_shapes", forgets_stride)


# --------------------------------------------------------------------------------------------
# Lesson 05: class_activation_map
# --------------------------------------------------------------------------------------------


def cam_einsum(features, fc_weight, cls):
    return torch.einsum("c,chw->hw", fc_weight[cls], features)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cam_reference_satisfies_the_gap_identity_on_a_real_head(seed):
    ex = get_exercise("class_activation_map")
    for case in list(ex.public_cases) + ex.draw_cases(np.random.default_rng(seed)):
        features, weight, cls = case.args
        cam = ex.reference(features, weight, cls)
        k, c = weight.shape
        assert cam.shape == features.shape[1:]
        torch.testing.assert_close(cam, cam_einsum(features, weight, cls), rtol=1e-5, atol=1e-5)
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(c, k))
        with torch.no_grad():
            head[2].weight.copy_(weight)
            head[2].bias.uniform_(-2, 2)
            logit = head(features[None])[0, cls]
        torch.testing.assert_close(cam.mean() + head[2].bias[cls], logit, rtol=1e-4, atol=1e-4)
        produced = ex.expected(case)
        assert abs(produced["mean + bias - logit"]) < 1e-4


def test_cam_right_answers_pass_and_wrong_ones_fail_without_the_answer():
    assert run_checks("class_activation_map", cam_einsum, seed=5).passed

    def loops(features, fc_weight, cls):
        out = torch.zeros(features.shape[1:])
        for c in range(features.shape[0]):
            out += fc_weight[cls, c] * features[c]
        return out.numpy()  # an array is fine too

    assert _score("class_activation_map", loops) == (16, 16)
    wrong = {
        "adds the bias-free logit's mean to every pixel": lambda f, w, k: cam_einsum(f, w, k) + cam_einsum(f, w, k).mean(),
        "mean over channels instead of the weighted sum": lambda f, w, k: (w[k].view(-1, 1, 1) * f).mean(0),
        "sums every class's map": lambda f, w, k: torch.einsum("kc,chw->hw", w, f),
        "keeps the channel axis": lambda f, w, k: w[k].view(-1, 1, 1) * f,
        # scaled to [0, 1] as CAM pictures often are: the right picture, but no longer the logit's map
        "normalised for display": lambda f, w, k: (lambda m: (m - m.min()) / (m.max() - m.min() + 1e-8))(cam_einsum(f, w, k)),
    }
    for name, answer in wrong.items():
        passed, total = _score("class_activation_map", answer)
        assert passed < total, name
        _assert_hidden_failure("class_activation_map", answer)


def test_cam_with_the_bias_inside_fails_the_identity_and_says_where():
    ex = get_exercise("class_activation_map")
    case = ex.public_cases[0]
    got = ex.produce(lambda f, w, k: cam_einsum(f, w, k) + 1.0, case)
    assert abs(got["mean + bias - logit"] - 1.0) < 1e-4
    report = run_checks("class_activation_map", lambda f, w, k: cam_einsum(f, w, k) + 1.0, seed=0)
    assert "at ['cam']" in report.text() and "mean + bias - logit" in report.text()


def test_cam_refuses_the_course_helper():
    from course_utils.widgets import class_activation_map as helper

    report = run_checks("class_activation_map", lambda f, w, k: helper(f, w, k), seed=0)
    assert report.first_failure.status == "forbidden" and "class_activation_map" in report.first_failure.reason


# --------------------------------------------------------------------------------------------
# Lesson 05: padded_global_avg_pool and head_param_counts
# --------------------------------------------------------------------------------------------


def padded_gap_loops(x, sizes):
    return torch.stack([x[i, :, :h, :w].sum(dim=(1, 2)) / (h * w) for i, (h, w) in enumerate(sizes)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_padded_gap_reference_is_gap_of_each_crop(seed):
    ex = get_exercise("padded_global_avg_pool")
    cases = list(ex.public_cases) + ex.draw_cases(np.random.default_rng(seed))
    junk = 0
    for case in cases:
        x, sizes = case.args
        assert len(sizes) == x.shape[0] and all(1 <= h <= x.shape[2] and 1 <= w <= x.shape[3] for h, w in sizes)
        crops = [nn.AdaptiveAvgPool2d(1)(x[i:i + 1, :, :h, :w]).flatten(1) for i, (h, w) in enumerate(sizes)]
        torch.testing.assert_close(ex.reference(x, sizes), torch.cat(crops))
        padding = torch.ones_like(x, dtype=torch.bool)
        for i, (h, w) in enumerate(sizes):
            padding[i, :, :h, :w] = False
        junk += bool((x[padding] != 0).any())
    assert junk >= 2  # some cases fill the padding with junk, so dividing a full sum is not enough
    assert _score("padded_global_avg_pool", padded_gap_loops, seed) == (len(cases), len(cases))


def test_padded_gap_wrong_answers_fail_without_the_answer():
    assert run_checks("padded_global_avg_pool", padded_gap_loops, seed=4).passed

    def sum_all_over_own_size(x, sizes):
        return x.sum(dim=(2, 3)) / torch.tensor([h * w for h, w in sizes], dtype=x.dtype).view(-1, 1)

    def counts_non_zeros(x, sizes):
        mask = torch.zeros_like(x)
        for i, (h, w) in enumerate(sizes):
            mask[i, :, :h, :w] = 1
        masked = x * mask
        return masked.sum(dim=(2, 3)) / (masked != 0).sum(dim=(2, 3)).clamp(min=1)

    def swaps_h_and_w(x, sizes):
        return torch.stack([x[i, :, :w, :h].mean(dim=(1, 2)) for i, (h, w) in enumerate(sizes)])

    wrong = {
        "plain GAP": lambda x, sizes: x.mean(dim=(2, 3)),
        "whole sum over own size": sum_all_over_own_size,
        "counts non-zeros": counts_non_zeros,
        "swaps h and w": swaps_h_and_w,
        "keeps 1×1 axes": lambda x, sizes: padded_gap_loops(x, sizes)[..., None, None],
    }
    for name, answer in wrong.items():
        passed, total = _score("padded_global_avg_pool", answer)
        assert passed < total, name
        _assert_hidden_failure("padded_global_avg_pool", answer)


def test_padded_gap_refuses_library_pooling():
    def library(x, sizes):
        return torch.cat([F.adaptive_avg_pool2d(x[i:i + 1, :, :h, :w], 1).flatten(1) for i, (h, w) in enumerate(sizes)])

    def module(x, sizes):
        return torch.cat([nn.AvgPool2d((h, w))(x[i:i + 1, :, :h, :w]).flatten(1) for i, (h, w) in enumerate(sizes)])

    for answer in (library, module):
        report = run_checks("padded_global_avg_pool", answer, seed=0)
        assert report.first_failure.status == "forbidden", report.text()
        assert "off-limits" in report.text()


def test_head_param_counts_check_hides_the_counts():
    text = _assert_hidden_failure("head_param_counts", lambda c, h, w, k: (c * h * w * k, c * k))
    assert "40970" not in text and "40,970" not in text and "650" not in text


# --------------------------------------------------------------------------------------------
# End to end: release, attempt wrongly and with forbidden calls, grade: one batch per lesson
# --------------------------------------------------------------------------------------------

# lesson -> {submission name: {exercise id: code}} written into copies of the released workbook.
ATTEMPTS = {
    L04: {
        "attempt": {
            # right
            "stack_shapes": None,
            # from scratch, but stride defaults to 1 instead of kernel_size
            "max_pool2d": (
                "import torch\n"
                "def max_pool2d(x, kernel_size, stride=None):\n"
                "    s, k = (1 if stride is None else stride), kernel_size\n"
                "    oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1\n"
                "    out = torch.full((x.shape[0], x.shape[1], oh, ow), float('-inf'), dtype=x.dtype)\n"
                "    for i in range(k):\n"
                "        for j in range(k):\n"
                "            out = torch.maximum(out, x[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s])\n"
                "    return out\n"
            ),
            # the lesson's rule, without dilation and with start left at 0
            "stack_receptive_field": (
                "def stack_receptive_field(layers):\n"
                "    rf, jump = 1, 1\n"
                "    for kernel_size, stride, padding, dilation in layers:\n"
                "        rf += (kernel_size - 1) * jump\n"
                "        jump *= stride\n"
                "    return rf, jump, 0.0\n"
            ),
        },
        "library": {
            "stack_shapes": (
                "import torch\nfrom course_utils.shapes import trace\nfrom torch import nn\n"
                "def stack_shapes(input_shape, layers):\n"
                "    mods, c = [], input_shape[1]\n"
                "    for layer in layers:\n"
                "        if layer[0] == 'conv':\n"
                "            mods.append(nn.Conv2d(c, layer[1], layer[2], layer[3], layer[4])); c = layer[1]\n"
                "        elif layer[0] == 'pool':\n"
                "            mods.append(nn.MaxPool2d(layer[1], layer[2]))\n"
                "        else:\n"
                "            mods.append(nn.ReLU())\n"
                "    return [tuple(r.output_shape) for r in trace(nn.Sequential(*mods), input_shape)][1:]\n"
            ),
            "max_pool2d": (
                "import torch.nn.functional as F\n"
                "def max_pool2d(x, kernel_size, stride=None):\n"
                "    return F.max_pool2d(x, kernel_size, kernel_size if stride is None else stride)\n"
            ),
            "avg_pool2d": (
                "import torch.nn as nn\n"
                "def avg_pool2d(x, kernel_size, stride=None):\n"
                "    return nn.AvgPool2d(kernel_size, stride)(x)\n"
            ),
            "stack_receptive_field": (
                "from course_utils.shapes import receptive_field\n"
                "def stack_receptive_field(layers):\n"
                "    if not layers:\n"
                "        return 1, 1, 0.0\n"
                "    row = receptive_field([tuple(layer) for layer in layers])[-1]\n"
                "    return row.rf, row.jump, row.start\n"
            ),
        },
    },
    L05: {
        "attempt": {
            "head_param_counts": None,
            # puts the bias inside the map
            "class_activation_map": (
                "def class_activation_map(features, fc_weight, cls):\n"
                "    return (fc_weight[cls].view(-1, 1, 1) * features).sum(dim=0) + 1.0\n"
            ),
            # a plain GAP: counts the padding
            "padded_global_avg_pool": (
                "def padded_global_avg_pool(x, sizes):\n"
                "    return x.mean(dim=(2, 3))\n"
            ),
        },
        "library": {
            "head_param_counts": (
                "from course_utils.shapes import linear_params\n"
                "def head_param_counts(channels, height, width, num_classes):\n"
                "    return linear_params(channels * height * width, num_classes), linear_params(channels, num_classes)\n"
            ),
            "class_activation_map": (
                "from course_utils.widgets import class_activation_map as cam\n"
                "def class_activation_map(features, fc_weight, cls):\n"
                "    return cam(features, fc_weight, cls)\n"
            ),
            "padded_global_avg_pool": (
                "import torch\nimport torch.nn.functional as F\n"
                "def padded_global_avg_pool(x, sizes):\n"
                "    return torch.cat([F.adaptive_avg_pool2d(x[i:i + 1, :, :h, :w], 1).flatten(1)\n"
                "                      for i, (h, w) in enumerate(sizes)])\n"
            ),
        },
    },
}


@pytest.mark.slow  # grades a batch with `course grade`: not for the quick run (tests/README.md)
@pytest.mark.parametrize("stem", [L04, L05])
def test_released_lesson_attempted_wrongly_and_with_forbidden_calls_then_graded(tmp_path, stem):
    batch = grade_lesson_batch(tmp_path, stem, ATTEMPTS[stem], seed=2024)
    assert_solved_and_untouched(batch)
    students, points, exercises, out = batch.students, batch.points, batch.exercises, batch.out

    attempt = students["attempt"]
    assert attempt["status"] == "ok" and attempt["cells"]["errors"] == [], attempt.get("detail")
    for ex_id, code in ATTEMPTS[stem]["attempt"].items():
        rec = attempt["exercises"][ex_id]
        if code is None:
            assert rec["score"] == points[ex_id], rec
        else:
            assert rec["score"] < points[ex_id] and rec["status"] != "forbidden", rec
    # wrong answers earn what they deserve: the stride default matters in one edge case only; the
    # receptive field without dilation or start, and the CAM with the bias inside, pass no case
    # (every case checks start / the whole map), nor a plain mean on padded images with any padding
    if stem == L04:
        assert 0 < attempt["exercises"]["max_pool2d"]["score"] < points["max_pool2d"]
        assert attempt["exercises"]["stack_receptive_field"]["score"] < 0.5 * points["stack_receptive_field"]
    else:
        assert attempt["exercises"]["class_activation_map"]["score"] == 0
        assert attempt["exercises"]["padded_global_avg_pool"]["score"] < points["padded_global_avg_pool"]
    for ex in exercises:
        if ex.id not in ATTEMPTS[stem]["attempt"]:
            assert attempt["exercises"][ex.id]["status"] == "not-attempted"

    library = students["library"]
    for ex_id in ATTEMPTS[stem]["library"]:
        rec = library["exercises"][ex_id]
        assert rec["score"] == 0 and rec["status"] == "forbidden", (ex_id, rec)
        assert "off-limits" in json.dumps(rec), rec
    feedback = (out / "feedback" / "library.md").read_text()
    assert "off-limits" in feedback
