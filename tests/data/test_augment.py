"""The batched augmentation: exact geometry, and the same statistics as the per-image PIL path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import AutoAugment, AutoAugmentPolicy
from torchvision.transforms.v2 import functional as TF

from spacing.config import AugmentConfig
from spacing.data.augment import BatchAugment, CifarAutoAugment, rotate, warp
from spacing.data.autoaugment import GEOMETRIC, NUM_BINS, colour_operation, geometric_operation
from spacing.data.pil import PILAugment, pil_transform

N = 1200
UNIT = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)  # mean 0, std 1: outputs are pixel values / 255


def coordinate_image() -> torch.Tensor:
    """Channel 0 = 8 * row, channel 1 = 8 * column, channel 2 = 255: a pixel tells where it came from."""
    rows = torch.arange(32)[:, None].expand(32, 32) * 8
    cols = torch.arange(32)[None, :].expand(32, 32) * 8
    return torch.stack([rows, cols, torch.full((32, 32), 255)]).to(torch.uint8)


def both_paths(cfg: AugmentConfig, images: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The batched pipeline and the torchvision PIL pipeline on `images`, as pixel values 0..255."""
    mean = torch.tensor(UNIT[0]).view(1, 3, 1, 1)
    std = torch.tensor(UNIT[1]).view(1, 3, 1, 1)
    batched = BatchAugment.from_config(cfg, mean, std)(images, torch.Generator().manual_seed(seed))
    pil = PILAugment(pil_transform(cfg, 32, *UNIT))(images, torch.Generator().manual_seed(seed))
    return (batched * 255).round(), (pil * 255).round()


def offsets_and_flips(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop offset (0..8) of each output, read at the centre pixel, and whether it was mirrored.

    Output pixel (16, 16) comes from source row 16 + dy - 4, and from source column 16 + dx - 4,
    or 31 - 16 + dx - 4 when the crop was mirrored (columns then decrease to the right).
    """
    offset_y = out[:, 0, 16, 16] / 8 - 12
    flipped = out[:, 1, 16, 17] < out[:, 1, 16, 16]
    source_col = out[:, 1, 16, 16] / 8
    offset_x = torch.where(flipped, source_col - 11, source_col - 12)
    return torch.stack([offset_y, offset_x], 1), flipped


def test_warp_equals_crop_then_flip_then_torchvision_rotation() -> None:
    generator = torch.Generator().manual_seed(0)
    n = 64
    images = torch.randint(1, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    offsets = torch.randint(0, 9, (n, 2), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    degrees = (torch.rand(n, generator=generator) * 2 - 1) * 15
    padded = F.pad(images, (4, 4, 4, 4))
    expected = torch.stack([padded[i, :, offsets[i, 0] : offsets[i, 0] + 32, offsets[i, 1] : offsets[i, 1] + 32] for i in range(n)])
    expected = torch.where(flip[:, None, None, None], expected.flip(3), expected)
    expected = torch.stack([TF.rotate(expected[i], float(degrees[i]), interpolation=TF.InterpolationMode.NEAREST) for i in range(n)])
    agreement = (warp(images, 4, offsets, flip, degrees) == expected).float().mean()
    assert agreement > 0.999


@pytest.mark.parametrize("degrees", [-15.0, -4.5, 9.0, 15.0])
def test_rotation_turns_like_torchvision(degrees: float) -> None:
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    expected = TF.rotate(images, degrees, interpolation=TF.InterpolationMode.NEAREST)
    assert (rotate(images, torch.full((3,), degrees)) == expected).float().mean() > 0.995


def test_crop_offsets_and_flip_rate_match_the_pil_path() -> None:
    images = coordinate_image().expand(N, -1, -1, -1).contiguous()
    batched, pil = both_paths(AugmentConfig(crop_padding=4, hflip=True), images)
    for out in (batched, pil):
        offsets, flipped = offsets_and_flips(out)
        assert offsets.min() == 0 and offsets.max() == 8
        histogram = torch.bincount(offsets.flatten().long(), minlength=9).float() / offsets.numel()
        assert torch.allclose(histogram, torch.full((9,), 1 / 9), atol=0.025), histogram
        assert abs(flipped.float().mean() - 0.5) < 0.05
    assert abs(offsets_and_flips(batched)[0].float().mean() - offsets_and_flips(pil)[0].float().mean()) < 0.2


def test_cutout_hole_size_matches_the_pil_path_and_the_clipped_square() -> None:
    images = torch.full((N, 3, 32, 32), 255, dtype=torch.uint8)
    batched, pil = both_paths(AugmentConfig(cutout=16), images)
    # Centre uniform on the 32 x 32 grid, 16 x 16 square clipped at the border: mean side per axis.
    side = sum(min(c + 8, 32) - max(c - 8, 0) for c in range(32)) / 32
    for out in (batched, pil):
        hole = out[:, 0] == 0
        assert torch.equal(hole, (out == 0).all(1))
        areas = hole.sum(dim=(1, 2)).float()
        assert areas.max() == 256 and areas.min() >= 64
        assert abs(areas.mean() - side**2) < 0.04 * side**2
    assert abs((batched == 0).float().mean() - (pil == 0).float().mean()) < 0.02


def test_rotation_fill_matches_the_pil_path() -> None:
    images = torch.full((N, 3, 32, 32), 255, dtype=torch.uint8)
    batched, pil = both_paths(AugmentConfig(rotation=15), images)
    black = [(out[:, 0] == 0).float().mean(dim=(1, 2)) for out in (batched, pil)]
    for fraction in black:
        assert fraction.max() < 0.2 and fraction.mean() > 0.02
    assert abs(black[0].mean() - black[1].mean()) < 0.01


def test_same_seed_same_batch_and_channels_last_output() -> None:
    cfg = AugmentConfig(crop_padding=4, hflip=True, rotation=15, cutout=16, autoaugment=True)
    mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    augment = BatchAugment.from_config(cfg, mean, std, torch.channels_last)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    first = augment(images, torch.Generator().manual_seed(7))
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(7)))
    assert not torch.equal(first, augment(images, torch.Generator().manual_seed(8)))
    assert first.is_contiguous(memory_format=torch.channels_last)


def test_autoaugment_draws_a_sub_policy_per_image() -> None:
    image = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    out = CifarAutoAugment()(image.expand(256, -1, -1, -1).contiguous(), torch.Generator().manual_seed(0))
    assert len({bytes(o.numpy()) for o in out}) > 50


def test_autoaugment_changes_images_as_much_as_torchvision_per_image() -> None:
    images = torch.randint(0, 256, (N, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    ours = CifarAutoAugment()(images, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    reference = AutoAugment(AutoAugmentPolicy.CIFAR10)
    theirs = torch.stack([reference(image) for image in images])
    for stat in (
        lambda out: (out != images).any(dim=(1, 2, 3)).float().mean(),
        lambda out: (out.float() - images.float()).abs().mean(),
    ):
        assert abs(stat(ours) - stat(theirs)) < 0.05 * stat(theirs)


TORCHVISION_AUTOAUGMENT = AutoAugment(AutoAugmentPolicy.CIFAR10)


def torchvision_operation(image: torch.Tensor, name: str, magnitude: float) -> torch.Tensor:
    """torchvision's AutoAugment operation `name` on one uint8 image."""
    tv = TORCHVISION_AUTOAUGMENT
    return tv._apply_image_or_video_transform(image, name, magnitude, interpolation=tv.interpolation, fill=tv._fill)


@pytest.mark.parametrize("name", sorted(set(TORCHVISION_AUTOAUGMENT._AUGMENTATION_SPACE) - {"Identity"}))
def test_each_autoaugment_operation_with_a_magnitude_per_image_equals_torchvisions(name: str) -> None:
    generator = torch.Generator().manual_seed(5)
    n = 48
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    bins, signed = TORCHVISION_AUTOAUGMENT._AUGMENTATION_SPACE[name]
    magnitudes = torch.zeros(n, dtype=torch.float64)
    if bins(NUM_BINS, 32, 32) is not None:
        table = bins(NUM_BINS, 32, 32)
        magnitudes = torch.tensor([float(table[i]) for i in torch.randint(0, NUM_BINS, (n,), generator=generator)], dtype=torch.float64)
        if signed:
            magnitudes *= torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0).double()
    if name in GEOMETRIC:
        ours = geometric_operation(images, {name: torch.ones(n, dtype=torch.bool)}, magnitudes)
    else:
        ours = colour_operation(name, images, magnitudes)
    theirs = torch.stack([torchvision_operation(images[i], name, float(magnitudes[i])) for i in range(n)])
    assert torch.equal(ours, theirs)


def test_autoaugment_applies_each_images_drawn_sub_policy_as_torchvision_would() -> None:
    policy = CifarAutoAugment()
    n = 256
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(6))
    ours = policy(images, torch.Generator().manual_seed(9))
    generator = torch.Generator().manual_seed(9)  # the same draws, in the same order, made here
    chosen = torch.randint(0, len(policy.policies), (n,), generator=generator)
    fires = torch.rand(n, 2, generator=generator)
    negative = torch.rand(n, 2, generator=generator) <= 0.5
    space = TORCHVISION_AUTOAUGMENT._AUGMENTATION_SPACE
    for i in range(n):
        image = images[i]
        for position, (name, probability, magnitude_bin) in enumerate(policy.policies[int(chosen[i])]):
            if fires[i, position] <= probability:
                bins, signed = space[name]
                magnitude = 0.0 if bins(NUM_BINS, 32, 32) is None else float(bins(NUM_BINS, 32, 32)[magnitude_bin])
                image = torchvision_operation(image, name, -magnitude if signed and negative[i, position] else magnitude)
        assert torch.equal(ours[i], image), i
