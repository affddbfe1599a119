"""Deterministic streams of training batches and plain evaluation batches.

Every training batch is identified by the dataset indices it holds and the seed of its
augmentation; :meth:`TrainStream.rebuild` recreates it exactly. Batch order depends only on
(seed, epoch), so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from spacing.data.augment import BatchAugment, normalize


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (run seed, epoch, step, ...)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class Batch:
    """One augmented training batch and what identifies it."""

    images: Tensor
    labels: Tensor
    indices: Tensor
    seed: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])


class TrainStream:
    """Shuffled, augmented batches of the training split (last batch may be smaller)."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        augment: BatchAugment,
        batch_size: int,
        seed: int,
    ) -> None:
        self.images = images
        self.labels = labels
        self.augment = augment
        self.batch_size = batch_size
        self.seed = seed

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self) / self.batch_size)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """The batches of epoch `epoch` (0-based), in order."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(derive_seed(self.seed, epoch)))
        for step in range(self.steps_per_epoch):
            indices = order[step * self.batch_size : (step + 1) * self.batch_size]
            yield self.rebuild(indices, derive_seed(self.seed, epoch, step))

    def rebuild(self, indices: Tensor, seed: int) -> Batch:
        """The batch made of `indices` augmented with `seed`: identical to when it was first drawn."""
        device_indices = indices.to(self.images.device)
        images = self.augment(self.images[device_indices], torch.Generator().manual_seed(seed))
        return Batch(images, self.labels[device_indices], indices, seed)


class EvalSet:
    """A held-out split, served in fixed order without augmentation."""

    def __init__(self, images: Tensor, labels: Tensor, mean: Tensor, std: Tensor, batch_size: int) -> None:
        self.images = images
        self.labels = labels
        self.mean = mean
        self.std = std
        self.batch_size = batch_size

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, len(self), self.batch_size):
            end = start + self.batch_size
            yield normalize(self.images[start:end], self.mean, self.std), self.labels[start:end]
