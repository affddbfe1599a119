"""`spacing status` without SLURM: each cell's state from its files, a finished sweep analysed once,
and SLURM's answers parsed (the SLURM side itself is tested on a real cluster in tests/sweeps/test_slurm.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from spacing.status import _parse, sweep_status
from spacing.sweep_state import CELL_FILE, write_launch
from tests.helpers import CELL_TINY, cli_env, launch, spacing, wait_for


def write(cell: Path, status: str | None, marker: dict | None = None) -> None:
    cell.mkdir(parents=True)
    if status is not None:
        (cell / "result.json").write_text(json.dumps({"status": status, "error": f"why it {status}"}))
    if marker is not None:
        (cell / CELL_FILE).write_text(json.dumps(marker))


def test_each_cell_state_comes_from_its_files(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    alive = {"outcome": "running", "host": socket.gethostname(), "pid": os.getpid()}
    gone = {"outcome": "running", "host": socket.gethostname(), "pid": 2**22 + 1}  # above Linux's pid_max default
    write(sweep / "a", "completed", {"outcome": "completed"})
    write(sweep / "b", "failed", {"outcome": "failed"})
    write(sweep / "c", "running", alive)
    write(sweep / "d", "running", gone)  # killed: the next launch resumes it
    write(sweep / "e", "diverged")
    write_launch(sweep, "launch1", [sweep / name for name in "abcdef"], ["run.py", "-m"])  # f: planned, never started
    status = sweep_status(sweep, ask_slurm=False)
    assert {cell.dir.name: cell.state for cell in status.cells} == {
        "a": "completed", "b": "failed", "c": "running", "d": "unfinished", "e": "diverged", "f": "new"
    }
    assert not status.finished
    lines = status.lines()
    assert lines[0] == f"sweep {sweep}: 6 cells: 1 completed, 1 running, 1 new, 1 unfinished, 1 failed, 1 diverged"
    assert f"  failed     {sweep / 'b'}  (why it failed)" in lines
    assert lines[-1] == "3 cells not finished; run spacing status again later, or re-launch the same command for unfinished ones"


def test_a_detached_launch_names_each_cells_slurm_job(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_launch(sweep, "first", [sweep / "a", sweep / "b"], ["spacing", "submit"], slurm_jobs=["7_0", "7_1"])
    write_launch(sweep, "second", [sweep / "b"], ["spacing", "submit"], slurm_jobs=["9"])
    tasks = {cell.dir.name: cell.task for cell in sweep_status(sweep, ask_slurm=False).cells}
    assert tasks == {"a": "7_0", "b": "9"}  # the later submission of a cell wins


def test_slurm_answers_are_parsed_with_pending_ranges_expanded() -> None:
    sacct = "12_0|COMPLETED\n12_1|CANCELLED by 0\n12_[2-4,7%2]|PENDING\n13|RUNNING\n"
    assert _parse(sacct) == {
        "12_0": "COMPLETED", "12_1": "CANCELLED", "12_2": "PENDING", "12_3": "PENDING", "12_4": "PENDING",
        "12_7": "PENDING", "13": "RUNNING",
    }


def test_status_of_a_finished_local_sweep_analyses_it_once(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "done"
    ran = launch("method=baseline", *CELL_TINY, "trainer.epochs=1", "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    for path in (sweep / "analysis").glob("*"):
        path.unlink()  # as if the launch had ended before its analysis
    first = spacing("status", str(sweep), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    lines = first.stdout.splitlines()
    assert lines[0] == "sweep multirun/done: 2 cells: 2 completed" and "every cell has finished" in lines  # paths as given relative
    assert "analysis of multirun/done:" in first.stdout and (sweep / "analysis" / "tidy.csv").exists()
    second = spacing("status", str(sweep), cwd=tmp_path)
    assert "analysis is up to date in multirun/done/analysis" in second.stdout


def test_status_of_a_dir_without_cells_is_one_sentence(tmp_path: Path) -> None:
    done = spacing("status", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path} holds no sweep cells; give the sweep dir a launch printed."


def test_watch_follows_a_sweep_until_every_cell_has_finished(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    alive = {"outcome": "running", "host": socket.gethostname(), "pid": os.getpid()}
    write(sweep / "a", "completed", {"outcome": "completed"})
    write(sweep / "b", "running", alive)
    (sweep / "b" / "result.json").write_text(json.dumps({"status": "running", "epochs": 4, "epochs_completed": 1}))
    write_launch(sweep, "launch1", [sweep / "a", sweep / "b"], ["spacing", "submit"])
    view = tmp_path / "view.txt"
    with open(view, "w") as stderr:
        watching = subprocess.Popen(
            [sys.executable, "-m", "spacing", "status", str(sweep), "--watch", "--every", "0.2", "--no-analysis"],
            cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    try:
        wait_for(lambda: view.read_text(), timeout=60, what="the watch's first line")
        assert watching.poll() is None  # a cell is still running: it keeps watching
        (sweep / "b" / "result.json").write_text(json.dumps({"status": "completed", "epochs": 4, "epochs_completed": 4}))
        out, _ = watching.communicate(timeout=60)
    finally:
        watching.kill()
    assert watching.returncode == 0
    first, *_, last = view.read_text().splitlines()
    assert first.startswith("sweep: 1/2 cells done (1 completed, 0 failed), 1 running; ")
    assert last.startswith("sweep: 2/2 cells done (2 completed, 0 failed); ") and last.endswith(" elapsed")
    assert out.splitlines()[0] == "sweep sweep: 2 cells: 2 completed"  # then the status, as without --watch (paths shown relative)
