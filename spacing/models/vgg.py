"""VGG-16 with BatchNorm for small images (as in CIFAR KD code): 13 convs in five pooled stages, one linear head."""

from __future__ import annotations

from torch import nn

from spacing.models.staged import StagedNet


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def vgg16_bn(num_classes: int, in_channels: int, image_size: int, width: int = 64) -> StagedNet:
    """Stages of 1+1, 2, 3, 3, 3 convs with w, 2w, 4w, 8w, 8w channels, each ending in a 2x2 max-pool.

    The first conv is the stem, so the first stage is the second conv and the first pool.
    """
    widths = [width, 2 * width, 4 * width, 8 * width, 8 * width]
    convs_per_stage = [1, 2, 3, 3, 3]
    stem = nn.Sequential(*_conv_bn_relu(in_channels, width))
    stages: list[nn.Module] = []
    cin = width
    for cout, n_convs in zip(widths, convs_per_stage, strict=True):
        layers: list[nn.Module] = []
        for _ in range(n_convs):
            layers += _conv_bn_relu(cin, cout)
            cin = cout
        stages.append(nn.Sequential(*layers, nn.MaxPool2d(2)))
    return StagedNet(stem, stages, widths, num_classes)
