"""Forbidden calls: the library functions a "from scratch" exercise may not use.

An exercise lists dotted names in ``Exercise.forbidden`` (``"torch.nn.functional.conv2d"``,
``"torch.nn.BatchNorm2d.forward"``, ``"course_utils.shapes.conv_out"``); its own reference is
always forbidden too. Two checks use that list:

* :func:`forbid`, a context manager wrapped around the learner's function only (in ``check`` and in
  the grading worker). While it is active, a forbidden call raises :class:`ForbiddenCallError`. It
  looks at three levels, so that renaming a function does not hide it:

  - a ``TorchFunctionMode`` sees every torch function by identity (``from torch.nn.functional
    import conv2d as c`` is still ``F.conv2d``) and every ``torch.ops`` call by operator name;
  - a ``TorchDispatchMode`` sees the ATen operator underneath (``aten::convolution``,
    ``aten::native_batch_norm``, ``aten::im2col``...), whatever Python path led there;
  - plain Python functions (the course's own helpers, the exercise's reference, an ``nn.Module``'s
    ``forward``) have their code object swapped for one that raises in a thread whose guard forbids
    them and runs the original anywhere else, so an alias bound before the exercise ran is caught
    as well, and a learner's function still running in another thread (a timed-out ``check``)
    cannot break the reference for the next check. Overlapping guards share one swap; the
    originals are put back when the last one exits, even after an exception.

* :func:`scan_source`, a static check that the grader runs in its own process on the learner's
  source. A submission controls its own process and could switch the modes off; it cannot change
  what the grader reads in its notebook.

Neither is a proof: code that computes the same thing with NumPy or SciPy functions that are not
listed, or that builds the call by ``getattr`` on a string and disables the torch modes first,
is not caught. The README's grading section says so.
"""
from __future__ import annotations

import ast
import contextlib
import importlib
import sys
import threading
import types
from typing import Any, Iterable, Iterator

__all__ = ["ForbiddenCallError", "forbid", "scan_source", "display_name", "ATEN_OPS", "CONV_CALLS",
           "POOL_CALLS"]

# The library calls that slide a window for the learner, for the banks' ``forbidden`` lists: every
# from-scratch convolution exercise refuses the first group, every pooling exercise the second.
CONV_CALLS: tuple[str, ...] = (
    'torch.nn.functional.conv1d',
    'torch.nn.functional.conv2d',
    'torch.nn.functional.conv3d',
    'torch.nn.functional.unfold',
    'torch.nn.Conv1d.forward',
    'torch.nn.Conv2d.forward',
    'torch.nn.Conv3d.forward',
    'torch.ops.aten.convolution',
    'torch.ops.aten._convolution',
)
POOL_CALLS: tuple[str, ...] = (
    'torch.nn.functional.max_pool1d',
    'torch.nn.functional.max_pool2d',
    'torch.nn.functional.max_pool3d',
    'torch.nn.functional.max_pool2d_with_indices',
    'torch.nn.functional.avg_pool1d',
    'torch.nn.functional.avg_pool2d',
    'torch.nn.functional.avg_pool3d',
    'torch.nn.functional.adaptive_avg_pool1d',
    'torch.nn.functional.adaptive_avg_pool2d',
    'torch.nn.functional.adaptive_max_pool1d',
    'torch.nn.functional.adaptive_max_pool2d',
    'torch.nn.MaxPool2d.forward',
    'torch.nn.AvgPool2d.forward',
    'torch.nn.AdaptiveAvgPool2d.forward',
    'torch.nn.AdaptiveMaxPool2d.forward',
)


class ForbiddenCallError(Exception):
    """A forbidden function was called inside an exercise.

    Examples
    --------
    >>> str(ForbiddenCallError("F.conv2d is off-limits in exercise 'conv2d_forward'"))
    "F.conv2d is off-limits in exercise 'conv2d_forward'"
    """


# --------------------------------------------------------------------------------------------
# What each forbidden name looks like underneath
# --------------------------------------------------------------------------------------------

_CONV = (
    "aten::convolution", "aten::_convolution", "aten::conv1d", "aten::conv2d", "aten::conv3d",
    "aten::_convolution_mode", "aten::convolution_overrideable", "aten::mkldnn_convolution",
    "aten::thnn_conv2d", "aten::_slow_conv2d_forward", "aten::slow_conv3d", "aten::slow_conv3d_forward",
    "aten::slow_conv_dilated2d", "aten::slow_conv_dilated3d", "aten::cudnn_convolution",
    "aten::_nnpack_spatial_convolution", "aten::miopen_convolution",
)
_BN = (
    "aten::batch_norm", "aten::_batch_norm_impl_index", "aten::native_batch_norm",
    "aten::_native_batch_norm_legit", "aten::_native_batch_norm_legit_no_training",
    "aten::_native_batch_norm_legit_functional", "aten::_batch_norm_with_update",
    "aten::_batch_norm_no_update", "aten::cudnn_batch_norm", "aten::miopen_batch_norm",
)
_MAXPOOL = (
    "aten::max_pool1d", "aten::max_pool2d", "aten::max_pool3d", "aten::max_pool1d_with_indices",
    "aten::max_pool2d_with_indices", "aten::max_pool3d_with_indices", "aten::mkldnn_max_pool2d",
    "aten::mkldnn_max_pool3d", "aten::quantized_max_pool2d",
)
_AVGPOOL = ("aten::avg_pool1d", "aten::avg_pool2d", "aten::avg_pool3d", "aten::mkldnn_avg_pool2d")
_ADAPTIVE_AVG = (
    "aten::adaptive_avg_pool1d", "aten::adaptive_avg_pool2d", "aten::_adaptive_avg_pool2d",
    "aten::adaptive_avg_pool3d", "aten::_adaptive_avg_pool3d", "aten::mkldnn_adaptive_avg_pool2d",
)
_ADAPTIVE_MAX = ("aten::adaptive_max_pool1d", "aten::adaptive_max_pool2d", "aten::adaptive_max_pool3d")
_DROPOUT = (
    "aten::dropout", "aten::feature_dropout", "aten::native_dropout", "aten::alpha_dropout",
    "aten::feature_alpha_dropout",
)
_IM2COL = ("aten::im2col",)

#: ATen operators behind each forbidden torch name (matched on the short name after the module).
ATEN_OPS: dict[str, tuple[str, ...]] = {
    "conv1d": _CONV, "conv2d": _CONV, "conv3d": _CONV, "convolution": _CONV, "Conv1d": _CONV,
    "Conv2d": _CONV, "Conv3d": _CONV,
    "batch_norm": _BN, "BatchNorm1d": _BN, "BatchNorm2d": _BN, "BatchNorm3d": _BN,
    "max_pool1d": _MAXPOOL, "max_pool2d": _MAXPOOL, "max_pool3d": _MAXPOOL, "MaxPool1d": _MAXPOOL,
    "MaxPool2d": _MAXPOOL, "MaxPool3d": _MAXPOOL, "max_pool2d_with_indices": _MAXPOOL,
    "avg_pool1d": _AVGPOOL, "avg_pool2d": _AVGPOOL, "avg_pool3d": _AVGPOOL, "AvgPool1d": _AVGPOOL,
    "AvgPool2d": _AVGPOOL, "AvgPool3d": _AVGPOOL,
    "adaptive_avg_pool1d": _ADAPTIVE_AVG, "adaptive_avg_pool2d": _ADAPTIVE_AVG,
    "adaptive_avg_pool3d": _ADAPTIVE_AVG, "AdaptiveAvgPool2d": _ADAPTIVE_AVG,
    "adaptive_max_pool1d": _ADAPTIVE_MAX, "adaptive_max_pool2d": _ADAPTIVE_MAX,
    "adaptive_max_pool3d": _ADAPTIVE_MAX, "AdaptiveMaxPool2d": _ADAPTIVE_MAX,
    "dropout": _DROPOUT, "dropout1d": _DROPOUT, "dropout2d": _DROPOUT, "dropout3d": _DROPOUT,
    "feature_dropout": _DROPOUT, "Dropout": _DROPOUT, "Dropout1d": _DROPOUT, "Dropout2d": _DROPOUT,
    "Dropout3d": _DROPOUT,
    "unfold": _IM2COL, "Unfold": _IM2COL, "im2col": _IM2COL,
}

# What to do instead, by family, so the message teaches rather than only refuses.
_ADVICE = (
    (_CONV + _IM2COL, "write the sliding window yourself"),
    (_BN, "compute the batch statistics yourself"),
    (_MAXPOOL + _AVGPOOL + _ADAPTIVE_AVG + _ADAPTIVE_MAX, "slide the pooling window yourself"),
    (_DROPOUT, "build the mask yourself"),
)


def display_name(name: str) -> str:
    """The short name a learner writes: ``torch.nn.functional.conv2d`` -> ``F.conv2d``.

    Examples
    --------
    >>> display_name("torch.nn.functional.batch_norm"), display_name("torch.nn.Conv2d.forward")
    ('F.batch_norm', 'nn.Conv2d')
    """
    if name.startswith("torch.nn.functional."):
        return "F." + name[len("torch.nn.functional."):]
    if name.startswith("torch.nn.") and name.endswith(".forward"):
        return "nn." + name[len("torch.nn."):-len(".forward")]
    if name.startswith("torch.nn."):
        return "nn." + name[len("torch.nn."):]
    return name


def _aten_for(name: str) -> tuple[str, ...]:
    parts = name.split(".")
    if parts[0] != "torch":
        return ()
    if parts[-1] == "forward" and len(parts) >= 2:
        return ATEN_OPS.get(parts[-2], ())
    if name.startswith("torch.ops."):
        return (f"{parts[2]}::{parts[3]}",) if len(parts) >= 4 else ()
    if parts[-1] == "unfold" and not name.startswith("torch.nn.functional."):
        return ()  # Tensor.unfold is a strided view, allowed; F.unfold is im2col
    return ATEN_OPS.get(parts[-1], ())


def _advice(name: str, atens: Iterable[str]) -> str:
    atens = set(atens)
    for family, text in _ADVICE:
        if atens & set(family):
            return text
    if name.startswith("course_utils."):
        return "work it out yourself"
    return "write it yourself"


_IMPORTABLE_ROOTS = ("torch", "course_utils")


def _resolve(name: str) -> Any:
    """The object a dotted name refers to, or ``None`` when it cannot be found here.

    Only torch and course_utils are imported for it; other libraries (SciPy) are looked up only
    if already imported, because importing one costs seconds and a learner who imports it inside
    the exercise is still caught by :func:`scan_source`.
    """
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        obj: Any = sys.modules.get(module_name)
        if obj is None:
            if parts[0] not in _IMPORTABLE_ROOTS or module_name == name:
                continue
            try:
                obj = importlib.import_module(module_name)
            except Exception:  # not a module (an attribute), or not installed
                continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _op_name(func: Any) -> str | None:
    """``"aten::convolution"`` for a ``torch.ops`` callable or an ``OpOverload``, else ``None``."""
    schema = getattr(func, "_schema", None)
    if schema is not None and isinstance(getattr(schema, "name", None), str):
        return schema.name
    qualified = getattr(func, "_qualified_op_name", None)
    if isinstance(qualified, str):
        return qualified
    module = getattr(func, "__module__", None)
    short = getattr(func, "__name__", None)
    if isinstance(module, str) and module.startswith("torch._ops.") and isinstance(short, str):
        return f"{module.rsplit('.', 1)[-1]}::{short}"
    return None


# --------------------------------------------------------------------------------------------
# The runtime guard
# --------------------------------------------------------------------------------------------


class _Rules:
    """The resolved form of one exercise's forbidden list."""

    def __init__(self, exercise: Any) -> None:
        self.exercise_id = str(getattr(exercise, "id", "?"))
        names = list(getattr(exercise, "forbidden", ()) or ())
        self.by_id: dict[int, str] = {}
        self.by_op: dict[str, str] = {}
        self.python: list[tuple[types.FunctionType, str]] = []
        self.messages: dict[str, str] = {}
        self._keep: list[Any] = []  # keeps resolved objects alive, so their ids stay theirs
        for name in names:
            atens = _aten_for(name)
            self.messages[name] = (
                f"{display_name(name)} is off-limits in exercise {self.exercise_id!r}: {_advice(name, atens)}"
            )
            for op in atens:
                self.by_op.setdefault(op, name)
            obj = _resolve(name)
            if obj is None:
                continue
            self._keep.append(obj)
            self.by_id[id(obj)] = name
            if isinstance(obj, types.FunctionType):
                self.python.append((obj, name))
        reference = getattr(exercise, "reference", None)
        if isinstance(reference, types.FunctionType) and getattr(exercise, "kind", "function") == "function":
            name = f"the course's reference for {self.exercise_id!r}"
            self.messages[name] = f"calling {name} is off-limits: write your own {getattr(exercise, 'name', 'function')}"
            self.python.append((reference, name))

    def message(self, name: str) -> str:
        return self.messages.get(name, f"{display_name(name)} is off-limits in exercise {self.exercise_id!r}")


class _Guard:
    """What ``forbid`` yields: the violations seen, so a caller can fail a case the learner caught."""

    def __init__(self, rules: _Rules) -> None:
        self.rules = rules
        self.violations: list[str] = []

    def error(self, name: str) -> ForbiddenCallError:
        message = self.rules.message(name)
        if message not in self.violations:
            self.violations.append(message)
        return ForbiddenCallError(message)


# The guards active in each thread, innermost last. The torch modes are per thread already; the
# swapped-in Python bodies look here, so a learner's function left running in another thread (a
# `check` that timed out where no alarm signal exists) cannot make the course's own reference
# raise when the next check computes its expected values.
_LOCAL = threading.local()
# One swap per function however many guards overlap, undone when the last one exits: id(fn) ->
# [fn, original code, defaults, kwdefaults, a clone that runs the original, number of guards].
_SWAPS: dict[int, list[Any]] = {}
_LOCK = threading.RLock()


def _thread_guards() -> list[_Guard]:
    guards = getattr(_LOCAL, "guards", None)
    if guards is None:
        guards = _LOCAL.guards = []
    return guards


def _call_or_raise(name: str, key: int, args: tuple, kwargs: dict) -> Any:
    """The body of a swapped function: raise inside a guard that forbids ``name``, else run the original."""
    for guard in reversed(_thread_guards()):
        if any(n == name for _, n in guard.rules.python):
            raise guard.error(name)
    entry = _SWAPS.get(key)
    if entry is None:  # restored between the lookup and now: the function is itself again
        raise ForbiddenCallError(f"{display_name(name)} was called while its guard was being removed; call it again")
    return entry[4](*args, **kwargs)


def _raiser_code(name: str, key: int) -> types.CodeType:
    source = (
        "def _forbidden(*args, **kwargs):\n"
        "    return __import__('course_utils.exercises.forbidden', fromlist=['_call_or_raise'])"
        f"._call_or_raise({name!r}, {key}, args, kwargs)\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<forbidden {name}>", "exec"), namespace)
    return namespace["_forbidden"].__code__


def _swap_in(fn: types.FunctionType, name: str) -> bool:
    """Route ``fn`` through :func:`_call_or_raise` (counted); False for a closure, which cannot be."""
    key = id(fn)
    entry = _SWAPS.get(key)
    if entry is not None:
        entry[5] += 1
        return True
    code, defaults, kwdefaults = fn.__code__, fn.__defaults__, fn.__kwdefaults__
    clone = types.FunctionType(code, fn.__globals__, fn.__name__, defaults, fn.__closure__)
    clone.__kwdefaults__ = kwdefaults
    try:
        fn.__code__ = _raiser_code(name, key)
    except ValueError:  # a closure: the torch modes still see torch functions
        return False
    fn.__defaults__, fn.__kwdefaults__ = None, None
    _SWAPS[key] = [fn, code, defaults, kwdefaults, clone, 1]
    return True


def _swap_out(fn: types.FunctionType) -> None:
    entry = _SWAPS.get(id(fn))
    if entry is None:
        return
    entry[5] -= 1
    if entry[5] == 0:
        fn.__code__, fn.__defaults__, fn.__kwdefaults__ = entry[1], entry[2], entry[3]
        del _SWAPS[id(fn)]


_MODE_CLASSES: list[type] = []


def _mode_classes() -> tuple[type, type]:
    """The two torch modes, made once per process (making classes per call costs time)."""
    if _MODE_CLASSES:
        return _MODE_CLASSES[0], _MODE_CLASSES[1]
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    class _FunctionGuard(TorchFunctionMode):
        def __init__(self, guard: _Guard) -> None:
            super().__init__()
            self.guard = guard

        def __torch_function__(self, func, types_, args=(), kwargs=None):
            rules = self.guard.rules
            name = rules.by_id.get(id(func))
            if name is None:
                op = _op_name(func)
                name = rules.by_op.get(op) if op else None
            if name is not None:
                raise self.guard.error(name)
            return func(*args, **(kwargs or {}))

    class _DispatchGuard(TorchDispatchMode):
        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            # Otherwise torch wraps __torch_dispatch__ in a dynamo guard whose first call imports
            # torch._dynamo: five seconds inside the first case's time limit.
            return False

        def __init__(self, guard: _Guard) -> None:
            super().__init__()
            self.guard = guard

        def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
            op = _op_name(func)
            name = self.guard.rules.by_op.get(op) if op else None
            if name is not None:
                raise self.guard.error(name)
            return func(*args, **(kwargs or {}))

    _MODE_CLASSES.extend([_FunctionGuard, _DispatchGuard])
    return _FunctionGuard, _DispatchGuard


def _modes(guard: _Guard) -> tuple[Any, Any]:
    function_cls, dispatch_cls = _mode_classes()
    return function_cls(guard), dispatch_cls(guard)


_RULES_CACHE: dict[tuple, _Rules] = {}


def _rules_for(exercise: Any) -> _Rules:
    """Resolved rules, cached per exercise: resolving names must not eat into a case's time limit."""
    key = (
        id(exercise), str(getattr(exercise, "id", "?")), tuple(getattr(exercise, "forbidden", ()) or ()),
        id(getattr(exercise, "reference", None)), tuple(m for m in _IMPORTABLE_ROOTS if m in sys.modules),
        "scipy" in sys.modules, "numpy" in sys.modules,
    )
    rules = _RULES_CACHE.get(key)
    if rules is None:
        rules = _RULES_CACHE[key] = _Rules(exercise)
    return rules


@contextlib.contextmanager
def forbid(exercise: Any) -> Iterator[_Guard]:
    """Make an exercise's forbidden calls raise :class:`ForbiddenCallError` inside the block.

    Wrap only the learner's call: code before and after the block (the learner's other cells, the
    reference, the comparison) is not affected, and every original is restored on exit, also
    after an exception.

    Parameters
    ----------
    exercise : Exercise
        Anything with ``id`` and ``forbidden`` (dotted names); its ``reference`` is forbidden too.

    Yields
    ------
    guard
        ``guard.violations`` lists the messages of the forbidden calls attempted, including ones the
        learner's code caught and swallowed.

    Examples
    --------
    >>> import torch, torch.nn.functional as F
    >>> from types import SimpleNamespace
    >>> ex = SimpleNamespace(id="conv2d_forward", forbidden=("torch.nn.functional.conv2d",))
    >>> with forbid(ex):
    ...     try:
    ...         F.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2))
    ...     except ForbiddenCallError as exc:
    ...         print(exc)
    F.conv2d is off-limits in exercise 'conv2d_forward': write the sliding window yourself
    """
    rules = _rules_for(exercise)
    guard = _Guard(rules)
    if not rules.messages:
        yield guard
        return
    swapped: list[types.FunctionType] = []
    guards = _thread_guards()
    with _LOCK:
        guards.append(guard)
        try:
            for fn, name in rules.python:
                if _swap_in(fn, name):
                    swapped.append(fn)
        except BaseException:
            _restore(swapped)
            guards.remove(guard)
            raise
    stack = contextlib.ExitStack()
    try:
        if rules.by_id or rules.by_op:
            try:
                function_mode, dispatch_mode = _modes(guard)
            except ImportError:  # pragma: no cover - torch is a dependency
                pass
            else:
                stack.enter_context(function_mode)
                stack.enter_context(dispatch_mode)
        yield guard
    finally:
        try:
            stack.close()
        finally:
            with _LOCK:
                _restore(swapped)
                if guard in guards:
                    guards.remove(guard)


def _restore(swapped: list[types.FunctionType]) -> None:
    for fn in reversed(swapped):
        _swap_out(fn)
    swapped.clear()


# --------------------------------------------------------------------------------------------
# The static check
# --------------------------------------------------------------------------------------------

# Names of course_utils.exercises a workbook may use: the checker. Anything else there (the lesson
# modules, the registry, ``.reference``) leads to the answers.
_ALLOWED_EXERCISE_NAMES = {"check", "run_checks", "CheckReport"}


def _python_source(source: str) -> str:
    # IPython magics and shell lines are not Python; keep the line numbers.
    lines = []
    for line in source.split("\n"):
        stripped = line.lstrip()
        lines.append(line[: len(line) - len(stripped)] + "pass" if stripped.startswith(("%", "!")) else line)
    return "\n".join(lines)


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


class _Module:
    """What the scan knows about a notebook: its imports, top-level aliases and definitions."""

    def __init__(self, tree: ast.Module) -> None:
        self.aliases: dict[str, str] = {}
        self.defs: dict[str, list[ast.AST]] = {}
        self.functions: set[str] = set()  # names bound by a top-level def or class
        self.imports: list[tuple[str, int]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.imports.append((a.name, node.lineno))
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    else:
                        root = a.name.split(".")[0]
                        self.aliases.setdefault(root, root)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    self.imports.append((full, node.lineno))
                    self.aliases[a.asname or a.name] = full
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defs.setdefault(node.name, []).append(node)
                self.functions.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        self.defs.setdefault(t.id, []).append(node.value)
                        dotted = _dotted(node.value)
                        if dotted:
                            self.aliases[t.id] = self.expand(dotted)

    def expand(self, dotted: str) -> str:
        """Follow import aliases and top-level assignments: ``F.conv2d`` -> ``torch.nn.functional.conv2d``."""
        for _ in range(20):  # bounded: ``a = b`` and ``b = a`` must not loop
            head, _, rest = dotted.partition(".")
            target = self.aliases.get(head)
            if target is None or target == head:
                return dotted
            dotted = f"{target}.{rest}" if rest else target
        return dotted


def _same_object_names(forbidden: Iterable[str]) -> dict[int, str]:
    out = {}
    for name in forbidden:
        obj = _resolve(name)
        if obj is not None:
            out[id(obj)] = name
    return out


def _lookup_loaded(dotted: str) -> Any:
    """Resolve a dotted name through modules already imported here, importing nothing new."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        obj: Any = module
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except Exception:
            return None
        return obj
    return None


def scan_source(exercise: Any, source: str) -> list[str]:
    """Reasons why the learner's source for ``exercise`` uses what it may not (empty: clean).

    Only the definition of ``exercise.name`` and the notebook's top-level functions and classes
    it refers to (followed transitively) are scanned, so using ``F.conv2d`` elsewhere in the
    notebook costs nothing. Import aliases (``import torch.nn.functional as F``, ``from
    torch.nn.functional import conv2d as c``) and top-level assignments (``c = F.conv2d``) are
    followed. Any use of the exercise bank (``course_utils.exercises`` other than ``check``, or a
    ``.reference`` attribute) is reported too, wherever it is in the notebook.

    Parameters
    ----------
    exercise : Exercise
        Anything with ``name`` and ``forbidden``.
    source : str
        The learner's code: the notebook's code cells joined by blank lines. Cells that are not
        valid Python are skipped.

    Returns
    -------
    list of str
        One reason per forbidden name found, e.g. ``"the source of conv2d_forward uses F.conv2d,
        which is off-limits in this exercise"``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> ex = SimpleNamespace(name="f", forbidden=("torch.nn.functional.conv2d",))
    >>> scan_source(ex, "import torch.nn.functional as F\\ndef f(x, w):\\n    return F.conv2d(x, w)")
    ['the source of f uses F.conv2d (line 3), which is off-limits in this exercise']
    """
    name = str(getattr(exercise, "name", ""))
    forbidden = tuple(getattr(exercise, "forbidden", ()) or ())
    tree = _parse_cells(source)
    module = _Module(tree)
    reasons: list[str] = []

    def add(reason: str) -> None:
        if reason not in reasons:
            reasons.append(reason)

    # The bank, anywhere in the notebook.
    for imported, line in module.imports:
        if imported.startswith("course_utils.exercises"):
            leaf = imported[len("course_utils.exercises"):].lstrip(".")
            if leaf and leaf.split(".")[0] not in _ALLOWED_EXERCISE_NAMES:
                add(f"the notebook imports {imported} (line {line}), which holds the exercises' reference answers")

    forbidden_ids = _same_object_names(forbidden)
    # Names that mean the same operator: F.conv2d is torch.conv2d; nn.Conv2d.forward is reached
    # through the class itself.
    forbidden_atens: dict[str, str] = {}
    for n in forbidden:
        for op in _aten_for(n):
            forbidden_atens.setdefault(op, n)
    class_names = {n[: -len(".forward")]: n for n in forbidden if n.endswith(".forward")}

    todo = [name]
    seen: set[str] = set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        # The exercise's own name is followed wherever it is bound (``conv_out = shapes.conv_out``
        # too); the functions it calls only through their def, so a module-level variable that
        # happens to share a parameter's name (``weight = conv.weight``) is not pulled in.
        nodes = module.defs.get(current, []) if current == name else [
            n for n in module.defs.get(current, []) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        ]
        for node in nodes:
            local = _locally_bound(node)
            for sub in ast.walk(node):
                if isinstance(sub, ast.Attribute) and sub.attr == "reference":
                    add(f"the source of {name} reads a .reference attribute (line {sub.lineno}), the course's answer")
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    inner = _Module(ast.Module(body=[sub], type_ignores=[]))
                    module.aliases.update({k: v for k, v in inner.aliases.items() if k not in module.aliases})
                if not isinstance(sub, (ast.Attribute, ast.Name)):
                    continue
                dotted = _dotted(sub)
                if dotted is None or dotted.split(".")[0] in local:
                    continue  # a parameter or local variable, not the module-level name
                if isinstance(sub, ast.Name) and sub.id in module.functions and sub.id != current:
                    todo.append(sub.id)
                full = module.expand(dotted)
                hit = _match(full, forbidden, forbidden_ids, forbidden_atens, class_names)
                if hit:
                    add(f"the source of {name} uses {display_name(hit)} (line {sub.lineno}), which is off-limits in this exercise")
                elif full.startswith("course_utils.exercises") and full.split(".")[2:3] and full.split(".")[2] not in _ALLOWED_EXERCISE_NAMES:
                    add(f"the source of {name} uses {full} (line {sub.lineno}), which holds the exercises' reference answers")
    return reasons


def _locally_bound(node: ast.AST) -> set[str]:
    """Names a function or class binds itself: parameters, assignments, loop and ``with`` targets."""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
        return set()
    names = {a.arg for a in ast.walk(node) if isinstance(a, ast.arg)}
    names |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del))}
    names |= {n.name for n in ast.walk(node) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n is not node}
    names |= {h.name for h in ast.walk(node) if isinstance(h, ast.ExceptHandler) and h.name}
    # Imports inside the function bind names too, but they are what the scan must see: keep them out.
    return names


def _match(full: str, forbidden: tuple[str, ...], ids: dict[int, str], atens: dict[str, str], classes: dict[str, str]) -> str | None:
    for n in forbidden:
        if full == n or full.startswith(n + "."):
            return n
    if full in classes:
        return classes[full]
    if full.startswith("torch.ops."):
        parts = full.split(".")
        if len(parts) >= 4 and f"{parts[2]}::{parts[3]}" in atens:
            return atens[f"{parts[2]}::{parts[3]}"]
    root = full.split(".")[0]
    if root in ("torch", "course_utils", "scipy", "numpy") and ids:
        obj = _lookup_loaded(full)
        if obj is not None and id(obj) in ids:
            return ids[id(obj)]
    return None


def _parse_cells(source: str) -> ast.Module:
    try:
        return ast.parse(_python_source(source))
    except SyntaxError:
        pass
    # One cell that does not parse must not hide the others: parse the cells one by one, keeping
    # line numbers relative to the whole source.
    body: list[ast.stmt] = []
    offset = 0
    for chunk in source.split("\n\n\n"):
        try:
            tree = ast.parse(_python_source(chunk))
        except SyntaxError:
            offset += chunk.count("\n") + 3
            continue
        ast.increment_lineno(tree, offset)
        body.extend(tree.body)
        offset += chunk.count("\n") + 3
    return ast.Module(body=body, type_ignores=[])
