"""Forbidden calls (issue 12, item 1) and answer leaks (item 2), in ``check`` and in the guard itself.

The red-team findings each have a test here: a ``conv2d_forward`` that calls ``F.conv2d`` passed
all 18 checks, a ``batchnorm2d_forward`` wrapping ``F.batch_norm`` earned every point,
``course_utils.shapes.conv_out`` answered ``conv_out``, ``check("padding_32_to_16", 3)`` printed
the expected value, and the ``conv_out`` hint printed the whole formula.
"""
from __future__ import annotations

import re
import types

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils import shapes
from course_utils.exercises import all_exercises, get_exercise, run_checks
from course_utils.exercises.check import check
from course_utils.exercises.forbidden import ForbiddenCallError, forbid, scan_source

X = torch.randn(2, 3, 6, 6)
W = torch.randn(4, 3, 3, 3)


# --------------------------------------------------------------------------------------------
# Honest from-scratch answers, so the tests show what passes as well as what fails
# --------------------------------------------------------------------------------------------


def conv2d_scratch(x, weight, bias=None, stride=1, padding=0, dilation=1):
    x = torch.nn.functional.pad(x, (padding, padding, padding, padding)) if padding else x
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    sh, sw = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1  # what a dilated window spans
    oh, ow = (h - sh) // stride + 1, (w - sw) // stride + 1
    out = torch.zeros(n, o, oh, ow, dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            window = x[:, :, i * stride:i * stride + sh:dilation, j * stride:j * stride + sw:dilation]
            out[:, :, i, j] = torch.einsum("nchw,ochw->no", window, weight)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def batchnorm_scratch(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    if training:
        m = x.shape[0] * x.shape[2] * x.shape[3]
        mean = x.mean(dim=(0, 2, 3))
        var = x.var(dim=(0, 2, 3), unbiased=False)
        new_mean = (1 - momentum) * running_mean + momentum * mean
        new_var = (1 - momentum) * running_var + momentum * var * m / (m - 1)
    else:
        mean, var, new_mean, new_var = running_mean, running_var, running_mean.clone(), running_var.clone()
    x_hat = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + eps)
    return x_hat * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1), new_mean, new_var


def conv2d_library(x, weight, bias=None, stride=1, padding=0, dilation=1):
    return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)


def batchnorm_library(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    rm, rv = running_mean.clone(), running_var.clone()
    out = F.batch_norm(x, rm, rv, weight, bias, training=training, momentum=momentum, eps=eps)
    return out, rm, rv


# --------------------------------------------------------------------------------------------
# check: the red-team answers fail with the reason, honest ones pass
# --------------------------------------------------------------------------------------------


def test_conv2d_forward_calling_F_conv2d_fails_in_check_with_the_reason():
    report = run_checks("conv2d_forward", conv2d_library, seed=0)
    assert report.status == "failed" and report.n_passed == 0
    assert report.first_failure.status == "forbidden"
    assert "F.conv2d is off-limits in exercise 'conv2d_forward'" in report.text()


def test_conv2d_forward_from_scratch_passes_and_may_use_F_pad():
    assert run_checks("conv2d_forward", conv2d_scratch, seed=0).passed


def test_batchnorm_wrapping_F_batch_norm_fails_in_check():
    report = run_checks("batchnorm2d_forward", batchnorm_library, seed=0)
    assert report.status == "failed" and report.n_passed == 0
    assert "F.batch_norm is off-limits" in report.first_failure.reason
    assert run_checks("batchnorm2d_forward", batchnorm_scratch, seed=0).passed


@pytest.mark.parametrize(
    "answer",
    [
        # a renamed alias, the aten operator itself, the module, a learner who swallows the error
        lambda x, w, b=None, stride=1, padding=0, dilation=1: torch.conv2d(x, w, b, stride, padding, dilation),
        lambda x, w, b=None, stride=1, padding=0, dilation=1: torch.ops.aten.convolution(
            x, w, b, [stride] * 2, [padding] * 2, [dilation] * 2, False, [0, 0], 1),
        lambda x, w, b=None, stride=1, padding=0, dilation=1: getattr(F, "conv" + "2d")(x, w, b, stride, padding, dilation),
    ],
    ids=["torch.conv2d", "aten.convolution", "getattr"],
)
def test_hidden_conv2d_calls_are_still_seen(answer):
    report = run_checks("conv2d_forward", answer, seed=0)
    assert report.n_passed == 0 and report.first_failure.status == "forbidden"


def test_a_learner_who_catches_the_error_still_fails():
    def sneaky(x, w, b=None, stride=1, padding=0, dilation=1):
        try:
            return F.conv2d(x, w, b, stride, padding, dilation)
        except Exception:
            return conv2d_scratch(x, w, b, stride, padding, dilation)

    report = run_checks("conv2d_forward", sneaky, seed=0)
    assert report.n_passed == 0 and report.first_failure.status == "forbidden"


def test_conv_out_answered_by_the_course_helper_fails():
    report = run_checks("conv_out", shapes.conv_out, seed=0)
    assert report.n_passed == 0 and "course_utils.shapes.conv_out is off-limits" in report.first_failure.reason
    honest = lambda n, k, stride=1, padding=0, dilation=1: (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1  # noqa: E731
    assert run_checks("conv_out", honest, seed=0).passed


def test_the_reference_itself_is_forbidden_even_through_an_alias():
    ref = get_exercise("conv2d_forward").reference
    alias = ref  # bound before the exercise runs, as `from course_utils.exercises.lesson03 import ...` would
    report = run_checks("conv2d_forward", lambda *a, **k: alias(*a, **k), seed=0)
    assert report.n_passed == 0 and "reference" in report.first_failure.reason


# --------------------------------------------------------------------------------------------
# forbid: scope and restoration
# --------------------------------------------------------------------------------------------


def test_forbid_affects_only_the_block_and_restores_everything_even_after_an_exception():
    ex = get_exercise("conv2d_forward")
    conv_forward_code = nn.Conv2d.forward.__code__
    helper_code = shapes.conv_out.__code__
    ref_code = ex.reference.__code__
    with pytest.raises(ForbiddenCallError):
        with forbid(ex):
            F.conv2d(X, W)
    with pytest.raises(RuntimeError):
        with forbid(get_exercise("conv_out")):
            raise RuntimeError("the learner's own error")
    assert nn.Conv2d.forward.__code__ is conv_forward_code
    assert shapes.conv_out.__code__ is helper_code and ex.reference.__code__ is ref_code
    # Outside the block everything works: the learner's other cells and the grader's comparison.
    assert F.conv2d(X, W).shape == (2, 4, 4, 4) and nn.Conv2d(3, 4, 3)(X).shape == (2, 4, 4, 4)
    assert shapes.conv_out(32, 3, padding=1) == 32
    assert torch.allclose(ex.reference(X, W), F.conv2d(X, W), atol=1e-5)


def test_a_guard_in_another_thread_leaves_this_thread_alone_and_overlaps_restore_the_original():
    """A learner's function that ``check`` abandoned after its time limit (threads, where there is no
    alarm signal) keeps running inside its guard; the next check's reference must still work, and
    overlapping guards must not leave a swapped body behind when both have exited."""
    import threading

    ex = get_exercise("conv_out")
    helper_code = shapes.conv_out.__code__
    inside, leave = threading.Event(), threading.Event()
    seen = {}

    def learner_still_running():
        with forbid(ex):
            inside.set()
            try:
                shapes.conv_out(32, 3)
            except ForbiddenCallError as exc:
                seen["in_thread"] = str(exc)
            leave.wait(30)

    thread = threading.Thread(target=learner_still_running)
    thread.start()
    assert inside.wait(30)
    try:
        assert shapes.conv_out(32, 3, padding=1) == 32          # this thread has no guard
        assert ex.reference(32, 3, padding=1) == 32
        with forbid(ex):                                        # an overlapping guard in this thread
            with pytest.raises(ForbiddenCallError):
                shapes.conv_out(32, 3)
        assert shapes.conv_out(16, 3, stride=2, padding=1) == 8  # still itself after the inner exit
        honest = lambda n, k, stride=1, padding=0, dilation=1: (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1  # noqa: E731
        assert run_checks("conv_out", honest, seed=0).passed     # expected values from the reference
    finally:
        leave.set()
        thread.join(30)
    assert "off-limits" in seen["in_thread"]
    assert shapes.conv_out.__code__ is helper_code               # the last guard out restored it


def test_forbid_names_the_function_and_the_exercise():
    ex = types.SimpleNamespace(id="dropout2d_forward", forbidden=("torch.nn.functional.dropout2d", "torch.nn.Dropout2d.forward"))
    with forbid(ex) as guard:
        with pytest.raises(ForbiddenCallError, match=r"F.dropout2d is off-limits in exercise 'dropout2d_forward'"):
            F.dropout2d(X, 0.5, training=True)
        with pytest.raises(ForbiddenCallError, match="nn.Dropout2d"):
            nn.Dropout2d(0.5)(X)
        assert (X * 2).shape == X.shape  # ordinary tensor code is untouched
    assert len(guard.violations) == 2


def test_required_forbidden_lists_are_declared():
    need = {
        "corr2d": {"torch.nn.functional.conv2d", "torch.nn.functional.unfold"},
        "conv2d_forward": {"torch.nn.functional.conv2d", "torch.nn.functional.conv1d", "torch.nn.functional.conv3d",
                           "torch.nn.functional.unfold", "torch.nn.Conv2d.forward", "torch.ops.aten.convolution"},
        "max_pool2d": {"torch.nn.functional.max_pool2d", "torch.nn.functional.avg_pool2d", "torch.nn.functional.adaptive_max_pool2d",
                       "torch.nn.functional.adaptive_avg_pool2d", "torch.nn.MaxPool2d.forward", "torch.nn.AvgPool2d.forward",
                       "torch.nn.functional.conv2d", "torch.nn.functional.unfold"},
        "avg_pool2d": {"torch.nn.functional.avg_pool2d", "torch.nn.functional.adaptive_avg_pool2d", "torch.nn.AvgPool2d.forward",
                       "torch.nn.functional.conv2d", "torch.nn.functional.unfold"},
        "padded_global_avg_pool": {"torch.nn.functional.adaptive_avg_pool2d", "torch.nn.functional.avg_pool2d", "torch.nn.AdaptiveAvgPool2d.forward",
                                   "torch.nn.functional.conv2d"},
        "stack_receptive_field": {"course_utils.shapes.receptive_field", "torch.nn.functional.conv1d", "torch.nn.functional.avg_pool1d"},
        "class_activation_map": {"course_utils.widgets.class_activation_map"},
        "batchnorm2d_forward": {"torch.nn.functional.batch_norm", "torch.batch_norm", "torch.nn.BatchNorm2d.forward"},
        "dropout2d_forward": {"torch.nn.functional.dropout2d", "torch.nn.functional.dropout", "torch.nn.Dropout2d.forward"},
        "conv_out": {"course_utils.shapes.conv_out"},
        "same_padding": {"course_utils.shapes.same_padding"},
        "stack_sizes": {"course_utils.shapes.conv_out", "course_utils.shapes.pool_out"},
        "separable_as_full": {"torch.nn.functional.conv2d", "torch.nn.Conv2d.forward"},
        "conv_macs": {"course_utils.shapes.conv_macs", "course_utils.shapes.cost_ledger", "course_utils.shapes.trace"},
        "design_conv": {"course_utils.shapes.conv_out", "course_utils.shapes.conv_out_2d"},
    }
    for ex_id, names in need.items():
        missing = names - set(get_exercise(ex_id).forbidden)
        assert not missing, f"{ex_id} does not forbid {missing}"


@pytest.mark.parametrize(
    "ex_id, call",
    [
        ("max_pool2d", lambda: F.max_pool2d(X, 2)),
        ("max_pool2d", lambda: nn.MaxPool2d(2)(X)),
        ("avg_pool2d", lambda: F.avg_pool2d(X, 2)),
        ("max_pool2d", lambda: F.unfold(X, 2, stride=2)),
        ("avg_pool2d", lambda: F.conv2d(X, torch.full((3, 1, 2, 2), 0.25), stride=2, groups=3)),
        ("padded_global_avg_pool", lambda: F.conv2d(X, torch.ones(1, 3, 6, 6))),
        ("padded_global_avg_pool", lambda: F.adaptive_avg_pool2d(X, 1)),
        ("stack_receptive_field", lambda: F.avg_pool1d(X[0], 2)),
        ("batchnorm2d_forward", lambda: nn.BatchNorm2d(3)(X)),
        ("batchnorm2d_forward", lambda: torch.batch_norm(X, None, None, torch.zeros(3), torch.ones(3), True, 0.1, 1e-5, False)),
        ("dropout2d_forward", lambda: F.dropout(X, 0.5)),
        ("corr2d", lambda: F.unfold(X, 3)),
        ("separable_as_full", lambda: nn.Conv2d(3, 4, 1)(X)),
        ("conv_macs", lambda: shapes.conv_macs(3, 4, 3, 6)),
        ("design_conv", lambda: shapes.conv_out_2d((6, 6), 3)),
    ],
)
def test_each_declared_library_call_raises_inside_its_exercise(ex_id, call):
    with forbid(get_exercise(ex_id)):
        with pytest.raises(ForbiddenCallError):
            call()
    call()  # and works again afterwards


# --------------------------------------------------------------------------------------------
# scan_source: the static check
# --------------------------------------------------------------------------------------------


def test_scan_source_finds_forbidden_names_through_aliases_and_helpers():
    ex = get_exercise("conv2d_forward")
    src = (
        "import torch\nimport torch.nn.functional as F\nfrom torch.nn.functional import conv2d as c\n\n\n"
        "def helper(x, w):\n    return c(x, w)\n\n\n"
        "def conv2d_forward(x, weight, bias=None, stride=1, padding=0):\n    return helper(x, weight)\n\n\n"
        "y = F.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 1, 1))  # elsewhere: allowed\n"
    )
    reasons = scan_source(ex, src)
    assert reasons and all("F.conv2d" in r for r in reasons) and "line 7" in reasons[0]
    clean = "import torch.nn.functional as F\ny = F.conv2d\n\n\ndef conv2d_forward(x, weight, bias=None, stride=1, padding=0):\n    return x\n"
    assert scan_source(ex, clean) == []


def test_scan_source_finds_the_course_answers():
    conv_out = get_exercise("conv_out")
    assert scan_source(conv_out, "from course_utils import shapes\ndef conv_out(n, k, stride=1, padding=0, dilation=1):\n    return shapes.conv_out(n, k, stride, padding, dilation)")
    assert scan_source(conv_out, "from course_utils.exercises.lesson02 import conv_out")
    leaked = scan_source(conv_out, "from course_utils.exercises import check, get_exercise\nconv_out = get_exercise('conv_out').reference")
    assert any(".reference" in r for r in leaked)
    assert scan_source(conv_out, "from course_utils.exercises import check\ndef conv_out(n, k, stride=1, padding=0, dilation=1):\n    return n") == []


# --------------------------------------------------------------------------------------------
# Item 2: no answer leaks
# --------------------------------------------------------------------------------------------


def test_check_never_shows_the_expected_value_of_a_value_exercise(capsys):
    for ex in all_exercises():
        if ex.kind != "value" or ex.lesson.startswith("_"):  # test-only banks hold test hints
            continue
        expected = ex.reference()
        wrong = expected + 1 if isinstance(expected, int) else None
        report = run_checks(ex.id, wrong)
        text = report.text()
        assert report.status == "failed" and "expected:" not in text
        body = "\n".join(line for line in text.splitlines()[1:] if "returned:" not in line)  # line 1 is the id
        assert not re.search(rf"(?<![\d.]){re.escape(str(expected))}(?![\d.])", body), text


_FORMULA = re.compile(r"[\w)\]]\s*(?:[+\-−*/·]|//)\s*[\w(\[]")
_SHAPE = re.compile(r"\b\w(?:×\w)+\b")  # N×C×H×W, k×k, 1×1: shapes, not arithmetic


def _looks_like_a_formula(text: str) -> bool:
    # Two or more arithmetic operators between operands, or an integer division: a formula.
    text = _SHAPE.sub("SHAPE", text)
    return "//" in text or len(_FORMULA.findall(text)) >= 2 or re.search(r"\w\s*=\s*\(?\w+\s*[+\-−*/·×]", text) is not None


def test_the_formula_detector_catches_the_old_conv_out_hint():
    old = ("The window spans dilation·(kernel_size − 1) + 1 pixels; padding adds pixels on both sides; "
           "count the window positions with floor division: (in + 2·padding − span) // stride + 1.")
    assert _looks_like_a_formula(old)


def test_no_hint_is_a_formula_and_every_exercise_has_graduated_hints():
    for ex in all_exercises():
        if ex.lesson.startswith("_"):
            continue  # test-only banks
        assert len(ex.hints) >= 2, f"{ex.id} has {len(ex.hints)} hint(s); give a first nudge and a more specific one"
        for hint in ex.hints:
            assert not _looks_like_a_formula(hint), f"{ex.id}: hint gives the formula: {hint}"


def test_check_shows_the_next_hint_after_each_failure(capsys):
    ex = get_exercise("conv_out")
    from course_utils.exercises import check as check_module  # the module, for its failure counter

    check_module_mod = __import__("course_utils.exercises.check", fromlist=["_FAILURES"])
    check_module_mod._FAILURES.pop("conv_out", None)
    shown = []
    for _ in range(4):
        check("conv_out", lambda n, k, stride=1, padding=0, dilation=1: 0)
        shown.append(capsys.readouterr().out)
    assert ex.hints[0] in shown[0] and ex.hints[1] in shown[1] and ex.hints[2] in shown[2] and ex.hints[2] in shown[3]
    assert "hint 2/3:" in shown[1]
    del check_module


def test_scan_source_ignores_module_variables_that_share_a_parameter_name():
    # Lesson notebooks define `conv = nn.Conv2d(...)` and `weight = conv.weight` at top level; the
    # learner's `weight` parameter is not that variable, and must not drag nn.Conv2d in.
    src = (
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "conv = nn.Conv2d(3, 4, 3)\nweight = conv.weight\nx = F.conv2d(torch.ones(1, 3, 5, 5), weight)\n\n\n"
        "def helper(t):\n    return t.sum()\n\n\n"
        "def conv2d_forward(x, weight, bias=None, stride=1, padding=0):\n"
        "    out = helper(x) * weight.sum()\n    for conv in range(2):\n        out = out + conv\n    return out\n"
    )
    assert scan_source(get_exercise("conv2d_forward"), src) == []
    hidden = src + "\n\n\n_c = F.conv2d\n\n\ndef conv2d_forward(x, weight, bias=None, stride=1, padding=0):\n    return _c(x, weight)\n"
    assert scan_source(get_exercise("conv2d_forward"), hidden)
