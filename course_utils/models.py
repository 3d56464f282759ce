"""The course's models: the seed's TinyCNN and its BatchNorm/Dropout variant (lessons 06-07).

Kept deliberately small and readable: a ``features`` stack of two conv blocks, then a
``classifier`` that flattens and maps 64·8·8 numbers to class scores.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["TinyCNN", "conv_block"]


def conv_block(
    in_channels: int,
    out_channels: int,
    *,
    batchnorm: bool = False,
    dropout: float = 0.0,
) -> list[nn.Module]:
    """Layers of one TinyCNN block: conv 3×3 (padding 1) → [BatchNorm] → ReLU → [Dropout2d] → pool 2×2.

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
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1)]
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

    Examples
    --------
    >>> import torch
    >>> m = TinyCNN()
    >>> m(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    >>> sum(p.numel() for p in m.parameters())
    60362
    """

    def __init__(self, num_classes: int = 10, batchnorm: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if not isinstance(batchnorm, bool):
            raise TypeError(f"batchnorm must be True or False, got {batchnorm!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.num_classes = num_classes
        self.features = nn.Sequential(
            *conv_block(3, 32, batchnorm=batchnorm, dropout=float(dropout)),
            *conv_block(32, 64, batchnorm=batchnorm, dropout=float(dropout)),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 8 * 8, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes, for images N×3×32×32."""
        return self.classifier(self.features(x))
