"""``course grade``: grade submitted notebooks in isolated processes, without trusting them.

Usage::

    course grade SUBMISSION... --out DIR [--lesson LESSON ...] [--jobs N] [--timeout SECONDS]
                 [--memory MB] [--force] [--gradescope] [--seed S] [--no-sandbox]

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
2. Each submission runs in ``python -m course_utils.grading.worker`` (see that module) inside a
   bubblewrap sandbox (:mod:`course_utils.grading.sandbox`): its own user, PID, IPC and network
   namespaces; a read-only view of the Python environment and of the ``course_utils`` folder alone
   (no solution notebooks, no exercise references: the worker is sent names, kinds and ``run``
   adapters only); a private ``/grading`` folder and ``/tmp`` holding only its own submission; no
   view of the submissions folder, the output folder, other workers or the grader's command line.
   As root, it runs as a user id reserved for this run (never root), so concurrent runs never
   share one. Memory: ``--memory`` MB for the whole submission, all processes together, through a
   cgroup where one can be made (otherwise ``--memory`` per process times the process limit,
   stated in the log), at most 512 processes, a 512 MB file-size limit. When the sandbox's first
   process ends, everything in it dies. With no working sandbox, grading refuses and says how to get
   one; ``--no-sandbox`` runs submissions as plain child processes of the grader, only for a
   disposable container where each submission already runs alone (Gradescope's).
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

Statuses, all from what the grader itself observed (its clock, the exit status and signal, the
cgroup's out-of-memory count), never from what the submission printed: ``ok``, ``timeout`` (ran
past ``--timeout``), ``memory`` (went over ``--memory`` and was killed), ``crashed`` (the worker
died, was killed, or exited without finishing), ``invalid-notebook`` (not a readable notebook: also
a symbolic link, a FIFO or anything but a regular file, over 256 MB or 20,000 code cells). Per exercise:
``ok``, ``missing`` (name not defined), ``not-attempted`` (``None`` or ``NotImplementedError``),
``error`` (raised), ``no-result`` (the submission stopped before reaching it).

Files are replaced atomically as each submission finishes, so a crash or Ctrl-C keeps what was
graded; a rerun skips students already graded unless ``--force`` or their notebook changed (by
sha256). Each stored row carries a keyed hash (HMAC-SHA256, key in ``--out/.grader-key``, readable
by the grader only); a row whose hash does not match is regraded, never trusted. The output folder
is made private (mode 0700) and stays so. In ``grades.csv``, a cell that a spreadsheet would read as
a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is prefixed with
``'``; ``grades.json`` keeps the exact name. Exit status: 0 when the batch completed, whatever the scores; 2 for a usage error;
1 if an exercise's own reference fails (a bug in the exercise bank); 130 on Ctrl-C.

Memory floor: with a cgroup, ``--memory`` counts memory in use (a worker with torch loaded uses
about 0.4 GB). Without one it is an address-space limit per process, and importing torch (CUDA
build) needs about 3.2 GB of address space, so ``--memory`` below about 3500 then fails every
submission; the default, 8192, leaves lessons 06-07 (which hold CIFAR-10 in memory) room either way.
"""
from __future__ import annotations

import argparse
import csv
import ctypes
import ctypes.util
import glob
import hashlib
import hmac
import io
import json
import os
import pwd
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from . import encoding, sandbox
from .gradescope import write_gradescope

__all__ = ["add_parser", "main", "run", "UsageError"]

DEFAULT_TIMEOUT = 120.0
DEFAULT_MEMORY_MB = 8192
_FILE_LIMIT = 512 << 20
_NOTEBOOK_LIMIT = 256 << 20
_CELL_LIMIT = 20_000
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
    p.add_argument("--lesson", action="append", metavar="LESSON", help="the assignment: grade this lesson's exercises (repeatable; default: the lesson most notebooks record)")
    p.add_argument("--bank", action="append", default=[], metavar="PATH", help="an instructor's exercise bank folder (repeatable; $COURSE_BANK is read too)")
    p.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1, metavar="N", help="submissions graded at once (default: number of CPUs)")
    p.add_argument("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help=f"time limit per submission (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--memory", type=_positive_int, default=DEFAULT_MEMORY_MB, metavar="MB", help=f"memory limit per submission, all its processes together where a cgroup can be made, else address space per process (default {DEFAULT_MEMORY_MB}; without a cgroup torch alone needs about 3500)")
    p.add_argument("--force", action="store_true", help="regrade students already in DIR/grades.json")
    p.add_argument("--gradescope", action="store_true", help="also write DIR/results.json for Gradescope (one submission only)")
    p.add_argument("--seed", type=_seed, default=None, metavar="S", help="seed for the graded cases (default: fresh, or the one in DIR/grades.json)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.add_argument("--no-sandbox", action="store_true", help="run submissions without the bubblewrap sandbox: only inside a disposable container where each submission already runs alone (such as Gradescope's)")


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


def read_submission(path: str, keep_cells: bool = True) -> _Notebook:
    """Read a submitted notebook's code cells without running or trusting anything in it.

    Only a regular file is read: a symbolic link (whatever it points at), a FIFO, a device or a
    folder is refused without blocking, as is a file over 256 MB or with more than 20,000 code
    cells. Every problem is returned as ``problem`` (the submission's ``invalid-notebook`` detail),
    never raised.

    Parameters
    ----------
    path : str
        The notebook.
    keep_cells : bool
        Keep the cells' sources. The grader reads every notebook once up front without them (for the
        sha256 and the lesson) and again, one at a time, when its worker starts, so that a batch
        never holds every notebook in memory at once.

    Returns
    -------
    _Notebook

    Examples
    --------
    >>> read_submission("does-not-exist.ipynb").problem
    'cannot read the file: No such file or directory'
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(path):
            return _Notebook("", None, None, "the file is a symbolic link; submit the notebook itself")
        return _Notebook("", None, None, f"cannot read the file: {exc.strerror}")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return _Notebook("", None, None, "not a regular file (a FIFO, device or folder); submit the notebook itself")
        if info.st_size > _NOTEBOOK_LIMIT:
            return _Notebook("", None, None, f"the file is larger than {_NOTEBOOK_LIMIT >> 20} MB")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(_NOTEBOOK_LIMIT + 1)
    except OSError as exc:
        return _Notebook("", None, None, f"cannot read the file: {exc.strerror}")
    finally:
        os.close(fd)
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
    del data
    cells = []
    for cell in nb["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        if len(cells) >= _CELL_LIMIT:
            return _Notebook(digest, None, None, f"the notebook has more than {_CELL_LIMIT} code cells")
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
    return _Notebook(digest, cells if keep_cells else [], lesson)


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
    """``count`` user ids reserved for this run until it exits (see :class:`sandbox.UidLease`)."""
    lease = sandbox.UidLease(count)
    _LEASES.append(lease)  # held, with its lock files, for the life of this process
    return list(lease.uids)


_LEASES: list = []


def _limits_then_drop(memory_bytes: int | None, uid: int | None, cgroup_procs: Sequence[str] = ()) -> Any:
    """The child's set-up between fork and exec: session, cgroup, limits, parent-death signal.

    ``memory_bytes`` is the per-process address-space limit (``None`` where a cgroup bounds the
    whole submission). ``uid`` is the reserved uid whose process count ``RLIMIT_NPROC`` bounds;
    the sandbox itself drops to it. Without the sandbox (``--no-sandbox``) nothing drops here.
    """
    procs = list(cgroup_procs)

    def preexec() -> None:  # runs in the child between fork and exec; keep it to system calls
        os.setsid()
        for path in procs:  # join the submission's cgroups before anything of it runs
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
        if memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (_FILE_LIMIT, _FILE_LIMIT))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if uid is not None:
            # Counted per uid, and the uid is this slot's alone; threads count (torch starts some).
            resource.setrlimit(resource.RLIMIT_NPROC, (sandbox.PROCESS_LIMIT, sandbox.PROCESS_LIMIT))
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


def _probe_drop(uid: int | None, memory_bytes: int, env: dict) -> str:
    """Why a worker cannot start in the sandbox (as ``uid`` when root); ``""`` when it can."""
    return sandbox.problem(env, as_uid=uid, preexec=_limits_then_drop(memory_bytes, uid))


_PR_SET_CHILD_SUBREAPER = 36


def _set_subreaper(on: bool) -> None:
    # Processes a submission detaches (double fork, setsid) become our children instead of init's,
    # so _kill_strays can find and kill them even when every process runs as the same user.
    _LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0)


def _kill_strays(keep: set[int]) -> None:
    """Kill and reap every child of this process except the worker processes in ``keep``.

    Swept again until a sweep finds none: killing one stray reparents its own children to this
    process (the subreaper), and a tree that forks while being swept must not slip through.
    """
    for _ in range(200):
        if not _kill_strays_once(keep):
            return


def _kill_strays_once(keep: set[int]) -> bool:
    me = os.getpid()
    found = False
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
            found = True
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError, PermissionError):
                pass
    return found


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
    cgroup: Any = None


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
        """The assignment's exercises: one batch is one assignment, with one maximum for everyone.

        Its lessons come from ``--lesson``; without it, from the batch as a whole: the lesson that
        most notebooks record (a single notebook's metadata cannot choose for the others). A tie
        is a usage error that asks for ``--lesson``. Every notebook whose recorded lesson differs
        is still graded against the batch's exercises, flagged in its row (``self.lesson_flags``)
        and listed in a warning.
        """
        from ..exercises.bank import BankError, load_bank
        from ..exercises.registry import all_exercises, exercises_for_lesson
        from .worker import load_extra_exercises

        try:
            load_extra_exercises()
        except Exception as exc:
            raise UsageError(f"COURSE_EXTRA_EXERCISES: {exc}") from None
        try:
            for bank in getattr(self.args, "bank", None) or []:
                load_bank(bank)
            all_exercises()  # loads the built-in bank and $COURSE_BANK now, not mid-batch
        except BankError as exc:
            raise UsageError(str(exc)) from None
        recorded: dict[str, int] = {}
        for student, _ in self.submissions:
            lesson = notebooks[student].lesson
            if lesson:
                recorded[lesson] = recorded.get(lesson, 0) + 1
        lessons = list(dict.fromkeys(self.args.lesson or []))
        if not lessons:
            usable = {lesson: n for lesson, n in recorded.items() if exercises_for_lesson(lesson)}
            if not usable:
                raise UsageError("no notebook names a lesson with exercises in its metadata; pass --lesson LESSON")
            ranked = sorted(usable.items(), key=lambda item: -item[1])
            if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
                found = ", ".join(f"{lesson} ({n})" for lesson, n in ranked)
                raise UsageError(f"the notebooks record different lessons equally often ({found}); a batch is one assignment: pass --lesson LESSON")
            lessons = [ranked[0][0]]
        exercises = []
        for lesson in lessons:
            found = exercises_for_lesson(lesson)
            if not found:
                raise UsageError(f"lesson {lesson!r} has no exercises in the bank")
            exercises.extend(found)
        self.lessons = lessons
        self.lesson_flags = {}
        for student, _ in self.submissions:
            lesson = notebooks[student].lesson
            if lesson not in lessons:
                claimed = f"records lesson {lesson!r}" if lesson else "records no lesson"
                self.lesson_flags[student] = f"the notebook {claimed}; graded as {', '.join(lessons)} like the whole batch"
        if self.lesson_flags:
            found = ", ".join(f"{lesson} ({n})" for lesson, n in sorted(recorded.items())) or "none"
            print(
                f"course grade: warning: {len(self.lesson_flags)} of {len(self.submissions)} notebooks record a lesson "
                f"other than {', '.join(lessons)} (lessons found: {found}); they are graded against "
                f"{', '.join(lessons)} and flagged in grades.csv",
                file=sys.stderr,
            )
        return exercises

    # ---- main loop ---------------------------------------------------------------------

    def grade(self) -> int:
        self._setup_sandbox()
        # Without the cells: each notebook is read again, alone, when its worker starts.
        notebooks = {student: read_submission(path, keep_cells=False) for student, path in self.submissions}
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
        # Checked before anything is graded: a bank adapter that cannot be shown refuses the batch.
        self.adapter_files = bank_adapter_files(exercises)
        self.meta = [
            {"id": ex.id, "lesson": ex.lesson, "name": ex.name, "title": ex.title, "points": ex.points, "cases": len(g.cases)}
            for ex, g in zip(exercises, self.graded)
        ]
        os.makedirs(os.path.join(self.out, "feedback"), exist_ok=True)
        # Private to the grader while it runs (and after): no worker or other user lists or reads it.
        os.chmod(self.out, 0o700)
        self.key = _grader_key(self.out)

        todo = []
        for student, path in self.submissions:
            old = prev_students.get(student)
            if (not self.args.force and isinstance(old, dict) and old.get("sha256") == notebooks[student].sha256
                    and _row_is_signed(old, self.key)):
                self.records[student] = old
            else:
                todo.append((student, path))
        skipped = len(self.submissions) - len(todo)
        if skipped and not self.quiet:
            print(f"skipping {skipped} already graded (use --force to regrade)")

        self.work = tempfile.mkdtemp(prefix="course-grade-")
        running: list[_Running] = []
        self.running = running
        started = time.monotonic()
        try:
            os.chmod(self.work, 0o700)
            cases_dir = os.path.join(self.work, "cases")
            os.mkdir(cases_dir)
            _write_cases(self.graded, cases_dir)
            for name in os.listdir(cases_dir):
                os.chmod(os.path.join(cases_dir, name), 0o644)
            os.chmod(cases_dir, 0o755)
            self.cases_dir = cases_dir
            self.adapters_dir = self._copy_adapters() if self.adapter_files else None
            self.mpl_cache = _matplotlib_cache()
            uids = self.uids
            _set_subreaper(True)
            free_slots = list(range(self.jobs))
            queue = list(todo)
            done = 0
            self._write_all()
            while queue or running:
                while queue and free_slots:
                    student, path = queue.pop(0)
                    nb = read_submission(path)  # one notebook's cells in memory at a time
                    if nb.cells is None:
                        self._finish_invalid(student, path, nb)
                        done += 1
                        self._progress(done, len(todo), student)
                        continue
                    slot = free_slots.pop(0)
                    try:
                        running.append(self._start(student, path, nb, slot, uids[slot]))
                    except Exception as exc:  # this submission's problem, never the batch's
                        free_slots.append(slot)
                        self._store(student, path, nb, "crashed", f"could not be started: {type(exc).__name__}: {exc}",
                                    self._no_results("the submission could not be started"), {"run": 0, "errors": []}, 0.0)
                        done += 1
                        self._progress(done, len(todo), student)
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

    def _setup_sandbox(self) -> None:
        """Decide how submissions are isolated; refuse (exit 2) when the sandbox cannot work here."""
        self.uids: list[int | None] = [None] * self.jobs
        self.use_cgroups = False
        self.sandboxed = not bool(getattr(self.args, "no_sandbox", False))
        user = pwd.getpwuid(os.geteuid()).pw_name if _has_account(os.geteuid()) else str(os.geteuid())
        if not self.sandboxed:
            self.isolation = f"none (--no-sandbox): submissions ran as user {user}, each in its own session"
            print("course grade: warning: --no-sandbox: submissions run as this user, unconfined; use it only "
                  "inside a disposable container where each submission runs alone (such as Gradescope's)", file=sys.stderr)
            return
        uid = None
        if self.root:
            try:
                self.uids = _free_uids(self.jobs)
            except RuntimeError as exc:
                raise UsageError(f"cannot sandbox the submissions: {exc}") from None
            uid = self.uids[0]
        problem = _probe_drop(uid, self.memory, self._child_env(sandbox.LAYOUT.home))
        if problem:
            raise UsageError(f"cannot sandbox the submissions here: {problem}")
        try:
            # Names this run's cgroups, so that a later run can tell them from those of a run that is gone.
            self.run_lease = sandbox.RunLease()
            _LEASES.append(self.run_lease)
        except OSError:
            self.run_lease = None
        if self.run_lease is not None:
            # Empty cgroups that a grader killed with SIGKILL could not remove.
            sandbox.remove_stale_cgroups()
            probe = sandbox.Cgroup.create(self.run_lease.cgroup_name("probe"), self.memory)
            if probe is not None:
                probe.remove()
                self.use_cgroups = True
        who = f"uids {self.uids[0]}-{self.uids[-1]} reserved for this run, never root" if self.root else f"user {user}"
        self.isolation = f"sandbox (bubblewrap): submissions ran as {who}; memory {sandbox.memory_bound(self.memory, self.use_cgroups)}"
        if not self.quiet:
            print(f"isolation: {self.isolation}", flush=True)

    def _no_results(self, reason: str) -> dict:
        return {g.exercise.id: self._exercise_record(g, None, "no-result", reason) for g in self.graded}

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
        os.mkdir(os.path.join(folder, "cases"))  # where the sandbox mounts the graded inputs
        job_spec = {"cells": nb.cells, "exercises": [_worker_spec(g.exercise) for g in self.graded], "timeout": self.timeout}
        if self.adapters_dir:
            os.mkdir(os.path.join(folder, "adapters"))  # where the sandbox mounts the bank's adapters
            job_spec["adapter_path"] = sandbox.LAYOUT.adapters if self.sandboxed else self.adapters_dir
        cells_path = os.path.join(folder, "cells.json")
        with open(cells_path, "w", encoding="utf-8") as fh:
            json.dump(job_spec, fh)
        os.chmod(cells_path, 0o644)
        if uid is not None:
            for dirpath, dirnames, filenames in os.walk(folder):
                os.chown(dirpath, uid, _GID_NOGROUP)
                for name in filenames:
                    os.chown(os.path.join(dirpath, name), uid, _GID_NOGROUP)
        # The log is opened here, so the grader keeps its own handle whatever the child does.
        log = open(os.path.join(self.work, f"log-{slot}-{os.path.basename(folder)}.txt"), "w+b")
        cgroup = None
        if self.sandboxed:
            lay = sandbox.LAYOUT
            env = self._child_env(lay.home)
            inner = [sys.executable, "-m", "course_utils.grading.worker", "--cells", lay.cells, "--cases", lay.cases, "--results", lay.results]
            cmd = sandbox.command(folder, self.cases_dir, inner, uid, hide=self._hidden(), adapters_dir=self.adapters_dir)
            if self.use_cgroups:
                cgroup = sandbox.Cgroup.create(self.run_lease.cgroup_name(os.path.basename(folder)), self.memory)
            cwd = "/"
        else:
            env = self._child_env(home)
            cmd = [sys.executable, "-m", "course_utils.grading.worker", "--cells", cells_path, "--cases", self.cases_dir, "--results", results]
            cwd = home
        # A cgroup bounds the whole submission's memory; without one, each process gets --memory.
        memory = None if cgroup is not None else self.memory
        now = time.monotonic()
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
                preexec_fn=_limits_then_drop(memory, uid, cgroup.procs_files if cgroup else ()),
            )
        except BaseException:
            log.close()
            if cgroup is not None:
                cgroup.remove()
            raise
        return _Running(student, path, nb, proc, folder, uid, slot, log, now, now + self.timeout, cgroup=cgroup)

    def _copy_adapters(self) -> str:
        """Copy the bank's adapter files (see :func:`bank_adapter_files`) into the run's folder.

        The copies, not the bank folder, are what the sandbox shows (read-only, at
        ``/grading/adapters``): the bank folder itself stays hidden.
        """
        folder = os.path.join(self.work, "adapters")
        os.mkdir(folder)
        for module, path in self.adapter_files.items():
            target = os.path.join(folder, f"{module}.py")
            shutil.copyfile(path, target)
            os.chmod(target, 0o644)
        os.chmod(folder, 0o755)
        return folder

    def _hidden(self) -> list[str]:
        """Files under the sandbox's read-only view that a worker must not read.

        They are the extra exercise banks and the built-in lesson modules ``lessonNN.py``, which
        hold the references, with their bytecode. The worker needs none of them: the ``run``
        adapters it imports live in ``course_utils/exercises/adapters.py``, and ``check`` does
        nothing while grading.
        """
        hidden = []
        for item in os.environ.get("COURSE_EXTRA_EXERCISES", "").split(os.pathsep):
            if item.strip().endswith(".py") and os.path.exists(item.strip()):
                hidden.append(os.path.abspath(item.strip()))
        from ..exercises.bank import loaded_bank_paths

        hidden.extend(p for p in loaded_bank_paths() if p not in hidden)  # --bank and $COURSE_BANK
        banks = list(hidden)
        from .. import exercises

        exercises_dir = os.path.dirname(os.path.abspath(exercises.__file__))
        hidden.extend(sorted(glob.glob(os.path.join(glob.escape(exercises_dir), "lesson*.py"))))
        pycache = os.path.join(exercises_dir, "__pycache__")
        if os.path.isdir(pycache):
            # The whole folder, not only today's lesson*.pyc: a .pyc the grader writes after this
            # worker starts would show through a bind mount of the package.
            hidden.append(pycache)
        for bank in banks:  # a bank's own bytecode, beside it
            stem = os.path.splitext(os.path.basename(bank))[0]
            pattern = os.path.join(glob.escape(os.path.join(os.path.dirname(bank), "__pycache__")), f"{glob.escape(stem)}.*.pyc")
            hidden.extend(p for p in sorted(glob.glob(pattern)) if p not in hidden)
        return hidden

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
        from ..train import _omp_num_threads

        # Share the CPUs between the submissions running at once instead of oversubscribing them,
        # and never give a submission more threads than the grader itself was allowed.
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        threads = min(threads, _omp_num_threads() or threads)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
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
        if job.cgroup is not None:
            job.cgroup.kill()
        if job.uid is not None:
            _kill_uid(job.uid)  # the uid is reserved for this run's slot: nobody else's processes
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
            {"cell": int(e["cell"]), "error": str(e["error"])[:300], "memory": bool(e.get("memory")),
             "name": cell_name(job.notebook.cells, int(e["cell"]))}
            for e in cells.get("errors", []) if isinstance(e, dict) and isinstance(e.get("cell"), int) and "error" in e
        ][:200] if isinstance(cells.get("errors"), list) else []
        raw = results.get("exercises") if isinstance(results.get("exercises"), dict) else {}
        exercises = {}
        # Observed by the grader, never read from what the submission wrote or printed: the
        # kernel's out-of-memory count for the submission's cgroup.
        memory_seen = job.cgroup.oom_killed() if job.cgroup is not None else False
        if job.cgroup is not None:
            job.cgroup.remove()
        stop_reason = "the submission stopped before this exercise was run"
        if job.timed_out:
            stop_reason = f"the submission ran past the {self.timeout:g} s time limit before this exercise was run"
        for g in self.graded:
            try:
                rec = self._exercise_record(g, raw.get(g.exercise.id), "no-result", stop_reason, results_dir, limits, job.notebook.cells)
            except Exception as exc:  # MemoryError included: this exercise's problem, never the batch's
                rec = self._exercise_record(g, None, "error", f"its results could not be read: {type(exc).__name__}")
            rec.pop("_memory", None)
            exercises[g.exercise.id] = rec
        if job.timed_out:
            status, detail = "timeout", f"ran past the {self.timeout:g} s time limit and was stopped"
        elif memory_seen:
            status, detail = "memory", f"went over its {self.memory >> 20} MB memory limit and was stopped"
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
                         results_dir: str | None = None, limits: encoding.Limits | None = None,
                         cells: Sequence[str] | None = None) -> dict:
        """Score one exercise of one submission from the worker's raw record, here in the grader.

        A forbidden call seen in the worker (kind ``forbidden``) fails that case; a forbidden name
        found by :func:`course_utils.exercises.forbidden.scan_source` in the learner's own source
        (``cells``, read here, never trusted from the worker) fails every case, with the reason.
        A single-value exercise's feedback never names its expected value.
        """
        from ..exercises.check import hide_expected_value
        from ..exercises.core import compare, describe
        from ..exercises.forbidden import scan_source

        ex = g.exercise
        source_reasons: list[str] = []
        if cells and (ex.forbidden or ex.kind == "function"):
            try:
                source_reasons = scan_source(ex, "\n\n\n".join(cells))[:5]
            except (RecursionError, MemoryError, ValueError):  # a pathological notebook: no verdict from the scan
                source_reasons = []
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
                        if not passed and ex.kind == "value":
                            # The one expected value is the answer for every classmate: never show it.
                            type_only = reason.startswith(("expected a ", "expected an ")) and ", got a" in reason
                            reason = reason if type_only else f"not the right value; returned {describe(got, 100)}"
                        elif not passed and not ex.show_expected:
                            # A design task's answer is hidden as check() hides it: where, never what.
                            reason = f"{hide_expected_value(reason)}; returned {describe(got, 100)}"
                        elif not passed:
                            reason = f"{reason}; returned {describe(got, 100)}" if "got" not in reason else reason
                elif isinstance(item, dict) and isinstance(item.get("error"), str):
                    kind = item.get("kind") if item.get("kind") in ("not-attempted", "error", "timeout", "memory", "not-plain", "forbidden") else "error"
                    reason = ("not attempted yet" if kind == "not-attempted" else f"raised {item['error'][:300]}" if kind in ("error", "memory")
                              else f"called a forbidden function: {item['error'][:300]}" if kind == "forbidden" else item["error"][:300])
                    memory = memory or kind == "memory"
                kinds.append(kind)
                cases.append({"input": g.inputs[i], "passed": passed, "reason": reason})
            if all(k == "not-attempted" for k in kinds):
                status = "not-attempted"
            elif any(k == "forbidden" for k in kinds):
                status = "forbidden"
            elif any(k in ("error", "timeout", "memory", "not-plain") for k in kinds):
                status = "error"
            else:
                status = "ok"
        else:
            cases = [{"input": g.inputs[i], "passed": False, "reason": default_reason} for i in range(n)]
        if source_reasons and status not in ("missing", "not-attempted"):
            # The learner's own source calls what the exercise forbids: no case counts, whatever the
            # worker reported (the worker runs the learner's code and could have hidden the call).
            status = "forbidden"
            why = "; ".join(source_reasons)
            cases = [{**c, "passed": False, "reason": why} for c in cases]
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
            "isolation": self.isolation,
            "flag": getattr(self, "lesson_flags", {}).get(student, ""),
        }
        # Keyed with a key no worker can see, so a rerun trusts only rows this grader wrote.
        record["signature"] = _sign(record, self.key)
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
        writer.writerow(["student", *(_csv_safe(i) for i in ids), "total", "max", "status", "flag"])
        for s, rec in students.items():
            writer.writerow([_csv_safe(s), *(_fmt(rec["exercises"].get(i, {}).get("score", 0)) for i in ids), _fmt(rec["total"]), _fmt(rec["max"]), _csv_safe(rec["status"]), _csv_safe(str(rec.get("flag", "")))])
        _atomic_write(os.path.join(self.out, "grades.csv"), buf.getvalue())


def _csv_safe(text: str) -> str:
    """``text`` as a spreadsheet shows it, never as a formula: a leading ``=+-@``, tab or CR gets ``'``.

    Examples
    --------
    >>> _csv_safe("=HYPERLINK(1)"), _csv_safe("ann")
    ("'=HYPERLINK(1)", 'ann')
    """
    text = str(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _grader_key(out: str) -> bytes:
    """The gradebook's signing key, ``out/.grader-key`` (mode 0600), made on first use."""
    path = os.path.join(out, ".grader-key")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            key = fh.read(65)
        if len(key) == 64 and os.stat(path).st_uid == os.geteuid():
            return key
    except OSError:
        pass
    key = secrets.token_hex(32).encode()
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    os.replace(tmp, path)
    return key


def _sign(record: dict, key: bytes) -> str:
    body = {k: v for k, v in record.items() if k != "signature"}
    text = json.dumps(body, sort_keys=True, allow_nan=False, separators=(",", ":"))
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _row_is_signed(record: dict, key: bytes) -> bool:
    """Whether a gradebook row read back from disk is one this grader wrote (else it is regraded)."""
    signature = record.get("signature")
    try:
        return isinstance(signature, str) and hmac.compare_digest(signature, _sign(record, key))
    except (TypeError, ValueError):
        return False


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def bank_adapter_files(exercises: Sequence[Any]) -> dict[str, str]:
    """The files holding an instructor's own ``run`` adapters, which the sandboxed worker must import.

    A bank's exercise may call the learner's answer through its own ``run`` (a class to build, a
    model to run). The worker imports that function by name, and the sandbox hides the bank, so
    the file it lives in is shown to the worker read-only. That file must therefore hold no
    reference: it must be a helper of the bank (``_adapters.py``, imported by the bank file), not
    a bank file that registers exercises, and no registered exercise's reference or case generator
    may live in it. The built-in adapters (``course_utils.exercises.adapters``) need nothing.

    Parameters
    ----------
    exercises : sequence of Exercise
        The exercises being graded.

    Returns
    -------
    dict
        ``module name -> path of its .py file``, for each bank adapter module used.

    Raises
    ------
    UsageError
        An adapter that is not a top-level function of a helper file, or whose file also holds a
        reference or case generator (the message names the exercise, the file and the fix).

    Examples
    --------
    >>> bank_adapter_files([])
    {}
    """
    from ..exercises.core import _call_answer
    from ..exercises.registry import all_exercises

    fix = ("move it, as a top-level function, into a helper file of the bank whose name starts with '_' "
           "(for example _adapters.py, imported by the bank file) that holds no reference or case generator: "
           "the sandboxed submissions can read that file, since their worker imports it")
    files: dict[str, str] = {}
    for ex in exercises:
        run = getattr(ex, "run", None)
        if run is None or run is _call_answer:
            continue
        module = str(getattr(run, "__module__", "") or "")
        if module == "course_utils" or module.startswith("course_utils."):
            continue
        qualname = str(getattr(run, "__qualname__", "") or "")
        where = f"exercise {ex.id!r}: its run adapter {qualname or repr(run)!r}"
        if not qualname.isidentifier():
            raise UsageError(f"{where} is not a top-level function (a lambda, method or nested function); {fix}")
        path = getattr(sys.modules.get(module), "__file__", None)
        if "." in module or not module.isidentifier() or not isinstance(path, str) or not path.endswith(".py"):
            raise UsageError(f"{where} lives in module {module!r}, which is not a file of the bank; {fix}")
        if module.startswith(("_course_bank_", "_course_extra_")):
            raise UsageError(f"{where} is defined in the bank file {path!r}, next to the references; {fix}")
        for other in all_exercises():
            for label, fn in (("reference", other.reference), ("case generator", other.make_cases)):
                if fn is not None and getattr(fn, "__module__", None) == module:
                    raise UsageError(f"{where} is in {path!r}, which also holds the {label} of exercise {other.id!r}; {fix}")
        files[module] = os.path.abspath(path)
    return files


def _worker_spec(ex: Any) -> dict:
    """What the worker needs about an exercise: never its reference or its expected values."""
    run = getattr(ex, "run", None)
    from ..exercises.core import _call_answer

    if run is None or run is _call_answer:
        name = None
    else:
        name = f"{run.__module__}:{run.__qualname__}"
    return {"id": ex.id, "name": ex.name, "kind": ex.kind, "time_limit": float(ex.time_limit), "run": name,
            "forbidden": [str(f) for f in (getattr(ex, "forbidden", ()) or ())]}


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


def cell_name(cells: Sequence[str] | None, index: int) -> str:
    """A code cell as JupyterLab shows it: ``cell [N] `first line```.

    ``N`` counts code cells from 1 (markdown cells have no number), which is the execution count
    JupyterLab shows after running the notebook top to bottom in a fresh kernel; the first
    non-blank line makes it findable whatever the counts say. Every grading message uses this.

    Examples
    --------
    >>> cell_name(["import torch", "\\nwhile True:\\n    pass"], 1)
    'cell [2] `while True:`'
    """
    label = f"cell [{index + 1}]"
    if not cells or not 0 <= index < len(cells):
        return label
    first = next((line.strip() for line in cells[index].splitlines() if line.strip()), "")
    first = first.replace("`", "'")
    if len(first) > 60:
        first = first[:59] + "…"
    return f"{label} `{first}`" if first else label


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
    if record.get("flag"):
        lines += ["", f"Flagged: {record['flag']}."]
    errors = record.get("cells", {}).get("errors", [])
    if errors:
        lines += ["", "## Cells that raised an error or were stopped", ""]
        lines += [f"- {e.get('name') or cell_name(None, e['cell'])}: `{e['error']}`" for e in errors[:20]]
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
        elif ex["status"] == "forbidden":
            first = next((c["reason"] for c in ex["cases"] if not c["passed"]), "")
            lines += ["", "This exercise asks you to write the computation yourself; cases that used a "
                      f"forbidden function earn nothing: {first}."]
        else:
            failed = [c for c in ex["cases"] if not c["passed"]]
            if not failed:
                lines += ["", "All graded cases passed."]
            else:
                lines += ["", "Failed cases (up to 5):", ""]
                lines += [f"- input {c['input']}: {c['reason']}" for c in failed[:5]]
    return "\n".join(lines) + "\n"
