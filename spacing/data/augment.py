"""Batched train-time augmentation on uint8 image tensors.

Working on whole batches (rather than per-image PIL transforms) keeps the data where the math
is, and drawing every random choice from one generator seeded per batch makes any batch
reproducible bit for bit from ``(indices, seed)``: spaced KD replays batches that way instead of
storing augmented images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def normalize(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """uint8 (N, C, H, W) in [0, 255] -> float32, standardised per channel."""
    return (images.float().div_(255.0) - mean) / std


def random_crop(images: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Zero-pad by `padding` and cut a random window of the original size from each image."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    off_y = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device)
    off_x = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device)
    rows = (off_y[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (off_x[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channels = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channels, rows, cols]


def random_hflip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(3), images)


@dataclass
class BatchAugment:
    """The train pipeline: augment uint8 images, then normalise. Random draws come from `generator`."""

    mean: Tensor
    std: Tensor
    crop_padding: int = 0
    hflip: bool = False

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        if self.crop_padding:
            images = random_crop(images, self.crop_padding, generator)
        if self.hflip:
            images = random_hflip(images, generator)
        return normalize(images, self.mean, self.std)
