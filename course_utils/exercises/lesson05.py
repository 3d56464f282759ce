"""Lesson 05's exercises, easiest first: head parameter counts, a class activation map (checked
against a real GAP head), and global average pooling over a padded batch of mixed-size images."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..shapes import linear_params
from .adapters import call_on_copies as _call_on_copies, run_cam
from .core import Case, Exercise
from .forbidden import CONV_CALLS, POOL_CALLS
from .registry import register

LESSON = "05_global_average_pooling"


def _tensor(rng: np.random.Generator, *shape: int) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))


# --------------------------------------------------------------------------------------------
# head_param_counts
# --------------------------------------------------------------------------------------------


def head_param_counts(channels: int, height: int, width: int, num_classes: int) -> tuple[int, int]:
    """Reference: parameters of (flatten + linear, GAP + linear) heads on a C×H×W feature map."""
    return linear_params(channels * height * width, num_classes), linear_params(channels, num_classes)


def _head_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        Case((64, 1, 1, 10), label="edge: 1×1 map (both heads are the same)"),
        Case((512, 7, 7, 1000), label="edge: an ImageNet-sized head"),
        Case((3, 5, 2, 1), label="edge: one class, non-square map"),
    ]
    while len(cases) < n:
        cases.append(
            Case(
                (int(rng.choice([8, 16, 32, 64, 128, 256])), int(rng.integers(1, 17)), int(rng.integers(1, 17)), int(rng.integers(1, 101))),
                label="random",
            )
        )
    return cases[:n]


register(
    Exercise(
        id="head_param_counts",
        lesson=LESSON,
        name="head_param_counts",
        points=1,
        reference=head_param_counts,
        public_cases=(Case((64, 8, 8, 10), label="the lesson's 64×8×8 map, 10 classes"),),
        make_cases=_head_cases,
        n_cases=15,
        show_expected=False,
        title="Parameters of a flatten + linear head and of a GAP + linear head, as a pair.",
        hints=(
            'A linear layer has one weight for every pair of input feature and class, plus one bias per class.',
            'After flattening, every value of the feature map is a feature; after global average pooling, each channel gives one.',
        ),
        forbidden=(
            'course_utils.shapes.linear_params',
            'course_utils.shapes.conv_params',
        ),
    )
)


# --------------------------------------------------------------------------------------------
# class_activation_map
# --------------------------------------------------------------------------------------------


def class_activation_map(features: torch.Tensor, fc_weight: torch.Tensor, cls: int) -> torch.Tensor:
    """Reference: the CAM of class ``cls``, computed by applying a real ``nn.Linear`` at every pixel.

    The linear layer of a GAP head (weight ``fc_weight``, no bias) is applied to the C numbers of
    each position; the CAM is its output for ``cls``, an H×W map.

    Examples
    --------
    >>> class_activation_map(torch.ones(2, 3, 4), torch.tensor([[1.0, 2.0]]), 0).shape
    torch.Size([3, 4])
    """
    num_classes, channels = fc_weight.shape
    layer = nn.Linear(channels, num_classes, bias=False).to(fc_weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(fc_weight)
        return layer(features.permute(1, 2, 0))[..., cls]  # H×W×K -> H×W


def _cam_case(rng: np.random.Generator, c: int, h: int, w: int, k: int, cls: int | None = None,
              label: str = "random", relu: bool = True) -> Case:
    features = _tensor(rng, c, h, w)
    if relu:
        features = features.clamp(min=0)  # what a network's last conv + ReLU hands to GAP
    weight = _tensor(rng, k, c) * 0.5
    cls = int(rng.integers(0, k)) if cls is None else cls
    return Case((features, weight, cls), label=label)


def _cam_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        _cam_case(rng, 4, 1, 1, 3, label="edge: a 1×1 map (the CAM is one number)"),
        _cam_case(rng, 1, 5, 6, 2, label="edge: one channel"),
        _cam_case(rng, 6, 3, 9, 5, cls=4, label="edge: the last class, non-square map"),
        _cam_case(rng, 8, 7, 4, 1, cls=0, label="edge: one class"),
        _cam_case(rng, 3, 6, 6, 10, label="edge: more classes than channels, signed features", relu=False),
    ]
    while len(cases) < n:
        c, h, w = int(rng.integers(1, 33)), int(rng.integers(1, 15)), int(rng.integers(1, 15))
        cases.append(_cam_case(rng, c, h, w, int(rng.integers(1, 12)), relu=bool(rng.random() < 0.7)))
    return cases[:n]


_CAM_RNG = np.random.default_rng(7)
register(
    Exercise(
        id="class_activation_map",
        lesson=LESSON,
        name="class_activation_map",
        points=2,
        reference=class_activation_map,
        public_cases=(
            _cam_case(_CAM_RNG, 16, 12, 12, 2, cls=1, label="the bars network's shapes: 16×12×12 maps, 2 classes"),
            _cam_case(_CAM_RNG, 64, 8, 8, 10, cls=3, label="64×8×8 maps, 10 classes"),
        ),
        make_cases=_cam_cases,
        run=run_cam,
        rtol=1e-4,
        atol=1e-4,
        n_cases=14,
        show_expected=False,
        title="The class activation map of one class: an H×W map whose mean plus the bias is the logit.",
        hints=(
            'The map has one value per position; at each position, the C feature values meet one row of fc_weight.',
            'The score of a class is the bias plus a weighted sum of the channel means; move the mean outside the sum and look at what is left inside it, at one position.',
            'Take the row of fc_weight for cls and combine it with the channel axis of features (a weighted sum over channels); leave the bias out.',
        ),
        forbidden=('course_utils.widgets.class_activation_map',),
    )
)


# --------------------------------------------------------------------------------------------
# padded_global_avg_pool
# --------------------------------------------------------------------------------------------


def padded_global_avg_pool(x: torch.Tensor, sizes: Sequence[Sequence[int]]) -> torch.Tensor:
    """Reference: GAP of a padded batch, each image averaged over its own top-left h×w region only.

    Examples
    --------
    >>> x = torch.zeros(1, 1, 2, 2); x[0, 0, 0, 0] = 4.0
    >>> padded_global_avg_pool(x, [(1, 2)])
    tensor([[2.]])
    """
    rows = [torch.nn.functional.adaptive_avg_pool2d(x[i : i + 1, :, :h, :w], 1).flatten(1) for i, (h, w) in enumerate(sizes)]
    return torch.cat(rows)


def _padded_case(rng: np.random.Generator, n: int, c: int, h: int, w: int, label: str = "random",
                 junk: bool | None = None, relu: bool = False, full: bool = False) -> Case:
    x = _tensor(rng, n, c, h, w)
    if relu:
        x = x.clamp(min=0)  # exact zeros inside the images too: counting non-zeros is not the size
    sizes = [(h, w) if full or i == 0 else (int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))) for i in range(n)]
    junk = bool(rng.random() < 0.5) if junk is None else junk
    for i, (hi, wi) in enumerate(sizes):
        fill = torch.from_numpy(rng.uniform(2.0, 5.0, size=(c, h, w)).astype(np.float32)) if junk else torch.zeros(c, h, w)
        keep = x[i, :, :hi, :wi].clone()
        x[i] = fill
        x[i, :, :hi, :wi] = keep
    return Case((x, sizes), label=label)


def _padded_cases(rng: np.random.Generator, n: int) -> list[Case]:
    cases = [
        _padded_case(rng, 3, 4, 5, 5, full=True, label="edge: no padding at all (plain GAP)"),
        _padded_case(rng, 2, 3, 6, 8, junk=False, label="edge: zero padding"),
        _padded_case(rng, 3, 2, 7, 5, junk=True, label="edge: padding filled with junk values"),
        _padded_case(rng, 4, 3, 6, 6, junk=False, relu=True, label="edge: ReLU features with exact zeros inside the images"),
        Case((_tensor(rng, 2, 3, 4, 4), [(4, 4), (1, 1)]), label="edge: an image of one pixel"),
        _padded_case(rng, 1, 5, 3, 9, label="edge: a batch of one"),
    ]
    while len(cases) < n:
        cases.append(_padded_case(rng, int(rng.integers(1, 6)), int(rng.integers(1, 9)), int(rng.integers(1, 13)),
                                  int(rng.integers(1, 13)), relu=bool(rng.random() < 0.3)))
    return cases[:n]


_PAD_RNG = np.random.default_rng(8)
register(
    Exercise(
        id="padded_global_avg_pool",
        lesson=LESSON,
        name="padded_global_avg_pool",
        points=2,
        reference=padded_global_avg_pool,
        public_cases=(
            Case((torch.tensor([[[[1.0, 3.0, 9.0], [5.0, 7.0, 9.0], [9.0, 9.0, 9.0]]],
                                [[[2.0, 4.0, 6.0], [8.0, 1.0, 3.0], [5.0, 7.0, 9.0]]]]), [(2, 2), (3, 3)]),
                 label="a 2×2 image padded with 9s, and a full 3×3 one"),
            _padded_case(_PAD_RNG, 4, 16, 12, 12, junk=False, relu=True, label="4 images of 16 channels, zero-padded to 12×12"),
        ),
        make_cases=_padded_cases,
        run=_call_on_copies,
        rtol=1e-5,
        atol=1e-5,
        n_cases=14,
        show_expected=False,
        title="Global average pooling of a padded batch: each image's channel means over its own h×w region.",
        hints=(
            'Which values of image i belong to it, and how many are there?',
            'Padding is not part of the image: a plain mean over the last two axes divides by the padded size and counts whatever the padding holds.',
            'Either loop over the images and average each one\'s top-left h×w crop over its last two axes, or build a mask that is one on the valid region and zero elsewhere, and divide a masked sum by each image\'s own pixel count.',
        ),
        # a convolution with a constant kernel would average for the learner as a pooling call does
        forbidden=POOL_CALLS + CONV_CALLS,
    )
)
