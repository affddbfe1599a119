"""``hydra.launcher.cells_per_task=2`` on a real single-node SLURM (tests/slurm/start_slurm.sh): half as
many array tasks as cells, the two cells of a task in processes of their own, every cell completed
and skipped by a re-launch; a pre-empted task is requeued whole and each of its cells resumes from
its own checkpoint; a cancelled task's cells resume when the sweep is launched again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import (
    CELL_TINY,
    SLURM_CPU,
    cells,
    history_epochs,
    launch,
    launch_in_background,
    marker,
    read_record,
    spacing,
    summary_line,
    wait_for,
)
from tests.sweeps.test_slurm import (
    LONG,
    Slurm,
    assert_resumed_without_retraining,
    restarted,
    running_cells,
    slurm_id,
    status_when,
    submitted_array,
)

pytestmark = pytest.mark.slow

TWO_PER_TASK = (*SLURM_CPU, "hydra.launcher.cells_per_task=2")


def test_four_cells_run_as_two_array_tasks_of_two_and_a_relaunch_skips_them(slurm: Slurm, tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "pairs"
    args = ("method=baseline", *CELL_TINY, "trainer.epochs=2", "method.interval=0,1", "seed=0,1", *TWO_PER_TASK,
            f"hydra.sweep.dir={sweep}")
    first = launch(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert summary_line(first.stdout) == f"sweep {sweep}: 4 cells, 4 completed, 0 skipped, 0 failed"
    assert all(read_record(cell)["status"] == "completed" for cell in cells(sweep))
    (array,) = {marker(cell)["slurm"]["SLURM_ARRAY_JOB_ID"] for cell in cells(sweep)}
    tasks: dict[str, list[Path]] = {}
    for cell in cells(sweep):
        tasks.setdefault(marker(cell)["slurm"]["SLURM_ARRAY_TASK_ID"], []).append(cell)
    assert sorted(tasks) == ["0", "1"] and all(len(held) == 2 for held in tasks.values())
    assert len({marker(cell)["pid"] for cell in cells(sweep)}) == 4  # a process per cell

    def accounted() -> list[str] | None:  # sacct lags squeue by a few seconds
        rows = slurm("sacct", "-n", "-X", "-P", "-j", array, "-o", "JobID,State").stdout.split()
        return rows if len(rows) == 2 and all(row.endswith("|COMPLETED") for row in rows) else None

    rows = wait_for(accounted, 30, f"sacct to show array job {array} with 2 completed tasks")
    assert sorted(row.split("|")[0] for row in rows) == [f"{array}_0", f"{array}_1"]

    records = {cell: (cell / "result.json").read_bytes() for cell in cells(sweep)}
    second = launch(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert summary_line(second.stdout) == f"sweep {sweep}: 4 cells, 0 completed, 4 skipped, 0 failed"
    assert {cell: (cell / "result.json").read_bytes() for cell in cells(sweep)} == records


def test_a_preempted_task_is_requeued_and_both_its_cells_resume(slurm: Slurm, tmp_path: Path) -> None:
    """The pre-emption signal submitit gets: it checkpoints the task and requeues it; the requeued
    task runs both cells again, and each resumes from its own last epoch checkpoint."""
    sweep = tmp_path / "multirun" / "preempt"
    args = (*LONG, "seed=0,1", *TWO_PER_TASK, f"hydra.sweep.dir={sweep}")
    driver = launch_in_background(*args, cwd=tmp_path)
    try:
        pair = wait_for(lambda: running_cells(sweep, 2, 2), 180, "both cells to train 2 epochs")
        (job,) = {slurm_id(cell) for cell in pair}  # one array task holds both
        interrupted_at = {cell: history_epochs(cell)[-1] for cell in pair}
        slurm("scancel", "--signal=USR2", job)  # what SLURM sends submitit on pre-emption
        for cell in pair:
            wait_for(lambda: restarted(slurm, cell, job), 120, f"{job} to run again", interval=0.5)
        driver.wait(timeout=300)
    finally:
        driver.kill()
    output = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 0, output[-3000:]
    assert summary_line(output) == f"sweep {sweep}: 2 cells, 2 completed, 0 skipped, 0 failed"
    for cell in pair:
        assert marker(cell)["slurm"]["SLURM_RESTART_COUNT"] == "1" and slurm_id(cell) == job
        assert_resumed_without_retraining(cell, interrupted_at[cell])
    task_logs = "".join(path.read_text() for path in (sweep / ".submitit").rglob("*_log.err"))
    assert "this job is preempted" in task_logs


def test_a_cancelled_task_leaves_both_cells_resumable_and_a_relaunch_resumes_them(slurm: Slurm, tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "cancel"
    args = (*LONG, "seed=0,1", *TWO_PER_TASK, f"hydra.sweep.dir={sweep}")
    driver = launch_in_background(*args, cwd=tmp_path)
    try:
        pair = wait_for(lambda: running_cells(sweep, 2, 2), 180, "both cells to train 2 epochs")
        (job,) = {slurm_id(cell) for cell in pair}
        slurm("scancel", job)
        driver.wait(timeout=120)
    finally:
        driver.kill()
    assert driver.returncode != 0  # submitit tells the launching process that the task was cancelled
    output = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 4, output[-3000:]  # both cells lost, said in the summary; no traceback (issue 23)
    assert summary_line(output) == f"sweep {sweep}: 2 cells, 0 completed, 0 skipped, 0 failed, 2 lost"
    assert "Traceback" not in output
    interrupted_at = {}
    for cell in pair:
        assert read_record(cell)["status"] == "running" and (cell / "checkpoint.pt").exists()
        interrupted_at[cell] = history_epochs(cell)[-1]

    again = launch(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert summary_line(again.stdout) == f"sweep {sweep}: 2 cells, 2 completed, 0 skipped, 0 failed"
    for cell in pair:
        assert_resumed_without_retraining(cell, interrupted_at[cell])


def test_submit_counts_tasks_of_two_cells_and_status_follows_them(slurm: Slurm, tmp_path: Path) -> None:
    sweep = "multirun/detached_pairs"
    args = ("method=baseline", *CELL_TINY, "trainer.epochs=2", "method.interval=0,1", "seed=0,1", *TWO_PER_TASK,
            f"hydra.sweep.dir={sweep}")
    array = submitted_array(spacing("submit", *args, cwd=tmp_path, timeout=120), sweep, 2, cells=4)
    (launch,) = (tmp_path / sweep / ".launches").glob("*.json")
    submitted = json.loads(launch.read_text())  # each cell's task, known before any cell starts
    assert submitted["slurm_jobs"] == [f"{array}_0", f"{array}_0", f"{array}_1", f"{array}_1"]
    out = status_when(tmp_path, sweep, lambda s: f"SLURM job {array}: 2 COMPLETED" in s and "every cell has finished" in s,
                      f"status to show array {array} completed")
    assert out.splitlines()[0] == f"sweep {sweep}: 4 cells: 4 completed"
    ran_in = {cell.name: slurm_id(cell) for cell in cells(tmp_path / sweep)}
    assert ran_in == dict(zip(submitted["cells"], submitted["slurm_jobs"], strict=True))
