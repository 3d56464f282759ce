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
# Lessons 01 and 03: parameter growth, shift equivariance, kernel values, signed feature maps
# --------------------------------------------------------------------------------------------

__all__ += ["plot_first_layer_params", "plot_shift_comparison", "show_kernel_values", "show_signed_feature_maps"]


def plot_first_layer_params(
    sides: Sequence[int] = (8, 16, 32, 64, 128, 224, 512),
    *,
    units: int = 1000,
    channels: int = 3,
    out_channels: int = 64,
    kernel_size: int = 3,
    annotate: Sequence[int] = (32, 224),
) -> Figure:
    """Parameters of a first layer as the image grows: dense (``units`` neurons, and one neuron) against a conv.

    Parameters
    ----------
    sides : sequence of int
        Image sides (square ``channels×side×side`` images), drawn on a log-2 axis.
    units : int, default 1000
        Neurons of the dense layer.
    channels : int, default 3
        Input channels (3 for RGB).
    out_channels, kernel_size : int
        The conv layer, ``channels → out_channels`` with ``kernel_size×kernel_size`` kernels.
    annotate : sequence of int
        Sides at which the dense layer's count is written (in millions).

    Returns
    -------
    matplotlib.figure.Figure
        One Axes with three lines: "dense, {units:,} units", "dense, one neuron", and the conv.

    Examples
    --------
    >>> fig = plot_first_layer_params((8, 16))
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['dense, 1,000 units', 'dense, one neuron', 'conv 3×3, 3→64 channels']
    """
    from .shapes import conv_params, linear_params

    if isinstance(sides, (str, bytes)) or not isinstance(sides, Sequence) or not sides:
        raise ValueError(f"sides must be a non-empty sequence of image sides, got {sides!r}")
    s = [int(v) for v in sides]
    if any(v < 1 for v in s) or s != sorted(s):
        raise ValueError(f"sides must be positive and increasing, got {list(sides)}")
    dense = [linear_params(v * v * channels, units) for v in s]
    one = [linear_params(v * v * channels, 1) for v in s]
    conv = [conv_params(channels, out_channels, kernel_size)] * len(s)
    fig, ax = new_figure(size=(6.0, 3.6))
    ax.plot(s, dense, "o-", label=f"dense, {units:,} units")
    ax.plot(s, one, "s--", label="dense, one neuron")
    ax.plot(s, conv, "^-", label=f"conv {kernel_size}×{kernel_size}, {channels}→{out_channels} channels")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(s, [str(v) for v in s])
    ax.set_xlabel(f"image side (pixels), {channels} channel{'s' if channels > 1 else ''}")
    ax.set_ylabel("parameters (log scale)")
    ax.set_title("first-layer parameters as the image grows")
    ax.legend()
    for v, n in zip(s, dense):
        if v in annotate:
            ax.annotate(f"{n / 1e6:.1f} M", (v, n), textcoords="offset points", xytext=(-10, 8), fontsize=8)
    return fig


def plot_shift_comparison(
    x: Any,
    x_shifted: Any,
    shift_of_response: Any,
    response_of_shifted: Any,
    shift: tuple[int, int],
) -> Figure:
    """Four panels that show translation equivariance: x, shift(x), shift(conv(x)) and conv(shift(x)).

    The two responses are drawn as magnitudes in grey, with an orange frame around the region
    where they are compared: rows from ``dy`` and columns from ``dx`` on, where a shift made with
    ``torch.roll`` has not wrapped anything round.

    Parameters
    ----------
    x, x_shifted : tensor or array, H×W (or 1×1×H×W)
        The input and the shifted input.
    shift_of_response, response_of_shifted : tensor or array, H'×W' (or 1×1×H'×W')
        ``shift(conv(x))`` and ``conv(shift(x))``; they must have the same shape.
    shift : (int, int)
        ``(dy, dx)``, non-negative.

    Returns
    -------
    matplotlib.figure.Figure
        Four Axes; the last two carry the comparison frame.

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_shift_comparison(np.zeros((6, 6)), np.zeros((6, 6)), np.zeros((4, 4)), np.zeros((4, 4)), (1, 2))
    >>> [ax.get_title() for ax in fig.axes][1]
    'x shifted by (1, 2)'
    """
    from matplotlib.patches import Rectangle

    def grid(v, name):
        a = _as_numpy(v, name).astype(np.float64)
        a = a.reshape(a.shape[-2:]) if a.ndim > 2 and int(np.prod(a.shape[:-2])) == 1 else a
        if a.ndim != 2:
            raise ValueError(f"{name} must be one H×W map (or 1×1×H×W), got shape {tuple(a.shape)}")
        return a

    panels = [grid(x, "x"), grid(x_shifted, "x_shifted"), grid(shift_of_response, "shift_of_response"),
              grid(response_of_shifted, "response_of_shifted")]
    if panels[2].shape != panels[3].shape:
        raise ValueError(f"shift_of_response {panels[2].shape} and response_of_shifted {panels[3].shape} "
                         "must have the same shape: they are the two sides of the comparison")
    try:
        dy, dx = (int(v) for v in shift)
    except (TypeError, ValueError):
        raise ValueError(f"shift must be a pair (dy, dx) of ints, got {shift!r}") from None
    oh, ow = panels[2].shape
    if not (0 <= dy < oh and 0 <= dx < ow):
        raise ValueError(f"shift {shift!r} must be non-negative and smaller than the response, {oh}×{ow}")
    titles = ["x", f"x shifted by ({dy}, {dx})", "shift(conv(x))", "conv(shift(x))"]
    fig, axes = new_figure(1, 4, size=(11.0, 3.2))
    for i, (ax, a, t) in enumerate(zip(axes, panels, titles)):
        ax.imshow(np.abs(a) if i >= 2 else a, cmap="gray")
        ax.set_title(t, fontsize=9)
        ax.set_axis_off()
    for ax in axes[2:]:
        ax.add_patch(Rectangle((dx - 0.5, dy - 0.5), ow - dx, oh - dy, fill=False,
                               edgecolor=PALETTE[1], linewidth=1.5))
    fig.suptitle("the response moves with the picture (orange: where the two are compared)", fontsize=10)
    return fig


def _kernel_list(kernels: Any, name: str) -> list[np.ndarray]:
    if isinstance(kernels, Mapping):
        kernels = list(kernels.values())
    if isinstance(kernels, (list, tuple)):
        if not kernels:
            raise ValueError(f"{name} is empty: pass at least one kernel")
        out = [_as_numpy(k, name).astype(np.float64) for k in kernels]
    else:
        a = _as_numpy(kernels, name).astype(np.float64)
        out = [a] if a.ndim == 2 else list(a.reshape(-1, *a.shape[-2:]))
    out = [k.reshape(k.shape[-2:]) if k.ndim > 2 and int(np.prod(k.shape[:-2])) == 1 else k for k in out]
    for k in out:
        if k.ndim != 2:
            raise ValueError(f"each kernel in {name} must be a 2-D kh×kw matrix, got shape {tuple(k.shape)}")
        if max(k.shape) > 9:
            raise ValueError(f"kernels up to 9×9 can have their values written; got {k.shape[0]}×{k.shape[1]}")
    return out


def show_kernel_values(kernels: Any, *, titles: Sequence[str] | None = None, title: str | None = None,
                       size: float = 2.0, decimals: int = 2) -> Figure:
    """Draw small 2-D kernels side by side with every weight written in its cell.

    Colours use a diverging map centred at 0 (red positive, blue negative), one shared range for
    all panels so that equal weights look equal.

    Parameters
    ----------
    kernels : mapping of title -> kernel, sequence of kernels, or a tensor/array of them
        Each kernel is kh×kw (or 1×1×kh×kw), at most 9×9. A mapping supplies the titles.
    titles : sequence of str, optional
        One per kernel (ignored for a mapping).
    title : str, optional
        Figure title.
    size : float
        Inches per panel.
    decimals : int
        Decimals of the written values.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes per kernel.

    Examples
    --------
    >>> import numpy as np
    >>> fig = show_kernel_values({"Sobel x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], "zero": np.zeros((3, 3))})
    >>> [ax.get_title() for ax in fig.axes]
    ['Sobel x', 'zero']
    """
    if isinstance(kernels, Mapping):
        titles = [str(k) for k in kernels]
        kernels = [np.asarray(v, dtype=np.float64) if isinstance(v, (list, tuple)) else v for v in kernels.values()]
    mats = _kernel_list(kernels, "kernels")
    if titles is not None and len(titles) != len(mats):
        raise ValueError(f"got {len(titles)} titles for {len(mats)} kernels; pass one title per kernel")
    limit = max(float(np.abs(m).max()) for m in mats) or 1.0
    fig, axes = new_figure(1, len(mats), size=(size * len(mats), size + 0.5), squeeze=False)
    for i, (ax, m) in enumerate(zip(axes[0], mats)):
        ax.imshow(m, cmap="RdBu_r", vmin=-limit, vmax=limit)
        for (r, c), v in np.ndenumerate(m):
            v = round(float(v), decimals) + 0.0          # + 0.0 turns -0.0 into 0.0
            ax.text(c, r, f"{v:.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"{v:.0f}",
                    ha="center", va="center", fontsize=9,
                    color="white" if abs(v) > 0.6 * limit else "black")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def show_signed_feature_maps(maps: Any, *, titles: Sequence[str] | None = None, ncols: int = 4,
                             size: float = 2.4, title: str | None = None) -> Figure:
    """Draw feature maps whose values have a sign, on a diverging colour map centred at 0.

    Each panel gets its own symmetric range ``[-m, m]`` (``m`` its largest magnitude) and its own
    colour bar, so white is always 0, red positive and blue negative. Use it for maps before a
    ReLU (edge responses, colour differences); :func:`show_feature_maps` suits maps that are
    all of one sign.

    Parameters
    ----------
    maps : tensor or array, C×H×W or 1×C×H×W
        The activations of one image.
    titles : sequence of str, optional
        One per channel; defaults to "ch 0", "ch 1", ...
    ncols : int
        Panels per row.
    size : float
        Inches per panel.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One image Axes per channel, plus one colour-bar Axes each.

    Examples
    --------
    >>> import numpy as np
    >>> fig = show_signed_feature_maps(np.array([[[-1.0, 2.0], [0.0, 1.0]]]))
    >>> fig.axes[0].images[0].get_clim()
    (-2.0, 2.0)
    """
    m = _as_numpy(maps, "maps").astype(np.float64)
    if m.ndim == 4 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 3:
        raise ValueError(f"maps must be C×H×W or 1×C×H×W (one image), got shape {tuple(m.shape)}")
    c = m.shape[0]
    if titles is not None and len(titles) != c:
        raise ValueError(f"got {len(titles)} titles for {c} channels; pass one title per channel")
    ncols = max(1, min(int(ncols), c))
    nrows = math.ceil(c / ncols)
    fig, axes = new_figure(nrows, ncols, size=(size * ncols * 1.15, size * nrows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= c:
            continue
        limit = float(np.abs(m[i]).max()) or 1.0
        image = ax.imshow(m[i], cmap="RdBu_r", vmin=-limit, vmax=limit)
        fig.colorbar(image, ax=ax, shrink=0.8)
        ax.set_title(titles[i] if titles is not None else f"ch {i}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
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


# --------------------------------------------------------------------------------------------
# Training pictures for lessons 06-07: curves labelled by what was measured, the learning-rate
# schedule, per-layer activation statistics. (Appended; they use only the helpers above.)
# --------------------------------------------------------------------------------------------

__all__ += ["plot_training", "plot_lr_schedule", "plot_activation_stats"]


def plot_training(history: Any, *, title: str | None = None) -> Figure:
    """Loss and accuracy per epoch, with the held-out curve named after what it measured.

    Like :func:`plot_history`, but a run trained on a validation split (``history.eval_set ==
    "validation"``) is labelled "validation", not "test", and a run with ``train_eval_acc``
    (``fit(..., eval_train=True)``) also shows the training accuracy measured in evaluation mode
    (dotted).

    Parameters
    ----------
    history : History or dict of name -> History
        One run, or several keyed by name to compare on the same axes.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: loss and accuracy against the epoch.

    Examples
    --------
    >>> from course_utils.train import History
    >>> fig = plot_training(History(epoch=[1, 2], train_loss=[2, 1], test_loss=[2, 1.5],
    ...                             train_acc=[.3, .5], test_acc=[.3, .4], eval_set="validation"))
    >>> sorted(line.get_label() for line in fig.axes[1].lines)
    ['train', 'validation']
    """
    if hasattr(history, "to_dict"):
        runs = {"": history}
    elif isinstance(history, Mapping) and history and all(hasattr(v, "to_dict") for v in history.values()):
        runs = {str(k): v for k, v in history.items()}
    else:
        raise TypeError("history must be a History from fit or a dict of name -> History, "
                        f"got {type(history).__name__}")
    fig, (ax_loss, ax_acc) = new_figure(1, 2, size=(9.0, 3.4))
    for i, (run, h) in enumerate(runs.items()):
        colour = PALETTE[i % len(PALETTE)]
        epochs = list(h.epoch) or list(range(1, len(h.test_acc) + 1))
        held_out = getattr(h, "eval_set", "test")
        prefix = f"{run}: " if run else ""
        for values, ax, style, label in (
            (h.train_loss, ax_loss, "--", "train"),
            (h.test_loss, ax_loss, "-", held_out),
            (h.train_acc, ax_acc, "--", "train"),
            (h.test_acc, ax_acc, "-", held_out),
            (getattr(h, "train_eval_acc", []), ax_acc, ":", "train (eval mode)"),
        ):
            if len(values) == len(epochs) and len(values):
                ax.plot(epochs, values, style, marker="o", markersize=3, color=colour, label=prefix + label)
    for ax, name in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_lr_schedule(lrs: Sequence[float], steps_per_epoch: int | None = None, *, title: str | None = None) -> Figure:
    """The learning rate at every training step, with the epoch boundaries marked.

    Parameters
    ----------
    lrs : sequence of float
        One learning rate per step (``course_utils.train.lr_schedule``).
    steps_per_epoch : int, optional
        Draw a faint vertical line at the start of every epoch.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_lr_schedule([0.1, 0.5, 1.0, 0.5, 0.0], steps_per_epoch=2)
    >>> fig.axes[0].get_ylabel()
    'learning rate'
    """
    values = np.asarray(list(lrs), dtype=float)
    if values.ndim != 1 or len(values) == 0 or not np.all(np.isfinite(values)):
        raise ValueError("lrs must be a non-empty sequence of finite learning rates, one per step")
    fig, ax = new_figure(1, 1, size=(6.0, 2.8))
    ax.plot(np.arange(len(values)), values, color=PALETTE[0])
    if steps_per_epoch:
        for start in range(steps_per_epoch, len(values), steps_per_epoch):
            ax.axvline(start, color="0.8", linewidth=0.8, zorder=0)
    ax.set_xlabel("training step" + (" (grey lines: new epoch)" if steps_per_epoch else ""))
    ax.set_ylabel("learning rate")
    ax.set_title(title or "learning-rate schedule")
    return fig


def plot_activation_stats(recorders: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """Per-layer mean and standard deviation of the activations over training, one row per run.

    Parameters
    ----------
    recorders : dict of name -> ActivationRecorder
        Runs to compare (``course_utils.train.ActivationRecorder`` after training).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        ``len(recorders)`` rows × 2 panels (mean, std), one line per layer, log scale for the std.

    Examples
    --------
    >>> class Rec:
    ...     names, steps = ["relu 1"], [0, 1]
    ...     means, stds = {"relu 1": [0.5, 0.4]}, {"relu 1": [1.0, 0.8]}
    >>> fig = plot_activation_stats({"plain": Rec()})
    >>> len(fig.axes)
    2
    """
    if not isinstance(recorders, Mapping) or not recorders:
        raise ValueError("recorders must be a non-empty dict of name -> ActivationRecorder")
    fig, axes = new_figure(len(recorders), 2, size=(9.0, 2.6 * len(recorders)), squeeze=False)
    for row, (run, rec) in enumerate(recorders.items()):
        for name_i, name in enumerate(rec.names):
            colour = PALETTE[name_i % len(PALETTE)]
            steps = rec.steps[: len(rec.means[name])]
            axes[row][0].plot(steps, rec.means[name], color=colour, label=name)
            axes[row][1].plot(steps, rec.stds[name], color=colour, label=name)
        axes[row][0].set_title(f"{run}: mean of each layer's output")
        axes[row][1].set_title(f"{run}: std of each layer's output")
        axes[row][1].set_yscale("log")
        for ax in axes[row]:
            ax.set_xlabel("training step")
        axes[row][1].legend(fontsize=7, ncols=2)
    if title:
        fig.suptitle(title)
    return fig
