"""models: TinyCNN is exactly the seed's network (checked against a hand-built nn.Sequential)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils.models import TinyCNN, conv_block


def _seed_model(num_classes: int = 10) -> nn.Sequential:
    """The seed's network written out layer by layer, independently of course_utils."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, num_classes),
    )


def _layer_names(module: nn.Module) -> list[str]:
    return [type(m).__name__ for m in module]


def test_output_shape_and_parameter_count_match_the_seed():
    torch.manual_seed(0)
    m = TinyCNN()
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    reference = _seed_model()
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in reference.parameters()) == 60362


def test_same_weights_give_the_same_scores_as_the_seed_network():
    torch.manual_seed(1)
    m = TinyCNN(num_classes=7).eval()
    reference = _seed_model(7).eval()
    pairs = [(m.features[0], reference[0]), (m.features[3], reference[3]), (m.classifier[1], reference[7])]
    with torch.no_grad():
        for ours, theirs in pairs:
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
    x = torch.randn(5, 3, 32, 32)
    torch.testing.assert_close(m(x), reference(x), rtol=0, atol=0)


def test_layers_in_order():
    m = TinyCNN()
    assert _layer_names(m.features) == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d"]
    assert _layer_names(m.classifier) == ["Flatten", "Linear"]
    conv1, conv2, linear = m.features[0], m.features[3], m.classifier[1]
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size, conv1.padding) == (3, 32, (3, 3), (1, 1))
    assert (conv2.in_channels, conv2.out_channels, conv2.kernel_size, conv2.padding) == (32, 64, (3, 3), (1, 1))
    assert (linear.in_features, linear.out_features) == (4096, 10)
    assert all(r.inplace for r in m.features if isinstance(r, nn.ReLU))


def test_batchnorm_and_dropout_variant_is_lesson_07s_block():
    m = TinyCNN(batchnorm=True, dropout=0.1)
    block = ["Conv2d", "BatchNorm2d", "ReLU", "Dropout2d", "MaxPool2d"]
    assert _layer_names(m.features) == block + block
    assert [b.num_features for b in m.features if isinstance(b, nn.BatchNorm2d)] == [32, 64]
    assert [d.p for d in m.features if isinstance(d, nn.Dropout2d)] == [0.1, 0.1]
    assert _layer_names(TinyCNN(batchnorm=True).features).count("Dropout2d") == 0
    assert _layer_names(TinyCNN(dropout=0.5).features).count("BatchNorm2d") == 0
    assert m(torch.randn(3, 3, 32, 32)).shape == (3, 10)


def test_dropout_is_off_in_eval_mode_and_on_in_train_mode():
    torch.manual_seed(0)
    m = TinyCNN(dropout=0.5)
    x = torch.randn(4, 3, 32, 32)
    m.eval()
    torch.testing.assert_close(m(x), m(x))
    m.train()
    assert not torch.equal(m(x), m(x))


def test_conv_block_layers():
    assert _layer_names(conv_block(3, 8)) == ["Conv2d", "ReLU", "MaxPool2d"]
    assert _layer_names(conv_block(3, 8, batchnorm=True, dropout=0.2)) == [
        "Conv2d", "BatchNorm2d", "ReLU", "Dropout2d", "MaxPool2d"]


@pytest.mark.parametrize(
    "kwargs, error, argument",
    [
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"num_classes": 2.5}, ValueError, "num_classes"),
        ({"num_classes": True}, ValueError, "num_classes"),
        ({"batchnorm": "yes"}, TypeError, "batchnorm"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"dropout": -0.1}, ValueError, "dropout"),
        ({"dropout": "0.1"}, ValueError, "dropout"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, argument):
    with pytest.raises(error, match=argument):
        TinyCNN(**kwargs)


def test_batchnorm_convolutions_have_no_bias():
    # BatchNorm subtracts the channel mean right after the conv, so a conv bias could never matter.
    m = TinyCNN(batchnorm=True)
    convs = [c for c in m.features if isinstance(c, nn.Conv2d)]
    assert all(c.bias is None for c in convs)
    assert sum(p.numel() for p in m.parameters()) - 60362 == 2 * (32 + 64) - (32 + 64)
    assert all(c.bias is not None for c in TinyCNN().features if isinstance(c, nn.Conv2d))


def test_gap_head_averages_the_last_maps_then_maps_64_numbers_to_scores():
    torch.manual_seed(0)
    m = TinyCNN(num_classes=7, head="gap").eval()
    assert _layer_names(m.classifier) == ["AdaptiveAvgPool2d", "Flatten", "Linear"]
    assert sum(p.numel() for p in m.classifier.parameters()) == 64 * 7 + 7
    x = torch.randn(3, 3, 32, 32)
    expected = m.classifier[-1](m.features(x).mean(dim=(2, 3)))
    torch.testing.assert_close(m(x), expected)
    # Any input size works with a GAP head.
    assert m(torch.randn(2, 3, 48, 40)).shape == (2, 7)
    with pytest.raises(ValueError, match="head"):
        TinyCNN(head="attention")


@pytest.mark.parametrize("depth", [2, 3, 6, 8])
def test_deep_cnn_has_depth_convs_and_bn_when_asked(depth):
    from course_utils.models import DeepCNN

    plain, bn = DeepCNN(depth, 8), DeepCNN(depth, 8, batchnorm=True)
    assert sum(isinstance(l, nn.Conv2d) for l in plain.modules()) == depth
    assert sum(isinstance(l, nn.BatchNorm2d) for l in plain.modules()) == 0
    assert sum(isinstance(l, nn.BatchNorm2d) for l in bn.modules()) == depth
    assert all(c.bias is None for c in bn.modules() if isinstance(c, nn.Conv2d))
    # Two pools at most (32 -> 16 -> 8), never after the last conv.
    assert 1 <= sum(isinstance(l, nn.MaxPool2d) for l in plain.modules()) <= 2
    assert not isinstance(plain.features[-1], nn.MaxPool2d)
    assert plain(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("kwargs, argument", [
    ({"depth": 1}, "depth"), ({"width": 0}, "width"), ({"num_classes": 0}, "num_classes"), ({"depth": 2.0}, "depth"),
])
def test_deep_cnn_bad_arguments_are_named(kwargs, argument):
    from course_utils.models import DeepCNN

    with pytest.raises(ValueError, match=argument):
        DeepCNN(**kwargs)
