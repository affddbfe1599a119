"""Two launches of one sweep at once: each cell is trained by one of them; the other moves past it."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from spacing.claim import CLAIM_FILE, claim
from tests.sweeps.conftest import TINY, cell_dir, cells, launch, launch_in_background, record, summary_line, wait_for

pytestmark = pytest.mark.slow


def trainings(cell: Path) -> int:
    """How many times a cell's log (shared by every launch that ran it) says training started."""
    return len(re.findall(r"\] - training baseline on ", (cell / "run.log").read_text()))


def test_a_cell_held_elsewhere_is_counted_and_left_untouched(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    held_cell = cell_dir(sweep, *TINY, "trainer.epochs=2", "seed=0")
    held_cell.mkdir(parents=True)
    with claim(held_cell):  # this test process is "another launcher" training seed 0
        result = launch(*TINY, "trainer.epochs=2", "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
        assert (held_cell / CLAIM_FILE).exists()
    assert summary_line(result.stdout) == f"sweep {sweep}: 2 cells, 1 completed, 0 skipped, 0 failed, 1 running elsewhere"
    assert f"  running elsewhere: {held_cell}" in result.stdout.splitlines()
    assert not (held_cell / "result.json").exists() and not (held_cell / "history.csv").exists()
    assert "is being trained elsewhere by" in (held_cell / "run.log").read_text()
    assert record(cell_dir(sweep, *TINY, "trainer.epochs=2", "seed=1"))["status"] == "completed"


def test_a_second_launch_while_the_first_trains_trains_each_cell_once(tmp_path: Path) -> None:
    """The first launch is paused (SIGSTOP, as a suspended job) while it holds its first cell, so the
    second launch surely meets a live claim; then the first goes on and finds the rest done."""
    sweep = tmp_path / "sweep"
    args = (*TINY, "dataset.train_size=2000", "trainer.epochs=8", "seed=0,1,2", f"hydra.sweep.dir={sweep}")
    first = launch_in_background(*args, cwd=tmp_path)
    try:
        [busy] = wait_for(lambda: [p.parent for p in sweep.glob(f"*/{CLAIM_FILE}")], 120, "a claimed cell", interval=0.02)
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = launch(*args, cwd=tmp_path)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=600) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        first.kill()
    assert second.returncode == 0, second.stderr[-3000:]
    assert summary_line(second.stdout) == f"sweep {sweep}: 3 cells, 2 completed, 0 skipped, 0 failed, 1 running elsewhere"
    assert f"  running elsewhere: {busy}" in second.stdout.splitlines()
    driver = (tmp_path / "driver.log").read_text()
    assert summary_line(driver) == f"sweep {sweep}: 3 cells, 1 completed, 2 skipped, 0 failed"
    assert len(cells(sweep)) == 3
    for cell in cells(sweep):
        assert record(cell)["status"] == "completed"
        assert trainings(cell) == 1, (cell / "run.log").read_text()
        assert not (cell / CLAIM_FILE).exists()
