"""The exercise bank: every lesson module ``lessonNN.py`` registers its exercises here."""
from __future__ import annotations

import importlib
import pkgutil

from .core import Exercise

__all__ = ["register", "get_exercise", "all_exercises", "exercises_for_lesson"]

_BANK: dict[str, Exercise] = {}
_loaded = False


def register(exercise: Exercise) -> Exercise:
    """Add an exercise to the bank; ids are unique across the course."""
    if exercise.id in _BANK and _BANK[exercise.id] is not exercise:
        raise ValueError(f"exercise id {exercise.id!r} is registered twice")
    _BANK[exercise.id] = exercise
    return exercise


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    from . import __path__ as package_path

    for info in sorted(pkgutil.iter_modules(package_path), key=lambda m: m.name):
        if info.name.startswith("lesson"):
            importlib.import_module(f"{__package__}.{info.name}")
    _loaded = True
    # Instructors' banks named in $COURSE_BANK join the built-in one (see bank.py).
    from .bank import load_env_banks

    load_env_banks()


def get_exercise(exercise_id: str) -> Exercise:
    """Look an exercise up by id; an unknown id raises ``KeyError`` listing the close ones.

    Examples
    --------
    >>> get_exercise("conv_out").name  # doctest: +SKIP
    'conv_out'
    """
    _load_all()
    if not isinstance(exercise_id, str):
        raise TypeError(f"exercise_id must be a string such as 'conv_out', got {type(exercise_id).__name__}")
    try:
        return _BANK[exercise_id]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(exercise_id, list(_BANK), n=3)
        extra = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"no exercise with id {exercise_id!r}{extra}") from None


def all_exercises() -> list[Exercise]:
    """Every exercise in the bank, ordered by lesson then registration order."""
    _load_all()
    return sorted(_BANK.values(), key=lambda e: e.lesson)


def exercises_for_lesson(lesson: str) -> list[Exercise]:
    """The exercises of one lesson (its notebook stem, e.g. ``"02_output_size"``), in order."""
    _load_all()
    return [e for e in _BANK.values() if e.lesson == lesson]
