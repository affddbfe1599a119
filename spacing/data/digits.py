"""scikit-learn's bundled handwritten digits: a real 10-class image set that needs no download.

1,797 grey 8x8 images with pixel values 0..16 (rescaled here to 0..255). A fixed 20 % test split
(seeded by ``dataset.split_seed``) stands in for the official test set the file does not have.
"""

from __future__ import annotations

import torch

from spacing.config import DatasetConfig
from spacing.data.source import ImageSplits, channel_stats, holdout_split

TEST_FRACTION = 0.2


def load_digits(cfg: DatasetConfig) -> ImageSplits:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images * (255.0 / 16.0)).round().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(bunch.target).long()
    train, test = holdout_split(len(labels), TEST_FRACTION, cfg.split_seed)
    mean, std = channel_stats(images[train])
    return ImageSplits(images[train], labels[train], images[test], labels[test], 10, mean, std)
