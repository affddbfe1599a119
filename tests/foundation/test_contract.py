"""The run record contract (spacing.contract): training writes what it names, analysis reads it, and
analysis never needs torch to do so."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

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
