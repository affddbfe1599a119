"""ShuffleNetV2 for small images (CIFAR variant: stride-1 3x3 stem, no max-pool).

Three stages, each a downsampling unit followed by split-transform-concatenate units with a
channel shuffle; the last stage ends with the 1x1 conv to 1024 channels. ``width`` is the first
stage's channel count (116 at the 1.0x size); all channels scale with it (kept even for the split).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spacing.models.staged import StagedNet

STAGE_CHANNELS, STAGE_UNITS = [116, 232, 464], [4, 8, 4]
STEM_CHANNELS, HEAD_CHANNELS, DEFAULT_WIDTH = 24, 1024, 116


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, depthwise: bool = False, relu: bool = True) -> list[nn.Module]:
    groups = cin if depthwise else 1
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


def channel_shuffle(x: Tensor, groups: int = 2) -> Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """Stride 1: transform half the channels and keep the other half. Stride 2: two branches, both downsampling."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        half = cout // 2
        self.stride = stride
        branch_in = cin if stride == 2 else half
        self.branch = nn.Sequential(
            *_conv_bn(branch_in, half, 1),
            *_conv_bn(half, half, 3, stride, depthwise=True, relu=False),
            *_conv_bn(half, half, 1),
        )
        self.shortcut_branch = (
            nn.Sequential(*_conv_bn(cin, cin, 3, stride, depthwise=True, relu=False), *_conv_bn(cin, half, 1)) if stride == 2 else None
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.shortcut_branch is None:
            kept, transformed = x.chunk(2, dim=1)
            out = torch.cat([kept, self.branch(transformed)], dim=1)
        else:
            out = torch.cat([self.shortcut_branch(x), self.branch(x)], dim=1)
        return channel_shuffle(out)


def shufflenetv2(num_classes: int, in_channels: int, image_size: int, width: int = DEFAULT_WIDTH) -> StagedNet:
    def scaled(channels: int) -> int:
        return max(2, 2 * round(channels * width / DEFAULT_WIDTH / 2))

    cin = scaled(STEM_CHANNELS)
    stem = nn.Sequential(*_conv_bn(in_channels, cin, 3))
    stages: list[nn.Module] = []
    for channels, units in zip(STAGE_CHANNELS, STAGE_UNITS, strict=True):
        cout = scaled(channels)
        stages.append(nn.Sequential(*[ShuffleUnit(cin if u == 0 else cout, cout, 2 if u == 0 else 1) for u in range(units)]))
        cin = cout
    head = scaled(HEAD_CHANNELS)
    stages[-1].extend(_conv_bn(cin, head, 1))
    return StagedNet(stem, stages, [scaled(c) for c in STAGE_CHANNELS[:-1]] + [head], num_classes)
