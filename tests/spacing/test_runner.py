"""The runner: records, determinism, divergence, failure, resume, and the offline default run."""

from __future__ import annotations

import csv
import json
import math
import os
import stat
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spacing.errors import ConfigError
from spacing.methods.baseline import Baseline
from spacing.record import HISTORY_COLUMNS, read_result
from spacing.contract import CHECKPOINT_FILE
from spacing.runner import run, run_cell
from tests.helpers import ROOT, run_cli

RECORD_KEYS = {
    "status", "method", "interval", "schedule", "strength_name", "strength", "seed", "dataset", "model",
    "epochs_completed", "steps", "wall_time_s", "images_per_s", "metrics", "counters", "config", "versions",
    "git_commit", "error",
}
METRIC_KEYS = {"test_acc", "best_test_acc", "val_acc", "best_val_acc", "test_acc_at_best_val"}


def read_history(out: Path) -> list[dict[str, str]]:
    with open(out / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_record_and_history_follow_the_schema(make_config, tmp_path: Path) -> None:
    record = run(make_config("trainer.epochs=3", "seed=5"), tmp_path)
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert RECORD_KEYS <= set(on_disk)
    assert on_disk["status"] == "completed" and on_disk["error"] is None
    assert (on_disk["method"], on_disk["interval"], on_disk["schedule"]) == ("baseline", 0.0, "periodic")
    assert (on_disk["seed"], on_disk["dataset"], on_disk["model"]) == (5, "synthetic", "small_cnn")
    assert on_disk["epochs_completed"] == 3
    assert on_disk["steps"] == 3 * math.ceil(512 * 0.8 / 128)
    assert on_disk["config"]["trainer"]["epochs"] == 3
    assert on_disk["versions"]["torch"]
    history = read_history(tmp_path)
    assert tuple(history[0]) == HISTORY_COLUMNS
    assert [int(r["epoch"]) for r in history] == [1, 2, 3]
    metrics = on_disk["metrics"]["model"]
    assert METRIC_KEYS <= set(metrics)
    tests = [float(r["test_acc"]) for r in history]
    vals = [float(r["val_acc"]) for r in history]
    assert metrics["test_acc"] == pytest.approx(tests[-1])
    assert metrics["best_test_acc"] == pytest.approx(max(tests))
    assert metrics["best_val_acc"] == pytest.approx(max(vals))
    assert metrics["test_acc_at_best_val"] == pytest.approx(tests[vals.index(max(vals))])
    assert not (tmp_path / CHECKPOINT_FILE).exists()


def test_no_validation_split_gives_null_val_metrics(make_config, tmp_path: Path) -> None:
    record = run(make_config("dataset.val_fraction=0"), tmp_path)
    assert record["metrics"]["model"]["val_acc"] is None
    assert record["metrics"]["model"]["test_acc_at_best_val"] is None
    assert read_history(tmp_path)[0]["val_acc"] == ""


def without_timing(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_same_seed_gives_identical_metrics_and_different_seeds_differ(make_config, tmp_path: Path) -> None:
    a = run(make_config("trainer.epochs=2", "seed=1"), tmp_path / "a")
    b = run(make_config("trainer.epochs=2", "seed=1"), tmp_path / "b")
    c = run(make_config("trainer.epochs=2", "seed=2"), tmp_path / "c")
    assert a["metrics"] == b["metrics"]
    assert without_timing(read_history(tmp_path / "a")) == without_timing(read_history(tmp_path / "b"))
    losses = lambda out: [r["train_loss"] for r in read_history(out)]  # noqa: E731
    assert losses(tmp_path / "a") != losses(tmp_path / "c")


@pytest.mark.parametrize(
    "schedule,expected",
    [
        ("constant", [0.1, 0.1, 0.1, 0.1]),
        ("multistep", [0.1, 0.1, 0.05, 0.05]),
        ("cosine", [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]),
    ],
)
def test_lr_schedules_per_epoch(make_config, tmp_path: Path, schedule: str, expected: list[float]) -> None:
    run(
        make_config("trainer.epochs=4", "trainer.lr=0.1", f"trainer.lr_schedule={schedule}", "trainer.milestones=[2]", "trainer.gamma=0.5"),
        tmp_path,
    )
    assert [float(r["lr"]) for r in read_history(tmp_path)] == pytest.approx(expected)


def test_nan_loss_marks_the_run_diverged_and_stops(make_config, tmp_path: Path) -> None:
    record = run(make_config("trainer.epochs=3", "trainer.lr=1e12", "trainer.log_every=1"), tmp_path)
    assert record["status"] == "diverged"
    assert "loss became" in record["error"] and "lower trainer.lr" in record["error"]
    assert record["epochs_completed"] < 3
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "diverged"


def test_an_exception_marks_the_run_failed_with_its_error(make_config, tmp_path: Path, monkeypatch) -> None:
    def broken(self, batch, step):
        raise RuntimeError("boom at step %d" % step)

    monkeypatch.setattr(Baseline, "train_step", broken)
    with pytest.raises(RuntimeError, match="boom"):
        run(make_config(), tmp_path)
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["status"] == "failed"
    assert record["error"] == "RuntimeError: boom at step 0"


def test_resume_continues_from_the_checkpoint_exactly(make_config, tmp_path: Path, monkeypatch) -> None:
    full = run(make_config("trainer.epochs=3"), tmp_path / "full")

    calls = {"n": 0}
    original = Baseline.train_step

    def crash_in_third_epoch(self, batch, step):
        calls["n"] += 1
        if step == 2 * self.ctx.steps_per_epoch + 1:
            raise KeyboardInterrupt  # like a kill: the record stays 'running'
        return original(self, batch, step)

    monkeypatch.setattr(Baseline, "train_step", crash_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(make_config("trainer.epochs=3"), tmp_path / "resumed")
    assert json.loads((tmp_path / "resumed" / "result.json").read_text())["status"] == "running"
    assert (tmp_path / "resumed" / CHECKPOINT_FILE).exists()
    monkeypatch.setattr(Baseline, "train_step", original)

    resumed = run(make_config("trainer.epochs=3"), tmp_path / "resumed")
    assert resumed["status"] == "completed"
    assert resumed["metrics"] == full["metrics"]
    assert resumed["steps"] == full["steps"]
    assert without_timing(read_history(tmp_path / "resumed")) == without_timing(read_history(tmp_path / "full"))


def test_checkpoints_are_read_onto_the_cpu_whatever_the_training_device(make_config, tmp_path: Path, monkeypatch) -> None:
    """RNG states must be CPU tensors; a GPU map_location would break every resume on a GPU."""
    import torch

    run(make_config("trainer.epochs=1", "trainer.keep_checkpoint=true"), tmp_path / "a")
    (tmp_path / "a" / "result.json").unlink()
    seen = []
    original = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: (seen.append(k.get("map_location")), original(*a, **k))[1])
    run(make_config("trainer.epochs=1", "trainer.keep_checkpoint=true"), tmp_path / "a")
    assert seen == ["cpu"]


def test_completed_dir_is_skipped_and_a_different_config_is_refused(make_config, tmp_path: Path) -> None:
    first = run(make_config(), tmp_path)
    stamp = (tmp_path / "result.json").stat().st_mtime_ns
    again = run(make_config("trainer.log_every=5"), tmp_path)
    assert again == first
    assert (tmp_path / "result.json").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="already holds a completed run of a different config"):
        run(make_config("trainer.epochs=2"), tmp_path)
    assert json.loads((tmp_path / "result.json").read_text()) == first


def test_the_run_says_whether_it_trained_or_skipped_the_cell(make_config, tmp_path: Path) -> None:
    """What a sweep's summary counts as completed or skipped: only the claim holder knows which it was."""
    trained = run_cell(make_config(), tmp_path)
    skipped = run_cell(make_config(), tmp_path)
    assert (trained.skipped, skipped.skipped) == (False, True)
    assert skipped.record == trained.record == json.loads((tmp_path / "result.json").read_text())


def test_checkpoint_of_another_config_is_not_resumed(make_config, tmp_path: Path) -> None:
    run(make_config("trainer.epochs=2", "trainer.keep_checkpoint=true"), tmp_path)
    (tmp_path / "result.json").unlink()
    with pytest.raises(ConfigError, match="different config; choose another output dir, set trainer.resume=false, or delete"):
        run(make_config("trainer.epochs=2", "trainer.lr=0.5"), tmp_path)


def test_default_run_finishes_offline_on_cpu(tmp_path: Path) -> None:
    proc = run_cli(cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    records = list(tmp_path.glob("outputs/*/result.json"))
    assert len(records) == 1
    assert records[0].parent.name.startswith("baseline-i0-seed0-")  # the dir follows from the config
    record = json.loads(records[0].read_text())
    assert record["status"] == "completed"
    assert (record["dataset"], record["model"], record["method"]) == ("digits", "small_cnn", "baseline")
    assert (records[0].parent / "run.log").exists()
    assert "epoch 10/10" in (records[0].parent / "run.log").read_text()
    assert f"completed: test accuracy model {record['metrics']['model']['test_acc']:.4f}" in proc.stdout


def test_digits_small_cnn_reaches_95_percent_within_60_seconds(make_config, tmp_path: Path) -> None:
    started = time.perf_counter()
    record = run(make_config("dataset=digits", "model=small_cnn", "trainer.epochs=10", fast=False), tmp_path)
    assert time.perf_counter() - started < 60
    assert record["metrics"]["model"]["test_acc"] >= 0.95


def test_a_run_killed_mid_epoch_stays_running(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), f"hydra.run.dir={out}", "dataset=digits", "trainer.epochs=1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            record = read_result(out)  # result.json is authoritative (history.csv may be one epoch ahead)
            if record is not None and record["epochs_completed"] >= 2:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    record = json.loads((out / "result.json").read_text())
    assert record["status"] == "running"
    assert record["epochs_completed"] >= 2
    assert (out / CHECKPOINT_FILE).exists()


def test_records_and_checkpoints_get_the_umasks_permissions(make_config, tmp_path: Path) -> None:
    """A shared project dir's collaborators can read a run's files (not the 0600 of a private temp file)."""
    old = os.umask(0o027)
    try:
        run(make_config("trainer.keep_checkpoint=true"), tmp_path)
    finally:
        os.umask(old)
    for name in ("result.json", "history.csv", CHECKPOINT_FILE):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name


def test_a_run_killed_after_its_last_checkpoint_completes_without_training_again(make_config, tmp_path: Path) -> None:
    """Killed between the last epoch's checkpoint and the completed record: the re-launch only says completed."""
    config = make_config("trainer.epochs=2", "trainer.keep_checkpoint=true")
    done = run(config, tmp_path)
    killed = {**done, "status": "running", "finished_at": None}
    (tmp_path / "result.json").write_text(json.dumps(killed))
    again = run(config, tmp_path)
    assert again["status"] == "completed"
    assert (again["metrics"], again["steps"], again["epochs_completed"]) == (done["metrics"], done["steps"], 2)
