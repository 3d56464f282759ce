"""Drawings of convolution arithmetic: sliding windows over grids of pixels.

In the manner of Dumoulin and Visin's convolution-arithmetic figures (drawn from scratch here):
the padded input grid with the kernel footprint on it, the output grid beside it, and the size
formula with the numbers put in. Every function validates its configuration through
:mod:`course_utils.shapes`, so a configuration PyTorch rejects raises the same ``ValueError``
here, and every function returns a :class:`matplotlib.figure.Figure` without calling pyplot.
"""
from __future__ import annotations

import math
from typing import Any, Sequence, Union

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .plots import PALETTE, new_figure
from .shapes import conv_out_2d, pool_out_2d

__all__ = [
    "window_coverage",
    "draw_conv_arithmetic",
    "conv_arithmetic_frames",
    "draw_pool_windows",
    "draw_multichannel_conv",
    "draw_conv_output_channels",
    "draw_zero_insertion",
]

IntOrPair = Union[int, Sequence[int]]

# Colours of the drawings: padding grey, input light blue, kernel taps orange, output green.
_PAD = "#d9d9d9"
_INPUT = "#cfe3f3"
_TAP = PALETTE[1]
_OUTPUT = "#cdebdc"
_CURRENT = PALETTE[2]
_UNREACHED = PALETTE[3]


def _pair(value: IntOrPair) -> tuple[int, int]:
    # Called only after shapes has validated the value, so it is an int or a pair of ints.
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _config(in_size, kernel_size, stride, padding, dilation):
    out = conv_out_2d(in_size, kernel_size, stride=stride, padding=padding, dilation=dilation)
    return (_pair(in_size), _pair(kernel_size), _pair(stride), _pair(padding), _pair(dilation), out)


def _axis_coverage(n: int, k: int, s: int, p: int, d: int, out: int) -> np.ndarray:
    """How many kernel taps land on each of the ``n`` real input positions along one axis."""
    counts = np.zeros(n + 2 * p, dtype=np.int64)
    for i in range(out):
        counts[i * s + d * np.arange(k)] += 1
    return counts[p : p + n]


def window_coverage(
    in_size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """How many times a convolution's kernel taps touch each input pixel.

    A zero marks a pixel that no window ever reaches: it happens on the bottom and right edges when
    ``(in + 2*padding - dilation*(kernel-1) - 1)`` is not a multiple of ``stride`` (the floor in the
    size formula drops the last, incomplete window), and inside the input when ``stride`` and
    ``dilation`` together skip positions.

    Parameters
    ----------
    in_size, kernel_size, stride, padding, dilation : int or (int, int)
        As for ``nn.Conv2d``.

    Returns
    -------
    numpy.ndarray of int, shape (in_height, in_width)
        The count for each input pixel (padding excluded).

    Raises
    ------
    ValueError
        For any configuration ``nn.Conv2d`` rejects (see :func:`course_utils.shapes.conv_out_2d`).

    Examples
    --------
    >>> window_coverage(5, 2, stride=2)[0].tolist()
    [1, 1, 1, 1, 0]
    """
    (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = _config(
        in_size, kernel_size, stride, padding, dilation
    )
    rows = _axis_coverage(h, kh, sh, ph, dh, oh)
    cols = _axis_coverage(w, kw, sw, pw, dw, ow)
    return np.outer(rows, cols)


def _formula(n: int, k: int, s: int, p: int, d: int) -> str:
    eff = d * (k - 1) + 1
    top = n + 2 * p - eff
    return f"⌊({n} + 2·{p} − {eff}) / {s}⌋ + 1 = ⌊{top}/{s}⌋ + 1 = {top // s + 1}"


def _formula_caption(in_hw, k_hw, s_hw, p_hw, d_hw) -> str:
    rows = _formula(in_hw[0], k_hw[0], s_hw[0], p_hw[0], d_hw[0])
    if (in_hw[0], k_hw[0], s_hw[0], p_hw[0], d_hw[0]) == (in_hw[1], k_hw[1], s_hw[1], p_hw[1], d_hw[1]):
        return f"out = {rows}"
    cols = _formula(in_hw[1], k_hw[1], s_hw[1], p_hw[1], d_hw[1])
    return f"height: {rows}\nwidth: {cols}"


def _parse_step(step: Any, out_hw: tuple[int, int]) -> tuple[int, int] | None:
    if step is None:
        return None
    oh, ow = out_hw
    if isinstance(step, (bool, np.bool_)):
        raise TypeError(f"step must be an int, a (row, col) pair or None, got {step!r}")
    if isinstance(step, (int, np.integer)):
        if not 0 <= int(step) < oh * ow:
            raise ValueError(
                f"step must be between 0 and {oh * ow - 1} (the output has {oh}×{ow} positions), got {step}"
            )
        return divmod(int(step), ow)
    if isinstance(step, (tuple, list)) and len(step) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in step
    ):
        r, c = int(step[0]), int(step[1])
        if not (0 <= r < oh and 0 <= c < ow):
            raise ValueError(f"step (row, col) must lie inside the {oh}×{ow} output, got {(r, c)}")
        return r, c
    raise TypeError(f"step must be an int, a (row, col) pair or None, got {step!r}")


def _draw_on(ax, in_hw, k_hw, s_hw, p_hw, d_hw, out_hw, position, mark_unreached: bool) -> None:
    """Draw the padded input, a window (or all windows faintly) and the output on one Axes."""
    (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = in_hw, k_hw, s_hw, p_hw, d_hw, out_hw
    H, W = h + 2 * ph, w + 2 * pw
    for r in range(H):
        for c in range(W):
            is_pad = r < ph or r >= ph + h or c < pw or c >= pw + w
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=_PAD if is_pad else _INPUT,
                                   edgecolor="white" if is_pad else "#7f9fb8", linewidth=0.8,
                                   hatch="//" if is_pad else None))
    if mark_unreached:
        cov = np.outer(_axis_coverage(h, kh, sh, ph, dh, oh), _axis_coverage(w, kw, sw, pw, dw, ow))
        for r, c in zip(*np.nonzero(cov == 0)):
            ax.plot([c + pw + 0.2, c + pw + 0.8], [r + ph + 0.2, r + ph + 0.8], color=_UNREACHED, lw=1.5)
            ax.plot([c + pw + 0.2, c + pw + 0.8], [r + ph + 0.8, r + ph + 0.2], color=_UNREACHED, lw=1.5)
    eff_h, eff_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if position is None:
        for i in range(oh):
            for j in range(ow):
                ax.add_patch(Rectangle((j * sw, i * sh), eff_w, eff_h, fill=False, edgecolor=_TAP,
                                       linewidth=1.4, alpha=0.6))
    else:
        i, j = position
        for a in range(kh):
            for b in range(kw):
                ax.add_patch(Rectangle((j * sw + b * dw + 0.12, i * sh + a * dh + 0.12), 0.76, 0.76,
                                       facecolor=_TAP, edgecolor="none", alpha=0.85))
        ax.add_patch(Rectangle((j * sw, i * sh), eff_w, eff_h, fill=False, edgecolor=_TAP, linewidth=2.0))
    # The output grid sits to the right, vertically centred on the input.
    x0 = W + 1.5
    y0 = (H - oh) / 2
    for r in range(oh):
        for c in range(ow):
            current = position is not None and (r, c) == tuple(position)
            ax.add_patch(Rectangle((x0 + c, y0 + r), 1, 1, facecolor=_CURRENT if current else _OUTPUT,
                                   edgecolor="#5f9f7f", linewidth=0.8))
    ax.annotate("", xy=(x0 - 0.2, H / 2), xytext=(W + 0.2, H / 2),
                arrowprops=dict(arrowstyle="->", color="0.4"))
    ax.text(W / 2, H + 0.3, f"input {h}×{w}" + (f", padding {ph}" if ph == pw else f", padding {ph}×{pw}"),
            ha="center", va="top", fontsize=8)
    ax.text(x0 + ow / 2, y0 + oh + 0.3, f"output {oh}×{ow}", ha="center", va="top", fontsize=8)
    ax.set_xlim(-0.5, x0 + ow + 0.5)
    ax.set_ylim(H + 1.4, -0.5)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.grid(False)


def draw_conv_arithmetic(
    in_size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    *,
    step: int | tuple[int, int] | None = 0,
    mark_unreached: bool = True,
    title: str | None = None,
    size: float = 0.32,
) -> Figure:
    """Draw one position of a 2-D convolution's sliding window, with the size formula.

    Left: the input grid (padding cells grey and hatched), the kernel footprint at output
    position ``step`` with each tap filled (dilated taps leave gaps), and, with
    ``mark_unreached``, a red cross on every input pixel that no window ever reaches. Right: the
    output grid with the current output cell highlighted. The title is the formula
    ``⌊(in + 2·padding − dilation·(kernel−1) − 1)/stride⌋ + 1`` with the numbers substituted.

    Parameters
    ----------
    in_size, kernel_size, stride, padding, dilation : int or (int, int)
        As for ``nn.Conv2d``.
    step : int, (row, col) or None, default 0
        The output position to show, as a flat index in row-major order or a (row, col) pair;
        ``None`` outlines every window faintly.
    mark_unreached : bool, default True
        Cross out input pixels that no kernel tap ever touches.
    title : str, optional
        Replaces the formula title.
    size : float
        Inches per grid cell.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        For a configuration ``nn.Conv2d`` rejects, or a ``step`` outside the output.

    Examples
    --------
    >>> fig = draw_conv_arithmetic(5, 3, stride=2, padding=1, step=(1, 0))
    >>> fig.axes[0].get_title()
    'out = ⌊(5 + 2·1 − 3) / 2⌋ + 1 = ⌊4/2⌋ + 1 = 3'
    """
    in_hw, k_hw, s_hw, p_hw, d_hw, out_hw = _config(in_size, kernel_size, stride, padding, dilation)
    position = _parse_step(step, out_hw)
    width_cells = in_hw[1] + 2 * p_hw[1] + 2 + out_hw[1]
    height_cells = in_hw[0] + 2 * p_hw[0] + 2
    fig, ax = new_figure(size=(max(3.0, size * width_cells), max(2.0, size * height_cells + 0.6)))
    _draw_on(ax, in_hw, k_hw, s_hw, p_hw, d_hw, out_hw, position, mark_unreached)
    ax.set_title(title if title is not None else _formula_caption(in_hw, k_hw, s_hw, p_hw, d_hw), fontsize=9)
    return fig


def conv_arithmetic_frames(
    in_size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    *,
    steps: Sequence[int | tuple[int, int]] | None = None,
    max_frames: int = 4,
    ncols: int = 4,
    mark_unreached: bool = True,
    title: str | None = None,
    size: float = 0.22,
) -> Figure:
    """Several window positions of one convolution as small multiples, for a static figure.

    Parameters
    ----------
    in_size, kernel_size, stride, padding, dilation : int or (int, int)
        As for ``nn.Conv2d``.
    steps : sequence of int or (row, col), optional
        The output positions to draw; by default the first ``max_frames`` positions in
        row-major order, ending with the last one when there are more.
    max_frames : int
        How many frames to draw when ``steps`` is not given.
    ncols : int
        Frames per row.
    mark_unreached : bool
        Cross out input pixels that no window reaches.
    title : str, optional
        Replaces the formula, shown once above all frames.
    size : float
        Inches per grid cell.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes per frame, titled "output (row, col)".

    Examples
    --------
    >>> fig = conv_arithmetic_frames(4, 3, steps=[0, 1, 2, 3])
    >>> [ax.get_title() for ax in fig.axes][:2]
    ['output (0, 0)', 'output (0, 1)']
    """
    in_hw, k_hw, s_hw, p_hw, d_hw, out_hw = _config(in_size, kernel_size, stride, padding, dilation)
    n_out = out_hw[0] * out_hw[1]
    if steps is None:
        if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
            raise ValueError(f"max_frames must be a positive integer, got {max_frames!r}")
        if n_out <= max_frames:
            steps = list(range(n_out))
        else:
            steps = list(range(max_frames - 1)) + [n_out - 1]
    steps = list(steps)
    if not steps:
        raise ValueError("steps is empty: pass at least one output position, or None for the default")
    positions = [_parse_step(s, out_hw) for s in steps]
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    ncols = min(ncols, len(positions))
    nrows = math.ceil(len(positions) / ncols)
    width_cells = in_hw[1] + 2 * p_hw[1] + 2 + out_hw[1]
    height_cells = in_hw[0] + 2 * p_hw[0] + 2
    fig, axes = new_figure(nrows, ncols, size=(max(3.0, size * width_cells * ncols),
                                               size * height_cells * nrows + 0.7), squeeze=False)
    for ax in axes.flat[len(positions):]:
        ax.set_axis_off()
    for ax, pos in zip(axes.flat, positions):
        _draw_on(ax, in_hw, k_hw, s_hw, p_hw, d_hw, out_hw, pos, mark_unreached)
        ax.set_title(f"output {pos}", fontsize=8)
    fig.suptitle(title if title is not None else _formula_caption(in_hw, k_hw, s_hw, p_hw, d_hw), fontsize=9)
    return fig


def _as_matrix(x: Any) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().to("cpu").double().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(x, (list, tuple)):
        try:
            x = np.asarray(x, dtype=float)
        except (TypeError, ValueError):
            raise TypeError("x must be a 2-D tensor, array or nested list of numbers") from None
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a 2-D tensor or array, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-D matrix (height × width), got shape {tuple(x.shape)}; "
                         f"index one channel of one image first, e.g. x[0, 0]")
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"x must hold numbers, got dtype {x.dtype}")
    x = x.astype(float)
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or inf values")
    if x.shape[0] > 16 or x.shape[1] > 16:
        raise ValueError(f"x is {x.shape[0]}×{x.shape[1]}; draw_pool_windows writes every value, "
                         f"so pass a small matrix (at most 16×16)")
    return x


def draw_pool_windows(
    x: Any,
    kernel_size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    mode: str = "max",
    *,
    title: str | None = None,
    size: float = 0.5,
) -> Figure:
    """Draw a pooling layer at work on a small matrix: values, windows and the pooled output.

    Each window is outlined in its own colour on the input, and the output cell it produces has
    the same colour. For ``mode="max"`` the winning value in each window is written in bold.
    The output is computed by PyTorch (``F.max_pool2d`` / ``F.avg_pool2d``), so the drawing shows
    exactly what the layer does.

    Parameters
    ----------
    x : 2-D tensor, array or nested list, at most 16×16
        One channel of one image.
    kernel_size : int or (int, int), default 2
        Window size.
    stride : int or (int, int), optional
        Step between windows; defaults to ``kernel_size`` as in ``nn.MaxPool2d``.
    mode : {"max", "avg"}
        Max pooling or average pooling.
    title : str, optional
        Replaces the default title (the mode and the shapes).
    size : float
        Inches per cell.

    Returns
    -------
    matplotlib.figure.Figure
        Two Axes: the input with windows, and the output.

    Raises
    ------
    ValueError
        For a bad mode, a matrix that is not 2-D, or a window configuration PyTorch rejects.

    Examples
    --------
    >>> import torch
    >>> fig = draw_pool_windows(torch.arange(16.).reshape(4, 4), 2)
    >>> fig.axes[1].get_title()
    'output 2×2'
    """
    import torch
    import torch.nn.functional as F

    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    m = _as_matrix(x)
    if stride is None:
        stride = kernel_size
    oh, ow = pool_out_2d(m.shape, kernel_size, stride=stride)
    (kh, kw), (sh, sw) = _pair(kernel_size), _pair(stride)
    t = torch.from_numpy(m)[None, None]
    pooled = (F.max_pool2d if mode == "max" else F.avg_pool2d)(t, (kh, kw), (sh, sw))[0, 0].numpy()
    h, w = m.shape
    fig, (ax_in, ax_out) = new_figure(
        1, 2, size=(size * (w + ow) + 1.2, size * max(h, oh) + 0.9),
        gridspec_kw={"width_ratios": [max(w, 1), max(ow, 1)]},
    )
    fmt = (lambda v: f"{v:g}") if np.all(m == np.round(m)) and np.abs(m).max() < 1e4 else (lambda v: f"{v:.2f}")
    for ax in (ax_in, ax_out):
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.grid(False)
    for (r, c), v in np.ndenumerate(m):
        ax_in.add_patch(Rectangle((c, r), 1, 1, facecolor="white", edgecolor="0.6", linewidth=0.8))
    # Nine colours that tell apart (yellow is too pale for an outline): a 3×3 output, the common case
    # of 2×2 pooling on a 6×6 map, gets one colour per window, so every output cell names its window.
    colours = PALETTE[:6] + PALETTE[7:] + ["#882255", "#999933"]
    winners: set[tuple[int, int]] = set()
    for i in range(oh):
        for j in range(ow):
            colour = colours[(i * ow + j) % len(colours)]
            # Overlapping windows (stride < kernel) are inset a little each so their outlines stay apart.
            inset = 0.06 * ((i + j) % 3) if (sh < kh or sw < kw) else 0.04
            r0, c0 = i * sh, j * sw
            ax_in.add_patch(Rectangle((c0 + inset, r0 + inset), kw - 2 * inset, kh - 2 * inset, fill=False,
                                      edgecolor=colour, linewidth=2.2))
            ax_out.add_patch(Rectangle((j, i), 1, 1, facecolor=colour, alpha=0.35, edgecolor="0.4", linewidth=0.8))
            ax_out.text(j + 0.5, i + 0.5, fmt(float(pooled[i, j])) if mode == "max" else f"{pooled[i, j]:.2f}",
                        ha="center", va="center", fontsize=9)
            if mode == "max":
                window = m[r0 : r0 + kh, c0 : c0 + kw]
                a, b = np.unravel_index(int(np.argmax(window)), window.shape)
                winners.add((r0 + int(a), c0 + int(b)))
    for (r, c), v in np.ndenumerate(m):
        ax_in.text(c + 0.5, r + 0.5, fmt(float(v)), ha="center", va="center", fontsize=9,
                   fontweight="bold" if (r, c) in winners else "normal")
    ax_in.set_xlim(-0.1, w + 0.1)
    ax_in.set_ylim(h + 0.1, -0.1)
    ax_out.set_xlim(-0.1, ow + 0.1)
    ax_out.set_ylim(max(h, oh) + 0.1 - (max(h, oh) - oh) / 2, -0.1 - (max(h, oh) - oh) / 2)
    ax_in.set_title(f"input {h}×{w}", fontsize=9)
    ax_out.set_title(f"output {oh}×{ow}", fontsize=9)
    name = "max pooling" if mode == "max" else "average pooling"
    fig.suptitle(title if title is not None else f"{name}, kernel {kernel_size}, stride {stride}", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------
# Channels: how C_in input maps and C_out kernels make C_out output maps
# ---------------------------------------------------------------------------------------------

_MAX_CHANNEL_GRID = 8
_MAX_CHANNELS = 4


def _fmt_number(v: float) -> str:
    return f"{v:g}" if float(v).is_integer() and abs(v) < 1e4 else f"{v:.2f}"


def _grid(ax, m: np.ndarray, x0: float, y0: float, face: str, *, edge: str = "0.55",
          highlight: tuple[int, int] | None = None, highlight_face: str | None = None,
          label: str | None = None) -> None:
    """Draw matrix ``m`` cell by cell with its values, top-left corner at (x0, y0)."""
    for (r, c), v in np.ndenumerate(m):
        hot = highlight is not None and (r, c) == highlight
        ax.add_patch(Rectangle((x0 + c, y0 + r), 1, 1, facecolor=highlight_face if hot else face,
                               edgecolor=edge, linewidth=0.8))
        ax.text(x0 + c + 0.5, y0 + r + 0.5, _fmt_number(float(v)), ha="center", va="center", fontsize=8,
                fontweight="bold" if hot else "normal")
    if label:
        ax.text(x0 + m.shape[1] / 2, y0 - 0.25, label, ha="center", va="bottom", fontsize=8)


def _channel_inputs(x: Any, weight: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert a C_in×H×W input and a C_out×C_in×kh×kw weight to float arrays."""
    xs = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    ws = np.asarray(weight.detach().cpu().numpy() if hasattr(weight, "detach") else weight, dtype=np.float64)
    if xs.ndim == 2:
        xs = xs[None]
    if xs.ndim != 3:
        raise ValueError(f"x must be C_in×H×W (one image, no batch axis), got shape {tuple(xs.shape)}")
    if ws.ndim != 4:
        raise ValueError(f"weight must be C_out×C_in×kh×kw, got shape {tuple(ws.shape)}")
    c_in, h, w = xs.shape
    c_out, wc, kh, kw = ws.shape
    if wc != c_in:
        raise ValueError(f"weight has {wc} input channels (its axis 1) but x has {c_in}; they must match")
    if not (1 <= c_in <= _MAX_CHANNELS and 1 <= c_out <= _MAX_CHANNELS):
        raise ValueError(f"draw at most {_MAX_CHANNELS} input and output channels, got {c_in} and {c_out}")
    if max(h, w) > _MAX_CHANNEL_GRID:
        raise ValueError(f"x is {h}×{w}; draw inputs of at most {_MAX_CHANNEL_GRID}×{_MAX_CHANNEL_GRID} so the values stay readable")
    if kh > h or kw > w:
        raise ValueError(f"kernel {kh}×{kw} is larger than the input {h}×{w}; use a smaller kernel")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ws))):
        raise ValueError("x and weight must hold finite numbers")
    return xs, ws


def _correlate(x2: np.ndarray, k2: np.ndarray) -> np.ndarray:
    # Valid cross-correlation of one channel with one kernel slice (stride 1, no padding).
    kh, kw = k2.shape
    oh, ow = x2.shape[0] - kh + 1, x2.shape[1] - kw + 1
    return np.array([[float((x2[i:i + kh, j:j + kw] * k2).sum()) for j in range(ow)] for i in range(oh)])


def draw_multichannel_conv(
    x: Any,
    weight: Any,
    *,
    out_channel: int = 0,
    position: tuple[int, int] = (0, 0),
    bias: Any = None,
) -> Figure:
    """Draw how one output channel of a multi-channel convolution is made, at one output position.

    Each input channel is cross-correlated with its own slice of the kernel (one row of the
    drawing: input channel, kernel slice, partial map), and the ``C_in`` partial maps are added
    (plus the bias) into one output map. The window, the partial values and the output value at
    ``position`` are highlighted, and the sum for that position is written out below. Stride 1,
    no padding.

    Parameters
    ----------
    x : tensor or array, C_in×H×W (or H×W for one channel)
        One image, at most 8×8 with at most 4 channels, so that every value can be printed.
    weight : tensor or array, C_out×C_in×kh×kw
        The layer's weight (at most 4 output channels).
    out_channel : int, default 0
        Which output channel (which kernel) to draw.
    position : (int, int), default (0, 0)
        Output row and column whose window is highlighted.
    bias : sequence of C_out numbers, optional
        The layer's bias; ``None`` for none.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes. The output map equals ``F.conv2d(x[None], weight, bias)[0, out_channel]``.

    Raises
    ------
    ValueError
        For shapes that do not fit together, too many channels or pixels to draw, or an
        ``out_channel`` or ``position`` out of range.

    Examples
    --------
    >>> import torch
    >>> x = torch.stack([torch.arange(9.).reshape(3, 3), torch.arange(1., 10.).reshape(3, 3)])
    >>> k = torch.tensor([[[0., 1.], [2., 3.]], [[1., 2.], [3., 4.]]])[None]
    >>> fig = draw_multichannel_conv(x, k)
    >>> "= 56" in fig.axes[0].texts[-1].get_text()
    True
    """
    xs, ws = _channel_inputs(x, weight)
    c_in, h, w = xs.shape
    c_out, _, kh, kw = ws.shape
    if isinstance(out_channel, bool) or not isinstance(out_channel, (int, np.integer)) or not 0 <= out_channel < c_out:
        raise ValueError(f"out_channel must be an int in [0, {c_out - 1}], got {out_channel!r}")
    oh, ow = h - kh + 1, w - kw + 1
    try:
        i, j = (int(v) for v in position)
    except (TypeError, ValueError):
        raise ValueError(f"position must be a pair (row, column) of ints, got {position!r}") from None
    if not (0 <= i < oh and 0 <= j < ow):
        raise ValueError(f"position {position!r} is outside the {oh}×{ow} output; use rows 0..{oh - 1}, columns 0..{ow - 1}")
    b = 0.0
    if bias is not None:
        bs = np.asarray(bias.detach().cpu().numpy() if hasattr(bias, "detach") else bias, dtype=np.float64).ravel()
        if bs.shape != (c_out,):
            raise ValueError(f"bias must hold {c_out} values (one per output channel), got shape {tuple(bs.shape)}")
        b = float(bs[out_channel])

    partials = [_correlate(xs[c], ws[out_channel, c]) for c in range(c_in)]
    out = np.sum(partials, axis=0) + b
    band = max(h, kh, oh) + 1.6                       # height of one input-channel row
    x_kernel = w + 1.6
    x_partial = x_kernel + kw + 1.6
    x_out = x_partial + ow + 2.6
    fig, ax = new_figure(size=(0.42 * (x_out + ow + 0.6) + 0.4, 0.42 * band * c_in + 1.1))
    for c in range(c_in):
        y = c * band + 0.6
        _grid(ax, xs[c], 0, y, _INPUT, label=f"input channel {c}")
        ax.add_patch(Rectangle((j, y + i), kw, kh, fill=False, edgecolor=_TAP, linewidth=2.4))
        _grid(ax, ws[out_channel, c], x_kernel, y, "#fde3b8", label=f"kernel[{out_channel}, {c}]")
        _grid(ax, partials[c], x_partial, y, "#eeeeee", highlight=(i, j), highlight_face="#fde3b8",
              label=f"channel {c}'s share")
        ax.text(w + 0.8, y + min(h, kh) / 2, "⋆", ha="center", va="center", fontsize=20)
        ax.text(x_partial - 0.8, y + kh / 2, "=", ha="center", va="center", fontsize=12)
    total_h = c_in * band
    y_out = (total_h - oh) / 2 + 0.3
    ax.annotate("", xy=(x_out - 0.3, y_out + oh / 2), xytext=(x_partial + ow + 0.3, y_out + oh / 2),
                arrowprops=dict(arrowstyle="->", color="0.35"))
    ax.text((x_partial + ow + x_out) / 2, y_out + oh / 2 - 0.35, "sum" + (" + bias" if bias is not None else ""),
            ha="center", va="bottom", fontsize=8)
    _grid(ax, out, x_out, y_out, _OUTPUT, highlight=(i, j), highlight_face=_CURRENT,
          label=f"output channel {out_channel}")
    terms = " + ".join(_fmt_number(p[i, j]) for p in partials)
    if bias is not None:
        terms += f" − {_fmt_number(-b)}" if b < 0 else f" + {_fmt_number(b)}"
    ax.set_xlim(-0.3, x_out + ow + 0.3)
    ax.set_ylim(total_h + 0.9, -0.3)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.grid(False)
    ax.text((x_out + ow) / 2, total_h + 0.2,
            f"output[{out_channel}, {i}, {j}] = {terms} = {_fmt_number(out[i, j])}",
            ha="center", va="top", fontsize=9)
    fig.suptitle(f"{c_in} input channels × kernel {out_channel} ({c_in}×{kh}×{kw}) → one output map", fontsize=10)
    return fig


def draw_conv_output_channels(x: Any, weight: Any, bias: Any = None) -> Figure:
    """Draw a whole multi-channel convolution: ``C_out`` kernels, each ``C_in`` deep, make ``C_out`` maps.

    Row ``o`` shows kernel ``o`` (its ``C_in`` slices side by side) and the output map it makes
    from all input channels. The input channels are drawn once, on the left. Stride 1, no padding.

    Parameters
    ----------
    x : tensor or array, C_in×H×W (or H×W)
        One image, at most 8×8 with at most 4 channels.
    weight : tensor or array, C_out×C_in×kh×kw
        The layer's weight, at most 4 output channels.
    bias : sequence of C_out numbers, optional
        The layer's bias.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes; the maps equal ``F.conv2d(x[None], weight, bias)[0]``.

    Raises
    ------
    ValueError
        For shapes that do not fit together or too much to draw.

    Examples
    --------
    >>> import numpy as np
    >>> fig = draw_conv_output_channels(np.ones((2, 3, 3)), np.ones((3, 2, 2, 2)))
    >>> fig.axes[0].get_title()
    'weight 3×2×2×2: 3 kernels, each 2 channels deep → 3 output maps'
    """
    xs, ws = _channel_inputs(x, weight)
    c_in, h, w = xs.shape
    c_out, _, kh, kw = ws.shape
    bs = np.zeros(c_out)
    if bias is not None:
        bs = np.asarray(bias.detach().cpu().numpy() if hasattr(bias, "detach") else bias, dtype=np.float64).ravel()
        if bs.shape != (c_out,):
            raise ValueError(f"bias must hold {c_out} values (one per output channel), got shape {tuple(bs.shape)}")
    oh, ow = h - kh + 1, w - kw + 1
    in_band = h + 1.2
    out_band = max(kh, oh) + 1.4
    total_h = max(c_in * in_band, c_out * out_band)
    x_kernels = w + 2.6
    x_out = x_kernels + c_in * (kw + 0.6) + 2.0
    fig, ax = new_figure(size=(0.42 * (x_out + ow + 0.5) + 0.4, 0.42 * total_h + 1.0))
    y_in0 = (total_h - c_in * in_band) / 2
    for c in range(c_in):
        _grid(ax, xs[c], 0, y_in0 + c * in_band + 0.6, _INPUT, label=f"input channel {c}")
    y_k0 = (total_h - c_out * out_band) / 2
    for o in range(c_out):
        y = y_k0 + o * out_band + 0.6
        for c in range(c_in):
            _grid(ax, ws[o, c], x_kernels + c * (kw + 0.6), y, "#fde3b8",
                  label=f"[{o}, {c}]")
        ax.text(x_kernels - 0.3, y + kh / 2, f"kernel {o}", ha="right", va="center", fontsize=8)
        out = np.sum([_correlate(xs[c], ws[o, c]) for c in range(c_in)], axis=0) + bs[o]
        ax.annotate("", xy=(x_out - 0.3, y + oh / 2), xytext=(x_kernels + c_in * (kw + 0.6) - 0.3, y + kh / 2),
                    arrowprops=dict(arrowstyle="->", color="0.35"))
        _grid(ax, out, x_out, y, _OUTPUT, label=f"output channel {o}")
    ax.set_xlim(-1.6, x_out + ow + 0.3)
    ax.set_ylim(total_h + 0.3, -0.3)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.grid(False)
    ax.set_title(f"weight {c_out}×{c_in}×{kh}×{kw}: {c_out} kernels, each {c_in} channels deep → {c_out} output maps",
                 fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------
# Transposed convolution as zero insertion
# ---------------------------------------------------------------------------------------------

_ZERO = "#ffffff"


def draw_zero_insertion(in_size: int, kernel_size: int, stride: int = 2, padding: int = 0, *,
                        step: int = 0) -> Figure:
    """Draw a transposed convolution as an ordinary one on a stretched input.

    Left: the ``in_size×in_size`` input, its pixels numbered. Middle: the same pixels spread
    ``stride`` apart with ``stride - 1`` inserted zeros between them (white, "0"), and a border of
    ``kernel_size - 1 - padding`` zeros (grey, hatched); the orange window is one position of the
    ``kernel_size×kernel_size`` kernel (rotated by 180°, stride 1). Right: the output, whose size
    equals ``nn.ConvTranspose2d``'s (dilation 1, no ``output_padding``), with the cell that window
    produces highlighted.

    Parameters
    ----------
    in_size : int
        Input side, 1 to 6.
    kernel_size : int
        Kernel side.
    stride : int, default 2
        The transposed convolution's stride: ``stride - 1`` zeros go between neighbouring pixels.
    padding : int, default 0
        The transposed convolution's padding, at most ``kernel_size - 1`` (the border drawn is
        ``kernel_size - 1 - padding``).
    step : int, default 0
        Which output position (row-major) to draw the window at.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes; its title is the size formula with the numbers put in.

    Raises
    ------
    ValueError
        For a configuration PyTorch rejects, ``padding > kernel_size - 1``, an input larger than
        6, or a ``step`` outside the output.

    Examples
    --------
    >>> fig = draw_zero_insertion(3, 3, stride=2, padding=1)
    >>> fig.axes[0].get_title()
    'out = (3 − 1)·2 − 2·1 + 3 = 5'
    """
    from .shapes import conv_transpose_out

    out = conv_transpose_out(in_size, kernel_size, stride=stride, padding=padding)   # validates
    n, k, s, p = int(in_size), int(kernel_size), int(stride), int(padding)
    if n > 6:
        raise ValueError(f"in_size is {n}; draw inputs of at most 6 pixels a side so the grid stays readable")
    if p > k - 1:
        raise ValueError(f"padding {p} is more than kernel_size - 1 = {k - 1}; the zero-insertion picture "
                         "needs padding <= kernel_size - 1 (larger padding crops the output instead)")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 0 <= step < out * out:
        raise ValueError(f"step must be an int in [0, {out * out - 1}] (the {out}×{out} output, row-major), got {step!r}")
    border = k - 1 - p
    spread = (n - 1) * s + 1
    big = spread + 2 * border
    x_mid = n + 2.0
    x_out = x_mid + big + 2.0
    fig, ax = new_figure(size=(0.36 * (x_out + out + 0.5) + 0.3, 0.36 * max(big, out) + 1.4))
    y_in = (big - n) / 2
    for r in range(n):
        for c in range(n):
            ax.add_patch(Rectangle((c, y_in + r), 1, 1, facecolor=_INPUT, edgecolor="#7f9fb8", linewidth=0.8))
            ax.text(c + 0.5, y_in + r + 0.5, str(r * n + c + 1), ha="center", va="center", fontsize=8)
    for r in range(big):
        for c in range(big):
            rr, cc = r - border, c - border
            inside = 0 <= rr < spread and 0 <= cc < spread
            pixel = inside and rr % s == 0 and cc % s == 0
            if pixel:
                ax.add_patch(Rectangle((x_mid + c, r), 1, 1, facecolor=_INPUT, edgecolor="#7f9fb8", linewidth=0.8))
                ax.text(x_mid + c + 0.5, r + 0.5, str((rr // s) * n + cc // s + 1), ha="center", va="center", fontsize=8)
            elif inside:
                ax.add_patch(Rectangle((x_mid + c, r), 1, 1, facecolor=_ZERO, edgecolor="0.6", linewidth=0.8))
                ax.text(x_mid + c + 0.5, r + 0.5, "0", ha="center", va="center", fontsize=7, color="0.5")
            else:
                ax.add_patch(Rectangle((x_mid + c, r), 1, 1, facecolor=_PAD, edgecolor="white", linewidth=0.8,
                                       hatch="//"))
    i, j = divmod(int(step), out)
    ax.add_patch(Rectangle((x_mid + j, i), k, k, fill=False, edgecolor=_TAP, linewidth=2.2))
    y_out = (big - out) / 2
    for r in range(out):
        for c in range(out):
            ax.add_patch(Rectangle((x_out + c, y_out + r), 1, 1, facecolor=_CURRENT if (r, c) == (i, j) else _OUTPUT,
                                   edgecolor="#5f9f7f", linewidth=0.8))
    for x0, x1, y in ((n + 0.2, x_mid - 0.2, big / 2), (x_mid + big + 0.2, x_out - 0.2, big / 2)):
        ax.annotate("", xy=(x1, y), xytext=(x0, y), arrowprops=dict(arrowstyle="->", color="0.4"))
    ax.text(n / 2, y_in + n + 0.3, f"input {n}×{n}", ha="center", va="top", fontsize=8)
    ax.text(x_mid + big / 2, big + 0.3,
            f"{s - 1} zero{'s' if s - 1 != 1 else ''} between pixels, border {border}: {big}×{big}",
            ha="center", va="top", fontsize=8)
    ax.text(x_out + out / 2, y_out + out + 0.3, f"output {out}×{out}", ha="center", va="top", fontsize=8)
    ax.set_xlim(-0.3, x_out + out + 0.3)
    ax.set_ylim(max(big, out) + 1.3, -0.3)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.grid(False)
    ax.set_title(f"out = ({n} − 1)·{s} − 2·{p} + {k} = {out}", fontsize=10)
    return fig
