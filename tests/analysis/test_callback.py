"""The Hydra multirun callback: analysis files on disk at multirun end, and never an exception."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from analysis.callback import AnalyzeSweep

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _config(sweep_dir):
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})


def test_multirun_end_writes_the_report_into_the_sweep_and_prints_the_paths(sweep, capsys):
    AnalyzeSweep(metric="best_test").on_multirun_end(_config(sweep.root))
    out = capsys.readouterr().out
    analysis_dir = sweep.root / "analysis"
    for name in ("interval_curve.png", "heatmap.pdf", "comparison.md", "incomplete.csv"):
        assert f"wrote {analysis_dir / name}" in out
        assert (analysis_dir / name).stat().st_size > 0
    assert out.startswith(f"analysis of {sweep.root} (best_test metric):")
    assert "1 failed" in out
    table = pd.read_csv(analysis_dir / "comparison.csv")
    assert table["massed_mean"].tolist() == pytest.approx([82.0, 85.0])  # best_test = final + 2 points
    assert out.rstrip().splitlines()[-1].startswith("  EMA, decay 0.99 on the random schedule beats massed by 2.00 points")


def test_a_failing_analysis_warns_and_does_not_raise(tmp_path, capsys):
    AnalyzeSweep().on_multirun_end(_config(tmp_path / "never_written"))
    out = capsys.readouterr().out
    assert out.startswith("warning: the sweep finished but its analysis failed (AnalysisError: sweep directory")
    assert f"retry with `python -m analysis {tmp_path / 'never_written'} --metric final`" in out


def test_hydra_instantiates_it_from_config():
    callback = instantiate({"_target_": "analysis.callback.AnalyzeSweep", "metric": "best_val"})
    assert isinstance(callback, AnalyzeSweep) and callback.metric == "best_val"


APP = '''
import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig


@hydra.main(version_base=None, config_path=".", config_name="config")
def main(cfg):
    out = Path(HydraConfig.get().runtime.output_dir)
    acc = 0.8 + cfg.interval / 10 + cfg.seed / 100
    metrics = {"ema": {"test_acc": acc, "best_test_acc": acc, "val_acc": None, "best_val_acc": None,
                       "test_acc_at_best_val": None, "best_val_epoch": None, "best_test_epoch": 1}}
    (out / "result.json").write_text(json.dumps({
        "status": "completed", "method": "ema", "interval": cfg.interval, "schedule": "periodic",
        "strength_name": "decay", "strength": 0.9, "main_target": "ema", "seed": cfg.seed, "dataset": "digits", "model": "small_cnn",
        "epochs": 1, "epochs_completed": 1, "metrics": metrics}))
    (out / "history.csv").write_text(f"epoch,target,train_loss,train_acc,val_acc,test_acc,lr,seconds\\n"
                                     f"1,ema,0.1,0.9,,{acc},0.01,0.1\\n")


main()
'''

CONFIG = '''
seed: 0
interval: 0.0
hydra:
  callbacks:
    analyze:
      _target_: analysis.callback.AnalyzeSweep
'''


def test_a_real_hydra_multirun_ends_with_its_figures_and_table(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "config.yaml").write_text(CONFIG)
    sweep_dir = tmp_path / "multirun" / "sweep"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "app.py", "-m", "seed=0,1", "interval=0,0.5", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    analysis_dir = sweep_dir / "analysis"
    for name in ("interval_curve.png", "interval_curve.pdf", "comparison.md", "comparison.tex", "history.png"):
        assert f"wrote {analysis_dir / name}" in done.stdout
    assert "complete: every cell has a completed record for every seed" in done.stdout
    table = pd.read_csv(analysis_dir / "comparison.csv")
    assert table[["massed_mean", "test_interval", "test_gain"]].values.tolist() == [
        [pytest.approx(80.5), 0.5, pytest.approx(5.0)]]
    # the multirun ends with the verdict (no validation here, so the choice on test is labelled optimistic)
    assert done.stdout.rstrip().splitlines()[-1] == (
        "  Spaced EMA, decay 0.9 (s = 0.5, best on test) beats massed by 5.00 points (95 % CI +5.00 to +5.00, 2 paired "
        "seeds). There is no validation accuracy to choose on (dataset.val_fraction=0), so this choice on test is "
        "optimistic. The comparison cost 0 device-hours.")


def test_a_study_ends_with_its_best_trial_and_parameters_not_with_verdicts(tmp_path, make_record, write_run, capsys):
    # what `python run.py -m +tune=lr` leaves: trials at interval 0 (no interval varied) and Optuna's conclusion
    for index, (lr, val, status) in enumerate([(0.01, 0.85, "completed"), (0.0851, 0.91, "completed"),
                                               (30.0, None, "diverged")]):
        record = make_record("ema", 0.0, 0.7, 0, {"ema": 0.8} if val else {}, status=status)
        record["config"] = {"seed": 0, "trainer": {"lr": lr}}
        write_run(tmp_path / f"trial{index}", record)
    (tmp_path / "optimization_results.yaml").write_text(
        "name: optuna\nbest_params:\n  trainer.lr: 0.0851\nbest_value: 0.91\n")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}, "objective": {"metric": "val_acc"}})
    AnalyzeSweep().on_multirun_end(config)
    assert capsys.readouterr().out.splitlines() == [
        f"study of {tmp_path} (optuna sweeper, 3 trials: 2 completed, 1 diverged):",
        f"best trial: trainer.lr=0.0851 (val_acc 0.9100) in {tmp_path / 'trial1'}",
        "to use it, add trainer.lr=0.0851 to the command line of the grid it was tuned for",
    ]
    assert not (tmp_path / "analysis").exists()  # no interval figures or verdicts for a study
