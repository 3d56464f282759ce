"""Practice checks in the learner's notebook: ``check("conv_out", conv_out)``.

``run_checks`` is the pure part: it applies an answer to the exercise's public cases and to a
batch of random cases drawn from a fresh seed, and returns a :class:`CheckReport`. ``check`` is the
notebook edge: it prints that report and returns ``None`` (so the notebook shows no repr).

Nothing a learner passes may turn into a traceback here: a stub that raises ``NotImplementedError``
is "not attempted yet"; an exception is reported as one line; a case that does not return within
the exercise's ``time_limit`` is stopped; answers are read through ``to_plain`` and compared with
``compare``, so an object that lies about equality or raises from ``__repr__`` cannot pass or crash
the report. These checks are practice only: grading recomputes everything in a separate process.
"""
from __future__ import annotations

import copy
import re
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .core import Case, Exercise, compare, describe, is_unanswered, to_plain
from .bank import BankError
from .forbidden import ForbiddenCallError, _rules_for, forbid
from ..train import grading_mode
from .registry import get_exercise

__all__ = ["CaseResult", "CheckReport", "check", "run_checks", "PRACTICE_NOTE"]

PRACTICE_NOTE = "These are practice checks; graded checks use new inputs."
NOT_ATTEMPTED = "not attempted yet"


@dataclass(frozen=True)
class CaseResult:
    """What happened on one case.

    ``status`` is ``"pass"``, ``"fail"`` (wrong value, type or shape), ``"error"`` (the answer
    raised), ``"forbidden"`` (it called a function the exercise forbids, even if it caught the
    error), ``"timeout"`` or ``"not-attempted"``. ``shown_input``, ``got`` and ``expected`` are
    already rendered as short text, so a report never touches the learner's objects again.
    """

    source: str
    index: int
    label: str
    status: str
    shown_input: str = ""
    got: str = ""
    expected: str = ""
    reason: str = ""


@dataclass
class CheckReport:
    """The outcome of :func:`run_checks`.

    Attributes
    ----------
    exercise_id : str
    status : {"passed", "failed", "not-attempted", "unknown-exercise"}
    n_public, n_random : int
        How many public and random cases there were.
    n_run, n_passed : int
        How many cases ran (a timeout stops the rest) and how many passed.
    first_failure : CaseResult or None
    seed : int or None
        The seed the random cases were drawn from.
    hint, message : str
        The hint for this attempt (graduated: see ``Exercise.hints``); for an unknown id, the
        one-line explanation.
    hint_level, hint_count : int
        Which of the exercise's hints ``hint`` is (1-based), and how many it has.
    """

    exercise_id: str
    status: str
    n_public: int = 0
    n_random: int = 0
    n_run: int = 0
    n_passed: int = 0
    first_failure: CaseResult | None = None
    seed: int | None = None
    hint: str = ""
    message: str = ""
    results: list[CaseResult] = field(default_factory=list)
    hint_level: int = 1
    hint_count: int = 1

    @property
    def passed(self) -> bool:
        """True when every case ran and passed."""
        return self.status == "passed"

    def text(self) -> str:
        """The report as the learner sees it; the last line is always the practice note."""
        lines = self._body()
        lines.append(PRACTICE_NOTE)
        return "\n".join(lines)

    def _counts(self) -> tuple[int, str, str]:
        total = self.n_public + self.n_random
        parts = []
        if self.n_public:
            parts.append(f"{self.n_public} public")
        if self.n_random:
            parts.append(f"{self.n_random} random")
        detail = f" ({', '.join(parts)})" if parts else ""
        noun = "check" if total == 1 else "checks"
        return total, noun, detail

    def _body(self) -> list[str]:
        if self.status == "unknown-exercise":
            return [f"❓ {self.message}"]
        if self.status == "not-attempted":
            extra = f" ({self.message})" if self.message else ""
            return [f"⏳ {self.exercise_id}: {NOT_ATTEMPTED}{extra}."]
        if self.status == "failed" and self.first_failure is None:
            lines = [f"❌ {self.exercise_id}: {self.message}."]
            return lines + ([self._hint_line()] if self.hint else [])
        total, noun, detail = self._counts()
        if self.status == "passed":
            if total == 1:
                return [f"✅ {self.exercise_id}: the check passed{detail}."]
            return [f"✅ {self.exercise_id}: all {total} {noun} passed{detail}."]
        lines = [f"❌ {self.exercise_id}: {self.n_passed} of {total} {noun} passed{detail}."]
        f = self.first_failure
        if f is not None:
            where = f"{f.source} case {f.index}" + (f" ({f.label})" if f.label else "")
            lines.append(f"   first failure, {where}:")
            if f.shown_input:
                lines.append(f"   input:    {f.shown_input}")
            if f.status == "error":
                lines.append(f"   raised:   {f.got}")
            elif f.status == "forbidden":
                lines.append(f"   not allowed: {f.reason}")
            elif f.status == "timeout":
                lines.append(f"   returned: nothing: {f.reason}")
            else:
                lines.append(f"   returned: {f.got}")
            if f.expected:
                lines.append(f"   expected: {f.expected}")
            if f.status == "fail" and f.reason:
                lines.append(f"   why:      {f.reason}")
        if self.n_run < total:
            lines.append(f"   ({total - self.n_run} later cases were not run after the time-out.)")
        if self.hint:
            lines.append(self._hint_line())
        return lines

    def _hint_line(self) -> str:
        if self.hint_count > 1 and self.hint_level > 1:  # "hint 2/3: " keeps the column of "hint:     "
            return f"   {f'hint {self.hint_level}/{self.hint_count}:':<10}{self.hint}"
        return f"   hint:     {self.hint}"


# --------------------------------------------------------------------------------------------
# Time limits
# --------------------------------------------------------------------------------------------


class _TimeLimit(BaseException):
    """Raised inside the learner's code when a case runs out of time.

    A ``BaseException`` so that ``except Exception:`` in the learner's code does not swallow it.
    """


def _can_use_alarm() -> bool:
    return (
        hasattr(signal, "setitimer")
        and hasattr(signal, "SIGALRM")
        and threading.current_thread() is threading.main_thread()
    )


def _call_with_alarm(fn: Callable[[], Any], seconds: float) -> tuple[str, Any]:
    armed = {"on": True}

    def on_alarm(signum, frame):  # noqa: ARG001 - signal handler signature
        if armed["on"]:
            raise _TimeLimit()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    # Keep whatever timer an outer caller had armed and give back what is left of it afterwards.
    outer_delay, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    start = time.monotonic()
    try:
        # The repeat interval fires again if the learner's code swallows the first one with a bare
        # ``except:``, so a loop that catches everything is still stopped.
        signal.setitimer(signal.ITIMER_REAL, seconds, 0.05)
        try:
            value = fn()
        finally:
            armed["on"] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
        return "ok", value
    except _TimeLimit:
        return "timeout", None
    finally:
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:
            left = max(outer_delay - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def _call_in_thread(fn: Callable[[], Any], seconds: float) -> tuple[str, Any]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the calling thread below
            box["error"] = exc

    worker = threading.Thread(target=target, name="course-check", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        # A thread cannot be stopped from outside; it is a daemon, so it dies with the kernel.
        return "timeout", None
    if "error" in box:
        raise box["error"]
    return "ok", box.get("value")


def _call_with_limit(fn: Callable[[], Any], seconds: float) -> tuple[str, Any]:
    if _can_use_alarm():
        return _call_with_alarm(fn, seconds)
    return _call_in_thread(fn, seconds)


# --------------------------------------------------------------------------------------------
# Running the cases
# --------------------------------------------------------------------------------------------


def _one_line_error(exc: BaseException) -> str:
    name = type(exc).__name__
    try:
        text = str(exc)
    except Exception:  # an exception whose __str__ raises still gets a line
        text = ""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return _clip_text(f"{name}: {first}" if first else name)


def _clip_text(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _show_input(exercise: Exercise, case: Case) -> str:
    if exercise.kind == "value":
        return ""
    parts = [describe(a, 60) for a in case.args]
    parts += [f"{k}={describe(v, 60)}" for k, v in dict(case.kwargs).items()]
    return _clip_text(f"{exercise.name}({', '.join(parts)})", 240)


def _copy_case(case: Case) -> Case:
    # The learner's function gets its own copy, so one that changes its inputs in place cannot
    # change the expected value or the next case.
    return Case(copy.deepcopy(tuple(case.args)), copy.deepcopy(dict(case.kwargs)), case.label)


def _guarded(exercise: Exercise, fn: Callable[[], Any], violations: list[str]) -> Any:
    # The guard is entered in whichever thread runs the learner's code (torch modes are per
    # thread), and only around it: the reference and the comparison run outside.
    with forbid(exercise) as guard:
        try:
            return fn()
        finally:
            violations.extend(guard.violations)


def _value_reason(reason: str) -> str:
    # For a single-value exercise the comparison's reason would name the expected value; keep only
    # what does not give it away (a wrong type), otherwise just say it is not right.
    if reason.startswith(("expected a ", "expected an ")) and ", got a" in reason:
        return reason  # "expected an int, got a float (2.0)": the type, not the value
    return "that is not the right value"


def hide_expected_value(reason: str) -> str:
    """A comparison's reason without the expected value, for exercises with ``show_expected=False``.

    Keeps what says where the answer differs (its type, shape, length, the index of the first wrong
    value) and drops the expected value itself; ``check`` and ``course grade``'s feedback both use it.

    Parameters
    ----------
    reason : str
        A reason from :func:`course_utils.exercises.compare`.

    Returns
    -------
    str

    Examples
    --------
    >>> hide_expected_value("expected 22 at [0], got 21")
    'that is not the right value at [0]'
    """
    if reason.startswith(("expected a ", "expected an ")) and ", got a" in reason:
        return reason
    if reason.startswith(("expected shape", "keys differ", "the answer contains")) or re.match(r"expected \d+ items", reason):
        return reason
    differ = re.match(r"\d+ (?:of \d+ )?values differ(?: at \S+)?; first at index \([^)]*\)", reason)
    if differ:
        return differ.group(0)
    where = re.search(r" at ((?:\[[^\]]*\])+), got ", reason)
    return "that is not the right value" + (f" at {where.group(1)}" if where else "")


def _run_case(exercise: Exercise, answer: Any, case: Case, source: str, index: int) -> CaseResult:
    shown = _show_input(exercise, case)
    expected = exercise.expected(_copy_case(case))
    # A single-value exercise never shows its expected value: it would be the answer itself.
    shown_expected = "" if exercise.kind == "value" or not exercise.show_expected else describe(expected)
    base = dict(source=source, index=index, label=case.label, shown_input=shown, expected=shown_expected)
    limit = exercise.time_limit
    timeout = f"it did not return within {limit:g} s"
    violations: list[str] = []
    if exercise.kind == "value":
        raw = answer
    else:
        learner_case = _copy_case(case)
        try:
            state, raw = _call_with_limit(lambda: _guarded(exercise, lambda: exercise.run(answer, learner_case), violations), limit)
        except NotImplementedError:
            return CaseResult(status="not-attempted", **base)
        except KeyboardInterrupt:
            raise
        except ForbiddenCallError as exc:
            return CaseResult(status="forbidden", got=_one_line_error(exc), reason=str(exc), **base)
        except BaseException as exc:  # SystemExit too: a learner's sys.exit() is just an error here
            if violations:
                return CaseResult(status="forbidden", got=_one_line_error(exc), reason=violations[0], **base)
            return CaseResult(status="error", got=_one_line_error(exc), **base)
        if state == "timeout":
            return CaseResult(status="timeout", reason=timeout, **base)
    # Reading the answer runs the learner's code too (a list subclass's __iter__, an __int__), so
    # it gets the same limit and the same protection.
    try:
        state, plain = _call_with_limit(lambda: _guarded(exercise, lambda: to_plain(raw), violations), limit)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        what = _clip_text(f"a {type(raw).__name__}")
        if violations:
            return CaseResult(status="forbidden", got=what, reason=violations[0], **base)
        return CaseResult(status="fail", got=what, reason=f"the answer cannot be read: {_one_line_error(exc)}", **base)
    if state == "timeout":
        return CaseResult(status="timeout", reason=f"reading the answer: {timeout}", **base)
    if violations:
        # The learner's code caught the ForbiddenCallError and went on: the case still fails.
        return CaseResult(status="forbidden", got=describe(plain), reason=violations[0], **base)
    verdict = compare(expected, plain, rtol=exercise.rtol, atol=exercise.atol)
    reason = verdict.reason
    if exercise.kind == "value" and not verdict.ok:
        reason = _value_reason(reason)
    elif not exercise.show_expected and not verdict.ok:
        reason = hide_expected_value(reason)
    return CaseResult(status="pass" if verdict.ok else "fail", got=describe(plain), reason=reason, **base)


def _fresh_seed() -> int:
    return secrets.randbits(63)


def run_checks(
    exercise_id: str, answer: Any, seed: int | None = None, n_random: int | None = None, failures: int = 1
) -> CheckReport:
    """Check an answer against an exercise's public cases and fresh random cases.

    Parameters
    ----------
    exercise_id : str
        The exercise, e.g. ``"conv_out"``.
    answer : any
        The learner's function (for a function exercise) or value (for a value exercise).
    seed : int or None
        Seed for the random cases; ``None`` draws a fresh one every call.
    n_random : int or None
        How many random cases; ``None`` uses the exercise's ``n_cases``.
    failures : int
        How many times this exercise has failed so far, this time included: picks the graduated
        hint (``check`` counts them per kernel).

    Returns
    -------
    CheckReport
        Never raises for anything the learner passes; an unknown id gives a report with status
        ``"unknown-exercise"``.

    Examples
    --------
    >>> report = run_checks("count_values", lambda n, c, h, w: n * c * h * w, seed=0)
    >>> report.status
    'passed'
    """
    try:
        exercise = get_exercise(exercise_id)
    except (KeyError, TypeError, BankError) as exc:  # a broken $COURSE_BANK is reported, not raised
        message = exc.args[0] if exc.args else str(exc)
        return CheckReport(exercise_id=str(exercise_id), status="unknown-exercise", message=f"check: {message}")
    if n_random is not None and (isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 0):
        raise ValueError(f"n_random must be a non-negative int or None, got {n_random!r}")
    report = CheckReport(
        exercise_id=exercise.id, status="passed", hint=exercise.hint_for(failures),
        hint_level=min(max(failures, 1), max(len(exercise.hints), 1)), hint_count=max(len(exercise.hints), 1),
    )

    if is_unanswered(answer):
        report.status = "not-attempted"
        report.message = f"{exercise.name} is still {answer!r}"
        return report

    if exercise.kind == "value":
        cases = [("value", exercise.draw_cases(np.random.default_rng(0))[0])]
        report.n_public = 1
    else:
        if not callable(answer):
            report.status = "failed"
            kind = _clip_text(type(answer).__name__, 60)
            article = "an" if kind[:1].lower() in "aeiou" else "a"
            report.message = f"expected a function, got {article} {kind}; define it with def {exercise.name}(...)"
            return report
        report.seed = _fresh_seed() if seed is None else int(seed)
        rng = np.random.default_rng(report.seed)
        public = [("public", c) for c in exercise.public_cases]
        random_cases = [("random", c) for c in exercise.draw_cases(rng, n_random)]
        cases = public + random_cases
        report.n_public, report.n_random = len(public), len(random_cases)

    # Resolve the forbidden names once, before the first case's time limit starts.
    _rules_for(exercise)
    counters = {"public": 0, "random": 0, "value": 0}
    for source, case in cases:
        counters[source] += 1
        result = _run_case(exercise, answer, case, source, counters[source])
        report.results.append(result)
        report.n_run += 1
        if result.status == "not-attempted":
            report.status = "not-attempted"
            report.message = f"{exercise.name} still raises NotImplementedError"
            return report
        if result.status == "pass":
            report.n_passed += 1
            continue
        if report.first_failure is None:
            report.first_failure = result
        report.status = "failed"
        if result.status == "timeout":
            # Every further case would likely wait the full limit too.
            break
    return report


def check(exercise_id: str, answer: Any) -> None:
    """Print a practice report for an exercise: ✅, ❌ with the first failing case, or ⏳.

    Parameters
    ----------
    exercise_id : str
        The exercise, e.g. ``"conv_out"``.
    answer : any
        Your function (or, for a value exercise, your value).

    Returns
    -------
    None
        The report is printed. Use :func:`run_checks` to get it as a :class:`CheckReport`.

    Examples
    --------
    >>> check("count_values", lambda n, c, h, w: n * c * h * w)  # doctest: +ELLIPSIS
    ✅ count_values: all ... checks passed (2 public, 20 random).
    These are practice checks; graded checks use new inputs.
    """
    if grading_mode():
        print("check skipped while grading")
        return None
    key = str(exercise_id)
    report = run_checks(exercise_id, answer, failures=_FAILURES.get(key, 0) + 1)
    if report.status == "failed":
        # Graduated hints: the count of failed checks per exercise in this kernel picks the next.
        _FAILURES[key] = _FAILURES.get(key, 0) + 1
    print(report.text())
    return None


_FAILURES: dict[str, int] = {}
