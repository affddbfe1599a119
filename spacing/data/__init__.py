"""Datasets as in-memory uint8 tensors, served as deterministic batch streams.

``DATASETS`` maps ``dataset.name`` to a loader returning :class:`ImageSplits`;
:func:`build_data` carves the validation split out of train, moves the tensors to the
training device once, and wraps them in a :class:`TrainStream` and :class:`EvalSet` objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from spacing.config import DatasetConfig
from spacing.data.augment import BatchAugment
from spacing.data.digits import load_digits
from spacing.data.source import ImageSplits, holdout_split
from spacing.data.stream import Batch, EvalSet, TrainStream
from spacing.data.synthetic import load_synthetic
from spacing.errors import ConfigError

DATASETS: dict[str, Callable[[Any], ImageSplits]] = {
    "digits": load_digits,
    "synthetic": load_synthetic,
}

__all__ = ["DATASETS", "Batch", "DataBundle", "EvalSet", "TrainStream", "build_data"]


@dataclass
class DataBundle:
    """Everything the runner needs from a dataset."""

    train: TrainStream
    val: EvalSet | None
    test: EvalSet
    num_classes: int
    image_shape: tuple[int, int, int]


def build_data(cfg: DatasetConfig, batch_size: int, eval_batch_size: int, seed: int, device: torch.device) -> DataBundle:
    """Load `cfg.name`, split off validation, and place the tensors on `device`."""
    if cfg.name not in DATASETS:
        raise ConfigError(f"unknown dataset.name '{cfg.name}'; valid choices: {', '.join(sorted(DATASETS))}.")
    splits = DATASETS[cfg.name](cfg)
    mean = torch.tensor(splits.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(splits.std, device=device).view(1, -1, 1, 1)
    train_idx, val_idx = holdout_split(len(splits.train_labels), cfg.val_fraction, cfg.split_seed)
    train_images = splits.train_images.to(device)
    train_labels = splits.train_labels.to(device)
    augment = BatchAugment(mean, std, cfg.augment.crop_padding, cfg.augment.hflip)
    stream = TrainStream(train_images[train_idx.to(device)], train_labels[train_idx.to(device)], augment, batch_size, seed)
    val = None
    if len(val_idx):
        val = EvalSet(train_images[val_idx.to(device)], train_labels[val_idx.to(device)], mean, std, eval_batch_size)
    test = EvalSet(splits.test_images.to(device), splits.test_labels.to(device), mean, std, eval_batch_size)
    return DataBundle(stream, val, test, splits.num_classes, tuple(splits.train_images.shape[1:]))
