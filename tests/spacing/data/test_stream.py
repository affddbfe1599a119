"""Batch streams: deterministic order, exact rebuild from (indices, seed), clean splits."""

from __future__ import annotations

import torch

from spacing.config import DatasetConfig, SyntheticDatasetConfig
from spacing.data import build_data
from spacing.data.augment import BatchAugment, random_warp
from spacing.data.digits import load_digits
from spacing.data.source import holdout_split

CPU = torch.device("cpu")


def synthetic(**augment: object) -> DatasetConfig:
    cfg = SyntheticDatasetConfig(name="synthetic", train_size=300, test_size=50, val_fraction=0.2)
    for key, value in augment.items():
        setattr(cfg.augment, key, value)
    return cfg


def test_epochs_cover_the_train_split_once_in_a_seeded_order() -> None:
    data = build_data(synthetic(), batch_size=64, eval_batch_size=64, seed=3, device=CPU)
    first = torch.cat([b.indices for b in data.train.epoch(0)])
    assert sorted(first.tolist()) == list(range(len(data.train)))
    assert data.train.steps_per_epoch == 4 and len(data.train) == 240
    again = torch.cat([b.indices for b in build_data(synthetic(), 64, 64, 3, CPU).train.epoch(0)])
    assert torch.equal(first, again)
    assert not torch.equal(first, torch.cat([b.indices for b in data.train.epoch(1)]))


def test_a_batch_rebuilt_from_indices_and_seed_is_identical() -> None:
    data = build_data(synthetic(crop_padding=2, hflip=True), 32, 64, seed=0, device=CPU)
    batches = list(data.train.epoch(5))
    for batch in (batches[0], batches[-1]):
        rebuilt = data.train.rebuild(batch.indices, batch.seed)
        assert torch.equal(rebuilt.images, batch.images)
        assert torch.equal(rebuilt.labels, batch.labels)
    assert not torch.equal(batches[0].images[:8], data.train.rebuild(batches[0].indices, batches[0].seed + 1).images[:8])


def test_validation_is_held_out_of_train_and_test_is_untouched() -> None:
    kept, held = holdout_split(100, 0.25, seed=1)
    assert len(held) == 25 and len(kept) == 75
    assert set(kept.tolist()).isdisjoint(held.tolist())
    splits = load_digits(DatasetConfig(name="digits"))
    assert len(splits.train_labels) + len(splits.test_labels) == 1797
    data = build_data(DatasetConfig(name="digits", val_fraction=0.1), 128, 512, 0, CPU)
    assert len(data.val) == round(0.1 * len(splits.train_labels))
    assert len(data.train) + len(data.val) == len(splits.train_labels)
    assert data.num_classes == 10 and data.image_shape == (1, 8, 8)


def test_crop_keeps_a_shifted_window_and_flip_mirrors() -> None:
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    cropped = random_warp(images, 1, False, 0.0, torch.Generator().manual_seed(0))
    assert cropped.shape == images.shape
    for i in range(2):
        padded = torch.nn.functional.pad(images[i], (1, 1, 1, 1))
        windows = [padded[:, y : y + 4, x : x + 4] for y in range(3) for x in range(3)]
        assert any(torch.equal(cropped[i], w) for w in windows)
    flipped = random_warp(images.repeat(50, 1, 1, 1), 0, True, 0.0, torch.Generator().manual_seed(0))
    mirrored = [torch.equal(f, images[i % 2].flip(2)) for i, f in enumerate(flipped)]
    assert 30 <= sum(mirrored) <= 70


def test_normalisation_standardises_the_train_split() -> None:
    data = build_data(DatasetConfig(name="digits", val_fraction=0.0), 4096, 512, 0, CPU)
    batch = next(data.train.epoch(0))
    assert abs(float(batch.images.mean())) < 1e-4
    assert abs(float(batch.images.std()) - 1) < 1e-2
    assert isinstance(data.train.augment, BatchAugment)
