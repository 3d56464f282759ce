"""``course grade``: grade submitted notebooks in isolated processes, without trusting them.

Usage::

    course grade SUBMISSION... --out DIR [--lesson LESSON ...] [--jobs N] [--timeout SECONDS]
                 [--memory MB] [--force] [--gradescope] [--seed S]

SUBMISSION is a notebook (``.ipynb``) or a folder of them (not searched recursively); each
student is named by the file stem. Examples::

    course grade submissions/ --out gradebook/                 # a folder of workbooks
    course grade submissions/ --out gradebook/ --lesson 02_output_size --jobs 4 --timeout 60
    course grade alice.ipynb --out results/ --gradescope       # one submission, Gradescope format

How a submission is graded
--------------------------
1. The grader (this process) reads the notebook as JSON (``invalid-notebook`` if it is not a
   version-4 notebook with code cells), decides which exercises to grade (``--lesson``, otherwise
   every lesson named in the submissions' metadata), draws the graded cases from ``--seed`` (a
   fresh random seed by default, recorded in ``grades.json``; a rerun into the same ``--out`` reuses
   it) and computes the expected outputs with the reference, here.
2. Each submission runs in ``python -m course_utils.grading.worker`` (see that module), a child in its
   own session with ``RLIMIT_AS`` = ``--memory`` MB, a 512 MB file-size limit, a fresh temporary
   working folder, ``COURSE_GRADING=1``, and a minimal environment. When the grader runs as root,
   the child runs as an unused user id (64000 + its slot, group ``nogroup``), so it can neither
   write the grader's files nor signal the grader or another submission, and everything it left
   running is killed afterwards. Not as root, the grader rewrites its output files from memory after
   every submission and kills the child's session; run as root (for example in a container) for the
   stronger guarantee.
3. The child runs the notebook's code cells in order, looks each exercise's ``name`` up (so cell
   order, extra and duplicated cells do not matter), applies it to the graded inputs and writes the
   outputs as JSON + ``.npy``. The grader reads them back with size and type checks and compares
   them with :func:`course_utils.exercises.core.compare`. Each case is worth
   ``points / number of cases``.

Outputs in ``--out``
--------------------
``grades.csv``
    ``student, <one column per exercise id>, total, max, status``.
``grades.json``
    The same, plus the seed, each submission's sha256, cell errors and every case's input,
    verdict and reason.
``feedback/<student>.md``
    What passed and failed and why (inputs and the learner's result, never the reference code).
``results.json``
    With ``--gradescope`` (exactly one submission): Gradescope's autograder format.

Statuses: ``ok``, ``timeout`` (ran past ``--timeout``), ``memory`` (hit ``--memory``), ``crashed``
(the worker died, was killed, or exited without finishing), ``invalid-notebook``. Per exercise:
``ok``, ``missing`` (name not defined), ``not-attempted`` (``None`` or ``NotImplementedError``),
``error`` (raised), ``no-result`` (the submission stopped before reaching it).

Files are replaced atomically as each submission finishes, so a crash or Ctrl-C keeps what was
graded; a rerun skips students already graded unless ``--force`` or their notebook changed (by
sha256). Exit status: 0 when the batch completed, whatever the scores; 2 for a usage error;
1 if an exercise's own reference fails (a bug in the exercise bank); 130 on Ctrl-C.

Memory floor: importing torch (CUDA build) needs about 3.2 GB of address space, so ``--memory``
below about 3500 shows every submission as ``memory``; the default, 8192, leaves lessons 06-07
(which hold CIFAR-10 in memory) room beside it.
"""
from __future__ import annotations

import argparse
import csv
import ctypes
import ctypes.util
import hashlib
import io
import json
import os
import pwd
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from . import encoding
from .gradescope import write_gradescope

__all__ = ["add_parser", "main", "run", "UsageError"]

DEFAULT_TIMEOUT = 120.0
DEFAULT_MEMORY_MB = 8192
_FILE_LIMIT = 512 << 20
_NOTEBOOK_LIMIT = 256 << 20
_UID_BASE = 64000
_GID_NOGROUP = 65534
_LOG_TAIL = 1500


class UsageError(ValueError):
    """A problem with the command line or its paths (exit status 2)."""


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``grade`` subcommand to the ``course`` command's subparsers."""
    p = subparsers.add_parser(
        "grade",
        help="grade submitted notebooks in isolated processes",
        description=(
            "Grade submitted notebooks: each runs in its own limited process, on inputs drawn fresh "
            "by the grader, and is compared here. Writes grades.csv, grades.json and feedback/."
        ),
    )
    _arguments(p)
    p.set_defaults(func=run)
    return p


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="a .ipynb file or a folder of them")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for grades.csv, grades.json and feedback/")
    p.add_argument("--lesson", action="append", metavar="LESSON", help="grade this lesson's exercises (repeatable; default: the lessons in the notebooks' metadata)")
    p.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1, metavar="N", help="submissions graded at once (default: number of CPUs)")
    p.add_argument("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help=f"time limit per submission (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--memory", type=_positive_int, default=DEFAULT_MEMORY_MB, metavar="MB", help=f"address-space limit per submission (default {DEFAULT_MEMORY_MB}; torch alone needs about 3500)")
    p.add_argument("--force", action="store_true", help="regrade students already in DIR/grades.json")
    p.add_argument("--gradescope", action="store_true", help="also write DIR/results.json for Gradescope (one submission only)")
    p.add_argument("--seed", type=_seed, default=None, metavar="S", help="seed for the graded cases (default: fresh, or the one in DIR/grades.json)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``course grade`` with ``argv`` (without the leading ``grade``); returns the exit status.

    Examples
    --------
    >>> main(["submissions/", "--out", "gradebook/", "--seed", "1"])  # doctest: +SKIP
    0
    """
    parser = argparse.ArgumentParser(prog="course grade")
    _arguments(parser)
    args = parser.parse_args(list(argv) if argv is not None else None)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Grade the submissions named in ``args`` (the parsed command line); returns the exit status."""
    try:
        return _Grader(args).grade()
    except UsageError as exc:
        print(f"course grade: error: {exc}", file=sys.stderr)
        return 2
    except _BankError as exc:
        print(f"course grade: exercise bank error: {exc}", file=sys.stderr)
        return 1


class _BankError(RuntimeError):
    pass


# --------------------------------------------------------------------------------------------
# Reading submissions
# --------------------------------------------------------------------------------------------


def collect_submissions(paths: Sequence[str]) -> list[tuple[str, str]]:
    """``(student, path)`` for every notebook named or inside a named folder, sorted by student.

    Raises
    ------
    UsageError
        A path that does not exist, a file that is not ``.ipynb``, a folder without notebooks, or
        two notebooks with the same stem (the student name).
    """
    found: list[tuple[str, str]] = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.endswith(".ipynb") and not n.startswith("."))
            if not names:
                raise UsageError(f"folder {path!r} holds no .ipynb files")
            found.extend((os.path.splitext(n)[0], os.path.join(path, n)) for n in names)
        elif os.path.exists(path):
            if not path.endswith(".ipynb"):
                raise UsageError(f"{path!r} is not a .ipynb notebook or a folder of them")
            found.append((os.path.splitext(os.path.basename(path))[0], path))
        else:
            raise UsageError(f"submission path {path!r} does not exist")
    seen: dict[str, str] = {}
    for student, path in found:
        if student in seen:
            raise UsageError(f"two submissions are named {student!r}: {seen[student]!r} and {path!r}; rename one")
        seen[student] = path
    return sorted(found)


@dataclass
class _Notebook:
    sha256: str
    cells: list[str] | None
    lesson: str | None
    problem: str = ""


def read_submission(path: str) -> _Notebook:
    """Read a submitted notebook's code cells without running or trusting anything in it."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_NOTEBOOK_LIMIT + 1)
    except OSError as exc:
        return _Notebook("", None, None, f"cannot read the file: {exc.strerror}")
    digest = hashlib.sha256(data).hexdigest()
    if len(data) > _NOTEBOOK_LIMIT:
        return _Notebook(digest, None, None, f"the file is larger than {_NOTEBOOK_LIMIT >> 20} MB")
    try:
        nb = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return _Notebook(digest, None, None, f"not a notebook: the file is not valid JSON ({str(exc)[:80]})")
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return _Notebook(digest, None, None, "not a notebook: no list of cells")
    if nb.get("nbformat") != 4:
        return _Notebook(digest, None, None, f"not a version-4 notebook (nbformat {str(nb.get('nbformat'))[:20]})")
    cells = []
    for cell in nb["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            return _Notebook(digest, None, None, "a code cell's source is not text")
        cells.append(source)
    if not cells:
        return _Notebook(digest, None, None, "the notebook has no code cells")
    meta = nb.get("metadata")
    lesson = None
    if isinstance(meta, dict) and isinstance(meta.get("course"), dict):
        value = meta["course"].get("lesson")
        lesson = value if isinstance(value, str) else None
    return _Notebook(digest, cells, lesson)


# --------------------------------------------------------------------------------------------
# Graded cases
# --------------------------------------------------------------------------------------------


@dataclass
class _Graded:
    exercise: Any
    cases: list
    expected: list
    inputs: list[str]


def _exercise_seed(seed: int, exercise_id: str) -> np.random.Generator:
    # Per-exercise streams: adding an exercise does not change the others' cases.
    salt = int.from_bytes(hashlib.sha256(exercise_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, salt])


def draw_graded_cases(exercises: Sequence[Any], seed: int) -> list[_Graded]:
    """Draw every exercise's graded cases from ``seed`` and compute the expected outputs here."""
    from ..exercises.core import describe

    graded = []
    for ex in exercises:
        cases = ex.draw_cases(_exercise_seed(seed, ex.id))
        if not cases:
            raise _BankError(f"exercise {ex.id!r} drew no graded cases")
        expected = []
        for case in cases:
            try:
                expected.append(ex.expected(case))
            except Exception as exc:
                raise _BankError(f"the reference of {ex.id!r} fails on {case}: {type(exc).__name__}: {exc}") from exc
        inputs = [_describe_case(case, describe) for case in cases]
        graded.append(_Graded(ex, cases, expected, inputs))
    return graded


def _describe_case(case: Any, describe: Any) -> str:
    if case.label == "value" and not case.args and not case.kwargs:
        return "the value"
    parts = [describe(a, 80) for a in case.args] + [f"{k}={describe(v, 80)}" for k, v in dict(case.kwargs).items()]
    text = f"({', '.join(parts)})"
    return f"{text} [{case.label}]" if case.label else text


def _write_cases(graded: Sequence[_Graded], folder: str) -> None:
    data = {}
    for e_index, g in enumerate(graded):
        items = []
        for c_index, case in enumerate(g.cases):
            items.append(
                {
                    "args": encoding.encode(tuple(case.args), folder, f"x{e_index}c{c_index}a"),
                    "kwargs": encoding.encode(dict(case.kwargs), folder, f"x{e_index}c{c_index}k"),
                    "label": case.label,
                }
            )
        data[g.exercise.id] = items
    encoding.write_json(folder, "cases.json", data)


# --------------------------------------------------------------------------------------------
# Isolation
# --------------------------------------------------------------------------------------------

_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_PR_SET_PDEATHSIG = 1


def _free_uids(count: int) -> list[int]:
    uids, candidate = [], _UID_BASE
    while len(uids) < count:
        try:
            pwd.getpwuid(candidate)
        except KeyError:
            uids.append(candidate)
        candidate += 1
    return uids


def _limits_then_drop(memory_bytes: int, uid: int | None) -> Any:
    def preexec() -> None:  # runs in the child between fork and exec; keep it to system calls
        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (_FILE_LIMIT, _FILE_LIMIT))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if uid is not None:
            # Threads count as processes here: torch starts a few per core.
            resource.setrlimit(resource.RLIMIT_NPROC, (512, 512))
            os.setgroups([])
            os.setgid(_GID_NOGROUP)
            os.setuid(uid)
        # Changing user clears the parent-death signal, so set it last.
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return preexec


def _kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (what a submission left behind, however it detached)."""
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.setgid(_GID_NOGROUP)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)  # every process this uid may signal, never ourselves
            except OSError:
                pass
            os._exit(0)
        os.waitpid(pid, 0)


def _probe_drop(uid: int, memory_bytes: int, env: dict) -> str:
    """Whether Python and course_utils can start as ``uid``; an empty string when they can."""
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('course_utils.grading.worker') is None)"
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe], cwd="/", env=env, stdin=subprocess.DEVNULL, capture_output=True,
            preexec_fn=_limits_then_drop(memory_bytes, uid), timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{sys.executable} cannot be started by uid {uid}: {exc}"
    if done.returncode != 0:
        return f"uid {uid} cannot import course_utils (exit status {done.returncode})"
    return ""


_PR_SET_CHILD_SUBREAPER = 36


def _set_subreaper(on: bool) -> None:
    # Processes a submission detaches (double fork, setsid) become our children instead of init's,
    # so _kill_strays can find and kill them even when every process runs as the same user.
    _LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0)


def _kill_strays(keep: set[int]) -> None:
    """Kill and reap every child of this process except the worker processes in ``keep``."""
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in keep:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat_line = fh.read()
        except OSError:
            continue
        fields = stat_line[stat_line.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == me:
            pid = int(name)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError, PermissionError):
                pass


@dataclass
class _Running:
    student: str
    path: str
    notebook: _Notebook
    proc: subprocess.Popen
    folder: str
    uid: int | None
    slot: int
    log: Any
    started: float
    deadline: float
    timed_out: bool = False


# --------------------------------------------------------------------------------------------
# The grader
# --------------------------------------------------------------------------------------------


class _Grader:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quiet = bool(getattr(args, "quiet", False))
        self.submissions = collect_submissions(args.submissions)
        if args.gradescope and len(self.submissions) != 1:
            raise UsageError(f"--gradescope grades exactly one submission; {len(self.submissions)} were given")
        self.out = args.out
        if os.path.exists(self.out) and not os.path.isdir(self.out):
            raise UsageError(f"--out {self.out!r} exists and is not a folder")
        self.jobs = int(args.jobs)
        self.timeout = float(args.timeout)
        self.memory = int(args.memory) << 20
        self.root = os.geteuid() == 0
        self.records: dict[str, dict] = {}
        self.previous = self._load_previous()

    # ---- set-up ------------------------------------------------------------------------

    def _load_previous(self) -> dict:
        path = os.path.join(self.out, "grades.json")
        if not os.path.isfile(path):
            return {}
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _exercises(self, notebooks: dict[str, _Notebook]) -> list:
        from ..exercises.registry import exercises_for_lesson
        from .worker import load_extra_exercises

        try:
            load_extra_exercises()
        except Exception as exc:
            raise UsageError(f"COURSE_EXTRA_EXERCISES: {exc}") from None
        lessons = list(self.args.lesson or [])
        if not lessons:
            for student, _ in self.submissions:
                lesson = notebooks[student].lesson
                if lesson and lesson not in lessons and exercises_for_lesson(lesson):
                    lessons.append(lesson)
        if not lessons:
            raise UsageError("no notebook names a lesson with exercises in its metadata; pass --lesson LESSON")
        exercises = []
        for lesson in lessons:
            found = exercises_for_lesson(lesson)
            if not found:
                raise UsageError(f"lesson {lesson!r} has no exercises in the bank")
            exercises.extend(found)
        return exercises

    # ---- main loop ---------------------------------------------------------------------

    def grade(self) -> int:
        notebooks = {student: read_submission(path) for student, path in self.submissions}
        exercises = self._exercises(notebooks)
        ids = [ex.id for ex in exercises]
        seed = self.args.seed
        prev_students = {}
        if self.previous and self.previous.get("exercise_ids") == ids:
            if seed is None and isinstance(self.previous.get("seed"), int):
                seed = self.previous["seed"]
            if seed == self.previous.get("seed"):
                prev_students = self.previous.get("students") or {}
        if seed is None:
            seed = secrets.randbits(63)
        self.seed = seed
        self.graded = draw_graded_cases(exercises, seed)
        self.meta = [
            {"id": ex.id, "lesson": ex.lesson, "name": ex.name, "title": ex.title, "points": ex.points, "cases": len(g.cases)}
            for ex, g in zip(exercises, self.graded)
        ]
        os.makedirs(os.path.join(self.out, "feedback"), exist_ok=True)

        todo = []
        for student, path in self.submissions:
            old = prev_students.get(student)
            if not self.args.force and isinstance(old, dict) and old.get("sha256") == notebooks[student].sha256:
                self.records[student] = old
            else:
                todo.append((student, path))
        skipped = len(self.submissions) - len(todo)
        if skipped and not self.quiet:
            print(f"skipping {skipped} already graded (use --force to regrade)")

        self.work = tempfile.mkdtemp(prefix="course-grade-")
        running: list[_Running] = []
        self.running = running
        self.isolation = "session"
        started = time.monotonic()
        try:
            os.chmod(self.work, 0o711)
            cases_dir = os.path.join(self.work, "cases")
            os.mkdir(cases_dir)
            _write_cases(self.graded, cases_dir)
            for name in os.listdir(cases_dir):
                os.chmod(os.path.join(cases_dir, name), 0o644)
            os.chmod(cases_dir, 0o755)
            self.cases_dir = cases_dir
            self.mpl_cache = _matplotlib_cache()
            uids = [None] * self.jobs
            if self.root:
                candidates = _free_uids(self.jobs)
                problem = _probe_drop(candidates[0], self.memory, self._child_env(self.work))
                if problem:
                    print(
                        "course grade: warning: cannot run submissions as an unprivileged user "
                        f"({problem}); they run as this user, in their own sessions. Make the Python "
                        "interpreter, the virtual environment and course_utils readable by all users "
                        "(or grade inside a container) for full isolation.",
                        file=sys.stderr,
                    )
                else:
                    uids = candidates
            self.isolation = "user" if uids[0] is not None else "session"
            _set_subreaper(True)
            free_slots = list(range(self.jobs))
            queue = list(todo)
            done = 0
            self._write_all()
            while queue or running:
                while queue and free_slots:
                    student, path = queue.pop(0)
                    nb = notebooks[student]
                    if nb.cells is None:
                        self._finish_invalid(student, path, nb)
                        done += 1
                        self._progress(done, len(todo), student)
                        continue
                    slot = free_slots.pop(0)
                    running.append(self._start(student, path, nb, slot, uids[slot]))
                time.sleep(0.02)
                for job in list(running):
                    if self._exited(job):
                        finished = True
                    elif time.monotonic() > job.deadline:
                        job.timed_out = True
                        finished = True
                    else:
                        finished = False
                    if finished:
                        running.remove(job)
                        self._stop(job)
                        free_slots.append(job.slot)
                        self._finish(job)
                        done += 1
                        self._progress(done, len(todo), job.student)
        except KeyboardInterrupt:
            for job in running:
                self._stop(job)
            self._write_all(feedback=True)
            print(f"interrupted: {len(self.records)} graded submissions kept in {self.out}", file=sys.stderr)
            return 130
        finally:
            for job in running:
                self._stop(job)
            _kill_strays(set())
            _set_subreaper(False)
            shutil.rmtree(self.work, ignore_errors=True)
        self._write_all(feedback=True)
        if self.args.gradescope:
            student = self.submissions[0][0]
            write_gradescope(os.path.join(self.out, "results.json"), self.records[student], self.meta)
        elapsed = time.monotonic() - started
        self._summary(elapsed, len(todo))
        return 0

    def _progress(self, done: int, total: int, student: str) -> None:
        if self.quiet:
            return
        rec = self.records[student]
        print(f"[{done}/{total}] {student}: {_fmt(rec['total'])}/{_fmt(rec['max'])} {rec['status']} ({rec['seconds']:.1f} s)", flush=True)

    def _summary(self, elapsed: float, graded: int) -> None:
        statuses: dict[str, int] = {}
        for rec in self.records.values():
            statuses[rec["status"]] = statuses.get(rec["status"], 0) + 1
        counts = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        print(f"graded {graded} submissions in {elapsed:.1f} s (seed {self.seed}); {counts}; wrote {os.path.join(self.out, 'grades.csv')}")

    # ---- one submission ----------------------------------------------------------------

    def _start(self, student: str, path: str, nb: _Notebook, slot: int, uid: int | None) -> _Running:
        folder = tempfile.mkdtemp(prefix=f"s{slot}-", dir=self.work)
        home = os.path.join(folder, "home")
        results = os.path.join(folder, "results")
        for sub in (home, results, os.path.join(home, "tmp"), os.path.join(home, ".matplotlib")):
            os.mkdir(sub)
        if self.mpl_cache:
            for name in os.listdir(self.mpl_cache):
                if name.startswith("fontlist"):
                    shutil.copy(os.path.join(self.mpl_cache, name), os.path.join(home, ".matplotlib", name))
        cells_path = os.path.join(folder, "cells.json")
        with open(cells_path, "w", encoding="utf-8") as fh:
            json.dump({"cells": nb.cells, "exercises": [g.exercise.id for g in self.graded]}, fh)
        os.chmod(cells_path, 0o644)
        if uid is not None:
            for dirpath, dirnames, filenames in os.walk(folder):
                os.chown(dirpath, uid, _GID_NOGROUP)
                for name in filenames:
                    os.chown(os.path.join(dirpath, name), uid, _GID_NOGROUP)
        # The log is opened here, so the grader keeps its own handle whatever the child does.
        log = open(os.path.join(self.work, f"log-{slot}-{os.path.basename(folder)}.txt"), "w+b")
        env = self._child_env(home)
        cmd = [sys.executable, "-m", "course_utils.grading.worker", "--cells", cells_path, "--cases", self.cases_dir, "--results", results]
        now = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            close_fds=True,
            preexec_fn=_limits_then_drop(self.memory, uid),
        )
        return _Running(student, path, nb, proc, folder, uid, slot, log, now, now + self.timeout)

    def _child_env(self, home: str) -> dict[str, str]:
        import course_utils

        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(course_utils.__file__)))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "USER": "student",
            "LOGNAME": "student",
            "TMPDIR": os.path.join(home, "tmp"),
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": os.path.join(home, ".matplotlib"),
            "IPYTHONDIR": os.path.join(home, ".ipython"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH", "")])),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        # Share the CPUs between the submissions running at once instead of oversubscribing them.
        threads = str(max(1, (os.cpu_count() or 1) // self.jobs))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = threads
        for name, value in os.environ.items():
            if name.startswith("COURSE_") or name in ("CUDA_VISIBLE_DEVICES", "LC_ALL", "TZ"):
                env[name] = value
        env["COURSE_GRADING"] = "1"
        return env

    def _exited(self, job: _Running) -> bool:
        # WNOWAIT: see that it ended without reaping it, so its process group id is not reused
        # before the leftovers in that group are killed.
        try:
            info = os.waitid(os.P_PID, job.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _stop(self, job: _Running) -> None:
        try:
            os.killpg(job.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if job.uid is not None:
            _kill_uid(job.uid)
        try:
            job.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed process always ends
            pass
        _kill_strays({j.proc.pid for j in self.running if j is not job})

    # ---- verdicts ----------------------------------------------------------------------

    def _finish_invalid(self, student: str, path: str, nb: _Notebook) -> None:
        exercises = {
            g.exercise.id: self._exercise_record(g, None, "no-result", "the notebook could not be read") for g in self.graded
        }
        self._store(student, path, nb, "invalid-notebook", nb.problem, exercises, {"run": 0, "errors": []}, 0.0)

    def _finish(self, job: _Running) -> None:
        seconds = time.monotonic() - job.started
        code = job.proc.returncode
        log_tail = _tail(job.log)
        job.log.close()
        limits = encoding.Limits(owner_uid=job.uid)
        results_dir = os.path.join(job.folder, "results")
        try:
            results = encoding.read_json(results_dir, "results.json", limits)
            if not isinstance(results, dict):
                raise encoding.EncodingError("results.json is not an object")
        except encoding.EncodingError as exc:
            results, read_problem = {}, str(exc)
        else:
            read_problem = ""
        cells = results.get("cells") if isinstance(results.get("cells"), dict) else {}
        cell_errors = [
            {"cell": int(e["cell"]), "error": str(e["error"])[:300], "memory": bool(e.get("memory"))}
            for e in cells.get("errors", []) if isinstance(e, dict) and isinstance(e.get("cell"), int) and "error" in e
        ][:200] if isinstance(cells.get("errors"), list) else []
        raw = results.get("exercises") if isinstance(results.get("exercises"), dict) else {}
        exercises = {}
        memory_seen = any(e["memory"] for e in cell_errors)
        stop_reason = "the submission stopped before this exercise was run"
        if job.timed_out:
            stop_reason = f"the submission ran past the {self.timeout:g} s time limit before this exercise was run"
        for g in self.graded:
            rec = self._exercise_record(g, raw.get(g.exercise.id), "no-result", stop_reason, results_dir, limits)
            memory_seen = memory_seen or rec.pop("_memory", False)
            exercises[g.exercise.id] = rec
        lowered = log_tail.lower()
        memory_seen = memory_seen or any(s in lowered for s in ("memoryerror", "cannot allocate memory", "can't allocate memory", "bad_alloc", "failed to map segment"))
        if job.timed_out:
            status, detail = "timeout", f"ran past the {self.timeout:g} s time limit and was stopped"
        elif memory_seen:
            status, detail = "memory", f"ran out of its {self.memory >> 20} MB memory limit"
        elif code != 0:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            status, detail = "crashed", f"the grading process {how}"
        elif results.get("done") is not True:
            status, detail = "crashed", "the grading process ended before it finished" + (f" ({read_problem})" if read_problem else "")
        else:
            status, detail = "ok", ""
        if status in ("crashed", "memory") and log_tail.strip():
            detail += "; last output: " + " ".join(log_tail.split())[-300:]
        timing = results.get("timing") if isinstance(results.get("timing"), dict) else {}
        # As reported by the submission's own process: for speed notes only, never for grading.
        timing = {k: float(v) for k, v in timing.items() if k in ("cells", "cases") and isinstance(v, (int, float)) and 0 <= v < 1e6}
        self._store(job.student, job.path, job.notebook, status, detail, exercises,
                    {"run": int(cells.get("run", 0)) if isinstance(cells.get("run"), int) else 0, "errors": cell_errors}, seconds, timing)

    def _exercise_record(self, g: _Graded, raw: Any, default_status: str, default_reason: str,
                         results_dir: str | None = None, limits: encoding.Limits | None = None) -> dict:
        from ..exercises.core import compare, describe

        ex = g.exercise
        n = len(g.cases)
        cases = []
        memory = False
        status = default_status
        if isinstance(raw, dict) and raw.get("status") in ("missing", "not-attempted"):
            status = raw["status"]
            reason = f"{ex.name!r} is not defined" if status == "missing" else "not attempted yet"
            cases = [{"input": g.inputs[i], "passed": False, "reason": reason} for i in range(n)]
        elif isinstance(raw, dict) and raw.get("status") == "ok" and isinstance(raw.get("cases"), list):
            kinds = []
            for i in range(n):
                item = raw["cases"][i] if i < len(raw["cases"]) else None
                passed, reason, kind = False, "no result for this case", "missing"
                if isinstance(item, dict) and "out" in item:
                    try:
                        got = encoding.decode(item["out"], results_dir, limits, tensors=False)
                    except (encoding.EncodingError, OSError) as exc:
                        reason, kind = f"its output could not be read: {exc}", "error"
                    else:
                        verdict = compare(g.expected[i], got, ex.rtol, ex.atol)
                        passed, reason, kind = verdict.ok, verdict.reason if not verdict.ok else "", "ok"
                        if not passed:
                            reason = f"{reason}; returned {describe(got, 100)}" if "got" not in reason else reason
                elif isinstance(item, dict) and isinstance(item.get("error"), str):
                    kind = item.get("kind") if item.get("kind") in ("not-attempted", "error", "timeout", "memory", "not-plain") else "error"
                    reason = ("not attempted yet" if kind == "not-attempted" else f"raised {item['error'][:300]}" if kind in ("error", "memory") else item["error"][:300])
                    memory = memory or kind == "memory"
                kinds.append(kind)
                cases.append({"input": g.inputs[i], "passed": passed, "reason": reason})
            if all(k == "not-attempted" for k in kinds):
                status = "not-attempted"
            elif any(k in ("error", "timeout", "memory", "not-plain") for k in kinds):
                status = "error"
            else:
                status = "ok"
        else:
            cases = [{"input": g.inputs[i], "passed": False, "reason": default_reason} for i in range(n)]
        passed = sum(1 for c in cases if c["passed"])
        record = {
            "score": round(ex.points * passed / n, 4),
            "points": ex.points,
            "status": status,
            "passed": passed,
            "total": n,
            "cases": cases,
        }
        if memory:
            record["_memory"] = True
        return record

    def _store(self, student: str, path: str, nb: _Notebook, status: str, detail: str, exercises: dict, cells: dict,
               seconds: float, timing: dict | None = None) -> None:
        total = round(sum(e["score"] for e in exercises.values()), 4)
        maximum = sum(m["points"] for m in self.meta)
        record = {
            "student": student,
            "path": os.path.abspath(path),
            "sha256": nb.sha256,
            "seed": self.seed,
            "status": status,
            "detail": detail,
            "total": total,
            "max": maximum,
            "seconds": round(seconds, 3),
            "worker_timing": timing or {},
            "cells": cells,
            "exercises": exercises,
        }
        self.records[student] = record
        _atomic_write(os.path.join(self.out, "feedback", f"{student}.md"), _feedback(record, self.meta))
        self._write_all()

    # ---- files -------------------------------------------------------------------------

    def _write_all(self, feedback: bool = False) -> None:
        """Rewrite grades.json and grades.csv (and the feedback) from memory, so a forged file does not survive."""
        students = {s: self.records[s] for s in sorted(self.records)}
        if feedback:
            for s, rec in students.items():
                _atomic_write(os.path.join(self.out, "feedback", f"{s}.md"), _feedback(rec, self.meta))
        data = {
            "seed": self.seed,
            "isolation": self.isolation,
            "exercise_ids": [m["id"] for m in self.meta],
            "exercises": self.meta,
            "max": sum(m["points"] for m in self.meta),
            "students": students,
        }
        _atomic_write(os.path.join(self.out, "grades.json"), json.dumps(data, indent=1, allow_nan=False))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        ids = [m["id"] for m in self.meta]
        writer.writerow(["student", *ids, "total", "max", "status"])
        for s, rec in students.items():
            writer.writerow([s, *(_fmt(rec["exercises"].get(i, {}).get("score", 0)) for i in ids), _fmt(rec["total"]), _fmt(rec["max"]), rec["status"]])
        _atomic_write(os.path.join(self.out, "grades.csv"), buf.getvalue())


def _fmt(x: float) -> str:
    return f"{x:.4g}" if isinstance(x, float) and not float(x).is_integer() else str(int(x))


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _tail(fh: Any) -> str:
    try:
        fh.flush()
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - _LOG_TAIL))
        return fh.read(_LOG_TAIL).decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""


def _matplotlib_cache() -> str | None:
    """The grader's matplotlib cache folder, whose font list each child gets a copy of."""
    try:
        import matplotlib
        from matplotlib import font_manager  # noqa: F401 - builds the font list once if missing

        return matplotlib.get_cachedir()
    except Exception:  # matplotlib missing or unusable: children build their own
        return None


def _feedback(record: dict, meta: Sequence[dict]) -> str:
    lines = [
        f"# Feedback for {record['student']}",
        "",
        f"**Score: {_fmt(record['total'])} / {_fmt(record['max'])}**  (status: {record['status']})",
        "",
        "Your notebook was run in a separate process and your functions were called on inputs drawn "
        "for this grading run (not the practice inputs of `check`). Each graded case is worth an equal "
        "share of the exercise's points.",
    ]
    if record.get("detail"):
        lines += ["", f"Note: {record['detail']}."]
    errors = record.get("cells", {}).get("errors", [])
    if errors:
        lines += ["", "## Cells that raised an error", ""]
        lines += [f"- code cell {e['cell'] + 1}: `{e['error']}`" for e in errors[:20]]
    for m in meta:
        ex = record["exercises"].get(m["id"])
        if ex is None:
            continue
        lines += ["", f"## {m['id']}: {_fmt(ex['score'])} / {m['points']} ({ex['passed']} of {ex['total']} cases passed)"]
        if m.get("title"):
            lines += ["", m["title"]]
        if ex["status"] == "missing":
            lines += ["", f"`{m['name']}` is not defined in the notebook."]
        elif ex["status"] == "not-attempted":
            lines += ["", "Not attempted yet."]
        elif ex["status"] == "no-result":
            lines += ["", ex["cases"][0]["reason"] + "." if ex["cases"] else "No result."]
        else:
            failed = [c for c in ex["cases"] if not c["passed"]]
            if not failed:
                lines += ["", "All graded cases passed."]
            else:
                lines += ["", "Failed cases (up to 5):", ""]
                lines += [f"- input {c['input']}: {c['reason']}" for c in failed[:5]]
    return "\n".join(lines) + "\n"
