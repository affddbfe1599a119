"""The training loop reads values on the host only every ``trainer.log_every`` steps (and at the epoch's end).

On a GPU each such read is a sync: the host waits for the device to drain its queue. Without a
GPU, :class:`~spacing.bench.syncs.SyncRecorder` records every host read of a tensor's value, which
is what would sync on a GPU; batch building (augmentation draws, AutoAugment, cutout), the
methods' steps and their replays must make none.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spacing.bench.syncs import SyncRecorder, syncs_per_step
from spacing.config import to_config, to_dict
from spacing.record import RunRecord
from spacing.runner import Trainer
from tests.conftest import compose_config

LOG_EVERY = 4
RUN = (
    "dataset=synthetic",
    "dataset.train_size=400",  # 320 after validation: 10 steps of 32
    "dataset.channels=3",
    "dataset.augment.crop_padding=2",
    "dataset.augment.hflip=true",
    "dataset.augment.rotation=10",
    "model=small_cnn",
    "model.width=4",
    "trainer.batch_size=32",
    f"trainer.log_every={LOG_EVERY}",
    "trainer.epochs=2",
    "trainer.device=cpu",
)
METHODS = {
    "baseline": ["method=baseline"],
    "dropout": ["method=dropout", "method.interval=0.5"],
    "dropout_cutout": ["method=dropout", "method.interval=0.5", "method.variant=cutout"],
    "ema": ["method=ema", "method.interval=0.3", "method.buffers=recompute"],
    "online_kd_massed": ["method=online_kd", "method.interval=0"],
    "online_kd_spaced": ["method=online_kd", "method.interval=0.3", "method.replay=rounds"],
    "self_kd": ["method=self_kd", "method.interval=0.3", "dataset.augment.autoaugment=true", "dataset.augment.cutout=4"],
}


def trainer_for(overrides: list[str], out_dir: Path) -> Trainer:
    config = to_config(compose_config([*RUN, *overrides]))
    return Trainer(config, to_dict(config), RunRecord(out_dir, to_dict(config)), out_dir)


@pytest.mark.parametrize("name", list(METHODS))
def test_host_reads_happen_only_at_log_steps_and_the_epochs_end(name: str, tmp_path: Path) -> None:
    trainer = trainer_for(METHODS[name], tmp_path)
    trainer.train_epoch(0)
    per_step = syncs_per_step(trainer, 1)
    assert len(per_step) == trainer.data.train.steps_per_epoch == 10
    allowed = {step for step in range(10) if (step + 1) % LOG_EVERY == 0} | {9}
    assert {step for step, count in enumerate(per_step) if count} <= allowed, per_step
    assert sum(per_step[step] for step in allowed) > 0  # the counter does see the log steps' reads


def test_host_reads_records_what_would_sync_and_nothing_else() -> None:
    x = torch.randn(8)
    with SyncRecorder(torch.device("cpu")) as recorder:
        y = (x * 2).sum() + x[torch.arange(3)].mean()  # device work: no host read
        assert recorder.count == 0
        _ = x[x > 0]  # boolean-mask indexing: its size is data
        _ = float(y), bool(y > 0), x.tolist(), x.nonzero()
        _ = torch.tensor([1.0, 5.0]), torch.tensor([1.0, 5.0], device=x.device)  # only the second copies host data to the device
    assert recorder.reads == ["__getitem__", "__float__", "__bool__", "tolist", "nonzero", "tensor"]
