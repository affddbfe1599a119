"""A three-stage conv net that trains in seconds on CPU (digits, synthetic data)."""

from __future__ import annotations

from torch import nn

from spacing.models.staged import StagedNet


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def small_cnn(num_classes: int, in_channels: int, image_size: int, width: int = 32) -> StagedNet:
    """Stages of width w, 2w, 4w; the 2nd and 3rd halve the resolution first."""
    widths = [width, 2 * width, 4 * width]
    stem = _conv_bn_relu(in_channels, width)
    stages = [
        _conv_bn_relu(width, widths[0]),
        nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), _conv_bn_relu(widths[0], widths[1])),
        nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), _conv_bn_relu(widths[1], widths[2])),
    ]
    return StagedNet(stem, stages, widths, num_classes)
