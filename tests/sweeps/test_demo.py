"""The main job (`python run.py -m +sweep=demo`) ends with the verdict, cut down to two intervals, two seeds, two epochs
(s = 0.1: 24 refreshes in 2 epochs, so that every shadow forgets its start and the verdict may name a winner)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_demo_sweep_ends_with_its_verdict(tmp_path):
    sweep = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", "+sweep=demo", "trainer.epochs=2", "method.interval=0,0.1",
         "seed=0,1", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.rstrip().splitlines()
    assert lines[-2] == ("verdict (test accuracy (%) at the final epoch; 95 % CI over seeds; interval chosen on "
                         "validation):")
    verdict = lines[-1]
    assert verdict.startswith("  Spaced EMA, decay 0.7 (s = 0.1, chosen on validation) ")
    assert " massed " in verdict and "95 % CI " in verdict and ", 2 paired seeds)" in verdict
    assert " its matched-horizon control " in verdict  # the demo runs the controls
    assert "2 paired seeds" in verdict.split("matched-horizon control")[1]
    assert "best on test" in verdict and verdict.endswith(" CPU-hours.")
    assert "subsetted" not in done.stdout + done.stderr  # no font-embedding chatter buries it
    assert verdict.strip() in (sweep / "analysis" / "summary.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize(("name", "cells", "control"), [("demo_kd", 4, "matched-lead"), ("demo_dropout", 3, "matched-rate")])
def test_the_kd_and_dropout_demos_end_with_a_verdict_over_massed_and_the_control(tmp_path, name, cells, control):
    # cut down to massed and s = 0.5 (and offline KD), two seeds, two epochs: each spaced cell beside its control
    sweep = tmp_path / name
    intervals = "0,0.5,inf" if name == "demo_kd" else "0,0.5"
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", f"+sweep={name}", "trainer.epochs=2", f"method.interval={intervals}",
         "seed=0,1", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"sweep {sweep}: {2 * cells} cells, {2 * cells} completed" in done.stdout
    verdict = done.stdout.split("interval chosen on validation):\n")[1].splitlines()[0]
    assert verdict.startswith("  Spaced ") and " (s = 0.5, chosen on validation) " in verdict
    assert f" its {control} control " in verdict and verdict.count(", 2 paired seeds)") == 2
