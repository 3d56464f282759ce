"""Data for the lessons: sample photos for the early lessons and CIFAR-10 from wherever it is.

The photos come from the sample data that matplotlib installs, so lessons 01-04 never touch the
network or the disk outside the Python environment.
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = [
    "sample_image",
    "sample_image_names",
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
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

    import numpy as np
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
