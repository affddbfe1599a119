"""Datasets as in-memory uint8 tensors, served as deterministic batch streams.

``DATASETS`` maps ``dataset.name`` to a loader returning :class:`ImageSplits`;
:func:`build_data` carves the validation split out of train, moves the tensors to the
training device once, and wraps them in a :class:`TrainStream` and :class:`EvalSet` objects.
With ``dataset.loader=torchvision`` the training images stay on the CPU and are augmented by
per-image PIL transforms in DataLoader workers instead (:mod:`spacing.data.pil`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from spacing.config import DatasetConfig
from spacing.data.augment import BatchAugment, cutout
from spacing.data.cifar import load_cifar10, load_cifar100
from spacing.data.digits import load_digits
from spacing.data.pil import PILAugment, TorchvisionStream, pil_transform
from spacing.data.source import ImageSplits, holdout_split, stratified_subset, symmetric_label_noise
from spacing.data.stream import Batch, EvalSet, TrainStream, derive_seed
from spacing.data.svhn import load_svhn
from spacing.data.synthetic import load_synthetic
from spacing.data.tiny_imagenet import load_tiny_imagenet
from spacing.errors import ConfigError

DATASETS: dict[str, Callable[[Any], ImageSplits]] = {
    "digits": load_digits,
    "synthetic": load_synthetic,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "svhn": load_svhn,
    "tiny_imagenet": load_tiny_imagenet,
}

SUBSET_STREAM = 0x5B5E7
NOISE_STREAM = 0x2015E
"""Mixed into dataset.split_seed for the train_fraction subset and the label noise, apart from the validation holdout."""

__all__ = ["DATASETS", "Batch", "BatchAugment", "DataBundle", "EvalSet", "TrainStream", "build_data", "cutout", "derive_seed"]


@dataclass
class DataBundle:
    """Everything the runner needs from a dataset."""

    train: TrainStream
    val: EvalSet | None
    test: EvalSet
    num_classes: int
    image_shape: tuple[int, int, int]
    sizes: dict[str, int]
    """Images per split as trained and evaluated, and how many training labels are noisy (for the run record)."""


def build_data(
    cfg: DatasetConfig,
    batch_size: int,
    eval_batch_size: int,
    seed: int,
    device: torch.device,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> DataBundle:
    """Load `cfg.name`, split off validation, and place the tensors on `device`; batches come in `memory_format`."""
    if cfg.name not in DATASETS:
        raise ConfigError(f"unknown dataset.name '{cfg.name}'; valid choices: {', '.join(sorted(DATASETS))}.")
    splits = DATASETS[cfg.name](cfg)
    stats = (tuple(cfg.mean), tuple(cfg.std)) if cfg.mean is not None and cfg.std is not None else (splits.mean, splits.std)
    if len(stats[0]) != splits.train_images.shape[1]:
        raise ConfigError(
            f"dataset.mean and dataset.std need {splits.train_images.shape[1]} values (one per channel of {cfg.name}); "
            f"got {len(stats[0])}."
        )
    mean = torch.tensor(stats[0], device=device).view(1, -1, 1, 1)
    std = torch.tensor(stats[1], device=device).view(1, -1, 1, 1)
    train_idx, val_idx = holdout_split(len(splits.train_labels), cfg.val_fraction, cfg.split_seed)
    if cfg.train_fraction < 1.0:
        subset_seed = derive_seed(cfg.split_seed, SUBSET_STREAM)
        train_idx = train_idx[stratified_subset(splits.train_labels[train_idx], cfg.train_fraction, subset_seed)]
    train_images, clean_labels = splits.train_images[train_idx], splits.train_labels[train_idx]
    noise_seed = derive_seed(cfg.split_seed, NOISE_STREAM)
    train_labels = symmetric_label_noise(clean_labels, cfg.label_noise, splits.num_classes, noise_seed)
    if cfg.loader == "torchvision":
        transform = pil_transform(cfg.augment, train_images.shape[-1], *stats)
        stream: TrainStream = TorchvisionStream(
            train_images, train_labels, PILAugment(transform, memory_format), batch_size, seed, device, cfg.workers
        )
    else:
        augment = BatchAugment.from_config(cfg.augment, mean, std, memory_format)
        stream = TrainStream(train_images.to(device), train_labels.to(device), augment, batch_size, seed)
    val = None
    if len(val_idx):
        val_images, val_labels = splits.train_images[val_idx].to(device), splits.train_labels[val_idx].to(device)
        val = EvalSet(val_images, val_labels, mean, std, eval_batch_size, memory_format)
    test = EvalSet(splits.test_images.to(device), splits.test_labels.to(device), mean, std, eval_batch_size, memory_format)
    sizes = {
        "train": len(train_idx),
        "val": len(val_idx),
        "test": len(splits.test_labels),
        "noisy_train_labels": int((train_labels != clean_labels).sum()),
    }
    return DataBundle(stream, val, test, splits.num_classes, tuple(splits.train_images.shape[1:]), sizes)
