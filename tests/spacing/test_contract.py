"""The run record contract (spacing.contract): what a real training run writes, analysis reads back
(files, statuses, columns, metric keys, main target, device, threads, cost, series), and analysis
never needs torch to do so."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import torch

import analysis
from analysis.records import load_records, read_history
from analysis.report import load
from spacing.contract import (
    CHECKPOINT_FILE,
    COMPLETED,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    METRIC_KEYS,
    RESULT_FILE,
    STATUSES,
)
from spacing.runner import run


def test_a_real_run_writes_the_contract_and_analysis_reads_it_back(make_config, tmp_path) -> None:
    cell = tmp_path / "sweep" / "ema-cell"
    run(make_config("method=ema", "method.interval=0.5", "trainer.epochs=2", "trainer.keep_checkpoint=true"), cell)
    assert {RESULT_FILE, HISTORY_FILE, CHECKPOINT_FILE} <= {p.name for p in cell.iterdir()}
    written = json.loads((cell / RESULT_FILE).read_text())
    assert written["status"] == COMPLETED and written["status"] in STATUSES
    assert written["main_target"] == "ema" and set(written["metrics"]) == {"model", "ema"}
    assert all(set(metrics) == set(METRIC_KEYS) for metrics in written["metrics"].values())
    with open(cell / HISTORY_FILE, newline="") as handle:
        assert tuple(csv.DictReader(handle).fieldnames or ()) == HISTORY_COLUMNS

    [record] = load_records([tmp_path / "sweep"]).records
    assert (record["status"], record["method"], record["main_target"]) == (COMPLETED, "ema", "ema")
    assert (record["interval"], record["strength"], record["seed"]) == (0.5, 0.999, 0)
    history = read_history(record["path"])
    assert tuple(history.columns) == HISTORY_COLUMNS and sorted(set(history["epoch"])) == [1, 2]
    runs = load([tmp_path / "sweep"]).runs
    assert runs["target"].tolist() == ["ema"]
    assert runs["test_acc"].tolist() == [written["metrics"]["ema"]["test_acc"]]
    assert runs["problem"].isna().all()


def test_analysis_and_the_contract_import_no_torch() -> None:
    code = (
        "import importlib, pkgutil, sys, analysis, spacing.contract\n"
        "for module in pkgutil.iter_modules(analysis.__path__):\n"
        "    importlib.import_module(f'analysis.{module.name}')\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'spacing'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["['spacing',", "'spacing.contract',", "'spacing.neutral']"]
    assert analysis.__doc__ is not None and "spacing.contract" in analysis.__doc__


@pytest.fixture
def two_epoch_settings(tmp_path, make_config):
    """Massed EMA runs of seeds 0 and 1 at 1 and at 2 epochs: two sweeps that differ in a non-grid key."""
    for epochs in (1, 2):
        for seed in (0, 1):
            cfg = make_config("method=ema", "method.interval=0", f"trainer.epochs={epochs}", f"seed={seed}",
                              "dataset.train_size=64", "dataset.test_size=32", "trainer.batch_size=32")
            run(cfg, tmp_path / f"epochs{epochs}" / f"seed{seed}")
    return tmp_path


def test_runs_record_device_and_threads_and_analysis_reads_two_series_with_their_cost(two_epoch_settings):
    record = json.loads((two_epoch_settings / "epochs1" / "seed0" / "result.json").read_text())
    assert record["device"] == {"kind": "cpu", "count": 1}
    assert record["threads"] == torch.get_num_threads()
    analysis = load([two_epoch_settings / "epochs1", two_epoch_settings / "epochs2"])
    points = analysis.points.sort_values("series")
    assert points["series"].tolist() == ["trainer.epochs=1", "trainer.epochs=2"]
    assert points["n"].tolist() == [2, 2]
    assert set(analysis.runs["device_kind"]) == {"cpu"}
    assert set(analysis.runs["threads"]) == {torch.get_num_threads()}
    walls = [json.loads(p.read_text())["wall_time_s"] for p in two_epoch_settings.glob("*/*/result.json")]
    assert min(walls) > 0 and analysis.runs["hours"].sum() == pytest.approx(sum(walls) / 3600)
    assert analysis.incomplete.empty
