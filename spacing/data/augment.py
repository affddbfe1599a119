"""Batched train-time augmentation on uint8 image tensors.

Working on whole batches (rather than per-image PIL transforms) keeps the data where the math
is, and drawing every random choice from one generator seeded per batch makes any batch
reproducible bit for bit from ``(indices, seed)``: spaced KD replays batches that way instead of
storing augmented images. Every choice is still made per image (crop offset, flip, angle,
AutoAugment sub-policy, cutout centre), as the per-image torchvision pipeline makes it. The
generator lives on the device of the images, so on a GPU no draw is copied from the host.

The pipeline runs in the papers' order: crop, flip, rotation (together, as one gather),
AutoAugment on uint8 images,
then normalisation, then Cutout (zeroing a square of the normalised image, i.e. setting it to
the mean colour, as in the Cutout paper's code; with ``cutout_black`` the square is zeroed
before normalisation, black, as in the self KD script). Pixels brought in from outside the
image (crop padding, rotation corners, AutoAugment's shear and translate) take the grey level
``fill``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from spacing.config import AugmentConfig
from spacing.data.autoaugment import CifarAutoAugment


def normalize(images: Tensor, mean: Tensor, std: Tensor, memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """uint8 (N, C, H, W) in [0, 255] -> float32, standardised per channel, in `memory_format`."""
    scale = 1.0 / (255.0 * std)
    return torch.addcmul(-mean / std, images.float(), scale).contiguous(memory_format=memory_format)


def warp(images: Tensor, padding: int, offsets: Tensor, flip: Tensor, degrees: Tensor, fill: int = 0) -> Tensor:
    """Crop, mirror and turn each image in one gather, as the three steps in sequence would.

    Image i is padded by `padding` and cut at window offset `offsets[i]` = (dy, dx) in
    [0, 2 * padding], mirrored left-right where `flip[i]`, then turned counter-clockwise by
    `degrees[i]` about its centre with nearest-pixel sampling; pixels from outside the image
    are `fill`. The rotation uses torchvision's sampling grid (pixel centres, ties rounded to
    even), so a turned image matches ``torchvision.transforms.v2.functional.rotate`` with nearest
    interpolation in all but a few pixels, not bit for bit (the measured figures are in
    docs/data-and-models.md).
    """
    n, c, h, w = images.shape
    device = images.device
    angle = torch.deg2rad(degrees.to(device, torch.float32))
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    mirror = torch.where(flip.to(device), -1.0, 1.0)[:, None, None]
    y = (torch.arange(h, device=device, dtype=torch.float32) - (h - 1) / 2)[None, :, None]
    x = (torch.arange(w, device=device, dtype=torch.float32) - (w - 1) / 2)[None, None, :]
    # The window pixel each output pixel reads: rotated back, then mirrored (on the small
    # per-image factors, so only two full-size operations make each coordinate).
    rows = torch.round((sin * x + (h - 1) / 2) + cos * y)
    cols = torch.round((mirror * cos * x + (w - 1) / 2) - mirror * sin * y)
    shift = (offsets.to(device) - padding).to(torch.float32)
    dy, dx = shift[:, 0, None, None], shift[:, 1, None, None]
    # Valid where the pixel is inside the window and the window pixel is inside the image (not padding).
    valid = (rows >= (-dy).clamp(min=0)) & (rows < (h - dy).clamp(max=h)) & (cols >= (-dx).clamp(min=0)) & (cols < (w - dx).clamp(max=w))
    flat = (rows * w + cols + (dy * w + dx)).clamp_(0, h * w - 1).long()
    out = images.reshape(n, c, h * w).gather(2, flat.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)
    return torch.where(valid[:, None], out, fill) if fill else out * valid[:, None].to(out.dtype)


def rotate(images: Tensor, degrees: Tensor) -> Tensor:
    """Turn image i counter-clockwise by `degrees[i]` about its centre (nearest pixel, zero fill)."""
    n, device = images.shape[0], images.device
    return warp(images, 0, torch.zeros(n, 2, dtype=torch.long, device=device), torch.zeros(n, dtype=torch.bool, device=device), degrees)


def random_warp(
    images: Tensor, padding: int, hflip: bool, max_degrees: float, generator: torch.Generator, fill: int = 0
) -> Tensor:
    """Random crop with `padding`, flip with probability 1/2 (if `hflip`), rotation in [-max_degrees, max_degrees], per image."""
    n, draw = images.shape[0], {"generator": generator, "device": generator.device}
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), **draw)
    flip = torch.rand(n, **draw) < 0.5 if hflip else torch.zeros(n, dtype=torch.bool, device=generator.device)
    degrees = (torch.rand(n, **draw) * 2 - 1) * max_degrees
    return warp(images, padding, offsets, flip, degrees, fill)


def cutout(images: Tensor, length: int, generator: torch.Generator) -> Tensor:
    """Zero a `length` x `length` square centred on a uniformly drawn pixel of each image (clipped at the border)."""
    n, _, h, w = images.shape
    centre_y = torch.randint(0, h, (n,), generator=generator, device=generator.device).to(images.device)
    centre_x = torch.randint(0, w, (n,), generator=generator, device=generator.device).to(images.device)
    rows = torch.arange(h, device=images.device)
    cols = torch.arange(w, device=images.device)
    half = length // 2
    in_rows = (rows >= centre_y[:, None] - half) & (rows < centre_y[:, None] + half)
    in_cols = (cols >= centre_x[:, None] - half) & (cols < centre_x[:, None] + half)
    hole = in_rows[:, None, :, None] & in_cols[:, None, None, :]
    return images.masked_fill(hole, 0)


@dataclass
class BatchAugment:
    """The train pipeline: augment uint8 images, normalise, cut out. Random draws come from `generator`."""

    mean: Tensor
    std: Tensor
    crop_padding: int = 0
    hflip: bool = False
    rotation: float = 0.0
    cutout: int = 0
    autoaugment: bool = False
    fill: int = 0
    cutout_black: bool = False
    memory_format: torch.memory_format = torch.contiguous_format
    _policy: CifarAutoAugment | None = field(init=False, repr=False, default=None)

    @classmethod
    def from_config(
        cls, cfg: AugmentConfig, mean: Tensor, std: Tensor, memory_format: torch.memory_format = torch.contiguous_format
    ) -> BatchAugment:
        return cls(
            mean, std, cfg.crop_padding, cfg.hflip, cfg.rotation, cfg.cutout, cfg.autoaugment, cfg.fill, cfg.cutout_black,
            memory_format,
        )

    def __post_init__(self) -> None:
        if self.autoaugment:
            self._policy = CifarAutoAugment(self.fill)

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        if self.crop_padding or self.hflip or self.rotation:
            images = random_warp(images, self.crop_padding, self.hflip, self.rotation, generator, self.fill)
        if self._policy is not None:
            images = self._policy(images, generator)
        if self.cutout and self.cutout_black:
            images = cutout(images, self.cutout, generator)
        normalised = normalize(images, self.mean, self.std)
        if self.cutout and not self.cutout_black:
            normalised = cutout(normalised, self.cutout, generator)
        return normalised.contiguous(memory_format=self.memory_format)

