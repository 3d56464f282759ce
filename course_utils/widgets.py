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
        axes[2].set_title(f"filtered (sum of kernel {total:.3g}; clipped to [0, 1])", fontsize=9)
    else:
        mag = out.abs().mean(0)
        top = float(mag.max()) or 1.0
        axes[2].imshow((mag / top).numpy(), cmap="gray", vmin=0, vmax=1)
        axes[2].set_title(f"|filtered| (sum of kernel {total:.3g}; rescaled)", fontsize=9)
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


def _message_figure(message: str) -> Figure:
    fig, ax = new_figure(size=(6.0, 1.2))
    ax.set_axis_off()
    ax.grid(False)
    ax.text(0.5, 0.5, "no output: " + message, ha="center", va="center", wrap=True, fontsize=9, color="#D55E00")
    ax.set_title("invalid configuration", fontsize=10)
    return fig


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
        The sliding-window diagram (first window) and a summary such as
        ``"out = ⌊(8 + 2·1 − 3) / 2⌋ + 1 = 4; nn.Conv2d: 1×1×8×8 → 1×1×4×4 ✓"``. For a
        configuration that ``nn.Conv2d`` rejects, a figure with the message and a summary that
        starts with ``"invalid:"`` and carries the ValueError's message; nothing is raised.

    Examples
    --------
    >>> fig, text = render_output_size(32, 3, stride=2, padding=1)
    >>> text.split(";")[0]
    'out = ⌊(32 + 2·1 − 3) / 2⌋ + 1 = ⌊31/2⌋ + 1 = 16'
    """
    try:
        out = conv_out(in_size, kernel, stride=stride, padding=padding, dilation=dilation)
    except ValueError as exc:
        return _message_figure(str(exc)), f"invalid: {exc}"
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
    drawable = in_size + 2 * padding <= 24
    fig = (draw_conv_arithmetic(in_size, kernel, stride, padding, dilation, step=0) if drawable
           else _message_figure(f"input {in_size}×{in_size} with padding {padding} is too big to draw; "
                                f"the output is {out}×{out}"))
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
