"""The reference the data benchmark compares against: the papers' per-image torchvision pipeline.

CIFAR-sized synthetic data (uint8, in memory) wrapped as a torchvision-style dataset that hands
out PIL images, augmented by RandomCrop(32, padding 4), RandomHorizontalFlip and
RandomRotation(15), then ToTensor and Normalize with the CIFAR-100 statistics, batched by a
shuffling DataLoader with worker processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from spacing.config import AugmentConfig
from spacing.data.cifar import CIFAR100_MEAN, CIFAR100_STD
from spacing.data.pil import pil_transform, to_pil

PAPER_AUGMENT = AugmentConfig(crop_padding=4, hflip=True, rotation=15)
IMAGE_SIZE = 32


def synthetic_cifar(n: int, num_classes: int = 100, seed: int = 0) -> tuple[Tensor, Tensor]:
    """`n` random uint8 3 x 32 x 32 images and labels."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8, generator=generator)
    return images, torch.randint(0, num_classes, (n,), generator=generator)


class PILImageDataset(Dataset):
    """Like torchvision's CIFAR datasets: item i is `transform(PIL image i)` and its label."""

    def __init__(self, images: Tensor, labels: Tensor, transform: Callable) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.transform(to_pil(self.images[i])), int(self.labels[i])


def reference_loader(images: Tensor, labels: Tensor, batch_size: int, workers: int, pin_memory: bool) -> DataLoader:
    dataset = PILImageDataset(images, labels, pil_transform(PAPER_AUGMENT, IMAGE_SIZE, CIFAR100_MEAN, CIFAR100_STD))
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, pin_memory=pin_memory, drop_last=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(batches: Iterator, count: int, work: Callable[[object], int], device: torch.device) -> float:
    """Images per second of `work` (returning its batch's image count) over the next `count` batches."""
    sync(device)
    started = time.perf_counter()
    images = sum(work(next(batches)) for _ in range(count))
    sync(device)
    return images / (time.perf_counter() - started)


def report(lines: list[tuple[str, float]], what: str, ratio: float) -> None:
    """Print each (label, images/s) line, then the one summary line ``<what>: <ratio>x``."""
    width = max(len(label) for label, _ in lines)
    for label, rate in lines:
        print(f"  {label:<{width}}  {rate:>12,.0f} images/s")
    print(f"{what}: {ratio:.1f}x")
