"""Two launches of one grid at once: each launch's summary counts every cell of its grid once, by what
happened to it in that launch, however the launches' jobs interleave."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

from spacing.claim import RUNNING_ELSEWHERE
from spacing.cli import Outcome
from spacing.sweep_callback import SweepCallback
from tests.spacing.test_sweep_callback import job, job_return, sweep_config, write_record


def launched(cells: list[Path]) -> SweepCallback:
    callback = SweepCallback()
    callback.begin_launch()
    callback.plan = SimpleNamespace(cells=[SimpleNamespace(dir=cell) for cell in cells])  # the checked grid
    return callback


def test_interleaved_launches_each_count_every_cell_once(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    x, y = sweep / "x", sweep / "y"
    first, second = launched([x, y]), launched([x, y])

    first.on_job_start(config=job(x))
    second.on_job_start(config=job(x))  # the first launch trains x: the second finds it held
    second.on_job_end(config=job(x), job_return=job_return(Outcome(math.nan, RUNNING_ELSEWHERE)))
    second.on_job_start(config=job(y))
    write_record(y)
    second.on_job_end(config=job(y), job_return=job_return(Outcome(0.9, "completed")))
    write_record(x, finished_at="2026-01-01T12:00:00")
    first.on_job_end(config=job(x), job_return=job_return(Outcome(0.9, "completed")))
    first.on_job_start(config=job(y))  # done by the second launch meanwhile: the runner skips it
    first.on_job_end(config=job(y), job_return=job_return(Outcome(0.9, "skipped")))

    first.on_multirun_end(config=sweep_config(sweep))
    second.on_multirun_end(config=sweep_config(sweep))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sweep ")]
    assert lines == [f"sweep {sweep}: 2 cells, 1 completed, 1 skipped, 0 failed",
                     f"sweep {sweep}: 2 cells, 1 completed, 0 skipped, 0 failed, 1 running elsewhere"]


def test_a_planned_cell_whose_job_never_ran_is_unfinished(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    x, y = sweep / "x", sweep / "y"
    launch = launched([x, y, x])  # a repeated cell is one cell
    launch.on_job_start(config=job(x))
    write_record(x)
    launch.on_job_end(config=job(x), job_return=job_return(Outcome(0.9, "completed")))
    launch.on_multirun_end(config=sweep_config(sweep))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"sweep {sweep}: 2 cells, 1 completed, 0 skipped, 0 failed, 1 unfinished"
    assert f"  unfinished: {y}" in out
