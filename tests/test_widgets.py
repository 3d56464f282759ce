"""Tests for course_utils.widgets: pure render functions and widgets driven without a browser."""
from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from course_utils.widgets import (
    PRESET_KERNELS,
    apply_kernel,
    kernel_explorer,
    output_size_explorer,
    output_size_summary,
    render_kernel_filter,
    render_output_size,
    show_figure_in,
)


def _image(c=3, h=20, w=24, seed=0):
    return torch.rand(c, h, w, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- kernel filter


@pytest.mark.parametrize("name", list(PRESET_KERNELS))
def test_apply_kernel_matches_conv2d_away_from_border(name):
    img = _image()
    k = torch.tensor(PRESET_KERNELS[name], dtype=torch.float32)
    got = apply_kernel(img, name)
    assert got.shape == img.shape
    for c in range(3):
        ref = F.conv2d(img[c][None, None], k[None, None])[0, 0]
        torch.testing.assert_close(got[c, 1:-1, 1:-1], ref)


def test_apply_kernel_is_cross_correlation_not_convolution():
    img = torch.zeros(1, 5, 5)
    img[0, 2, 2] = 1.0
    k = torch.arange(9.0).reshape(3, 3)
    # A cross-correlation of an impulse gives the kernel flipped in both directions.
    torch.testing.assert_close(apply_kernel(img, k)[0, 1:4, 1:4], k.flip(0, 1))


def test_identity_returns_the_image_and_border_is_not_an_edge():
    img = _image(h=9, w=9)
    torch.testing.assert_close(apply_kernel(img, "identity"), img)
    flat = torch.full((3, 8, 8), 0.5)
    # Edge-replicating padding: a flat photo has no edges anywhere, not even at its border.
    assert apply_kernel(flat, "Sobel x").abs().max() < 1e-6


def test_presets_sum_to_one_or_zero():
    sums = {k: float(np.sum(v)) for k, v in PRESET_KERNELS.items()}
    assert set(PRESET_KERNELS) == {"identity", "box blur", "Gaussian blur", "sharpen", "Sobel x", "Sobel y", "Laplacian"}
    for name, total in sums.items():
        assert abs(total - (0.0 if name in ("Sobel x", "Sobel y", "Laplacian") else 1.0)) < 1e-9, name


@pytest.mark.parametrize("kernel,expect", [("box blur", "clipped"), ("Sobel y", "|filtered|"), ([[0, 0, 0], [0, 2, 0], [0, 0, 0]], "|filtered|")])
def test_render_kernel_filter_panels(kernel, expect):
    fig = render_kernel_filter(_image(), kernel)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    assert expect in fig.axes[2].get_title()
    assert fig.axes[1].get_title() == f"kernel: {kernel if isinstance(kernel, str) else 'custom'}"
    assert [t.get_text() for t in fig.axes[1].texts] == [f"{v:.3g}" for v in np.ravel(PRESET_KERNELS[kernel]) ] if isinstance(kernel, str) else True


def test_render_kernel_filter_grey_and_5x5():
    fig = render_kernel_filter(torch.rand(12, 12), torch.ones(5, 5) / 25, name="5×5 box")
    assert fig.axes[0].get_title() == "input 1×12×12"
    assert fig.axes[1].get_title() == "kernel: 5×5 box"


@pytest.mark.parametrize(
    "image,kernel,err,match",
    [
        (torch.rand(3, 8, 8), torch.ones(2, 2), ValueError, "odd"),
        (torch.rand(3, 8, 8), torch.ones(1, 3, 3), ValueError, "2-D"),
        (torch.rand(3, 8, 8), "emboss", ValueError, "preset"),
        (torch.rand(3, 8, 8), [[1, "a", 0]], TypeError, "kernel"),
        (torch.rand(3, 8, 8), torch.tensor([[float("nan")]]), ValueError, "NaN"),
        (torch.rand(2, 8, 8), "identity", ValueError, "image"),
        ([[0.0]], "identity", TypeError, "image"),
    ],
)
def test_render_kernel_filter_bad_input(image, kernel, err, match):
    with pytest.raises(err, match=match):
        render_kernel_filter(image, kernel)


def _png(widget) -> str:
    images = [o for o in widget.output.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1
    base64.b64decode(images[0]["data"]["image/png"], validate=True)
    return images[0]["data"]["text/plain"]


def test_kernel_explorer_preset_and_edit():
    w = kernel_explorer(_image(), preset="Sobel x")
    assert _png(w) == "<Figure: filtering with the Sobel x kernel>"
    assert [c.value for c in w.cells] == [-1, 0, 1, -2, 0, 2, -1, 0, 1]
    w.dropdown.value = "Gaussian blur"
    assert _png(w) == "<Figure: filtering with the Gaussian blur kernel>"
    assert w.cells[4].value == 0.25
    w.cells[4].value = 3.0
    assert w.dropdown.value == "(custom)"
    assert _png(w) == "<Figure: filtering with the custom kernel>"
    # Typing a preset's numbers back in is recognised as that preset.
    w.cells[4].value = 0.25
    assert w.dropdown.value == "Gaussian blur"
    assert _png(w) == "<Figure: filtering with the Gaussian blur kernel>"


def test_kernel_explorer_bad_preset():
    with pytest.raises(ValueError, match="preset"):
        kernel_explorer(_image(), preset="emboss")


# --------------------------------------------------------------------------- output size


def _conv_shape(n, k, s, p, d):
    return tuple(torch.nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)(torch.zeros(1, 1, n, n)).shape)


def test_output_size_summary_matches_conv2d_on_many_configs():
    # The text is what can be wrong on any configuration; the drawing is checked on the cases below.
    checked = invalid = 0
    for n in (1, 2, 5, 7, 8, 13, 32):
        for k in (1, 2, 3, 5):
            for s in (1, 2, 3):
                for p in (0, 1, 2):
                    for d in (1, 2):
                        text = output_size_summary(n, k, s, p, d)
                        try:
                            shape = _conv_shape(n, k, s, p, d)
                        except RuntimeError:
                            assert text.startswith("invalid: ")
                            assert "Traceback" not in text
                            invalid += 1
                            continue
                        assert f"= {shape[-1]};" in text
                        assert f"→ 1×1×{shape[-2]}×{shape[-1]} ✓" in text
                        checked += 1
    assert checked > 200 and invalid > 10


@pytest.mark.parametrize("config, kind", [
    ((7, 3, 2, 1, 1), "diagram"),      # drawable: the sliding-window diagram
    ((8, 3, 3, 0, 1), "diagram"),      # drawable, with unreached pixels
    ((13, 5, 1, 2, 2), "diagram"),     # dilation
    ((32, 3, 1, 1, 1), "too big"),     # larger than the diagram can show
    ((3, 5, 1, 0, 1), "invalid"),      # rejected by nn.Conv2d
])
def test_render_output_size_draws_the_case_and_returns_the_summary(config, kind):
    fig, text = render_output_size(*config)
    assert isinstance(fig, Figure)
    assert text == output_size_summary(*config)
    titles = " ".join(ax.get_title() for ax in fig.axes) + " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    if kind == "invalid":
        assert fig.axes[0].get_title() == "invalid configuration"
    elif kind == "too big":
        assert "too big to draw" in titles and fig.axes[0].get_title() == "valid configuration"
        assert "no output" not in titles
    else:
        assert "too big" not in titles and fig.axes[0].get_title() != "invalid configuration"


def test_render_output_size_seed_examples():
    assert render_output_size(32, 3, 1, 1)[1].startswith("out = ⌊(32 + 2·1 − 3) / 1⌋ + 1 = ⌊31/1⌋ + 1 = 32;")
    assert render_output_size(32, 3, 2, 1)[1].startswith("out = ⌊(32 + 2·1 − 3) / 2⌋ + 1 = ⌊31/2⌋ + 1 = 16;")


def test_render_output_size_reports_unreached_pixels():
    text = render_output_size(8, 3, 3, 0)[1]
    assert "28 of 64 input pixels are never reached" in text
    assert "never reached" not in render_output_size(7, 3, 2, 1)[1]


def test_render_output_size_invalid_message_in_figure_and_text():
    fig, text = render_output_size(3, 5, 1, 0, 1)
    assert text.startswith("invalid: conv_out: kernel_size 5")
    assert fig.axes[0].get_title() == "invalid configuration"
    assert "kernel_size 5" in fig.axes[0].texts[0].get_text()
    assert render_output_size(5, 3, 0)[1].startswith("invalid: conv_out: stride must be a positive integer")


def test_render_output_size_large_input_not_drawn_but_computed():
    fig, text = render_output_size(32, 3, 2, 1)
    assert "too big to draw" in fig.axes[0].texts[0].get_text()
    assert "= 16;" in text


def test_output_size_explorer_reacts_to_sliders():
    w = output_size_explorer(in_size=7, kernel=3, stride=2, padding=1)
    def text():
        return [o["text"] for o in w.output.outputs if o["output_type"] == "stream"][0]
    assert "= 4;" in text()
    assert _png(w).endswith("= 4>")
    w.sliders["stride"].value = 1
    assert "= 7;" in text() and _png(w).endswith("= 7>")
    w.sliders["dilation"].value = 3
    assert "= 3;" in text()
    w.sliders["in_size"].value = 1
    w.sliders["padding"].value = 0
    assert text().startswith("invalid: ")
    assert _png(w) == "<Figure: invalid configuration>"
    w.sliders["dilation"].value = 1
    w.sliders["kernel"].value = 1
    assert "= 1;" in text()


def test_output_size_explorer_bad_start():
    with pytest.raises(ValueError, match="kernel_size"):
        output_size_explorer(in_size=2, kernel=5, padding=0)
    with pytest.raises(ValueError, match="in_size must be between"):
        output_size_explorer(in_size=40)


def test_show_figure_in_replaces_outputs():
    import ipywidgets

    out = ipywidgets.Output()
    fig, _ = render_output_size(5, 3)
    show_figure_in(out, fig, "one")
    show_figure_in(out, None, "two")
    assert out.outputs == ({"output_type": "stream", "name": "stdout", "text": "two\n"},)
