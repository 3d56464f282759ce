"""Interactive explorers for the lessons, each built on a pure render function.

A render function takes plain arguments and returns a Figure (and text); tests call it without a
browser. The widget factory only wires ipywidgets controls to it. Widgets show their output by
replacing the ``outputs`` of an :class:`ipywidgets.Output` with a PNG of the figure, so they work
the same in JupyterLab, in VS Code and in a test with no kernel, and no figure is left open.
"""
from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from .diagrams import draw_conv_arithmetic, window_coverage
from .plots import new_figure
from .shapes import conv_out, conv_out_2d

__all__ = [
    "PRESET_KERNELS",
    "apply_kernel",
    "render_kernel_filter",
    "kernel_explorer",
    "output_size_summary",
    "render_output_size",
    "output_size_explorer",
    "show_figure_in",
]

# Hand-made 3×3 filters of lesson 01. Blur kernels sum to 1 (brightness kept), edge detectors to 0.
PRESET_KERNELS: dict[str, list[list[float]]] = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "box blur": [[1 / 9] * 3, [1 / 9] * 3, [1 / 9] * 3],
    "Gaussian blur": [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "Sobel x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "Sobel y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "Laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
}

_CUSTOM = "(custom)"


# --------------------------------------------------------------------------------------------
# Output plumbing
# --------------------------------------------------------------------------------------------


def _figure_png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def show_figure_in(output: Any, fig: Figure | None, text: str = "") -> None:
    """Replace what an ``ipywidgets.Output`` shows with a figure (as PNG) and a line of text.

    Setting ``outputs`` directly, rather than ``display`` inside ``with output:``, works without
    a running kernel (so tests can read it) and drops the figure afterwards.

    Parameters
    ----------
    output : ipywidgets.Output
    fig : Figure or None
        The figure to show; ``None`` shows only the text.
    text : str
        Shown under the figure as plain text.

    Examples
    --------
    >>> import ipywidgets
    >>> out = ipywidgets.Output()
    >>> show_figure_in(out, None, "hello")
    >>> out.outputs[0]["text"]
    'hello\\n'
    """
    items: list[dict] = []
    if fig is not None:
        title = fig._suptitle.get_text() if fig._suptitle is not None else ""
        if not title and fig.axes:
            title = fig.axes[0].get_title()
        items.append({
            "output_type": "display_data",
            "data": {"image/png": _figure_png(fig), "text/plain": f"<Figure: {title}>"},
            "metadata": {},
        })
    if text:
        items.append({"output_type": "stream", "name": "stdout", "text": text + "\n"})
    output.outputs = tuple(items)


# --------------------------------------------------------------------------------------------
# Lesson 01: kernel explorer
# --------------------------------------------------------------------------------------------


def _as_kernel(kernel: Any) -> torch.Tensor:
    if isinstance(kernel, str):
        if kernel not in PRESET_KERNELS:
            raise ValueError(f"kernel {kernel!r} is not a preset; choose one of {sorted(PRESET_KERNELS)}")
        kernel = PRESET_KERNELS[kernel]
    if isinstance(kernel, np.ndarray):
        kernel = torch.from_numpy(np.asarray(kernel, dtype=np.float32))
    if isinstance(kernel, (list, tuple)):
        try:
            kernel = torch.tensor(kernel, dtype=torch.float32)
        except (TypeError, ValueError):
            raise TypeError("kernel must be a 2-D tensor, array or nested list of numbers") from None
    if not isinstance(kernel, torch.Tensor):
        raise TypeError(f"kernel must be a 2-D tensor, array, nested list or preset name, got {type(kernel).__name__}")
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be 2-D (kh × kw), got shape {tuple(kernel.shape)}")
    if kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(f"kernel sides must be odd so the filter has a centre pixel, got {tuple(kernel.shape)}")
    kernel = kernel.detach().to("cpu", torch.float32)
    if not torch.isfinite(kernel).all():
        raise ValueError("kernel contains NaN or inf values")
    return kernel


def _as_image(image: Any) -> torch.Tensor:
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.asarray(image, dtype=np.float32))
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a tensor of shape C×H×W or H×W, got {type(image).__name__}")
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must be C×H×W with C = 1 or 3, or H×W, got shape {tuple(image.shape)}")
    image = image.detach().to("cpu", torch.float32)
    if not torch.isfinite(image).all():
        raise ValueError("image contains NaN or inf values")
    return image


def apply_kernel(image: Any, kernel: Any) -> torch.Tensor:
    """Filter every channel of an image with the same 2-D kernel, keeping its size.

    This is ``F.conv2d`` with one kernel per channel (``groups=C``), i.e. a cross-correlation as
    in every CNN layer. The border is padded by repeating the edge pixels rather than with zeros,
    because zeros would draw a false edge around the photo under every edge detector.

    Parameters
    ----------
    image : tensor or array, C×H×W (C = 1 or 3) or H×W
    kernel : 2-D tensor, array, nested list with odd sides, or a name from ``PRESET_KERNELS``

    Returns
    -------
    torch.Tensor
        Same shape as the image (C×H×W), not clipped.

    Examples
    --------
    >>> apply_kernel(torch.ones(1, 4, 4), "identity").shape
    torch.Size([1, 4, 4])
    """
    img = _as_image(image)
    k = _as_kernel(kernel)
    c = img.shape[0]
    weight = k.expand(c, 1, *k.shape).contiguous()
    ph, pw = k.shape[0] // 2, k.shape[1] // 2
    padded = F.pad(img[None], (pw, pw, ph, ph), mode="replicate")
    return F.conv2d(padded, weight, groups=c)[0]


def render_kernel_filter(image: Any, kernel: Any, *, name: str | None = None) -> Figure:
    """The photo, the kernel with its values, and the filtered photo, side by side.

    A kernel whose entries sum to about 1 (blur, sharpen, identity) keeps the brightness, so the
    result is shown clipped to [0, 1]. Otherwise (edge detectors sum to 0) the result's sign and
    scale mean nothing to the eye, so its absolute value, averaged over the colour channels and
    rescaled to its maximum, is shown in grey; the panel title says which.

    Parameters
    ----------
    image : tensor or array, C×H×W (C = 1 or 3) or H×W, values in [0, 1]
    kernel : 2-D tensor, array, nested list with odd sides, or a preset name
    name : str, optional
        What to call the kernel in the title (defaults to the preset name, or "custom").

    Returns
    -------
    matplotlib.figure.Figure
        Three Axes: "input", the kernel, and the result.

    Examples
    --------
    >>> fig = render_kernel_filter(torch.rand(3, 16, 16), "Sobel x")
    >>> fig.axes[1].get_title()
    'kernel: Sobel x'
    """
    if name is None:
        name = kernel if isinstance(kernel, str) else "custom"
    img = _as_image(image)
    k = _as_kernel(kernel)
    out = apply_kernel(img, k)
    total = float(k.sum())
    fig, axes = new_figure(1, 3, size=(9.0, 3.3), gridspec_kw={"width_ratios": [3, 2, 3]})
    for ax in axes:
        ax.set_axis_off()
        ax.grid(False)
    shown_in = img.permute(1, 2, 0).numpy()
    axes[0].imshow(shown_in if img.shape[0] == 3 else shown_in[..., 0], cmap=None if img.shape[0] == 3 else "gray",
                   vmin=0, vmax=1)
    axes[0].set_title(f"input {img.shape[0]}×{img.shape[1]}×{img.shape[2]}", fontsize=9)
    kn = k.numpy()
    limit = float(np.abs(kn).max()) or 1.0
    axes[1].imshow(kn, cmap="RdBu_r", vmin=-limit, vmax=limit)
    if kn.shape[0] <= 7 and kn.shape[1] <= 7:
        for (r, c), v in np.ndenumerate(kn):
            axes[1].text(c, r, f"{v:.3g}", ha="center", va="center", fontsize=9,
                         color="white" if abs(v) > 0.6 * limit else "black")
    axes[1].set_title(f"kernel: {name}", fontsize=9)
    if abs(total - 1.0) < 0.05:
        shown = out.clamp(0, 1).permute(1, 2, 0).numpy()
        axes[2].imshow(shown if img.shape[0] == 3 else shown[..., 0], cmap=None if img.shape[0] == 3 else "gray",
                       vmin=0, vmax=1)
        axes[2].set_title(f"filtered (kernel sums to {total:.3g}; clipped to [0, 1])", fontsize=9)
    else:
        mag = out.abs().mean(0)
        top = float(mag.max()) or 1.0
        axes[2].imshow((mag / top).numpy(), cmap="gray", vmin=0, vmax=1)
        axes[2].set_title(f"|filtered| (kernel sums to {total:.3g}; rescaled to its max)", fontsize=9)
    fig.suptitle(f"filtering with the {name} kernel", fontsize=10)
    return fig


def _preset_matching(values: Sequence[float]) -> str:
    for preset, rows in PRESET_KERNELS.items():
        if np.allclose(np.asarray(rows, dtype=float).ravel(), np.asarray(values, dtype=float), atol=5e-4):
            return preset
    return _CUSTOM


def kernel_explorer(image: Any = None, preset: str = "Sobel x"):
    """A widget to pick or edit a 3×3 kernel and see the filtered photo.

    A dropdown picks a preset (its entries fill the nine number boxes); editing a box filters with
    the edited kernel and sets the dropdown to "(custom)". Rendering is done by
    :func:`render_kernel_filter`.

    Parameters
    ----------
    image : tensor, C×H×W or H×W in [0, 1], optional
        Defaults to ``course_utils.data.sample_image("grace_hopper", size=160)``.
    preset : str
        The preset shown first.

    Returns
    -------
    ipywidgets.VBox
        With attributes ``dropdown``, ``cells`` (the nine FloatText boxes, row by row) and
        ``output``, so code (and tests) can drive it.

    Examples
    --------
    >>> w = kernel_explorer(torch.rand(3, 24, 24))  # doctest: +SKIP
    >>> w.dropdown.value = "box blur"  # doctest: +SKIP
    """
    import ipywidgets as widgets

    if image is None:
        from .data import sample_image

        image = sample_image("grace_hopper", size=160)
    img = _as_image(image)
    if preset not in PRESET_KERNELS:
        raise ValueError(f"preset must be one of {sorted(PRESET_KERNELS)}, got {preset!r}")

    dropdown = widgets.Dropdown(options=list(PRESET_KERNELS) + [_CUSTOM], value=preset, description="kernel")
    start = np.asarray(PRESET_KERNELS[preset], dtype=float).ravel()
    cells = [widgets.FloatText(value=round(float(v), 4), step=0.1, layout=widgets.Layout(width="80px"))
             for v in start]
    grid = widgets.GridBox(cells, layout=widgets.Layout(grid_template_columns="repeat(3, 85px)"))
    output = widgets.Output()
    busy = {"filling": False}

    def redraw() -> None:
        values = [c.value for c in cells]
        name = _preset_matching(values)
        fig = render_kernel_filter(img, torch.tensor(values, dtype=torch.float32).reshape(3, 3),
                                   name="custom" if name == _CUSTOM else name)
        show_figure_in(output, fig)

    def on_preset(change) -> None:
        if change["new"] == _CUSTOM:
            return
        busy["filling"] = True
        try:
            for cell, v in zip(cells, np.asarray(PRESET_KERNELS[change["new"]], dtype=float).ravel()):
                cell.value = round(float(v), 4)
        finally:
            busy["filling"] = False
        redraw()

    def on_cell(change) -> None:
        if busy["filling"]:
            return
        dropdown.unobserve(on_preset, names="value")
        try:
            dropdown.value = _preset_matching([c.value for c in cells])
        finally:
            dropdown.observe(on_preset, names="value")
        redraw()

    dropdown.observe(on_preset, names="value")
    for cell in cells:
        cell.observe(on_cell, names="value")
    box = widgets.VBox([widgets.HBox([dropdown, grid]), output])
    box.dropdown, box.cells, box.output = dropdown, cells, output
    redraw()
    return box


# --------------------------------------------------------------------------------------------
# Lesson 02: output-size explorer
# --------------------------------------------------------------------------------------------


def _message_figure(message: str, title: str = "invalid configuration", prefix: str = "no output: ") -> Figure:
    fig, ax = new_figure(size=(6.0, 1.2))
    ax.set_axis_off()
    ax.grid(False)
    ax.text(0.5, 0.5, prefix + message, ha="center", va="center", wrap=True, fontsize=9, color="#D55E00")
    ax.set_title(title, fontsize=10)
    return fig


def output_size_summary(
    in_size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> str:
    """The formula worked through and a real ``nn.Conv2d``'s answer for one configuration.

    Parameters
    ----------
    in_size, kernel, stride, padding, dilation : int
        A square input and kernel, as for ``nn.Conv2d(1, 1, kernel, stride, padding, dilation)``.

    Returns
    -------
    str
        For example ``"out = ⌊(8 + 2·1 − 3) / 2⌋ + 1 = ⌊7/2⌋ + 1 = 4; nn.Conv2d: 1×1×8×8 → 1×1×4×4 ✓"``,
        followed by how many input pixels no window reaches, when some are. For a configuration
        that ``nn.Conv2d`` rejects, a text that starts with ``"invalid:"`` and carries the
        ValueError's message; nothing is raised.

    Examples
    --------
    >>> output_size_summary(32, 3, stride=2, padding=1).split(";")[0]
    'out = ⌊(32 + 2·1 − 3) / 2⌋ + 1 = ⌊31/2⌋ + 1 = 16'
    """
    try:
        out = conv_out(in_size, kernel, stride=stride, padding=padding, dilation=dilation)
    except ValueError as exc:
        return f"invalid: {exc}"
    conv = torch.nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation, bias=False)
    with torch.no_grad():
        shape = tuple(conv(torch.zeros(1, 1, in_size, in_size)).shape)
    agrees = shape[-2:] == (out, out)
    eff = dilation * (kernel - 1) + 1
    top = in_size + 2 * padding - eff
    formula = f"out = ⌊({in_size} + 2·{padding} − {eff}) / {stride}⌋ + 1 = ⌊{top}/{stride}⌋ + 1 = {out}"
    check = "✓" if agrees else "✗ (the formula and PyTorch disagree)"
    text = (f"{formula}; nn.Conv2d: 1×1×{in_size}×{in_size} → " + "×".join(str(v) for v in shape) + f" {check}")
    never = int((window_coverage(in_size, kernel, stride, padding, dilation) == 0).sum())
    if never:
        text += f"; {never} of {in_size * in_size} input pixels are never reached by any window"
    return text


def render_output_size(
    in_size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> tuple[Figure, str]:
    """Diagram, formula and a real ``nn.Conv2d``'s answer for one convolution configuration.

    Parameters
    ----------
    in_size, kernel, stride, padding, dilation : int
        A square input and kernel, as for ``nn.Conv2d(1, 1, kernel, stride, padding, dilation)``.

    Returns
    -------
    (Figure, str)
        The sliding-window diagram (first window) and :func:`output_size_summary`'s text. For a
        configuration that ``nn.Conv2d`` rejects, a figure with the message and a summary that
        starts with ``"invalid:"``; nothing is raised.

    Examples
    --------
    >>> fig, text = render_output_size(32, 3, stride=2, padding=1)
    >>> text.split(";")[0]
    'out = ⌊(32 + 2·1 − 3) / 2⌋ + 1 = ⌊31/2⌋ + 1 = 16'
    """
    text = output_size_summary(in_size, kernel, stride, padding, dilation)
    if text.startswith("invalid: "):
        return _message_figure(text[len("invalid: "):]), text
    out = conv_out(in_size, kernel, stride=stride, padding=padding, dilation=dilation)
    drawable = in_size + 2 * padding <= 24
    fig = (draw_conv_arithmetic(in_size, kernel, stride, padding, dilation, step=0) if drawable
           else _message_figure(f"input {in_size}×{in_size} with padding {padding} is too big to draw; "
                                f"the output is {out}×{out}", title="valid configuration", prefix=""))
    return fig, text


def output_size_explorer(
    in_size: int = 7, kernel: int = 3, stride: int = 2, padding: int = 1, dilation: int = 1
):
    """Sliders for a convolution's input size, kernel, stride, padding and dilation.

    Every change redraws the diagram and the formula with :func:`render_output_size`; an invalid
    combination shows its message in the output instead of a traceback.

    Parameters
    ----------
    in_size, kernel, stride, padding, dilation : int
        Starting values of the sliders.

    Returns
    -------
    ipywidgets.VBox
        With attributes ``sliders`` (a dict keyed by the five names) and ``output``.

    Examples
    --------
    >>> w = output_size_explorer()  # doctest: +SKIP
    >>> w.sliders["stride"].value = 1  # doctest: +SKIP
    """
    import ipywidgets as widgets

    conv_out_2d(in_size, kernel, stride, padding, dilation)  # a bad starting point fails here, loudly
    ranges = {"in_size": (1, 16), "kernel": (1, 7), "stride": (1, 4), "padding": (0, 4), "dilation": (1, 3)}
    start = {"in_size": in_size, "kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation}
    sliders = {}
    for key, (lo, hi) in ranges.items():
        if not lo <= start[key] <= hi:
            raise ValueError(f"{key} must be between {lo} and {hi} for the explorer, got {start[key]}")
        sliders[key] = widgets.IntSlider(value=start[key], min=lo, max=hi, description=key,
                                         continuous_update=False)
    output = widgets.Output()

    def redraw(change=None) -> None:
        fig, text = render_output_size(*(sliders[k].value for k in ranges))
        show_figure_in(output, fig, text)

    for s in sliders.values():
        s.observe(redraw, names="value")
    box = widgets.VBox([widgets.HBox([widgets.VBox(list(sliders.values())[:3]),
                                      widgets.VBox(list(sliders.values())[3:])]), output])
    box.sliders, box.output = sliders, output
    redraw()
    return box


# --------------------------------------------------------------------------------------------
# Lesson 03: a conv layer's shapes and parameters
# --------------------------------------------------------------------------------------------


def render_conv_layer(
    in_channels: int = 32,
    out_channels: int = 64,
    kernel_size: int = 3,
    stride: int = 1,
    padding: int = 1,
    groups: int = 1,
    size: int = 32,
    batch: int = 4,
) -> tuple[Figure, str]:
    """Shapes and parameter count of one ``nn.Conv2d``, beside a full and a depthwise-separable layer.

    The layer is really built and run on a zero batch, so the shapes shown are PyTorch's.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, groups : int
        The layer's settings (square kernels, the same stride and padding on both axes).
    size : int
        Height and width of the input.
    batch : int
        Batch size of the input.

    Returns
    -------
    (Figure, str)
        A bar chart of parameter counts and a text with the input, weight and output shapes. An
        invalid configuration gives a figure and a text that say why, never an exception.

    Examples
    --------
    >>> fig, text = render_conv_layer(3, 16, 3, padding=1, size=64)
    >>> text.splitlines()[0]
    'input [4, 3, 64, 64] -> output [4, 16, 64, 64]'
    """
    from torch import nn

    from .shapes import conv_params

    try:
        layer = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups)
        with torch.no_grad():
            out = layer(torch.zeros(batch, in_channels, size, size))
    except (ValueError, RuntimeError) as exc:
        message = str(exc).splitlines()[0]
        return _message_figure(message), f"no output: {message}"
    ours = sum(p.numel() for p in layer.parameters())
    full = conv_params(in_channels, out_channels, kernel_size)
    separable = conv_params(in_channels, in_channels, kernel_size, groups=in_channels) + conv_params(
        in_channels, out_channels, 1
    )
    names = [f"this layer (groups={groups})", "groups=1", "depthwise + 1×1"]
    counts = [ours, full, separable]
    fig, ax = new_figure(size=(6.4, 2.4))
    bars = ax.barh(names, counts, color=["#0072B2", "0.6", "#009E73"])
    for bar, count in zip(bars, counts):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {count:,}", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(counts) * 1.3)
    ax.set_xlabel("parameters (weights + biases)")
    ax.set_title(f"Conv2d({in_channels}, {out_channels}, {kernel_size}, stride={stride}, "
                 f"padding={padding}, groups={groups})", fontsize=10)
    text = (
        f"input {[batch, in_channels, size, size]} -> output {list(out.shape)}\n"
        f"weight {list(layer.weight.shape)} + bias {list(layer.bias.shape)} = {ours:,} parameters"
    )
    return fig, text


def conv_layer_explorer(in_channels: int = 32, out_channels: int = 64, kernel_size: int = 3, groups: int = 1):
    """Sliders for an ``nn.Conv2d``'s settings; shows shapes and parameters with :func:`render_conv_layer`.

    Returns
    -------
    ipywidgets.VBox
        With attributes ``sliders`` (a dict keyed by setting) and ``output``.

    Examples
    --------
    >>> w = conv_layer_explorer()  # doctest: +SKIP
    >>> w.sliders["groups"].value = 32  # doctest: +SKIP
    """
    import ipywidgets as widgets

    start = {"in_channels": in_channels, "out_channels": out_channels, "kernel_size": kernel_size,
             "stride": 1, "padding": kernel_size // 2, "groups": groups, "size": 32}
    ranges = {"in_channels": (1, 64), "out_channels": (1, 128), "kernel_size": (1, 7), "stride": (1, 4),
              "padding": (0, 3), "groups": (1, 64), "size": (4, 64)}
    sliders = {}
    for key, (lo, hi) in ranges.items():
        if not lo <= start[key] <= hi:
            raise ValueError(f"{key} must be between {lo} and {hi} for the explorer, got {start[key]}")
        sliders[key] = widgets.IntSlider(value=start[key], min=lo, max=hi, description=key,
                                         continuous_update=False)
    output = widgets.Output()

    def redraw(change=None) -> None:
        fig, text = render_conv_layer(**{k: s.value for k, s in sliders.items()})
        show_figure_in(output, fig, text)

    for s in sliders.values():
        s.observe(redraw, names="value")
    values = list(sliders.values())
    box = widgets.VBox([widgets.HBox([widgets.VBox(values[:4]), widgets.VBox(values[4:])]), output])
    box.sliders, box.output = sliders, output
    redraw()
    return box


# --------------------------------------------------------------------------------------------
# Lesson 04: pooling and small shifts
# --------------------------------------------------------------------------------------------


def edge_map(image: Any) -> torch.Tensor:
    """Rectified vertical-edge response of an image's brightness: a sparse, 1×1×H×W feature map.

    Parameters
    ----------
    image : tensor, C×H×W or H×W in [0, 1]

    Returns
    -------
    torch.Tensor
        ``relu(sobel_x * mean over channels)``, same height and width, shape 1×1×H×W.

    Examples
    --------
    >>> edge_map(torch.rand(3, 8, 8)).shape
    torch.Size([1, 1, 8, 8])
    """
    img = _as_image(image)
    gray = img.mean(0, keepdim=True)[None]
    sobel = torch.tensor(PRESET_KERNELS["Sobel x"], dtype=torch.float32)[None, None]
    return F.relu(F.conv2d(gray, sobel, padding=1))


def shift_change(feature_map: torch.Tensor, shift: int, kernel_size: int = 1, stride: int | None = None,
                 mode: str = "max", margin: int = 8) -> float:
    """Relative change of a (pooled) feature map when its content moves ``shift`` pixels to the left.

    Both views are crops of the same map, ``margin`` pixels in from its borders, so nothing wraps
    around. ``kernel_size=1`` measures the map without pooling.

    Parameters
    ----------
    feature_map : tensor, 1×1×H×W (or N×C×H×W)
    shift : int
        Pixels, 0 to ``margin``.
    kernel_size, stride : int
        The pooling window; ``stride`` defaults to ``kernel_size``.
    mode : {"max", "avg"}
    margin : int

    Returns
    -------
    float
        ``||pool(shifted) - pool(original)|| / ||pool(original)||``.

    Examples
    --------
    >>> shift_change(torch.rand(1, 1, 32, 32), 0, 2)
    0.0
    """
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    if not isinstance(shift, int) or not 0 <= shift <= margin:
        raise ValueError(f"shift must be an int from 0 to margin ({margin}), got {shift!r}")
    if not isinstance(feature_map, torch.Tensor) or feature_map.dim() != 4:
        raise ValueError("feature_map must be an N×C×H×W tensor, e.g. edge_map(image)")
    h, w = feature_map.shape[-2:]
    if h <= 2 * margin or w <= 2 * margin:
        raise ValueError(f"feature_map is {h}×{w}; it must be larger than 2*margin = {2 * margin} on both axes")
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    stride = kernel_size if stride is None else stride
    base = feature_map[..., margin : h - margin, margin : w - margin]
    moved = feature_map[..., margin : h - margin, margin + shift : w - margin + shift]
    a, b = pool(base, kernel_size, stride), pool(moved, kernel_size, stride)
    norm = float(a.norm())
    return 0.0 if norm == 0.0 else float((b - a).norm()) / norm


def render_pooling(image: Any, kernel_size: int = 2, stride: int | None = None, mode: str = "max",
                   shift: int = 1) -> tuple[Figure, str]:
    """An image's edge map, pooled, and what a small shift of the image does to the pooled map.

    Parameters
    ----------
    image : tensor, C×H×W or H×W in [0, 1]
    kernel_size, stride : int
        The pooling window; ``stride`` defaults to ``kernel_size``.
    mode : {"max", "avg"}
    shift : int
        How many pixels the image moves left, 0 to 8.

    Returns
    -------
    (Figure, str)
        Three panels (edge map, pooled map, change after the shift) and a line with the measured
        relative change, with and without pooling. An invalid window gives a message figure.

    Examples
    --------
    >>> fig, text = render_pooling(torch.rand(3, 40, 40), 2, mode="max", shift=1)
    >>> text.startswith("pooled 1×1×24×24 -> 1×1×12×12")
    True
    """
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    stride = kernel_size if stride is None else stride
    maps = edge_map(image)
    margin = 8
    h, w = maps.shape[-2:]
    try:
        change = shift_change(maps, shift, kernel_size, stride, mode, margin)
    except RuntimeError as exc:  # a window larger than the map
        message = str(exc).splitlines()[0]
        return _message_figure(message), f"no output: {message}"
    unpooled = shift_change(maps, shift, 1, 1, mode, margin)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    base = maps[..., margin : h - margin, margin : w - margin]
    moved = maps[..., margin : h - margin, margin + shift : w - margin + shift]
    a, b = pool(base, kernel_size, stride), pool(moved, kernel_size, stride)
    fig, axes = new_figure(1, 3, size=(9.6, 3.4))
    name = "max" if mode == "max" else "average"
    panels = [
        (base[0, 0], f"edge map {base.shape[-2]}×{base.shape[-1]}", "magma"),
        (a[0, 0], f"{name} pool k={kernel_size} s={stride}: {a.shape[-2]}×{a.shape[-1]}", "magma"),
        ((b - a)[0, 0].abs(), f"|change| after a {shift}-pixel shift", "gray_r"),
    ]
    for ax, (values, title, cmap) in zip(axes, panels):
        ax.imshow(values.numpy(), cmap=cmap, vmin=0, vmax=max(float(a.max()), 1e-6))
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    text = (f"pooled {'×'.join(map(str, base.shape))} -> {'×'.join(map(str, a.shape))}; "
            f"relative change after a {shift}-pixel shift: {change:.3f} (no pooling: {unpooled:.3f})")
    return fig, text


def pooling_explorer(image: Any = None):
    """Pick a pooling window, a mode and a shift; see the pooled edge map and how much the shift changes it.

    Returns
    -------
    ipywidgets.VBox
        With attributes ``controls`` (a dict: kernel_size, stride, mode, shift) and ``output``.

    Examples
    --------
    >>> w = pooling_explorer(torch.rand(3, 64, 64))  # doctest: +SKIP
    >>> w.controls["shift"].value = 2  # doctest: +SKIP
    """
    import ipywidgets as widgets

    if image is None:
        from .data import sample_image

        image = sample_image("grace_hopper", size=128)
    img = _as_image(image)
    controls = {
        "kernel_size": widgets.IntSlider(value=2, min=1, max=8, description="kernel", continuous_update=False),
        "stride": widgets.IntSlider(value=2, min=1, max=8, description="stride", continuous_update=False),
        "mode": widgets.ToggleButtons(options=["max", "avg"], value="max", description="mode"),
        "shift": widgets.IntSlider(value=1, min=0, max=8, description="shift", continuous_update=False),
    }
    output = widgets.Output()

    def redraw(change=None) -> None:
        fig, text = render_pooling(img, **{k: c.value for k, c in controls.items()})
        show_figure_in(output, fig, text)

    for c in controls.values():
        c.observe(redraw, names="value")
    values = list(controls.values())
    box = widgets.VBox([widgets.HBox([widgets.VBox(values[:2]), widgets.VBox(values[2:])]), output])
    box.controls, box.output = controls, output
    redraw()
    return box


# --------------------------------------------------------------------------------------------
# Lesson 05: class activation maps
# --------------------------------------------------------------------------------------------


def class_activation_map(feature_maps: torch.Tensor, weight: torch.Tensor, class_index: int) -> torch.Tensor:
    """A GAP network's class activation map: the classifier's weights applied at every position.

    ``cam[i, j] = sum_c weight[class_index, c] * feature_maps[c, i, j]``; its mean over positions
    plus the bias is the class's logit.

    Parameters
    ----------
    feature_maps : tensor, C×H×W
        The last convolutional layer's output for one image (before GAP).
    weight : tensor, K×C
        The linear layer after GAP.
    class_index : int

    Returns
    -------
    torch.Tensor
        H×W.

    Examples
    --------
    >>> class_activation_map(torch.ones(2, 3, 3), torch.tensor([[1.0, 2.0]]), 0)[0, 0]
    tensor(3.)
    """
    if not isinstance(feature_maps, torch.Tensor) or feature_maps.dim() != 3:
        raise ValueError("feature_maps must be a C×H×W tensor (one image's maps; index the batch first)")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.shape[1] != feature_maps.shape[0]:
        raise ValueError(f"weight must be a K×C tensor with C = {feature_maps.shape[0]} (the linear layer's weight)")
    if isinstance(class_index, bool) or not isinstance(class_index, int) or not 0 <= class_index < weight.shape[0]:
        raise ValueError(f"class_index must be an int from 0 to {weight.shape[0] - 1}, got {class_index!r}")
    return torch.einsum("c,chw->hw", weight[class_index].detach(), feature_maps.detach())


def render_cam(image: Any, feature_maps: torch.Tensor, weight: torch.Tensor, class_index: int,
               class_names: Sequence[str] | None = None) -> Figure:
    """The image, the class activation map, and the map upsampled over the image.

    Parameters
    ----------
    image : tensor, C×H×W or H×W in [0, 1]
    feature_maps : tensor, C×h×w
    weight : tensor, K×C
    class_index : int
    class_names : sequence of str, optional

    Returns
    -------
    Figure
        Four Axes: the image, the CAM, its colour bar (white is 0), and the CAM over the image.

    Examples
    --------
    >>> fig = render_cam(torch.rand(1, 16, 16), torch.rand(4, 8, 8), torch.rand(2, 4), 1)
    >>> len(fig.axes)
    4
    """
    img = _as_image(image)
    cam = class_activation_map(feature_maps, weight, class_index)
    big = F.interpolate(cam[None, None], size=img.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    name = class_names[class_index] if class_names is not None else f"class {class_index}"
    shown = img.permute(1, 2, 0).numpy() if img.shape[0] == 3 else img[0].numpy()
    fig, axes = new_figure(1, 3, size=(8.4, 3.0))
    limit = max(float(cam.abs().max()), 1e-6)
    axes[0].imshow(shown, cmap=None if img.shape[0] == 3 else "gray", vmin=0, vmax=1)
    axes[0].set_title(f"image {img.shape[-2]}×{img.shape[-1]}", fontsize=9)
    shown_cam = axes[1].imshow(cam.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[1].set_title(f"CAM for '{name}': {cam.shape[0]}×{cam.shape[1]}", fontsize=9)
    # Without a scale a learner cannot tell "no evidence" (white, 0) from "weak evidence".
    bar = fig.colorbar(shown_cam, ax=axes[1], shrink=0.8)
    bar.set_label("red: for the class, blue: against", fontsize=8)
    axes[2].imshow(shown, cmap=None if img.shape[0] == 3 else "gray", vmin=0, vmax=1)
    axes[2].imshow(big.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.55)
    axes[2].set_title("CAM upsampled over the image", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    return fig


def cam_explorer(images: torch.Tensor, feature_maps: torch.Tensor, weight: torch.Tensor,
                 class_names: Sequence[str] | None = None):
    """Pick an image and a class; see where a GAP network's evidence for that class is.

    Parameters
    ----------
    images : tensor, N×C×H×W in [0, 1]
    feature_maps : tensor, N×C'×h×w
        The last convolutional layer's output for those images.
    weight : tensor, K×C'
        The linear layer after GAP.
    class_names : sequence of str, optional

    Returns
    -------
    ipywidgets.VBox
        With attributes ``image_slider``, ``class_buttons`` and ``output``.

    Examples
    --------
    >>> w = cam_explorer(torch.rand(4, 1, 16, 16), torch.rand(4, 8, 8, 8), torch.rand(2, 8))  # doctest: +SKIP
    """
    import ipywidgets as widgets

    if images.dim() != 4 or feature_maps.dim() != 4 or images.shape[0] != feature_maps.shape[0]:
        raise ValueError("images (N×C×H×W) and feature_maps (N×C'×h×w) must hold the same N images")
    names = list(class_names) if class_names is not None else [f"class {k}" for k in range(weight.shape[0])]
    if len(names) != weight.shape[0]:
        raise ValueError(f"class_names has {len(names)} names but weight has {weight.shape[0]} classes")
    image_slider = widgets.IntSlider(value=0, min=0, max=images.shape[0] - 1, description="image",
                                     continuous_update=False)
    class_buttons = widgets.ToggleButtons(options=[(n, k) for k, n in enumerate(names)], value=0,
                                          description="class")
    output = widgets.Output()

    def redraw(change=None) -> None:
        i, k = image_slider.value, class_buttons.value
        fig = render_cam(images[i], feature_maps[i], weight, k, names)
        show_figure_in(output, fig)

    image_slider.observe(redraw, names="value")
    class_buttons.observe(redraw, names="value")
    box = widgets.VBox([widgets.HBox([image_slider, class_buttons]), output])
    box.image_slider, box.class_buttons, box.output = image_slider, class_buttons, output
    redraw()
    return box


__all__ += [
    "render_conv_layer",
    "conv_layer_explorer",
    "edge_map",
    "shift_change",
    "render_pooling",
    "pooling_explorer",
    "class_activation_map",
    "render_cam",
    "cam_explorer",
]
