"""One ``course grade`` batch for one lesson, as the exercise tests of every lesson build it.

The batch holds the lesson itself (``solved``), its untouched released workbook (``untouched``) and one
notebook per attempt: the released workbook with some solution cells replaced. The lesson's tests then
assert what each attempt earned; :func:`assert_solved_and_untouched` asserts what every lesson's batch
must show for the first two.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_utils.exercises.registry import exercises_for_lesson
from course_utils.grading.release import release_lesson

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def solution_cell(nb, exercise_id):
    """The one code cell of ``nb`` that holds ``exercise_id``'s solution (not its check)."""
    cells = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("course", {}).get("exercise") == exercise_id
             and "check(" not in c.source]
    assert len(cells) == 1, f"expected one solution cell for {exercise_id}, found {len(cells)}"
    return cells[0]


@dataclass
class GradedBatch:
    """What ``course grade`` wrote for one lesson's batch."""

    data: dict
    out: Path
    exercises: list

    @property
    def students(self) -> dict:
        return self.data["students"]

    @property
    def points(self) -> dict[str, float]:
        return {ex.id: ex.points for ex in self.exercises}


def grade_lesson_batch(tmp_path: Path, stem: str, attempts: dict[str, dict[str, str | None]], seed: int) -> GradedBatch:
    """Release lesson ``stem``, build its submissions and grade them in one batch.

    ``attempts`` maps a submission name to {exercise id: source of its solution cell}; ``None`` puts
    the lesson's own solution there. Every exercise cell of the released workbook must be a stub.
    """
    released, subs = tmp_path / "released", tmp_path / "subs"
    subs.mkdir()
    lesson = NOTEBOOKS / f"{stem}.ipynb"
    # In this process: `course release` as a command is tested in test_release.py, and a
    # subprocess would spend 5 s importing what this one already has.
    assert release_lesson(lesson, released) == released / lesson.name
    assert sorted(released.rglob("*.ipynb")) == [released / lesson.name]
    solution = nbformat.read(str(lesson), as_version=4)
    exercises = exercises_for_lesson(stem)
    workbook = nbformat.read(str(released / lesson.name), as_version=4)
    for ex in exercises:
        stub = solution_cell(workbook, ex.id).source
        assert "BEGIN SOLUTION" not in stub and "NotImplementedError" in stub, ex.id
    nbformat.write(workbook, str(subs / "untouched.ipynb"))
    nbformat.write(solution, str(subs / "solved.ipynb"))
    for name, answers in attempts.items():
        nb = nbformat.read(str(released / lesson.name), as_version=4)
        for ex_id, code in answers.items():
            solution_cell(nb, ex_id).source = solution_cell(solution, ex_id).source if code is None else code
        nbformat.write(nb, str(subs / f"{name}.ipynb"))

    out = tmp_path / "out"
    graded = subprocess.run(
        [sys.executable, "-m", "course_utils", "grade", str(subs), "--out", str(out), "--jobs", "2",
         "--timeout", "300", "--seed", str(seed), "--quiet", "--lesson", stem],
        capture_output=True, text=True, timeout=1200,
    )
    assert graded.returncode == 0, graded.stdout + graded.stderr
    data = json.loads((out / "grades.json").read_text())
    assert data["exercise_ids"] == [ex.id for ex in exercises]
    return GradedBatch(data, out, exercises)


def assert_solved_and_untouched(batch: GradedBatch) -> None:
    """The lesson earns full marks with no cell error; its untouched workbook earns 0, not attempted."""
    solved = batch.students["solved"]
    assert solved["status"] == "ok" and solved["total"] == solved["max"] == sum(batch.points.values()), solved
    # Every cell of the lesson runs in the grading process too (a setup cell's `%matplotlib inline` once failed there).
    assert solved["cells"]["errors"] == [], solved["cells"]
    untouched = batch.students["untouched"]
    assert untouched["status"] == "ok" and untouched["total"] == 0, untouched
    assert all(rec["status"] == "not-attempted" for rec in untouched["exercises"].values()), untouched["exercises"]
