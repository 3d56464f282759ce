"""Tests of the in-notebook checker: ``check`` (prints) and ``run_checks`` (returns a report).

The exercises come from the test-only bank in ``fixtures_exercises`` (``_test_add``,
``_test_matmul``, ``_test_shape``, ``_test_value``); ``_test_check_quick`` is a copy of
``_test_add`` with a short time limit, for the tests of answers that never return. It is
registered in its own lesson so that the fixture lesson that test_release.py releases is unchanged.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import threading
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures_exercises as fx  # noqa: E402  (registers the _test_ exercises)

from course_utils.exercises import CheckReport, check, get_exercise, register, run_checks  # noqa: E402
from course_utils.exercises.check import PRACTICE_NOTE  # noqa: E402

QUICK = "_test_check_quick"
try:
    get_exercise(QUICK)
except KeyError:
    register(dataclasses.replace(fx.ADD, id=QUICK, lesson="_test_check", time_limit=0.3, n_cases=3))


@pytest.fixture(autouse=True)
def not_grading(monkeypatch):
    monkeypatch.delenv("COURSE_GRADING", raising=False)


def printed(capsys, exercise_id, answer) -> str:
    assert check(exercise_id, answer) is None
    out = capsys.readouterr()
    assert out.err == ""
    return out.out


# --------------------------------------------------------------------------------------------
# Correct answers
# --------------------------------------------------------------------------------------------


def test_correct_function_passes_public_then_random_cases(capsys):
    text = printed(capsys, "_test_add", lambda a, b: a + b)
    assert text.splitlines()[0] == "✅ _test_add: all 8 checks passed (2 public, 6 random)."
    assert text.rstrip("\n").endswith(PRACTICE_NOTE)

    report = run_checks("_test_add", lambda a, b: a + b, seed=3)
    assert report.passed and (report.n_public, report.n_random, report.n_run, report.n_passed) == (2, 6, 8, 8)
    assert [r.source for r in report.results] == ["public"] * 2 + ["random"] * 6


def test_correct_tensor_and_tuple_and_value_answers_pass():
    assert run_checks("_test_matmul", lambda a, b: a @ b, seed=0).passed
    assert run_checks("_test_shape", lambda n, c, h, w: (n, c, h, w), seed=0).passed
    # A list where a tuple is expected is the same plain data.
    assert run_checks("_test_shape", lambda n, c, h, w: [n, c, h, w], seed=0).passed
    report = run_checks("_test_value", 2)
    assert report.passed and report.n_public + report.n_random == 1


def test_random_cases_come_from_a_fresh_seed_unless_one_is_given():
    seen = []

    def spy(a, b):
        seen.append((a, b))
        return a + b

    first = run_checks("_test_add", spy, seed=11)
    again = run_checks("_test_add", spy, seed=11)
    assert first.seed == again.seed == 11
    assert seen[:8] == seen[8:16]
    fresh = [run_checks("_test_add", lambda a, b: a + b).seed for _ in range(3)]
    assert len(set(fresh)) == 3


def test_number_of_random_cases_can_be_chosen_and_is_validated():
    assert run_checks("_test_add", lambda a, b: a + b, seed=0, n_random=2).n_random == 2
    with pytest.raises(ValueError, match="n_random"):
        run_checks("_test_add", lambda a, b: a + b, n_random=-1)


# --------------------------------------------------------------------------------------------
# Wrong answers: the first failing case with input, result, expectation, reason and hint
# --------------------------------------------------------------------------------------------


def test_wrong_value_shows_first_failing_public_case_and_hint(capsys):
    text = printed(capsys, "_test_add", lambda a, b: a - b)
    lines = text.splitlines()
    assert lines[0].startswith("❌ _test_add: ")
    assert "first failure, public case 1 (small):" in text
    assert "input:    add(1.0, 2.0)" in text
    assert "returned: -1.0" in text
    assert "expected: 3.0" in text
    assert "hint:     Return a + b." in text
    assert lines[-1] == PRACTICE_NOTE


def test_float_mismatch_states_the_tolerance():
    report = run_checks("_test_add", lambda a, b: a + b + 1e-3, seed=0)
    assert report.status == "failed"
    assert "tolerance" in report.first_failure.reason
    # Within the tolerance passes: floats are not compared with ==.
    assert run_checks("_test_add", lambda a, b: (a + b) * (1 + 1e-7), seed=0).passed


def test_partly_right_answer_counts_the_passing_cases():
    # Right only when a == 0 or b == 0: the edge case (0, 0) passes, the others fail.
    report = run_checks("_test_add", lambda a, b: a if b == 0 else b if a == 0 else a * b, seed=0)
    assert report.status == "failed"
    assert 1 <= report.n_passed < report.n_run == 8


def test_wrong_type_wrong_shape_and_nan_are_reported_not_raised():
    wrong_type = run_checks("_test_shape", lambda n, c, h, w: torch.zeros(n, c, h, w).shape.numel(), seed=0)
    assert wrong_type.status == "failed" and "expected a list, got an int" in wrong_type.first_failure.reason

    wrong_shape = run_checks("_test_matmul", lambda a, b: (a @ b).T @ torch.ones(a.shape[0], 3), seed=0)
    assert wrong_shape.status == "failed" and "shape" in wrong_shape.first_failure.reason

    nan = run_checks("_test_add", lambda a, b: math.nan, seed=0)
    assert nan.status == "failed" and "NaN" in nan.first_failure.reason

    value = run_checks("_test_value", 2.0)
    assert value.status == "failed" and "expected an int, got a float" in value.first_failure.reason


def test_not_a_function_for_a_function_exercise(capsys):
    text = printed(capsys, "_test_add", 3)
    assert "expected a function, got an int; define it with def add(...)" in text
    assert text.splitlines()[-1] == PRACTICE_NOTE


# --------------------------------------------------------------------------------------------
# Not attempted
# --------------------------------------------------------------------------------------------


def _stub(a, b):
    raise NotImplementedError("Replace this line with your solution")


@pytest.mark.parametrize(
    "exercise_id, answer",
    [("_test_add", _stub), ("_test_add", None), ("_test_add", ...), ("_test_value", None), ("_test_value", NotImplemented)],
    ids=["stub", "none", "ellipsis", "value-none", "value-notimplemented"],
)
def test_not_attempted(capsys, exercise_id, answer):
    text = printed(capsys, exercise_id, answer)
    assert text.splitlines()[0].startswith(f"⏳ {exercise_id}: not attempted yet")
    assert text.splitlines()[-1] == PRACTICE_NOTE
    assert run_checks(exercise_id, answer).status == "not-attempted"


# --------------------------------------------------------------------------------------------
# Answers that raise, never return, lie or mutate
# --------------------------------------------------------------------------------------------


def test_exception_is_one_line_without_traceback(capsys):
    def broken(a, b):
        raise ValueError("the sizes do not match\nsecond line of the message")

    text = printed(capsys, "_test_add", broken)
    assert "raised:   ValueError: the sizes do not match" in text
    assert "second line" not in text and "Traceback" not in text and "File " not in text


def test_sys_exit_and_recursion_are_errors_not_crashes():
    exits = run_checks("_test_add", lambda a, b: sys.exit(3), seed=0)
    assert exits.first_failure.status == "error" and exits.first_failure.got == "SystemExit: 3"

    def forever(a, b):
        return forever(a, b)

    deep = run_checks("_test_add", forever, seed=0)
    assert deep.first_failure.status == "error" and deep.first_failure.got.startswith("RecursionError")


def test_function_that_never_returns_is_stopped(capsys):
    def spin(a, b):
        while True:
            pass

    text = printed(capsys, QUICK, spin)
    assert "it did not return within 0.3 s" in text
    assert "later cases were not run after the time-out" in text
    report = run_checks(QUICK, spin, seed=0)
    assert report.status == "failed" and report.first_failure.status == "timeout" and report.n_run == 1


def test_function_that_swallows_the_first_stop_is_still_stopped():
    def stubborn(a, b):
        try:
            while True:
                pass
        except BaseException:  # the learner catches everything, then loops again
            pass
        while True:
            pass

    report = run_checks(QUICK, stubborn, seed=0)
    assert report.first_failure.status == "timeout"


def test_slow_reading_of_the_answer_is_stopped():
    class Endless(list):
        def __iter__(self):
            while True:
                yield 1

    report = run_checks(QUICK, lambda a, b: Endless(), seed=0)
    assert report.status == "failed" and report.first_failure.status in ("timeout", "fail")


def test_time_limit_outside_the_main_thread_uses_a_thread():
    release = threading.Event()

    def waits(a, b):
        release.wait(30)
        return a + b

    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("report", run_checks(QUICK, waits, seed=0)))
    worker.start()
    worker.join(30)
    release.set()
    report = box["report"]
    assert report.first_failure.status == "timeout"
    # Correct answers pass from a thread too.
    worker = threading.Thread(target=lambda: box.__setitem__("ok", run_checks("_test_add", lambda a, b: a + b, seed=0)))
    worker.start()
    worker.join(30)
    assert box["ok"].passed


def test_outer_timer_is_restored():
    import signal

    if not hasattr(signal, "setitimer"):
        pytest.skip("no interval timers on this platform")
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 100.0)
        assert run_checks("_test_add", lambda a, b: a + b, seed=0).passed
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < left <= 100.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _EqualsEverything:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __repr__(self):
        raise RuntimeError("repr is broken on purpose")

    def __len__(self):
        raise RuntimeError("len is broken on purpose")

    __hash__ = object.__hash__


def test_object_equal_to_everything_does_not_pass(capsys):
    text = printed(capsys, "_test_value", _EqualsEverything())
    assert text.startswith("❌") and "cannot be read" in text
    report = run_checks("_test_add", lambda a, b: _EqualsEverything(), seed=0)
    assert report.status == "failed" and report.n_passed == 0


def test_int_subclass_that_lies_about_equality_is_judged_by_its_value():
    class Liar(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    assert run_checks("_test_value", Liar(3)).status == "failed"
    assert run_checks("_test_value", Liar(2)).passed  # the right number, whatever its class


def test_list_whose_iteration_raises_is_a_failure_not_a_crash():
    class Bad(list):
        def __iter__(self):
            raise RuntimeError("no iteration")

        def __len__(self):
            return 4

    report = run_checks("_test_shape", lambda n, c, h, w: Bad([n, c, h, w]), seed=0)
    assert report.status == "failed" and "RuntimeError: no iteration" in report.first_failure.reason


def test_mutating_the_inputs_changes_neither_expected_values_nor_the_public_cases():
    public_before = [arg.clone() for arg in fx.MATMUL.public_cases[0].args]

    def vandal(a, b):
        out = a @ b
        a.zero_()
        b.fill_(float("nan"))
        return out

    report = run_checks("_test_matmul", vandal, seed=5)
    assert report.passed, report.text()
    for before, after in zip(public_before, fx.MATMUL.public_cases[0].args):
        assert torch.equal(before, after)


# --------------------------------------------------------------------------------------------
# Grading mode, unknown ids
# --------------------------------------------------------------------------------------------


def test_grading_mode_skips_and_runs_nothing(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_GRADING", "1")
    calls = []
    text = printed(capsys, "_test_add", lambda a, b: calls.append(1))
    assert text == "check skipped while grading\n"
    assert calls == []


def test_unknown_exercise_is_one_line_with_close_matches(capsys):
    text = printed(capsys, "_test_ad", lambda a, b: a + b)
    lines = text.splitlines()
    assert len(lines) == 2 and lines[1] == PRACTICE_NOTE
    assert "no exercise with id '_test_ad'" in lines[0] and "'_test_add'" in lines[0]
    assert "Traceback" not in text
    report = run_checks(42, None)
    assert isinstance(report, CheckReport) and report.status == "unknown-exercise"
