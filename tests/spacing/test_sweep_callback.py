"""SweepCallback: each cell's outcome from its run record and job, and the counts of one launch."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import DictConfig, OmegaConf, open_dict

from spacing.cli import Outcome, TrialFailed
from spacing.config import to_dict
from spacing.neutral import cell_dir_name
from spacing.sweep_callback import SweepCallback, cell_outcome, launch_exit_code, summarize_launch
from spacing.sweep_state import CELL_FILE
from tests.helpers import compose_config

DONE = {"status": "completed", "started_at": "2026-01-01T10:00:00", "finished_at": "2026-01-01T10:05:00"}


@pytest.mark.parametrize(
    "status,after,outcome",
    [
        ("completed", DONE, "completed"),  # trained (from scratch, resumed, or again) by this job
        ("skipped", DONE, "skipped"),  # the runner found it completed, by an earlier launch or one running at once
        ("completed", {**DONE, "status": "running"}, "failed"),  # a record that does not say completed
        ("failed", DONE, "failed"),  # e.g. refused: the dir holds another config's completed run
        (None, DONE, "failed"),  # the task raised past its own handler
        ("failed", {"status": "failed", "error": "x"}, "failed"),
        ("failed", None, "failed"),
        ("diverged", {"status": "diverged"}, "diverged"),
        ("lost", None, "lost"),
        ("running elsewhere", None, "running elsewhere"),
    ],
)
def test_cell_outcome(status: str | None, after: dict | None, outcome: str) -> None:
    assert cell_outcome(status, after) == outcome


def job(out_dir: Path) -> DictConfig:
    """The slice of a Hydra job config the callback reads (a job of one cell: no fused_cells)."""
    return OmegaConf.create({"hydra": {"runtime": {"output_dir": str(out_dir)}}})


def job_return(value: object) -> SimpleNamespace:
    """What run_job hands the callback: the task's return value, or the exception it raised."""
    return SimpleNamespace(_return_value=value)


def write_record(cell: Path, **fields: object) -> None:
    cell.mkdir(parents=True, exist_ok=True)
    (cell / "result.json").write_text(json.dumps({**DONE, **fields}))


def sweep_config(sweep: Path) -> SimpleNamespace:
    return SimpleNamespace(hydra=SimpleNamespace(sweep=SimpleNamespace(dir=str(sweep))))


def test_one_launch_is_counted_its_failed_cells_are_named_and_it_exits_4(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "multirun" / "demo"
    callback = SweepCallback()
    callback.begin_launch()
    a, b, c, d, e = (sweep / f"seed={i}" for i in range(5))
    write_record(a)  # completed by an earlier launch: the runner skips it

    callback.on_job_start(config=job(a))
    callback.on_job_end(config=job(a), job_return=job_return(Outcome(0.9, "skipped")))
    callback.on_job_start(config=job(b))
    write_record(b, finished_at="2026-01-01T11:00:00")
    callback.on_job_end(config=job(b), job_return=job_return(Outcome(0.8, "completed")))
    callback.on_job_start(config=job(c))
    write_record(c, status="failed", error="ConfigError: trainer.lr must be > 0; got -1.0.")
    callback.on_job_end(config=job(c), job_return=job_return(Outcome(math.nan, "failed")))
    callback.on_job_start(config=job(d))  # killed: never reaches on_job_end
    callback.on_job_start(config=job(e))
    callback.on_job_end(config=job(e), job_return=job_return(RuntimeError("boom")))

    other = sweep / "seed=9"  # a cell of another launch in the same sweep dir
    other.mkdir()
    (other / CELL_FILE).write_text(json.dumps({"launch": "earlier", "outcome": "completed"}))

    callback.on_multirun_end(config=sweep_config(sweep))  # returns, so the analysis callback still runs
    assert launch_exit_code() == 4
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"sweep {sweep}: 5 cells, 1 completed, 1 skipped, 2 failed, 1 unfinished"
    assert f"  failed: {c} (ConfigError: trainer.lr must be > 0; got -1.0.)" in out
    assert f"  unfinished: {d}" in out
    assert f"  failed: {e} (RuntimeError: boom)" in out
    assert not any(str(a) in line or str(b) in line for line in out)
    assert [cell.outcome for cell in summarize_launch(sweep, callback.launch).cells] == [
        "skipped", "completed", "failed", "unfinished", "failed"
    ]


def test_a_launch_whose_cells_all_completed_ends_normally(tmp_path: Path, capsys) -> None:
    callback = SweepCallback()
    callback.begin_launch()
    cell = tmp_path / "sweep" / "cell"
    callback.on_job_start(config=job(cell))
    write_record(cell)
    callback.on_job_end(config=job(cell), job_return=job_return(Outcome(0.9, "completed")))
    callback.on_multirun_end(config=sweep_config(tmp_path / "sweep"))
    assert capsys.readouterr().out.splitlines() == [f"sweep {tmp_path / 'sweep'}: 1 cells, 1 completed, 0 skipped, 0 failed"]


def test_a_trial_failed_for_an_optimising_sweeper_keeps_its_status(tmp_path: Path) -> None:
    callback = SweepCallback()
    callback.begin_launch()
    cell = tmp_path / "cell"
    callback.on_job_start(config=job(cell))
    write_record(cell, status="diverged", error="the model loss became nan in epoch 1 (by step 4); lower trainer.lr or check the data.")
    callback.on_job_end(config=job(cell), job_return=job_return(TrialFailed("the model loss became nan", "diverged")))
    marker = json.loads((cell / CELL_FILE).read_text())
    assert marker["outcome"] == "diverged" and marker["error"].startswith("the model loss became nan in epoch 1")


def test_marker_names_the_slurm_job_and_a_single_run_writes_none(tmp_path: Path, monkeypatch) -> None:
    single = SweepCallback()  # no on_multirun_start: `python run.py` without -m
    single.on_job_start(config=job(tmp_path / "run"))
    assert not (tmp_path / "run" / CELL_FILE).exists()

    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "41")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    callback = SweepCallback()
    callback.begin_launch()
    callback.on_job_start(config=job(tmp_path / "cell"))
    marker = json.loads((tmp_path / "cell" / CELL_FILE).read_text())
    assert marker["outcome"] == "running" and marker["launch"] == callback.launch
    assert marker["slurm"]["SLURM_ARRAY_JOB_ID"] == "41" and marker["slurm"]["SLURM_ARRAY_TASK_ID"] == "3"


def group_job(sweep: Path, intervals: list[str]) -> tuple[DictConfig, list[Path]]:
    """A fused group's job config (hydra node included, as Hydra hands it to the callback), and its cells' dirs."""
    cells = [compose_config(["method=ema", f"method.interval={i}"]) for i in intervals]
    dirs = [sweep / cell_dir_name(to_dict(cell)) for cell in cells]
    config = compose_config(["method=ema", f"method.interval={intervals[0]}",
                             f"fused_cells=[{','.join('{interval:' + i + '}' for i in intervals)}]"])
    with open_dict(config):
        config.hydra = {"runtime": {"output_dir": str(dirs[0])}, "sweep": {"dir": str(sweep)}}
    return config, dirs


def test_a_fused_groups_job_marks_and_counts_each_of_its_cells(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    callback = SweepCallback()
    callback.begin_launch()
    config, (skipped, trained, failed) = group_job(sweep, ["0", "0.5", "1"])
    write_record(skipped)  # completed by an earlier launch

    callback.on_job_start(config=config)
    assert [marker["outcome"] for marker in map(lambda c: json.loads((c / CELL_FILE).read_text()), (skipped, trained, failed))] == [
        "running"] * 3
    write_record(trained, finished_at="2026-01-01T11:00:00")
    write_record(failed, status="failed", error="RuntimeError: boom")
    statuses = {skipped.name: "skipped", trained.name: "completed", failed.name: "failed"}  # as run_group_cells says
    callback.on_job_end(config=config, job_return=job_return(Outcome(math.nan, "failed", statuses)))

    callback.on_multirun_end(config=sweep_config(sweep))
    assert launch_exit_code() == 4
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"sweep {sweep}: 3 cells, 1 completed, 1 skipped, 1 failed"  # cells, not jobs
    assert f"  failed: {failed} (RuntimeError: boom)" in out


def test_a_fused_groups_job_that_raised_fails_each_of_its_cells_as_a_raised_job_of_one_cell_does(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    callback = SweepCallback()
    callback.begin_launch()
    config, (first, second) = group_job(sweep, ["0", "0.5"])
    callback.on_job_start(config=config)
    write_record(first, finished_at="2026-01-01T11:00:00")
    callback.on_job_end(config=config, job_return=job_return(RuntimeError("boom")))
    callback.on_multirun_end(config=sweep_config(sweep))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"sweep {sweep}: 2 cells, 0 completed, 0 skipped, 2 failed"  # a raised job: the task reported no status
    assert f"  failed: {second} (RuntimeError: boom)" in out
