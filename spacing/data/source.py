"""What a dataset loader hands over: whole splits as uint8 tensors plus normalisation stats."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ImageSplits:
    """Train and test images (uint8, N x C x H x W) with int64 labels, and per-channel mean/std in [0, 1]."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        for name in ("train_images", "test_images"):
            images = getattr(self, name)
            if images.dtype != torch.uint8 or images.dim() != 4:
                raise ValueError(f"{name} must be a uint8 N x C x H x W tensor; got {images.dtype} {tuple(images.shape)}")
        if len(self.mean) != self.train_images.shape[1] or len(self.std) != self.train_images.shape[1]:
            raise ValueError("mean/std need one value per image channel")


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, scaled to [0, 1]."""
    scaled = images.double().div(255.0)
    return tuple(scaled.mean(dim=(0, 2, 3)).tolist()), tuple(scaled.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist())


def stratified_subset(labels: Tensor, fraction: float, seed: int) -> Tensor:
    """Sorted positions of a seeded subset holding round(fraction * n_c) items (at least one) of every class c.

    Stratified so that a small training set keeps the class balance of the full one.
    """
    generator = torch.Generator().manual_seed(seed)
    kept = []
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().flatten()
        count = max(1, round(fraction * len(members)))
        kept.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(kept).sort().values


def symmetric_label_noise(labels: Tensor, fraction: float, num_classes: int, seed: int) -> Tensor:
    """A copy of `labels` in which round(fraction * n) seeded positions hold a uniformly drawn *other* class.

    Exactly that many labels are wrong (not merely redrawn), so `fraction` is the noise rate.
    """
    generator = torch.Generator().manual_seed(seed)
    noisy = labels.clone()
    flipped = torch.randperm(len(labels), generator=generator)[: round(fraction * len(labels))]
    shift = torch.randint(1, num_classes, (len(flipped),), generator=generator)
    noisy[flipped] = (labels[flipped] + shift) % num_classes
    return noisy


def holdout_split(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices (kept, held_out) of a seeded random split holding out round(fraction * n) items."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_out = round(fraction * n)
    return order[n_out:].sort().values, order[:n_out].sort().values
