"""The learner's own workbooks: ``course workbooks``, ``course reset`` and ``course progress``.

A workbook is a lesson with its solutions replaced by stubs (made by
:func:`course_utils.grading.release.release_notebook`, the same as ``course release``). The
learner's commands differ from the instructor's ``course release`` in one promise: **they never
overwrite a file the learner may have edited.**

* ``course workbooks`` writes the workbooks that are missing (by default into ``./workbooks/``) and
  keeps every one already there, then says how to open them. Running it again is always safe.
* ``course reset LESSON`` is the one explicit way to start a lesson over: the current workbook is
  moved to ``workbooks/backups/`` (never deleted) and a fresh one is written.
* ``course progress`` reads the ``check`` results saved in the workbooks (no notebook is run) and
  lists, lesson by lesson, which exercises pass their practice checks.

Examples
--------
::

    course workbooks                 # writes workbooks/00_start_here.ipynb ... once
    jupyter lab workbooks/
    course progress                  # ✅/❌/⏳ per exercise, from the saved check outputs
    course reset 02                  # lesson 02 again from scratch; the old one goes to workbooks/backups/
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = [
    "DEFAULT_DIR",
    "BACKUP_DIR",
    "WorkbookResult",
    "ExerciseProgress",
    "LessonProgress",
    "lesson_paths",
    "make_workbooks",
    "reset_workbook",
    "read_progress",
    "format_progress",
    "add_parser",
]

DEFAULT_DIR = "workbooks"
BACKUP_DIR = "backups"
_LESSON_FILE = re.compile(r"^(\d\d)_.+\.ipynb$")
# The first character of the line that check() prints for each outcome (exercises/check.py).
_MARKS = {"✅": "passed", "❌": "failed", "⏳": "not attempted", "❓": "unknown exercise"}


class WorkbookError(ValueError):
    """A learner command cannot do what was asked (the message says what to do instead)."""


@dataclass(frozen=True)
class WorkbookResult:
    """What happened to one lesson's workbook.

    Attributes
    ----------
    lesson : str
        The lesson stem, e.g. ``"02_output_size"``.
    path : pathlib.Path
        The workbook.
    action : {"written", "kept", "reset", "failed"}
        Written fresh, kept as it was (it existed), reset (the old one moved to ``backup``), or not
        written because the lesson cannot be released (``note`` says why).
    backup : pathlib.Path or None
        Where the previous workbook was moved by a reset.
    note : str
        Anything the learner should know (e.g. the lesson changed since the workbook was made).
    """

    lesson: str
    path: Path
    action: str
    backup: Path | None = None
    note: str = ""


# --------------------------------------------------------------------------------------------
# Lessons and workbooks on disk
# --------------------------------------------------------------------------------------------


def lesson_paths(names: Sequence[str] = ()) -> list[Path]:
    """The lesson notebooks for LESSON arguments: a stem, a number (``"02"``) or a path.

    Parameters
    ----------
    names : sequence of str
        Empty for every lesson.

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    WorkbookError
        A name matches no lesson, or a number matches several.

    Examples
    --------
    >>> [p.name for p in lesson_paths(["02"])]  # doctest: +SKIP
    ['02_output_size.ipynb']
    """
    from .grading.release import UsageError, resolve_lessons

    try:
        every = resolve_lessons([])
    except UsageError as exc:
        raise WorkbookError(str(exc)) from None
    if not names:
        return every
    out = []
    for name in names:
        if not isinstance(name, str) or not name:
            raise WorkbookError(f"a lesson must be a name such as '02_output_size' or a number such as '02', got {name!r}")
        stem = Path(name).name.removesuffix(".ipynb")
        matches = [p for p in every if p.stem == stem or (stem.isdigit() and p.stem.split("_", 1)[0] == stem.zfill(2))]
        if len(matches) != 1:
            known = ", ".join(p.stem for p in every)
            raise WorkbookError(f"no lesson {name!r}; the lessons are: {known} (a number such as '02' works too)")
        out.append(matches[0])
    return out


def _released(lesson: Path):
    from .grading.release import ReleaseError, release_notebook

    import nbformat

    try:
        nb = nbformat.read(str(lesson), as_version=4)
    except Exception as exc:  # nbformat raises several kinds for unreadable files
        raise WorkbookError(f"{lesson}: not a readable notebook ({type(exc).__name__})") from None
    meta = nb.metadata.get("course") if isinstance(nb.metadata.get("course"), dict) else {}
    try:
        return release_notebook(nb, meta.get("lesson") or lesson.stem, str(lesson))
    except ReleaseError as exc:
        raise WorkbookError(str(exc)) from None


def _write_new(workbook: Any, target: Path) -> bool:
    """Write ``workbook`` at ``target`` only if nothing is there; True when written.

    The file is written to a temporary name and then hard-linked into place, which fails if the
    target appeared in the meantime: a learner's file is never replaced, even by a race.
    """
    import nbformat

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    nbformat.write(workbook, str(tmp))
    try:
        try:
            os.link(tmp, target)
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links (some network and FAT drives)
            if target.exists():
                return False
            os.replace(tmp, target)
            return True
    finally:
        if tmp.exists():
            tmp.unlink()


def _workbook_version(path: Path) -> str | None:
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception:
        return None
    meta = nb.metadata.get("course")
    return meta.get("version") if isinstance(meta, dict) else None


def make_workbooks(out_dir: str | os.PathLike = DEFAULT_DIR, lessons: Sequence[str] = ()) -> list[WorkbookResult]:
    """Write the missing workbooks into ``out_dir`` and keep every existing one untouched.

    Parameters
    ----------
    out_dir : path-like
        The learner's workbook folder (created if missing).
    lessons : sequence of str
        Lesson stems, numbers or paths; all lessons when empty.

    Returns
    -------
    list of WorkbookResult
        One per lesson, ``action`` "written", "kept", or "failed" for a lesson that cannot be
        released (the others are still written: one broken lesson does not hold up the course).

    Raises
    ------
    WorkbookError
        ``out_dir`` is a file or the lessons' own folder, or a lesson name does not exist.

    Examples
    --------
    >>> results = make_workbooks("workbooks")  # doctest: +SKIP
    >>> {r.action for r in make_workbooks("workbooks")}  # doctest: +SKIP
    {'kept'}
    """
    import course_utils

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise WorkbookError(f"{out} is a file; give a folder for the workbooks (--dir)")
    paths = lesson_paths(lessons)
    if any(p.parent.resolve() == out.resolve() for p in paths):
        raise WorkbookError(f"{out} is the folder of the solved lessons; give another folder for the workbooks (--dir)")
    _load_extra_exercises()
    pending = []
    for lesson in paths:
        target = out / lesson.name
        if target.exists():
            version = _workbook_version(target)
            note = ""
            if version is not None and version != course_utils.__version__:
                note = (f"made with course {version}, the lessons are now {course_utils.__version__}: "
                        f"`course reset {lesson.stem[:2]}` gets the new one (yours is kept in {BACKUP_DIR}/)")
            pending.append((lesson, target, None, note))
        else:
            try:
                pending.append((lesson, target, _released(lesson), ""))
            except WorkbookError as exc:
                pending.append((lesson, target, None, f"FAILED: {exc}"))
    results = []
    for lesson, target, workbook, note in pending:
        if note.startswith("FAILED: "):
            results.append(WorkbookResult(lesson.stem, target, "failed", note=note.removeprefix("FAILED: ")))
        elif workbook is not None and _write_new(workbook, target):
            results.append(WorkbookResult(lesson.stem, target, "written"))
        else:
            results.append(WorkbookResult(lesson.stem, target, "kept", note=note))
    return results


def reset_workbook(lesson: str, out_dir: str | os.PathLike = DEFAULT_DIR) -> WorkbookResult:
    """Start one lesson over: move its workbook to ``backups/`` and write a fresh one.

    Parameters
    ----------
    lesson : str
        A lesson stem (``"02_output_size"``), number (``"02"``) or path.
    out_dir : path-like
        The learner's workbook folder.

    Returns
    -------
    WorkbookResult
        ``action`` "reset" with the backup's path, or "written" when there was no workbook yet.

    Raises
    ------
    WorkbookError
        The lesson does not exist or cannot be released (the old workbook is then left in place).

    Examples
    --------
    >>> reset_workbook("02").backup  # doctest: +SKIP
    PosixPath('workbooks/backups/02_output_size.2026-11-29_201500.ipynb')
    """
    (path,) = lesson_paths([lesson])
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise WorkbookError(f"{out} is a file; give the workbook folder (--dir)")
    _load_extra_exercises()
    fresh = _released(path)  # before touching anything: a failed release keeps the old workbook
    target = out / path.name
    backup = None
    if target.exists():
        backups = out / BACKUP_DIR
        backups.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%d_%H%M%S")
        backup = backups / f"{path.stem}.{stamp}.ipynb"
        n = 1
        while backup.exists():  # two resets within a second
            n += 1
            backup = backups / f"{path.stem}.{stamp}-{n}.ipynb"
        os.replace(target, backup)
    if not _write_new(fresh, target):  # pragma: no cover - only if something wrote it meanwhile
        raise WorkbookError(f"{target} appeared while resetting; nothing was overwritten, run the reset again")
    return WorkbookResult(path.stem, target, "reset" if backup else "written", backup=backup)


def _load_extra_exercises() -> None:
    from .grading.worker import load_extra_exercises

    try:
        load_extra_exercises()
    except ImportError as exc:
        raise WorkbookError(f"COURSE_EXTRA_EXERCISES: {exc}") from None


# --------------------------------------------------------------------------------------------
# Progress from the saved check outputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExerciseProgress:
    """The saved state of one exercise in a workbook.

    Attributes
    ----------
    exercise_id : str
    status : {"passed", "failed", "not attempted", "not checked", "changed since checked", "no check cell"}
        From the line that the ``check`` cell printed when it last ran and was saved.
    detail : str
        That line (or what to do).
    """

    exercise_id: str
    status: str
    detail: str = ""


@dataclass
class LessonProgress:
    """The exercises of one workbook (``exercises`` is empty for a lesson without any)."""

    lesson: str
    path: Path
    exercises: list[ExerciseProgress] = field(default_factory=list)
    error: str = ""

    @property
    def passed(self) -> int:
        """How many exercises pass their practice checks."""
        return sum(e.status == "passed" for e in self.exercises)


def _output_text(cell: Any) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.get("output_type") == "error":
            parts.append(f"error: {out.get('ename', '')}: {out.get('evalue', '')}\n")
    return "".join(p if isinstance(p, str) else "".join(p) for p in parts)


def _defines(source: str, name: str) -> bool:
    # IPython %magic and !shell lines are not Python; blank them so the rest parses.
    plain = "\n".join("" if l.lstrip().startswith(("%", "!")) else l for l in source.split("\n"))
    try:
        tree = ast.parse(plain)
    except SyntaxError:
        return False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
    return False


def _checks_name(source: str, exercise_id: str, name: str) -> bool:
    """Whether the cell calls ``check(exercise_id, name)`` with the exercise's own name."""
    plain = "\n".join("" if l.lstrip().startswith(("%", "!")) else l for l in source.split("\n"))
    try:
        tree = ast.parse(plain)
    except SyntaxError:
        return f'check("{exercise_id}", {name})' in source
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "check"
                and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant) and node.args[0].value == exercise_id
                and isinstance(node.args[1], ast.Name) and node.args[1].id == name):
            return True
    return False


def _lesson_progress(path: Path) -> LessonProgress:
    import nbformat

    from .exercises.registry import exercises_for_lesson
    from .grading.release import check_calls

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:  # an unreadable file is reported on its line, not raised
        return LessonProgress(path.stem, path, error=f"not a readable notebook ({type(exc).__name__}); "
                                                     f"`course reset {path.stem[:2]}` starts it over (the file is kept)")
    meta = nb.metadata.get("course") if isinstance(nb.metadata.get("course"), dict) else {}
    lesson = meta.get("lesson") or path.stem
    result = LessonProgress(lesson, path)
    cells = nb.cells
    for ex in exercises_for_lesson(lesson):
        # The check of the learner's own answer counts: check("<id>", <name>). A lesson may also
        # check demo functions under the same id (lesson 00 shows a wrong and an unfinished one);
        # those count only where no cell checks the name itself.
        found = own = None
        for index, cell in enumerate(cells):
            source = cell.get("source", "")
            if cell.get("cell_type") == "code" and any(i == ex.id for _, i in check_calls(source)):
                found = index
                if _checks_name(source, ex.id, ex.name):
                    own = index
        found = own if own is not None else found
        if found is None:
            result.exercises.append(ExerciseProgress(ex.id, "no check cell", f'add a cell: check("{ex.id}", {ex.name})'))
            continue
        check_cell = cells[found]
        line = next((l.strip() for l in _output_text(check_cell).splitlines()
                     if l.strip()[:1] in _MARKS and f" {ex.id}:" in l), None)
        if line is None:
            result.exercises.append(ExerciseProgress(ex.id, "not checked", "run its check cell and save the notebook"))
            continue
        status = _MARKS[line[0]]
        # A definition run after the check (a higher execution count) means the saved verdict is old.
        checked_at = check_cell.get("execution_count")
        later = [c.get("execution_count") for c in cells[:found]
                 if c.get("cell_type") == "code" and _defines(c.get("source", ""), ex.name)]
        if checked_at is not None and any(n is not None and n > checked_at for n in later):
            status, line = "changed since checked", f"{line}  (edited after this check: run the check cell again)"
        result.exercises.append(ExerciseProgress(ex.id, status, line))
    return result


def read_progress(out_dir: str | os.PathLike = DEFAULT_DIR) -> list[LessonProgress]:
    """Progress of every workbook in ``out_dir``, read from the saved outputs of its check cells.

    Nothing is executed: each exercise's state is the report its ``check`` cell printed the last
    time it ran and the workbook was saved. Backups in ``backups/`` are not counted.

    Parameters
    ----------
    out_dir : path-like
        The learner's workbook folder.

    Returns
    -------
    list of LessonProgress
        In lesson order.

    Raises
    ------
    WorkbookError
        The folder does not exist or holds no workbook.

    Examples
    --------
    >>> sum(p.passed for p in read_progress("workbooks"))  # doctest: +SKIP
    3
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise WorkbookError(f"no workbook folder {out}; run `course workbooks` first")
    paths = sorted(p for p in out.glob("*.ipynb") if _LESSON_FILE.match(p.name))
    if not paths:
        raise WorkbookError(f"{out} holds no lesson workbook (NN_name.ipynb); run `course workbooks` first")
    _load_extra_exercises()
    return [_lesson_progress(p) for p in paths]


def format_progress(progress: Sequence[LessonProgress]) -> str:
    """The ``course progress`` report: one line per exercise and a total.

    Examples
    --------
    >>> p = LessonProgress("02_output_size", Path("w/02_output_size.ipynb"),
    ...                    [ExerciseProgress("conv_out", "passed", "✅ conv_out: all 22 checks passed.")])
    >>> print(format_progress([p]))
    02_output_size  1/1 passed
      ✅ conv_out                passed
    <BLANKLINE>
    1 of 1 exercises pass their practice checks.
    """
    icons = {"passed": "✅", "failed": "❌", "not attempted": "⏳", "not checked": "·",
             "changed since checked": "↻", "no check cell": "?", "unknown exercise": "❓"}
    lines = []
    total = passed = 0
    for lesson in progress:
        if lesson.error:
            lines.append(f"{lesson.lesson}  {lesson.error}")
            continue
        if not lesson.exercises:
            lines.append(f"{lesson.lesson}  (no exercises)")
            continue
        total += len(lesson.exercises)
        passed += lesson.passed
        lines.append(f"{lesson.lesson}  {lesson.passed}/{len(lesson.exercises)} passed")
        for ex in lesson.exercises:
            hint = "" if ex.status in ("passed", "not attempted") else f": {ex.detail}" if ex.status != "failed" else ""
            lines.append(f"  {icons.get(ex.status, '?')} {ex.exercise_id:<22} {ex.status}{hint}")
    lines.append("")
    lines.append(f"{passed} of {total} exercises pass their practice checks.")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _open_hint(out: Path) -> str:
    try:
        shown = out.resolve().relative_to(Path.cwd().resolve())
        place = f"{shown.as_posix()}/"
    except ValueError:
        place = str(out.resolve())
    return f"jupyter lab {place}"


def run_workbooks(args: argparse.Namespace) -> int:
    """``course workbooks``: write the missing workbooks, keep the rest, say how to open them."""
    try:
        results = make_workbooks(args.dir, args.lessons)
    except WorkbookError as exc:
        print(f"course workbooks: error: {exc}", file=sys.stderr)
        return 2
    for r in results:
        if r.action == "written":
            print(f"wrote   {r.path}")
        elif r.action == "failed":
            print(f"course workbooks: error: {r.note}", file=sys.stderr)
        else:
            print(f"kept    {r.path} (already there; your work is not touched)" + (f"\n        note: {r.note}" if r.note else ""))
    written = sum(r.action == "written" for r in results)
    failed = [r.lesson for r in results if r.action == "failed"]
    kept = len(results) - written - len(failed)
    print(f"\n{written} workbook(s) written, {kept} kept. Open them with:\n\n    {_open_hint(Path(args.dir))}\n")
    print("Start with 00_start_here.ipynb. The solved lessons in notebooks/ are the reference to compare with "
          "after you have tried an exercise.\n`course progress` shows which exercises pass; "
          "`course reset NN` starts lesson NN over (the old workbook is kept in "
          f"{Path(args.dir).as_posix()}/{BACKUP_DIR}/).")
    if failed:
        print(f"course workbooks: {', '.join(failed)} could not be made (see above); please report it.", file=sys.stderr)
        return 1
    return 0


def run_reset(args: argparse.Namespace) -> int:
    """``course reset LESSON``: back up the lesson's workbook and write a fresh one."""
    try:
        r = reset_workbook(args.lesson, args.dir)
    except WorkbookError as exc:
        print(f"course reset: error: {exc}", file=sys.stderr)
        return 2
    if r.backup is not None:
        print(f"moved   {r.path} -> {r.backup}")
    print(f"wrote   {r.path} (a fresh workbook of {r.lesson})")
    print("If it is open in JupyterLab, close its tab without saving and open it again.")
    return 0


def run_progress(args: argparse.Namespace) -> int:
    """``course progress``: which exercises pass, read from the saved workbooks."""
    try:
        progress = read_progress(args.dir)
    except WorkbookError as exc:
        print(f"course progress: error: {exc}", file=sys.stderr)
        return 2
    print(format_progress(progress))
    print("(Read from the check outputs saved in the workbooks: save the notebook after running a check.)")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``course workbooks``, ``course reset`` and ``course progress``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers()`` returned.

    Examples
    --------
    >>> p = argparse.ArgumentParser(); sub = p.add_subparsers()
    >>> add_parser(sub)
    >>> p.parse_args(["reset", "02"]).lesson
    '02'
    """
    dir_help = f"the workbook folder (default: ./{DEFAULT_DIR}/)"
    p = subparsers.add_parser(
        "workbooks", help="get your own workbooks (exercises blank); never overwrites your work",
        description="Write a workbook for each lesson that has none yet in the workbook folder, keep every "
                    "workbook already there, and say how to open them. Safe to run again.")
    p.add_argument("lessons", nargs="*", metavar="LESSON", help="lesson stems or numbers (default: every lesson)")
    p.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR", help=dir_help)
    p.set_defaults(func=run_workbooks)

    p = subparsers.add_parser(
        "reset", help="start one lesson's workbook over (the old one is kept in backups/)",
        description=f"Move the lesson's workbook to DIR/{BACKUP_DIR}/ with a time stamp and write a fresh one.")
    p.add_argument("lesson", metavar="LESSON", help="the lesson, e.g. 02 or 02_output_size")
    p.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR", help=dir_help)
    p.set_defaults(func=run_reset)

    p = subparsers.add_parser(
        "progress", help="which exercises in your workbooks pass their practice checks",
        description="Read the check results saved in the workbooks (nothing is run) and list each exercise.")
    p.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR", help=dir_help)
    p.set_defaults(func=run_progress)
