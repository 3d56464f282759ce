"""Training on a laptop CPU (or a GPU when there is one): device choice, seeding, fit/evaluate/predict.

This module header holds the pieces every lesson needs from its first cell (seeding and device
choice); the training loop lives below them.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["seed_everything", "choose_device", "grading_mode", "quick_mode", "QUICK_BATCHES", "QUICK_TEST_IMAGES",
           "QUICK_IMAGES", "subset_size"]


def grading_mode() -> bool:
    """Return True when the notebook runs inside ``course grade``.

    The grader sets ``COURSE_GRADING=1`` in the submission's process so that helpers which only
    serve the reader (practice checks, long training runs) can stay cheap while grading.

    Examples
    --------
    >>> grading_mode()
    False
    """
    return os.environ.get("COURSE_GRADING", "") == "1"


# Quick mode's budget: enough batches to exercise every code path of a training cell (the loop,
# the schedule, evaluation, the live plot), few enough that a lesson runs in seconds.
QUICK_BATCHES = 2
QUICK_TEST_IMAGES = 256


def quick_mode() -> bool:
    """Return True when ``COURSE_QUICK=1``: training cells run a token amount of training.

    The test suite sets it wherever it executes a lesson for anything other than the lesson's one
    canonical run (the browser suite, released workbooks, the offline stand-in), so that each
    lesson trains in full once per test run. Under it, :func:`fit` trains one epoch of at most
    ``QUICK_BATCHES`` batches and tests on at most ``QUICK_TEST_IMAGES`` images, and says so in
    ``History.note``; ``course_utils.setup()`` prints a warning line. A learner can set it too, to
    walk through a training lesson on a very slow machine.

    Examples
    --------
    >>> quick_mode()
    False
    """
    return os.environ.get("COURSE_QUICK", "") == "1"


# Quick mode's subset for the loops a lesson writes out by hand (see subset_size).
QUICK_IMAGES = 512


def subset_size(n: int) -> int:
    """How many images a lesson's hand-written loop should use: ``n``, or fewer in quick mode.

    ``fit`` shortens itself in quick mode (``COURSE_QUICK=1``) and under ``course grade``; a loop
    written out in a notebook cannot, so it asks this function for its subset size instead. It
    returns ``n`` unchanged in a normal run, and at most ``QUICK_IMAGES`` in quick or grading mode.

    Parameters
    ----------
    n : int
        The subset size the lesson wants, at least 1.

    Returns
    -------
    int
        ``n``, or ``min(n, QUICK_IMAGES)`` when :func:`quick_mode` or :func:`grading_mode` is on.

    Examples
    --------
    >>> subset_size(4000)          # a normal run
    4000
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"subset_size: n must be a positive integer (a number of images), got {n!r}")
    return min(n, QUICK_IMAGES) if quick_mode() or grading_mode() else n


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and PyTorch so that a lesson prints the same numbers every run.

    Parameters
    ----------
    seed : int
        A non-negative integer.

    Returns
    -------
    int
        The seed, for printing.

    Examples
    --------
    >>> seed_everything(0)
    0
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def choose_device(prefer: str | None = None) -> torch.device:
    """Pick the fastest usable device: CUDA, then Apple MPS, then the CPU.

    Parameters
    ----------
    prefer : {"cuda", "mps", "cpu"} or None
        Ask for one device explicitly; ``None`` (or the ``COURSE_DEVICE`` environment variable)
        chooses automatically.

    Returns
    -------
    torch.device

    Examples
    --------
    >>> choose_device("cpu")
    device(type='cpu')
    """
    prefer = prefer or os.environ.get("COURSE_DEVICE") or None
    if prefer is not None:
        if prefer not in ("cuda", "mps", "cpu"):
            raise ValueError(f"prefer must be 'cuda', 'mps', 'cpu' or None, got {prefer!r}")
        if prefer == "cuda" and not torch.cuda.is_available():
            raise ValueError("prefer='cuda' but no CUDA device is usable here; use prefer=None")
        if prefer == "mps" and not _mps_available():
            raise ValueError("prefer='mps' but Apple MPS is not usable here; use prefer=None")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


# --------------------------------------------------------------------------------------------
# Training: an in-memory batch loader, fit, evaluate, predict, confusion matrix, checkpoints
# --------------------------------------------------------------------------------------------

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from torch import nn
from torch.nn import functional as F

__all__ += [
    "History",
    "Split",
    "holdout_split",
    "lr_schedule",
    "ActivationRecorder",
    "BatchLoader",
    "iterate_batches",
    "random_crop",
    "random_flip",
    "fit",
    "evaluate",
    "predict",
    "confusion_matrix",
    "per_class_accuracy",
    "save_checkpoint",
    "load_checkpoint",
    "amp_decision",
]

# Per-channel statistics of the CIFAR-10 training images, in [0, 1] pixel units.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass
class History:
    """What happened in a training run, one entry per epoch.

    Attributes
    ----------
    epoch, train_loss, train_acc, test_loss, test_acc, lr, seconds : list
        Per-epoch values; ``lr`` is the learning rate at the end of the epoch and ``seconds`` the
        wall time since the start of training (so the last one is the total).
    train_seconds : list of float
        Like ``seconds`` but counting only the training steps, not the evaluation after each epoch
        (images per second = images trained on / ``train_seconds[-1]``).
    note : str
        Anything the reader must know about the run (grading mode, synthetic data, precision).
    precision : str
        ``"bf16"`` when the training step ran under bfloat16 autocast, else ``"fp32"``.
    eval_set : str
        What ``test_loss``/``test_acc`` were measured on after each epoch: ``"test"`` (the data's
        test images) or ``"validation"`` (a :class:`Split`'s held-out training images).
    train_eval_acc : list of float
        With ``fit(..., eval_train=True)``: accuracy on (at most ``TRAIN_EVAL_IMAGES`` of) the
        training images, un-augmented and in evaluation mode, after each epoch. ``train_acc`` is
        measured on the fly, on augmented batches with dropout on and the weights still moving, so
        it understates what the model has learned; this one does not.

    Examples
    --------
    >>> h = History(epoch=[1, 2], test_acc=[0.5, 0.6])
    >>> h.best_test_acc
    0.6
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    note: str = ""
    precision: str = "fp32"
    eval_set: str = "test"
    train_eval_acc: list[float] = field(default_factory=list)

    @property
    def val_acc(self) -> list[float]:
        """Per-epoch validation accuracy (``test_acc`` when ``eval_set == "validation"``)."""
        if self.eval_set != "validation":
            raise AttributeError("this run was evaluated on the test set, not on a validation split; "
                                 "read test_acc, or train on holdout_split(...) to get val_acc")
        return self.test_acc

    @property
    def best_test_acc(self) -> float:
        """Highest test accuracy over the epochs (NaN before the first epoch)."""
        return max(self.test_acc) if self.test_acc else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of lists (and the note), ready for JSON or ``plot_history``."""
        return asdict(self)

    def to_json(self) -> str:
        """The history as a JSON string."""
        return json.dumps(self.to_dict())


# ---------------------------------------------------------------- validation split


@dataclass
class Split:
    """Training images with a validation set held out of them; the test set is not in here.

    ``fit`` trains on ``train_*`` and evaluates on ``val_*`` after every epoch (``History.eval_set``
    is ``"validation"``), so choices made by watching the curves never touch the test set, which
    is scored once, at the end, with :func:`evaluate`.

    Attributes
    ----------
    train_images, train_labels, val_images, val_labels : torch.Tensor
    source : str
        Where the images came from, and how many went where.
    synthetic : bool
        True when the images are the offline stand-in, not CIFAR-10.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    source: str = ""
    synthetic: bool = False


def holdout_split(data: Any, val_size: int, train_size: int | None = None, seed: int = 0) -> Split:
    """Hold ``val_size`` random training images out as a validation set; optionally keep a subset.

    Parameters
    ----------
    data : Cifar10 or 4-tuple
        ``load_cifar10()``'s result or ``(train_images, train_labels, test_images, test_labels)``;
        only the training half is used.
    val_size : int
        Images held out for validation (drawn at random, without replacement).
    train_size : int, optional
        Keep only this many of the remaining training images (a fixed random subset); ``None``
        keeps them all.
    seed : int
        The same seed gives the same split.

    Returns
    -------
    Split

    Examples
    --------
    >>> x = torch.zeros(100, 3, 8, 8, dtype=torch.uint8)
    >>> s = holdout_split((x, torch.arange(100) % 10, x[:5], torch.zeros(5, dtype=torch.long)), 20, 50)
    >>> len(s.train_images), len(s.val_images)
    (50, 20)
    """
    train_x, train_y, _, _ = _unpack_data(data)
    val_size = _check_positive_int(val_size, "val_size")
    if train_size is not None:
        train_size = _check_positive_int(train_size, "train_size")
    available = len(train_x) - val_size
    if available < 1:
        raise ValueError(f"val_size={val_size} leaves no training images (the data has {len(train_x)}); "
                         "choose a smaller val_size")
    if train_size is not None and train_size > available:
        raise ValueError(f"train_size={train_size} is more than the {available} images left after holding out "
                         f"val_size={val_size}; choose a smaller train_size or val_size")
    order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(int(seed)))
    val_idx = order[:val_size]
    train_idx = order[val_size:] if train_size is None else order[val_size:val_size + train_size]
    source = getattr(data, "source", "") or "given tensors"
    return Split(train_x[train_idx], train_y[train_idx], train_x[val_idx], train_y[val_idx],
                 source=f"{source}; {len(train_idx):,} training / {len(val_idx):,} validation images (seed {seed})",
                 synthetic=bool(getattr(data, "synthetic", False)))


# ---------------------------------------------------------------- input checking


def _unpack_data(data: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Accept a ``Cifar10`` (anything with train/test images and labels), a ``Split`` or a 4-tuple.

    For a ``Split`` the third and fourth entries are its validation images and labels.
    """
    if isinstance(data, Split):
        parts = (data.train_images, data.train_labels, data.val_images, data.val_labels)
    elif all(hasattr(data, a) for a in ("train_images", "train_labels", "test_images", "test_labels")):
        parts = (data.train_images, data.train_labels, data.test_images, data.test_labels)
    elif isinstance(data, (tuple, list)) and len(data) == 4:
        parts = tuple(data)
    else:
        raise TypeError(
            "data must be a Cifar10 from course_utils.data.load_cifar10() or a tuple "
            f"(train_images, train_labels, test_images, test_labels), got {type(data).__name__}"
        )
    names = (("train_images", "train_labels", "val_images", "val_labels") if isinstance(data, Split)
             else ("train_images", "train_labels", "test_images", "test_labels"))
    train_x, train_y = _check_images(parts[0], names[0]), _check_labels(parts[1], names[1])
    test_x, test_y = _check_images(parts[2], names[2]), _check_labels(parts[3], names[3])
    for x, y, nx, ny in ((train_x, train_y, names[0], names[1]), (test_x, test_y, names[2], names[3])):
        if len(x) != len(y):
            raise ValueError(f"{nx} has {len(x)} images but {ny} has {len(y)} labels; they must match")
    if len(train_x) == 0:
        raise ValueError("train_images is empty; fit needs at least one training image")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise ValueError(
            f"train_images are {tuple(train_x.shape[1:])} but test_images are {tuple(test_x.shape[1:])}; "
            "both must be C×H×W of the same size"
        )
    return train_x, train_y, test_x, test_y


def _check_images(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor N×C×H×W, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be N×C×H×W (4 dimensions), got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise TypeError(f"{name} must be uint8 pixels (0-255) or floats, got {x.dtype}")
    return x


def _check_labels(y: Any, name: str) -> torch.Tensor:
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(y)
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a 1-D tensor of class indices, got {type(y).__name__}")
    if y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{name} must be a 1-D integer tensor of class indices, got {y.dtype} {tuple(y.shape)}")
    if len(y) and int(y.min()) < 0:
        raise ValueError(f"{name} holds negative class indices; labels must be 0..C-1")
    return y.long()


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# ---------------------------------------------------------------- batches and augmentation


def _normalizer(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Scale and shift that map uint8 CIFAR-10 pixels to zero mean, unit variance per channel.

    Float images are taken as already prepared by the caller and pass through unchanged.
    """
    if x.dtype != torch.uint8:
        return None
    c = x.shape[1]
    if c == 3:
        mean, std = torch.tensor(CIFAR10_MEAN), torch.tensor(CIFAR10_STD)
    else:  # not RGB: fall back to a plain [0, 1] scale centred on 0.5
        mean, std = torch.full((c,), 0.5), torch.full((c,), 0.25)
    scale = 1.0 / (255.0 * std)
    shift = -mean / std
    return scale.view(1, c, 1, 1), shift.view(1, c, 1, 1)


def random_crop(images: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad each image with zeros on all sides, then cut a random window of the original size.

    Every image in the batch gets its own offset; all of it happens in one indexing operation.

    Parameters
    ----------
    images : torch.Tensor
        N×C×H×W, any dtype.
    padding : int
        Pixels of zero padding on each side; offsets run from 0 to ``2*padding``.
    generator : torch.Generator, optional
        Source of randomness, for reproducible crops.

    Returns
    -------
    torch.Tensor
        N×C×H×W, same dtype; with offset (dy, dx) pixel (i, j) of the output is pixel
        (i + dy - padding, j + dx - padding) of the input, or 0 outside it.

    Examples
    --------
    >>> random_crop(torch.ones(2, 3, 8, 8), padding=2).shape
    torch.Size([2, 3, 8, 8])
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError("images must be a tensor N×C×H×W")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
    if padding == 0 or len(images) == 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # N×1×H×1
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # N×1×1×W
    batch = torch.arange(n)[:, None, None, None]
    chans = torch.arange(c)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror a random half of the images left to right (each image: heads or tails).

    Parameters
    ----------
    images : torch.Tensor
        N×C×H×W.
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor
        N×C×H×W; flipped images are ``image.flip(-1)``, the others unchanged.

    Examples
    --------
    >>> random_flip(torch.zeros(4, 1, 2, 2)).shape
    torch.Size([4, 1, 2, 2])
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError("images must be a tensor N×C×H×W")
    flip = torch.rand(len(images), generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


class BatchLoader:
    """Mini-batches straight from tensors in memory: shuffled, augmented and normalized on the fly.

    CIFAR-10 fits in 150 MB of uint8, so there is no need for a ``Dataset`` that decodes images one
    by one in worker processes: slicing a tensor is thousands of times cheaper.

    Parameters
    ----------
    images : torch.Tensor
        N×C×H×W, uint8 pixels (normalized here with the CIFAR-10 mean and std) or floats (used as
        given).
    labels : torch.Tensor
        N class indices.
    batch_size : int
    shuffle : bool
        New order every epoch (from ``seed`` and the epoch number, so runs repeat exactly).
    augment : bool
        Random crop with 4 pixels of padding and random horizontal flip.
    seed : int
    drop_last : bool
        Skip a last, smaller batch (keeps BatchNorm statistics and step sizes even).
    channels_last : bool
        Return batches in channels-last memory layout (faster convolutions on CPU).

    Examples
    --------
    >>> x = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    >>> y = torch.arange(10)
    >>> loader = BatchLoader(x, y, batch_size=4)
    >>> [tuple(xb.shape) for xb, yb in loader]
    [(4, 3, 32, 32), (4, 3, 32, 32), (2, 3, 32, 32)]
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int = 256,
        *,
        shuffle: bool = True,
        augment: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
    ) -> None:
        self.images = _check_images(images, "images")
        self.labels = _check_labels(labels, "labels")
        if len(self.images) != len(self.labels):
            raise ValueError(f"images has {len(self.images)} items but labels has {len(self.labels)}")
        self.batch_size = _check_positive_int(batch_size, "batch_size")
        self.shuffle, self.augment, self.drop_last = bool(shuffle), bool(augment), bool(drop_last)
        self.channels_last = bool(channels_last)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.epoch = 0
        self._norm = _normalizer(self.images)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch's shuffle and augmentation the next pass uses."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        n = len(self.images)
        order = torch.randperm(n, generator=gen) if self.shuffle else None
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min(n, (b + 1) * self.batch_size)
            if order is None:
                xb, yb = self.images[lo:hi], self.labels[lo:hi]
            else:
                idx = order[lo:hi]
                xb, yb = self.images[idx], self.labels[idx]
            yield self.prepare(xb, gen if self.augment else None), yb

    def prepare(self, xb: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment (when a generator is given), convert to float and normalize one batch."""
        if generator is not None:
            xb = random_flip(random_crop(xb, 4, generator), generator)
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        if self._norm is None:
            return xb.float()
        scale, shift = self._norm
        return torch.addcmul(shift, xb.float(), scale)


def iterate_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 256,
    *,
    shuffle: bool = True,
    augment: bool = False,
    seed: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One pass over ``BatchLoader(images, labels, ...)``: yields (images N×C×H×W float, labels).

    Examples
    --------
    >>> x, y = torch.zeros(5, 3, 4, 4, dtype=torch.uint8), torch.zeros(5, dtype=torch.long)
    >>> [len(yb) for _, yb in iterate_batches(x, y, batch_size=2)]
    [2, 2, 1]
    """
    yield from BatchLoader(images, labels, batch_size, shuffle=shuffle, augment=augment, seed=seed)


# ---------------------------------------------------------------- using the machine well


def _physical_cores() -> int:
    """Physical cores this process may use (hyper-threads share a core's vector units)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        usable = os.cpu_count() or 1
    physical = None
    try:
        import psutil  # optional

        physical = psutil.cpu_count(logical=False)
    except Exception:
        try:
            pairs = set()
            phys = core = None
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("physical id"):
                        phys = line.split(":")[1].strip()
                    elif line.startswith("core id"):
                        core = line.split(":")[1].strip()
                        pairs.add((phys, core))
            physical = len(pairs) or None
        except OSError:
            physical = None
    return max(1, min(usable, physical or usable))


def _omp_num_threads() -> int | None:
    """``OMP_NUM_THREADS`` as a positive whole number, or None where it is unset or not one."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _cpu_threads() -> int:
    """Threads ``fit`` trains with on the CPU: ``OMP_NUM_THREADS`` where it is set, else the physical cores.

    ``OMP_NUM_THREADS`` is how a person (or ``course grade --jobs``, or a test runner with several
    workers) shares the CPU between processes; overriding it would run two threads per core and
    make every process several times slower than one thread each.
    """
    return _omp_num_threads() or _physical_cores()


_AMP_CACHE: dict[tuple, bool] = {}


def _cpu_flags() -> set[str] | None:
    """The processor's feature flags from /proc/cpuinfo, or None where that is not readable."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def _amp_context(device: torch.device, bf16: bool):
    if not bf16:
        import contextlib

        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def amp_decision(
    model: nn.Module,
    batch: torch.Tensor,
    device: torch.device | str = "cpu",
    *,
    min_speedup: float = 1.25,
    repeats: int = 5,
) -> bool:
    """Decide whether bfloat16 autocast really speeds up this model's training step here.

    On the CPU, bf16 pays off only on processors with native bf16 instructions (AVX-512 BF16,
    AMX); elsewhere it is emulated and slower. Where the processor's flags are readable (Linux) and
    show neither, the answer is False without measuring. Otherwise flags are not trusted to tell the
    speed: a throw-away copy of the model does ``repeats`` forward+backward+SGD steps in fp32 and in
    bf16 autocast, interleaved, after one warm-up step each. bf16 is chosen when the best fp32 step
    is at least ``min_speedup`` times slower than the best bf16 step, and the bf16 class
    probabilities stay within 0.05 of the fp32 ones on the probe batch (so accuracy is not at
    risk). The answer is cached per process for (device, model class, batch shape, threads). The
    measurement leaves PyTorch's random generator as it found it, so a seeded run that measures
    trains exactly like one that finds the answer cached.
    On CUDA it is True where the GPU supports bf16; on MPS always False.

    Parameters
    ----------
    model : nn.Module
        Not modified (a deep copy is timed).
    batch : torch.Tensor
        A representative input batch.
    device : torch.device or str
    min_speedup : float
    repeats : int

    Returns
    -------
    bool
        True to train under bf16 autocast.

    Examples
    --------
    >>> from course_utils.models import TinyCNN
    >>> isinstance(amp_decision(TinyCNN(), torch.randn(8, 3, 32, 32)), bool)
    True
    """
    import copy

    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    key = (device.type, type(model).__name__, tuple(batch.shape), torch.get_num_threads())
    if key in _AMP_CACHE:
        return _AMP_CACHE[key]
    if _cpu_flags() is not None and not _cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        _AMP_CACHE[key] = False
        return False
    probe = copy.deepcopy(model).to(device).train()
    x = batch.to(device)
    # The probe runs in training mode, so its dropout layers draw from the global generator. fit
    # seeds that generator first, so without fork_rng the first fit in a process (the only one
    # that measures) would get other dropout masks than an identical second fit.
    with torch.random.fork_rng(devices=[]):
        decision = _time_bf16(probe, x, device, min_speedup, repeats)
    _AMP_CACHE[key] = decision
    return decision


def _time_bf16(probe: nn.Module, x: torch.Tensor, device: torch.device, min_speedup: float, repeats: int) -> bool:
    """amp_decision's measurement: is a bf16 training step of ``probe`` fast enough and close enough?"""
    with torch.no_grad():
        y = probe(x).argmax(1)
    opt = torch.optim.SGD(probe.parameters(), lr=0.0)  # lr 0: time the step without changing weights
    times = {False: [], True: []}
    try:
        for i in range(repeats + 1):
            for bf16 in (False, True):
                t0 = time.perf_counter()
                with _amp_context(device, bf16):
                    loss = F.cross_entropy(probe(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if i > 0:  # the first round warms up kernels and allocators
                    times[bf16].append(time.perf_counter() - t0)
        probe.eval()
        with torch.no_grad():
            p32 = probe(x).float().softmax(1)
            with _amp_context(device, True):
                p16 = probe(x).float().softmax(1)
        close = bool((p32 - p16).abs().max() < 0.05)
        return close and min(times[False]) >= min_speedup * min(times[True])
    except RuntimeError:  # bf16 kernels missing on this build or processor
        return False


# ---------------------------------------------------------------- live plot


class _LivePlot:
    """A training-curve picture that redraws in place in a notebook; does nothing elsewhere."""

    def __init__(self, enabled: bool) -> None:
        self.handle = None
        self.enabled = enabled and _in_notebook()

    def update(self, history: History, title: str) -> None:
        if not self.enabled or not history.epoch:
            return
        from IPython.display import Image, display
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        from .plots import plot_training

        import io

        fig = plot_training(history, title=title)
        buf = io.BytesIO()
        FigureCanvasAgg(fig).print_png(buf)
        image = Image(data=buf.getvalue(), format="png")
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


# ---------------------------------------------------------------- fit

# Seconds between redraws of fit's progress bar, not tqdm's 0.1: in a notebook each redraw is a
# widget message, and a runner that reads the kernel's output only after the cell (nbval) can lose
# messages, the final "idle" among them, once a long cell has queued thousands.
PROGRESS_INTERVAL_S = 1.0


def fit(
    model: nn.Module,
    data: Any,
    *,
    epochs: int = 13,
    batch_size: int = 128,
    lr: float = 0.05,
    weight_decay: float = 1e-4,
    momentum: float = 0.9,
    label_smoothing: float = 0.1,
    augment: bool = True,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = True,
    live_plot: bool = True,
    amp: bool | str = "auto",
    eval_train: bool = False,
) -> History:
    """Train a classifier on images held in memory and return its per-epoch history.

    The recipe: SGD with Nesterov momentum, a one-cycle learning-rate schedule (warm up to ``lr``
    over the first quarter of the steps, then anneal towards zero), label smoothing, weight decay,
    and random crops (4-pixel padding) plus horizontal flips done on whole batches of tensors.
    After every epoch the model is evaluated on the test images, or, when ``data`` is a
    :class:`Split` from :func:`holdout_split`, on the validation images (``history.eval_set``).

    It uses the machine without being asked: the model and batches are put in channels-last
    memory layout (faster convolutions), the CPU runs one thread per physical core, or
    ``OMP_NUM_THREADS`` threads where that is set (restored afterwards), and the training step runs under bfloat16 autocast only when ``amp_decision``
    measured it to be at least 1.25× faster than fp32 on this processor with the same predictions
    (``amp="auto"``; pass ``True``/``False`` to force it). Evaluation always runs in fp32, so the
    reported test accuracy is exactly what ``evaluate`` gives.

    Under ``course grade`` (``grading_mode()``), it trains 1 epoch of at most 2 batches, evaluates
    on at most 2 batches of test images, and says so in ``history.note``. In quick mode
    (``COURSE_QUICK=1``, see :func:`quick_mode`) it trains 1 epoch of at most ``QUICK_BATCHES``
    batches and tests on at most ``QUICK_TEST_IMAGES`` images, and says so in the note too.

    Parameters
    ----------
    model : nn.Module
        Maps N×C×H×W images to N×classes scores; trained in place.
    data : Cifar10 or tuple
        ``load_cifar10()``'s result, or ``(train_images, train_labels, test_images, test_labels)``.
        uint8 images are scaled and normalized with the CIFAR-10 mean and std on the fly; float
        images are used as given.
    epochs, batch_size : int
    lr : float
        Peak learning rate of the one-cycle schedule.
    weight_decay, momentum, label_smoothing : float
    augment : bool
        Random crop and flip the training batches.
    device : {"cuda", "mps", "cpu"}, torch.device or None
        ``None`` picks the fastest available.
    seed : int
        Seeds the shuffling, the augmentation and dropout, so a run repeats exactly.
    progress : bool
        Show a ``tqdm`` bar per epoch.
    live_plot : bool
        In a notebook, redraw the loss and accuracy curves after every epoch.
    amp : "auto", True or False
        bfloat16 autocast for the training step (see above).
    eval_train : bool
        Also measure, after each epoch, the accuracy on the first ``TRAIN_EVAL_IMAGES`` training
        images without augmentation and in evaluation mode (``history.train_eval_acc``): the
        fair number to compare with the validation accuracy when judging under- or overfitting.

    Returns
    -------
    History
        Per-epoch train/test loss (plain cross-entropy) and accuracy, learning rate, seconds.

    Examples
    --------
    >>> from course_utils.models import TinyCNN
    >>> x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    >>> y = torch.randint(0, 10, (64,))
    >>> h = fit(TinyCNN(), (x, y, x, y), epochs=1, batch_size=32, progress=False)
    >>> len(h.test_acc)
    1
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    train_x, train_y, test_x, test_y = _unpack_data(data)
    epochs = _check_positive_int(epochs, "epochs")
    batch_size = _check_positive_int(batch_size, "batch_size")
    for name, value in (("lr", lr), ("weight_decay", weight_decay), ("momentum", momentum),
                        ("label_smoothing", label_smoothing)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    if lr == 0:
        raise ValueError("lr must be positive; with lr=0 nothing would be learned")
    if label_smoothing >= 1:
        raise ValueError(f"label_smoothing must be below 1, got {label_smoothing!r}")
    if amp not in ("auto", True, False):
        raise ValueError(f"amp must be 'auto', True or False, got {amp!r}")
    if not isinstance(eval_train, bool):
        raise TypeError(f"eval_train must be True or False, got {eval_train!r}")
    eval_set = "validation" if isinstance(data, Split) else "test"
    seed = seed_everything(seed)
    device = torch.device(device) if isinstance(device, torch.device) else choose_device(device)

    notes = []
    max_batches = None
    test_limit = len(test_x)
    if grading_mode():
        epochs, max_batches, test_limit = 1, 2, min(len(test_x), 2 * batch_size)
        notes.append("grading mode: trained 1 epoch of at most 2 batches and tested on at most "
                     f"{test_limit} images, so the accuracy means nothing here")
    elif quick_mode():
        epochs, max_batches, test_limit = 1, QUICK_BATCHES, min(len(test_x), QUICK_TEST_IMAGES)
        notes.append(f"QUICK MODE (COURSE_QUICK=1): trained 1 epoch of at most {QUICK_BATCHES} batches and "
                     f"tested on at most {test_limit} images, so the accuracy means nothing here")
    source = getattr(data, "source", None)
    if getattr(data, "synthetic", False):
        notes.append(f"trained on SYNTHETIC stand-in data ({source or 'not CIFAR-10'}), not real photos")

    old_threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(_cpu_threads())
    channels_last = device.type in ("cpu", "cuda") and train_x.shape[1] > 1
    try:
        model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        loader = BatchLoader(train_x, train_y, batch_size, shuffle=True, augment=augment, seed=seed,
                             drop_last=len(train_x) >= 2 * batch_size, channels_last=channels_last)
        steps_per_epoch = len(loader) if max_batches is None else min(len(loader), max_batches)
        # The clock starts before the bf16 probe: the learner waits for it too.
        start = time.perf_counter()
        if amp == "auto":
            probe_batch = loader.prepare(train_x[:batch_size])
            if channels_last:
                probe_batch = probe_batch.contiguous(memory_format=torch.channels_last)
            bf16 = amp_decision(model, probe_batch, device)
        else:
            bf16 = bool(amp) and device.type in ("cpu", "cuda")
        precision = "bf16" if bf16 else "fp32"

        decay, no_decay = [], []
        for p in model.parameters():
            if p.requires_grad:
                # Biases and normalization scales are 1-D: decaying them only hurts.
                (no_decay if p.ndim <= 1 else decay).append(p)
        optimizer = torch.optim.SGD(
            [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=lr, momentum=momentum, nesterov=momentum > 0,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _one_cycle(epochs * steps_per_epoch, warmup=0.25))
        history = History(note="; ".join(notes), precision=precision, eval_set=eval_set)
        train_eval_limit = min(len(train_x), TRAIN_EVAL_IMAGES, test_limit if max_batches else len(train_x))
        live = _LivePlot(live_plot)
        bar_factory = _tqdm() if progress else None
        train_time = 0.0
        for epoch in range(1, epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            loader.set_epoch(epoch - 1)
            total_loss = torch.zeros((), dtype=torch.float64)
            correct = torch.zeros((), dtype=torch.long)
            seen = 0
            bar = bar_factory(total=steps_per_epoch, desc=f"epoch {epoch}/{epochs}", leave=True,
                              unit="batch", mininterval=PROGRESS_INTERVAL_S) if bar_factory else None
            for step, (xb, yb) in enumerate(loader):
                if step >= steps_per_epoch:
                    break
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                with _amp_context(device, bf16):
                    logits = model(xb)
                    loss = F.cross_entropy(logits, yb, label_smoothing=label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                with torch.no_grad():
                    logits = logits.float()
                    total_loss += F.cross_entropy(logits, yb, reduction="sum").double().cpu()
                    correct += (logits.argmax(1) == yb).sum().cpu()
                seen += len(yb)
                if bar is not None:
                    bar.update(1)
            train_time += time.perf_counter() - epoch_start
            train_loss = float(total_loss) / max(seen, 1)
            train_acc = float(correct) / max(seen, 1)
            test_loss, test_acc = _evaluate_tensors(model, test_x[:test_limit], test_y[:test_limit],
                                                   EVAL_BATCH_SIZE, device, channels_last)
            history.epoch.append(epoch)
            history.train_loss.append(train_loss)
            history.train_acc.append(train_acc)
            history.test_loss.append(test_loss)
            history.test_acc.append(test_acc)
            history.lr.append(float(optimizer.param_groups[0]["lr"]))
            if eval_train:
                _, train_eval_acc = _evaluate_tensors(model, train_x[:train_eval_limit], train_y[:train_eval_limit],
                                                      EVAL_BATCH_SIZE, device, channels_last)
                history.train_eval_acc.append(train_eval_acc)
            history.seconds.append(time.perf_counter() - start)
            history.train_seconds.append(train_time)
            if bar is not None:
                bar.set_postfix_str(f"loss {train_loss:.3f}  train acc {train_acc:.1%}  {eval_set} acc {test_acc:.1%}")
                bar.close()
            live.update(history, title=f"{type(model).__name__}: epoch {epoch}/{epochs}, {precision}")
    finally:
        torch.set_num_threads(old_threads)
    model.eval()
    return history


# fit, evaluate and predict run the model in batches of this many images. On a CPU a batch of 1,024
# (the old size) was 1.7 to 2.4 times slower per image than 128, measured on TinyCNN with one and
# two threads: the activations of a large batch do not fit in the processor's caches.
EVAL_BATCH_SIZE = 128

# eval_train measures at most this many training images per epoch: enough for a fair estimate,
# few enough that it costs a fraction of an epoch on the full training set.
TRAIN_EVAL_IMAGES = 10_000


def lr_schedule(epochs: int, steps_per_epoch: int, lr: float = 0.05, warmup: float = 0.25) -> list[float]:
    """The learning rate ``fit`` uses at every step: its one-cycle schedule, for plotting.

    It rises linearly from ``0.1 * lr`` to ``lr`` over the first ``warmup`` fraction of the steps
    (a gentle start while the weights are random), then falls linearly to 0 at the last step (large
    steps explore, small steps settle into a minimum).

    Parameters
    ----------
    epochs, steps_per_epoch : int
    lr : float
        Peak learning rate.
    warmup : float
        Fraction of the steps spent rising, in [0, 1).

    Returns
    -------
    list of float
        ``epochs * steps_per_epoch`` learning rates, one per step.

    Examples
    --------
    >>> [round(v, 3) for v in lr_schedule(1, 4, lr=1.0)]
    [0.1, 1.0, 0.667, 0.333]
    """
    epochs = _check_positive_int(epochs, "epochs")
    steps_per_epoch = _check_positive_int(steps_per_epoch, "steps_per_epoch")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0 <= warmup < 1:
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup!r}")
    factor = _one_cycle(epochs * steps_per_epoch, warmup)
    return [lr * factor(step) for step in range(epochs * steps_per_epoch)]


def _one_cycle(total_steps: int, warmup: float = 0.25):
    """Learning-rate factor per step: linear rise from 0.1 to 1, then linear fall to 0."""
    rise = max(1, round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < rise:
            return 0.1 + 0.9 * step / rise
        return max(0.0, (total_steps - step) / max(1, total_steps - rise))

    return factor


def _tqdm():
    from tqdm.auto import tqdm

    return tqdm


# ---------------------------------------------------------------- activation statistics


class ActivationRecorder:
    """Record the mean and standard deviation of chosen layers' outputs during training.

    Forward hooks on the layers note, every ``every``-th training forward pass (the model in
    training mode, gradients on), the mean and std of each layer's output over the whole batch.
    Evaluation passes are not recorded. Use it around ``fit``::

        with ActivationRecorder(model) as rec:
            fit(model, data)
        rec.means["relu 3"]   # one value per recorded step

    Parameters
    ----------
    model : nn.Module
    layer_type : type
        Record every module of this type (default ``nn.ReLU``: each block's activations), named
        ``"relu 1"``, ``"relu 2"``, ... in the order they appear in the model.
    every : int
        Record one training step in ``every``.

    Attributes
    ----------
    names : list of str
    steps : list of int
        The training forward passes that were recorded (counting from 0).
    means, stds : dict of str -> list of float

    Examples
    --------
    >>> from course_utils.models import TinyCNN
    >>> m = TinyCNN().train()
    >>> with ActivationRecorder(m) as rec:
    ...     _ = m(torch.randn(4, 3, 32, 32))
    >>> rec.names, len(rec.means["relu 1"])
    (['relu 1', 'relu 2'], 1)
    """

    def __init__(self, model: nn.Module, layer_type: type = nn.ReLU, every: int = 1) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not (isinstance(layer_type, type) and issubclass(layer_type, nn.Module)):
            raise TypeError(f"layer_type must be an nn.Module class such as nn.ReLU, got {layer_type!r}")
        self.every = _check_positive_int(every, "every")
        self.model = model
        self.layers = [m for m in model.modules() if isinstance(m, layer_type)]
        if not self.layers:
            raise ValueError(f"model has no {layer_type.__name__} layer to record")
        prefix = layer_type.__name__.lower()
        self.names = [f"{prefix} {i}" for i in range(1, len(self.layers) + 1)]
        self.means: dict[str, list[float]] = {n: [] for n in self.names}
        self.stds: dict[str, list[float]] = {n: [] for n in self.names}
        self.steps: list[int] = []
        self._handles: list[Any] = []
        self._calls = 0

    def _hook(self, name: str, first: bool):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not (module.training and torch.is_grad_enabled()) or not isinstance(output, torch.Tensor):
                return
            if first:  # the first recorded layer counts the training forward passes
                self._calls += 1
                if (self._calls - 1) % self.every == 0:
                    self.steps.append(self._calls - 1)
            if (self._calls - 1) % self.every == 0:
                with torch.no_grad():
                    out = output.detach().float()
                    self.means[name].append(float(out.mean()))
                    self.stds[name].append(float(out.std()))
        return hook

    def __enter__(self) -> "ActivationRecorder":
        self._handles = [layer.register_forward_hook(self._hook(name, i == 0))
                         for i, (name, layer) in enumerate(zip(self.names, self.layers))]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def remove(self) -> None:
        """Detach the hooks (done automatically at the end of a ``with`` block)."""
        for h in self._handles:
            h.remove()
        self._handles = []


# ---------------------------------------------------------------- evaluate, predict


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@torch.no_grad()
def _evaluate_tensors(model, images, labels, batch_size, device, channels_last) -> tuple[float, float]:
    if len(images) == 0:
        return float("nan"), float("nan")
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.long)
    try:
        for xb, yb in BatchLoader(images, labels, batch_size, shuffle=False, channels_last=channels_last):
            logits = model(xb.to(device)).float()
            yb = yb.to(device)
            loss_sum += F.cross_entropy(logits, yb, reduction="sum").double().cpu()
            correct += (logits.argmax(1) == yb).sum().cpu()
    finally:
        model.train(was_training)
    n = len(labels)
    return float(loss_sum) / n, float(correct) / n


def evaluate(
    model: nn.Module,
    data_or_images: Any,
    labels: Any = None,
    batch_size: int = EVAL_BATCH_SIZE,
    device: torch.device | str | None = None,
) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of a model on labelled images, in evaluation mode.

    Parameters
    ----------
    model : nn.Module
    data_or_images : Cifar10, 4-tuple, or tensor N×C×H×W
        A data set (its test images are used) or the images themselves (uint8 are normalized with
        the CIFAR-10 statistics, floats used as given).
    labels : tensor of N class indices, optional
        Required when images are given, not allowed with a data set.
    batch_size : int
    device : str, torch.device or None
        ``None`` uses the device the model's parameters are on.

    Returns
    -------
    (float, float)
        Loss and accuracy (a fraction between 0 and 1). The model's train/eval mode is restored.

    Examples
    --------
    >>> from course_utils.models import TinyCNN
    >>> x, y = torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.tensor([0, 1, 2, 3])
    >>> loss, acc = evaluate(TinyCNN(), x, y)
    >>> 0.0 <= acc <= 1.0
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(data_or_images, (torch.Tensor, np.ndarray)):
        if labels is None:
            raise ValueError("labels is required when data_or_images is a tensor of images")
        images = _check_images(data_or_images, "data_or_images")
        labels = _check_labels(labels, "labels")
        if len(images) != len(labels):
            raise ValueError(f"data_or_images has {len(images)} images but labels has {len(labels)}")
    else:
        if labels is not None:
            raise ValueError("labels must be None when data_or_images is a data set (its test labels are used)")
        _, _, images, labels = _unpack_data(data_or_images)
    if len(images) == 0:
        raise ValueError("data_or_images holds no images")
    batch_size = _check_positive_int(batch_size, "batch_size")
    device = _model_device(model) if device is None else torch.device(device)
    model.to(device)
    channels_last = device.type in ("cpu", "cuda") and images.shape[1] > 1
    return _evaluate_tensors(model, images, labels, batch_size, device, channels_last)


@torch.no_grad()
def predict(model: nn.Module, images: Any, batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
    """Class probabilities (softmax of the model's scores) for each image, in evaluation mode.

    Parameters
    ----------
    model : nn.Module
    images : tensor N×C×H×W
        uint8 pixels (normalized with the CIFAR-10 statistics) or floats (used as given).
    batch_size : int

    Returns
    -------
    torch.Tensor
        N×classes float32 on the CPU; each row sums to 1.

    Examples
    --------
    >>> from course_utils.models import TinyCNN
    >>> predict(TinyCNN(), torch.zeros(3, 3, 32, 32, dtype=torch.uint8)).shape
    torch.Size([3, 10])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    images = _check_images(images, "images")
    batch_size = _check_positive_int(batch_size, "batch_size")
    device = _model_device(model)
    channels_last = device.type in ("cpu", "cuda") and images.shape[1] > 1
    dummy = torch.zeros(len(images), dtype=torch.long)
    was_training = model.training
    model.eval()
    out = []
    try:
        for xb, _ in BatchLoader(images, dummy, batch_size, shuffle=False, channels_last=channels_last):
            out.append(model(xb.to(device)).float().softmax(1).cpu())
    finally:
        model.train(was_training)
    if not out:
        raise ValueError("images holds no images")
    return torch.cat(out)


# ---------------------------------------------------------------- confusion matrix


def confusion_matrix(labels: Any, preds: Any, num_classes: int) -> torch.Tensor:
    """Count how often each true class (row) was predicted as each class (column).

    Parameters
    ----------
    labels, preds : 1-D integer tensors of the same length
        True and predicted class indices in ``0 .. num_classes-1``.
    num_classes : int

    Returns
    -------
    torch.LongTensor
        num_classes × num_classes; ``cm[i, j]`` = number of images of class i predicted as j.

    Examples
    --------
    >>> confusion_matrix(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]), 2)
    tensor([[1, 1],
            [0, 1]])
    """
    num_classes = _check_positive_int(num_classes, "num_classes")
    labels = _check_labels(labels, "labels").cpu()
    preds = _check_labels(preds, "preds").cpu()
    if len(labels) != len(preds):
        raise ValueError(f"labels has {len(labels)} entries but preds has {len(preds)}")
    for name, t in (("labels", labels), ("preds", preds)):
        if len(t) and int(t.max()) >= num_classes:
            raise ValueError(f"{name} holds class {int(t.max())}, but num_classes is {num_classes}")
    flat = torch.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return flat.view(num_classes, num_classes)


def per_class_accuracy(cm: Any) -> torch.Tensor:
    """Fraction of each true class that was predicted correctly: diagonal over row sums.

    Parameters
    ----------
    cm : tensor C×C of counts, rows the true class

    Returns
    -------
    torch.Tensor
        C float64 values; NaN for a class with no images.

    Examples
    --------
    >>> per_class_accuracy(torch.tensor([[3, 1], [0, 2]]))
    tensor([0.7500, 1.0000], dtype=torch.float64)
    """
    if isinstance(cm, np.ndarray):
        cm = torch.from_numpy(cm)
    if not isinstance(cm, torch.Tensor) or cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError("cm must be a square C×C tensor of counts (rows the true class)")
    if bool((cm < 0).any()):
        raise ValueError("cm holds counts and cannot be negative")
    cm = cm.double()
    rows = cm.sum(1)
    return torch.where(rows > 0, cm.diagonal() / rows.clamp(min=1), torch.full_like(rows, float("nan")))


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike, model: nn.Module, history: History | dict | None = None,
                    **meta: Any) -> Path:
    """Save a model's weights with its history and any JSON-able notes (epochs, accuracy, ...).

    Parameters
    ----------
    path : str or Path
        File to write (parent folders are created).
    model : nn.Module
    history : History or dict, optional
    **meta
        Extra JSON-able values stored beside the weights.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import tempfile
    >>> from course_utils.models import TinyCNN
    >>> p = save_checkpoint(tempfile.mkdtemp() + "/tiny.pt", TinyCNN(), note="untrained")
    >>> load_checkpoint(p, TinyCNN())["note"]
    'untrained'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if history is not None:
        meta["history"] = history.to_dict() if hasattr(history, "to_dict") else dict(history)
    meta.setdefault("model_class", type(model).__name__)
    try:
        meta_json = json.dumps(meta)
    except (TypeError, ValueError) as err:
        raise TypeError(f"checkpoint metadata must be JSON-able (numbers, strings, lists, dicts): {err}") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save({"format": "course_utils.checkpoint/1", "state_dict": state, "meta_json": meta_json}, path)
    return path


def load_checkpoint(path: str | os.PathLike, model: nn.Module) -> dict[str, Any]:
    """Load weights saved by ``save_checkpoint`` into ``model`` and return the saved metadata.

    Parameters
    ----------
    path : str or Path
    model : nn.Module
        Must have exactly the saved architecture.

    Returns
    -------
    dict
        The metadata (``history`` as a dict of lists when one was saved, ``model_class``, extras).

    Examples
    --------
    See ``save_checkpoint``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; save one first with save_checkpoint({str(path)!r}, model)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a readable course checkpoint: {err}") from None
    if not isinstance(blob, dict) or blob.get("format") != "course_utils.checkpoint/1":
        raise ValueError(f"{path} was not written by save_checkpoint")
    state = blob["state_dict"]
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        if wrong:
            parts.append("shape mismatch " + ", ".join(
                f"{k}: saved {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}" for k in wrong[:5]))
        meta = json.loads(blob["meta_json"])
        raise ValueError(f"checkpoint {path} (a {meta.get('model_class', '?')}) does not fit this "
                         f"{type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(state)
    return json.loads(blob["meta_json"])
