"""``hydra.launcher.cells_per_task=2`` on the local launcher: with one worker (n_jobs=1) the two cells
of a task still run at once, each in a process and cell dir of its own; a cell that fails does not
stop its sibling; a re-launch skips completed cells; a launch stopped mid-run leaves each cell
resumable on its own."""

from __future__ import annotations

import os
import re
import signal
from datetime import datetime
from pathlib import Path

import pytest

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

TWO_PER_TASK = ("hydra/launcher=local", "hydra.launcher.n_jobs=1", "hydra.launcher.cells_per_task=2")


def log_window(cell: Path) -> tuple[datetime, datetime]:
    """When the cell's run.log says it started and last wrote (millisecond stamps)."""
    stamps = re.findall(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", (cell / "run.log").read_text(), re.MULTILINE)
    first, last = (datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f") for stamp in (stamps[0], stamps[-1]))
    return first, last


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_failing_cell_does_not_stop_its_sibling_and_a_relaunch_skips_the_completed(tmp_path: Path) -> None:
    """Tasks of (synthetic, cifar10) pairs: the cifar10 cell finds no data when it starts."""
    sweep = tmp_path / "multirun" / "pairs"
    empty = tmp_path / "no-data"
    empty.mkdir()
    args = ("method=baseline", "model.width=8", "trainer.device=cpu", "trainer.epochs=1", "seed=0,1",
            "dataset=synthetic,cifar10", f"dataset.root={empty}", "dataset.download=false", *TWO_PER_TASK,
            f"hydra.sweep.dir={sweep}")
    first = launch(*args, cwd=tmp_path)
    assert first.returncode == 4, first.stderr[-3000:]
    assert summary_line(first.stdout) == f"sweep {sweep}: 4 cells, 2 completed, 0 skipped, 2 failed"
    listed = re.findall(r"#(\d) : .*seed=(\d) dataset=(\w+)", first.stdout)
    assert listed == [("0", "0", "synthetic"), ("1", "0", "cifar10"), ("2", "1", "synthetic"), ("3", "1", "cifar10")]
    assert "launching 4 cells, 2 per task, in 2 tasks" in first.stdout  # tasks (#0, #1) and (#2, #3)
    assert len(cells(sweep)) == 4
    by_status: dict[str, list[Path]] = {}
    for cell in cells(sweep):
        by_status.setdefault(read_record(cell)["status"], []).append(cell)
    assert {status: sorted(read_record(c)["seed"] for c in found) for status, found in by_status.items()} == {
        "completed": [0, 1], "failed": [0, 1]}
    assert all(read_record(cell)["dataset"] == "synthetic" for cell in by_status["completed"])
    assert all("dataset.download=false" in read_record(cell)["error"] for cell in by_status["failed"])
    assert len({marker(cell)["pid"] for cell in cells(sweep)}) == 4  # one worker, yet a process per cell
    share = max(1, len(os.sched_getaffinity(0)) // 1 // 2)  # the CPUs of n_jobs=1 worker, divided by 2 cells
    for cell in by_status["completed"]:
        assert f"torch CPU threads: {share}" in (cell / "run.log").read_text()
    records = {cell: (cell / "result.json").read_bytes() for cell in by_status["completed"]}

    second = launch(*args, cwd=tmp_path)
    assert second.returncode == 4, second.stderr[-3000:]
    assert summary_line(second.stdout) == f"sweep {sweep}: 4 cells, 0 completed, 2 skipped, 2 failed"
    assert {cell: (cell / "result.json").read_bytes() for cell in by_status["completed"]} == records
    assert all(marker(cell)["outcome"] == "skipped" for cell in by_status["completed"])


def test_the_cells_of_a_task_train_at_once_and_a_stopped_launch_resumes_each_on_its_own(tmp_path: Path) -> None:
    """One task: a short cell and a long one. The short one completes while the long one trains;
    the launch is then stopped, and the next one skips the short cell and resumes the long one."""
    sweep = tmp_path / "multirun" / "stopped"
    long_epochs = 60
    args = ("method=baseline", *CELL_TINY, "dataset.train_size=4096", f"trainer.epochs=3,{long_epochs}", "seed=0",
            *TWO_PER_TASK, f"hydra.sweep.dir={sweep}")
    driver = launch_in_background(*args, cwd=tmp_path)
    try:
        def short_done_long_training() -> tuple[Path, Path] | None:
            found = [c for c in cells(sweep) if (c / "result.json").exists()]
            if len(found) != 2:
                return None
            short, long = sorted(found, key=lambda c: read_record(c)["config"]["trainer"]["epochs"])
            done = read_record(short)["status"] == "completed"
            return (short, long) if done and len(history_epochs(long)) >= 5 else None

        short, long = wait_for(short_done_long_training, 300, "the short cell to complete while the long one trains")
        started_long, _ = log_window(long)
        _, ended_short = log_window(short)
        assert started_long < ended_short  # the long cell, still training now, started before the short one ended
        pid = marker(long)["pid"]
        assert pid != marker(short)["pid"]
        driver.terminate()  # SIGTERM to the launching process only: its worker and the cells are not signalled
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    wait_for(lambda: not _alive(pid), 15, f"the long cell's process {pid} to end after the launcher")
    assert read_record(long)["status"] == "running" and len(history_epochs(long)) < long_epochs
    short_record = (short / "result.json").read_bytes()

    again = launch(*args, cwd=tmp_path, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert summary_line(again.stdout) == f"sweep {sweep}: 2 cells, 1 completed, 1 skipped, 0 failed"
    assert (short / "result.json").read_bytes() == short_record and marker(short)["outcome"] == "skipped"
    assert read_record(long)["status"] == "completed" and read_record(long)["epochs_completed"] == long_epochs
    (resumed,) = resumed_at(long)
    logged = logged_epochs(long)
    assert all(logged.count(epoch) == 1 for epoch in range(1, resumed + 1)), logged
    assert sorted(set(logged)) == list(range(1, long_epochs + 1))


def long_cell_training(sweep: Path, epochs: int) -> Path | None:
    """The sweep's 12-epoch seed-0 cell once it has trained `epochs` epochs, else None."""
    for cell in cells(sweep):
        record = (cell / "result.json").exists() and read_record(cell)
        if record and record["config"]["trainer"]["epochs"] == 12 and record["seed"] == 0:
            return cell if len(history_epochs(cell)) >= epochs else None
    return None


def test_a_killed_cell_process_is_lost_at_once_and_the_other_cells_complete(tmp_path: Path) -> None:
    """n_jobs=2 workers of 2 cells each (issue 27: this launch once hung). One long cell's process is killed
    mid-run: within seconds its marker says lost, the three others complete, and the launch exits 4 naming it."""
    sweep = tmp_path / "multirun" / "killed"
    args = ("method=baseline", *CELL_TINY, "dataset.train_size=4096", "trainer.epochs=2,12", "seed=0,1",
            "hydra/launcher=local", "hydra.launcher.n_jobs=2", "hydra.launcher.cells_per_task=2",
            f"hydra.sweep.dir={sweep}")
    driver = launch_in_background(*args, cwd=tmp_path)
    try:
        killed = wait_for(lambda: long_cell_training(sweep, 1), 300, "the long seed-0 cell to train an epoch")
        os.kill(marker(killed)["pid"], signal.SIGKILL)
        wait_for(lambda: marker(killed)["outcome"] == "lost", 10, "the killed cell to be marked lost")
        driver.wait(timeout=600)
    finally:
        if driver.poll() is None:
            driver.kill()
    output = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 4, output[-3000:]
    assert "launching 4 cells, 2 per task, in 2 tasks: 2 worker processes start a process per cell, " \
           "at most 4 cells at once; 6 processes in total" in output
    assert summary_line(output) == f"sweep {sweep}: 4 cells, 3 completed, 0 skipped, 0 failed, 1 lost"
    assert f"  lost: {killed} (see the log in the cell dir)" in output
    assert "ended without a result (killed by signal SIGKILL)" in (killed / "run.log").read_text()
    others = [cell for cell in cells(sweep) if cell != killed]
    assert len(others) == 3 and all(read_record(cell)["status"] == "completed" for cell in others)


def test_a_killed_worker_costs_no_cell_its_tasks_run_again_and_resume(tmp_path: Path) -> None:
    """n_jobs=2 workers, one cell per task (issue 23: a killed worker once stopped the launch with joblib's
    TerminatedWorkerError). The worker process of a long cell is killed mid-run: joblib's pool breaks, the
    tasks that had not returned run again, the killed worker's cell resumes from its checkpoint, and every
    cell completes, each trained or skipped once."""
    sweep = tmp_path / "multirun" / "worker"
    args = ("method=baseline", *CELL_TINY, "dataset.train_size=4096", "trainer.epochs=2,12", "seed=0,1",
            "hydra/launcher=local", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}")
    driver = launch_in_background(*args, cwd=tmp_path)
    try:
        killed = wait_for(lambda: long_cell_training(sweep, 2), 300, "the long seed-0 cell to train two epochs")
        cell_pid = marker(killed)["pid"]
        worker = int(Path(f"/proc/{cell_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])  # the cell's parent
        assert worker != driver.pid
        os.kill(worker, signal.SIGKILL)
        driver.wait(timeout=600)
    finally:
        if driver.poll() is None:
            driver.kill()
    output = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 0, output[-3000:]
    assert "launching 4 cells, 1 per task, in 4 tasks: 2 worker processes start a process per cell" in output
    assert "a worker process died" in output and "run again, each cell resuming from its checkpoint" in output
    counts = summary_line(output)
    assert counts.startswith(f"sweep {sweep}: 4 cells, ") and counts.endswith(" 0 failed"), counts
    assert not _alive(cell_pid)
    assert all(read_record(cell)["status"] == "completed" for cell in cells(sweep)) and len(cells(sweep)) == 4
    assert read_record(killed)["epochs_completed"] == 12 and resumed_at(killed)  # resumed, not started over
    logged = logged_epochs(killed)
    assert sorted(set(logged)) == list(range(1, 13)) and logged.count(1) == 1, logged
