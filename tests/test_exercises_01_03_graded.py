"""Lessons 01-03's new and changed exercises after issue 15, seen by a learner and by the grader.

Quick tests: ``check`` passes a right answer written here and fails plausible wrong ones with a ❌
that shows the input and what was returned; for the two design tasks (``conv_macs``,
``design_conv``) it never shows the expected value, and for every one the forbidden library call is
refused. (The references themselves are tested against PyTorch in ``test_lesson01_02_exercises.py``
and ``test_lesson03_05_exercises.py``.)

Slow tests: each lesson is released, then graded by ``course grade`` in ONE batch per lesson
holding the solved lesson, the untouched workbook, a copy with wrong answers written from scratch,
and a copy whose answers call the functions the exercises forbid.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils.exercises.check import run_checks
from course_utils.exercises.registry import exercises_for_lesson, get_exercise
from graded_batches import assert_solved_and_untouched, grade_lesson_batch

L01, L02, L03 = "01_why_convolution", "02_output_size", "03_conv2d_in_pytorch"


# --------------------------------------------------------------------------------------------
# Quick: what check prints
# --------------------------------------------------------------------------------------------


def _failed_report(exercise_id: str, answer, seed: int = 0) -> str:
    report = run_checks(exercise_id, answer, seed=seed)
    text = report.text()
    assert report.status == "failed", text
    assert report.first_failure is not None and report.first_failure.status in ("fail", "error"), text
    assert f"input:    {get_exercise(exercise_id).name}(" in text, text
    assert "returned:" in text or "raised:" in text, text
    return text


def test_lessons_list_their_exercises_easiest_first():
    assert [e.id for e in exercises_for_lesson(L01)] == ["dense_params", "conv_macs", "corr2d"]
    assert [e.id for e in exercises_for_lesson(L02)] == ["conv_out", "same_padding", "stack_sizes", "design_conv"]
    assert [e.id for e in exercises_for_lesson(L03)] == ["conv2d_param_count", "separable_as_full", "conv2d_forward"]
    for lesson in (L01, L03):  # more points for harder exercises, in the order they appear
        points = [e.points for e in exercises_for_lesson(lesson)]
        assert points == sorted(points), (lesson, points)


def test_conv_macs_check_never_shows_the_count():
    def forgets_padding(cin, cout, k, h, w, padding=0):
        kh, kw = (k, k) if isinstance(k, int) else k
        return cout * (h - kh + 1) * (w - kw + 1) * cin * kh * kw

    text = _failed_report("conv_macs", forgets_padding)
    assert "expected:" not in text and "86704128" not in text and "86,704,128" not in text, text
    assert "why:      that is not the right value" in text


def test_design_conv_check_says_where_it_differs_and_never_the_pair():
    def same_padding_always(in_hw, out_hw, k):
        kh, kw = (k, k) if isinstance(k, int) else k
        return (in_hw[0] // out_hw[0], in_hw[1] // out_hw[1]), (kh // 2, kw // 2)

    text = _failed_report("design_conv", same_padding_always, seed=1)
    assert "expected:" not in text, text
    assert "why:" in text and ("at ['returned']" in text or "missing ['raised']" in text), text

    def never_raises(in_hw, out_hw, k):
        return (1, 1), (0, 0)

    report = run_checks("design_conv", never_raises, seed=0)
    impossible = [r for r in report.results if "impossible" in r.label]
    assert impossible and all(r.status == "fail" and "missing ['raised']" in r.reason for r in impossible)


def test_separable_as_full_check_shows_input_and_returned():
    text = _failed_report("separable_as_full", lambda dw, pw: pw[:, :, 0, 0].T[:, :, None, None] * dw[:, 0][None])
    assert "tensor shape" in text  # the inputs are described by shape, a wrong answer by its shape too


def test_conv2d_forward_without_dilation_fails_in_check_and_with_F_conv2d_is_refused():
    def ignores_dilation(x, weight, bias=None, stride=1, padding=0, dilation=1):
        xp = F.pad(x, (padding,) * 4)
        n, _, h, w = xp.shape
        o, _, kh, kw = weight.shape
        oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
        out = torch.zeros(n, o, oh, ow)
        for i in range(kh):
            for j in range(kw):
                seen = xp[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
                out += torch.einsum("nchw,oc->nohw", seen, weight[:, :, i, j])
        return out if bias is None else out + bias.view(1, -1, 1, 1)

    report = run_checks("conv2d_forward", ignores_dilation, seed=0)
    assert report.status == "failed" and 0 < report.n_passed < report.n_public + report.n_random
    assert "dilation" in report.first_failure.label or "dilation=2" in report.first_failure.shown_input
    library = run_checks("conv2d_forward",
                         lambda x, w, b=None, stride=1, padding=0, dilation=1: F.conv2d(x, w, b, stride, padding, dilation),
                         seed=0)
    assert library.first_failure.status == "forbidden" and "F.conv2d is off-limits" in library.text()


@pytest.mark.parametrize("exercise_id, answer, name", [
    ("conv_macs", lambda cin, cout, k, h, w, padding=0: __import__("course_utils.shapes", fromlist=["x"]).conv_macs(
        cin, cout, k, __import__("course_utils.shapes", fromlist=["x"]).conv_out_2d((h, w), k, padding=padding)),
     "course_utils.shapes.conv_macs"),
    ("design_conv", lambda in_hw, out_hw, k: __import__("course_utils.shapes", fromlist=["x"]).conv_out_2d(in_hw, k),
     "course_utils.shapes.conv_out_2d"),
])
def test_the_course_helpers_are_refused_in_the_design_tasks(exercise_id, answer, name):
    report = run_checks(exercise_id, answer, seed=0)
    assert report.n_passed == 0 and report.first_failure.status == "forbidden", report.text()
    assert "off-limits" in report.text()


def test_conv_macs_by_flop_counter_is_refused():
    from torch.utils.flop_counter import FlopCounterMode

    def by_flop_counter(cin, cout, k, h, w, padding=0):
        layer = torch.nn.Conv2d(cin, cout, k, padding=padding, bias=False, device="meta")
        with FlopCounterMode(display=False) as counter:
            layer(torch.empty(1, cin, h, w, device="meta"))
        return counter.get_total_flops() // 2

    report = run_checks("conv_macs", by_flop_counter, seed=0, n_random=2)
    assert report.first_failure is not None and report.first_failure.status == "forbidden", report.text()


# --------------------------------------------------------------------------------------------
# Slow: release, attempt wrongly and with forbidden calls, grade: one batch per lesson
# --------------------------------------------------------------------------------------------

# lesson -> {submission: {exercise id: code, or None for the lesson's own solution}}
ATTEMPTS = {
    L01: {
        "attempt": {
            "dense_params": None,
            # counts the output positions of the unpadded image: right only when padding is 0
            "conv_macs": (
                "def conv_macs(in_channels, out_channels, kernel_size, height, width, padding=0):\n"
                "    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size\n"
                "    return out_channels * (height - kh + 1) * (width - kw + 1) * in_channels * kh * kw\n"
            ),
        },
        "library": {
            "conv_macs": (
                "from course_utils import shapes\n"
                "def conv_macs(in_channels, out_channels, kernel_size, height, width, padding=0):\n"
                "    out_hw = shapes.conv_out_2d((height, width), kernel_size, padding=padding)\n"
                "    return shapes.conv_macs(in_channels, out_channels, kernel_size, out_hw)\n"
            ),
            "corr2d": (
                "import torch.nn.functional as F\n"
                "def corr2d(x, k):\n"
                "    return F.conv2d(x[None, None], k[None, None])[0, 0]\n"
            ),
        },
    },
    L02: {
        "attempt": {
            "conv_out": None,
            # stride from the ratio of sizes, "same" padding, and never a ValueError
            "design_conv": (
                "def design_conv(in_hw, out_hw, kernel_size):\n"
                "    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size\n"
                "    stride = (max(1, in_hw[0] // out_hw[0]), max(1, in_hw[1] // out_hw[1]))\n"
                "    return stride, (kh // 2, kw // 2)\n"
            ),
        },
        "library": {
            "design_conv": (
                "from course_utils.shapes import conv_out_2d\n"
                "def design_conv(in_hw, out_hw, kernel_size):\n"
                "    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size\n"
                "    for sh in range(1, in_hw[0] + kh + 1):\n"
                "        for ph in range(kh // 2 + 1):\n"
                "            if in_hw[0] + 2 * ph >= kh and conv_out_2d((in_hw[0], kw), (kh, kw), (sh, 1), (ph, 0))[0] == out_hw[0]:\n"
                "                break\n"
                "        else:\n"
                "            continue\n"
                "        break\n"
                "    else:\n"
                "        raise ValueError('height')\n"
                "    for sw in range(1, in_hw[1] + kw + 1):\n"
                "        for pw in range(kw // 2 + 1):\n"
                "            if in_hw[1] + 2 * pw >= kw and conv_out_2d((kh, in_hw[1]), (kh, kw), (1, sw), (0, pw))[1] == out_hw[1]:\n"
                "                break\n"
                "        else:\n"
                "            continue\n"
                "        break\n"
                "    else:\n"
                "        raise ValueError('width')\n"
                "    return (sh, sw), (ph, pw)\n"
            ),
        },
    },
    L03: {
        "attempt": {
            "conv2d_param_count": None,
            # mixes with the transposed pointwise matrix
            "separable_as_full": (
                "def separable_as_full(depthwise_weight, pointwise_weight):\n"
                "    return pointwise_weight[:, :, 0, 0].T[:, :, None, None] * depthwise_weight[:, 0][None]\n"
            ),
            # slides the taps itself, but ignores dilation
            "conv2d_forward": (
                "import torch\nimport torch.nn.functional as F\n"
                "def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1):\n"
                "    xp = F.pad(x, (padding,) * 4)\n"
                "    n, _, h, w = xp.shape\n"
                "    o, _, kh, kw = weight.shape\n"
                "    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1\n"
                "    out = x.new_zeros(n, o, oh, ow)\n"
                "    for i in range(kh):\n"
                "        for j in range(kw):\n"
                "            seen = xp[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]\n"
                "            out += torch.einsum('nchw,oc->nohw', seen, weight[:, :, i, j])\n"
                "    return out if bias is None else out + bias.view(1, -1, 1, 1)\n"
            ),
        },
        "library": {
            # right values, measured by running the pair on one-hot images with F.conv2d
            "separable_as_full": (
                "import torch\nimport torch.nn.functional as F\n"
                "def separable_as_full(depthwise_weight, pointwise_weight):\n"
                "    c_in, _, kh, kw = depthwise_weight.shape\n"
                "    x = torch.zeros(c_in, c_in, 2 * kh - 1, 2 * kw - 1)\n"
                "    x[range(c_in), range(c_in), kh - 1, kw - 1] = 1\n"
                "    y = F.conv2d(F.conv2d(x, depthwise_weight, groups=c_in), pointwise_weight)\n"
                "    return y.transpose(0, 1).flip(-1, -2)\n"
            ),
            "conv2d_forward": (
                "import torch.nn.functional as F\n"
                "def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1):\n"
                "    return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)\n"
            ),
        },
    },
}


def test_the_attempts_are_wrong_and_the_library_copies_right_outside_the_guard():
    # So that the slow test's verdicts mean what they say: the wrong answers are wrong on some
    # cases, and the library answers would earn full marks if they were allowed.
    from course_utils.exercises.core import compare

    for lesson, subs in ATTEMPTS.items():
        for name, answers in subs.items():
            for ex_id, code in answers.items():
                if code is None:
                    continue
                ex = get_exercise(ex_id)
                scope: dict = {}
                exec(compile(code, f"<{name} {ex_id}>", "exec"), scope)
                answer = scope[ex.name]
                cases = list(ex.public_cases) + ex.draw_cases(np.random.default_rng(0))
                ok = []
                for case in cases:
                    try:
                        ok.append(compare(ex.expected(case), ex.produce(answer, case), ex.rtol, ex.atol).ok)
                    except Exception:
                        ok.append(False)
                if name == "attempt":
                    assert not all(ok), (lesson, ex_id)
                else:
                    assert all(ok), (lesson, ex_id, ok)


@pytest.mark.slow  # grades a batch with `course grade`: not for the quick run (tests/README.md)
@pytest.mark.parametrize("stem", [L01, L02, L03])
def test_released_lesson_attempted_wrongly_and_with_forbidden_calls_then_graded(tmp_path, stem):
    batch = grade_lesson_batch(tmp_path, stem, ATTEMPTS[stem], seed=2025)
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
            if not next(ex for ex in exercises if ex.id == ex_id).show_expected:
                # The feedback says where a design task's answer differs, never the expected answer.
                assert not re.search(r"expected [\(\[\{\s-]*\d", json.dumps(rec)), rec
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
