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
    # receptive_field and trace follow
    "conv_params",
    "linear_params",
    "conv_macs",
    "linear_macs",
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
