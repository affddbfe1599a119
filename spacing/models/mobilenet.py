"""MobileNetV2 for small images (CIFAR variant: stride-1 stem and first downsampling removed).

Inverted residual blocks (1x1 expand, 3x3 depthwise, linear 1x1 project) grouped into four
stages by resolution; the last stage ends with the 1x1 conv to 1280 channels. ``width`` is the
first stage's channel count (24 at the standard size); all channels scale with it.
"""

from __future__ import annotations

from torch import Tensor, nn

from spacing.models.staged import StagedNet

# (expansion, channels, blocks, stride) per block group, and which groups form each stage.
BLOCK_GROUPS = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
STAGE_GROUPS = [[0, 1], [2], [3, 4], [5, 6]]
STEM_CHANNELS, HEAD_CHANNELS, DEFAULT_WIDTH = 32, 1280, 24


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return layers + [nn.ReLU6(inplace=True)] if relu else layers


class InvertedResidual(nn.Module):
    """Expand, depthwise, project; residual when the shape is kept."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expansion
        expand = _conv_bn(cin, hidden, 1) if expansion != 1 else []
        self.body = nn.Sequential(*expand, *_conv_bn(hidden, hidden, 3, stride, groups=hidden), *_conv_bn(hidden, cout, 1, relu=False))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        return x + out if self.residual else out


def mobilenetv2(num_classes: int, in_channels: int, image_size: int, width: int = DEFAULT_WIDTH) -> StagedNet:
    def scaled(channels: int) -> int:
        return max(1, round(channels * width / DEFAULT_WIDTH))

    cin = scaled(STEM_CHANNELS)
    stem = nn.Sequential(*_conv_bn(in_channels, cin, 3))
    stages: list[nn.Module] = []
    for groups in STAGE_GROUPS:
        blocks: list[nn.Module] = []
        for expansion, channels, n_blocks, stride in (BLOCK_GROUPS[g] for g in groups):
            for b in range(n_blocks):
                blocks.append(InvertedResidual(cin, scaled(channels), expansion, stride if b == 0 else 1))
                cin = scaled(channels)
        stages.append(nn.Sequential(*blocks))
    head = scaled(HEAD_CHANNELS)
    stages[-1].extend(_conv_bn(cin, head, 1))
    stage_channels = [scaled(BLOCK_GROUPS[groups[-1]][1]) for groups in STAGE_GROUPS[:-1]] + [head]
    return StagedNet(stem, stages, stage_channels, num_classes)
