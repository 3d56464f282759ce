"""``course release``: student workbooks from the lesson notebooks.

Usage::

    course release [LESSON ...] --out DIR

LESSON is a notebook path (``notebooks/02_output_size.ipynb``) or a lesson stem
(``02_output_size``, looked up in ``./notebooks/`` and then in the repository's ``notebooks/``).
Without LESSON, every ``notebooks/NN_*.ipynb`` is released, exercises or not, so a workshop can
hand out the whole course as one folder. Each workbook is written to ``DIR/<stem>.ipynb``.

What a workbook is
------------------
The lesson, with every solution between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` replaced:

* inside a function (or method) body: ``raise NotImplementedError("Replace this line with your
  solution")`` at the block's indentation, so ``check`` reports "not attempted yet";
* elsewhere (a value exercise): ``NAME = None  # YOUR ANSWER HERE`` for each name the block
  assigns, and for a function defined inside the block, the same signature with a body that raises
  ``NotImplementedError``.

Outputs and execution counts of exercise cells (tagged ``exercise``) and of cells that held a
solution are cleared; other outputs are kept. The notebook metadata gets
``course: {lesson, version, released: true}``.

Errors of the release
---------------------
A lesson that cannot make a sound workbook is not written, and the command exits with status 1
after naming the notebook and the cell (1-based, counting every cell):
unbalanced or nested markers; a solution block with no ``check("<id>", ...)`` after it for the
exercise it defines; an exercise of the lesson (in the bank) whose name no solution block defines;
an exercise with no ``check`` call; a ``check`` of an exercise id that does not exist; a cell that
is not valid Python after the solutions are replaced. Usage errors (a lesson that does not exist,
``--out`` pointing at the lessons themselves) exit with status 2.

An instructor's own exercises come from ``--bank PATH`` (repeatable) or ``$COURSE_BANK`` (see
:mod:`course_utils.exercises.bank`); the bank's references and graded cases stay in the bank and are
never written into a workbook. ``COURSE_EXTRA_EXERCISES`` (module names or ``.py`` paths, as for
``course grade``) still works and is deprecated in favour of ``COURSE_BANK``.
"""
from __future__ import annotations

import argparse
import ast
import copy
import os
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import nbformat

__all__ = [
    "add_parser",
    "run",
    "main",
    "release_notebook",
    "release_lesson",
    "find_solution_blocks",
    "check_calls",
    "ReleaseError",
    "SolutionBlock",
    "BEGIN",
    "END",
    "STUB_LINE",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB_LINE = 'raise NotImplementedError("Replace this line with your solution")'
VALUE_STUB = "None  # YOUR ANSWER HERE"
_LESSON_NAME = re.compile(r"^\d\d_.+\.ipynb$")


class ReleaseError(ValueError):
    """A lesson that cannot be released: the message names the notebook and the cell."""


class UsageError(ValueError):
    """A problem with the command line (exit status 2)."""


@dataclass
class SolutionBlock:
    """One ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block in a code cell.

    ``begin`` and ``end`` are 0-based line numbers of the two markers in the cell's source;
    ``indent`` is the BEGIN marker's leading whitespace; ``in_function`` says whether the block
    lies in a function body; ``defines`` are the names the block gives the learner to write (the
    enclosing functions and classes, or the names it assigns at top level).
    """

    cell: int
    begin: int
    end: int
    indent: str
    in_function: bool = False
    defines: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Reading cells
# --------------------------------------------------------------------------------------------


def _python_lines(source: str) -> str:
    """The cell as plain Python with the same line numbers: IPython ``%magic``/``!shell`` lines become ``pass``."""
    out = []
    for line in source.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            out.append(line[: len(line) - len(stripped)] + "pass")
        else:
            out.append(line)
    return "\n".join(out)


def _parse(source: str) -> ast.Module | None:
    if source.lstrip().startswith("%%"):
        return None  # a cell magic: not Python
    try:
        return ast.parse(_python_lines(source))
    except SyntaxError:
        return None


def _where(notebook: str, cell: int) -> str:
    return f"{notebook}, cell {cell + 1}"


def find_solution_blocks(source: str, cell: int = 0, notebook: str = "<notebook>") -> list[SolutionBlock]:
    """The solution blocks in one code cell's source, with what each defines.

    Parameters
    ----------
    source : str
        The cell's source.
    cell : int
        0-based position of the cell, for messages.
    notebook : str
        The notebook's name, for messages.

    Returns
    -------
    list of SolutionBlock

    Raises
    ------
    ReleaseError
        Unbalanced or nested markers, a solution in a cell that is not valid Python.

    Examples
    --------
    >>> [b.defines for b in find_solution_blocks("def f(x):\\n    ### BEGIN SOLUTION\\n    return x\\n    ### END SOLUTION")]
    [['f']]
    """
    lines = source.split("\n")
    blocks: list[SolutionBlock] = []
    open_at: int | None = None
    for i, line in enumerate(lines):
        text = line.strip()
        if text.startswith(BEGIN):
            if open_at is not None:
                raise ReleaseError(
                    f"{_where(notebook, cell)}: '{BEGIN}' on line {i + 1} is nested inside the block opened on "
                    f"line {open_at + 1}; close each block with '{END}' before opening another"
                )
            open_at = i
        elif text.startswith(END):
            if open_at is None:
                raise ReleaseError(f"{_where(notebook, cell)}: '{END}' on line {i + 1} has no '{BEGIN}' before it")
            indent = lines[open_at][: len(lines[open_at]) - len(lines[open_at].lstrip())]
            blocks.append(SolutionBlock(cell, open_at, i, indent))
            open_at = None
        elif "BEGIN SOLUTION" in text or "END SOLUTION" in text:
            raise ReleaseError(
                f"{_where(notebook, cell)}: line {i + 1} looks like a solution marker but is not exactly "
                f"'{BEGIN}' or '{END}': {text[:60]!r}"
            )
    if open_at is not None:
        raise ReleaseError(f"{_where(notebook, cell)}: '{BEGIN}' on line {open_at + 1} is never closed with '{END}'")
    if not blocks:
        return blocks
    tree = _parse(source)
    if tree is None:
        raise ReleaseError(f"{_where(notebook, cell)}: the cell holds a solution but is not valid Python")
    for block in blocks:
        _describe_block(block, tree, lines, notebook)
    return blocks


def _enclosing(tree: ast.Module, line: int) -> list[ast.AST]:
    """Function and class definitions whose body contains 1-based ``line``, outermost first."""
    found: list[ast.AST] = []
    nodes: list[ast.AST] = list(tree.body)
    while nodes:
        node = nodes.pop(0)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.lineno < line <= (node.end_lineno or node.lineno):
                found.append(node)
                nodes = list(node.body)
                continue
        elif hasattr(node, "body") and node.lineno <= line <= (getattr(node, "end_lineno", None) or node.lineno):
            # if / for / with / try at some level: look inside for a definition
            children = []
            for name in ("body", "orelse", "finalbody", "handlers"):
                children.extend(getattr(node, name, []) or [])
            nodes = children + nodes
    return found


def _block_code(lines: list[str], block: SolutionBlock) -> str:
    return textwrap.dedent("\n".join(lines[block.begin + 1 : block.end]))


def _describe_block(block: SolutionBlock, tree: ast.Module, lines: list[str], notebook: str) -> None:
    # The code after BEGIN is what makes the enclosing body non-empty; look up the line just below it.
    enclosing = _enclosing(tree, block.begin + 2)
    functions = [n for n in enclosing if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if functions and block.indent:
        block.in_function = True
        block.defines = [n.name for n in enclosing]
        return
    try:
        body = ast.parse(_python_lines(_block_code(lines, block)))
    except SyntaxError as exc:
        raise ReleaseError(
            f"{_where(notebook, block.cell)}: the solution block on lines {block.begin + 1}-{block.end + 1} "
            f"is not valid Python on its own ({exc.msg})"
        ) from None
    names: list[str] = []
    for stmt in body.body:
        for name in _bound_names(stmt):
            if name not in names:
                names.append(name)
        if isinstance(stmt, ast.ClassDef):
            raise ReleaseError(
                f"{_where(notebook, block.cell)}: the solution block on line {block.begin + 1} defines class "
                f"{stmt.name!r}; put the markers inside its methods instead"
            )
    if not names:
        raise ReleaseError(
            f"{_where(notebook, block.cell)}: the solution block on line {block.begin + 1} is outside a function "
            "and assigns no name, so there is nothing to leave for the learner"
        )
    block.defines = [n.name for n in enclosing] + names


def _bound_names(stmt: ast.stmt) -> list[str]:
    def targets(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Name):
            return [node.id]
        if isinstance(node, (ast.Tuple, ast.List)):
            return [n for elt in node.elts for n in targets(elt)]
        if isinstance(node, ast.Starred):
            return targets(node.value)
        return []  # attribute or subscript: binds no new name

    if isinstance(stmt, ast.Assign):
        return [n for t in stmt.targets for n in targets(t)]
    if isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        return targets(stmt.target)
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [stmt.name]
    return []


def _stub(lines: list[str], block: SolutionBlock) -> list[str]:
    indent = block.indent
    if block.in_function:
        return [indent + STUB_LINE]
    body = ast.parse(_python_lines(_block_code(lines, block)))
    out: list[str] = []
    done: set[str] = set()
    for stmt in body.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name not in done:
            prefix = "async def" if isinstance(stmt, ast.AsyncFunctionDef) else "def"
            out += [f"{indent}{prefix} {stmt.name}({ast.unparse(stmt.args)}):", f"{indent}    {STUB_LINE}"]
            done.add(stmt.name)
            continue
        for name in _bound_names(stmt):
            if name not in done:
                out.append(f"{indent}{name} = {VALUE_STUB}")
                done.add(name)
    return out


def _replace_blocks(source: str, blocks: Sequence[SolutionBlock]) -> str:
    lines = source.split("\n")
    out: list[str] = []
    start = 0
    for block in blocks:
        out.extend(lines[start : block.begin])
        out.extend(_stub(lines, block))
        start = block.end + 1
    out.extend(lines[start:])
    return "\n".join(out)


def check_calls(source: str) -> list[tuple[int, str]]:
    """``(line, exercise_id)`` for every ``check("<id>", ...)`` call in a cell (1-based lines).

    Examples
    --------
    >>> check_calls('x = 1\\ncheck("conv_out", conv_out)')
    [(2, 'conv_out')]
    """
    tree = _parse(source)
    if tree is None:
        # Not Python: fall back to the text, so a lesson's check is still seen.
        pattern = re.compile(r"""\bcheck\(\s*["']([^"']+)["']""")
        return [(i + 1, m.group(1)) for i, line in enumerate(source.split("\n")) for m in pattern.finditer(line)]
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        first = node.args[0]
        if name == "check" and isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.append((node.lineno, first.value))
    return sorted(found)


# --------------------------------------------------------------------------------------------
# Releasing a notebook
# --------------------------------------------------------------------------------------------


def _tags(cell: Any) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", [])
    return list(tags) if isinstance(tags, list) else []


def release_notebook(nb: nbformat.NotebookNode, lesson: str, name: str = "<notebook>") -> nbformat.NotebookNode:
    """The student workbook for a lesson notebook (a new notebook; ``nb`` is not changed).

    Parameters
    ----------
    nb : nbformat.NotebookNode
        The lesson, with solutions between markers.
    lesson : str
        The lesson id (the notebook stem) whose exercises in the bank must all be checked.
    name : str
        How to name the notebook in error messages (its path).

    Returns
    -------
    nbformat.NotebookNode

    Raises
    ------
    ReleaseError
        When the lesson cannot give a sound workbook (see the module docstring).

    Examples
    --------
    >>> workbook = release_notebook(nbformat.read("notebooks/00_start_here.ipynb", 4), "00_start_here")  # doctest: +SKIP
    """
    from ..exercises.registry import all_exercises, exercises_for_lesson

    import course_utils

    # Imported here, not at the top: nbformat takes about 2 s to import (jsonschema builds a grammar),
    # which every `course` command would pay, `course grade` included, though only a release needs it.
    import nbformat

    if not isinstance(nb, nbformat.NotebookNode) or not isinstance(nb.get("cells"), list):
        raise TypeError(f"nb must be a notebook read with nbformat, got {type(nb).__name__}")
    if not isinstance(lesson, str) or not lesson:
        raise ValueError(f"lesson must be a lesson stem such as '00_start_here', got {lesson!r}")
    known_ids = {e.id for e in all_exercises()}
    exercises = exercises_for_lesson(lesson)
    by_name: dict[str, list[Any]] = {}
    for ex in exercises:
        by_name.setdefault(ex.name, []).append(ex)

    blocks: dict[int, list[SolutionBlock]] = {}
    checks: list[tuple[int, int, str]] = []  # (cell, line, id)
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        found = find_solution_blocks(source, index, name)
        if found:
            blocks[index] = found
        for line, ex_id in check_calls(source):
            if ex_id not in known_ids:
                raise ReleaseError(f"{_where(name, index)}: check({ex_id!r}, ...) names no exercise in the bank")
            checks.append((index, line, ex_id))

    def checked_after(cell: int, line: int, ex_id: str | None) -> bool:
        return any((c, l) > (cell, line) and (ex_id is None or i == ex_id) for c, l, i in checks)

    defined_in: dict[str, int] = {}
    for index, cell_blocks in blocks.items():
        for block in cell_blocks:
            for defined in block.defines:
                defined_in.setdefault(defined, index)
    for ex in exercises:
        checked_in = [c for c, _, i in checks if i == ex.id]
        if ex.name not in defined_in:
            where = _where(name, checked_in[0]) if checked_in else name
            raise ReleaseError(
                f"{where}: exercise {ex.id!r} of lesson {lesson!r} asks for {ex.name!r}, but no solution "
                f"block defines it; put its solution between '{BEGIN}' and '{END}'"
            )
        if not checked_in:
            raise ReleaseError(
                f"{_where(name, defined_in[ex.name])}: exercise {ex.id!r} of lesson {lesson!r} has no "
                f"check({ex.id!r}, ...) cell"
            )
    for index, cell_blocks in blocks.items():
        for block in cell_blocks:
            mine = [ex for n in block.defines for ex in by_name.get(n, [])]
            if not mine:
                if not checked_after(index, block.end + 1, None):
                    raise ReleaseError(
                        f"{_where(name, index)}: the solution block on line {block.begin + 1} (defining "
                        f"{', '.join(block.defines)}) has no check(\"<id>\", ...) after it"
                    )
                continue
            for ex in mine:
                if not checked_after(index, block.end + 1, ex.id):
                    raise ReleaseError(
                        f"{_where(name, index)}: the solution block on line {block.begin + 1} defines "
                        f"{ex.name!r} but no check({ex.id!r}, ...) follows it"
                    )

    out = copy.deepcopy(nb)
    for index, cell in enumerate(out.cells):
        if cell.get("cell_type") != "code":
            continue
        solution = index in blocks
        if solution:
            cell.source = _replace_blocks(cell.source, blocks[index])
            if _parse(cell.source) is None:  # pragma: no cover - a stub always parses where the block did
                raise ReleaseError(f"{_where(name, index)}: the cell is not valid Python once its solution is replaced")
        if solution or "exercise" in _tags(cell):
            cell.outputs = []
            cell.execution_count = None
            cell.get("metadata", {}).pop("execution", None)
    course = dict(out.metadata.get("course", {}) or {})
    course.update({"lesson": lesson, "version": course_utils.__version__, "released": True})
    out.metadata["course"] = course
    leftover = [i for i, c in enumerate(out.cells) if c.get("cell_type") == "code" and ("BEGIN SOLUTION" in c.source or "END SOLUTION" in c.source)]
    if leftover:  # pragma: no cover - every marker was replaced above
        raise ReleaseError(f"{_where(name, leftover[0])}: a solution marker survived the release")
    nbformat.validate(out)
    return out


def _lesson_of(nb: nbformat.NotebookNode, path: Path) -> str:
    meta = nb.metadata.get("course")
    if isinstance(meta, dict) and isinstance(meta.get("lesson"), str) and meta["lesson"]:
        return meta["lesson"]
    return path.stem


def release_lesson(path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Release one lesson notebook into ``out_dir/<stem>.ipynb`` and return that path.

    Parameters
    ----------
    path : path-like
        The lesson notebook.
    out_dir : path-like
        Folder for the workbook (created if missing).

    Returns
    -------
    pathlib.Path
        The workbook written.

    Raises
    ------
    ReleaseError
        The lesson cannot be released; nothing is written.
    """
    import nbformat

    src = Path(path)
    try:
        nb = nbformat.read(str(src), as_version=4)
    except Exception as exc:  # nbformat raises several kinds for unreadable files
        raise ReleaseError(f"{src}: not a readable notebook ({type(exc).__name__}: {str(exc)[:120]})") from None
    workbook = release_notebook(nb, _lesson_of(nb, src), str(src))
    target_dir = Path(out_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / src.name
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    nbformat.write(workbook, str(tmp))
    os.replace(tmp, target)
    return target


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``release`` subcommand to the ``course`` command's subparsers."""
    p = subparsers.add_parser(
        "release",
        help="write student workbooks (solutions replaced by stubs) from the lessons",
        description=(
            "Write a student workbook for each lesson: solutions between the markers become stubs that "
            "raise NotImplementedError (or NAME = None), exercise outputs are cleared. Without LESSON, "
            "every notebooks/NN_*.ipynb is released."
        ),
    )
    _arguments(p)
    p.set_defaults(func=run)
    return p


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("lessons", nargs="*", metavar="LESSON",
                   help="a lesson notebook, stem or number such as 02 (default: every notebooks/NN_*.ipynb)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the workbooks")
    p.add_argument(
        "--bank", action="append", default=[], metavar="PATH",
        help="an instructor's exercise bank (a folder of .py files that register exercises); repeatable; "
             "$COURSE_BANK is read too",
    )


def _notebook_dirs() -> list[Path]:
    here = Path.cwd() / "notebooks"
    repo = Path(__file__).resolve().parents[2] / "notebooks"
    return [here] + ([repo] if repo.resolve() != here.resolve() else [])


def resolve_lessons(names: Sequence[str]) -> list[Path]:
    """The notebook paths for LESSON arguments (paths, stems or numbers such as ``"02"``); every lesson when empty."""
    if not names:
        for folder in _notebook_dirs():
            found = sorted(p for p in folder.glob("*.ipynb") if _LESSON_NAME.match(p.name))
            if found:
                return found
        raise UsageError("no lessons given and no notebooks/NN_*.ipynb found; run from the course folder or name the lessons")
    paths = []
    for name in names:
        candidate = Path(name)
        if candidate.suffix == ".ipynb" or os.sep in name:
            if not candidate.is_file():
                raise UsageError(f"lesson notebook {name!r} does not exist")
            paths.append(candidate)
            continue
        for folder in _notebook_dirs():
            if (folder / f"{name}.ipynb").is_file():
                paths.append(folder / f"{name}.ipynb")
                break
            # A number such as "02" (or "2") names the lesson whose stem starts with it.
            numbered = sorted(p for p in folder.glob(f"{name.zfill(2)}_*.ipynb") if _LESSON_NAME.match(p.name)) if name.isdigit() else []
            if len(numbered) == 1:
                paths.append(numbered[0])
                break
        else:
            raise UsageError(f"no lesson {name!r}: expected notebooks/{name}.ipynb, a lesson number such as '02', "
                             "or a path to a .ipynb file")
    return paths


def run(args: argparse.Namespace) -> int:
    """Release the lessons named in ``args``; returns the exit status (0, 1 for a release error, 2 for usage)."""
    from .worker import load_extra_exercises

    from ..exercises.bank import BankError, load_bank

    try:
        load_extra_exercises()
        for bank in getattr(args, "bank", None) or []:
            load_bank(bank)
        lessons = resolve_lessons(args.lessons)
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {args.out!r} is a file; give a folder")
        for path in lessons:
            if (out / path.name).resolve() == path.resolve():
                raise UsageError(f"--out {args.out!r} holds the lesson {path.name} itself; releasing there would erase its solutions")
    except (UsageError, ImportError, BankError) as exc:
        print(f"course release: error: {exc}", file=sys.stderr)
        return 2
    try:
        from ..exercises.registry import all_exercises

        all_exercises()
    except Exception as exc:  # a broken lesson module is a bug in the bank, reported in one line
        print(f"course release: exercise bank error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    failed = 0
    for path in lessons:
        try:
            target = release_lesson(path, out)
        except ReleaseError as exc:
            failed += 1
            print(f"course release: error: {exc}", file=sys.stderr)
            continue
        print(f"released {path} -> {target}")
    if failed:
        print(f"course release: {failed} of {len(lessons)} lessons were not released", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``course release`` with ``argv`` (without the leading ``release``); returns the exit status.

    Examples
    --------
    >>> main(["00_start_here", "--out", "workbooks/"])  # doctest: +SKIP
    0
    """
    parser = argparse.ArgumentParser(prog="course release")
    _arguments(parser)
    return run(parser.parse_args(list(argv) if argv is not None else None))
