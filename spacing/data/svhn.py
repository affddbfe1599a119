"""SVHN (cropped digits, 32x32) from the official .mat files, downloaded on first use.

Only the `train` and `test` files are used (not `extra`). Label 10 in the files stands for the
digit 0. The papers give no SVHN recipe; its own per-channel mean/std are used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spacing.config import DatasetConfig
from spacing.data.files import dataset_root, download
from spacing.data.source import ImageSplits
from spacing.errors import DataError

SVHN_MEAN = (0.4377, 0.4438, 0.4728)
SVHN_STD = (0.1980, 0.2010, 0.1970)
SVHN_FILES = {
    "train": ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
    "test": ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
}


def load_svhn(cfg: DatasetConfig) -> ImageSplits:
    root = dataset_root(cfg)
    splits = {}
    for split, (url, filename, md5) in SVHN_FILES.items():
        if not (root / filename).is_file():
            download(url, root, filename, md5, cfg.download)
        splits[split] = _read_mat(root / filename)
    (train_images, train_labels), (test_images, test_labels) = splits["train"], splits["test"]
    return ImageSplits(train_images, train_labels, test_images, test_labels, 10, SVHN_MEAN, SVHN_STD)


def _read_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """`X` is H x W x C x N uint8, `y` is N x 1 with labels 1..10."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
        images = np.ascontiguousarray(np.asarray(mat["X"], dtype=np.uint8).transpose(3, 2, 0, 1))
        labels = np.asarray(mat["y"], dtype=np.int64).reshape(-1) % 10
    except (ValueError, KeyError, OSError) as exc:
        raise DataError(f"{path} is not an SVHN .mat file ({exc}); delete it so it is downloaded again.") from None
    return torch.from_numpy(images), torch.from_numpy(labels)
