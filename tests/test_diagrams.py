"""Tests for course_utils.diagrams: coverage against PyTorch's own gradients, drawings, bad input."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from course_utils.diagrams import conv_arithmetic_frames, draw_conv_arithmetic, draw_pool_windows, window_coverage
from course_utils.shapes import conv_out_2d


def _torch_coverage(in_hw, k_hw, stride, padding, dilation) -> np.ndarray:
    # The gradient of sum(conv(x, ones)) w.r.t. x counts how many taps touch each pixel.
    x = torch.zeros(1, 1, *in_hw, dtype=torch.float64, requires_grad=True)
    w = torch.ones(1, 1, *k_hw, dtype=torch.float64)
    F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation).sum().backward()
    return x.grad[0, 0].numpy().astype(np.int64)


CONFIGS = [
    ((5, 5), (3, 3), 1, 0, 1),
    ((5, 5), (2, 2), 2, 0, 1),
    ((8, 8), (3, 3), 3, 0, 1),
    ((7, 6), (3, 3), 2, 1, 2),
    ((9, 4), (3, 2), (2, 1), (1, 0), (3, 1)),
    ((1, 1), (1, 1), 1, 0, 1),
    ((4, 4), (4, 4), 1, 0, 1),
    ((6, 11), (1, 3), (4, 3), (0, 2), 1),
]


@pytest.mark.parametrize("in_hw,k_hw,stride,padding,dilation", CONFIGS)
def test_window_coverage_matches_pytorch(in_hw, k_hw, stride, padding, dilation):
    got = window_coverage(in_hw, k_hw, stride, padding, dilation)
    np.testing.assert_array_equal(got, _torch_coverage(in_hw, k_hw, stride, padding, dilation))


def test_window_coverage_random_configs_match_pytorch():
    rng = np.random.default_rng(7)
    checked = 0
    while checked < 40:
        h, w = (int(v) for v in rng.integers(1, 13, size=2))
        k, s, p, d = (int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(0, 3)), int(rng.integers(1, 3)))
        try:
            conv_out_2d((h, w), k, s, p, d)
        except ValueError:
            continue
        np.testing.assert_array_equal(window_coverage((h, w), k, s, p, d), _torch_coverage((h, w), (k, k), s, p, d))
        checked += 1


def test_unreached_pixels_are_crossed_out():
    # 8 wide, kernel 3, stride 3: windows cover 0..5, so columns/rows 6 and 7 are never reached.
    cov = window_coverage(8, 3, stride=3)
    assert (cov == 0).sum() == 64 - 36
    fig = draw_conv_arithmetic(8, 3, stride=3)
    crosses = [ln for ln in fig.axes[0].lines]
    assert len(crosses) == 2 * (64 - 36)  # two strokes per crossed pixel
    assert len(draw_conv_arithmetic(8, 3, stride=3, mark_unreached=False).axes[0].lines) == 0


@pytest.mark.parametrize("in_size,k,s,p,d", [(7, 3, 2, 1, 1), (5, 3, 1, 0, 2), (32, 5, 2, 2, 1), (6, 4, 3, 0, 1)])
def test_title_substitutes_numbers_and_matches_conv2d(in_size, k, s, p, d):
    fig = draw_conv_arithmetic(in_size, k, stride=s, padding=p, dilation=d)
    assert isinstance(fig, Figure)
    out = torch.nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)(torch.zeros(1, 1, in_size, in_size)).shape[-1]
    title = fig.axes[0].get_title()
    assert title.endswith(f"= {out}")
    assert f"({in_size} + 2·{p} − {d * (k - 1) + 1})" in title


def test_footprint_has_one_filled_tap_per_kernel_entry_and_output_highlight():
    fig = draw_conv_arithmetic((6, 7), (2, 3), stride=1, padding=0, dilation=(2, 1), step=(1, 2))
    ax = fig.axes[0]
    from course_utils.diagrams import _CURRENT, _TAP
    from matplotlib.colors import to_rgba

    taps = [r for r in ax.patches if isinstance(r, Rectangle) and r.get_fill() and r.get_facecolor()[:3] == to_rgba(_TAP)[:3]]
    assert len(taps) == 6
    # Tap positions follow dilation: rows 1 and 3 (dilation 2), columns 2, 3, 4.
    corners = sorted((round(r.get_y() - 0.12), round(r.get_x() - 0.12)) for r in taps)
    assert corners == [(1, 2), (1, 3), (1, 4), (3, 2), (3, 3), (3, 4)]
    current = [r for r in ax.patches if r.get_facecolor()[:3] == to_rgba(_CURRENT)[:3]]
    assert len(current) == 1


def test_non_square_title_has_both_axes():
    title = draw_conv_arithmetic((6, 9), (3, 2), stride=(1, 2)).axes[0].get_title()
    assert title.startswith("height:") and "width:" in title
    assert conv_out_2d((6, 9), (3, 2), (1, 2)) == (4, 4)


def test_step_none_outlines_every_window():
    fig = draw_conv_arithmetic(6, 3, stride=1, step=None)
    outlines = [r for r in fig.axes[0].patches if not r.get_fill()]
    assert len(outlines) == 16


def test_frames_default_and_explicit():
    fig = conv_arithmetic_frames(5, 3, stride=2, padding=1)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["output (0, 0)", "output (0, 1)", "output (0, 2)", "output (2, 2)"]
    assert fig._suptitle.get_text().endswith("= 3")
    fig = conv_arithmetic_frames(4, 3, steps=[(1, 1)], ncols=3)
    assert [ax.get_title() for ax in fig.axes] == ["output (1, 1)"]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(in_size=3, kernel_size=5), "kernel_size"),
        (dict(in_size=5, kernel_size=3, stride=0), "stride"),
        (dict(in_size=5, kernel_size=3, padding=-1), "padding"),
        (dict(in_size=5, kernel_size=3, dilation=3), "dilation"),
        (dict(in_size=(5, 5, 5), kernel_size=3), "in_size"),
    ],
)
def test_invalid_configs_raise_shapes_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        draw_conv_arithmetic(**kwargs)
    with pytest.raises(ValueError, match=match):
        conv_arithmetic_frames(**kwargs)
    with pytest.raises(ValueError, match=match):
        window_coverage(**kwargs)


def test_float_size_is_rejected_by_name():
    with pytest.raises(TypeError, match="kernel_size"):
        draw_conv_arithmetic(5, 3.0)


@pytest.mark.parametrize("step", [9, -1, (3, 0), (0, 3)])
def test_step_outside_output_raises(step):
    with pytest.raises(ValueError, match="step"):
        draw_conv_arithmetic(5, 3, step=step)


@pytest.mark.parametrize("step", ["0", 1.0, True, (0,)])
def test_step_of_wrong_type_raises(step):
    with pytest.raises(TypeError, match="step"):
        draw_conv_arithmetic(5, 3, step=step)


def test_frames_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        conv_arithmetic_frames(5, 3, steps=[])
    with pytest.raises(ValueError, match="max_frames"):
        conv_arithmetic_frames(5, 3, max_frames=0)
    with pytest.raises(ValueError, match="ncols"):
        conv_arithmetic_frames(5, 3, ncols=0)


def _cell_texts(ax) -> list[str]:
    return [t.get_text() for t in sorted(ax.texts, key=lambda t: (round(t.get_position()[1], 3), t.get_position()[0]))]


@pytest.mark.parametrize("mode,fn", [("max", F.max_pool2d), ("avg", F.avg_pool2d)])
@pytest.mark.parametrize("shape,k,s", [((4, 4), 2, None), ((5, 5), 3, 1), ((5, 7), 2, None), ((6, 3), (3, 1), (2, 1))])
def test_pool_windows_output_values_match_pytorch(mode, fn, shape, k, s):
    gen = torch.Generator().manual_seed(3)
    x = torch.randint(-9, 10, shape, generator=gen).float()
    fig = draw_pool_windows(x, k, s, mode=mode)
    expected = fn(x[None, None], k, k if s is None else s)[0, 0]
    ax_in, ax_out = fig.axes
    got = [float(t) for t in _cell_texts(ax_out)]
    np.testing.assert_allclose(got, expected.flatten().numpy(), atol=0.006)
    assert ax_out.get_title() == f"output {expected.shape[0]}×{expected.shape[1]}"
    assert [float(t) for t in _cell_texts(ax_in)] == x.flatten().tolist()
    outlines = [r for r in ax_in.patches if not r.get_fill()]
    assert len(outlines) == expected.numel()


def test_pool_windows_3x3_output_gives_every_window_its_own_colour():
    # Lesson 04 pools a 6×6 matrix 2×2: nine windows, and each output cell must name exactly one of them.
    fig = draw_pool_windows(torch.arange(36.0).reshape(6, 6), 2)
    ax_in, ax_out = fig.axes
    outlines = [tuple(r.get_edgecolor()) for r in ax_in.patches if not r.get_fill()]
    cells = [tuple(r.get_facecolor()[:3]) for r in ax_out.patches]
    assert len(outlines) == 9 and len(set(outlines)) == 9
    assert len(cells) == 9 and len(set(cells)) == 9


def test_pool_windows_bold_marks_each_window_max():
    x = torch.tensor([[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 8.0, 1.0], [0.0, 0.0, 1.0, 1.0], [9.0, 0.0, 1.0, 2.0]])
    ax_in = draw_pool_windows(x, 2).axes[0]
    bold = sorted(t.get_text() for t in ax_in.texts if t.get_fontweight() == "bold")
    assert bold == ["2", "5", "8", "9"]


@pytest.mark.parametrize(
    "x,kwargs,err,match",
    [
        (torch.zeros(1, 4, 4), {}, ValueError, "2-D"),
        (torch.zeros(20, 4), {}, ValueError, "16"),
        (torch.tensor([[1.0, float("nan")], [0.0, 0.0]]), {}, ValueError, "NaN"),
        ("abc", {}, TypeError, "x must"),
        (torch.zeros(4, 4), {"mode": "mean"}, ValueError, "mode"),
        (torch.zeros(3, 3), {"kernel_size": 4}, ValueError, "kernel_size"),
        (torch.zeros(4, 4), {"kernel_size": 2, "stride": 0}, ValueError, "stride"),
    ],
)
def test_pool_windows_bad_input(x, kwargs, err, match):
    with pytest.raises(err, match=match):
        draw_pool_windows(x, **kwargs)


def test_no_pyplot_figures_left_open():
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    draw_conv_arithmetic(5, 3)
    conv_arithmetic_frames(5, 3)
    draw_pool_windows(np.arange(16.0).reshape(4, 4))
    assert len(plt.get_fignums()) == before


# --- multi-channel convolution drawings -------------------------------------------------------

def _mc_example():
    x = torch.stack([torch.arange(9.0).reshape(3, 3), torch.arange(1.0, 10.0).reshape(3, 3)])
    k = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    return x, torch.stack([k, k + 1])


def _cell_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


@pytest.mark.parametrize("out_channel,position,bias", [(0, (0, 0), None), (1, (1, 1), [0.5, -1.0]), (1, (0, 1), None)])
def test_multichannel_drawing_writes_pytorchs_value_and_its_sum(out_channel, position, bias):
    from course_utils.diagrams import draw_multichannel_conv

    x, w = _mc_example()
    b = None if bias is None else torch.tensor(bias)
    expected = F.conv2d(x[None], w, b)[0, out_channel]
    fig = draw_multichannel_conv(x, w, out_channel=out_channel, position=position, bias=bias)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    texts = _cell_texts(ax)
    i, j = position
    # The caption adds each channel's share (and the bias) and ends with PyTorch's value.
    shares = [float((x[c, i:i + 2, j:j + 2] * w[out_channel, c]).sum()) for c in range(2)]
    caption = texts[-1]
    assert caption.startswith(f"output[{out_channel}, {i}, {j}] = ")
    assert caption.endswith(f"= {float(expected[i, j]):g}")
    for s in shares:
        assert f"{s:g}" in caption
    # Every output value is printed in the output grid, and the window outline sits at the position.
    for v in expected.flatten().tolist():
        assert f"{v:g}" in texts
    outlines = [p for p in ax.patches if isinstance(p, Rectangle) and not p.get_fill()]
    assert len(outlines) == 2 and all(p.get_xy()[0] == j for p in outlines)


def test_output_channels_drawing_shows_every_map_of_f_conv2d():
    from course_utils.diagrams import draw_conv_output_channels

    x, w = _mc_example()
    w3 = torch.cat([w, -w[:1]])                              # three kernels, one with negative values
    bias = torch.tensor([0.0, 1.0, -2.0])
    fig = draw_conv_output_channels(x, w3, bias)
    texts = _cell_texts(fig.axes[0])
    for v in F.conv2d(x[None], w3, bias)[0].flatten().tolist():
        assert f"{v:g}" in texts
    assert sum(t.startswith("kernel ") for t in texts) == 3
    assert sum(t.startswith("output channel") for t in texts) == 3
    assert fig.axes[0].get_title().startswith("weight 3×2×2×2")


@pytest.mark.parametrize("kwargs,message", [
    (dict(x=torch.zeros(2, 3, 3), weight=torch.zeros(1, 3, 2, 2)), "input channels"),
    (dict(x=torch.zeros(1, 2, 3, 3), weight=torch.zeros(1, 2, 2, 2)), "C_in×H×W"),
    (dict(x=torch.zeros(2, 3, 3), weight=torch.zeros(2, 2, 2)), "C_out×C_in×kh×kw"),
    (dict(x=torch.zeros(2, 9, 9), weight=torch.zeros(1, 2, 2, 2)), "at most 8×8"),
    (dict(x=torch.zeros(5, 3, 3), weight=torch.zeros(1, 5, 2, 2)), "at most 4"),
    (dict(x=torch.zeros(2, 3, 3), weight=torch.zeros(1, 2, 4, 4)), "larger than the input"),
    (dict(x=torch.zeros(2, 3, 3), weight=torch.zeros(1, 2, 2, 2), out_channel=1), "out_channel"),
    (dict(x=torch.zeros(2, 3, 3), weight=torch.zeros(1, 2, 2, 2), position=(2, 0)), "outside the 2×2 output"),
    (dict(x=torch.zeros(2, 3, 3), weight=torch.zeros(1, 2, 2, 2), bias=[1.0, 2.0]), "bias must hold 1"),
    (dict(x=torch.full((2, 3, 3), float("nan")), weight=torch.zeros(1, 2, 2, 2)), "finite"),
])
def test_multichannel_drawing_rejects_bad_input(kwargs, message):
    from course_utils.diagrams import draw_multichannel_conv

    with pytest.raises(ValueError, match=message):
        draw_multichannel_conv(**kwargs)


# --- transposed convolution as zero insertion --------------------------------------------------

@pytest.mark.parametrize("n,k,s,p,step", [(3, 3, 2, 1, 0), (2, 4, 2, 1, 3), (3, 2, 3, 0, 5), (1, 3, 2, 1, 0), (4, 3, 1, 0, 2)])
def test_zero_insertion_drawing_is_a_conv_that_equals_conv_transpose2d(n, k, s, p, step):
    from course_utils.diagrams import draw_zero_insertion
    from course_utils.shapes import conv_transpose_out

    fig = draw_zero_insertion(n, k, stride=s, padding=p, step=step)
    ax = fig.axes[0]
    out = conv_transpose_out(n, k, stride=s, padding=p)
    big = (n - 1) * s + 1 + 2 * (k - 1 - p)
    x_mid = n + 2.0
    # Rebuild the stretched grid from the numbers written in the middle panel.
    grid = torch.zeros(big, big, dtype=torch.float64)
    cells = 0
    for t in ax.texts:
        x, y = t.get_position()
        if x_mid <= x < x_mid + big and t.get_text().isdigit() and t.get_text() != "0":
            grid[int(y), int(x - x_mid)] = float(t.get_text())
            cells += 1
    assert cells == n * n
    assert sorted(int(v) for v in grid[grid > 0].tolist()) == list(range(1, n * n + 1))
    # Every cell of the middle grid is drawn, and the output grid has PyTorch's size.
    layer = torch.nn.ConvTranspose2d(1, 1, k, stride=s, padding=p)
    assert layer(torch.zeros(1, 1, n, n)).shape[-1] == out
    greens = [q for q in ax.patches if isinstance(q, Rectangle) and q.get_fill() and q.get_x() >= x_mid + big]
    assert len(greens) == out * out
    # The drawn picture computes the transposed convolution: conv of the grid with the rotated kernel.
    torch.manual_seed(0)
    w = torch.randn(1, 1, k, k, dtype=torch.float64)
    numbered = torch.arange(1.0, n * n + 1, dtype=torch.float64).view(1, 1, n, n)
    assert torch.allclose(F.conv2d(grid[None, None], w.flip(-2, -1)), F.conv_transpose2d(numbered, w, stride=s, padding=p))
    # The window sits at the drawn step, and the title is the formula.
    i, j = divmod(step, out)
    window = [q for q in ax.patches if isinstance(q, Rectangle) and not q.get_fill()]
    assert len(window) == 1 and window[0].get_xy() == (x_mid + j, i) and window[0].get_width() == k
    assert ax.get_title().endswith(f"= {out}")


@pytest.mark.parametrize("args,kwargs,message", [
    ((7, 3), {}, "at most 6"),
    ((3, 3), {"padding": 3}, "kernel_size - 1"),
    ((3, 3), {"step": 100}, "step must be"),
    ((3, 0), {}, "kernel_size"),
])
def test_zero_insertion_drawing_rejects_bad_input(args, kwargs, message):
    from course_utils.diagrams import draw_zero_insertion

    with pytest.raises(ValueError, match=message):
        draw_zero_insertion(*args, **kwargs)
