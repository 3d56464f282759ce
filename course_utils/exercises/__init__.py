"""The exercise bank and the in-notebook checker.

Each lesson's exercises live in ``lessonNN.py`` and are registered on import; ``check`` gives a
learner practice feedback, and ``course_utils.grading`` grades submissions in a separate process.
"""
from .core import Case, Comparison, Exercise, compare, describe, to_plain
from .registry import all_exercises, exercises_for_lesson, get_exercise, register
from .check import CheckReport, check, run_checks
from .bank import load_bank
from .forbidden import ForbiddenCallError

__all__ = [
    "Case",
    "Comparison",
    "Exercise",
    "compare",
    "describe",
    "to_plain",
    "register",
    "get_exercise",
    "all_exercises",
    "exercises_for_lesson",
    "check",
    "run_checks",
    "CheckReport",
    "load_bank",
    "ForbiddenCallError",
]
