"""Every method under bf16 autocast reaches its fp32 accuracy; fp16's loss scale updates once per iteration.

bf16 autocast caches a low-precision copy of each weight for its region; a region that spans an
optimizer step makes every later forward in it run on stale weights (a KD student distilled
from a teacher one step old, replays and offline KD at frozen weights). On digits that cost
online KD's student 50-90 points; these runs would catch it again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spacing.config import to_config
from spacing.methods.base import Method
from tests.helpers import build_method_for, compose_config

DIGITS = ("dataset=digits", "model=small_cnn", "trainer.batch_size=32", "trainer.epochs=3", "trainer.device=cpu")
CASES = {
    "baseline": (["method=baseline"], "model"),
    "dropout": (["method=dropout", "method.interval=0.5", "method.p=0.2"], "model"),
    "ema": (["method=ema", "method.interval=0.5", "method.decay=0.7", "method.buffers=recompute"], "ema"),
    "online_kd_massed": (["method=online_kd", "method.interval=0"], "student"),
    "online_kd_spaced": (["method=online_kd", "method.interval=1"], "student"),
    "online_kd_offline": (["method=online_kd", "method.interval=inf"], "student"),
    "self_kd": (["method=self_kd", "method.interval=1"], "ensemble"),
}
TOLERANCE = 0.03
"""bf16 rounds differently from fp32, so the two trajectories part; 3 points on digits' 360 test images."""


@pytest.mark.parametrize("name", list(CASES))
def test_bf16_reaches_the_fp32_accuracy(name: str, tmp_path: Path) -> None:
    from spacing.runner import run

    overrides, target = CASES[name]
    accuracy = {}
    for precision in ("fp32", "bf16"):
        config = compose_config([*DIGITS, *overrides, f"trainer.precision={precision}"])
        accuracy[precision] = run(config, tmp_path / precision)["metrics"][target]["test_acc"]
    assert accuracy["fp32"] > 0.9, accuracy
    assert abs(accuracy["bf16"] - accuracy["fp32"]) <= TOLERANCE, accuracy


def count_scale_updates(method: Method, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    scaler = method.ctx.grad_scaler
    assert scaler is not None
    original = scaler.update
    monkeypatch.setattr(scaler, "update", lambda *a, **k: (calls.append(1), original(*a, **k))[1])
    return calls


@pytest.mark.parametrize(
    ("overrides", "updates_per_epoch"),
    [
        # teacher and student step on every batch: one iteration, one update
        (["method=online_kd", "method.interval=0"], lambda steps: steps),
        # spaced rounds, S = 4: a refresh step's teacher step shares its iteration with the first of
        # the 4 replayed student steps; each further student step of the burst is an iteration
        (["method=online_kd", "method.interval=0.5", "method.replay=rounds"], lambda steps: steps + (steps // 4) * 3),
    ],
)
def test_fp16_loss_scale_updates_once_per_iteration(overrides, updates_per_epoch, monkeypatch) -> None:
    config = to_config(compose_config(["dataset=synthetic", "dataset.train_size=128", "dataset.val_fraction=0", "model=small_cnn",
                                       "model.width=4", "trainer.batch_size=16", "trainer.precision=fp16",
                                       "method.distill_tail=false", *overrides]))
    method, data = build_method_for(config, epochs=1)
    calls = count_scale_updates(method, monkeypatch)
    step = 0
    for batch in data.train.epoch(0):
        method.train_step(batch, step)
        method.end_iteration()
        step += 1
    assert step == data.train.steps_per_epoch == 8
    assert len(calls) == updates_per_epoch(step)
    assert all(torch.isfinite(p).all() for p in method.modules()["student"].parameters())
