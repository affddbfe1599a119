"""What a run returns to a Hydra sweeper: the selected validation metric (default: val_acc of the
method's main target), its status alongside; a failed or diverged run is a failed trial. The Optuna
example (conf/tune/lr.yaml) tunes trainer.lr on digits; launcher workers get an explicit thread count."""

from __future__ import annotations

import importlib.util
import math
import pickle
from pathlib import Path

import pytest
import yaml

from spacing.cli import Outcome, objective, thread_count
from spacing.methods import METHODS
from tests.helpers import cells, launch, read_record, summary_line

RECORDS = {
    "baseline": {"model": {"val_acc": 0.5}},
    "ema": {"model": {"val_acc": 0.5}, "ema": {"val_acc": 0.7, "best_val_acc": 0.8}},
    "online_kd": {"student": {"val_acc": 0.6}, "teacher": {"val_acc": 0.9}},
    "self_kd": {"exit1": {"val_acc": 0.2}, "ensemble": {"val_acc": 0.4}},
}


@pytest.mark.parametrize("method,value", [("baseline", 0.5), ("ema", 0.7), ("online_kd", 0.6), ("self_kd", 0.4)])
def test_the_default_objective_is_the_main_targets_validation_accuracy(method: str, value: float) -> None:
    record = {"metrics": RECORDS[method], "main_target": METHODS[method].main_target}  # as the runner writes it
    assert objective(record, "val_acc", None) == value


def test_the_objective_follows_the_records_main_target_and_the_configured_metric_and_target() -> None:
    metrics = RECORDS["online_kd"]
    assert objective({"metrics": metrics, "main_target": "teacher"}, "val_acc", None) == 0.9
    assert objective({"metrics": RECORDS["ema"], "main_target": "ema"}, "best_val_acc", None) == 0.8
    assert objective({"metrics": metrics}, "val_acc", "teacher") == 0.9
    assert objective({"metrics": {"model": {"val_acc": None}}, "main_target": "model"}, "val_acc", None) is None  # no validation split


def test_an_outcome_is_a_float_that_keeps_its_status_across_processes() -> None:
    outcome = pickle.loads(pickle.dumps(Outcome(0.75, "completed")))
    assert float(outcome) == 0.75 and outcome.status == "completed"
    failed = pickle.loads(pickle.dumps(Outcome(math.nan, "diverged")))
    assert math.isnan(failed) and failed.status == "diverged"


def test_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    assert thread_count(3, 4) == 3  # trainer.threads wins
    assert thread_count(None, 4) == 4  # 16 CPUs shared by 4 local workers
    assert thread_count(None, 32) == 1
    assert thread_count(None, -1) == 1  # joblib's -1: one worker per CPU
    assert thread_count(None, -2) == 1  # 15 workers on 16 CPUs
    monkeypatch.setattr("spacing.cli.free_cpus", lambda: 5)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert thread_count(None, None) == 5  # outside a launcher: the CPUs free when the run starts
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert thread_count(None, None) is None  # torch's default, which follows $OMP_NUM_THREADS
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert thread_count(None, None) == 6


needs_optuna = pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None,
    reason='the Optuna sweeper is not installed (pip install -e ".[optuna]")',
)


@needs_optuna
@pytest.mark.slow
def test_optuna_tunes_the_learning_rate_on_what_each_run_returns(tmp_path: Path) -> None:
    sweep = tmp_path / "tune"
    done = launch("+tune=lr", "hydra.sweeper.n_trials=3", "trainer.epochs=1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = {read_record(cell)["config"]["trainer"]["lr"]: read_record(cell)["metrics"]["ema"]["val_acc"] for cell in cells(sweep)}
    assert len(trials) == 3 and all(0.001 <= lr <= 0.5 for lr in trials)
    assert best["best_value"] == max(trials.values())
    assert trials[best["best_params"]["trainer.lr"]] == best["best_value"]
    assert all(read_record(cell)["method"] == "ema" and read_record(cell)["interval"] == 0 for cell in cells(sweep))
    # each trial's dir names the value it tried (the learning rate, as %g)
    assert {cell.name.split("-")[3] for cell in cells(sweep)} == {f"lr{lr:g}" for lr in trials}


@needs_optuna
@pytest.mark.slow
def test_a_diverged_trial_is_a_failed_trial_and_the_study_goes_on(tmp_path: Path) -> None:
    sweep = tmp_path / "tune"
    done = launch("+tune=lr", "hydra.sweeper.n_trials=3", "trainer.epochs=1", "trainer.lr=choice(0.05,1000000.0)",
                  f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 4, done.stderr[-3000:]  # a cell did not complete
    assert "Failed experiment: the model loss became nan" in done.stdout + done.stderr  # Optuna's own log of a FAIL
    assert summary_line(done.stdout) == f"sweep {sweep}: 2 cells, 1 completed, 0 skipped, 0 failed, 1 diverged"
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_params"] == {"trainer.lr": 0.05}
    statuses = {read_record(cell)["config"]["trainer"]["lr"]: read_record(cell)["status"] for cell in cells(sweep)}
    assert statuses == {0.05: "completed", 1000000.0: "diverged"}
