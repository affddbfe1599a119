"""Offline KD trains its teacher, then its student; evaluation batch size and the dropout clock."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from spacing.config import to_config
from spacing.methods.online_kd import OnlineKD
from spacing.runner import run
from tests.helpers import TINY, build_method_for, compose_config

EPOCHS = 3


def history(out: Path) -> list[dict[str, str]]:
    with open(out / "history.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def rows(out: Path, target: str) -> list[dict[str, str]]:
    return [r for r in history(out) if r["target"] == target]


def test_offline_kd_trains_the_teacher_then_the_student_each_with_its_lr_schedule(make_config, tmp_path: Path, monkeypatch) -> None:
    seen: list[tuple[int, bool, float]] = []
    original = OnlineKD.train_step

    def spy(self, batch, step):  # type: ignore[no-untyped-def]
        out = original(self, batch, step)
        weights = float(sum(p.double().sum() for p in self.teacher.state_dict().values() if p.is_floating_point()))
        seen.append((step, self.teacher.training, weights))
        return out

    monkeypatch.setattr(OnlineKD, "train_step", spy)
    overrides = ["method=online_kd", "method.interval=inf", f"trainer.epochs={EPOCHS}", "trainer.lr_schedule=cosine",
                 "trainer.lr=0.05", "dataset.train_size=256", "model.width=4", "trainer.batch_size=32"]
    record = run(make_config(*overrides), tmp_path)

    assert record["epochs"] == record["epochs_completed"] == 2 * EPOCHS
    teacher, student = rows(tmp_path, "teacher"), rows(tmp_path, "student")
    assert [int(r["epoch"]) for r in student] == list(range(1, 2 * EPOCHS + 1))
    # The teacher learns in epochs 1..E, the student in E+1..2E.
    assert all(r["train_loss"] for r in teacher[:EPOCHS]) and not any(r["train_loss"] for r in teacher[EPOCHS:])
    assert not any(r["train_loss"] for r in student[:EPOCHS]) and all(r["train_loss"] for r in student[EPOCHS:])
    # Each phase runs a cosine schedule over E epochs: lr_e = lr0 * (1 + cos(pi * e / E)) / 2.
    cosine = [0.05 * (1 + math.cos(math.pi * e / EPOCHS)) / 2 for e in range(EPOCHS)]
    assert [float(r["lr"]) for r in student] == pytest.approx(cosine + cosine)
    # The untrained student is at chance after the teacher's phase; it improves before the last epoch.
    accuracy = [float(r["test_acc"]) for r in student]
    assert accuracy[EPOCHS - 1] < 0.3 and max(accuracy[EPOCHS:-1]) >= accuracy[EPOCHS - 1] + 0.2
    assert len({r["test_acc"] for r in teacher[EPOCHS - 1 :]}) == 1  # frozen after its phase
    metrics = record["metrics"]["student"]
    assert metrics["test_acc"] == accuracy[-1] and metrics["best_test_acc"] == max(accuracy)
    # During the student phase the teacher is in eval mode and never changes.
    steps = math.ceil(round(256 * 0.8) / 32)  # synthetic: 20 % held out for validation
    phase_two = [(training, weights) for step, training, weights in seen if step >= EPOCHS * steps]
    assert len(phase_two) == EPOCHS * steps and not any(training for training, _ in phase_two)
    assert len({weights for _, weights in phase_two}) == 1
    counters = record["counters"]
    assert counters["fresh_steps"] == counters["distill_steps"] == EPOCHS * steps


# --- the evaluation batch size ---------------------------------------------------------------

SWITCHES_OFF = {
    "dropout": ["method=dropout", "method.interval=0.5", "method.p=0.5"],
    "max_dropout": ["method=dropout", "method.variant=max", "method.max_scope=batch", "method.interval=0.5", "method.p=0.3"],
    "ema": ["method=ema", "method.interval=0.3", "method.decay=0.9", "method.buffers=none"],
    "self_kd": ["method=self_kd", "method.interval=0.5", "method.ensemble=logits"],
}


@pytest.mark.parametrize("name", list(SWITCHES_OFF))
def test_eval_batch_size_leaves_numbers_unchanged_with_the_eval_quirks_off(name: str, make_config, tmp_path: Path) -> None:
    records = {}
    for size in (7, 256):
        records[size] = run(make_config(*SWITCHES_OFF[name], "trainer.epochs=2", f"trainer.eval_batch_size={size}"), tmp_path / str(size))
    assert records[7]["metrics"] == records[256]["metrics"]
    assert records[7]["counters"] == records[256]["counters"]
    assert history(tmp_path / "7") == history(tmp_path / "256")


def test_eval_batch_size_moves_the_dropout_clock_under_eval_dropout(make_config, tmp_path: Path) -> None:
    overrides = ["method=dropout", "method.interval=0.5", "method.p=0.5", "method.eval_dropout=true", "trainer.epochs=2"]
    records = {size: run(make_config(*overrides, f"trainer.eval_batch_size={size}"), tmp_path / str(size)) for size in (7, 256)}
    steps_per_epoch, test_images = math.ceil(round(512 * 0.8) / 128), 256  # synthetic: 20 % validation
    for size, record in records.items():
        # dropout/train.py: the counter advances on every training and every test forward; the
        # validation split (which the script does not have) never moves it.
        assert record["counters"]["dropout_forwards"] == 2 * (steps_per_epoch + math.ceil(test_images / size))
    assert records[7]["counters"]["mean_dropout_rate"] != records[256]["counters"]["mean_dropout_rate"]


def test_validation_forwards_use_dropout_without_moving_its_clock() -> None:
    config = to_config(compose_config(["method=dropout", "method.p=0.5", "method.eval_dropout=true", *TINY]))
    method, data = build_method_for(config)
    method.train_step(next(data.train.epoch(0)), 0)
    images = next(iter(data.test))[0]
    with torch.no_grad():
        method.eval_mode("val")
        first, second = method.predict(images)["model"], method.predict(images)["model"]
        assert method.counters()["dropout_forwards"] == 1 and not torch.equal(first, second)
        method.eval_mode("test")
        method.predict(images)
        assert method.counters()["dropout_forwards"] == 2


@pytest.mark.parametrize("train_mode", [False, True])
def test_eval_train_mode_makes_predictions_depend_on_the_batch(train_mode: bool) -> None:
    config = to_config(compose_config(["method=ema", f"method.eval_train_mode={train_mode}", *TINY]))
    method, data = build_method_for(config)
    images = next(iter(data.test))[0][:16]
    method.eval_mode("test")
    with torch.no_grad():
        whole = method.predict(images)["model"]
        halves = torch.cat([method.predict(images[:8])["model"], method.predict(images[8:])["model"]])
    assert torch.allclose(whole, halves, atol=1e-6) != train_mode
