"""The submission side of ``course grade``: run one notebook's code, then the graded cases.

``course grade`` starts this module once per submission, as
``python -m course_utils.grading.worker --cells CELLS.json --cases CASES_DIR --results RESULTS_DIR``,
in a child process that the grader has already confined: its own session (so the whole process
tree can be killed), an address-space limit, a file-size limit, a fresh working folder, and,
when the grader runs as root, an unprivileged user id. Nothing this process writes is trusted:
the grader reads back only plain data (JSON and ``.npy``) and compares it in its own process.

What it does:

1. Forks once. The parent only waits and passes on the exit status, so a learner who kills
   "the parent process" kills this small watcher (and, through the parent-death signal, the work
   itself), which the grader reports as ``crashed``.
2. Reads what it must know about each exercise from ``CELLS.json``: its id, the ``name`` to look
   up, its kind, its per-case time limit and its ``run`` adapter (``null`` for a plain call, or
   ``module:function`` in a module without references, see :mod:`course_utils.exercises.adapters`;
   an instructor's bank adapters come from ``adapter_path``, read-only copies of the bank's
   helper file). It never imports the exercise bank, so the references of the exercises being
   graded (an instructor's private bank included) are neither imported nor, in the sandbox,
   readable. It imports the adapters and decodes the graded cases before any learner code runs.
3. Executes the notebook's code cells in order in an IPython ``InteractiveShell`` (so magics such as
   ``%matplotlib inline`` work). A cell that raises is recorded (cell index and one-line error) and
   execution goes on, so definitions in later cells still load.
4. Looks each exercise's ``name`` up in the namespace and applies it to every graded case with a
   per-case time limit; each output is encoded with :mod:`course_utils.grading.encoding`.
   ``results.json`` is rewritten (atomically) after each exercise, so a submission that is killed
   later keeps what it computed. Saving uses only the worker's own folder descriptor and never the
   learner's ``sys.stdout``: a notebook that closes file descriptors 0-2 or floods its output keeps
   the answers it computed.

``results.json``::

    {"cells": {"run": 12, "errors": [{"cell": 3, "error": "NameError: name 'x' is not defined"}]},
     "exercises": {"conv_out": {"status": "ok" | "missing" | "not-attempted",
                                "cases": [{"out": NODE} | {"error": "...", "kind": KIND}, ...]}},
     "done": true, "timing": {"cells": SECONDS, "cases": SECONDS}}

where KIND is ``not-attempted``, ``error``, ``timeout``, ``memory`` or ``not-plain``.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

__all__ = ["main", "load_extra_exercises"]


def _nanny() -> None:
    """Fork; the parent waits for the child and exits with its status, the child returns."""
    nanny = os.getpid()
    pid = os.fork()
    if pid == 0:
        # If the watcher is killed, the work dies with it at once rather than running on unseen.
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != nanny:
            os._exit(1)
        return
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:  # pragma: no cover - retried by Python already
            continue
    if os.WIFEXITED(status):
        os._exit(os.WEXITSTATUS(status))
    os._exit(128 + (os.WTERMSIG(status) if os.WIFSIGNALED(status) else 1))


def load_extra_exercises(spec: str | None = None) -> list[str]:
    """Import the extra exercise modules named in ``spec`` (default: ``$COURSE_EXTRA_EXERCISES``).

    Parameters
    ----------
    spec : str, optional
        Module names (``tests.fixtures_exercises``) or paths to ``.py`` files, separated by
        ``os.pathsep``. Each module registers its exercises on import.

    Returns
    -------
    list of str
        The modules imported.

    Examples
    --------
    >>> load_extra_exercises("")
    []
    """
    import importlib
    import importlib.util

    spec = os.environ.get("COURSE_EXTRA_EXERCISES", "") if spec is None else spec
    loaded = []
    for item in filter(None, (s.strip() for s in spec.split(os.pathsep))):
        if item.endswith(".py"):
            name = "_course_extra_" + os.path.splitext(os.path.basename(item))[0]
            if name not in sys.modules:
                module_spec = importlib.util.spec_from_file_location(name, item)
                if module_spec is None or module_spec.loader is None:
                    raise ImportError(f"COURSE_EXTRA_EXERCISES: cannot import {item!r}")
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[name] = module
                module_spec.loader.exec_module(module)
        else:
            importlib.import_module(item)
        loaded.append(item)
    return loaded


class _CaseTimeout(BaseException):
    """Raised inside the learner's function when a case runs past its limit."""


def _on_alarm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _CaseTimeout()


def _one_line(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a learner's exception whose __str__ raises
        text = ""
    name = type(exc).__name__
    text = " ".join(text.split())
    line = f"{name}: {text}" if text else name
    return line if len(line) <= 300 else line[:299] + "…"


def _is_memory_error(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = _one_line(exc).lower()
    return "can't allocate memory" in text or "cannot allocate memory" in text or "bad_alloc" in text or "out of memory" in text


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m course_utils.grading.worker`` (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m course_utils.grading.worker")
    parser.add_argument("--cells", required=True, help="JSON file: {'cells': [source, ...], 'exercises': [id, ...]}")
    parser.add_argument("--cases", required=True, help="folder with cases.json and its .npy files, from the grader")
    parser.add_argument("--results", required=True, help="folder to write results.json and .npy outputs into")
    parser.add_argument("--no-fork", action="store_true", help="run in this process (for debugging)")
    args = parser.parse_args(argv)
    if not args.no_fork:
        _nanny()
    # A learner printing without end must not kill the worker: writes past the file-size limit
    # then fail with an error in the learner's cell instead of a signal.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return _work(args.cells, args.cases, args.results)


def _work(cells_path: str, cases_dir: str, results_dir: str) -> int:
    import json

    import numpy as np  # noqa: F401 - imported before learner code so it cannot be swapped first

    from . import encoding
    from ..exercises.core import Case, is_unanswered, to_plain

    with open(cells_path, encoding="utf-8") as fh:
        job = json.load(fh)
    cells: list[str] = [c for c in job["cells"] if isinstance(c, str)]
    specs = [_Spec.from_json(item) for item in job["exercises"]]
    case_limit_override = job.get("case_time_limit")
    adapter_path = job.get("adapter_path")
    if isinstance(adapter_path, str) and adapter_path:
        # Read-only copies of an instructor's bank adapters (no references in them).
        sys.path.insert(0, adapter_path)
    for ex in specs:
        # Imported now, before any learner code: the learner cannot swap or break them first.
        ex.load()

    # Everything the grader sent is decoded before the learner's code can touch numpy or torch.
    raw_cases = encoding.read_json(cases_dir, "cases.json")
    plan = []
    for ex in specs:
        ex_id = ex.id
        cases = [
            Case(tuple(encoding.decode(c["args"], cases_dir)), dict(encoding.decode(c["kwargs"], cases_dir)), str(c.get("label", "")))
            for c in raw_cases[ex_id]
        ]
        limit = float(case_limit_override) if case_limit_override else max(2.0 * ex.time_limit, 5.0)
        plan.append((ex, cases, limit))

    results: dict = {"cells": {"run": 0, "errors": []}, "exercises": {}, "done": False, "timing": {}}
    started = time.perf_counter()

    # The results folder is opened now, before any learner code: saving then needs no path lookup
    # and no stdio, whatever the learner closes, replaces or floods.
    results_fd = os.open(results_dir, os.O_RDONLY | os.O_DIRECTORY)
    results_fd = _high_fd(results_fd)

    def save() -> None:
        try:
            _save(results_fd, results)
        except Exception:  # a learner's patch of json or os: the last good save stays
            pass

    save()
    shell = _make_shell()
    cell_limit, cells_budget = _cell_budgets(job)
    cells_deadline = time.monotonic() + cells_budget
    signal.signal(signal.SIGALRM, _on_cell_alarm)
    for index, source in enumerate(cells):
        left = cells_deadline - time.monotonic()
        if left <= 0.05:
            # The cells' share of the time limit is spent: skip the rest, keep time for grading
            # the functions already defined.
            results["cells"]["errors"].append({"cell": index, "error": "not run: the cells' share of the time limit was spent", "skipped": True})
            results["cells"]["run"] = index + 1
            continue
        budget = min(cell_limit, left)
        outcome, stopped = _run_cell_limited(shell, source, budget)
        results["cells"]["run"] = index + 1
        if stopped:
            results["cells"]["errors"].append({"cell": index, "error": f"ran past its {budget:.3g} s share of the time limit and was stopped; later cells still ran", "timeout": True})
            save()
            continue
        error = outcome.error_before_exec or outcome.error_in_exec
        if error is not None:
            entry = {"cell": index, "error": _one_line(error)}
            if _is_memory_error(error):
                entry["memory"] = True
            results["cells"]["errors"].append(entry)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    _flush()
    results["timing"]["cells"] = round(time.perf_counter() - started, 4)
    save()

    started = time.perf_counter()
    namespace = shell.user_ns
    signal.signal(signal.SIGALRM, _on_alarm)
    for e_index, (ex, cases, limit) in enumerate(plan):
        record: dict = {"status": "ok", "cases": []}
        results["exercises"][ex.id] = record
        if ex.name not in namespace:
            record["status"] = "missing"
            save()
            continue
        answer = namespace[ex.name]
        if is_unanswered(answer):
            record["status"] = "not-attempted"
            save()
            continue
        hung = False
        for c_index, case in enumerate(cases):
            if hung:
                # One case that never returns is enough; waiting out the rest would only burn the
                # submission's time limit.
                record["cases"].append({"error": "not run: an earlier case did not return", "kind": "timeout"})
                continue
            outcome = _run_case(ex, answer, case, limit, results_dir, f"e{e_index}c{c_index}_", to_plain, encoding)
            hung = outcome.get("kind") == "timeout"
            record["cases"].append(outcome)
        save()
    results["done"] = True
    results["timing"]["cases"] = round(time.perf_counter() - started, 4)
    save()
    _flush()
    # Skip interpreter teardown: it is slow with torch loaded, and atexit hooks are the learner's.
    os._exit(0)


class _CellTimeout(BaseException):
    """Raised inside a learner's cell that runs past its share of the time limit."""


_CELL_ARMED = {"on": False}


def _on_cell_alarm(signum, frame):  # noqa: ARG001 - signal handler signature
    if _CELL_ARMED["on"]:
        raise _CellTimeout()


def _cell_budgets(job: dict) -> tuple[float, float]:
    """Seconds one cell may take, and all cells together, from the submission's time limit.

    A cell gets at most half of the limit, and the cells together 80 % of it, so a cell that
    never returns (``while True: pass``) is stopped and the functions defined before it are
    still graded in the time that is left. Without a limit in the job: 60 s a cell, no total.
    """
    def number(key: str) -> float | None:
        value = job.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None

    total = number("timeout")
    cell = number("cell_time_limit") or (0.5 * total if total else 60.0)
    return cell, (0.8 * total if total else float("inf"))


def _run_cell_limited(shell, source: str, seconds: float):
    """Run one cell with a time limit; ``(outcome, stopped)``.

    The timer repeats every 0.1 s after it first fires, so a cell that swallows the first
    ``_CellTimeout`` with a bare ``except:`` is stopped by the next one.
    """
    stopped = False
    outcome = None
    try:
        _CELL_ARMED["on"] = True
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01), 0.1)
        try:
            outcome = shell.run_cell(source, store_history=False, silent=False)
        finally:
            _CELL_ARMED["on"] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _CellTimeout:  # fired in IPython's own code around the cell
        stopped = True
    if outcome is not None:
        error = outcome.error_before_exec or outcome.error_in_exec
        stopped = stopped or isinstance(error, _CellTimeout)
    return outcome, stopped


class _Spec:
    """What the worker knows about one exercise: never its reference or its cases' answers."""

    def __init__(self, id: str, name: str, kind: str, time_limit: float, run: str | None,
                 forbidden: tuple[str, ...] = ()) -> None:
        self.id, self.name, self.kind, self.time_limit = id, name, kind, time_limit
        # Dotted names the learner may not call in this exercise (see exercises.forbidden).
        self.forbidden = forbidden
        self._run_name = run
        self._run = None
        self._load_error = ""

    @classmethod
    def from_json(cls, item: dict) -> "_Spec":
        if isinstance(item, str):  # an id alone: the plain call (older grader's format)
            return cls(item, item, "function", 5.0, None)
        forbidden = item.get("forbidden") or ()
        return cls(str(item["id"]), str(item["name"]), str(item.get("kind", "function")),
                   float(item.get("time_limit", 5.0)), item.get("run"),
                   tuple(str(f) for f in forbidden) if isinstance(forbidden, (list, tuple)) else ())

    def load(self) -> None:
        """Import the ``run`` adapter; a failure becomes every case's error, not the worker's."""
        if not self._run_name:
            self._run = lambda answer, case: answer(*case.args, **dict(case.kwargs))
            return
        import importlib

        module, _, function = str(self._run_name).partition(":")
        try:
            self._run = getattr(importlib.import_module(module), function)
        except Exception as exc:
            self._load_error = f"the exercise's run adapter {self._run_name} could not be imported: {_one_line(exc)}"

    def run(self, answer, case):
        if self._run is None and not self._load_error:
            self.load()
        if self._load_error:
            raise _AdapterError(self._load_error)
        return self._run(answer, case)


class _AdapterError(RuntimeError):
    """An exercise's ``run`` adapter that the worker could not import (a bank problem)."""


def _high_fd(fd: int) -> int:
    # Far above 0-2, so a learner's os.close(0..2) and the files it opens next never touch it.
    import fcntl

    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 900)
    os.close(fd)
    return high


def _save(dir_fd: int, results: dict) -> None:
    import json

    data = json.dumps(results, allow_nan=False).encode("utf-8")
    tmp = f"results.json.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, "results.json", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _flush() -> None:
    # The learner may have closed or flooded stdout, or replaced sys.stdout: none of that is a crash.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def _run_case(ex, answer, case, limit, results_dir, prefix, to_plain, encoding) -> dict:
    """Apply the learner's ``answer`` to one graded case; the outcome as plain data for results.json.

    The learner's call and the reading of its result run under one time limit and under
    :func:`course_utils.exercises.forbidden.forbid`, so a forbidden call (``F.conv2d`` in
    ``conv2d_forward``) fails the case with kind ``forbidden``, even when the learner's code
    catches the error. ``ex`` needs ``kind``, ``run``, ``id`` and ``forbidden`` only.
    """
    from ..exercises.forbidden import ForbiddenCallError, forbid

    violations: list[str] = []
    stage, plain = "run", None
    try:
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            with forbid(ex) as guard:
                try:
                    raw = answer if ex.kind == "value" else ex.run(answer, case)
                    stage = "read"
                    # Reading the result runs learner code too (a list subclass's __iter__), so it
                    # gets the same limit and the same guard.
                    plain = to_plain(raw)
                finally:
                    violations.extend(guard.violations)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _CaseTimeout:
        return {"error": f"did not return within {limit:g} s", "kind": "timeout"}
    except NotImplementedError as exc:
        return {"error": _one_line(exc), "kind": "not-attempted"}
    except ForbiddenCallError as exc:
        return {"error": _one_line_forbidden(str(exc)), "kind": "forbidden"}
    except (TypeError, ValueError) as exc:
        if violations:
            return {"error": _one_line_forbidden(violations[0]), "kind": "forbidden"}
        if stage == "read":
            return {"error": f"returned something that is not plain data: {_one_line(exc)}", "kind": "not-plain"}
        return {"error": _one_line(exc), "kind": "error"}
    except BaseException as exc:  # anything the learner raises, SystemExit included, is that case's error
        if violations:
            return {"error": _one_line_forbidden(violations[0]), "kind": "forbidden"}
        return {"error": _one_line(exc), "kind": "memory" if _is_memory_error(exc) else "error"}
    if violations:
        # The learner caught the ForbiddenCallError and returned something else: still a failure.
        return {"error": _one_line_forbidden(violations[0]), "kind": "forbidden"}
    try:
        return {"out": encoding.encode(plain, results_dir, prefix)}
    except BaseException as exc:
        return {"error": f"its result could not be read: {_one_line(exc)}", "kind": "error"}


def _one_line_forbidden(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= 300 else text[:299] + "…"


def _make_shell():
    from IPython.core.interactiveshell import InteractiveShell

    class GradingShell(InteractiveShell):
        def enable_gui(self, gui=None):
            # A grading process has no GUI event loop; `%matplotlib inline` in a lesson's setup cell
            # must not fail the cell (the base class raises), figures are drawn off-screen.
            return None

    shell = GradingShell.instance()
    # Nobody sees a graded notebook's figures: drawing each one as a PNG (as a kernel does for
    # JupyterLab) would only make every submission slower.
    shell.display_formatter.active_types = ["text/plain"]
    # One-line tracebacks in the log; the grader only needs the error line it records itself.
    shell.InteractiveTB.set_mode("Plain")
    return shell


if __name__ == "__main__":
    sys.exit(main())
