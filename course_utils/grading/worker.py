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
2. Loads the exercise bank (plus the modules named in ``COURSE_EXTRA_EXERCISES``, a
   ``os.pathsep``-separated list of module names or ``.py`` paths; tests use it to add a test-only
   bank) and decodes the graded cases, before any learner code runs.
3. Executes the notebook's code cells in order in an IPython ``InteractiveShell`` (so magics such as
   ``%matplotlib inline`` work). A cell that raises is recorded (cell index and one-line error) and
   execution goes on, so definitions in later cells still load.
4. Looks each exercise's ``name`` up in the namespace and applies it to every graded case with a
   per-case time limit; each output is encoded with :mod:`course_utils.grading.encoding`.
   ``results.json`` is rewritten (atomically) after each exercise, so a submission that is killed
   later keeps what it computed.

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
    from ..exercises.registry import get_exercise

    load_extra_exercises()
    with open(cells_path, encoding="utf-8") as fh:
        job = json.load(fh)
    cells: list[str] = [c for c in job["cells"] if isinstance(c, str)]
    exercise_ids: list[str] = list(job["exercises"])
    case_limit_override = job.get("case_time_limit")

    # Everything the grader sent is decoded before the learner's code can touch numpy or torch.
    raw_cases = encoding.read_json(cases_dir, "cases.json")
    plan = []
    for ex_id in exercise_ids:
        ex = get_exercise(ex_id)
        cases = [
            Case(tuple(encoding.decode(c["args"], cases_dir)), dict(encoding.decode(c["kwargs"], cases_dir)), str(c.get("label", "")))
            for c in raw_cases[ex_id]
        ]
        limit = float(case_limit_override) if case_limit_override else max(2.0 * ex.time_limit, 5.0)
        plan.append((ex, cases, limit))

    results: dict = {"cells": {"run": 0, "errors": []}, "exercises": {}, "done": False, "timing": {}}
    started = time.perf_counter()

    def save() -> None:
        encoding.write_json(results_dir, "results.json", results)

    save()
    shell = _make_shell()
    for index, source in enumerate(cells):
        outcome = shell.run_cell(source, store_history=False, silent=False)
        results["cells"]["run"] = index + 1
        error = outcome.error_before_exec or outcome.error_in_exec
        if error is not None:
            entry = {"cell": index, "error": _one_line(error)}
            if _is_memory_error(error):
                entry["memory"] = True
            results["cells"]["errors"].append(entry)
    sys.stdout.flush()
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
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: it is slow with torch loaded, and atexit hooks are the learner's.
    os._exit(0)


def _run_case(ex, answer, case, limit, results_dir, prefix, to_plain, encoding) -> dict:
    try:
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            raw = answer if ex.kind == "value" else ex.run(answer, case)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _CaseTimeout:
        return {"error": f"did not return within {limit:g} s", "kind": "timeout"}
    except NotImplementedError as exc:
        return {"error": _one_line(exc), "kind": "not-attempted"}
    except BaseException as exc:  # anything the learner raises, SystemExit included, is that case's error
        return {"error": _one_line(exc), "kind": "memory" if _is_memory_error(exc) else "error"}
    try:
        plain = to_plain(raw)
        return {"out": encoding.encode(plain, results_dir, prefix)}
    except (TypeError, ValueError) as exc:
        return {"error": f"returned something that is not plain data: {_one_line(exc)}", "kind": "not-plain"}
    except BaseException as exc:
        return {"error": f"its result could not be read: {_one_line(exc)}", "kind": "error"}


def _make_shell():
    from IPython.core.interactiveshell import InteractiveShell

    class GradingShell(InteractiveShell):
        def enable_gui(self, gui=None):
            # A grading process has no GUI event loop; `%matplotlib inline` in a lesson's setup cell
            # must not fail the cell (the base class raises), figures are drawn off-screen.
            return None

    shell = GradingShell.instance()
    # One-line tracebacks in the log; the grader only needs the error line it records itself.
    shell.InteractiveTB.set_mode("Plain")
    return shell


if __name__ == "__main__":
    sys.exit(main())
