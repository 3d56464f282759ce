"""The learner's path through the ``course`` command: workbooks, an attempt, progress, a reset.

The CLI is driven as a learner would (``course workbooks``, ``course progress``, ``course reset``),
in a temporary folder. An "attempt" edits the workbook file the way JupyterLab saves it: the
learner's code in the exercise cell, and in the check cell the report that ``check`` really
printed for that code (computed here with the same ``run_checks``), so no kernel is started.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils import cli
from course_utils.exercises.check import run_checks
from course_utils.workbooks import (
    BACKUP_DIR,
    WorkbookError,
    lesson_paths,
    make_workbooks,
    read_progress,
)

REPO = Path(__file__).resolve().parents[1]
RIGHT = "def conv_out(in_size, kernel_size, stride=1, padding=0, dilation=1):\n    return (in_size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1\n"
WRONG = "def same_padding(kernel_size, dilation=1):\n    return kernel_size // 2\n"


@pytest.fixture
def learner(tmp_path, monkeypatch):
    """A learner's shell in a folder of their own: the lessons are found in the repository."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COURSE_EXTRA_EXERCISES", raising=False)
    return tmp_path


def course(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def attempt(path: Path, exercise_id: str, source: str, name: str, exec_base: int = 1) -> str:
    """Put ``source`` in the exercise's cell and the real check report in its check cell; save."""
    nb = nbformat.read(str(path), as_version=4)
    namespace: dict = {}
    exec(source, namespace)
    report = run_checks(exercise_id, namespace[name]).text()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.source.startswith(f"def {name}("):
            cell.source = source
            cell.execution_count = exec_base
            check_cell = nb.cells[i + 1]
            assert f'check("{exercise_id}"' in check_cell.source
            check_cell.execution_count = exec_base + 1
            check_cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=report + "\n")]
            break
    else:  # pragma: no cover - the lesson changed its exercise cell
        raise AssertionError(f"no cell defining {name} in {path}")
    nbformat.write(nb, str(path))
    return report


def test_the_learners_path_through_the_cli(learner, capsys):
    # 1. Get the workbooks, and be told how to open them.
    status, out, _ = course(capsys, "workbooks", "00", "02_output_size")
    assert status == 0
    wb = learner / "workbooks"
    assert sorted(p.name for p in wb.glob("*.ipynb")) == ["00_start_here.ipynb", "02_output_size.ipynb"]
    assert "wrote   workbooks/02_output_size.ipynb" in out
    assert "jupyter lab workbooks/" in out
    assert "notebooks/" in out and "reference" in out
    fresh = nbformat.read(str(wb / "02_output_size.ipynb"), as_version=4)
    stubs = [c.source for c in fresh.cells if "NotImplementedError" in c.source]
    assert any(s.startswith("def conv_out(") for s in stubs), "the exercise must be blank in the workbook"
    assert not any("BEGIN SOLUTION" in c.source for c in fresh.cells)

    # 2. Attempt two exercises: one right, one wrong; the saved reports say so.
    target = wb / "02_output_size.ipynb"
    assert attempt(target, "conv_out", RIGHT, "conv_out").startswith("✅ conv_out")
    assert attempt(target, "same_padding", WRONG, "same_padding", exec_base=3).startswith("❌ same_padding")
    edited = target.read_bytes()

    # 3. A second run keeps the edited work, byte for byte, and writes what is missing.
    (wb / "00_start_here.ipynb").unlink()
    status, out, _ = course(capsys, "workbooks", "00", "02")
    assert status == 0
    assert target.read_bytes() == edited
    assert "kept    workbooks/02_output_size.ipynb" in out
    assert "wrote   workbooks/00_start_here.ipynb" in out

    # 4. Progress, read from the saved workbooks.
    status, out, _ = course(capsys, "progress")
    assert status == 0
    assert "02_output_size  1/4 passed" in out
    assert "✅ conv_out" in out and "passed" in out
    assert "❌ same_padding" in out
    assert "· stack_sizes" in out and "not checked" in out
    assert "1 of 5 exercises pass their practice checks." in out

    # 5. Reset one lesson: a fresh workbook, the edited one kept as a backup.
    status, out, _ = course(capsys, "reset", "02")
    assert status == 0
    backups = list((wb / BACKUP_DIR).glob("02_output_size.*.ipynb"))
    assert len(backups) == 1 and backups[0].read_bytes() == edited
    assert f"-> workbooks/{BACKUP_DIR}/{backups[0].name}" in out
    again = nbformat.read(str(target), as_version=4)
    assert any(c.source.startswith("def conv_out(") and "NotImplementedError" in c.source for c in again.cells)
    status, out, _ = course(capsys, "progress")
    assert "02_output_size  0/4 passed" in out
    assert "0 of 5 exercises" in out, "backups must not be counted"


def test_the_course_command_itself_runs_workbooks(learner):
    """The installed entry point, as a learner types it."""
    done = subprocess.run([sys.executable, "-m", "course_utils", "workbooks", "00", "--dir", "mine"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (learner / "mine" / "00_start_here.ipynb").is_file()
    assert "jupyter lab mine/" in done.stdout


def test_progress_sees_an_answer_edited_after_its_check(learner, capsys):
    make_workbooks("wb", ["02"])
    target = learner / "wb" / "02_output_size.ipynb"
    attempt(target, "conv_out", RIGHT, "conv_out", exec_base=1)
    nb = nbformat.read(str(target), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("def conv_out("):
            cell.execution_count = 9  # re-run after the check ran (count 2)
    nbformat.write(nb, str(target))
    (lesson,) = read_progress("wb")
    states = {e.exercise_id: e.status for e in lesson.exercises}
    assert states["conv_out"] == "changed since checked"
    assert states["same_padding"] == "not checked"


def test_errors_name_the_lesson_and_the_folder(learner, capsys):
    status, _, err = course(capsys, "workbooks", "99")
    assert status == 2 and "no lesson '99'" in err and "02_output_size" in err
    status, _, err = course(capsys, "reset", "nope")
    assert status == 2 and "no lesson 'nope'" in err
    status, _, err = course(capsys, "progress", "--dir", "missing")
    assert status == 2 and "course workbooks" in err
    status, _, err = course(capsys, "workbooks", "00", "--dir", str(REPO / "notebooks"))
    assert status == 2 and "solved lessons" in err
    (learner / "afile").write_text("x")
    with pytest.raises(WorkbookError, match="is a file"):
        make_workbooks("afile", ["00"])


def test_reset_of_a_lesson_without_a_workbook_just_writes_it(learner, capsys):
    status, out, _ = course(capsys, "reset", "00_start_here", "--dir", "wb")
    assert status == 0
    assert (learner / "wb" / "00_start_here.ipynb").is_file()
    assert not (learner / "wb" / BACKUP_DIR).exists()


def test_lesson_numbers_and_stems_name_the_same_lesson(learner):
    assert lesson_paths(["2"]) == lesson_paths(["02"]) == lesson_paths(["02_output_size"])
    assert len(lesson_paths([])) >= 8


def test_progress_counts_the_check_of_the_learners_own_answer_not_a_demo(learner):
    """Lesson 00 also checks a wrong and an unfinished demo function under the same exercise id."""
    make_workbooks("wb", ["00"])
    target = learner / "wb" / "00_start_here.ipynb"
    nb = nbformat.read(str(target), as_version=4)
    demos = [c for c in nb.cells if c.cell_type == "code" and 'check("count_values"' in c.source]
    assert len(demos) >= 2, "lesson 00 no longer has demo checks; this test needs another lesson"
    attempt(target, "count_values", "def count_values(n, c, h, w):\n    return n * c * h * w\n", "count_values")
    (lesson,) = read_progress("wb")
    assert [(e.exercise_id, e.status) for e in lesson.exercises] == [("count_values", "passed")]


def test_a_lesson_that_cannot_be_released_does_not_hold_up_the_others(learner, capsys, monkeypatch):
    from course_utils import workbooks

    real = workbooks._released

    def broken_02(lesson):
        if lesson.stem == "02_output_size":
            raise WorkbookError(f"{lesson}, cell 33: check('conv_out', ...) names no exercise in the bank")
        return real(lesson)

    monkeypatch.setattr(workbooks, "_released", broken_02)
    status, out, err = course(capsys, "workbooks", "00", "02")
    assert status == 1
    assert (learner / "workbooks" / "00_start_here.ipynb").is_file()
    assert not (learner / "workbooks" / "02_output_size.ipynb").exists()
    assert "cell 33" in err and "02_output_size could not be made" in err
