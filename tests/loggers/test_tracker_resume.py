"""A run killed mid-training and resumed from its checkpoint is one run in each tracker, with one
continuous history: read back with MLflow's client and W&B's transaction-log reader."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .helpers import REPO, history_series, read_result

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(importlib.util.find_spec(p) is None for p in ("wandb", "mlflow")),
        reason='needs the wandb and mlflow packages (pip install -e ".[trackers]")',
    ),
]

EPOCHS = 8


def command(run_dir: Path) -> list[str]:
    return [
        sys.executable, str(REPO / "run.py"), "logger=[wandb,mlflow]", "dataset=synthetic", "dataset.train_size=4096",
        "model.width=8", "trainer.device=cpu", f"trainer.epochs={EPOCHS}", "trainer.log_every=16", f"hydra.run.dir={run_dir}",
    ]


def env() -> dict[str, str]:
    """This process's environment without W&B's: a W&B service an earlier test started here would otherwise
    serve the run's processes and outlive the kill, which is not what a lost node does."""
    own = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_")}
    return {**own, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run killed (with its tracker processes, as a lost node would) after some epochs, then resumed to the end."""
    run_dir = tmp_path_factory.mktemp("resume") / "run"
    first = subprocess.Popen(command(run_dir), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    history = run_dir / "history.csv"
    try:
        deadline = time.monotonic() + 300
        while not (history.exists() and len(history.read_text().splitlines()) > 3) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert read_result(run_dir)["status"] == "running" and read_result(run_dir)["epochs_completed"] < EPOCHS
    again = subprocess.run(command(run_dir), env=env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert read_result(run_dir)["status"] == "completed"
    resumed_at = int((run_dir / "run.log").read_text().split("resumed from ")[1].split(" at epoch ")[1].split()[0])
    assert resumed_at >= 2
    return run_dir


def test_mlflow_holds_one_finished_run_with_every_epoch_and_step_once(resumed: Path) -> None:
    from mlflow.tracking import MlflowClient

    run_dir = resumed
    run_id = json.loads((run_dir / "trackers.json").read_text())["mlflow"]
    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("spacing")
    (only,) = client.search_runs([experiment.experiment_id])
    assert only.info.run_id == run_id and only.info.status == "FINISHED"
    for column in ("test_acc", "val_acc", "train_loss"):
        points = [(m.step, m.value) for m in client.get_metric_history(run_id, f"{column}/model")]
        assert [step for step, _ in points] == list(range(1, EPOCHS + 1))
        assert [value for _, value in points] == pytest.approx(history_series(run_dir, column, "model"), rel=1e-12)
    steps = [m.step for m in client.get_metric_history(run_id, "step/lr")]
    assert steps == sorted(set(steps)) and len(steps) >= EPOCHS  # increasing, none twice


def wandb_records(offline: Path) -> list[dict[str, Any]]:
    command = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(offline)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip(), f"wandb leet inspect {offline}: {done.stderr[-2000:]}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_wandb_resumes_the_same_run_and_its_last_segment_holds_the_whole_epoch_history(resumed: Path) -> None:
    """Each process writes its own offline folder under the run's one id (wandb sync joins them: W&B keeps the
    first value at each step). W&B offline keeps a run in memory until it ends, so the killed process's folder
    may hold nothing; the resumed process sends the epochs it restored, so its folder holds them all."""
    run_dir = resumed
    run_id = json.loads((run_dir / "trackers.json").read_text())["wandb"]
    folders = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(folders) == 2 and all(folder.name.endswith(f"-{run_id}") for folder in folders)
    last = wandb_records(folders[-1])
    (run_record,) = [r["run"] for r in last if r["type"] == "run"]
    assert run_record["run_id"] == run_id
    history = [r["history"]["item"] for r in last if r["type"] == "history"]
    epochs = [(row["epoch"], row["test_acc/model"]) for row in history if "epoch" in row]
    assert [epoch for epoch, _ in epochs] == list(range(1, EPOCHS + 1))
    assert [value for _, value in epochs] == pytest.approx(history_series(run_dir, "test_acc", "model"), rel=1e-12)
    assert [row["_step"] for row in history] == sorted(row["_step"] for row in history)
