"""dataset.loader=torchvision: per-image PIL transforms in DataLoader workers, same batch identities as the fast path."""

from __future__ import annotations

from pathlib import Path

import torch
from spacing.config import AugmentConfig, BaselineConfig, Config, ModelConfig, SyntheticDatasetConfig, TrainerConfig
from spacing.data import build_data
from spacing.data.pil import TorchvisionStream
from spacing.runner import run

AUGMENT = AugmentConfig(crop_padding=4, hflip=True, rotation=15, cutout=8, autoaugment=True)


def synthetic(loader: str, workers: int = 1) -> SyntheticDatasetConfig:
    return SyntheticDatasetConfig(
        name="synthetic", image_size=32, channels=3, train_size=40, test_size=8, val_fraction=0.0, loader=loader, workers=workers, augment=AUGMENT
    )


def test_worker_batches_are_rebuilt_exactly_and_keep_the_fast_paths_order() -> None:
    cpu = torch.device("cpu")
    slow = build_data(synthetic("torchvision"), 16, 8, seed=3, device=cpu)
    fast = build_data(synthetic("fast"), 16, 8, seed=3, device=cpu)
    assert isinstance(slow.train, TorchvisionStream) and slow.train.steps_per_epoch == 3
    for from_workers, from_fast in zip(slow.train.epoch(1), fast.train.epoch(1), strict=True):
        rebuilt = slow.train.rebuild(from_workers.indices, from_workers.seed)
        assert torch.equal(from_workers.images, rebuilt.images)
        assert torch.equal(from_workers.indices, from_fast.indices) and from_workers.seed == from_fast.seed
        assert torch.equal(from_workers.labels, from_fast.labels)
        assert from_workers.images.shape == from_fast.images.shape and from_workers.images.dtype == torch.float32


def test_a_run_trains_through_the_torchvision_loader(tmp_path: Path) -> None:
    dataset = synthetic("torchvision", workers=0)
    dataset.train_size = 128
    config = Config(
        dataset=dataset,
        model=ModelConfig(name="small_cnn", width=8),
        method=BaselineConfig(),
        trainer=TrainerConfig(epochs=2, batch_size=32, lr=0.05, device="cpu"),
    )
    result = run(config, tmp_path)
    assert result["status"] == "completed" and result["steps"] == 8
    assert result["config"]["dataset"]["loader"] == "torchvision"
