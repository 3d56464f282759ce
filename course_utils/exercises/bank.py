"""Instructors' own exercise banks: a folder of Python files, outside the package.

A bank file uses the same model as the built-in bank (``lessonNN.py``)::

    # my_bank/relu_count.py
    from course_utils.exercises import Case, Exercise, register

    def count_positive(x):              # the reference: stays in the bank, never in a workbook
        return int((x > 0).sum())

    register(Exercise(
        id="count_positive", lesson="hw1_relu", name="count_positive", points=2,
        reference=count_positive, public_cases=(Case(([1, -2, 3],)),),
        make_cases=lambda rng, n: [Case((rng.integers(-5, 5, 6).tolist(),)) for _ in range(n)],
        hints=("Which values does ReLU keep?", "Count them; return an int."),
        forbidden=("torch.relu",),
    ))

``course release --bank my_bank/`` and ``course grade --bank my_bank/`` load it, and so does
``check`` in a kernel where the environment variable ``COURSE_BANK`` names it (several paths are
separated by ``os.pathsep``). The lesson id is the stem of the instructor's notebook
(``hw1_relu.ipynb``). The older ``COURSE_EXTRA_EXERCISES`` (module names or ``.py`` paths) still
works for ``course grade`` and ``course release``; it is deprecated in favour of ``COURSE_BANK``.

An exercise whose answer is not called plainly (a class to build, a model to run) names its own
``run`` adapter. Keep it as a top-level function in a helper file such as ``_adapters.py``, imported
by the bank file, with no reference or case generator in it: ``course grade`` shows a read-only copy
of that file to the sandboxed submissions, whose worker imports it, and hides the rest of the bank.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

__all__ = ["BankError", "load_bank", "load_env_banks", "bank_files", "loaded_bank_paths", "ENV_VAR"]

ENV_VAR = "COURSE_BANK"

# Absolute path of a loaded bank file -> the ids it registered, so loading twice is harmless.
_LOADED: dict[str, list[str]] = {}
# The banks as given (folders or files), resolved: what the grader hides from its workers.
_PATHS: list[str] = []


class BankError(ValueError):
    """An exercise bank that cannot be loaded: the message names the path and what to do."""


def bank_files(path: str | os.PathLike) -> list[Path]:
    """The Python files of a bank: ``path`` itself if it is a ``.py`` file, else the folder's ``*.py``.

    Files whose names start with ``_`` or ``.`` are helpers the bank files may import; they are
    not loaded on their own.

    Raises
    ------
    BankError
        ``path`` does not exist, is neither a folder nor a ``.py`` file, or holds no bank file.
    """
    p = Path(path).expanduser()
    if p.is_file():
        if p.suffix != ".py":
            raise BankError(f"exercise bank {str(path)!r} is not a .py file or a folder of them")
        return [p.resolve()]
    if p.is_dir():
        files = sorted(f.resolve() for f in p.glob("*.py") if not f.name.startswith(("_", ".")))
        if not files:
            raise BankError(f"exercise bank folder {str(path)!r} holds no .py files; put one file per exercise (or per lesson) there")
        return files
    raise BankError(f"exercise bank {str(path)!r} does not exist; pass the folder that holds your exercise files")


def load_bank(path: str | os.PathLike) -> list[str]:
    """Import an instructor's bank (a folder of ``.py`` files, or one file); return the ids it registered.

    Each file runs once per process, as a module of its own, with its folder on ``sys.path``
    while it is imported (so bank files can share helpers in ``_helpers.py``). Loading the same
    bank again returns the same ids and registers nothing twice.

    Parameters
    ----------
    path : str or path-like
        The bank folder or file.

    Returns
    -------
    list of str
        The exercise ids, in registration order.

    Raises
    ------
    BankError
        The path is wrong, a file fails to import (the message names the file and the error), or
        a file registers an id that already exists.

    Examples
    --------
    >>> load_bank("instructor_bank/")  # doctest: +SKIP
    ['count_positive', 'mean_of_channels']
    """
    from .registry import _BANK

    ids: list[str] = []
    files = bank_files(path)
    given = str(Path(path).expanduser().resolve())
    if given not in _PATHS:
        _PATHS.append(given)
    for file in files:
        key = str(file)
        if key in _LOADED:
            ids.extend(_LOADED[key])
            continue
        before = list(_BANK)
        name = "_course_bank_" + hashlib.sha256(key.encode()).hexdigest()[:12] + "_" + file.stem
        folder = str(file.parent)
        added_path = folder not in sys.path
        if added_path:
            sys.path.insert(0, folder)
        try:
            spec = importlib.util.spec_from_file_location(name, key)
            if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
                raise BankError(f"exercise bank file {key!r} cannot be imported")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BankError:
                raise
            except Exception as exc:
                sys.modules.pop(name, None)
                for ex_id in set(_BANK) - set(before):  # a half-loaded file leaves nothing behind
                    _BANK.pop(ex_id, None)
                raise BankError(f"exercise bank file {key!r} failed to load: {type(exc).__name__}: {exc}") from exc
        finally:
            if added_path and folder in sys.path:
                sys.path.remove(folder)
        new = [ex_id for ex_id in _BANK if ex_id not in before]
        _LOADED[key] = new
        ids.extend(new)
    return ids


def loaded_bank_paths() -> list[str]:
    """Absolute paths of every bank loaded in this process (folders or files, as given).

    The grader hides them from the sandboxed workers: a private bank's references and case
    generators are read only by the grader process.

    Examples
    --------
    >>> isinstance(loaded_bank_paths(), list)
    True
    """
    return list(_PATHS)


def load_env_banks(value: str | None = None) -> list[str]:
    """Load every bank named in ``$COURSE_BANK`` (``os.pathsep``-separated); return their ids.

    Examples
    --------
    >>> load_env_banks("")
    []
    """
    value = os.environ.get(ENV_VAR, "") if value is None else value
    ids: list[str] = []
    for item in filter(None, (s.strip() for s in value.split(os.pathsep))):
        try:
            ids.extend(load_bank(item))
        except BankError as exc:
            raise BankError(f"{ENV_VAR}: {exc}") from None
    return ids
