"""Generated images: each class is a smooth random prototype; samples add pixel noise.

Learnable in a few steps by any model, generated in milliseconds, reproducible from
``dataset.split_seed``: the dataset for tests and smoke runs.
"""

from __future__ import annotations

import torch
from torch.nn.functional import interpolate

from spacing.config import SyntheticDatasetConfig
from spacing.data.source import ImageSplits, channel_stats


def load_synthetic(cfg: SyntheticDatasetConfig) -> ImageSplits:
    generator = torch.Generator().manual_seed(cfg.split_seed)
    size, channels = cfg.image_size, cfg.channels
    coarse = torch.rand(cfg.num_classes, channels, 4, 4, generator=generator)
    prototypes = interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % cfg.num_classes
        labels = labels[torch.randperm(n, generator=generator)]
        noise = cfg.noise * torch.randn(n, channels, size, size, generator=generator)
        images = (prototypes[labels] + noise).clamp(0, 1).mul(255).round().to(torch.uint8)
        return images, labels

    train_images, train_labels = sample(cfg.train_size)
    test_images, test_labels = sample(cfg.test_size)
    mean, std = channel_stats(train_images)
    return ImageSplits(train_images, train_labels, test_images, test_labels, cfg.num_classes, mean, std)
