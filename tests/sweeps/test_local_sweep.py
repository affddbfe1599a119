"""Sweeps on this machine (no SLURM): cells land in deterministic dirs, a re-launch trains nothing,
a failing cell is recorded and the others complete, and the end-of-sweep counts say so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sweeps.conftest import (
    TINY,
    cells,
    launch,
    logged_epochs,
    marker,
    record,
    summary_line,
)

pytestmark = pytest.mark.slow

GRID = ("method=baseline", *TINY, "trainer.epochs=2", "seed=0")


def snapshot(sweep: Path) -> dict[str, bytes]:
    return {str(cell.relative_to(sweep)): (cell / "result.json").read_bytes() for cell in cells(sweep)}


def test_relaunch_skips_completed_cells_and_a_failing_cell_does_not_stop_the_others(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "grid"
    args = (*GRID, f"hydra.sweep.dir={sweep}")

    first = launch(*args, "method.interval=0,1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert summary_line(first.stdout) == f"sweep {sweep}: 2 cells, 2 completed, 0 skipped, 0 failed"
    names = sorted(snapshot(sweep))
    assert names == [
        "dataset=synthetic,method.interval=0,method=baseline,model.width=8,seed=0,trainer.epochs=2",
        "dataset=synthetic,method.interval=1,method=baseline,model.width=8,seed=0,trainer.epochs=2",
    ]
    assert all(record(cell)["status"] == "completed" for cell in cells(sweep))
    before = snapshot(sweep)

    second = launch(*args, "method.interval=0,1", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert summary_line(second.stdout) == f"sweep {sweep}: 2 cells, 0 completed, 2 skipped, 0 failed"
    assert snapshot(sweep) == before  # no record was rewritten: nothing trained
    for cell in cells(sweep):
        assert logged_epochs(cell) == [1, 2]  # the first launch's epochs only
        assert "already holds a completed run of this config" in (cell / "run.log").read_text()
        assert marker(cell)["outcome"] == "skipped"

    third = launch(*args, "method.interval=0,1,-1", cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    lines = third.stdout.splitlines()
    failed = sweep / "dataset=synthetic,method.interval=-1,method=baseline,model.width=8,seed=0,trainer.epochs=2"
    assert summary_line(third.stdout) == f"sweep {sweep}: 3 cells, 0 completed, 2 skipped, 1 failed"
    assert f"  failed: {failed} (method.interval must be >= 0 epochs (0 = massed, inf = offline KD); got -1.0.)" in lines
    assert record(failed)["status"] == "failed" and "method.interval" in record(failed)["error"]
    assert {k: v for k, v in snapshot(sweep).items() if "-1" not in k} == before


def test_demo_sweep_runs_end_to_end_and_a_second_launch_trains_nothing(tmp_path: Path) -> None:
    """The real demo file, with its grid and epochs cut down from the command line."""
    shrink = ("trainer.epochs=1", "method.interval=0,1", "seed=0")
    first = launch("+sweep=demo", *shrink, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    sweep = tmp_path / "multirun" / "demo"
    assert summary_line(first.stdout) == "sweep multirun/demo: 2 cells, 2 completed, 0 skipped, 0 failed"
    assert [cell.name for cell in cells(sweep)] == [
        "method.interval=0,seed=0,trainer.epochs=1",
        "method.interval=1,seed=0,trainer.epochs=1",
    ]
    for cell in cells(sweep):
        result = record(cell)
        assert (result["method"], result["dataset"], result["model"]) == ("ema", "digits", "small_cnn")
        assert set(result["metrics"]) == {"model", "ema"}
    before = snapshot(sweep)

    second = launch("+sweep=demo", *shrink, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert summary_line(second.stdout) == "sweep multirun/demo: 2 cells, 0 completed, 2 skipped, 0 failed"
    assert snapshot(sweep) == before


def test_local_launcher_runs_cells_in_parallel_worker_processes(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "local"
    result = launch(*GRID, "method.interval=0,1", "hydra/launcher=local", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary_line(result.stdout) == f"sweep {sweep}: 2 cells, 2 completed, 0 skipped, 0 failed"
    assert len({marker(cell)["pid"] for cell in cells(sweep)}) == 2  # n_jobs=2 workers, one cell each
