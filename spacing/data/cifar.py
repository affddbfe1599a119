"""CIFAR-10 and CIFAR-100 from their official python pickles, downloaded on first use.

The pickles are read here rather than through torchvision's dataset classes, which insist on
the official checksums of every unpacked file; the archive's checksum is checked on download.
Both sets are normalised with the CIFAR-100 mean/std as the papers' scripts write them (to three
decimals); the self KD script's CIFAR-10 statistics are set with dataset.mean / dataset.std.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spacing.config import DatasetConfig
from spacing.data.files import dataset_root, download
from spacing.data.source import ImageSplits
from spacing.errors import DataError
from spacing.unpickle import load_arrays

CIFAR100_MEAN = (0.507, 0.487, 0.441)
CIFAR100_STD = (0.267, 0.256, 0.276)


@dataclass(frozen=True)
class CifarFiles:
    """The layout of one official CIFAR archive."""

    url: str
    archive: str
    md5: str
    folder: str
    train: tuple[str, ...]
    test: str
    meta: str
    label_key: str
    names_key: str


CIFAR10 = CifarFiles(
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    archive="cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
    folder="cifar-10-batches-py",
    train=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test="test_batch",
    meta="batches.meta",
    label_key="labels",
    names_key="label_names",
)

CIFAR100 = CifarFiles(
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    archive="cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
    folder="cifar-100-python",
    train=("train",),
    test="test",
    meta="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
)


def load_cifar10(cfg: DatasetConfig) -> ImageSplits:
    return load_cifar(cfg, CIFAR10)


def load_cifar100(cfg: DatasetConfig) -> ImageSplits:
    return load_cifar(cfg, CIFAR100)


def load_cifar(cfg: DatasetConfig, files: CifarFiles) -> ImageSplits:
    root = dataset_root(cfg)
    folder = root / files.folder
    needed = [*files.train, files.test, files.meta]
    if not all((folder / name).is_file() for name in needed):
        download(files.url, root, files.archive, files.md5, cfg.download, unpacked=files.folder)
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)}; place the unpacked {files.archive} in {root}.")
    train = [_read_batch(folder / name, files.label_key) for name in files.train]
    test_images, test_labels = _read_batch(folder / files.test, files.label_key)
    num_classes = len(_unpickle(folder / files.meta)[files.names_key])
    return ImageSplits(
        torch.cat([images for images, _ in train]),
        torch.cat([labels for _, labels in train]),
        test_images,
        test_labels,
        num_classes,
        CIFAR100_MEAN,
        CIFAR100_STD,
    )


def _unpickle(path: Path) -> dict[str, Any]:
    """A CIFAR pickle, read as data (lists, strings and a numpy array: nothing in it runs)."""
    try:
        with path.open("rb") as handle:
            return load_arrays(handle, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(f"{path} is not a CIFAR python pickle ({exc}); delete it so it is downloaded again.") from None


def _read_batch(path: Path, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickle: rows of 3072 bytes (R, G and B planes of 32x32) and their labels."""
    batch = _unpickle(path)
    images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)
