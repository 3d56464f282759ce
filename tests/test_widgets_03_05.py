"""Tests for the widgets of lessons 03-05: pure render functions against PyTorch, widgets driven without a browser."""
from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from course_utils.widgets import (
    cam_explorer,
    class_activation_map,
    conv_layer_explorer,
    edge_map,
    pooling_explorer,
    render_cam,
    render_conv_layer,
    render_pooling,
    shift_change,
)


def _image(c=3, h=40, w=48, seed=0):
    return torch.rand(c, h, w, generator=torch.Generator().manual_seed(seed))


def _output_text(widget) -> str:
    return "".join(o.get("text", "") for o in widget.output.outputs)


# --------------------------------------------------------------------------- lesson 03


@pytest.mark.parametrize(
    "config",
    [
        dict(in_channels=3, out_channels=16, kernel_size=3, padding=1, size=64),
        dict(in_channels=3, out_channels=32, kernel_size=5, stride=2, padding=2, size=64),
        dict(in_channels=8, out_channels=12, kernel_size=3, stride=3, padding=0, groups=4, size=11),
        dict(in_channels=6, out_channels=6, kernel_size=7, padding=3, groups=6, size=5, batch=1),
    ],
)
def test_render_conv_layer_reports_pytorchs_shapes_and_counts(config):
    fig, text = render_conv_layer(**config)
    assert isinstance(fig, Figure)
    layer = nn.Conv2d(config["in_channels"], config["out_channels"], config["kernel_size"],
                      stride=config.get("stride", 1), padding=config.get("padding", 0), groups=config.get("groups", 1))
    batch = config.get("batch", 4)
    out = layer(torch.zeros(batch, config["in_channels"], config["size"], config["size"]))
    first, second = text.splitlines()
    assert first.endswith(f"output {list(out.shape)}")
    count = sum(p.numel() for p in layer.parameters())
    assert f"= {count:,} parameters" in second
    assert f"weight {list(layer.weight.shape)}" in second
    # the bars: this layer, the groups=1 layer, depthwise + pointwise
    widths = [round(p.get_width()) for p in fig.axes[0].patches]
    cin, cout, k = config["in_channels"], config["out_channels"], config["kernel_size"]
    full = sum(p.numel() for p in nn.Conv2d(cin, cout, k).parameters())
    separable = sum(p.numel() for p in nn.Conv2d(cin, cin, k, groups=cin).parameters()) + sum(
        p.numel() for p in nn.Conv2d(cin, cout, 1).parameters())
    assert widths == [count, full, separable]


@pytest.mark.parametrize(
    "config, words",
    [
        (dict(in_channels=3, out_channels=16, kernel_size=3, groups=2), "divisible by groups"),
        (dict(in_channels=3, out_channels=16, kernel_size=9, padding=0, size=4), "Kernel size"),
    ],
)
def test_render_conv_layer_explains_an_invalid_layer(config, words):
    fig, text = render_conv_layer(**config)
    assert isinstance(fig, Figure)
    assert text.startswith("no output:") and words in text


def test_conv_layer_explorer_redraws_on_change():
    widget = conv_layer_explorer(in_channels=4, out_channels=8, kernel_size=3)
    assert "output [4, 8, 32, 32]" in _output_text(widget)
    widget.sliders["stride"].value = 2
    assert "output [4, 8, 16, 16]" in _output_text(widget)
    widget.sliders["groups"].value = 3
    assert _output_text(widget).startswith("no output")
    with pytest.raises(ValueError, match="kernel_size"):
        conv_layer_explorer(kernel_size=9)


# --------------------------------------------------------------------------- lesson 04


def test_edge_map_is_rectified_sobel_of_brightness():
    img = _image()
    got = edge_map(img)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    expected = F.conv2d(img.mean(0)[None, None], sobel[None, None], padding=1).clamp(min=0)
    assert got.shape == (1, 1, 40, 48)
    torch.testing.assert_close(got, expected)
    assert (got >= 0).all()


def test_shift_change_on_a_hand_made_map():
    # one peak that stays inside its 2×2 pooling window when the content moves one pixel left
    fmap = torch.zeros(1, 1, 20, 20)
    fmap[0, 0, 9, 10] = 1.0  # after the crop (margin 4) the peak is at column 6, the first of window [6, 7]
    assert shift_change(fmap, 0, 2, margin=4) == 0.0
    # without pooling the peak moves to another pixel: the difference has norm sqrt(2)
    assert shift_change(fmap, 1, 1, margin=4) == pytest.approx(2**0.5)
    # a peak on a window's second column moves to its first: the pooled map does not change, ...
    moved_peak = torch.zeros(1, 1, 20, 20)
    moved_peak[0, 0, 9, 11] = 1.0  # base crop column 7, window [6, 7]; moved crop column 6, same window
    assert shift_change(moved_peak, 1, 2, margin=4) == 0.0
    assert shift_change(moved_peak, 1, 2, mode="avg", margin=4) == 0.0
    # ... whereas a peak on a window's first column crosses into the previous window
    assert shift_change(fmap, 1, 2, margin=4) == pytest.approx(2**0.5)


def test_shift_change_matches_a_direct_computation():
    fmap = torch.rand(1, 1, 30, 30, generator=torch.Generator().manual_seed(1))
    a = F.max_pool2d(fmap[..., 8:22, 8:22], 3, 2)
    b = F.max_pool2d(fmap[..., 8:22, 10:24], 3, 2)
    assert shift_change(fmap, 2, 3, 2) == pytest.approx(float((b - a).norm() / a.norm()))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(shift=9), "shift"),
        (dict(shift=-1), "shift"),
        (dict(shift=1, mode="min"), "mode"),
    ],
)
def test_shift_change_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        shift_change(torch.rand(1, 1, 30, 30), **kwargs)
    with pytest.raises(ValueError, match="N×C×H×W"):
        shift_change(torch.rand(30, 30), 1)
    with pytest.raises(ValueError, match="margin"):
        shift_change(torch.rand(1, 1, 16, 40), 1)


def test_render_pooling_text_matches_shift_change():
    img = _image()
    fig, text = render_pooling(img, 3, 2, "avg", 2)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    numbers = [float(v) for v in re.findall(r"(\d+\.\d{3})", text)]
    maps = edge_map(img)
    assert numbers == [round(shift_change(maps, 2, 3, 2, "avg"), 3), round(shift_change(maps, 2, 1, 1, "avg"), 3)]
    assert text.startswith("pooled 1×1×24×32 -> 1×1×11×15")
    _, coarse = render_pooling(img, 8, 8, "max", 0)
    assert "pooled 1×1×24×32 -> 1×1×3×4" in coarse
    _, too_big = render_pooling(img, 30, 1, "max", 0)
    assert too_big.startswith("no output")


def test_pooling_explorer_redraws_on_change():
    widget = pooling_explorer(_image())
    assert "-> 1×1×12×16" in _output_text(widget)
    widget.controls["kernel_size"].value = 4
    widget.controls["stride"].value = 4
    assert "-> 1×1×6×8" in _output_text(widget)
    widget.controls["shift"].value = 0
    assert "shift: 0.000" in _output_text(widget)


# --------------------------------------------------------------------------- lesson 05


def test_class_activation_map_averages_to_the_logit():
    torch.manual_seed(0)
    maps = torch.randn(2, 16, 5, 7)
    fc = nn.Linear(16, 3)
    logits = fc(maps.mean(dim=(2, 3)))
    for n in range(2):
        for k in range(3):
            cam = class_activation_map(maps[n], fc.weight, k)
            assert cam.shape == (5, 7)
            torch.testing.assert_close(cam.mean() + fc.bias[k], logits[n, k])
            expected = sum(fc.weight[k, c] * maps[n, c] for c in range(16))
            torch.testing.assert_close(cam, expected.detach())


def test_class_activation_map_rejects_bad_arguments():
    maps, w = torch.rand(4, 3, 3), torch.rand(2, 4)
    with pytest.raises(ValueError, match="C×H×W"):
        class_activation_map(maps[None], w, 0)
    with pytest.raises(ValueError, match="K×C"):
        class_activation_map(maps, torch.rand(2, 5), 0)
    for bad in (2, -1, True, 0.0):
        with pytest.raises(ValueError, match="class_index"):
            class_activation_map(maps, w, bad)


def test_render_cam_and_explorer():
    images = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    maps = torch.rand(3, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    weight = torch.randn(2, 8, generator=torch.Generator().manual_seed(2))
    fig = render_cam(images[0], maps[0], weight, 1, ["bar", "cross"])
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert "cross" in fig.axes[1].get_title()
    # the CAM's colour bar is centred on 0: symmetric limits, so white means "no evidence"
    low, high = fig.axes[1].images[0].get_clim()
    assert low == pytest.approx(-high) and high > 0
    assert "against" in fig.axes[-1].get_ylabel()
    widget = cam_explorer(images, maps, weight, ["bar", "cross"])
    assert widget.output.outputs[0]["data"]["text/plain"] == "<Figure: image 16×16>"
    widget.class_buttons.value = 1
    widget.image_slider.value = 2
    assert len(widget.output.outputs) == 1
    with pytest.raises(ValueError, match="same N"):
        cam_explorer(images[:2], maps, weight)
    with pytest.raises(ValueError, match="class_names"):
        cam_explorer(images, maps, weight, ["only one"])
