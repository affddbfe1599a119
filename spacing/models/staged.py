"""The shape every model has here: a stem, a list of stages, global pooling and a classifier.

Methods rely on this shape rather than on particular architectures: spaced dropout acts after
each stage, self KD hangs an exit on each stage, KD reads the pooled feature. Its three entry
points are compiled as wholes when the run asks for it (:mod:`spacing.models.compiled`).
"""

from __future__ import annotations

from torch import Tensor, nn

from spacing.models.compiled import entry_point


class StagedNet(nn.Module):
    """``stem -> stages[0] -> ... -> stages[-1] -> pool -> classifier``.

    ``stage_channels[i]`` is the channel count of stage i's output and ``feature_dim`` the size
    of the pooled feature the classifier reads.
    """

    def __init__(self, stem: nn.Module, stages: list[nn.Module], stage_channels: list[int], num_classes: int) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.stage_channels = list(stage_channels)
        self.feature_dim = stage_channels[-1]
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    @entry_point
    def stage_outputs(self, x: Tensor) -> list[Tensor]:
        """The feature map after every stage, shallowest first."""
        outputs = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs

    @entry_point
    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits and the pooled penultimate feature."""
        features = self.pool(self.stage_outputs(x)[-1])
        return self.classifier(features), features

    @entry_point
    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_features(x)[0]
