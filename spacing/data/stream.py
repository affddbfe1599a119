"""Deterministic streams of training batches and plain evaluation batches.

Every training batch is identified by the dataset indices it holds and the seed of its
augmentation; :meth:`TrainStream.rebuild` recreates it exactly. Batch order depends only on
(seed, epoch), so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from spacing.data.augment import normalize

Augment = Callable[[Tensor, torch.Generator], Tensor]
"""uint8 images + the batch's generator -> the normalised float batch (BatchAugment, PILAugment)."""


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (run seed, epoch, step, ...)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def to_device(tensor: Tensor, device: torch.device) -> Tensor:
    """`tensor` on `device`; a host tensor bound for a GPU goes through pinned memory, so the copy does not block."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


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
        augment: Augment,
        batch_size: int,
        seed: int,
    ) -> None:
        self.images = images
        self.labels = labels
        self.augment = augment
        self.batch_size = batch_size
        self.seed = seed
        self.device = images.device

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self) / self.batch_size)

    def plan(self, epoch: int) -> Iterator[tuple[Tensor, int]]:
        """What identifies each batch of epoch `epoch` (0-based), in order: (dataset indices, augmentation seed)."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(derive_seed(self.seed, epoch)))
        for step in range(self.steps_per_epoch):
            yield order[step * self.batch_size : (step + 1) * self.batch_size], derive_seed(self.seed, epoch, step)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """The batches of epoch `epoch` (0-based), in order."""
        for indices, seed in self.plan(epoch):
            yield self.rebuild(indices, seed)

    def rebuild(self, indices: Tensor, seed: int) -> Batch:
        """The batch made of `indices` augmented with `seed`: identical to when it was first drawn.

        `indices` stay on the host (what a replay keeps); their copy to the device does not
        block, and the augmentation draws from a generator on the images' device, so building
        a batch never makes the host wait for the GPU.
        """
        source_indices = to_device(indices, self.images.device)
        images = self.augment(self.images[source_indices], torch.Generator(self.images.device).manual_seed(seed))
        labels = self.labels[source_indices]
        return Batch(to_device(images, self.device), to_device(labels, self.device), indices, seed)


class EvalSet:
    """A held-out split, served in fixed order without augmentation."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        mean: Tensor,
        std: Tensor,
        batch_size: int,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.images = images
        self.labels = labels
        self.mean = mean
        self.std = std
        self.batch_size = batch_size
        self.memory_format = memory_format

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, len(self), self.batch_size):
            end = start + self.batch_size
            yield normalize(self.images[start:end], self.mean, self.std, self.memory_format), self.labels[start:end]
