"""Training on a laptop CPU (or a GPU when there is one): device choice, seeding, fit/evaluate/predict.

This module header holds the pieces every lesson needs from its first cell (seeding and device
choice); the training loop lives below them.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["seed_everything", "choose_device", "grading_mode"]


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
