"""CIFAR-style ResNets (3x3 stem, no max-pool), as in the papers' code.

ResNet-18/34 use two-conv BasicBlocks; ResNet-50/101 use Bottlenecks (1x1 reduce, 3x3, 1x1
expand by 4), so their stages output 4w, 8w, 16w, 32w channels.
"""

from __future__ import annotations

from torch import Tensor, nn

from spacing.models.staged import StagedNet


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    """Identity when the shape is kept, else a strided 1x1 projection."""
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (projection when the shape changes)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(cin, planes, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce to `planes`, strided 3x3, 1x1 expand to 4 x `planes`, with a residual connection."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(cin, cout, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def resnet(
    block: type[BasicBlock] | type[Bottleneck], blocks_per_stage: list[int], num_classes: int, in_channels: int, width: int
) -> StagedNet:
    """Four stages of `block` with w, 2w, 4w, 8w planes (strides 1, 2, 2, 2)."""
    stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
    stages: list[nn.Module] = []
    stage_channels: list[int] = []
    cin = width
    for i, n_blocks in enumerate(blocks_per_stage):
        planes = width * 2**i
        blocks = []
        for b in range(n_blocks):
            blocks.append(block(cin, planes, 2 if i > 0 and b == 0 else 1))
            cin = planes * block.expansion
        stages.append(nn.Sequential(*blocks))
        stage_channels.append(cin)
    return StagedNet(stem, stages, stage_channels, num_classes)


def resnet18(num_classes: int, in_channels: int, image_size: int, width: int = 64) -> StagedNet:
    return resnet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, width)


def resnet34(num_classes: int, in_channels: int, image_size: int, width: int = 64) -> StagedNet:
    return resnet(BasicBlock, [3, 4, 6, 3], num_classes, in_channels, width)


def resnet50(num_classes: int, in_channels: int, image_size: int, width: int = 64) -> StagedNet:
    return resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, width)


def resnet101(num_classes: int, in_channels: int, image_size: int, width: int = 64) -> StagedNet:
    return resnet(Bottleneck, [3, 4, 23, 3], num_classes, in_channels, width)
