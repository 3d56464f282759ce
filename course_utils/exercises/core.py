"""The exercise model: what an exercise is, how answers become plain data, how they are compared.

Everything here is shared by the in-notebook checker (``check``) and the grader. The grader runs
``Exercise.run`` in the learner's process and ``compare`` in its own, so ``compare`` works only on
plain data produced by ``to_plain``: it never calls a method of an object the learner made.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "Case",
    "Exercise",
    "Comparison",
    "to_plain",
    "compare",
    "describe",
    "is_unanswered",
]


@dataclass(frozen=True)
class Case:
    """One input to an exercise: positional and keyword arguments, and an optional label.

    Examples
    --------
    >>> Case((32, 3), {"stride": 2, "padding": 1}, label="halving")
    Case(args=(32, 3), kwargs={'stride': 2, 'padding': 1}, label='halving')
    """

    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""


def _call_answer(answer: Callable, case: Case) -> Any:
    return answer(*case.args, **dict(case.kwargs))


@dataclass(frozen=True)
class Exercise:
    """An exercise in the bank.

    Parameters
    ----------
    id : str
        Stable identifier used by ``check(id, ...)`` and by the gradebook columns.
    lesson : str
        Stem of the lesson notebook that holds it, e.g. ``"02_output_size"``.
    name : str
        The name the learner defines in the notebook (a function, a class or a variable).
    points : int
        Points for a fully correct answer; graded cases share them equally (partial credit).
    reference : callable
        For ``kind="function"``: the reference implementation, called like the learner's answer.
        For ``kind="value"``: a callable taking no arguments that returns the expected value.
    public_cases : sequence of Case
        Fixed cases shown to the learner by ``check``.
    make_cases : callable(numpy.random.Generator, int) -> list of Case
        Draws ``n`` fresh cases (edge cases included) from a generator. ``check`` draws practice
        cases from a fresh seed in the learner's kernel; the grader draws graded cases in its own
        process from a seed it keeps.
    kind : {"function", "value"}
        Whether the learner defines a callable (applied to each case) or a value (compared once).
    run : callable(answer, Case) -> Any, optional
        How to apply an answer to a case; the default calls ``answer(*case.args, **case.kwargs)``.
        Use it to turn an answer that is a model or a class into something comparable (for
        example its layer shapes and parameter count). It runs in the learner's process and the
        reference goes through the same ``run``.
    rtol, atol : float
        Tolerance for floating-point values: ``|got - expected| <= atol + rtol * |expected|``.
    hint : str
        A single hint (older banks); it becomes ``hints == (hint,)`` when ``hints`` is empty.
    hints : tuple of str
        Graduated hints, first nudge first: ``check`` shows the first after the first failure and
        a more specific one after each further failure, never the answer or the full formula.
    forbidden : tuple of str
        Dotted names the learner's function may not call, e.g. ``"torch.nn.functional.conv2d"``,
        ``"torch.nn.BatchNorm2d.forward"``, ``"course_utils.shapes.conv_out"``; the reference is
        always forbidden too. See :mod:`course_utils.exercises.forbidden`.
    show_expected : bool
        Whether ``check`` may show a failing case's expected output. ``False`` for exercises whose
        expected output is the answer to a small question (a receptive field, a count): the report
        then shows the input, what was returned and where it differs, never the expected value.
    title : str
        One line saying what the exercise asks for.
    n_cases : int
        How many random cases ``check`` and the grader draw.
    time_limit : float
        Seconds one case may take in ``check`` before it is reported as not returning.
    """

    id: str
    lesson: str
    name: str
    points: int
    reference: Callable[..., Any]
    public_cases: Sequence[Case] = ()
    make_cases: Callable[[np.random.Generator, int], list[Case]] | None = None
    kind: str = "function"
    run: Callable[[Any, Case], Any] = _call_answer
    rtol: float = 1e-5
    atol: float = 1e-6
    hint: str = ""
    title: str = ""
    n_cases: int = 20
    time_limit: float = 5.0
    hints: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    show_expected: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("function", "value"):
            raise ValueError(f"Exercise {self.id!r}: kind must be 'function' or 'value', got {self.kind!r}")
        if self.kind == "function" and not self.public_cases and self.make_cases is None:
            raise ValueError(f"Exercise {self.id!r}: a function exercise needs public_cases or make_cases")
        if not isinstance(self.points, int) or self.points <= 0:
            raise ValueError(f"Exercise {self.id!r}: points must be a positive int, got {self.points!r}")
        # Frozen dataclass: normalise through object.__setattr__. A bare string would otherwise be
        # read as a tuple of one-letter hints or names.
        hints = (self.hints,) if isinstance(self.hints, str) else tuple(self.hints or ())
        if not hints and self.hint:
            hints = (self.hint,)
        if not all(isinstance(h, str) and h.strip() for h in hints):
            raise ValueError(f"Exercise {self.id!r}: hints must be non-empty strings, got {self.hints!r}")
        object.__setattr__(self, "hints", hints)
        if not self.hint and hints:
            object.__setattr__(self, "hint", hints[0])
        forbidden = (self.forbidden,) if isinstance(self.forbidden, str) else tuple(self.forbidden or ())
        bad = [f for f in forbidden if not isinstance(f, str) or not f or " " in f]
        if bad:
            raise ValueError(f"Exercise {self.id!r}: forbidden must be dotted names such as 'torch.nn.functional.conv2d', got {bad!r}")
        object.__setattr__(self, "forbidden", forbidden)

    def hint_for(self, failures: int) -> str:
        """The hint to show after ``failures`` failed checks (1 = the first): graduated, then the last.

        Examples
        --------
        >>> ex = Exercise("x", "l", "x", 1, lambda: 1, kind="value", hints=("nudge", "closer"))
        >>> ex.hint_for(1), ex.hint_for(2), ex.hint_for(5)
        ('nudge', 'closer', 'closer')
        """
        if not self.hints:
            return ""
        return self.hints[min(max(failures, 1), len(self.hints)) - 1]

    def draw_cases(self, rng: np.random.Generator, n: int | None = None) -> list[Case]:
        """Fresh random cases; a value exercise has exactly one, empty case."""
        if self.kind == "value":
            return [Case(label="value")]
        if self.make_cases is None:
            return []
        return list(self.make_cases(rng, self.n_cases if n is None else n))

    def expected(self, case: Case) -> Any:
        """The reference's output on ``case``, as plain data."""
        if self.kind == "value":
            return to_plain(self.reference())
        return to_plain(self.run(self.reference, case))

    def produce(self, answer: Any, case: Case) -> Any:
        """The learner's output on ``case`` as plain data; exceptions propagate to the caller."""
        if self.kind == "value":
            return to_plain(answer)
        return to_plain(self.run(answer, case))


def is_unanswered(answer: Any) -> bool:
    """True for the placeholders a released workbook starts with (``None``, ``...``, ``NotImplemented``)."""
    return answer is None or answer is Ellipsis or answer is NotImplemented


# --------------------------------------------------------------------------------------------
# Plain data
# --------------------------------------------------------------------------------------------

_MAX_ITEMS = 10_000_000  # a learner's answer larger than this is refused, not serialised


def to_plain(value: Any, _depth: int = 0) -> Any:
    """Turn a value into plain data: bool, int, float, str, None, list, dict or ``numpy.ndarray``.

    Tensors become arrays (detached, on the CPU), tuples become lists, NumPy scalars become
    Python scalars. Anything else raises ``TypeError`` naming its type, because only plain data
    may cross from the learner's process to the grader.

    Examples
    --------
    >>> to_plain((1, 2.5, "a"))
    [1, 2.5, 'a']
    """
    if _depth > 20:
        raise TypeError("the answer is nested more than 20 levels deep")
    if value is None or isinstance(value, (bool, str)):
        return value
    if type(value) is int or type(value) is float:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("an array of Python objects is not a numeric answer")
        if value.size > _MAX_ITEMS:
            raise TypeError(f"an array of {value.size} values is too large to be an answer")
        return np.array(value, copy=True)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    if torch is not None and isinstance(value, torch.Tensor):
        if value.numel() > _MAX_ITEMS:
            raise TypeError(f"a tensor of {value.numel()} values is too large to be an answer")
        t = value.detach().to("cpu")
        if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
            t = t.float()
        return np.array(t.numpy(), copy=True)
    if torch is not None and isinstance(value, torch.Size):
        return [int(v) for v in value]
    if isinstance(value, (list, tuple)):
        return [to_plain(v, _depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"dictionary keys must be strings, got {type(k).__name__}")
            out[k] = to_plain(v, _depth + 1)
        return out
    if isinstance(value, int):  # int subclasses: keep the number, drop the subclass
        return int(value)
    if isinstance(value, float):
        return float(value)
    raise TypeError(f"a {type(value).__module__}.{type(value).__qualname__} is not a number, array, list or dict")


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """The verdict on one case: ``ok`` and, when not ok, a one-line reason."""

    ok: bool
    reason: str = ""


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, np.ndarray):
        return "array"
    return type(value).__name__


def compare(expected: Any, got: Any, rtol: float = 1e-5, atol: float = 1e-6, _where: str = "") -> Comparison:
    """Compare plain data: type first, then shape, then value (floats within a tolerance).

    Both arguments must come from :func:`to_plain`. Nothing here calls ``==`` on an object the
    learner built, so an answer cannot declare itself equal to the expected one.

    Parameters
    ----------
    expected, got : plain data
    rtol, atol : float
        A float passes when ``|got - expected| <= atol + rtol * |expected|``.

    Returns
    -------
    Comparison

    Examples
    --------
    >>> compare(16, 16)
    Comparison(ok=True, reason='')
    >>> compare(16, 16.0).reason
    'expected an int, got a float (16.0)'
    """
    where = f" at {_where}" if _where else ""
    ek, gk = _kind(expected), _kind(got)
    # An int answer where a float is expected is fine (2 == 2.0 numerically); the reverse is not,
    # because a float where a size or a count is expected is a real mistake (use //).
    if ek == "float" and gk == "int":
        got, gk = float(got), "float"
    if ek != gk:
        article = "an" if ek[0] in "aeiou" else "a"
        garticle = "an" if gk[0] in "aeiou" else "a"
        shown = "" if gk in ("list", "dict", "array") else f" ({describe(got)})"
        return Comparison(False, f"expected {article} {ek}{where}, got {garticle} {gk}{shown}")
    if ek in ("None",):
        return Comparison(True)
    if ek in ("bool", "int", "str"):
        if type(expected) is type(got) and expected == got:
            return Comparison(True)
        return Comparison(False, f"expected {describe(expected)}{where}, got {describe(got)}")
    if ek == "float":
        return _compare_floats(np.asarray(expected, dtype=float), np.asarray(got, dtype=float), rtol, atol, where)
    if ek == "list":
        if len(expected) != len(got):
            return Comparison(False, f"expected {len(expected)} items{where}, got {len(got)}")
        for i, (e, g) in enumerate(zip(expected, got)):
            c = compare(e, g, rtol, atol, f"{_where}[{i}]")
            if not c.ok:
                return c
        return Comparison(True)
    if ek == "dict":
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        if missing or extra:
            return Comparison(False, f"keys differ{where}: missing {missing}, unexpected {extra}")
        for k in expected:
            c = compare(expected[k], got[k], rtol, atol, f"{_where}[{k!r}]")
            if not c.ok:
                return c
        return Comparison(True)
    # arrays
    if tuple(expected.shape) != tuple(got.shape):
        return Comparison(False, f"expected shape {tuple(expected.shape)}{where}, got shape {tuple(got.shape)}")
    e_num = np.issubdtype(expected.dtype, np.number) or expected.dtype == bool
    g_num = np.issubdtype(got.dtype, np.number) or got.dtype == bool
    if not (e_num and g_num):
        return Comparison(False, f"expected a numeric array{where}, got dtype {got.dtype}")
    if np.issubdtype(expected.dtype, np.floating):
        return _compare_floats(expected.astype(float), got.astype(float), rtol, atol, where)
    if np.issubdtype(got.dtype, np.floating):
        return Comparison(False, f"expected an integer array{where}, got dtype {got.dtype}")
    bad = np.argwhere(expected.astype(np.int64) != got.astype(np.int64))
    if bad.size:
        idx = tuple(int(i) for i in bad[0])
        return Comparison(False, f"{len(bad)} values differ{where}; first at index {idx}: expected {expected[idx]}, got {got[idx]}")
    return Comparison(True)


def _compare_floats(expected: np.ndarray, got: np.ndarray, rtol: float, atol: float, where: str) -> Comparison:
    scalar = expected.ndim == 0
    if np.isnan(got).any() and not np.isnan(expected).any():
        return Comparison(False, f"the answer contains NaN{where}")
    if np.isinf(got).any() and not np.isinf(expected).any():
        return Comparison(False, f"the answer contains inf{where}")
    same_special = (np.isnan(expected) & np.isnan(got)) | (np.isinf(expected) & (expected == got))
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(got - expected)
        allowed = atol + rtol * np.abs(expected)
        bad = ~(same_special | (err <= allowed))
    if not bad.any():
        return Comparison(True)
    if scalar:
        return Comparison(
            False,
            f"expected {describe(float(expected))}{where}, got {describe(float(got))} "
            f"(tolerance {atol:g} + {rtol:g}·|expected|)",
        )
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    worst = float(np.nanmax(np.where(bad, err, 0.0)))
    return Comparison(
        False,
        f"{int(bad.sum())} of {bad.size} values differ{where}; first at index {idx}: expected "
        f"{expected[idx]:.6g}, got {got[idx]:.6g}; largest error {worst:.3g} "
        f"(tolerance {atol:g} + {rtol:g}·|expected|)",
    )


def describe(value: Any, limit: int = 120) -> str:
    """A short, safe, human-readable rendering of an input or output, for reports.

    Arrays and tensors show their shape and dtype and, when small, their values.

    Examples
    --------
    >>> describe(np.zeros((2, 3)))
    'array shape (2, 3) float64 [[0. 0. 0.] [0. 0. 0.]]'
    """
    try:
        import torch

        if isinstance(value, torch.Tensor):
            head = f"tensor shape {tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
            if value.numel() <= 12:
                body = np.array2string(value.detach().cpu().float().numpy(), precision=4, separator=" ")
                return _clip(f"{head} {' '.join(body.split())}", limit)
            return head
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, np.ndarray):
        head = f"array shape {tuple(value.shape)} {value.dtype}"
        if value.size <= 12:
            body = np.array2string(value, precision=4, separator=" ")
            return _clip(f"{head} {' '.join(body.split())}", limit)
        return head
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return repr(value)
        text = f"{value:.6g}"
        # keep a float recognisable as a float: 16.0, not 16
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(describe(v, limit) for v in value[:8])
        more = ", ..." if len(value) > 8 else ""
        brackets = "()" if isinstance(value, tuple) else "[]"
        return _clip(f"{brackets[0]}{inner}{more}{brackets[1]}", limit)
    if isinstance(value, dict):
        inner = ", ".join(f"{k!r}: {describe(v, limit)}" for k, v in list(value.items())[:8])
        return _clip("{" + inner + "}", limit)
    if isinstance(value, (numbers.Number, str, type(None))):
        return _clip(repr(value), limit)
    try:
        text = repr(value)
    except Exception:  # a learner's object whose __repr__ raises is still reportable
        text = f"<{type(value).__name__} object>"
    return _clip(text, limit)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
