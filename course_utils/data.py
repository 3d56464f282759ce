"""Data for the lessons: sample photos for the early lessons and CIFAR-10 from wherever it is.

The photos come from the sample data that matplotlib installs, so lessons 01-04 never touch the
network or the disk outside the Python environment.

CIFAR-10 is searched in an explicit ``root``, then ``$COURSE_DATA``, then the user cache
(:func:`cache_dir`); each place may hold torchvision's ``cifar-10-batches-py/`` or an ImageFolder
copy (PNG or JPEG files). The images are decoded once and cached as uint8 tensors in one file, which
later loads read in a fraction of a second; ``course data --prepare`` also leaves them in the cache as
``cifar10-prepared.pt``, so they are found later with no environment variable set. Without data (and without network) the loader says where it looked and
what fixes it, or, when asked, returns a synthetic stand-in that names itself in every output.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import math
import os
import pickle
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .train import grading_mode, quick_mode

__all__ = [
    "sample_image",
    "sample_image_names",
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "Cifar10",
    "DataLocation",
    "DataError",
    "DataNotFoundError",
    "CorruptDataError",
    "DownloadError",
    "cache_dir",
    "search_places",
    "locate_cifar10",
    "load_cifar10",
    "download_cifar10",
    "prepare_cifar10",
    "synthetic_cifar10",
    "normalize",
    "denormalize",
    "add_parser",
    "run_data_command",
]

CIFAR10_CLASSES: list[str] = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]
# Per-channel statistics of the 50,000 CIFAR-10 training images, pixel values scaled to [0, 1].
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)

# Short names for the photos matplotlib ships in mpl-data/sample_data.
_SAMPLE_FILES: dict[str, str] = {
    "grace_hopper": "grace_hopper.jpg",
    "gift_box": "Minduka_Present_Blue_Pack.png",
    "matplotlib_logo": "logo2.png",
}


def sample_image_names() -> list[str]:
    """Names accepted by :func:`sample_image`.

    Returns
    -------
    list of str
        The available photo names, sorted.

    Examples
    --------
    >>> "grace_hopper" in sample_image_names()
    True
    """
    return sorted(_SAMPLE_FILES)


def _parse_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, bool):
        raise TypeError(f"size must be an int or a (height, width) pair, got {size!r}")
    if isinstance(size, int):
        pair = (size, size)
    elif isinstance(size, (tuple, list)) and len(size) == 2 and all(
        isinstance(s, int) and not isinstance(s, bool) for s in size
    ):
        pair = (int(size[0]), int(size[1]))
    else:
        raise TypeError(f"size must be an int or a (height, width) pair of ints, got {size!r}")
    if min(pair) < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return pair


def sample_image(name: str = "grace_hopper", size: int | Sequence[int] | None = None) -> torch.Tensor:
    """A photo from matplotlib's sample data as a float tensor, channels first.

    Parameters
    ----------
    name : str
        One of :func:`sample_image_names` (``"grace_hopper"``, ``"gift_box"``,
        ``"matplotlib_logo"``).
    size : int or (int, int), optional
        ``None`` keeps the original size. An int ``s`` crops the central square and resizes it to
        ``s x s`` (so faces are not squashed); a pair ``(h, w)`` resizes the whole photo to exactly
        that. Resizing is antialiased, so shrinking does not alias.

    Returns
    -------
    torch.Tensor
        Float32 tensor of shape ``3 x H x W`` with values in ``[0, 1]``. Transparent pixels are
        composited onto white.

    Examples
    --------
    >>> img = sample_image("grace_hopper", size=64)
    >>> tuple(img.shape)
    (3, 64, 64)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, one of {sample_image_names()}, got {type(name).__name__}")
    if name not in _SAMPLE_FILES:
        raise ValueError(f"name={name!r} is not a sample image; choose one of {sample_image_names()}")
    pair = _parse_size(size)

    from matplotlib import cbook
    from PIL import Image

    path = cbook.get_sample_data(_SAMPLE_FILES[name], asfileobj=False)
    with Image.open(path) as im:
        if im.mode in ("RGBA", "LA", "P"):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            rgb = Image.alpha_composite(white, rgba).convert("RGB")
        else:
            rgb = im.convert("RGB")
        array = np.asarray(rgb, dtype=np.uint8).copy()
    img = torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)

    if pair is None:
        return img.contiguous()
    if isinstance(size, int):
        h, w = img.shape[1:]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        img = img[:, top:top + side, left:left + side]
    out = torch.nn.functional.interpolate(
        img.unsqueeze(0), size=pair, mode="bilinear", align_corners=False, antialias=True
    )[0]
    # Bilinear interpolation stays inside the input range up to rounding; clamp the rounding away.
    return out.clamp_(0.0, 1.0).contiguous()


# ============================================================================================
# CIFAR-10: where it is
# ============================================================================================

BATCH_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
IMAGE_SIZE = 32
# Files that operating systems drop into folders; they are not images and are skipped.
_JUNK_FILES = {"Thumbs.db", "desktop.ini"}
_CACHE_FORMAT = 2
DOWNLOAD_FIX = "course data --download"
COURSE_DATA_FIX = "export COURSE_DATA=/path/to/cifar10"
# The python version of CIFAR-10 that torchvision downloads, for fetching it by hand.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# Image files an ImageFolder copy may hold (anything PIL reads works; these are what people have).
IMAGE_PATTERNS = "*.png or *.jpg"
# `course data --prepare` leaves the decoded tensors here, in the cache, so that they are found
# later with no environment variable set (the cache is the last place searched).
PREPARED_FILE = "cifar10-prepared.pt"


class DataError(Exception):
    """Base class of the data errors raised by :mod:`course_utils.data`."""


class DataNotFoundError(DataError, FileNotFoundError):
    """No copy of CIFAR-10 in any searched place (the message lists them and gives the fix)."""


class CorruptDataError(DataError, ValueError):
    """A copy of CIFAR-10 was found but is damaged or incomplete (the message names the file)."""


class DownloadError(DataError, OSError):
    """Downloading CIFAR-10 through torchvision failed (usually: no network)."""


def cache_dir() -> Path:
    """The folder where the course keeps downloads and decoded tensors.

    ``COURSE_CACHE`` if set, else ``$XDG_CACHE_HOME/course_utils``, else
    ``~/.cache/course_utils``. The folder is not created here.

    Returns
    -------
    pathlib.Path
        Absolute path of the cache folder.

    Examples
    --------
    >>> cache_dir().is_absolute()
    True
    """
    env = os.environ.get("COURSE_CACHE")
    if env:
        return Path(env).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "course_utils").absolute()


def _labelled_places(root: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    candidates: list[tuple[Path, str]] = []
    if root is not None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path (str or os.PathLike), got {type(root).__name__}")
        candidates.append((Path(root).expanduser().absolute(), "the root argument"))
    env = os.environ.get("COURSE_DATA")
    if env:
        candidates.append((Path(env).expanduser().absolute(), "COURSE_DATA"))
    candidates.append((cache_dir(), "the course cache"))
    seen: set[str] = set()
    unique = []
    for path, label in candidates:
        key = os.path.normcase(os.path.normpath(str(path)))
        if key not in seen:
            seen.add(key)
            unique.append((path, label))
    return unique


def search_places(root: str | os.PathLike | None = None) -> list[Path]:
    """The places searched for CIFAR-10, in order, without duplicates.

    Parameters
    ----------
    root : str or path-like, optional
        An explicit folder, searched first.

    Returns
    -------
    list of pathlib.Path
        ``root`` (if given), ``$COURSE_DATA`` (if set), then :func:`cache_dir`.

    Examples
    --------
    >>> search_places()[-1] == cache_dir()
    True
    """
    return [path for path, _ in _labelled_places(root)]


@dataclass(frozen=True)
class DataLocation:
    """A copy of CIFAR-10 found on disk (checked for structure, not decoded).

    Attributes
    ----------
    path : pathlib.Path
        The ``cifar-10-batches-py`` folder, or the folder holding ``train/`` and ``test/``.
    layout : {"batches", "imagefolder", "prepared"}
        torchvision's pickled batches, one image file per picture in class folders, or the
        decoded-tensor file that ``course data --prepare`` leaves in the cache (``path`` is that file).
    """

    path: Path
    layout: str

    def __str__(self) -> str:
        if self.layout == "prepared":
            return f"{self.path} (decoded tensors written by `course data --prepare`)"
        if self.layout == "batches":
            return f"{self.path} (torchvision layout: {BATCH_FOLDER} with data_batch_1-5 and test_batch)"
        return f"{self.path} (ImageFolder layout: train/ and test/ with 10 class folders)"


def _visible(name: str) -> bool:
    return not name.startswith(".") and name not in _JUNK_FILES


def _check_batches(folder: Path) -> None:
    missing = [name for name in (*TRAIN_BATCHES, TEST_BATCH) if not (folder / name).is_file()]
    if missing:
        raise CorruptDataError(
            f"incomplete CIFAR-10 batches in {folder}: missing {', '.join(missing)}. "
            f"Delete the folder and run: {DOWNLOAD_FIX}"
        )
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        if (folder / name).stat().st_size == 0:
            raise CorruptDataError(f"empty CIFAR-10 batch file {folder / name}. Delete the folder and run: {DOWNLOAD_FIX}")


def _check_imagefolder(place: Path) -> None:
    for split in ("train", "test"):
        split_dir = place / split
        if not split_dir.is_dir():
            other = "test" if split == "train" else "train"
            raise CorruptDataError(
                f"incomplete ImageFolder copy of CIFAR-10 in {place}: it has {other}/ but no {split}/ folder"
            )
        present = {entry.name for entry in os.scandir(split_dir) if entry.is_dir() and _visible(entry.name)}
        missing = [name for name in CIFAR10_CLASSES if name not in present]
        if missing:
            raise CorruptDataError(
                f"incomplete ImageFolder copy of CIFAR-10: missing class folder(s) "
                f"{', '.join(str(split_dir / m) for m in missing)} (all 10 are needed: {', '.join(CIFAR10_CLASSES)})"
            )
        extra = sorted(present - set(CIFAR10_CLASSES))
        if extra:
            raise CorruptDataError(
                f"unexpected folder(s) {', '.join(str(split_dir / e) for e in extra)}: a CIFAR-10 ImageFolder copy "
                f"has exactly the class folders {', '.join(CIFAR10_CLASSES)}; move the others out"
            )
        for name in CIFAR10_CLASSES:
            with os.scandir(split_dir / name) as entries:
                if not any(_visible(entry.name) for entry in entries):
                    raise CorruptDataError(f"empty class folder {split_dir / name}: it holds no images")


def _inspect_place(place: Path) -> DataLocation | None:
    if not place.is_dir():
        return None
    for candidate in (place, place / BATCH_FOLDER):
        if candidate.is_dir() and (
            candidate.name == BATCH_FOLDER or any((candidate / n).exists() for n in (*TRAIN_BATCHES, TEST_BATCH))
        ):
            _check_batches(candidate)
            return DataLocation(candidate, "batches")
    if (place / "train").is_dir() or (place / "test").is_dir():
        _check_imagefolder(place)
        return DataLocation(place, "imagefolder")
    if (place / PREPARED_FILE).is_file():
        return DataLocation(place / PREPARED_FILE, "prepared")
    return None


def locate_cifar10(root: str | os.PathLike | None = None) -> DataLocation | None:
    """Find a usable copy of CIFAR-10 without decoding it.

    Looks in :func:`search_places` order. In each place it accepts torchvision's
    ``cifar-10-batches-py/`` (the place itself or a child folder of it), an ImageFolder layout
    (``train/<class>/*`` and ``test/<class>/*`` with all 10 classes, PNG or JPEG files), or the
    decoded tensors that ``course data --prepare`` left there (``cifar10-prepared.pt``, in the
    cache). Only the structure is checked: the batch files exist, or the 20 class folders exist
    and are not empty.

    Parameters
    ----------
    root : str or path-like, optional
        A folder to search before ``COURSE_DATA`` and the cache.

    Returns
    -------
    DataLocation or None
        The first copy found; ``None`` when no place holds one.

    Raises
    ------
    CorruptDataError
        A place holds a damaged copy (missing batch file, missing or empty class folder).

    Examples
    --------
    >>> loc = locate_cifar10("/no/such/folder")  # then COURSE_DATA, then the cache
    """
    for place, _ in _labelled_places(root):
        found = _inspect_place(place)
        if found is not None:
            return found
    return None


def _not_found_message(root: str | os.PathLike | None, download_error: Exception | None = None) -> str:
    lines = ["CIFAR-10 was not found. Looked in, in this order:"]
    for i, (place, label) in enumerate(_labelled_places(root), 1):
        state = "" if place.exists() else ", does not exist"
        lines.append(f"  {i}. {place} ({label}{state})")
    lines.append(
        f"Each place may hold torchvision's {BATCH_FOLDER}/ folder or an ImageFolder copy "
        f"(train/<class>/{IMAGE_PATTERNS} and test/<class>/{IMAGE_PATTERNS})."
    )
    if download_error is not None:
        lines.append(f"Downloading failed too: {download_error}")
    else:
        lines.append(
            f"Fix: run `{DOWNLOAD_FIX}` (or `python -m course_utils.data --download`), "
            f"or point the course at a copy you have: `{COURSE_DATA_FIX}`."
        )
    return "\n".join(lines)


def _offline_fix(target: Path) -> str:
    """What to do by hand when torchvision cannot download: what to fetch and where to unpack it."""
    return (
        f"Without network here: fetch {CIFAR10_URL} (163 MB) on a machine that has it, copy it here and "
        f"unpack it into {target} (`tar -xzf cifar-10-python.tar.gz -C {target}`), so that "
        f"{target / BATCH_FOLDER / 'data_batch_1'} exists; the course finds it there with no variable set. "
        f"Or point the course at a copy you already have: `{COURSE_DATA_FIX}`"
    )


# ============================================================================================
# CIFAR-10: reading the two layouts
# ============================================================================================


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild NumPy arrays and nothing else.

    Pickle is used here only because it is the official format of CIFAR-10's python version, and
    only for files inside the data folder; refusing every other global means a tampered batch file
    cannot run code.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch file")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            # NumPy 2 renamed numpy.core; the official files were written long before.
            module = "numpy._core." + module[len("numpy.core."):]
        return super().find_class(module, name)


def _read_batch_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            raw = _NumpyOnlyUnpickler(fh, encoding="bytes").load()
    except Exception as exc:
        raise CorruptDataError(
            f"cannot read CIFAR-10 batch file {path} ({type(exc).__name__}: {exc}); it is truncated or damaged. "
            f"Delete its folder and run: {DOWNLOAD_FIX}"
        ) from exc
    if not isinstance(raw, dict):
        raise CorruptDataError(f"CIFAR-10 batch file {path} does not hold a dict; it is not a CIFAR-10 batch")
    batch = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in raw.items()}
    if "data" not in batch or "labels" not in batch:
        raise CorruptDataError(f"CIFAR-10 batch file {path} lacks 'data' or 'labels'; it is not a CIFAR-10 batch")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    pixels = 3 * IMAGE_SIZE * IMAGE_SIZE
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels:
        raise CorruptDataError(
            f"CIFAR-10 batch file {path}: 'data' should be uint8 rows of {pixels} values (3x32x32), "
            f"got {data.dtype} with shape {data.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise CorruptDataError(
            f"CIFAR-10 batch file {path}: {data.shape[0]} images but {labels.shape[0] if labels.ndim else 0} labels"
        )
    if data.shape[0] == 0:
        raise CorruptDataError(f"CIFAR-10 batch file {path} holds no images")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES):
        raise CorruptDataError(f"CIFAR-10 batch file {path}: labels must be integers 0-9")
    return data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE), labels.astype(np.int64)


def _batch_classes(folder: Path) -> list[str]:
    meta = folder / "batches.meta"
    if not meta.is_file():
        return list(CIFAR10_CLASSES)
    try:
        with open(meta, "rb") as fh:
            raw = _NumpyOnlyUnpickler(fh, encoding="bytes").load()
        names = raw.get(b"label_names", raw.get("label_names"))
        names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    except Exception as exc:
        raise CorruptDataError(f"cannot read {meta} ({type(exc).__name__}: {exc}); it is truncated or damaged") from exc
    if len(names) != len(CIFAR10_CLASSES):
        raise CorruptDataError(f"{meta} names {len(names)} classes, CIFAR-10 has {len(CIFAR10_CLASSES)}")
    return names


def _read_batches(folder: Path) -> dict[str, Any]:
    """Decode torchvision's cifar-10-batches-py folder into uint8 / int64 tensors."""
    parts = [_read_batch_file(folder / name) for name in TRAIN_BATCHES]
    test_x, test_y = _read_batch_file(folder / TEST_BATCH)
    return {
        "train_images": torch.from_numpy(np.concatenate([p[0] for p in parts])),
        "train_labels": torch.from_numpy(np.concatenate([p[1] for p in parts])),
        "test_images": torch.from_numpy(np.ascontiguousarray(test_x)),
        "test_labels": torch.from_numpy(test_y),
        "classes": _batch_classes(folder),
    }


def _scan_imagefolder(place: Path) -> tuple[dict[str, list[tuple[str, int]]], str]:
    """Image files of each split as (path, label) in class then file-name order, and a fingerprint.

    One ``os.scandir`` pass gives both: the fingerprint (names, sizes, modification times) changes
    when a file is added, removed, renamed, resized or touched, and costs no extra system calls.
    """
    listing: dict[str, list[tuple[str, int]]] = {}
    digest = hashlib.sha256()
    count = 0
    for split in ("train", "test"):
        items: list[tuple[str, int]] = []
        for label, name in enumerate(CIFAR10_CLASSES):
            folder = place / split / name
            files = []
            with os.scandir(folder) as entries:
                for entry in entries:
                    if not _visible(entry.name):
                        continue
                    if entry.is_dir():
                        raise CorruptDataError(f"unexpected folder {entry.path}: class folders hold image files only")
                    st = entry.stat()
                    files.append((entry.name, st.st_size, st.st_mtime_ns))
            if not files:
                raise CorruptDataError(f"empty class folder {folder}: it holds no images")
            files.sort()
            prefix = f"{split}/{name}/"
            digest.update("".join(f"{prefix}{f}\0{size}\0{mtime}\n" for f, size, mtime in files).encode())
            count += len(files)
            base = str(folder) + os.sep
            items.extend((base + f, label) for f, _, _ in files)
        listing[split] = items
    return listing, f"{count}:{digest.hexdigest()}"


def _decode_one_pil(data: bytes) -> torch.Tensor:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def _torchvision_jpeg_decoder():
    """torchvision's batched JPEG decoder (about 3x faster than PIL here), or None where it is gone.

    torchvision 0.29 deprecated its image decoders; PIL reads the same files when they disappear.
    """
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:
        return None
    return lambda buffers: decode_jpeg(buffers, mode=ImageReadMode.RGB)


def _decode_chunk(items: list[tuple[str, int]]) -> torch.Tensor:
    decode_jpeg = _torchvision_jpeg_decoder()
    raw = []
    for path, _ in items:
        try:
            with open(path, "rb") as fh:
                raw.append(fh.read())
        except OSError as exc:
            raise CorruptDataError(f"cannot read image file {path}: {exc}") from exc
    out = torch.empty((len(items), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8)
    jpeg_idx = [i for i, b in enumerate(raw) if b[:3] == b"\xff\xd8\xff"] if decode_jpeg else []
    decoded: dict[int, torch.Tensor] = {}
    if jpeg_idx:
        buffers = [torch.frombuffer(bytearray(raw[i]), dtype=torch.uint8) for i in jpeg_idx]
        try:
            for i, img in zip(jpeg_idx, decode_jpeg(buffers)):
                decoded[i] = img
        except RuntimeError:
            # One bad file spoils the whole batched call; decode one by one to name it.
            for i, buf in zip(jpeg_idx, buffers):
                try:
                    decoded[i] = decode_jpeg(buf)
                except RuntimeError as exc:
                    raise CorruptDataError(f"image file {items[i][0]} does not decode: {exc}") from exc
    for i, data in enumerate(raw):
        if i in decoded:
            continue
        try:
            decoded[i] = _decode_one_pil(data)
        except Exception as exc:
            raise CorruptDataError(f"image file {items[i][0]} does not decode ({type(exc).__name__}: {exc})") from exc
    for i, img in decoded.items():
        if tuple(img.shape) != (3, IMAGE_SIZE, IMAGE_SIZE):
            h, w = img.shape[-2:]
            raise CorruptDataError(f"image file {items[i][0]} is {w}x{h} pixels; CIFAR-10 images are 32x32")
        out[i] = img
    return out


def _decode_imagefolder(place: Path, listing: dict[str, list[tuple[str, int]]] | None = None) -> dict[str, Any]:
    """Decode an ImageFolder copy (JPEG in batches through torchvision, anything else through PIL).

    The files come in class order; they are shuffled once with a fixed seed, as torchvision's
    batches are, so that any slice such as ``test_images[:1000]`` holds every class.
    """
    listing = listing if listing is not None else _scan_imagefolder(place)[0]
    result: dict[str, Any] = {"classes": list(CIFAR10_CLASSES)}
    workers = max(1, min(4, os.cpu_count() or 1))
    for split in ("train", "test"):
        items = listing[split]
        chunks = [items[i:i + 1024] for i in range(0, len(items), 1024)]
        with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=workers) as pool:
            # torchvision warns on every call that its decoders are deprecated; the fallback is PIL.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torchvision\.io")
            # Decoding releases the GIL, so threads use every core without copying data around.
            parts = list(pool.map(_decode_chunk, chunks))
        images = torch.cat(parts)
        labels = torch.tensor([label for _, label in items], dtype=torch.int64)
        order = torch.randperm(len(items), generator=torch.Generator().manual_seed(0))
        result[f"{split}_images"] = images[order].contiguous()
        result[f"{split}_labels"] = labels[order]
    return result


# ============================================================================================
# CIFAR-10: the decoded-tensor cache
# ============================================================================================


def _batches_fingerprint(folder: Path) -> str:
    """Changes when a batch file is replaced, resized or touched."""
    parts = []
    for name in (*TRAIN_BATCHES, TEST_BATCH, "batches.meta"):
        path = folder / name
        if path.exists():
            st = path.stat()
            parts.append(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n")
    return f"{len(parts)}:{hashlib.sha256(''.join(parts).encode()).hexdigest()}"


def _cache_file(location: DataLocation) -> Path:
    key = hashlib.sha256(f"{location.path}\0{location.layout}".encode()).hexdigest()[:16]
    return cache_dir() / "tensors" / f"cifar10-{key}.pt"


def _read_cache(path: Path, fingerprint: str | None) -> dict[str, Any] | None:
    """The cached tensors, or None if missing, damaged or stale (``fingerprint=None``: any source)."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None  # a half-written or foreign file is ignored and rebuilt
    try:
        if payload.get("format") != _CACHE_FORMAT or (fingerprint is not None and payload.get("fingerprint") != fingerprint):
            return None
        for split in ("train", "test"):
            images, labels = payload[f"{split}_images"], payload[f"{split}_labels"]
            if images.dtype != torch.uint8 or images.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE):
                return None
            if labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
                return None
        if len(payload["classes"]) != len(CIFAR10_CLASSES):
            return None
    except (AttributeError, KeyError, TypeError):
        return None
    return payload


def _write_cache(path: Path, payload: dict[str, Any]) -> bool:
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        # os.replace is atomic: a reader sees the old file or the new one, never half of one.
        os.replace(tmp_name, path)
        return True
    except OSError as exc:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
        warnings.warn(f"could not write the CIFAR-10 cache {path} ({exc}); data will be decoded again next time", stacklevel=3)
        return False


# ============================================================================================
# CIFAR-10: the public loader
# ============================================================================================


@dataclass(eq=False, repr=False)
class Cifar10:
    """CIFAR-10 (or its labelled synthetic stand-in) as tensors in memory.

    Attributes
    ----------
    train_images, test_images : torch.Tensor
        uint8, ``N x 3 x 32 x 32`` (use :func:`normalize` to get floats for a model).
    train_labels, test_labels : torch.Tensor
        int64, ``N``, values ``0-9`` indexing ``classes``.
    classes : list of str
        Class names in label order.
    source : str
        Where the data came from and in which layout (starts with ``SYNTHETIC`` for the stand-in).
    synthetic : bool
        True for the stand-in made when no copy could be found.
    cache_file : pathlib.Path or None
        The decoded-tensor cache used or written, if any.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    source: str
    synthetic: bool = False
    cache_file: Path | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes (10)."""
        return len(self.classes)

    def __repr__(self) -> str:
        n_train, n_test = len(self.train_labels), len(self.test_labels)
        return f"Cifar10(train={n_train:,}, test={n_test:,}, classes={len(self.classes)}, source={self.source})"

    __str__ = __repr__


def load_cifar10(
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    allow_synthetic: bool = False,
    cache: bool = True,
) -> Cifar10:
    """Load CIFAR-10 as uint8 tensors, from wherever it is.

    Searches an explicit ``root``, then ``$COURSE_DATA``, then :func:`cache_dir`; each may hold
    torchvision's ``cifar-10-batches-py/`` or an ImageFolder copy (``train/<class>/*``,
    ``test/<class>/*``). The first load decodes the images and writes them to one cache file; later
    loads read that file (well under a second) for as long as the source files are unchanged.
    Under ``course grade`` and in quick mode (``COURSE_GRADING=1`` or ``COURSE_QUICK=1``) only the
    first ``SHORT_RUN_TRAIN_IMAGES`` training and ``SHORT_RUN_TEST_IMAGES`` test images are kept
    (``source`` says so): there the cells only have to run.

    Parameters
    ----------
    root : str or path-like, optional
        Folder searched first.
    download : bool
        If no copy is found, download it through torchvision into :func:`cache_dir`.
    allow_synthetic : bool
        If no copy is found (and downloading is off or failed), return a small seeded synthetic
        stand-in with ``synthetic=True`` and a ``source`` that says so, instead of raising.
    cache : bool
        Read and write the decoded-tensor cache. ``False`` decodes every time.

    Returns
    -------
    Cifar10
        Images ``N x 3 x 32 x 32`` uint8, labels int64, class names, and where they came from.

    Raises
    ------
    DataNotFoundError
        No copy found and no stand-in allowed; the message lists the places searched and the fix.
    CorruptDataError
        A copy was found but a file is truncated, does not decode, or has the wrong size, or a class
        folder is missing or empty; the message names the file or folder.

    Examples
    --------
    >>> data = load_cifar10(allow_synthetic=True)  # doctest: +SKIP
    >>> data.train_images.shape  # doctest: +SKIP
    torch.Size([50000, 3, 32, 32])
    """
    for flag_name, flag in (("download", download), ("allow_synthetic", allow_synthetic), ("cache", cache)):
        if not isinstance(flag, bool):
            raise TypeError(f"{flag_name} must be True or False, got {flag!r}")
    location = locate_cifar10(root)
    download_error: Exception | None = None
    if location is None and download:
        try:
            location = download_cifar10()
        except DownloadError as exc:
            download_error = exc
    if location is None:
        if allow_synthetic:
            reason = "CIFAR-10 not found" + (" and the download failed" if download_error else "")
            return synthetic_cifar10(reason=f"{reason}; run `{DOWNLOAD_FIX}` or `{COURSE_DATA_FIX}`")
        raise DataNotFoundError(_not_found_message(root, download_error))
    loaded = _load_location(location, cache=cache)
    return _first_images_in_short_runs(loaded)


# Under `course grade` and in quick mode (COURSE_GRADING=1, COURSE_QUICK=1) a lesson's cells only
# have to run, not to measure anything: the loader keeps this many images, as many as the
# synthetic stand-in has, so that a lesson evaluating on the whole test set does not spend a
# minute per graded notebook on it.
SHORT_RUN_TRAIN_IMAGES = 5000
SHORT_RUN_TEST_IMAGES = 1000


def _first_images_in_short_runs(loaded: Cifar10) -> Cifar10:
    if not (grading_mode() or quick_mode()) or (len(loaded.train_labels) <= SHORT_RUN_TRAIN_IMAGES
                     and len(loaded.test_labels) <= SHORT_RUN_TEST_IMAGES):
        return loaded
    # The stored order is already shuffled across classes, so the first images are a fair sample.
    # Copies, so that the full tensors are freed.
    return Cifar10(
        train_images=loaded.train_images[:SHORT_RUN_TRAIN_IMAGES].clone(),
        train_labels=loaded.train_labels[:SHORT_RUN_TRAIN_IMAGES].clone(),
        test_images=loaded.test_images[:SHORT_RUN_TEST_IMAGES].clone(),
        test_labels=loaded.test_labels[:SHORT_RUN_TEST_IMAGES].clone(),
        classes=list(loaded.classes),
        source=(f"{loaded.source}; grading or quick mode: only the first {SHORT_RUN_TRAIN_IMAGES:,} training "
                f"and {SHORT_RUN_TEST_IMAGES:,} test images"),
        synthetic=loaded.synthetic,
        cache_file=loaded.cache_file,
    )


def _load_prepared(location: DataLocation) -> Cifar10:
    payload = _read_cache(location.path, None)
    if payload is None:
        raise CorruptDataError(
            f"the prepared CIFAR-10 file {location.path} is damaged or from another course version. "
            f"Delete it and prepare again: `COURSE_DATA=/path/to/cifar10 course data --prepare`, or `{DOWNLOAD_FIX}`"
        )
    origin = payload.get("source_path")
    return _real_cifar10(payload, f"CIFAR-10 from {location.path} (prepared decoded tensors"
                         + (f" of {origin})" if origin else ")"), location.path)


def _real_cifar10(payload: dict[str, Any], source: str, cache_file: Path | None) -> Cifar10:
    """The real data set from a decoded payload (tensors and class names), labelled with its source."""
    return Cifar10(
        train_images=payload["train_images"],
        train_labels=payload["train_labels"],
        test_images=payload["test_images"],
        test_labels=payload["test_labels"],
        classes=list(payload["classes"]),
        source=source,
        synthetic=False,
        cache_file=cache_file,
    )


def prepare_cifar10(root: str | os.PathLike | None = None) -> tuple[Cifar10, Path]:
    """Decode CIFAR-10 once and leave the tensors in the cache, where they are found with no variable set.

    This is ``course data --prepare``. After it, :func:`load_cifar10` and ``course doctor`` find the
    data in a new shell without ``COURSE_DATA`` (the cache, :func:`cache_dir`, is always searched),
    even if the original copy is moved away.

    Parameters
    ----------
    root : str or path-like, optional
        The copy to prepare; by default the first one found (``COURSE_DATA``, then the cache).

    Returns
    -------
    (Cifar10, pathlib.Path)
        The data and the prepared file (``cache_dir() / "cifar10-prepared.pt"``).

    Raises
    ------
    DataNotFoundError, CorruptDataError
        As :func:`load_cifar10`.

    Examples
    --------
    >>> data, path = prepare_cifar10("/data/cifar10-jpeg")  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    'cifar10-prepared.pt'
    """
    data = load_cifar10(root)
    target = cache_dir() / PREPARED_FILE
    if data.cache_file is not None and data.cache_file.resolve() == target.resolve():
        return data, target  # it was the prepared file already
    payload = {
        "train_images": data.train_images, "train_labels": data.train_labels,
        "test_images": data.test_images, "test_labels": data.test_labels,
        "classes": list(data.classes), "format": _CACHE_FORMAT, "fingerprint": None,
        "source_path": data.source,
    }
    if data.cache_file is not None and data.cache_file.is_file():
        # A hard link to the decoded-tensor cache costs no disk; a copy where links are impossible.
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        try:
            os.link(data.cache_file, tmp)
            os.replace(tmp, target)
            return data, target
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
    if not _write_cache(target, payload):
        raise DataError(f"could not write {target}; set COURSE_CACHE to a writable folder on a disk with 0.2 GB free")
    return data, target


def _load_location(location: DataLocation, cache: bool = True) -> Cifar10:
    if location.layout == "prepared":
        return _load_prepared(location)
    if location.layout == "imagefolder":
        listing, fingerprint = _scan_imagefolder(location.path)
    else:
        listing, fingerprint = None, _batches_fingerprint(location.path)
    cache_path = _cache_file(location) if cache else None
    payload = _read_cache(cache_path, fingerprint) if cache_path is not None else None
    from_cache = payload is not None
    if payload is None:
        if location.layout == "batches":
            payload = _read_batches(location.path)
        else:
            payload = _decode_imagefolder(location.path, listing)
        if cache_path is not None:
            payload.update(format=_CACHE_FORMAT, fingerprint=fingerprint, source_path=str(location.path))
            if not _write_cache(cache_path, payload):
                cache_path = None
    layout = "torchvision batches" if location.layout == "batches" else "ImageFolder JPEG/PNG files"
    origin = "decoded tensors cached" if from_cache else "decoded"
    return _real_cifar10(payload, f"CIFAR-10 from {location.path} ({layout}; {origin})", cache_path)


def download_cifar10(root: str | os.PathLike | None = None) -> DataLocation:
    """Download CIFAR-10 through torchvision.

    Parameters
    ----------
    root : str or path-like, optional
        Folder to download into; :func:`cache_dir` by default (where :func:`load_cifar10` looks).

    Returns
    -------
    DataLocation
        The downloaded ``cifar-10-batches-py`` folder.

    Raises
    ------
    DownloadError
        The download failed (no network, disk full, ...); the message says what to do instead.

    Examples
    --------
    >>> download_cifar10()  # doctest: +SKIP
    """
    target = Path(root).expanduser().absolute() if root is not None else cache_dir()
    try:
        target.mkdir(parents=True, exist_ok=True)
        from torchvision.datasets import CIFAR10

        CIFAR10(str(target), train=True, download=True)
    except Exception as exc:
        raise DownloadError(
            f"could not download CIFAR-10 into {target} ({type(exc).__name__}: {exc}). {_offline_fix(target)}"
        ) from exc
    found = _inspect_place(target)
    if found is None or found.layout != "batches":
        raise DownloadError(f"torchvision reported success but no {BATCH_FOLDER} folder is in {target}")
    return found


# ============================================================================================
# The synthetic stand-in
# ============================================================================================

SYNTHETIC_NOTE = "SYNTHETIC stand-in, not CIFAR-10"


def synthetic_cifar10(n_train: int = 5000, n_test: int = 1000, seed: int = 0, reason: str | None = None) -> Cifar10:
    """A small seeded data set shaped like CIFAR-10, for when the real one cannot be had.

    Each class is a striped pattern with its own direction (horizontal or vertical), stripe width
    and colours; every image gets a random phase, contrast, width and colour jitter and pixel noise, so a
    small CNN learns it within a few epochs but not from one pixel. Class names are prefixed with ``fake`` and ``source`` starts with
    ``SYNTHETIC stand-in, not CIFAR-10`` so every printed result says what it is.

    Parameters
    ----------
    n_train, n_test : int
        Number of images (split evenly over the 10 classes, in a shuffled order).
    seed : int
        Seed of the generator; the same seed gives the same images.
    reason : str, optional
        Why the stand-in is used; appended to ``source``.

    Returns
    -------
    Cifar10
        With ``synthetic=True``.

    Examples
    --------
    >>> fake = synthetic_cifar10(100, 20)
    >>> fake.synthetic, tuple(fake.train_images.shape)
    (True, (100, 3, 32, 32))
    """
    for name, value in (("n_train", n_train), ("n_test", n_test), ("seed", seed)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be at least 1, got {n_train} and {n_test}")
    gen = torch.Generator().manual_seed(seed)
    n_classes = len(CIFAR10_CLASSES)
    palette = torch.rand(n_classes, 2, 3, generator=torch.Generator().manual_seed(1234))
    # Horizontal or vertical stripes at five widths: both survive the random crops and horizontal
    # flips of training augmentation (a diagonal would turn into another class when flipped).
    vertical = (torch.arange(n_classes) % 2).float()
    cycles = 1.5 + (torch.arange(n_classes) // 2).float()

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % n_classes
        labels = labels[torch.randperm(n, generator=gen)]
        coords = torch.arange(IMAGE_SIZE, dtype=torch.float32) / IMAGE_SIZE
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        v = vertical[labels][:, None, None]
        position = v * xx + (1 - v) * yy
        freq = cycles[labels] * (1 + 0.05 * torch.randn(n, generator=gen))
        phase = 2 * math.pi * torch.rand(n, generator=gen)
        contrast = 0.3 + 0.7 * torch.rand(n, generator=gen)
        wave = torch.sin(2 * math.pi * freq[:, None, None] * position + phase[:, None, None])
        stripes = 0.5 + 0.5 * contrast[:, None, None] * wave
        # Muted colours keep pixel statistics near real photos'; fully saturated ones made the
        # default training recipe (lr 0.1, no BatchNorm) diverge on this data.
        colours = 0.5 + 0.5 * (palette[labels] - 0.5) + 0.1 * torch.randn(n, 2, 3, generator=gen)
        fg, bg = colours[:, 0, :, None, None], colours[:, 1, :, None, None]
        images = bg + (fg - bg) * stripes[:, None]
        images = images + 0.1 * torch.randn(images.shape, generator=gen)
        return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels.to(torch.int64)

    train_x, train_y = make(n_train)
    test_x, test_y = make(n_test)
    source = f"{SYNTHETIC_NOTE}: {n_train:,} train / {n_test:,} test seeded stripe patterns"
    if reason:
        source += f" ({reason})"
    return Cifar10(
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        classes=[f"fake {name}" for name in CIFAR10_CLASSES],
        source=source,
        synthetic=True,
    )


# ============================================================================================
# Normalization
# ============================================================================================


def _stats(value: Sequence[float] | torch.Tensor | None, default: Sequence[float], name: str) -> torch.Tensor:
    stats = torch.as_tensor(default if value is None else value, dtype=torch.float32)
    if stats.shape != (3,):
        raise ValueError(f"{name} must hold 3 values, one per colour channel, got shape {tuple(stats.shape)}")
    return stats.view(3, 1, 1)


def _check_images(images: torch.Tensor, name: str = "images") -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() < 3 or images.shape[-3] != 3:
        raise ValueError(f"{name} must be 3 x H x W or N x 3 x H x W (channels first), got shape {tuple(images.shape)}")


def normalize(
    images: torch.Tensor,
    mean: Sequence[float] | torch.Tensor | None = None,
    std: Sequence[float] | torch.Tensor | None = None,
) -> torch.Tensor:
    """Scale images to zero mean and unit variance per channel, as a model wants them.

    Parameters
    ----------
    images : torch.Tensor
        ``3 x H x W`` or ``N x 3 x H x W``; uint8 in ``0-255`` or floating point in ``[0, 1]``.
    mean, std : sequence of 3 floats, optional
        Per-channel statistics of ``[0, 1]`` pixels; :data:`CIFAR10_MEAN` / :data:`CIFAR10_STD`
        by default.

    Returns
    -------
    torch.Tensor
        float32 (or the input's floating dtype), ``(images / 255 - mean) / std`` for uint8 input.

    Examples
    --------
    >>> x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    >>> normalize(x).shape
    torch.Size([1, 3, 2, 2])
    """
    _check_images(images)
    m = _stats(mean, CIFAR10_MEAN, "mean")
    s = _stats(std, CIFAR10_STD, "std")
    if (s <= 0).any():
        raise ValueError("std must be positive in every channel")
    if images.dtype == torch.uint8:
        x = images.to(torch.float32) / 255.0
    elif images.is_floating_point():
        if images.numel() and (images.min() < 0 or images.max() > 1):
            raise ValueError(
                "floating-point images must lie in [0, 1]; pass uint8 0-255 images as they are, "
                "and do not normalize twice"
            )
        x = images
    else:
        raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")
    return (x - m.to(x.device, x.dtype)) / s.to(x.device, x.dtype)


def denormalize(
    images: torch.Tensor,
    mean: Sequence[float] | torch.Tensor | None = None,
    std: Sequence[float] | torch.Tensor | None = None,
) -> torch.Tensor:
    """Undo :func:`normalize`: back to floating-point pixels in ``[0, 1]`` for display.

    Parameters
    ----------
    images : torch.Tensor
        Normalized floating-point ``3 x H x W`` or ``N x 3 x H x W``.
    mean, std : sequence of 3 floats, optional
        The statistics used to normalize; CIFAR-10's by default.

    Returns
    -------
    torch.Tensor
        ``images * std + mean``, clamped to ``[0, 1]`` (rounding can overshoot slightly).

    Examples
    --------
    >>> x = torch.rand(3, 4, 4)
    >>> torch.allclose(denormalize(normalize(x)), x, atol=1e-6)
    True
    """
    _check_images(images)
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point (normalized), got {images.dtype}")
    m = _stats(mean, CIFAR10_MEAN, "mean").to(images.device, images.dtype)
    s = _stats(std, CIFAR10_STD, "std").to(images.device, images.dtype)
    return (images * s + m).clamp(0.0, 1.0)


# ============================================================================================
# `course data` and `python -m course_utils.data`
# ============================================================================================


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", metavar="DIR", help="a CIFAR-10 folder to use first (with --download: where to put it)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--download", action="store_true", help="download CIFAR-10 through torchvision into the cache")
    action.add_argument("--prepare", action="store_true",
                        help="decode the images once into the cache, where they are found later with no variable set")


def run_data_command(args: argparse.Namespace) -> int:
    """Carry out ``course data [--download | --prepare] [--root DIR]``; returns the exit status."""
    root = getattr(args, "root", None)
    try:
        if getattr(args, "download", False):
            try:
                found = locate_cifar10(root)
            except CorruptDataError:
                found = None  # a damaged copy is what downloading replaces
            if found is not None:
                print(f"CIFAR-10 is already here: {found}")
                return 0
            print(f"Downloading CIFAR-10 into {Path(root).expanduser().absolute() if root else cache_dir()} ...")
            try:
                location = download_cifar10(root)
            except DownloadError as exc:
                print(f"Download failed: {exc}", file=sys.stderr)
                return 1
            print(f"CIFAR-10 is ready: {location}")
            return 0
        if getattr(args, "prepare", False):
            start = time.perf_counter()
            data, prepared = prepare_cifar10(root)
            seconds = time.perf_counter() - start
            print(data.source)
            print(f"{len(data.train_labels):,} train and {len(data.test_labels):,} test images, "
                  f"{data.num_classes} classes, in {seconds:.1f} s")
            print(f"prepared: {prepared}")
            print("From now on the lessons and `course doctor` find it there, with no variable set.")
            return 0
        found = locate_cifar10(root)
    except DataNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    except CorruptDataError as exc:
        print(f"Damaged CIFAR-10 copy: {exc}", file=sys.stderr)
        return 1
    if found is None:
        print(_not_found_message(root), file=sys.stderr)
        return 1
    print(f"CIFAR-10: {found}")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``course data`` to the ``course`` command's subparsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers()`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The new subcommand's parser (its ``func`` is :func:`run_data_command`).

    Examples
    --------
    >>> p = argparse.ArgumentParser(); sub = p.add_subparsers()
    >>> _ = add_parser(sub)
    >>> p.parse_args(["data", "--prepare"]).prepare
    True
    """
    parser = subparsers.add_parser(
        "data",
        help="find, download or prepare CIFAR-10",
        description="Say where CIFAR-10 is (or where the course looked and how to fix it); "
        "--download fetches it through torchvision; --prepare decodes it once into the tensor cache.",
    )
    _add_arguments(parser)
    parser.set_defaults(func=run_data_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m course_utils.data``: the same as ``course data``."""
    parser = argparse.ArgumentParser(prog="python -m course_utils.data", description="Find, download or prepare CIFAR-10.")
    _add_arguments(parser)
    return run_data_command(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
