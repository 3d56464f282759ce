"""Plain-data encoding for what crosses between the grader and a submission's worker process.

The grader sends graded case arguments to the worker, and the worker sends the learner's outputs
back, as one JSON document plus ``.npy`` files in the same folder. Nothing is pickled: arrays are
written with ``numpy.save(allow_pickle=False)`` and read with ``numpy.load(allow_pickle=False)``,
and the reader rebuilds only these types:

=============  ==============================================  ===========================
Python value   JSON node                                       notes
=============  ==============================================  ===========================
None           ``{"t": "none"}``
bool           ``{"t": "bool", "v": true}``
int            ``{"t": "int", "v": "123"}``                    decimal text, any size up to
                                                               4000 digits
float          ``{"t": "float", "v": "0.1"}``                  ``repr`` text, so NaN, ±inf
                                                               and every bit survive
str            ``{"t": "str", "v": "..."}``
list / tuple   ``{"t": "list" | "tuple", "v": [...]}``
dict           ``{"t": "dict", "v": [["key", node], ...]}``    string keys only
numpy array    ``{"t": "ndarray", "f": "a0.npy"}``             numeric or bool dtypes only
torch tensor   ``{"t": "tensor", "f": "a1.npy", "dtype":       rebuilt as a CPU tensor of
               "float32", "grad": false}``                     that dtype
=============  ==============================================  ===========================

:func:`decode` is written for untrusted input (the worker runs a learner's code, which can
rewrite the files it hands back): it checks node types, nesting depth, the number of nodes and
array files, file names, file types and sizes, and refuses object arrays and symbolic links.

Examples
--------
>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> node = encode({"x": (1, 2.5), "y": None}, folder)
>>> decode(node, folder)
{'x': (1, 2.5), 'y': None}
"""
from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["EncodingError", "Limits", "encode", "decode", "write_json", "read_json"]

_MAX_DEPTH = 24
_INT_DIGITS = 4000


class EncodingError(ValueError):
    """Raised when a value cannot be encoded, or when encoded data is malformed or too large."""


@dataclass
class Limits:
    """Caps that :func:`decode` and :func:`read_json` enforce on untrusted data.

    Parameters
    ----------
    max_nodes : int
        Total number of JSON nodes in one document.
    max_arrays : int
        Number of ``.npy`` files one document may reference.
    max_file_bytes : int
        Size of one ``.npy`` file.
    max_json_bytes : int
        Size of one JSON document (``results.json``), read into memory whole.
    max_total_bytes : int
        Size of all ``.npy`` files read through this object together.
    owner_uid : int or None
        When set, every file read must be owned by this user id (the worker's), so a file the
        worker did not write (for example a hard link to someone else's file) is refused.
    """

    max_nodes: int = 1_000_000
    max_arrays: int = 10_000
    max_file_bytes: int = 512 << 20
    max_json_bytes: int = 64 << 20
    max_total_bytes: int = 2 << 30
    owner_uid: int | None = None
    _nodes: int = field(default=0, repr=False)
    _arrays: int = field(default=0, repr=False)
    _bytes: int = field(default=0, repr=False)


# --------------------------------------------------------------------------------------------
# Encoding (trusted side: the grader encodes cases; the worker encodes outputs)
# --------------------------------------------------------------------------------------------


class _Writer:
    def __init__(self, folder: str, prefix: str) -> None:
        self.folder = folder
        self.prefix = prefix
        self.count = 0

    def save(self, array: np.ndarray) -> str:
        name = f"{self.prefix}{self.count}.npy"
        self.count += 1
        path = os.path.join(self.folder, name)
        with open(path, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        return name


def encode(value: Any, folder: str, prefix: str = "a") -> dict:
    """Encode ``value`` as a JSON-ready node, writing its arrays as ``.npy`` files in ``folder``.

    Parameters
    ----------
    value : None, bool, int, float, str, list, tuple, dict, numpy.ndarray or torch.Tensor
        Dictionaries need string keys; arrays need a numeric or bool dtype.
    folder : str
        An existing folder for the array files.
    prefix : str
        Start of the array file names (``prefix0.npy``, ``prefix1.npy``, ...); it must be made
        of letters, digits, ``_`` and ``-`` so that every file name is one :func:`decode` accepts.

    Returns
    -------
    dict
        The JSON node.

    Raises
    ------
    EncodingError
        For any other type, an object array, a non-string key, or nesting deeper than 24.

    Examples
    --------
    >>> encode([1, 2.0], ".")
    {'t': 'list', 'v': [{'t': 'int', 'v': '1'}, {'t': 'float', 'v': '2.0'}]}
    """
    if not isinstance(folder, (str, os.PathLike)) or not os.path.isdir(folder):
        raise EncodingError(f"folder must be an existing directory, got {folder!r}")
    if not _safe_name(prefix + "0.npy"):
        raise EncodingError(f"prefix must be letters, digits, '_' or '-', got {prefix!r}")
    return _encode(value, _Writer(os.fspath(folder), prefix), 0)


def _encode(value: Any, writer: _Writer, depth: int) -> dict:
    if depth > _MAX_DEPTH:
        raise EncodingError(f"the value is nested more than {_MAX_DEPTH} levels deep")
    if value is None:
        return {"t": "none"}
    if isinstance(value, (bool, np.bool_)):
        return {"t": "bool", "v": bool(value)}
    if isinstance(value, (int, np.integer)):
        number = int(value)
        try:
            text = str(number)
        except ValueError:  # Python refuses to print integers with more than ~4300 digits
            raise EncodingError("an integer with more than 4000 digits is not an answer") from None
        if len(text.lstrip("-")) > _INT_DIGITS:
            raise EncodingError("an integer with more than 4000 digits is not an answer")
        return {"t": "int", "v": text}
    if isinstance(value, (float, np.floating)):
        return {"t": "float", "v": repr(float(value))}
    if isinstance(value, str):
        return {"t": "str", "v": str(value)}
    if isinstance(value, (list, tuple)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {"t": kind, "v": [_encode(v, writer, depth + 1) for v in value]}
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            if not isinstance(k, str):
                raise EncodingError(f"dictionary keys must be strings, got {type(k).__name__}")
            items.append([str(k), _encode(v, writer, depth + 1)])
        return {"t": "dict", "v": items}
    if isinstance(value, np.ndarray):
        return {"t": "ndarray", "f": writer.save(_numeric_array(value))}
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach().to("cpu")
        dtype = str(t.dtype).replace("torch.", "")
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()  # NumPy has no bfloat16; the dtype field restores it
        return {"t": "tensor", "f": writer.save(_numeric_array(t.numpy())), "dtype": dtype, "grad": bool(value.requires_grad)}
    raise EncodingError(f"a {type(value).__module__}.{type(value).__qualname__} cannot be sent as plain data")


def _numeric_array(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise EncodingError(f"only numeric or bool arrays can be sent, got dtype {array.dtype}")
    # A copy of the base class: an ndarray subclass brings no methods across
    return np.array(array, copy=True, subok=False)


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    return torch


# --------------------------------------------------------------------------------------------
# Decoding (untrusted side)
# --------------------------------------------------------------------------------------------


def _safe_name(name: Any) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name) <= 64
        and name.endswith(".npy")
        and all(c.isascii() and (c.isalnum() or c in "_-.") for c in name)
        and not name.startswith(".")
        and "/" not in name
    )


def _open_regular(folder: str, name: str, limits: Limits, cap: int | None = None) -> tuple[int, int]:
    """Open ``folder/name`` without following links; return (fd, size) of a regular file."""
    cap = limits.max_file_bytes if cap is None else cap
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    info = os.fstat(fd)
    problem = ""
    if not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file"
    elif info.st_nlink != 1:
        problem = "has other hard links"
    elif limits.owner_uid is not None and info.st_uid != limits.owner_uid:
        problem = "was not written by the worker"
    elif info.st_size > cap:
        problem = f"is larger than {cap >> 20} MB"
    if problem:
        os.close(fd)
        raise EncodingError(f"{name} {problem}")
    return fd, info.st_size


def read_json(folder: str, name: str, limits: Limits | None = None) -> Any:
    """Read one JSON file written by the other process, with the checks of :func:`decode`.

    Raises
    ------
    EncodingError
        If the file is missing, not a regular file, too large, or not valid JSON.
    """
    limits = limits or Limits()
    try:
        fd, size = _open_regular(folder, name, limits, limits.max_json_bytes)
    except OSError as exc:
        raise EncodingError(f"cannot read {name}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        # Never more than the cap, even if the file grows after the size check.
        data = fh.read(min(size, limits.max_json_bytes) + 1)
    if len(data) > limits.max_json_bytes:
        raise EncodingError(f"{name} is larger than {limits.max_json_bytes >> 20} MB")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise EncodingError(f"{name} is not valid JSON: {str(exc)[:100]}") from None


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def write_json(folder: str, name: str, data: Any) -> None:
    """Write ``data`` as JSON to ``folder/name`` atomically (a temporary file, then ``os.replace``)."""
    path = os.path.join(folder, name)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, allow_nan=False)
    os.replace(tmp, path)


def decode(node: Any, folder: str, limits: Limits | None = None, tensors: bool = True) -> Any:
    """Rebuild a value from a node made by :func:`encode`, reading arrays from ``folder``.

    Parameters
    ----------
    node : dict
        The JSON node.
    folder : str
        Where the node's ``.npy`` files are.
    limits : Limits, optional
        Caps on size and ownership; the defaults are generous but finite.
    tensors : bool
        Rebuild ``"tensor"`` nodes as torch tensors (the worker, which passes them to the
        learner's function) or as NumPy arrays (the grader, which only compares).

    Returns
    -------
    The value: only None, bool, int, float, str, list, tuple, dict, ndarray or tensor.

    Raises
    ------
    EncodingError
        For anything malformed, too large or unsafe.
    """
    limits = limits or Limits()
    return _decode(node, os.fspath(folder), limits, tensors, 0)


def _decode(node: Any, folder: str, limits: Limits, tensors: bool, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise EncodingError(f"data nested more than {_MAX_DEPTH} levels deep")
    limits._nodes += 1
    if limits._nodes > limits.max_nodes:
        raise EncodingError(f"more than {limits.max_nodes} values")
    if not isinstance(node, dict) or not isinstance(node.get("t"), str):
        raise EncodingError("malformed node: expected an object with a type tag")
    kind = node["t"]
    v = node.get("v")
    if kind == "none":
        return None
    if kind == "bool":
        if not isinstance(v, bool):
            raise EncodingError("malformed bool node")
        return v
    if kind == "int":
        if not isinstance(v, str) or not 0 < len(v.lstrip("-")) <= _INT_DIGITS or not v.lstrip("-").isdigit() or not v.isascii():
            raise EncodingError("malformed int node")
        return int(v)
    if kind == "float":
        if not isinstance(v, str) or len(v) > 40:
            raise EncodingError("malformed float node")
        try:
            number = float(v)
        except ValueError:
            raise EncodingError("malformed float node") from None
        return number if not math.isnan(number) else math.nan
    if kind == "str":
        if not isinstance(v, str):
            raise EncodingError("malformed str node")
        return v
    if kind in ("list", "tuple"):
        if not isinstance(v, list):
            raise EncodingError(f"malformed {kind} node")
        items = [_decode(x, folder, limits, tensors, depth + 1) for x in v]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        if not isinstance(v, list):
            raise EncodingError("malformed dict node")
        out: dict[str, Any] = {}
        for pair in v:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                raise EncodingError("malformed dict item")
            out[pair[0]] = _decode(pair[1], folder, limits, tensors, depth + 1)
        return out
    if kind in ("ndarray", "tensor"):
        array = _load_array(node.get("f"), folder, limits)
        if kind == "tensor" and tensors:
            return _to_tensor(array, node.get("dtype"), node.get("grad"))
        return array
    raise EncodingError(f"unknown node type {kind!r}")


def _load_array(name: Any, folder: str, limits: Limits) -> np.ndarray:
    if not _safe_name(name):
        raise EncodingError(f"bad array file name {str(name)[:80]!r}")
    limits._arrays += 1
    if limits._arrays > limits.max_arrays:
        raise EncodingError(f"more than {limits.max_arrays} arrays")
    try:
        fd, size = _open_regular(folder, name, limits)
    except OSError as exc:
        raise EncodingError(f"cannot read {name}: {exc.strerror or exc}") from None
    limits._bytes += size
    if limits._bytes > limits.max_total_bytes:
        os.close(fd)
        raise EncodingError(f"the arrays together are larger than {limits.max_total_bytes >> 20} MB")
    with os.fdopen(fd, "rb") as fh:
        try:
            _check_header(fh, name, size)
            array = np.load(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError, MemoryError) as exc:
            raise EncodingError(f"{name} is not a valid .npy file: {str(exc)[:100]}") from None
    if not isinstance(array, np.ndarray) or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise EncodingError(f"{name} does not hold a numeric array")
    return array


def _check_header(fh: Any, name: str, size: int) -> None:
    """Refuse an array whose header promises more data than the file holds, before allocating.

    ``np.load`` allocates ``shape × itemsize`` bytes from the header first; a 200-byte file that
    claims 1 TiB would raise ``MemoryError`` in the grader.
    """
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(fh, max_header_size=10000)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(fh, max_header_size=10000)
    else:
        raise EncodingError(f"{name}: unsupported .npy version {version}")
    if dtype.hasobject or not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise EncodingError(f"{name} does not hold a numeric array")
    count = 1
    for dim in shape:
        if not isinstance(dim, int) or dim < 0:
            raise EncodingError(f"{name}: malformed shape in its header")
        count *= dim
    needed = count * dtype.itemsize
    if needed > size - fh.tell():
        raise EncodingError(f"{name} claims {needed} bytes of data but the file holds {size - fh.tell()}")
    fh.seek(0)


_TENSOR_DTYPES = {
    "float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool",
    "complex64", "complex128",
}


def _to_tensor(array: np.ndarray, dtype: Any, grad: Any) -> Any:
    torch = _torch()
    if dtype not in _TENSOR_DTYPES:
        raise EncodingError(f"unsupported tensor dtype {str(dtype)[:40]!r}")
    t = torch.from_numpy(np.array(array, copy=True)).to(getattr(torch, dtype))
    if grad is True:
        t.requires_grad_(True)
    return t
