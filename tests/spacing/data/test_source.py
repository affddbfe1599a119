"""Regimes with headroom: a stratified training subset and symmetric label noise, both fixed by split_seed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from spacing.config import DatasetConfig
from spacing.data import build_data
from spacing.runner import run

CPU = torch.device("cpu")


def digits(**fields: object) -> DatasetConfig:
    return DatasetConfig(name="digits", val_fraction=0.1, **fields)  # type: ignore[arg-type]


def test_train_fraction_keeps_the_class_balance_and_leaves_validation_and_test_alone() -> None:
    full = build_data(digits(), 128, 512, 0, CPU)
    part = build_data(digits(train_fraction=0.25), 128, 512, 0, CPU)
    full_counts = Counter(full.train.labels.tolist())
    part_counts = Counter(part.train.labels.tolist())
    # Stratified: round(0.25 * n_c) of every class c (Python's round: half to even, as torch's).
    assert part_counts == {c: max(1, round(0.25 * n)) for c, n in full_counts.items()}
    full_rows = {tuple(row.flatten().tolist()) for row in full.train.images}
    assert all(tuple(row.flatten().tolist()) in full_rows for row in part.train.images)
    assert torch.equal(part.val.labels, full.val.labels) and torch.equal(part.val.images, full.val.images)
    assert torch.equal(part.test.labels, full.test.labels)
    assert part.sizes == {"train": len(part.train), "val": len(full.val), "test": len(full.test), "noisy_train_labels": 0}


def test_the_subset_is_fixed_by_split_seed() -> None:
    def subset(split_seed: int) -> torch.Tensor:
        return build_data(digits(train_fraction=0.2, split_seed=split_seed), 128, 512, 0, CPU).train.images

    assert torch.equal(subset(3), subset(3))
    assert not torch.equal(subset(3), subset(4))


def test_label_noise_flips_exactly_that_fraction_of_training_labels_only() -> None:
    clean = build_data(digits(), 128, 512, 0, CPU)
    noisy = build_data(digits(label_noise=0.3), 128, 512, 0, CPU)
    assert torch.equal(noisy.train.images, clean.train.images)
    changed = noisy.train.labels != clean.train.labels
    assert int(changed.sum()) == round(0.3 * len(clean.train)) == noisy.sizes["noisy_train_labels"]
    assert noisy.train.labels.min() >= 0 and noisy.train.labels.max() < 10
    assert torch.equal(noisy.val.labels, clean.val.labels)
    assert torch.equal(noisy.test.labels, clean.test.labels)
    again = build_data(digits(label_noise=0.3), 128, 512, seed=7, device=CPU)  # the run seed does not move it
    assert torch.equal(again.train.labels, noisy.train.labels)
    other = build_data(digits(label_noise=0.3, split_seed=1), 128, 512, 0, CPU)
    assert not torch.equal(other.train.labels, build_data(digits(split_seed=1), 128, 512, 0, CPU).train.labels)
    assert not torch.equal(other.val.labels, noisy.val.labels)  # split_seed moves the whole split


def test_the_run_record_says_how_much_data_and_noise_it_trained_on(make_config, tmp_path: Path) -> None:
    record = run(make_config("dataset=digits", "dataset.train_fraction=0.5", "dataset.label_noise=0.2"), tmp_path)
    sizes = record["data"]
    assert sizes["noisy_train_labels"] == round(0.2 * sizes["train"])
    assert record["config"]["dataset"]["label_noise"] == 0.2 and record["config"]["dataset"]["train_fraction"] == 0.5


def test_out_of_range_fractions_are_refused_with_the_valid_range() -> None:
    import pytest

    from spacing.errors import ConfigError

    with pytest.raises(ConfigError, match=r"dataset.train_fraction must be in \(0, 1\]"):
        DatasetConfig(name="digits", train_fraction=0.0)
    with pytest.raises(ConfigError, match=r"dataset.label_noise must be in \[0, 1\)"):
        DatasetConfig(name="digits", label_noise=1.0)
