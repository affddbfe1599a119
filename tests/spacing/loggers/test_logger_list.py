"""What the runner sends to trackers, and that no tracker can stop a run or lose its record.

A recording tracker stands in for the real ones (those are read back in test_trackers.py),
so these tests need no tracker package.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra.errors import MissingConfigException

from spacing import loggers
from spacing.compose import explain
from spacing.errors import ConfigError
from spacing.loggers.base import Logger, RunInfo, run_name
from spacing.methods.baseline import Baseline
from spacing.loop import Trainer
from spacing.runner import run

from tests.helpers import ROOT, SYNTHETIC, compose_config, history_series, read_record


class Recording(Logger):
    """Keeps every call it gets; optionally raises in the methods named in `fail_in`."""

    def __init__(self, name: str, fail_in: tuple[str, ...] = ()) -> None:
        self.name = name
        self.fail_in = fail_in
        self.info: RunInfo | None = None
        self.steps: list[tuple[int, dict[str, float]]] = []
        self.epochs: list[tuple[int, int, dict[str, float]]] = []
        self.finished: list[tuple[str, str | None, dict[str, float]]] = []

    def _maybe_fail(self, method: str) -> None:
        if method in self.fail_in:
            raise OSError(f"No space left on device ({method})")

    def start(self, info: RunInfo, resume_id: str | None) -> None:
        self.info = info
        self._maybe_fail("start")

    def log_step(self, step: int, values: dict[str, float]) -> None:
        self.steps.append((step, values))
        self._maybe_fail("log_step")

    def log_epoch(self, epoch: int, step: int, values: dict[str, float]) -> None:
        self.epochs.append((epoch, step, values))
        self._maybe_fail("log_epoch")

    def finish(self, status: str, error: str | None, values: dict[str, float]) -> None:
        self.finished.append((status, error, values))
        self._maybe_fail("finish")


@pytest.fixture
def trackers(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Recording]]:
    """Replace the real trackers by recording ones; tracker name -> the instances built."""
    built: dict[str, list[Recording]] = {}

    def install(name: str, fail_in: tuple[str, ...] = ()) -> None:
        def make(cfg: Any) -> Recording:
            tracker = Recording(name, fail_in)
            built.setdefault(name, []).append(tracker)
            return tracker

        monkeypatch.setitem(loggers.TRACKERS, name, make)

    for name in loggers.TRACKERS:
        install(name)
    built["install"] = install  # type: ignore[assignment]
    return built


def test_tracker_receives_config_steps_epochs_counters_and_final_metrics(
    trackers: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Baseline, "counters", lambda self: {"updates": 7.0})
    result = run(compose_config([*SYNTHETIC, "logger=tensorboard"]), tmp_path)
    (tracker,) = trackers["tensorboard"]
    assert "wandb" not in trackers and "mlflow" not in trackers

    assert tracker.info is not None
    assert tracker.info.name == "baseline-i0-seed0"
    assert tracker.info.group is None and tracker.info.store_dir == tmp_path.resolve()
    assert tracker.info.tags == {
        "method": "baseline", "interval": "0", "schedule": "periodic", "seed": "0", "dataset": "synthetic", "model": "small_cnn"
    }
    assert tracker.info.config == result["config"] and tracker.info.out_dir == tmp_path.resolve()

    steps_per_epoch = result["steps"] // 2
    expected_steps = [e * steps_per_epoch + i for e in range(2) for i in range(2, steps_per_epoch + 1, 2)]
    assert [step for step, _ in tracker.steps] == expected_steps
    for _, values in tracker.steps:
        assert set(values) == {"step/train_loss/model", "step/lr"} and values["step/lr"] == 0.01
        assert 0 < values["step/train_loss/model"] < 10

    assert [(epoch, step) for epoch, step, _ in tracker.epochs] == [(1, steps_per_epoch), (2, 2 * steps_per_epoch)]
    for column in ("train_loss", "train_acc", "val_acc", "test_acc"):
        sent = [values[f"{column}/model"] for _, _, values in tracker.epochs]
        assert sent == pytest.approx(history_series(tmp_path, column, "model"), rel=1e-12)
    assert all(values["counters/updates"] == 7.0 and values["lr"] == 0.01 for _, _, values in tracker.epochs)

    ((status, error, final),) = tracker.finished
    assert (status, error) == ("completed", None)
    for name in ("test_acc", "best_test_acc", "val_acc", "best_val_acc"):
        assert final[f"final/{name}/model"] == result["metrics"]["model"][name]
    assert final["final/counters/updates"] == 7.0 and final["final/steps"] == result["steps"]


def test_tracker_that_raises_on_every_call_does_not_stop_the_run(
    trackers: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trackers["install"]("tensorboard", fail_in=("start", "log_step", "log_epoch", "finish"))
    with caplog.at_level(logging.WARNING, logger="spacing.loggers"):
        result = run(compose_config([*SYNTHETIC, "logger=[tensorboard,mlflow]"]), tmp_path)

    record = read_record(tmp_path)
    assert result["status"] == record["status"] == "completed"
    assert record["epochs_completed"] == 2 and set(record["metrics"]["model"]) >= {"test_acc", "best_test_acc"}
    assert len(history_series(tmp_path, "test_acc", "model")) == 2
    (broken,) = trackers["tensorboard"]
    assert broken.steps == [] and broken.epochs == [], "a tracker that failed to start gets no data"
    assert len(broken.finished) == 1, "but it is finished once, to close what it opened"
    (healthy,) = trackers["mlflow"]
    assert len(healthy.epochs) == 2 and healthy.finished[0][0] == "completed"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "tensorboard logger failed in start (OSError: No space left on device (start))" in warnings[0]
    assert "failed in finish" in warnings[1]


def test_tracker_failing_mid_run_gets_nothing_more_but_finish(
    trackers: dict[str, Any], tmp_path: Path
) -> None:
    trackers["install"]("wandb", fail_in=("log_epoch",))
    result = run(compose_config([*SYNTHETIC, "logger=wandb"]), tmp_path)
    (tracker,) = trackers["wandb"]
    steps_per_epoch = result["steps"] // 2
    assert len(tracker.epochs) == 1, "dropped after its first failure"
    assert all(step <= steps_per_epoch for step, _ in tracker.steps)
    assert [status for status, _, _ in tracker.finished] == ["completed"]
    assert read_record(tmp_path)["status"] == "completed"


def test_diverged_run_reaches_trackers_with_its_status(
    trackers: dict[str, Any], tmp_path: Path
) -> None:
    result = run(compose_config([*SYNTHETIC, "logger=mlflow", "trainer.lr=1e8"]), tmp_path)
    (tracker,) = trackers["mlflow"]
    assert result["status"] == "diverged"
    assert tracker.finished == [("diverged", result["error"], tracker.finished[0][2])]
    assert "loss became" in result["error"]


def test_failed_run_reaches_trackers_with_its_status_and_error(
    trackers: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_evaluate(self: Trainer, split: Any) -> dict[str, float]:
        raise RuntimeError("evaluation crashed")

    monkeypatch.setattr(Trainer, "evaluate", broken_evaluate)
    with pytest.raises(RuntimeError, match="evaluation crashed"):
        run(compose_config([*SYNTHETIC, "logger=mlflow"]), tmp_path)
    (tracker,) = trackers["mlflow"]
    assert [(status, error) for status, error, _ in tracker.finished] == [("failed", "RuntimeError: evaluation crashed")]
    assert read_record(tmp_path)["status"] == "failed"


def test_sweep_dir_names_the_group_and_holds_the_shared_store(
    trackers: dict[str, Any], tmp_path: Path
) -> None:
    sweep = tmp_path / "ema_grid"
    run(compose_config([*SYNTHETIC, "logger=tensorboard", "seed=3"]), sweep / "4", sweep_dir=sweep)
    info = trackers["tensorboard"][0].info
    assert info is not None
    assert (info.name, info.group, info.tags["sweep"]) == ("baseline-i0-seed3", "ema_grid", "ema_grid")
    assert info.store_dir == sweep.resolve() and info.out_dir == (sweep / "4").resolve()


def test_logger_group_overrides_the_sweep_name(
    trackers: dict[str, Any], tmp_path: Path
) -> None:
    run(compose_config([*SYNTHETIC, "logger=tensorboard", "logger.group=paper_fig2"]), tmp_path / "0", sweep_dir=tmp_path)
    info = trackers["tensorboard"][0].info
    assert info is not None and info.group == "paper_fig2" and info.tags["sweep"] == "paper_fig2"


def test_relaunch_with_another_logger_skips_the_completed_run(
    trackers: dict[str, Any], tmp_path: Path
) -> None:
    first = run(compose_config(SYNTHETIC), tmp_path)
    again = run(compose_config([*SYNTHETIC, "logger=tensorboard"]), tmp_path)
    assert again == first, "the logger choice is not part of what makes a run different"
    assert "tensorboard" not in trackers, "a skipped run opens no tracker run"


def test_run_names_say_method_interval_schedule_strength_and_seed() -> None:
    record = {"method": "ema", "interval": 0.1, "schedule": "random", "strength_name": "decay", "strength": 0.999, "seed": 3}
    assert run_name(record) == "ema-i0.1-random-decay0.999-seed3"
    offline = {"method": "online_kd", "interval": float("inf"), "schedule": "periodic", "strength": None, "seed": 0}
    assert run_name(offline) == "online_kd-iinf-seed0"
    control = {"method": "ema", "interval": 0.0, "schedule": "periodic", "strength_name": "decay", "strength": 0.98, "seed": 1,
               "control": {"kind": "matched_horizon", "interval": 0.5, "strength": 0.7, "schedule": "periodic"}}
    assert run_name(control) == "ema-i0.5-decay0.7-control-seed1"  # named after the spaced cell it controls


def test_logger_options_select_several_trackers_at_once() -> None:
    def enabled(*overrides: str) -> set[str]:
        cfg = compose_config(overrides)
        return {name for name in loggers.TRACKERS if cfg.logger[name].enabled}

    assert enabled() == set()
    assert enabled("logger=wandb") == {"wandb"}
    assert enabled("logger=[tensorboard,wandb,mlflow]") == {"tensorboard", "wandb", "mlflow"}
    assert enabled("logger=tensorboard", "logger.mlflow.enabled=true") == {"tensorboard", "mlflow"}
    assert compose_config(["logger=wandb"]).logger.wandb.mode == "offline"


def test_unknown_logger_and_bad_wandb_mode_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(MissingConfigException) as caught:
        compose_config(["logger=neptune"])
    assert explain(caught.value) == "unknown logger 'neptune'; valid choices for logger: mlflow, none, tensorboard, wandb."
    with pytest.raises(ConfigError, match=r"^logger.wandb.mode must be one of offline, online; got 'cloud'.$"):
        run(compose_config(["logger=wandb", "logger.wandb.mode=cloud"]), tmp_path)


MISSING = {
    "tensorboard": ("tensorboard", "torch.utils.tensorboard"),
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
}
"""Tracker -> the modules whose absence makes its package missing."""


@pytest.mark.parametrize("tracker", sorted(MISSING))
def test_selecting_a_tracker_without_its_package_fails_with_one_sentence(
    tracker: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for module in MISSING[tracker]:
        monkeypatch.setitem(sys.modules, module, None)
    sentence = (
        f"logger '{tracker}' needs the {tracker} package, which is not installed; "
        f'install it with pip install -e ".[{tracker}]" or choose another logger.'
    )
    with pytest.raises(ConfigError) as caught:
        run(compose_config([f"logger={tracker}"]), tmp_path)
    assert str(caught.value) == sentence
    assert read_record(tmp_path)["status"] == "failed" and read_record(tmp_path)["error"] == sentence


def test_cli_without_the_wandb_package_prints_the_sentence_and_exits_2(tmp_path: Path) -> None:
    hide_wandb = (
        "import runpy, sys; sys.modules['wandb'] = None; "
        f"sys.argv = ['run.py', 'logger=wandb', 'hydra.run.dir={tmp_path}']; "
        "runpy.run_path('run.py', run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", hide_wandb], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: logger 'wandb' needs the wandb package, which is not installed; "
        'install it with pip install -e ".[wandb]" or choose another logger.'
    )


def test_core_imports_no_tracker_package() -> None:
    check = (
        "import sys, run, spacing.runner, spacing.loggers; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('wandb', 'mlflow', 'tensorboard') "
        "or m.startswith('torch.utils.tensorboard')))"
    )
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300)
    assert done.stdout.strip() == "[]"
