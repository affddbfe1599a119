"""CIFAR-style ResNets (3x3 stem, no max-pool), as in the papers' code."""

from __future__ import annotations

from torch import Tensor, nn

from spacing.models.staged import StagedNet


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def resnet(blocks_per_stage: list[int], num_classes: int, in_channels: int, width: int = 64) -> StagedNet:
    """A BasicBlock ResNet with four stages of width w, 2w, 4w, 8w (strides 1, 2, 2, 2)."""
    widths = [width, 2 * width, 4 * width, 8 * width]
    stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
    stages: list[nn.Module] = []
    cin = width
    for i, (cout, n_blocks) in enumerate(zip(widths, blocks_per_stage, strict=True)):
        blocks = [BasicBlock(cin if b == 0 else cout, cout, (1 if i == 0 else 2) if b == 0 else 1) for b in range(n_blocks)]
        stages.append(nn.Sequential(*blocks))
        cin = cout
    return StagedNet(stem, stages, widths, num_classes)


def resnet18(num_classes: int, in_channels: int, width: int = 64) -> StagedNet:
    return resnet([2, 2, 2, 2], num_classes, in_channels, width)
