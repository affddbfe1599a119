"""Each tracker, installed, receives what the run record says: read back with its own reader.

One sweep of two short digits runs goes through the command of docs/tracking.md with all installed
trackers; TensorBoard's EventAccumulator, W&B's transaction-log reader (``wandb leet inspect``)
and MLflow's client on the local store must each show the config, the per-epoch series equal
to history.csv, the final metrics, the sweep's grouping and the run's output dir.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from spacing.config import flatten
from spacing.runner import run

from tests.helpers import ROOT, SYNTHETIC, compose_config, history_series, read_record

pytestmark = pytest.mark.slow

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
INSTALLED = [tracker for tracker, package in PACKAGES.items() if importlib.util.find_spec(package) is not None]
SMALL_DIGITS = ["dataset=digits", "model.width=8", "trainer.epochs=2", "trainer.log_every=4"]
EPOCH_COLUMNS = ("train_loss", "train_acc", "val_acc", "test_acc")
FINAL_METRICS = ("test_acc", "best_test_acc", "val_acc", "best_val_acc", "test_acc_at_best_val")
SEEDS = (0, 1)


def needs(tracker: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        tracker not in INSTALLED,
        reason=f"the {PACKAGES[tracker]} package is not installed (pip install -e \".[{tracker}]\")",
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The command of docs/tracking.md, shrunk: a multirun of two seeds into every installed tracker."""
    if not INSTALLED:
        pytest.skip("no tracker package is installed (pip install -e \".[trackers]\")")
    sweep_dir = tmp_path_factory.mktemp("trackers") / "readme_sweep"
    command = [
        sys.executable, "run.py", "-m", f"logger=[{','.join(INSTALLED)}]", f"seed={','.join(map(str, SEEDS))}",
        *SMALL_DIGITS, f"hydra.sweep.dir={sweep_dir}",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for cell in cells(sweep_dir):
        assert read_record(cell)["status"] == "completed", read_record(cell)["error"]
    return sweep_dir


def cells(sweep_dir: Path) -> list[Path]:
    """The sweep's run dirs (named by their overrides), in seed order."""
    found = sorted((read_record(path.parent)["seed"], path.parent) for path in sweep_dir.glob("*/result.json"))
    assert [seed for seed, _ in found] == list(SEEDS)
    return [cell for _, cell in found]


def assert_series_equal_history(cell: Path, series: dict[str, list[tuple[int, float]]], rel: float) -> None:
    """Each per-epoch series (epoch -> value) equals its history.csv column."""
    for column in EPOCH_COLUMNS:
        points = series[f"{column}/model"]
        assert [epoch for epoch, _ in points] == [1, 2]
        assert [value for _, value in points] == pytest.approx(history_series(cell, column, "model"), rel=rel)


def assert_final_metrics(cell: Path, final: dict[str, float], rel: float) -> None:
    metrics = read_record(cell)["metrics"]["model"]
    for name in FINAL_METRICS:
        assert final[f"final/{name}/model"] == pytest.approx(metrics[name], rel=rel)


# TensorBoard ---------------------------------------------------------------------------------


def tensorboard_events(run_dir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (folder,) = (run_dir / "tensorboard").iterdir()
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return folder.name, events


def tensorboard_hparams(events: Any) -> dict[str, Any]:
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {key: getattr(value, value.WhichOneof("kind")) for key, value in start.hparams.items()}


def tensorboard_text(events: Any, tag: str) -> str:
    return events.Tensors(f"{tag}/text_summary")[-1].tensor_proto.string_val[0].decode()


@needs("tensorboard")
def test_tensorboard_folder_per_cell_holds_config_epoch_series_and_final_metrics(sweep: Path) -> None:
    for seed, cell in zip(SEEDS, cells(sweep)):
        folder, events = tensorboard_events(cell)
        assert folder == f"baseline-i0-seed{seed}"
        series = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
        assert_series_equal_history(cell, series, rel=1e-6)  # event files store float32
        final = {tag: points[-1][1] for tag, points in series.items() if tag.startswith("final/")}
        assert_final_metrics(cell, final, rel=1e-6)
        steps_per_epoch = read_record(cell)["steps"] // 2
        assert [step for step, _ in series["step/train_loss/model"]] == [4, 8, steps_per_epoch + 4, steps_per_epoch + 8]

        hparams = tensorboard_hparams(events)
        assert hparams["seed"] == seed and hparams["trainer.lr"] == pytest.approx(0.01)
        assert hparams["method.name"] == "baseline" and hparams["status"] == "completed"
        assert "  name: digits" in tensorboard_text(events, "config")
        assert f"output dir: `{cell.resolve()}`" in tensorboard_text(events, "run")
        assert "- sweep: readme_sweep" in tensorboard_text(events, "run")
        assert tensorboard_text(events, "status") == "completed"


# Weights & Biases ----------------------------------------------------------------------------


def wandb_inspect(run_dir: Path, *flags: str) -> str:
    """W&B's own reader of an offline run's transaction log (run-<id>.wandb)."""
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    command = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", *flags, str(offline)]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout


@needs("wandb")
def test_wandb_offline_run_holds_config_epoch_series_final_metrics_and_group(sweep: Path) -> None:
    for seed, cell in zip(SEEDS, cells(sweep)):
        records = [json.loads(line) for line in wandb_inspect(cell).splitlines() if line.strip()]
        (run_record,) = [r["run"] for r in records if r["type"] == "run"]
        assert run_record["display_name"] == f"baseline-i0-seed{seed}"
        assert run_record["run_group"] == "readme_sweep" and run_record["project"] == "spacing"
        assert {"method=baseline", "interval=0", f"seed={seed}", "sweep=readme_sweep"} <= set(run_record["tags"])

        history = [r["history"]["item"] for r in records if r["type"] == "history"]
        series = {
            f"{column}/model": [(row["epoch"], row[f"{column}/model"]) for row in history if "epoch" in row]
            for column in EPOCH_COLUMNS
        }
        assert_series_equal_history(cell, series, rel=1e-12)
        assert len([row for row in history if "step/train_loss/model" in row]) == 4

        (artifact,) = [r["artifact"] for r in records if r["type"] == "artifact"]
        refs = {entry["ref"] for entry in artifact["manifest"]["contents"]}
        assert (cell.resolve() / "result.json").as_uri() in refs

        summary = json.loads(wandb_inspect(cell, "--summary"))
        assert summary["state"] == "finished" and summary["exit_code"] == 0
        assert summary["config"] == read_record(cell)["config"]
        assert summary["summary"]["status"] == "completed"
        assert summary["summary"]["output_dir"] == str(cell.resolve())
        assert_final_metrics(cell, summary["summary"], rel=1e-12)


# MLflow --------------------------------------------------------------------------------------


def mlflow_runs(store_dir: Path, experiment: str) -> tuple[Any, dict[str, Any]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store_dir / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment named {experiment}"
    return client, {r.info.run_name: r for r in client.search_runs([found.experiment_id])}


def assert_mlflow_run(client: Any, mlflow_run: Any, cell: Path) -> None:
    run_id = mlflow_run.info.run_id
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params == {key: str(value) for key, value in flatten(read_record(cell)["config"]).items()}
    assert mlflow_run.data.tags["output_dir"] == str(cell.resolve()) and mlflow_run.data.tags["status"] == "completed"
    series = {
        f"{column}/model": [(m.step, m.value) for m in client.get_metric_history(run_id, f"{column}/model")]
        for column in EPOCH_COLUMNS
    }
    assert_series_equal_history(cell, series, rel=1e-12)
    assert len(client.get_metric_history(run_id, "step/train_loss/model")) == 4
    assert_final_metrics(cell, mlflow_run.data.metrics, rel=1e-12)
    assert {a.path for a in client.list_artifacts(run_id)} == {"result.json", "history.csv"}


@needs("mlflow")
def test_mlflow_sweep_experiment_holds_config_epoch_series_and_final_metrics(sweep: Path) -> None:
    client, runs = mlflow_runs(sweep, "readme_sweep")
    assert set(runs) == {f"baseline-i0-seed{seed}" for seed in SEEDS}
    for seed, cell in zip(SEEDS, cells(sweep)):
        mlflow_run = runs[f"baseline-i0-seed{seed}"]
        assert mlflow_run.data.tags["sweep"] == "readme_sweep" and mlflow_run.data.tags["seed"] == str(seed)
        assert_mlflow_run(client, mlflow_run, cell)


# A run on its own ----------------------------------------------------------------------------


@pytest.mark.skipif(len(INSTALLED) < len(PACKAGES), reason="needs all three tracker packages (pip install -e \".[trackers]\")")
def test_single_run_keeps_every_tracker_file_in_its_run_dir(tmp_path: Path) -> None:
    run(compose_config([*SYNTHETIC, "logger=[tensorboard,wandb,mlflow]", "seed=5"]), tmp_path)
    assert (tmp_path / "tensorboard" / "baseline-i0-seed5").is_dir()
    (run_record,) = [
        json.loads(line)["run"] for line in wandb_inspect(tmp_path).splitlines() if '"type":"run"' in line
    ]
    assert "run_group" not in run_record and run_record["display_name"] == "baseline-i0-seed5"
    _, runs = mlflow_runs(tmp_path, "spacing")
    assert list(runs) == ["baseline-i0-seed5"] and "sweep" not in runs["baseline-i0-seed5"].data.tags
    assert read_record(tmp_path)["status"] == "completed"
