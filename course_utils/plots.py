"""Pictures of data: images, kernels, feature maps, training curves, confusion matrices.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so a notebook shows
it exactly once (as the cell's value) and nothing piles up in pyplot's list of open figures. None of
them calls ``plt.show()``.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "use_course_style",
    "new_figure",
    "to_display_array",
    "show_images",
    "show_kernels",
    "show_feature_maps",
    "plot_history",
    "plot_confusion_matrix",
]

COURSE_STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "font.size": 10,
    "legend.frameon": False,
    "image.interpolation": "nearest",
    "image.cmap": "viridis",
    "axes.prop_cycle": None,  # filled in below with the course palette
}

# Colour-blind-safe palette (Okabe & Ito), used for every line plot in the course.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def use_course_style() -> None:
    """Apply the course's plotting style (fonts, palette, pixel-exact images) to matplotlib.

    Called by :func:`course_utils.setup`; safe to call again.

    Examples
    --------
    >>> use_course_style()
    """
    import matplotlib as mpl
    from cycler import cycler

    style = dict(COURSE_STYLE)
    style["axes.prop_cycle"] = cycler(color=PALETTE)
    mpl.rcParams.update(style)


def new_figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] | None = None, **kwargs: Any):
    """Make a Figure and its axes without registering it with pyplot.

    Parameters
    ----------
    nrows, ncols : int
        Grid of axes.
    size : (width, height) in inches, optional
        Defaults to 3.2 × 3.0 inches per axis.
    **kwargs
        Passed to ``Figure.subplots`` (e.g. ``squeeze=False``).

    Returns
    -------
    (Figure, axes)

    Examples
    --------
    >>> fig, ax = new_figure()
    >>> type(fig).__name__
    'Figure'
    """
    if size is None:
        size = (3.2 * ncols, 3.0 * nrows)
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, **kwargs)
    return fig, axes


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def _as_numpy(x: Any, name: str) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().to("cpu")
            if x.dtype in (torch.bfloat16, torch.float16):
                x = x.float()
            return x.numpy()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"{name} is empty: pass at least one image")
        return np.stack([_as_numpy(v, name) for v in x])
    raise TypeError(f"{name} must be a torch.Tensor, a numpy array or a list of them, got {type(x).__name__}")


def to_display_array(
    images: Any,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    name: str = "images",
) -> np.ndarray:
    """Turn images into an N×H×W×C float array in [0, 1] that ``imshow`` shows faithfully.

    Accepts N×C×H×W or C×H×W (tensor or array), uint8 in [0, 255], floats in [0, 1], or
    normalized floats. Normalized images are mapped back with ``mean``/``std`` when given;
    otherwise each image is rescaled by its own minimum and maximum.

    Parameters
    ----------
    images : tensor or array, N×C×H×W or C×H×W, C in {1, 3}
    mean, std : sequence of float, optional
        The normalization that was applied, to undo it.
    name : str
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray of shape (N, H, W, C), float in [0, 1]

    Examples
    --------
    >>> to_display_array(np.zeros((2, 3, 4, 4), dtype=np.uint8)).shape
    (2, 4, 4, 3)
    """
    arr = _as_numpy(images, name)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"{name} must be N×C×H×W or C×H×W, got shape {tuple(arr.shape)}")
    if arr.shape[1] not in (1, 3):
        raise ValueError(
            f"{name} must have 1 or 3 channels in dimension 1 (N×C×H×W), got shape {tuple(arr.shape)}; "
            "for feature maps with many channels use show_feature_maps"
        )
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    elif arr.dtype == bool:
        out = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.number):
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError(f"{name} contains NaN or inf values")
        if (mean is None) != (std is None):
            raise ValueError("pass both mean and std to undo a normalization, or neither")
        if mean is not None:
            m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
            s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
            if m.shape[1] != out.shape[1] or s.shape[1] != out.shape[1]:
                raise ValueError(f"mean and std need one value per channel ({out.shape[1]}), got {m.shape[1]} and {s.shape[1]}")
            out = out * s + m
        elif out.min() < 0.0 or out.max() > 1.0:
            lo = out.min(axis=(1, 2, 3), keepdims=True)
            hi = out.max(axis=(1, 2, 3), keepdims=True)
            out = (out - lo) / np.maximum(hi - lo, 1e-12)
    else:
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    out = np.clip(out, 0.0, 1.0)
    return np.transpose(out, (0, 2, 3, 1))


def show_images(
    images: Any,
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 8,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    size: float = 1.6,
    suptitle: str | None = None,
) -> Figure:
    """Show a grid of images with optional titles.

    Parameters
    ----------
    images : tensor or array, N×C×H×W or C×H×W
        uint8 in [0, 255], floats in [0, 1], or normalized floats (see ``mean``/``std``).
    titles : sequence of str, optional
        One title per image.
    ncols : int
        Images per row.
    mean, std : sequence of float, optional
        Undo this normalization before showing.
    size : float
        Inches per image.
    suptitle : str, optional
        A title for the whole grid.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import torch
    >>> fig = show_images(torch.rand(4, 3, 8, 8), titles=["a", "b", "c", "d"])
    >>> len(fig.axes)
    4
    """
    arr = to_display_array(images, mean=mean, std=std)
    n = arr.shape[0]
    if titles is not None:
        titles = list(titles)
        if len(titles) != n:
            raise ValueError(f"titles has {len(titles)} entries but there are {n} images")
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = new_figure(nrows, ncols, size=(size * ncols, size * nrows + (0.3 if suptitle else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        img = arr[i]
        if img.shape[-1] == 1:
            ax.imshow(img[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
        else:
            ax.imshow(img)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def show_kernels(
    weight: Any,
    *,
    ncols: int = 8,
    max_kernels: int = 64,
    in_channel: int | None = None,
    title: str | None = None,
    annotate: bool | None = None,
    size: float = 1.1,
) -> Figure:
    """Draw convolution kernels.

    A weight of shape ``(out, 3, kh, kw)`` is drawn as RGB patches (each kernel rescaled to its own
    range), unless ``in_channel`` picks one input channel. Otherwise each kernel's chosen input
    channel (default 0) is drawn on a diverging colour map centred at zero, so positive and
    negative taps are told apart; small kernels get their values written in.

    Parameters
    ----------
    weight : tensor or array, (out, in, kh, kw) or (kh, kw) or (n, kh, kw)
    ncols : int
        Kernels per row.
    max_kernels : int
        Draw at most this many (the first ones).
    in_channel : int, optional
        Which input channel to draw for each kernel.
    title : str, optional
    annotate : bool, optional
        Write the values in the cells; defaults to True for at most 16 kernels of at most 5×5.
    size : float
        Inches per kernel.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import torch
    >>> fig = show_kernels(torch.randn(8, 3, 3, 3))
    >>> len(fig.axes)
    8
    """
    w = _as_numpy(weight, "weight").astype(np.float32)
    if w.ndim == 2:
        w = w[None, None]
    elif w.ndim == 3:
        w = w[:, None]
    if w.ndim != 4:
        raise ValueError(f"weight must be (out, in, kh, kw), (n, kh, kw) or (kh, kw), got shape {tuple(w.shape)}")
    if not np.isfinite(w).all():
        raise ValueError("weight contains NaN or inf values")
    if in_channel is not None and not (0 <= in_channel < w.shape[1]):
        raise ValueError(f"in_channel must be in [0, {w.shape[1] - 1}], got {in_channel}")
    n = min(w.shape[0], max_kernels)
    w = w[:n]
    rgb = w.shape[1] == 3 and in_channel is None
    kh, kw = w.shape[2], w.shape[3]
    if annotate is None:
        annotate = (not rgb) and n <= 16 and kh <= 5 and kw <= 5
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = new_figure(nrows, ncols, size=(size * ncols + (0.6 if not rgb else 0), size * nrows + 0.3), squeeze=False)
    channel = 0 if in_channel is None else in_channel
    limit = float(np.abs(w[:, channel]).max()) or 1.0
    image = None
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        if rgb:
            k = w[i].transpose(1, 2, 0)
            k = (k - k.min()) / max(float(k.max() - k.min()), 1e-12)
            ax.imshow(k)
        else:
            k = w[i, channel]
            image = ax.imshow(k, cmap="RdBu_r", vmin=-limit, vmax=limit)
            if annotate:
                for (r, c), v in np.ndenumerate(k):
                    ax.text(c, r, f"{v:.2g}", ha="center", va="center", fontsize=7,
                            color="white" if abs(v) > 0.6 * limit else "black")
        ax.set_title(f"#{i}", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8)
    fig.suptitle(title or (f"{n} kernels, {kh}×{kw}" + (" (RGB)" if rgb else f", input channel {channel}")))
    return fig


def show_feature_maps(
    maps: Any,
    *,
    ncols: int = 8,
    max_maps: int = 32,
    title: str | None = None,
    cmap: str = "viridis",
    size: float = 1.3,
) -> Figure:
    """Draw the channels of a feature map, one panel per channel.

    Parameters
    ----------
    maps : tensor or array, C×H×W or 1×C×H×W
        The activations of one image.
    ncols : int
        Panels per row.
    max_maps : int
        Draw at most this many channels.
    title : str, optional
        Defaults to the shape, e.g. "32 of 64 channels, 16×16".
    cmap : str
        Colour map; each panel uses its own range.
    size : float
        Inches per panel.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import torch
    >>> fig = show_feature_maps(torch.rand(1, 6, 5, 5))
    >>> len(fig.axes)
    6
    """
    m = _as_numpy(maps, "maps").astype(np.float32)
    if m.ndim == 4:
        if m.shape[0] != 1:
            raise ValueError(f"maps must hold one image (C×H×W or 1×C×H×W), got batch of {m.shape[0]}; index one image first")
        m = m[0]
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"maps must be C×H×W or 1×C×H×W, got shape {tuple(m.shape)}")
    c = m.shape[0]
    n = min(c, max_maps)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = new_figure(nrows, ncols, size=(size * ncols, size * nrows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(m[i], cmap=cmap)
        ax.set_title(f"ch {i}", fontsize=8)
    shown = f"{n} of {c} channels" if n < c else f"{c} channels"
    fig.suptitle(title or f"{shown}, {m.shape[1]}×{m.shape[2]}")
    return fig


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

_HISTORY_KEYS = ("train_loss", "test_loss", "train_acc", "test_acc")


def _history_dict(history: Any, name: str) -> dict[str, list[float]]:
    if hasattr(history, "to_dict") and callable(history.to_dict):
        history = history.to_dict()
    if not isinstance(history, Mapping):
        raise TypeError(f"{name} must be a History or a dict of per-epoch lists, got {type(history).__name__}")
    found = [k for k in _HISTORY_KEYS if k in history and history[k] is not None and len(history[k])]
    if not found:
        raise ValueError(f"{name} has none of the keys {list(_HISTORY_KEYS)} with values; got keys {sorted(history)}")
    lengths = {len(history[k]) for k in found}
    if len(lengths) != 1:
        raise ValueError(f"{name}: the per-epoch lists have different lengths {sorted(lengths)}")
    return {k: [float(v) for v in history[k]] for k in list(found) + (["epoch"] if "epoch" in history else [])}


def plot_history(history: Any, *, title: str | None = None) -> Figure:
    """Plot loss and accuracy per epoch, for one run or several side by side.

    Parameters
    ----------
    history : History, dict of lists, or dict of name -> History
        A run's history (``train_loss``, ``test_loss``, ``train_acc``, ``test_acc`` lists; any may be
        missing), or several runs keyed by name to compare them on the same axes.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: loss and accuracy against the epoch.

    Examples
    --------
    >>> fig = plot_history({"train_loss": [2.0, 1.5], "test_acc": [0.4, 0.5]})
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['loss', 'accuracy']
    """
    if isinstance(history, Mapping) and history and all(
        hasattr(v, "to_dict") or isinstance(v, Mapping) for v in history.values()
    ):
        runs = {str(k): _history_dict(v, f"history[{k!r}]") for k, v in history.items()}
    else:
        runs = {"": _history_dict(history, "history")}
    fig, (ax_loss, ax_acc) = new_figure(1, 2, size=(9.0, 3.4))
    for i, (run, h) in enumerate(runs.items()):
        colour = PALETTE[i % len(PALETTE)]
        n = len(next(v for k, v in h.items() if k != "epoch"))
        epochs = h.get("epoch") or list(range(1, n + 1))
        prefix = f"{run}: " if run else ""
        for key, ax, style in (
            ("train_loss", ax_loss, "--"),
            ("test_loss", ax_loss, "-"),
            ("train_acc", ax_acc, "--"),
            ("test_acc", ax_acc, "-"),
        ):
            if key in h:
                ax.plot(epochs, h[key], style, marker="o", markersize=3, color=colour,
                        label=f"{prefix}{key.split('_')[0]}")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_confusion_matrix(
    cm: Any,
    classes: Sequence[str] | None = None,
    *,
    normalize: bool = True,
    title: str | None = None,
) -> Figure:
    """Draw a confusion matrix, rows the true class and columns the predicted one.

    Parameters
    ----------
    cm : tensor or array, C×C of counts
    classes : sequence of str, optional
        Class names for the axes.
    normalize : bool
        Show each row as fractions of its true class (the counts are written in the cells).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_confusion_matrix(np.array([[5, 1], [2, 7]]), ["cat", "dog"])
    >>> fig.axes[0].get_xlabel()
    'predicted'
    """
    m = _as_numpy(cm, "cm")
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"cm must be a square C×C matrix, got shape {tuple(m.shape)}")
    if np.issubdtype(m.dtype, np.floating) and not np.isfinite(m).all():
        raise ValueError("cm contains NaN or inf values")
    if (m < 0).any():
        raise ValueError("cm holds counts and cannot be negative")
    c = m.shape[0]
    if classes is not None and len(classes) != c:
        raise ValueError(f"classes has {len(classes)} names but cm is {c}×{c}")
    counts = m.astype(np.int64) if np.issubdtype(m.dtype, np.integer) else m
    shown = m / np.maximum(m.sum(axis=1, keepdims=True), 1) if normalize else m
    side = max(4.0, 0.55 * c + 1.5)
    fig, ax = new_figure(size=(side + 1.0, side))
    image = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    ax.grid(False)
    ticks = list(range(c))
    labels = list(classes) if classes is not None else [str(i) for i in ticks]
    ax.set_xticks(ticks, labels, rotation=45, ha="right")
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if c <= 20:
        top = float(shown.max()) or 1.0
        for (r, col), v in np.ndenumerate(shown):
            ax.text(col, r, f"{counts[r, col]:g}", ha="center", va="center", fontsize=7,
                    color="white" if v > 0.5 * top else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of true class" if normalize else "count")
    ax.set_title(title or ("confusion matrix (rows sum to 1)" if normalize else "confusion matrix"))
    return fig
