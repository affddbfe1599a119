"""Sweeps on this machine (no SLURM): cells land in dirs named from their config, a re-launch trains
nothing, an invalid grid launches nothing, a cell failing at run time does not stop the others and
makes the launch exit 4 after its summary, and local-launcher workers end with their launcher."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spacing.neutral import cell_dir_name
from tests.helpers import (
    CELL_TINY,
    cells,
    history_epochs,
    launch,
    launch_in_background,
    logged_epochs,
    marker,
    read_record,
    resumed_at,
    summary_line,
    wait_for,
)

pytestmark = pytest.mark.slow

GRID = ("method=baseline", *CELL_TINY, "trainer.epochs=2", "seed=0")


def snapshot(sweep: Path) -> dict[str, bytes]:
    return {str(cell.relative_to(sweep)): (cell / "result.json").read_bytes() for cell in cells(sweep)}


def test_relaunch_skips_completed_cells_and_an_invalid_grid_launches_nothing(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "grid"
    args = (*GRID, f"hydra.sweep.dir={sweep}")

    first = launch(*args, "method.interval=0,1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert summary_line(first.stdout) == f"sweep {sweep}: 2 cells, 2 completed, 0 skipped, 0 failed"
    for cell in cells(sweep):
        assert read_record(cell)["status"] == "completed"
        assert cell.name == cell_dir_name(read_record(cell)["config"])  # named from the resolved config
    assert sorted(cell.name.rsplit("-", 1)[0] for cell in cells(sweep)) == ["baseline-i0-seed0", "baseline-i1-seed0"]
    before = snapshot(sweep)

    second = launch(*args, "method.interval=0,1", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert summary_line(second.stdout) == f"sweep {sweep}: 2 cells, 0 completed, 2 skipped, 0 failed"
    assert snapshot(sweep) == before  # no record was rewritten: nothing trained
    for cell in cells(sweep):
        assert logged_epochs(cell) == [1, 2]  # the first launch's epochs only
        assert "already holds a completed run of this config" in (cell / "run.log").read_text()
        assert marker(cell)["outcome"] == "skipped"

    third = launch(*args, "method.interval=0,1,-1", "trainer.lr=0.1,-2", cwd=tmp_path)
    assert third.returncode == 2, third.stdout[-2000:] + third.stderr[-2000:]
    errors = [line for line in third.stderr.splitlines() if line.startswith("error:")]
    assert errors == [  # one sentence per bad value, in grid order; a cell with two is refused for its first
        "error: 2 cells: trainer.lr must be a finite number > 0; got -2.0.",
        "error: 2 cells: method.interval must be >= 0 epochs (0 = massed, inf = offline KD); got -1.0.",
    ]
    assert "nothing was launched: 4 of 6 cells are invalid" in third.stderr
    assert "Traceback" not in third.stderr
    assert snapshot(sweep) == before and len(cells(sweep)) == 2


def test_a_cell_failing_at_run_time_is_recorded_the_others_complete_and_the_launch_exits_4(tmp_path: Path) -> None:
    """The grid is valid (its cells compose), but one cell's data is not there: found when it starts."""
    sweep = tmp_path / "multirun" / "mixed"
    empty = tmp_path / "no-data"
    empty.mkdir()
    result = launch(
        "method=baseline", "model.width=8", "trainer.device=cpu", "trainer.epochs=1", "seed=0",
        "dataset=synthetic,cifar10", f"dataset.root={empty}", "dataset.download=false", f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 4, result.stderr[-3000:]
    assert summary_line(result.stdout) == f"sweep {sweep}: 2 cells, 1 completed, 0 skipped, 1 failed"
    (failed,) = [cell for cell in cells(sweep) if read_record(cell)["status"] == "failed"]
    assert read_record(failed)["dataset"] == "cifar10" and "dataset.download=false" in read_record(failed)["error"]
    assert f"  failed: {failed} (" in result.stdout
    lines = result.stdout.rstrip().splitlines()
    failed_at = next(i for i, line in enumerate(lines) if line.startswith("  failed: "))
    analysis_at = next(i for i, line in enumerate(lines) if line.endswith("summary.md"))
    assert failed_at < analysis_at  # the counts first, then the analysis (its verdicts end the output), then exit 4


def test_demo_sweep_runs_end_to_end_and_a_second_launch_trains_nothing(tmp_path: Path) -> None:
    """The real demo file, with its grid and epochs cut down from the command line (s = 1 brings its control)."""
    shrink = ("trainer.epochs=1", "method.interval=0,1", "seed=0")
    first = launch("+sweep=demo", *shrink, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    sweep = tmp_path / "multirun" / "demo"
    assert summary_line(first.stdout) == "sweep multirun/demo: 3 cells, 3 completed, 0 skipped, 0 failed"
    for cell in cells(sweep):
        result = read_record(cell)
        assert (result["method"], result["dataset"], result["model"]) == ("ema", "digits", "small_cnn")
        assert set(result["metrics"]) == {"model", "ema"}
    before = snapshot(sweep)

    second = launch("+sweep=demo", *shrink, "trainer.batch_size=32", cwd=tmp_path)  # the file's value, typed
    assert second.returncode == 0, second.stderr[-3000:]
    assert summary_line(second.stdout) == "sweep multirun/demo: 3 cells, 0 completed, 3 skipped, 0 failed"
    assert snapshot(sweep) == before


def test_local_launcher_runs_cells_in_parallel_workers_with_an_explicit_thread_count(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "local"
    result = launch(*GRID, "method.interval=0,1", "hydra/launcher=local", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary_line(result.stdout) == f"sweep {sweep}: 2 cells, 2 completed, 0 skipped, 0 failed"
    assert len({marker(cell)["pid"] for cell in cells(sweep)}) == 2  # n_jobs=2 workers, one cell each
    share = max(1, len(os.sched_getaffinity(0)) // 2)  # the CPUs divided among n_jobs=2 workers
    for cell in cells(sweep):
        assert f"torch CPU threads: {share}" in (cell / "run.log").read_text()


def test_local_launcher_workers_end_when_the_launcher_is_terminated(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "orphans"
    args = ("method=baseline", *CELL_TINY, "dataset.train_size=4096", "trainer.epochs=60", "seed=0,1",
            "hydra/launcher=local", f"hydra.sweep.dir={sweep}")
    driver = launch_in_background(*args, cwd=tmp_path)
    try:
        def training() -> list[Path] | None:
            found = cells(sweep)
            return found if len(found) == 2 and all(len(history_epochs(c)) >= 1 for c in found) else None

        found = wait_for(training, 180, "both cells to train an epoch")
        workers = [marker(cell)["pid"] for cell in found]
        driver.terminate()  # SIGTERM to the launching process only: its workers are not signalled
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()

    def gone() -> bool:
        return not any(_alive(pid) for pid in workers)

    wait_for(gone, 15, f"worker processes {workers} to end after their launcher")
    for cell in found:
        assert read_record(cell)["status"] == "running" and len(history_epochs(cell)) < 60  # stopped, resumable
        assert "the launching process" in (cell / "run.log").read_text()

    again = launch(*args, "trainer.log_every=1000", cwd=tmp_path, timeout=900)  # resumes; log_every changes no number
    assert again.returncode == 0, again.stderr[-3000:]
    for cell in found:
        assert read_record(cell)["status"] == "completed" and len(resumed_at(cell)) == 1


def _alive(pid: int) -> bool:
    """A running process (an orphan that ended but is not yet reaped by PID 1 is a zombie: not alive)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"

