"""plots: every function returns a Figure (Agg backend), shows the right thing, and rejects bad input."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from course_utils import plots


def _image_data(fig: Figure, index: int = 0) -> np.ndarray:
    return np.asarray(fig.axes[index].images[0].get_array())


def test_figures_are_not_registered_with_pyplot():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.show_images(torch.rand(3, 3, 8, 8))
    plots.plot_history({"train_loss": [1.0, 0.5]})
    assert plt.get_fignums() == before


@pytest.mark.parametrize(
    "images, expected_first_pixel",
    [
        (torch.full((2, 3, 4, 4), 255, dtype=torch.uint8), 1.0),
        (torch.full((2, 3, 4, 4), 0.25), 0.25),
        (np.full((3, 4, 4), 0.5, dtype=np.float32), 0.5),
    ],
)
def test_show_images_scales_uint8_and_float(images, expected_first_pixel):
    fig = plots.show_images(images)
    assert isinstance(fig, Figure)
    assert np.allclose(_image_data(fig)[0, 0], expected_first_pixel)


def test_show_images_undoes_a_normalization():
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.2, 0.2)
    original = torch.rand(2, 3, 5, 5)
    normalized = (original - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    fig = plots.show_images(normalized, mean=mean, std=std)
    shown = _image_data(fig, 0)
    assert np.allclose(shown, original[0].permute(1, 2, 0).numpy(), atol=1e-5)


def test_show_images_rescales_normalized_values_without_stats():
    x = torch.tensor([[[[-2.0, 0.0], [1.0, 2.0]]]])
    shown = plots.to_display_array(x)
    assert shown.min() == 0.0 and shown.max() == 1.0
    assert shown.shape == (1, 2, 2, 1)


def test_show_images_titles_grid_and_grayscale():
    fig = plots.show_images(torch.rand(10, 1, 6, 6), titles=[f"t{i}" for i in range(10)], ncols=4)
    assert len(fig.axes) == 12  # 3 rows of 4; two empty, hidden
    assert fig.axes[9].get_title() == "t9"
    assert fig.axes[0].images[0].get_cmap().name == "gray"


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.rand(2, 5, 4, 4), "1 or 3 channels"),
        (torch.rand(4, 4), "N×C×H×W"),
        (torch.full((1, 3, 2, 2), float("nan")), "NaN"),
        ("a picture", "torch.Tensor"),
        ([], "empty"),
    ],
)
def test_show_images_rejects_bad_input(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        plots.show_images(bad)


def test_show_images_title_count_must_match():
    with pytest.raises(ValueError, match="titles has 1 entries but there are 2 images"):
        plots.show_images(torch.rand(2, 3, 4, 4), titles=["only one"])


def test_show_kernels_rgb_and_single_channel():
    rgb = plots.show_kernels(torch.randn(6, 3, 5, 5))
    assert len([ax for ax in rgb.axes if ax.images]) == 6
    assert "RGB" in rgb._suptitle.get_text()
    w = torch.zeros(2, 4, 3, 3)
    w[1, 2, 1, 1] = -3.0
    single = plots.show_kernels(w, in_channel=2)
    kernel = _image_data(single, 1)
    assert kernel[1, 1] == -3.0 and kernel.sum() == -3.0
    # a diverging map centred at zero: the colour limits are symmetric
    assert single.axes[1].images[0].get_clim() == (-3.0, 3.0)


def test_show_kernels_limits_and_errors():
    fig = plots.show_kernels(torch.randn(100, 1, 3, 3), max_kernels=10)
    assert len([ax for ax in fig.axes if ax.images]) == 10
    with pytest.raises(ValueError, match="in_channel must be in"):
        plots.show_kernels(torch.randn(2, 3, 3, 3), in_channel=3)
    with pytest.raises(ValueError, match=r"\(out, in, kh, kw\)"):
        plots.show_kernels(torch.randn(1, 1, 1, 3, 3))


def test_show_feature_maps_draws_each_channel():
    maps = torch.arange(2 * 3 * 3, dtype=torch.float32).view(1, 2, 3, 3)
    fig = plots.show_feature_maps(maps)
    assert len(fig.axes) == 2
    assert np.array_equal(_image_data(fig, 1), maps[0, 1].numpy())
    assert "2 channels, 3×3" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="one image"):
        plots.show_feature_maps(torch.rand(2, 4, 3, 3))


def test_plot_history_single_and_comparison():
    history = {"epoch": [1, 2, 3], "train_loss": [2.0, 1.0, 0.5], "test_loss": [2.1, 1.2, 0.9],
               "train_acc": [0.3, 0.6, 0.8], "test_acc": [0.25, 0.5, 0.7]}
    fig = plots.plot_history(history, title="run")
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["train", "test"]
    assert list(acc_ax.lines[1].get_ydata()) == [0.25, 0.5, 0.7]
    both = plots.plot_history({"plain": history, "bn": history})
    assert len(both.axes[0].lines) == 4
    assert both.axes[0].lines[2].get_label() == "bn: train"


def test_plot_history_accepts_objects_with_to_dict():
    class FakeHistory:
        def to_dict(self):
            return {"train_loss": [1.0, 0.8]}

    fig = plots.plot_history(FakeHistory())
    assert list(fig.axes[0].lines[0].get_ydata()) == [1.0, 0.8]


def test_plot_history_rejects_bad_input():
    with pytest.raises(ValueError, match="none of the keys"):
        plots.plot_history({"loss": [1.0]})
    with pytest.raises(ValueError, match="different lengths"):
        plots.plot_history({"train_loss": [1.0, 2.0], "test_loss": [1.0]})
    with pytest.raises(TypeError, match="History or a dict"):
        plots.plot_history([1.0, 2.0])


def test_confusion_matrix_normalizes_rows_and_writes_counts():
    cm = np.array([[8, 2], [1, 9]])
    fig = plots.plot_confusion_matrix(cm, ["cat", "dog"])
    shown = _image_data(fig)
    assert np.allclose(shown.sum(axis=1), 1.0)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["8", "2", "1", "9"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["cat", "dog"]
    with pytest.raises(ValueError, match="square"):
        plots.plot_confusion_matrix(np.ones((2, 3)))
    with pytest.raises(ValueError, match="classes has 3 names"):
        plots.plot_confusion_matrix(cm, ["a", "b", "c"])
    with pytest.raises(ValueError, match="negative"):
        plots.plot_confusion_matrix(-cm)


def test_course_style_is_applied():
    import matplotlib as mpl

    plots.use_course_style()
    assert mpl.rcParams["image.interpolation"] == "nearest"
    assert mpl.rcParams["axes.spines.top"] is False


# --- lessons 01 and 03: parameter growth, shift comparison, kernel values, signed maps ---------

def test_first_layer_params_plots_the_counts_of_shapes():
    from course_utils.plots import plot_first_layer_params
    from course_utils.shapes import conv_params, linear_params

    sides = (8, 32, 224)
    fig = plot_first_layer_params(sides, units=10, out_channels=16)
    dense, one, conv = fig.axes[0].lines
    assert list(dense.get_ydata()) == [linear_params(s * s * 3, 10) for s in sides]
    assert list(one.get_ydata()) == [linear_params(s * s * 3, 1) for s in sides]
    assert list(conv.get_ydata()) == [conv_params(3, 16, 3)] * 3
    assert conv.get_label() == "conv 3×3, 3→16 channels"
    # Written at sides 32 and 224: 32·32·3·10 + 10 = 30,730 and 224·224·3·10 + 10 = 1,505,290.
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.0 M", "1.5 M"]
    with pytest.raises(ValueError, match="increasing"):
        plot_first_layer_params((32, 8))


def test_shift_comparison_frames_the_compared_region():
    from course_utils.plots import plot_shift_comparison

    x = torch.rand(1, 1, 10, 12)
    fig = plot_shift_comparison(x, x, torch.zeros(8, 10), -torch.ones(1, 1, 8, 10), (2, 3))
    assert [ax.get_title() for ax in fig.axes] == ["x", "x shifted by (2, 3)", "shift(conv(x))", "conv(shift(x))"]
    frames = [p for ax in fig.axes[2:] for p in ax.patches]
    assert len(frames) == 2
    assert frames[0].get_xy() == (2.5, 1.5) and frames[0].get_width() == 7 and frames[0].get_height() == 6
    # Responses are drawn as magnitudes: the all-negative map shows as 1 everywhere.
    assert np.allclose(fig.axes[3].images[0].get_array(), 1.0)
    with pytest.raises(ValueError, match="same shape"):
        plot_shift_comparison(x, x, torch.zeros(8, 10), torch.zeros(8, 9), (1, 1))
    with pytest.raises(ValueError, match="non-negative"):
        plot_shift_comparison(x, x, torch.zeros(8, 10), torch.zeros(8, 10), (-1, 0))


def test_show_kernel_values_writes_every_weight_on_a_zero_centred_scale():
    from course_utils.plots import show_kernel_values

    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    learned = sobel + 0.004 * torch.tensor([[1.0, -1.0, 0.0]] * 3)
    fig = show_kernel_values({"Sobel": sobel, "learned": learned[None, None], "negative zero": -torch.zeros(3, 3)})
    assert [ax.get_title() for ax in fig.axes] == ["Sobel", "learned", "negative zero"]
    assert [t.get_text() for t in fig.axes[0].texts] == ["-1", "0", "1", "-2", "0", "2", "-1", "0", "1"]
    assert fig.axes[1].texts[0].get_text() == "-1"            # -0.996 rounds to -1 at 2 decimals
    assert {t.get_text() for t in fig.axes[2].texts} == {"0"}
    for ax in fig.axes:
        assert ax.images[0].get_clim() == (-2.0, 2.0)          # one shared range, centred at 0
    with pytest.raises(ValueError, match="one title per kernel"):
        show_kernel_values([sobel, sobel], titles=["a"])
    with pytest.raises(ValueError, match="up to 9×9"):
        show_kernel_values([torch.zeros(11, 11)])


def test_show_signed_feature_maps_centres_each_panel_at_zero():
    from course_utils.plots import show_signed_feature_maps

    maps = torch.stack([torch.linspace(-1, 3, 16).view(4, 4), torch.linspace(-5, 0.5, 16).view(4, 4)])
    fig = show_signed_feature_maps(maps[None], titles=["a", "b"])
    image_axes = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title() for ax in image_axes] == ["a", "b"]
    assert [ax.images[0].get_clim() for ax in image_axes] == [(-3.0, 3.0), (-5.0, 5.0)]
    assert image_axes[0].images[0].get_cmap().name == "RdBu_r"
    assert len(fig.axes) == 4                                 # two maps, two colour bars
    with pytest.raises(ValueError, match="one title per channel"):
        show_signed_feature_maps(maps, titles=["a"])
    with pytest.raises(ValueError, match="one image"):
        show_signed_feature_maps(torch.zeros(2, 2, 4, 4))
