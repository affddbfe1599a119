"""What a fused sweep with controls prints off a terminal: short lines a person reads, the verdict last; the per-epoch
detail goes to each cell's run.log instead, naming the cell. The main job cut down to two fused jobs of two epochs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, cells, cli_env


@pytest.mark.slow
def test_a_fused_sweep_prints_a_short_view_and_logs_each_cells_epochs_in_its_run_log(tmp_path: Path) -> None:
    sweep = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", "+sweep=demo", "trainer.epochs=2", "method.interval=0,0.5",
         "seed=0,1", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )  # stdout and stderr in one stream, in the order written, as `> out.txt 2>&1` keeps them
    lines = done.stdout.rstrip().splitlines()
    assert done.returncode == 0, done.stdout[-3000:]
    assert len(lines) < 60, done.stdout
    assert not [line for line in lines if re.search(r"epoch \d+/\d+", line)], done.stdout  # no per-epoch line
    launched = [line for line in lines if re.search(r"#\d+ : ", line)]
    assert len(launched) == 2 and all(line.endswith("fused_cells=[3 cells]") for line in launched), launched
    assert f"sweep {sweep}: 6 cells, 6 completed, 0 skipped, 0 failed" in lines
    assert lines[-1].strip() in (sweep / "analysis" / "summary.md").read_text()  # the analysis's verdict comes last

    names = [cell.name for cell in cells(sweep)]
    assert len(names) == 6
    for cell in cells(sweep):
        log = (cell / "run.log").read_text()
        epochs = re.findall(r" - epoch (\d)/2 \| (\S+) \| model: loss .* \| ema: val .* test \S+$", log, re.MULTILINE)
        assert epochs == [("1", cell.name), ("2", cell.name)], log  # each epoch in full, naming the cell, and only its own
        assert len(re.findall(r" - fused group of 3 cells, epoch \d/2 \| model: .* \| ema test: ", log)) == 2, log
