"""Wide ResNets (Zagoruyko & Komodakis) for 32 px inputs: WRN-28-10 and WRN-16-4.

A WRN-d-k has three stages of (d - 4) / 6 pre-activation blocks with 16k, 32k, 64k channels;
``width`` is the first stage's channel count 16k. The final BN-ReLU belongs to the last stage,
so every stage output the methods see is what the next layer reads.
"""

from __future__ import annotations

from torch import Tensor, nn

from spacing.models.staged import StagedNet


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3 twice, added to the input (or to a 1x1 projection of the activated input)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.projection = None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        activated = self.relu(self.bn1(x))
        out = self.conv2(self.relu(self.bn2(self.conv1(activated))))
        return out + (x if self.projection is None else self.projection(activated))


def wide_resnet(depth: int, num_classes: int, in_channels: int, width: int) -> StagedNet:
    blocks_per_stage = (depth - 4) // 6
    widths = [width, 2 * width, 4 * width]
    stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
    stages: list[nn.Module] = []
    cin = 16
    for i, cout in enumerate(widths):
        blocks: list[nn.Module] = [PreActBlock(cin if b == 0 else cout, cout, 2 if i > 0 and b == 0 else 1) for b in range(blocks_per_stage)]
        if i == len(widths) - 1:
            blocks += [nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        stages.append(nn.Sequential(*blocks))
        cin = cout
    return StagedNet(stem, stages, widths, num_classes)


def wrn28_10(num_classes: int, in_channels: int, image_size: int, width: int = 160) -> StagedNet:
    return wide_resnet(28, num_classes, in_channels, width)


def wrn16_4(num_classes: int, in_channels: int, image_size: int, width: int = 64) -> StagedNet:
    return wide_resnet(16, num_classes, in_channels, width)
