"""The course's models: the seed's TinyCNN, its GAP-head and BatchNorm/Dropout variants, and a deeper
plain/BatchNorm stack for lesson 07's depth experiment.

Kept deliberately small and readable: a ``features`` stack of conv blocks, then a ``classifier``
that maps the last feature maps to class scores (flatten + linear, or global average pooling +
linear).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["TinyCNN", "DeepCNN", "conv_block"]


def conv_block(
    in_channels: int,
    out_channels: int,
    *,
    batchnorm: bool = False,
    dropout: float = 0.0,
) -> list[nn.Module]:
    """Layers of one TinyCNN block: conv 3×3 (padding 1) → [BatchNorm] → ReLU → [Dropout2d] → pool 2×2.

    With BatchNorm the convolution has no bias (``bias=False``): BatchNorm subtracts each channel's
    mean right away, which would cancel any constant the bias added, and its own shift β takes
    the bias's place.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels into and out of the convolution.
    batchnorm : bool
        Put a ``BatchNorm2d`` right after the convolution.
    dropout : float
        If positive, a ``Dropout2d(dropout)`` after the ReLU (drops whole channels).

    Returns
    -------
    list of nn.Module
        The layers in order, to be spliced into an ``nn.Sequential``.

    Examples
    --------
    >>> [type(m).__name__ for m in conv_block(3, 32, batchnorm=True, dropout=0.1)]
    ['Conv2d', 'BatchNorm2d', 'ReLU', 'Dropout2d', 'MaxPool2d']
    """
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batchnorm)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    layers.append(nn.MaxPool2d(2))
    return layers


class TinyCNN(nn.Module):
    """The seed's two-block CNN for 32×32 RGB images.

    ``Conv2d(3,32,3,padding=1) → ReLU → MaxPool2d(2) → Conv2d(32,64,3,padding=1) → ReLU →
    MaxPool2d(2)``, then ``Flatten → Linear(64*8*8, num_classes)``. The two 2×2 pools take 32×32
    down to 8×8, which is why the linear layer reads 64·8·8 = 4096 numbers.

    Parameters
    ----------
    num_classes : int
        Number of output scores (10 for CIFAR-10).
    batchnorm : bool
        Follow each convolution with ``BatchNorm2d`` (lesson 07).
    dropout : float
        Probability for a ``Dropout2d`` after each block's ReLU; 0 adds none.
    head : {"flatten", "gap"}
        ``"flatten"``: the seed's ``Flatten → Linear(64*8*8, num_classes)`` (40,970 parameters for
        10 classes). ``"gap"``: global average pooling, ``AdaptiveAvgPool2d(1) → Flatten →
        Linear(64, num_classes)`` (650 parameters), which also accepts any input size (lesson 05).

    Examples
    --------
    >>> import torch
    >>> m = TinyCNN()
    >>> m(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    >>> sum(p.numel() for p in m.parameters())
    60362
    """

    def __init__(self, num_classes: int = 10, batchnorm: bool = False, dropout: float = 0.0,
                 head: str = "flatten") -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if not isinstance(batchnorm, bool):
            raise TypeError(f"batchnorm must be True or False, got {batchnorm!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        if head not in ("flatten", "gap"):
            raise ValueError(f"head must be 'flatten' or 'gap', got {head!r}")
        self.num_classes = num_classes
        self.head = head
        self.features = nn.Sequential(
            *conv_block(3, 32, batchnorm=batchnorm, dropout=float(dropout)),
            *conv_block(32, 64, batchnorm=batchnorm, dropout=float(dropout)),
        )
        if head == "flatten":
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 8 * 8, num_classes))
        else:
            self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes, for images N×3×32×32."""
        return self.classifier(self.features(x))


class DeepCNN(nn.Module):
    """A plain stack of ``depth`` 3×3 conv layers, with or without BatchNorm, and a GAP head.

    Layer ``i`` is ``Conv2d → [BatchNorm2d] → ReLU``; a ``MaxPool2d(2)`` follows the layers at one
    third and two thirds of the depth, and the head is global average pooling + linear. It exists
    for lesson 07's depth experiment: the same network trained with and without BatchNorm. The
    weights use PyTorch's default initialization on purpose (no careful He scaling), the setting
    in which depth makes a plain network hard to train.

    Parameters
    ----------
    depth : int
        Number of conv layers, at least 2.
    width : int
        Channels of every conv layer.
    batchnorm : bool
        ``BatchNorm2d`` after every convolution (which then has ``bias=False``).
    num_classes : int

    Examples
    --------
    >>> m = DeepCNN(depth=6, width=16)
    >>> m(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    >>> sum(isinstance(l, nn.Conv2d) for l in m.modules())
    6
    """

    def __init__(self, depth: int = 6, width: int = 32, batchnorm: bool = False, num_classes: int = 10) -> None:
        super().__init__()
        for name, value, low in (("depth", depth, 2), ("width", width, 1), ("num_classes", num_classes, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(batchnorm, bool):
            raise TypeError(f"batchnorm must be True or False, got {batchnorm!r}")
        pools = {max(1, depth // 3), max(2, (2 * depth) // 3)}
        layers: list[nn.Module] = []
        channels = 3
        for i in range(1, depth + 1):
            layers.append(nn.Conv2d(channels, width, 3, padding=1, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            if i in pools and i < depth:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes, for images N×3×H×W."""
        return self.classifier(self.features(x))
