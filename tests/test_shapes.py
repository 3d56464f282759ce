"""Tests of course_utils.shapes against PyTorch's own layers.

The property tests draw random layer configurations (with dilation, strides
that do not divide, asymmetric height/width, 1-pixel outputs, invalid
settings) and require that our arithmetic agrees with the real module: same
output shape when PyTorch accepts the configuration, ValueError when PyTorch
rejects it. Run with ``--hypothesis-show-statistics`` to see how many
examples ran and how many were valid.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import event, given, settings
from hypothesis import strategies as st

from course_utils import shapes
from course_utils.shapes import (
    ShapeTypeError,
    conv_macs,
    conv_out,
    conv_out_2d,
    conv_params,
    conv_transpose_out,
    conv_transpose_out_2d,
    linear_macs,
    linear_params,
    pool_out,
    pool_out_2d,
    receptive_field,
    same_padding,
    same_padding_pair,
    trace,
)

TORCH_REJECTS = (RuntimeError, ValueError)


def pairs(lo: int, hi: int):
    """An (h, w) pair, often asymmetric."""
    return st.tuples(st.integers(lo, hi), st.integers(lo, hi))


def small_or_zero(hi: int):
    """Padding-like pairs: zero half the time, so that enough configurations are valid."""
    return st.one_of(st.just(0), pairs(0, hi))


def torch_shape(make_layer, h: int, w: int):
    """Output (h, w) of a real layer on a 1×1×h×w input, or None if PyTorch refuses."""
    try:
        layer = make_layer()
        with torch.no_grad():
            out = layer(torch.zeros(1, 1, h, w))
    except TORCH_REJECTS:
        return None
    # ConvTranspose2d silently returns an empty tensor where the size reaches 0; shapes treats a
    # zero-size output as a mistake (nothing downstream can use it) and raises instead.
    if 0 in out.shape[-2:]:
        return None
    return tuple(out.shape[-2:])


def ours(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except ValueError:
        return None


def assert_agree(expected, got):
    event("valid for PyTorch" if expected is not None else "rejected by PyTorch")
    assert got == expected, f"PyTorch gives {expected}, shapes gives {got} (None = error)"


# ---------------------------------------------------------------------------
# the examples from the brief and the 1-D formula


def test_brief_examples():
    assert conv_out(32, 3, 1, 1) == 32
    assert conv_out(32, 3, 2, 1) == 16
    assert pool_out(32, 2) == 16
    assert conv_transpose_out(16, 4, 2, 1) == 32


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(1, 9), s=st.integers(1, 6),
       p=st.integers(0, 5), d=st.integers(1, 4))
def test_conv_out_matches_the_formula(n, k, s, p, d):
    numerator = n + 2 * p - d * (k - 1) - 1
    if numerator < 0:
        with pytest.raises(ValueError, match="kernel_size"):
            conv_out(n, k, s, p, d)
    else:
        assert conv_out(n, k, s, p, d) == int(np.floor(numerator / s + 1))


def test_numpy_integers_are_accepted():
    assert conv_out(np.int64(32), np.int32(3), np.int16(2), np.uint8(1)) == 16
    assert conv_out_2d(np.array([32, 16]), 3, padding=1) == (32, 16)
    assert pool_out_2d(torch.Size([9, 8]), 2) == (4, 4)


# ---------------------------------------------------------------------------
# property tests against real layers (about 1,300 configurations in all)


@settings(max_examples=400, deadline=None)
@given(size=pairs(1, 24), k=pairs(1, 7), s=pairs(1, 4), p=pairs(0, 4), d=pairs(1, 3))
def test_conv_out_2d_agrees_with_conv2d(size, k, s, p, d):
    expected = torch_shape(
        lambda: nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, bias=False), *size)
    assert_agree(expected, ours(conv_out_2d, size, k, s, p, d))


@settings(max_examples=350, deadline=None)
@given(size=pairs(1, 20), k=pairs(1, 6), s=st.one_of(st.none(), pairs(1, 4)),
       p=small_or_zero(3), d=pairs(1, 3), ceil=st.booleans())
def test_pool_out_2d_agrees_with_maxpool2d(size, k, s, p, d, ceil):
    expected = torch_shape(
        lambda: nn.MaxPool2d(k, stride=s, padding=p, dilation=d, ceil_mode=ceil), *size)
    assert_agree(expected, ours(pool_out_2d, size, k, s, p, d, ceil_mode=ceil))


@settings(max_examples=250, deadline=None)
@given(size=pairs(1, 20), k=pairs(1, 6), s=st.one_of(st.none(), pairs(1, 4)),
       p=small_or_zero(3), ceil=st.booleans())
def test_pool_out_2d_agrees_with_avgpool2d(size, k, s, p, ceil):
    expected = torch_shape(lambda: nn.AvgPool2d(k, stride=s, padding=p, ceil_mode=ceil), *size)
    assert_agree(expected, ours(pool_out_2d, size, k, s, p, ceil_mode=ceil))


@settings(max_examples=350, deadline=None)
@given(size=pairs(1, 12), k=pairs(1, 5), s=pairs(1, 4), p=pairs(0, 4),
       op=small_or_zero(3), d=pairs(1, 3))
def test_conv_transpose_out_2d_agrees_with_convtranspose2d(size, k, s, p, op, d):
    expected = torch_shape(
        lambda: nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op,
                                   dilation=d, bias=False), *size)
    assert_agree(expected, ours(conv_transpose_out_2d, size, k, s, p, op, d))


@pytest.mark.parametrize("n,k,s,p,d,ceil", [
    (1, 1, 1, 0, 1, False),   # 1-pixel input and output
    (5, 2, 2, 1, 1, True),    # last window would start in the right padding
    (6, 3, 2, 1, 1, True),
    (7, 3, 3, 0, 2, True),    # dilation with a stride that does not divide
    (3, 4, 2, 2, 1, True),    # window longer than the unpadded input
])
def test_pool_out_edge_cases_against_maxpool1d(n, k, s, p, d, ceil):
    layer = nn.MaxPool1d(k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    expected = layer(torch.zeros(1, 1, n)).shape[-1]
    assert pool_out(n, k, s, p, d, ceil_mode=ceil) == expected


# ---------------------------------------------------------------------------
# validation: every error names the function and the argument


@pytest.mark.parametrize("call,words", [
    (lambda: conv_out(32, 3, 0), ["conv_out", "stride", "positive integer", "got 0"]),
    (lambda: conv_out(32, 3, -1), ["conv_out", "stride", "got -1"]),
    (lambda: conv_out(32, 3, 1, -1), ["conv_out", "padding", "non-negative", "got -1"]),
    (lambda: conv_out(0, 3), ["conv_out", "in_size", "positive", "got 0"]),
    (lambda: conv_out(-4, 3), ["conv_out", "in_size", "got -4"]),
    (lambda: conv_out(8, 0), ["conv_out", "kernel_size", "got 0"]),
    (lambda: conv_out(8, 3, dilation=0), ["conv_out", "dilation", "got 0"]),
    (lambda: conv_out(4, 3, dilation=3), ["conv_out", "kernel_size", "dilation", "padded input"]),
    (lambda: conv_out(2, 5, padding=1), ["conv_out", "kernel_size", "padded input", "= 4"]),
    (lambda: pool_out(8, 2, padding=2), ["pool_out", "padding", "half of kernel_size"]),
    (lambda: pool_out(8, 2, stride=0), ["pool_out", "stride", "got 0"]),
    (lambda: pool_out(1, 3, padding=0), ["pool_out", "kernel_size", "empty"]),
    (lambda: conv_transpose_out(4, 3, stride=2, output_padding=2),
     ["conv_transpose_out", "output_padding", "stride", "dilation", "got 2"]),
    (lambda: conv_transpose_out(4, 3, output_padding=-1),
     ["conv_transpose_out", "output_padding", "non-negative"]),
    (lambda: conv_transpose_out(1, 1, padding=1), ["conv_transpose_out", "padding"]),
    (lambda: conv_out_2d(32, (3, 3, 3)), ["conv_out_2d", "kernel_size", "pair", "3 values"]),
    (lambda: conv_out_2d((32,), 3), ["conv_out_2d", "in_size", "pair", "1 values"]),
    (lambda: conv_out_2d(32, 3, stride=(1, 0)), ["conv_out_2d", "width", "stride", "got 0"]),
    (lambda: pool_out_2d((2, 9), 3), ["pool_out_2d", "height", "kernel_size"]),
    (lambda: conv_transpose_out_2d(4, 3, stride=(2, 1), output_padding=1),
     ["conv_transpose_out_2d", "width", "output_padding"]),
    (lambda: same_padding(4), ["same_padding", "even", "padding='same'", "odd kernel_size"]),
    (lambda: same_padding(2, dilation=3), ["same_padding", "dilation"]),
    (lambda: conv_params(3, 8, 3, groups=2), ["conv_params", "groups", "in_channels"]),
    (lambda: conv_params(0, 8, 3), ["conv_params", "in_channels", "got 0"]),
    (lambda: linear_params(10, 0), ["linear_params", "out_features", "got 0"]),
    (lambda: conv_macs(3, 8, 3, (0, 4)), ["conv_macs", "out_hw", "got 0"]),
    (lambda: linear_macs(-1, 3), ["linear_macs", "in_features", "got -1"]),
    (lambda: receptive_field([(3, 0)]), ["receptive_field", "stride", "got 0"]),
    (lambda: receptive_field([(3, 1, -1)]), ["receptive_field", "padding"]),
    (lambda: receptive_field([{"kernel": 3}]), ["receptive_field", "layers[0]", "kernel_size"]),
    (lambda: receptive_field(nn.Conv2d(1, 1, (3, 5))), ["receptive_field", "axis"]),
])
def test_errors_name_the_argument(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} missing from {info.value}"


@pytest.mark.parametrize("bad", [3.0, 2.5, True, False, "3", None, 1j])
def test_non_integers_are_rejected_by_name(bad):
    for call in (lambda: conv_out(32, bad), lambda: conv_out_2d(32, (3, bad)),
                 lambda: pool_out(32, bad), lambda: conv_transpose_out(8, bad)):
        with pytest.raises(ShapeTypeError, match="kernel_size must be an integer"):
            call()
    # both except clauses catch it
    with pytest.raises(TypeError):
        conv_out(bad, 3)
    with pytest.raises(ValueError, match="in_size"):
        conv_out(bad, 3)


def test_never_returns_a_non_positive_size():
    for n in range(1, 8):
        for k in range(1, 10):
            for s in range(1, 4):
                for p in range(0, 4):
                    for f in (conv_out, pool_out, conv_transpose_out):
                        try:
                            assert f(n, k, s, p) >= 1
                        except ValueError:
                            pass


# ---------------------------------------------------------------------------
# same padding


@pytest.mark.parametrize("k,d", [(1, 1), (3, 1), (5, 1), (7, 1), (3, 2), (5, 3), (2, 2), (4, 2)])
def test_same_padding_keeps_the_size(k, d):
    p = same_padding(k, d)
    for n in (1, 7, 32):
        x = torch.zeros(1, 1, n, n + 3)
        out = nn.Conv2d(1, 1, k, padding=p, dilation=d)(x)
        assert out.shape == x.shape


@pytest.mark.parametrize("k,d", [(2, 1), (4, 1), (6, 1), (2, 3), (3, 1), (5, 2)])
def test_same_padding_pair_matches_pytorch_same(k, d):
    left, right = same_padding_pair(k, d)
    x = torch.randn(1, 1, 11, 9, generator=torch.Generator().manual_seed(0))
    conv = nn.Conv2d(1, 1, k, padding="same", dilation=d, bias=False)
    explicit = nn.functional.conv2d(
        nn.functional.pad(x, (left, right, left, right)), conv.weight, dilation=d)
    torch.testing.assert_close(conv(x), explicit)


def test_same_padding_pairs():
    assert same_padding((3, 5)) == (1, 2)
    assert same_padding(3, (1, 2)) == (1, 2)


# ---------------------------------------------------------------------------
# parameter and multiply-add counts


def numel(layer: nn.Module) -> int:
    return sum(p.numel() for p in layer.parameters())


@settings(max_examples=60, deadline=None)
@given(groups=st.integers(1, 4), cin_per=st.integers(1, 4), cout_per=st.integers(1, 4),
       k=pairs(1, 5), bias=st.booleans())
def test_conv_params_and_macs_match_pytorch(groups, cin_per, cout_per, k, bias):
    cin, cout = groups * cin_per, groups * cout_per
    layer = nn.Conv2d(cin, cout, k, groups=groups, bias=bias, padding=1)
    assert conv_params(cin, cout, k, bias=bias, groups=groups) == numel(layer)
    x = torch.zeros(1, cin, 9, 7)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        out = layer(x)
    # PyTorch counts a multiply-add as two floating-point operations
    assert 2 * conv_macs(cin, cout, k, tuple(out.shape[-2:]), groups=groups) == \
        counter.get_total_flops()


@pytest.mark.parametrize("i,o,bias", [(1, 1, True), (4096, 10, True), (7, 3, False)])
def test_linear_params_and_macs_match_pytorch(i, o, bias):
    layer = nn.Linear(i, o, bias=bias)
    assert linear_params(i, o, bias=bias) == numel(layer)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        layer(torch.zeros(1, i))
    assert 2 * linear_macs(i, o) == counter.get_total_flops()


# ---------------------------------------------------------------------------
# receptive field: brute force through real layers of ones


layer_specs = st.lists(
    st.one_of(
        st.tuples(st.just("conv"), st.integers(1, 4), st.integers(1, 2), st.integers(0, 2),
                  st.integers(1, 2)),
        st.integers(1, 3).flatmap(lambda k: st.tuples(
            st.just("pool"), st.just(k), st.integers(1, 3), st.integers(0, k // 2), st.just(1))),
    ),
    min_size=1, max_size=4,
)


def support(net: nn.Module, size: int, i: int) -> tuple[int, int]:
    """First and last input row whose gradient reaches output pixel (i, i)."""
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    out = net(x)
    out[0, 0, i, i].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1)).flatten()
    return int(rows.min()), int(rows.max())


@settings(max_examples=60, deadline=None)
@given(specs=layer_specs)
def test_receptive_field_matches_gradient_support(specs):
    layers = []
    for kind, k, s, p, d in specs:
        if kind == "conv":
            conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, bias=False)
            nn.init.ones_(conv.weight)
            layers += [conv, nn.ReLU()]
        else:
            layers.append(nn.AvgPool2d(k, stride=s, padding=p))
    net = nn.Sequential(*layers).double()
    rows = receptive_field(net)
    numbers_of = lambda rs: [(r.kernel_size, r.stride, r.padding, r.dilation, r.rf, r.jump,
                              r.start) for r in rs]
    assert numbers_of(rows) == numbers_of(receptive_field([spec[1:] for spec in specs]))
    r, j, start = rows[-1].rf, rows[-1].jump, rows[-1].start
    size = int(2 * r + 3 * j + 8)
    with torch.no_grad():
        n_out = net(torch.zeros(1, 1, size, size, dtype=torch.float64)).shape[-1]
    first = start - (r - 1) / 2  # first input row seen by output 0 (an integer)
    assert first == int(first)
    # the first output whose field lies wholly inside the image (no clipping by the border)
    i = next(i for i in range(n_out) if first + i * j >= 0)
    assert i + 1 < n_out and first + (i + 1) * j + r - 1 <= size - 1
    lo, hi = support(net, size, i)
    assert (lo, hi) == (first + i * j, first + i * j + r - 1)
    lo_next, _ = support(net, size, i + 1)
    assert lo_next - lo == j


def test_receptive_field_textbook_stack():
    rows = receptive_field([(3, 1, 1), (3, 1, 1), (2, 2), (3, 1, 1), (3, 1, 1), (2, 2)])
    assert [(r.rf, r.jump) for r in rows] == [(3, 1), (5, 1), (6, 2), (10, 2), (14, 2), (16, 4)]
    assert receptive_field([{"kernel_size": 3, "dilation": 4}])[0].rf == 9


def test_receptive_field_walks_modules_and_stops_at_flatten():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(8, 8, 3, padding="same", dilation=2), nn.ReLU()),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 2), nn.Conv2d(1, 1, 9),
    )
    rows = receptive_field(net)
    assert [r.layer for r in rows] == ["Conv2d", "MaxPool2d", "Conv2d", "AvgPool2d"]
    assert [r.name for r in rows] == ["0", "3", "4.0", "5"]
    assert [(r.rf, r.jump) for r in rows] == [(3, 1), (4, 2), (12, 2), (14, 4)]
    assert rows[2].padding == 2
    text = str(rows)
    assert text.splitlines()[0].split()[:2] == ["layer", "type"]
    assert "4.0" in text and "Conv2d" in text


def test_receptive_field_axis():
    net = nn.Sequential(nn.Conv2d(1, 1, (3, 5), stride=(1, 2)), nn.Conv2d(1, 1, 3))
    assert [r.rf for r in receptive_field(net, axis=0)] == [3, 5]
    assert [r.rf for r in receptive_field(net, axis=1)] == [5, 9]
    with pytest.raises(ValueError, match="axis"):
        receptive_field(net, axis=2)


# ---------------------------------------------------------------------------
# trace


def tiny_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 10),
    )


def test_trace_tiny_cnn():
    net = tiny_cnn()
    t = trace(net, (2, 3, 32, 32))
    assert [r.name for r in t] == ["input"] + [str(i) for i in range(8)]
    assert [r.output_shape for r in t] == [
        (2, 3, 32, 32), (2, 32, 32, 32), (2, 32, 32, 32), (2, 32, 16, 16), (2, 64, 16, 16),
        (2, 64, 16, 16), (2, 64, 8, 8), (2, 4096), (2, 10)]
    assert t.total_params == sum(p.numel() for p in net.parameters()) == 60362
    assert sum(r.params for r in t) == t.total_params and t.other_params == 0
    assert t[1].macs == 2 * conv_macs(3, 32, 3, 32)
    assert t[4].macs == 2 * conv_macs(32, 64, 3, 16)
    assert t[8].macs == 2 * linear_macs(4096, 10)
    assert t.total_macs == t[1].macs + t[4].macs + t[8].macs
    assert t.output_shape == (2, 10)
    assert [r.layer for r in t][1:] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU",
                                        "MaxPool2d", "Flatten", "Linear"]


def test_trace_text_is_an_aligned_table():
    text = trace(tiny_cnn(), (1, 3, 32, 32)).to_text()
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "type", "output", "shape", "params", "mult-adds"]
    assert lines[2].startswith("input") and "1×3×32×32" in lines[2]
    assert lines[-1].split() == ["total", "60,362", "5,644,288"]
    # numbers are right-aligned: every row ends in the same column
    assert len({len(line) for line in lines}) == 1
    assert str(trace(tiny_cnn(), (1, 3, 32, 32))) == text


def test_trace_html_and_print(capsys):
    t = trace(tiny_cnn(), (1, 3, 32, 32), print_table=True)
    assert capsys.readouterr().out.strip() == t.to_text()
    html = t._repr_html_()
    assert html.startswith("<table>") and "60,362" in html and "MaxPool2d" in html


def test_trace_restores_modes_and_leaves_statistics_alone():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.ReLU())
    net.train()
    net[2].eval()
    before = net[1].running_mean.clone(), int(net[1].num_batches_tracked)
    t = trace(net, (1, 1, 3, 3))  # 1×1 output: BatchNorm would refuse this in train mode
    assert t.output_shape == (1, 4, 1, 1)
    assert [m.training for m in net.modules()] == [True, True, True, False, True]
    assert torch.equal(net[1].running_mean, before[0])
    assert int(net[1].num_batches_tracked) == before[1]
    assert torch.is_grad_enabled()


def test_trace_counts_a_shared_module_once_and_other_parameters():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(5))
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            return self.conv(self.conv(x)) * self.scale[:2].view(1, 2, 1, 1)

    net = Net()
    t = trace(net, (1, 2, 6, 6))
    assert [r.name for r in t] == ["input", "conv", "conv"]
    assert [r.params for r in t] == [0, 38, 0]
    assert t[1].macs == t[2].macs == 2 * 36 * 2 * 9
    assert t.total_params == 43 and t.other_params == 5
    assert "(other)" in t.to_text()


@pytest.mark.parametrize("bad,words", [
    ((1, 3, 0, 32), ["input_shape[2]", "positive", "got 0"]),
    ((1, 3, 32.0, 32), ["input_shape[2]", "integer"]),
    ((), ["input_shape", "tuple of positive integers"]),
    (32, ["input_shape", "tuple of positive integers"]),
    ((1, 3, 5, 5), ["forward pass failed", "0: 1×32×5×5"]),
])
def test_trace_validates_input_shape(bad, words):
    with pytest.raises(ValueError) as info:
        trace(tiny_cnn(), bad)
    for word in words:
        assert word in str(info.value)


def test_trace_rejects_non_modules():
    with pytest.raises(TypeError, match="model"):
        trace(lambda x: x, (1, 3, 4, 4))


def test_public_api_is_exported():
    for name in ["conv_out", "pool_out", "conv_transpose_out", "conv_out_2d", "pool_out_2d",
                 "conv_transpose_out_2d", "same_padding", "receptive_field", "conv_params",
                 "linear_params", "conv_macs", "linear_macs", "trace"]:
        assert name in shapes.__all__
        assert getattr(shapes, name).__doc__.count("Example") >= 1


# --- cost ledger: dense, locally connected, conv, depthwise-separable --------------------------

@settings(max_examples=25, deadline=None)
@given(c=st.integers(1, 4), h=st.integers(1, 7), w=st.integers(1, 7), co=st.integers(1, 5),
       k=st.sampled_from([1, 3, 5]))
def test_cost_ledger_matches_real_layers(c, h, w, co, k):
    from course_utils.shapes import cost_ledger

    dense, local, conv, separable = cost_ledger((c, h, w), co, k)
    x = torch.randn(1, c, h, w)
    p = k // 2

    # Dense: an nn.Linear from the flattened image to the flattened output.
    linear = nn.Linear(c * h * w, co * h * w, device="meta")
    assert dense.params == sum(t.numel() for t in linear.parameters())
    assert dense.macs == linear.in_features * linear.out_features

    # Locally connected, built from unfold: a separate weight and bias for every output value.
    cols = torch.nn.functional.unfold(x, k, padding=p)                   # 1 × (c·k·k) × (h·w)
    weight = torch.randn(h * w, co, c * k * k)
    bias = torch.randn(co, h * w)
    out = torch.einsum("pow,wp->op", weight, cols[0]) + bias             # co × (h·w)
    assert out.shape == (co, h * w) and local.activations == out.numel()
    assert local.params == weight.numel() + bias.numel()
    assert local.macs == weight.numel()                                  # one multiply-add per weight

    # Conv and depthwise-separable: PyTorch's own modules, counted by trace.
    conv_layer = nn.Conv2d(c, co, k, padding=p)
    sep = nn.Sequential(nn.Conv2d(c, c, k, padding=p, groups=c), nn.Conv2d(c, co, 1))
    for row, model in ((conv, conv_layer), (separable, sep)):
        t = shapes.trace(model, (1, c, h, w))
        assert row.params == sum(q.numel() for q in model.parameters())
        assert row.macs == sum(r.macs for r in t.rows)
    with torch.no_grad():
        assert conv.activations == conv_layer(x).numel()
        assert separable.activations == sep[0](x).numel() + sep(x).numel()

    # What each step buys: locality cuts parameters and arithmetic (once the window is smaller than
    # the image: a window that hangs over the padding pays for taps on zeros); sharing cuts
    # parameters only.
    if k * k <= h * w:
        assert dense.params >= local.params
        assert conv.macs <= dense.macs
    assert local.params >= conv.params
    assert local.macs == conv.macs
    assert conv.params - co == (local.params - co * h * w) // (h * w)


def test_cost_ledger_table_and_bad_input():
    from course_utils.shapes import cost_ledger

    ledger = cost_ledger((3, 224, 224), 64)
    assert [r.layer for r in ledger] == ["dense", "locally connected", "conv", "depthwise-separable"]
    text = str(ledger)
    assert "1,792" in text and "86,704,128" in text and "12.2 MiB" in text and "1.76 TiB" in text
    with pytest.raises(ValueError, match="odd"):
        cost_ledger((3, 8, 8), 4, kernel_size=2)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        cost_ledger((1, 3, 8, 8), 4)
    with pytest.raises(ValueError, match="out_channels"):
        cost_ledger((3, 8, 8), 0)
