"""Output-size arithmetic for convolution, pooling and transposed convolution.

Every function here mirrors the rule PyTorch itself applies, including the cases
PyTorch rejects: where ``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.AvgPool2d`` or
``nn.ConvTranspose2d`` would raise for a configuration, the matching function
raises :class:`ValueError` with a message that names the argument and the rule.
A size that is not positive is never returned silently.

Non-integer arguments (floats such as ``3.0``, bools, strings) raise
:class:`ShapeTypeError`, which is both a :class:`TypeError` and a
:class:`ValueError`, so either ``except`` clause catches it. NumPy integer
types are accepted.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence, Union

__all__ = [
    "ShapeTypeError",
    "conv_out",
    "pool_out",
    "conv_transpose_out",
    "conv_out_2d",
    "pool_out_2d",
    "conv_transpose_out_2d",
    "same_padding",
    "same_padding_pair",
    "ReceptiveFieldRow",
    "ReceptiveField",
    "receptive_field",
    "conv_params",
    "linear_params",
    "conv_macs",
    "linear_macs",
    "LayerCost",
    "CostLedger",
    "cost_ledger",
    "TraceRow",
    "ShapeTrace",
    "trace",
]

IntOrPair = Union[int, Sequence[int]]


class ShapeTypeError(TypeError, ValueError):
    """An argument that must be an integer (or a pair of integers) is not one.

    It subclasses both :class:`TypeError` and :class:`ValueError` so that code
    catching either sees it.
    """


# ---------------------------------------------------------------------------
# validation helpers


def _as_int(func: str, name: str, value: Any) -> int:
    # bool is an Integral subclass, but True as a kernel size is always a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ShapeTypeError(
            f"{func}: {name} must be an integer, got {value!r} "
            f"(type {type(value).__name__}); pass e.g. int({name})"
        )
    return int(value)


def _positive(func: str, name: str, value: Any) -> int:
    v = _as_int(func, name, value)
    if v <= 0:
        raise ValueError(f"{func}: {name} must be a positive integer, got {v}")
    return v


def _non_negative(func: str, name: str, value: Any) -> int:
    v = _as_int(func, name, value)
    if v < 0:
        raise ValueError(f"{func}: {name} must be a non-negative integer, got {v}")
    return v


def _pair(func: str, name: str, value: Any) -> tuple[Any, Any]:
    """Split an int-or-(h, w) argument into two values (validated later)."""
    if isinstance(value, (numbers.Integral, str, bytes)):
        return (value, value)
    try:
        items = tuple(value)
    except TypeError:
        # A lone non-int such as 3.0: the integer check reports it by name.
        return (value, value)
    if len(items) != 2:
        raise ValueError(
            f"{func}: {name} must be an integer or a pair (height, width), "
            f"got {len(items)} values {items!r}"
        )
    return items[0], items[1]


def _effective_kernel(kernel_size: int, dilation: int) -> int:
    return dilation * (kernel_size - 1) + 1


# ---------------------------------------------------------------------------
# one dimension


def conv_out(
    in_size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a convolution along one spatial axis.

    Computes ``floor((in_size + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1``,
    the rule of ``nn.Conv1d``/``nn.Conv2d``.

    Parameters
    ----------
    in_size : int
        Input length (height or width), at least 1.
    kernel_size : int
        Kernel length, at least 1.
    stride : int, default 1
        Step between windows, at least 1.
    padding : int, default 0
        Zeros added on each side, at least 0.
    dilation : int, default 1
        Spacing between kernel taps, at least 1.

    Returns
    -------
    int
        The output length, always at least 1.

    Raises
    ------
    ValueError
        If an argument is out of range, or if the dilated kernel
        ``dilation*(kernel_size-1)+1`` is longer than the padded input
        ``in_size + 2*padding`` (PyTorch rejects that too).

    Examples
    --------
    >>> conv_out(32, 3, stride=1, padding=1)
    32
    >>> conv_out(32, 3, stride=2, padding=1)
    16
    """
    f = "conv_out"
    n = _positive(f, "in_size", in_size)
    k = _positive(f, "kernel_size", kernel_size)
    s = _positive(f, "stride", stride)
    p = _non_negative(f, "padding", padding)
    d = _positive(f, "dilation", dilation)
    eff = _effective_kernel(k, d)
    if eff > n + 2 * p:
        raise ValueError(
            f"{f}: kernel_size {k} with dilation {d} spans {eff} pixels, more than the "
            f"padded input in_size + 2*padding = {n + 2 * p}; use a smaller kernel_size "
            f"or dilation, or more padding"
        )
    return (n + 2 * p - eff) // s + 1


def pool_out(
    in_size: int,
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of max or average pooling along one spatial axis.

    Follows ``nn.MaxPool2d``/``nn.AvgPool2d``: ``stride`` defaults to
    ``kernel_size``; with ``ceil_mode=True`` the division rounds up, except that
    a last window starting beyond the input and its left padding is dropped.

    Parameters
    ----------
    in_size : int
        Input length, at least 1.
    kernel_size : int
        Window length, at least 1.
    stride : int or None, default None
        Step between windows; ``None`` means ``kernel_size``.
    padding : int, default 0
        Implicit padding on each side; PyTorch requires ``padding <= kernel_size // 2``.
    dilation : int, default 1
        Spacing between window taps (``nn.MaxPool2d`` only; average pooling has none).
    ceil_mode : bool, default False
        Round the number of windows up instead of down.

    Returns
    -------
    int
        The output length, always at least 1.

    Raises
    ------
    ValueError
        If an argument is out of range or the output would be empty.

    Examples
    --------
    >>> pool_out(32, 2)
    16
    >>> pool_out(7, 2), pool_out(7, 2, ceil_mode=True)
    (3, 4)
    """
    f = "pool_out"
    n = _positive(f, "in_size", in_size)
    k = _positive(f, "kernel_size", kernel_size)
    s = k if stride is None else _positive(f, "stride", stride)
    p = _non_negative(f, "padding", padding)
    d = _positive(f, "dilation", dilation)
    if not isinstance(ceil_mode, (bool, numbers.Integral)):
        raise ShapeTypeError(f"{f}: ceil_mode must be True or False, got {ceil_mode!r}")
    if p > k // 2:
        raise ValueError(
            f"{f}: padding must be at most half of kernel_size (kernel_size // 2 = {k // 2}), "
            f"got {p}; PyTorch rejects larger padding for pooling"
        )
    eff = _effective_kernel(k, d)
    out = (n + 2 * p - eff + (s - 1 if ceil_mode else 0)) // s + 1
    # PyTorch drops a last window that would start in the right padding or beyond.
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    if out < 1:
        raise ValueError(
            f"{f}: kernel_size {k} with dilation {d} spans {eff} pixels, more than the "
            f"padded input in_size + 2*padding = {n + 2 * p}, so the output would be empty; "
            f"use a smaller kernel_size or a larger input"
        )
    return out


def conv_transpose_out(
    in_size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> int:
    """Output length of a transposed convolution along one spatial axis.

    Computes ``(in_size-1)*stride - 2*padding + dilation*(kernel_size-1) + output_padding + 1``,
    the rule of ``nn.ConvTranspose2d``.

    Parameters
    ----------
    in_size : int
        Input length, at least 1.
    kernel_size : int
        Kernel length, at least 1.
    stride : int, default 1
        Upsampling factor, at least 1.
    padding : int, default 0
        Removed from each side of the output, at least 0.
    output_padding : int, default 0
        Extra length added on one side to pick among the input sizes a strided
        convolution maps to the same output; must be smaller than ``stride`` or
        smaller than ``dilation``.
    dilation : int, default 1
        Spacing between kernel taps, at least 1.

    Returns
    -------
    int
        The output length, always at least 1.

    Raises
    ------
    ValueError
        If an argument is out of range or the output would be empty.

    Examples
    --------
    >>> conv_transpose_out(16, 4, stride=2, padding=1)
    32
    >>> conv_transpose_out(16, 3, stride=2, padding=1, output_padding=1)
    32
    """
    f = "conv_transpose_out"
    n = _positive(f, "in_size", in_size)
    k = _positive(f, "kernel_size", kernel_size)
    s = _positive(f, "stride", stride)
    p = _non_negative(f, "padding", padding)
    op = _non_negative(f, "output_padding", output_padding)
    d = _positive(f, "dilation", dilation)
    if op >= s and op >= d:
        raise ValueError(
            f"{f}: output_padding must be smaller than stride ({s}) or dilation ({d}), got {op}"
        )
    out = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
    if out < 1:
        raise ValueError(
            f"{f}: padding {p} removes more than the whole output "
            f"(it would have length {out}); use less padding"
        )
    return out


# ---------------------------------------------------------------------------
# two dimensions


def _call_2d(func: str, one_d, sizes: dict[str, Any]) -> tuple[int, int]:
    pairs = {name: _pair(func, name, value) for name, value in sizes.items()}
    result = []
    for axis, axis_name in ((0, "height"), (1, "width")):
        kwargs = {name: pair[axis] for name, pair in pairs.items()}
        try:
            result.append(one_d(**kwargs))
        except ValueError as exc:
            # Re-label the 1-D message so it names the 2-D function and the axis.
            msg = str(exc).split(": ", 1)[1]
            raise type(exc)(f"{func} ({axis_name}): {msg}") from None
    return result[0], result[1]


def conv_out_2d(
    in_size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> tuple[int, int]:
    """Output (height, width) of ``nn.Conv2d``.

    Every argument is an int (same for both axes) or an ``(h, w)`` pair, as in
    PyTorch; see :func:`conv_out` for the rule and the errors.

    Parameters
    ----------
    in_size, kernel_size, stride, padding, dilation : int or (int, int)
        As in :func:`conv_out`, per axis.

    Returns
    -------
    (int, int)
        Output height and width.

    Examples
    --------
    >>> conv_out_2d((32, 48), 3, stride=(1, 2), padding=1)
    (32, 24)
    """
    return _call_2d(
        "conv_out_2d",
        conv_out,
        dict(in_size=in_size, kernel_size=kernel_size, stride=stride, padding=padding,
             dilation=dilation),
    )


def pool_out_2d(
    in_size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
) -> tuple[int, int]:
    """Output (height, width) of ``nn.MaxPool2d`` or ``nn.AvgPool2d``.

    Every size argument is an int or an ``(h, w)`` pair; ``stride=None`` means
    ``kernel_size``. See :func:`pool_out` for the rule and the errors.

    Parameters
    ----------
    in_size, kernel_size, stride, padding, dilation : int or (int, int)
        As in :func:`pool_out`, per axis.
    ceil_mode : bool, default False
        Round the number of windows up.

    Returns
    -------
    (int, int)
        Output height and width.

    Examples
    --------
    >>> pool_out_2d((32, 15), 2)
    (16, 7)
    >>> pool_out_2d((32, 15), 2, ceil_mode=True)
    (16, 8)
    """
    if stride is None:
        stride = kernel_size
    return _call_2d(
        "pool_out_2d",
        lambda **kw: pool_out(**kw, ceil_mode=ceil_mode),
        dict(in_size=in_size, kernel_size=kernel_size, stride=stride, padding=padding,
             dilation=dilation),
    )


def conv_transpose_out_2d(
    in_size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> tuple[int, int]:
    """Output (height, width) of ``nn.ConvTranspose2d``.

    Every argument is an int or an ``(h, w)`` pair; see
    :func:`conv_transpose_out` for the rule and the errors.

    Parameters
    ----------
    in_size, kernel_size, stride, padding, output_padding, dilation : int or (int, int)
        As in :func:`conv_transpose_out`, per axis.

    Returns
    -------
    (int, int)
        Output height and width.

    Examples
    --------
    >>> conv_transpose_out_2d((8, 4), 2, stride=2)
    (16, 8)
    """
    return _call_2d(
        "conv_transpose_out_2d",
        conv_transpose_out,
        dict(in_size=in_size, kernel_size=kernel_size, stride=stride, padding=padding,
             output_padding=output_padding, dilation=dilation),
    )


# ---------------------------------------------------------------------------
# "same" padding


def same_padding(kernel_size: IntOrPair, dilation: IntOrPair = 1) -> Any:
    """Symmetric padding that keeps the size unchanged for a stride-1 convolution.

    For an odd dilated kernel ``dilation*(kernel_size-1)+1`` this is
    ``dilation*(kernel_size-1) // 2`` on each side. An even dilated kernel has
    no symmetric "same" padding; that raises ValueError (see
    :func:`same_padding_pair` for the uneven split PyTorch uses).

    Parameters
    ----------
    kernel_size : int or (int, int)
        Kernel length, or an ``(h, w)`` pair.
    dilation : int or (int, int), default 1
        Spacing between kernel taps.

    Returns
    -------
    int or (int, int)
        Padding per side; a pair when either argument is a pair.

    Raises
    ------
    ValueError
        If the dilated kernel length is even.

    Examples
    --------
    >>> same_padding(3), same_padding(5), same_padding(3, dilation=2)
    (1, 2, 2)
    >>> same_padding((3, 5))
    (1, 2)
    """
    f = "same_padding"
    if isinstance(kernel_size, numbers.Integral) and isinstance(dilation, numbers.Integral):
        k = _positive(f, "kernel_size", kernel_size)
        d = _positive(f, "dilation", dilation)
        eff = _effective_kernel(k, d)
        if eff % 2 == 0:
            raise ValueError(
                f"{f}: kernel_size {k} with dilation {d} spans {eff} pixels, an even number, "
                f"so no symmetric padding keeps the size; use an odd kernel_size, "
                f"padding='same' in nn.Conv2d (which pads one side more), or same_padding_pair"
            )
        return (eff - 1) // 2
    ks, ds = _pair(f, "kernel_size", kernel_size), _pair(f, "dilation", dilation)
    return (same_padding(ks[0], ds[0]), same_padding(ks[1], ds[1]))


def same_padding_pair(kernel_size: int, dilation: int = 1) -> tuple[int, int]:
    """(left, right) padding that keeps the size unchanged for a stride-1 convolution.

    The total ``dilation*(kernel_size-1)`` is split as PyTorch's
    ``padding="same"`` does: ``total // 2`` on the left (top), the rest on the
    right (bottom). For odd dilated kernels both sides are equal.

    Parameters
    ----------
    kernel_size : int
        Kernel length.
    dilation : int, default 1
        Spacing between kernel taps.

    Returns
    -------
    (int, int)
        Padding before and after.

    Examples
    --------
    >>> same_padding_pair(3), same_padding_pair(4)
    ((1, 1), (1, 2))
    """
    f = "same_padding_pair"
    k = _positive(f, "kernel_size", kernel_size)
    d = _positive(f, "dilation", dilation)
    total = d * (k - 1)
    return total // 2, total - total // 2


# ---------------------------------------------------------------------------
# parameter and multiply-add counts


def conv_params(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrPair,
    bias: bool = True,
    groups: int = 1,
) -> int:
    """Number of learnable parameters of ``nn.Conv2d``.

    ``out_channels * (in_channels // groups) * kh * kw`` weights, plus
    ``out_channels`` biases when ``bias`` is true.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts, both divisible by ``groups``.
    kernel_size : int or (int, int)
        Kernel size.
    bias : bool, default True
        Whether the layer has a bias.
    groups : int, default 1
        Number of channel groups (``groups == in_channels`` is a depthwise convolution).

    Returns
    -------
    int
        The parameter count.

    Examples
    --------
    >>> conv_params(3, 32, 3)
    896
    >>> conv_params(32, 32, 3, bias=False, groups=32)
    288
    """
    f = "conv_params"
    cin = _positive(f, "in_channels", in_channels)
    cout = _positive(f, "out_channels", out_channels)
    g = _positive(f, "groups", groups)
    kh, kw = (_positive(f, "kernel_size", v) for v in _pair(f, "kernel_size", kernel_size))
    if cin % g or cout % g:
        raise ValueError(
            f"{f}: groups ({g}) must divide both in_channels ({cin}) and out_channels ({cout})"
        )
    return cout * (cin // g) * kh * kw + (cout if bias else 0)


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Number of learnable parameters of ``nn.Linear``.

    Parameters
    ----------
    in_features, out_features : int
        Input and output sizes.
    bias : bool, default True
        Whether the layer has a bias.

    Returns
    -------
    int
        ``in_features * out_features`` (+ ``out_features`` with bias).

    Examples
    --------
    >>> linear_params(64 * 8 * 8, 10)
    40970
    """
    f = "linear_params"
    i = _positive(f, "in_features", in_features)
    o = _positive(f, "out_features", out_features)
    return i * o + (o if bias else 0)


def conv_macs(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrPair,
    out_hw: IntOrPair,
    groups: int = 1,
) -> int:
    """Multiply-adds of ``nn.Conv2d`` for one image.

    Each of the ``out_channels * out_h * out_w`` outputs is a dot product of
    length ``(in_channels // groups) * kh * kw``. Bias additions are not counted.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts, both divisible by ``groups``.
    kernel_size : int or (int, int)
        Kernel size.
    out_hw : int or (int, int)
        Output height and width (see :func:`conv_out_2d`).
    groups : int, default 1
        Number of channel groups.

    Returns
    -------
    int
        Multiply-add count for a batch of one.

    Examples
    --------
    >>> conv_macs(3, 32, 3, 32)
    884736
    """
    f = "conv_macs"
    conv_params(in_channels, out_channels, kernel_size, bias=False, groups=groups)  # validates
    kh, kw = (int(v) for v in _pair(f, "kernel_size", kernel_size))
    oh, ow = (_positive(f, "out_hw", v) for v in _pair(f, "out_hw", out_hw))
    return int(out_channels) * oh * ow * (int(in_channels) // int(groups)) * kh * kw


def linear_macs(in_features: int, out_features: int) -> int:
    """Multiply-adds of ``nn.Linear`` for one input vector.

    Parameters
    ----------
    in_features, out_features : int
        Input and output sizes.

    Returns
    -------
    int
        ``in_features * out_features``.

    Examples
    --------
    >>> linear_macs(4096, 10)
    40960
    """
    f = "linear_macs"
    return _positive(f, "in_features", in_features) * _positive(f, "out_features", out_features)


@dataclass(frozen=True)
class LayerCost:
    """What one layer costs on one image: see :func:`cost_ledger`.

    Attributes
    ----------
    layer : str
        ``"dense"``, ``"locally connected"``, ``"conv"`` or ``"depthwise-separable"``.
    params : int
        Learnable numbers (weights and biases).
    macs : int
        Multiply-adds for one image (bias additions not counted).
    activations : int
        Values the layer writes for one image: its output, plus the depthwise output for the
        depthwise-separable pair.
    """

    layer: str
    params: int
    macs: int
    activations: int

    @property
    def activation_bytes(self) -> int:
        """Bytes of :attr:`activations` in float32."""
        return 4 * self.activations

    @property
    def param_bytes(self) -> int:
        """Bytes of :attr:`params` in float32."""
        return 4 * self.params


def _human_bytes(n: int) -> str:
    # Binary units, about three significant figures: "7 KiB", "12.2 MiB", "1000 GiB", "1.76 TiB".
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            break
        value /= 1024
    if unit == "B":
        return f"{int(value)} B"
    return f"{value:.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"


class CostLedger(list):
    """A list of :class:`LayerCost` that prints as a table."""

    def to_text(self) -> str:
        """Aligned plain-text table: parameters, multiply-adds and float32 memory of each layer."""
        header = ("layer", "params", "mult-adds", "weights (fp32)", "activations (fp32)")
        rows = [(r.layer, f"{r.params:,}", f"{r.macs:,}", _human_bytes(r.param_bytes),
                 _human_bytes(r.activation_bytes)) for r in self]
        return _table(header, rows, right_from=1)

    def __str__(self) -> str:
        return self.to_text()


def cost_ledger(in_shape: Sequence[int], out_channels: int, kernel_size: int = 3) -> CostLedger:
    """Parameters, multiply-adds and activations of four layers that map the same input to the same output.

    The input is one ``C×H×W`` image; every layer produces ``out_channels×H×W`` (stride 1, "same"
    padding, biases included):

    - **dense**: every output value sees every input value, with its own weights;
    - **locally connected**: every output value sees only a ``k×k`` window of every input channel
      (locality) but each position has its own weights (no sharing);
    - **conv**: the same window and the same weights at every position (locality and sharing);
    - **depthwise-separable**: a ``k×k`` depthwise conv (one filter per input channel) followed by
      a 1×1 conv to ``out_channels``.

    Multiply-adds count every tap, including those that fall on zero padding, as
    :func:`conv_macs` does.

    Parameters
    ----------
    in_shape : (C, H, W)
        One input image, without the batch axis.
    out_channels : int
        Output channels of every layer.
    kernel_size : int, default 3
        Odd window size ``k`` (so that "same" padding exists).

    Returns
    -------
    CostLedger
        Four :class:`LayerCost` rows in the order above; ``print`` it for a table.

    Raises
    ------
    ValueError
        For a shape that is not three positive ints, or an even kernel size.

    Examples
    --------
    >>> ledger = cost_ledger((3, 32, 32), 16)
    >>> [row.params for row in ledger]
    [50348032, 458752, 448, 94]
    >>> ledger[1].macs == ledger[2].macs    # sharing weights saves parameters, not arithmetic
    True
    """
    f = "cost_ledger"
    if isinstance(in_shape, (str, bytes)) or not isinstance(in_shape, Sequence) or len(in_shape) != 3:
        raise ValueError(f"{f}: in_shape must be (C, H, W) for one image, got {in_shape!r}")
    c = _positive(f, "in_shape[0] (channels)", in_shape[0])
    h = _positive(f, "in_shape[1] (height)", in_shape[1])
    w = _positive(f, "in_shape[2] (width)", in_shape[2])
    co = _positive(f, "out_channels", out_channels)
    k = _positive(f, "kernel_size", kernel_size)
    if k % 2 == 0:
        raise ValueError(f"{f}: kernel_size must be odd so that 'same' padding keeps H×W, got {k}")
    positions = h * w
    outputs = co * positions
    window = c * k * k
    return CostLedger([
        LayerCost("dense", linear_params(c * positions, outputs), linear_macs(c * positions, outputs), outputs),
        # One window's weights per output value, plus a bias per output value: nothing is shared.
        LayerCost("locally connected", outputs * window + outputs, outputs * window, outputs),
        LayerCost("conv", conv_params(c, co, k), conv_macs(c, co, k, (h, w)), outputs),
        LayerCost("depthwise-separable",
                  conv_params(c, c, k, groups=c) + conv_params(c, co, 1),
                  conv_macs(c, c, k, (h, w), groups=c) + conv_macs(c, co, 1, (h, w)),
                  c * positions + outputs),
    ])


# ---------------------------------------------------------------------------
# receptive field


@dataclass(frozen=True)
class ReceptiveFieldRow:
    """Receptive field after one layer, along one axis.

    Attributes
    ----------
    name : str
        Layer name (module path, or ``"layer i"`` for plain specifications).
    layer : str
        Layer type, e.g. ``"Conv2d"``.
    kernel_size, stride, padding, dilation : int
        The layer's settings along this axis.
    rf : int
        Receptive field: how many input pixels one output pixel can see.
    jump : int
        Distance, in input pixels, between neighbouring output pixels.
    start : float
        Input coordinate (pixel index) of the centre of the first output pixel's
        receptive field; negative or fractional values point into the padding or
        between pixels.
    """

    name: str
    layer: str
    kernel_size: int
    stride: int
    padding: int
    dilation: int
    rf: int
    jump: int
    start: float


class ReceptiveField(list):
    """A list of :class:`ReceptiveFieldRow`, one per layer, that prints as a table."""

    def to_text(self) -> str:
        """Aligned plain-text table, starting with the input row."""
        header = ("layer", "type", "kernel", "stride", "pad", "dil", "rf", "jump", "start")
        body = [("input", "", "", "", "", "", "1", "1", "0")]
        for r in self:
            body.append((r.name, r.layer, str(r.kernel_size), str(r.stride), str(r.padding),
                         str(r.dilation), str(r.rf), str(r.jump), f"{r.start:g}"))
        return _table(header, body, right_from=2)

    def __str__(self) -> str:
        return self.to_text()


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: int,
           total: Sequence[str] | None = None) -> str:
    widths = [len(h) for h in header]
    for row in list(rows) + ([total] if total else []):
        widths = [max(w, len(c)) for w, c in zip(widths, row)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if i >= right_from else c.ljust(w)
                 for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    out = [line(header), rule] + [line(r) for r in rows]
    if total:
        out += [rule, line(total)]
    return "\n".join(out)


_RF_STOP = ("Flatten", "Linear", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
            "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "LazyLinear")


def _module_specs(model: Any, axis: int | None) -> list[tuple[str, str, int, int, Any, int]]:
    import torch.nn as nn

    specs = []
    for name, m in model.named_modules():
        if any(True for _ in m.children()):
            continue
        kind = type(m).__name__
        if kind in _RF_STOP:
            break  # past this point every output sees the whole input
        if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            raise ValueError(
                f"receptive_field: layers contains {kind} ({name!r}); transposed "
                f"convolutions are not covered, pass the layers before it"
            )
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            k, s, d = m.kernel_size, m.stride, m.dilation
            if isinstance(m.padding, str):
                if m.padding == "same":
                    p = tuple(di * (ki - 1) // 2 for ki, di in zip(k, d))
                else:
                    p = (0,) * len(k)
            else:
                p = m.padding
        elif isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)):
            k, s, p = m.kernel_size, m.stride, m.padding
            d = getattr(m, "dilation", 1)
            if s is None or (isinstance(s, (tuple, list)) and len(s) == 0):
                s = k
        else:
            continue  # activations, normalisation, dropout: the field does not change
        specs.append((name or kind, kind, k, s, p, d))
    return specs


def _pick_axis(f: str, what: str, value: Any, axis: int | None) -> Any:
    if isinstance(value, (numbers.Integral, str)):
        return value
    items = tuple(value)
    if len(items) == 1:
        return items[0]
    if axis is None:
        if len(set(items)) > 1:
            raise ValueError(
                f"{f}: {what} is {items}, different per axis; pass axis=0 (height) "
                f"or axis=1 (width)"
            )
        return items[0]
    if axis >= len(items):
        raise ValueError(f"{f}: axis must be smaller than {len(items)}, got {axis}")
    return items[axis]


def receptive_field(layers: Any, *, axis: int | None = None) -> ReceptiveField:
    """Receptive field and jump after each layer of a stack.

    Uses ``r_out = r_in + (k_eff - 1) * j_in`` and ``j_out = j_in * stride``
    with ``k_eff = dilation * (kernel_size - 1) + 1``, starting from ``r = j = 1``.

    Parameters
    ----------
    layers : nn.Module or iterable
        Either a model, whose ``Conv1d``/``Conv2d``/``MaxPool``/``AvgPool``
        leaves are read in registration order (other leaves such as ReLU or
        BatchNorm leave the field unchanged; the walk stops at the first
        ``Flatten``, ``Linear`` or adaptive pooling, after which every output
        sees the whole input), or an iterable of layer specifications: tuples
        ``(kernel_size, stride=1, padding=0, dilation=1)`` or dicts with those keys.
    axis : int or None, keyword-only
        For layers whose settings differ between height and width: 0 for
        height, 1 for width. ``None`` requires them to be equal.

    Returns
    -------
    ReceptiveField
        A list of :class:`ReceptiveFieldRow`, one per layer; ``print`` it for a table.

    Examples
    --------
    >>> rows = receptive_field([(3, 1, 1), (2, 2), (3, 1, 1), (2, 2)])
    >>> [(r.rf, r.jump) for r in rows]
    [(3, 1), (4, 2), (8, 2), (10, 4)]
    """
    f = "receptive_field"
    if axis is not None and (isinstance(axis, bool) or axis not in (0, 1)):
        raise ValueError(f"{f}: axis must be 0 (height), 1 (width) or None, got {axis!r}")
    try:
        import torch.nn as nn

        is_module = isinstance(layers, nn.Module)
    except ImportError:  # pragma: no cover - torch is a dependency
        is_module = False
    if is_module:
        specs = _module_specs(layers, axis)
    else:
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
            raise TypeError(
                f"{f}: layers must be an nn.Module or a list of (kernel_size, stride, "
                f"padding, dilation) tuples, got {type(layers).__name__}"
            )
        specs = []
        for i, spec in enumerate(layers):
            if isinstance(spec, dict):
                unknown = set(spec) - {"kernel_size", "stride", "padding", "dilation"}
                if unknown or "kernel_size" not in spec:
                    raise ValueError(
                        f"{f}: layers[{i}] must have a 'kernel_size' key and only "
                        f"kernel_size/stride/padding/dilation, got keys {sorted(spec)}"
                    )
                k, s = spec["kernel_size"], spec.get("stride", 1)
                p, d = spec.get("padding", 0), spec.get("dilation", 1)
            elif isinstance(spec, (tuple, list)) and 1 <= len(spec) <= 4:
                k, s, p, d = (tuple(spec) + (1, 0, 1)[len(spec) - 1:])[:4]
            elif isinstance(spec, numbers.Integral) and not isinstance(spec, bool):
                k, s, p, d = spec, 1, 0, 1
            else:
                raise ValueError(
                    f"{f}: layers[{i}] must be a tuple (kernel_size, stride=1, padding=0, "
                    f"dilation=1) or a dict, got {spec!r}"
                )
            specs.append((f"layer {i}", "spec", k, s, p, d))

    rows = ReceptiveField()
    r, j, start = 1, 1, 0.0
    for name, kind, k, s, p, d in specs:
        where = f"{f} ({name})"
        k = _positive(where, "kernel_size", _pick_axis(f, "kernel_size", k, axis))
        s = _positive(where, "stride", _pick_axis(f, "stride", s, axis))
        p = _non_negative(where, "padding", _pick_axis(f, "padding", p, axis))
        d = _positive(where, "dilation", _pick_axis(f, "dilation", d, axis))
        eff = _effective_kernel(k, d)
        start = start + ((eff - 1) / 2 - p) * j
        r = r + (eff - 1) * j
        j = j * s
        rows.append(ReceptiveFieldRow(name, kind, k, s, p, d, r, j, start))
    return rows


# ---------------------------------------------------------------------------
# layer-by-layer trace


@dataclass(frozen=True)
class TraceRow:
    """One line of a :class:`ShapeTrace`.

    Attributes
    ----------
    name : str
        Module path in the model (``"input"`` for the first row).
    layer : str
        Module type, e.g. ``"Conv2d"``.
    output_shape : tuple of int
        Shape of the module's output (N×C×H×W for image tensors).
    params : int
        Parameters of this module, counted at its first call only.
    macs : int
        Multiply-adds of this call for the whole batch (Conv, ConvTranspose
        and Linear layers; 0 for others).
    """

    name: str
    layer: str
    output_shape: tuple
    params: int
    macs: int


def _fmt_shape(shape: Any) -> str:
    if isinstance(shape, tuple) and all(isinstance(v, int) for v in shape):
        return "×".join(str(v) for v in shape) if shape else "scalar"
    return str(shape)


@dataclass
class ShapeTrace:
    """The result of :func:`trace`: one :class:`TraceRow` per leaf-module call.

    ``print(trace_result)`` shows an aligned table with a total row;
    in a notebook the trace also renders as HTML.
    """

    input_shape: tuple
    rows: list = field(default_factory=list)
    total_params: int = 0
    other_params: int = 0

    @property
    def total_macs(self) -> int:
        """Multiply-adds of the whole forward pass."""
        return sum(r.macs for r in self.rows)

    @property
    def output_shape(self) -> Any:
        """Shape of the last traced layer's output."""
        return self.rows[-1].output_shape

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> TraceRow:
        return self.rows[index]

    def _cells(self) -> tuple[tuple, list, tuple]:
        header = ("layer", "type", "output shape", "params", "mult-adds")
        body = [(r.name, r.layer, _fmt_shape(r.output_shape), f"{r.params:,}", f"{r.macs:,}")
                for r in self.rows]
        if self.other_params:
            body.append(("(other)", "parameters outside leaf modules", "",
                         f"{self.other_params:,}", "0"))
        total = ("total", "", "", f"{self.total_params:,}", f"{self.total_macs:,}")
        return header, body, total

    def to_text(self) -> str:
        """Aligned plain-text table: one row per layer call, then the totals."""
        header, body, total = self._cells()
        return _table(header, body, right_from=3, total=total)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        import html

        header, body, total = self._cells()

        def tr(cells, tag="td", bold=False):
            style = ' style="font-weight:bold"' if bold else ""
            return "<tr{}>{}</tr>".format(style, "".join(
                f'<{tag} style="text-align:{"right" if i >= 3 else "left"}">'
                f"{html.escape(c)}</{tag}>" for i, c in enumerate(cells)))

        return ("<table>" + tr(header, "th") + "".join(tr(b) for b in body)
                + tr(total, bold=True) + "</table>")


def _output_shape(output: Any) -> Any:
    import torch

    if isinstance(output, torch.Tensor):
        return tuple(int(v) for v in output.shape)
    if isinstance(output, (tuple, list)):
        return tuple(_output_shape(o) for o in output)
    return type(output).__name__


def _call_macs(module: Any, inputs: tuple, output: Any) -> int:
    import torch
    import torch.nn as nn

    if not isinstance(output, torch.Tensor):
        return 0
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        kernel = 1
        for v in module.kernel_size:
            kernel *= v
        # each output element is a dot product over (in/groups) channels × kernel taps
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        kernel = 1
        for v in module.kernel_size:
            kernel *= v
        # each input element is scattered to (out/groups) channels × kernel taps
        return inputs[0].numel() * (module.out_channels // module.groups) * kernel
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def trace(model: Any, input_shape: Sequence[int], *, print_table: bool = False) -> ShapeTrace:
    """Run a dummy forward pass and record each layer's output shape, parameters and cost.

    A zero tensor of ``input_shape`` goes through ``model`` in evaluation mode
    without gradients; forward hooks on the leaf modules (those without
    children) record every call. The training/evaluation mode of every module
    is restored afterwards, and batch-norm statistics are not touched.

    Parameters
    ----------
    model : nn.Module
        The network.
    input_shape : tuple of int
        Shape of the dummy input including the batch dimension, e.g.
        ``(1, 3, 32, 32)`` (N×C×H×W). Multiply-adds are for this whole batch.
    print_table : bool, default False, keyword-only
        Also print the table (handy at the end of a notebook cell).

    Returns
    -------
    ShapeTrace
        Rows for the input and each leaf-module call in execution order, with
        ``total_params``, ``total_macs`` and ``to_text()``.

    Raises
    ------
    ValueError
        If ``input_shape`` is not a tuple of positive integers, or the forward
        pass fails (the message includes PyTorch's error and the layers traced so far).

    Examples
    --------
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    >>> t = trace(net, (1, 3, 32, 32))
    >>> t.output_shape, t.total_params
    ((1, 8, 16, 16), 224)
    """
    import torch
    import torch.nn as nn

    f = "trace"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{f}: model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(input_shape, torch.Size):
        input_shape = tuple(input_shape)
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) == 0:
        raise ValueError(
            f"{f}: input_shape must be a tuple of positive integers such as (1, 3, 32, 32), "
            f"got {input_shape!r}"
        )
    shape = tuple(_positive(f, f"input_shape[{i}]", v) for i, v in enumerate(input_shape))

    first = next(iter(model.parameters()), None)
    if first is None:
        first = next(iter(model.buffers()), None)
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    device = first.device if first is not None else torch.device("cpu")

    result = ShapeTrace(input_shape=shape)
    result.rows.append(TraceRow("input", "", shape, 0, 0))
    seen: set[int] = set()
    names = {m: (n or type(m).__name__) for n, m in model.named_modules()}

    def hook(module, inputs, output):
        params = 0
        if id(module) not in seen:  # a module called twice owns its weights once
            seen.add(id(module))
            params = sum(p.numel() for p in module.parameters(recurse=False))
        result.rows.append(TraceRow(names.get(module, type(module).__name__),
                                    type(module).__name__, _output_shape(output),
                                    params, _call_macs(module, inputs, output)))

    modes = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if not any(True for _ in m.children())]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(shape, dtype=dtype, device=device))
    except Exception as exc:
        done = "\n".join(f"  {r.name}: {_fmt_shape(r.output_shape)}" for r in result.rows)
        raise ValueError(
            f"{f}: the forward pass failed for input_shape {shape}: {exc}\n"
            f"Layers traced before the failure:\n{done}"
        ) from exc
    finally:
        for h in handles:
            h.remove()
        for m, was_training in modes.items():
            m.training = was_training

    leaf_params = sum(r.params for r in result.rows)
    total = 0
    counted: set[int] = set()
    for p in model.parameters():
        if id(p) not in counted:
            counted.add(id(p))
            total += p.numel()
    result.total_params = total
    # parameters held by non-leaf modules, or by leaves that never ran
    result.other_params = max(total - leaf_params, 0)
    if print_table:
        print(result.to_text())
    return result
