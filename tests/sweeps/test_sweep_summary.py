"""SweepSummary: each cell's outcome from its run record and job, and the counts of one launch."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from spacing.sweep import CELL_FILE, SweepSummary, cell_outcome, summarize

DONE = {"status": "completed", "started_at": "2026-01-01T10:00:00", "finished_at": "2026-01-01T10:05:00"}


@pytest.mark.parametrize(
    "returned,before,after,outcome",
    [
        ("completed", None, DONE, "completed"),
        ("completed", {**DONE, "status": "running", "finished_at": None}, DONE, "completed"),  # resumed and finished
        ("completed", DONE, DONE, "skipped"),
        ("completed", DONE, {**DONE, "finished_at": "2026-01-02T09:00:00"}, "completed"),  # trained again
        ("failed", DONE, DONE, "failed"),  # e.g. refused: the dir holds another config's completed run
        ("failed", None, {"status": "failed", "error": "x"}, "failed"),
        ("failed", None, None, "failed"),
        ("diverged", None, {"status": "diverged"}, "diverged"),
    ],
)
def test_cell_outcome(returned: str, before: dict | None, after: dict | None, outcome: str) -> None:
    assert cell_outcome(returned, before, after) == outcome


def job(out_dir: Path) -> SimpleNamespace:
    """The slice of a Hydra job config the callback reads."""
    return SimpleNamespace(hydra=SimpleNamespace(runtime=SimpleNamespace(output_dir=str(out_dir))))


def job_return(value: object, status: str = "COMPLETED") -> SimpleNamespace:
    return SimpleNamespace(status=SimpleNamespace(name=status), return_value=value)


def write_record(cell: Path, **fields: object) -> None:
    cell.mkdir(parents=True, exist_ok=True)
    (cell / "result.json").write_text(json.dumps({**DONE, **fields}))


def test_one_launch_is_counted_and_its_failed_cells_are_named(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "multirun" / "demo"
    callback = SweepSummary()
    callback.on_multirun_start(config=None)
    a, b, c, d, e = (sweep / f"seed={i}" for i in range(5))
    write_record(a)  # completed by an earlier launch: the runner skips it

    callback.on_job_start(config=job(a))
    callback.on_job_end(config=job(a), job_return=job_return("completed"))
    callback.on_job_start(config=job(b))
    write_record(b, finished_at="2026-01-01T11:00:00")
    callback.on_job_end(config=job(b), job_return=job_return("completed"))
    callback.on_job_start(config=job(c))
    write_record(c, status="failed", error="ConfigError: trainer.lr must be > 0; got -1.0.")
    callback.on_job_end(config=job(c), job_return=job_return("failed"))
    callback.on_job_start(config=job(d))  # killed: never reaches on_job_end
    callback.on_job_start(config=job(e))
    callback.on_job_end(config=job(e), job_return=job_return(RuntimeError("boom"), status="FAILED"))

    other = sweep / "seed=9"  # a cell of another launch in the same sweep dir
    other.mkdir()
    (other / CELL_FILE).write_text(json.dumps({"launch": "earlier", "outcome": "completed"}))

    callback.on_multirun_end(config=SimpleNamespace(hydra=SimpleNamespace(sweep=SimpleNamespace(dir=str(sweep)))))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"sweep {sweep}: 5 cells, 1 completed, 1 skipped, 2 failed, 1 unfinished"
    assert f"  failed: {c} (ConfigError: trainer.lr must be > 0; got -1.0.)" in out
    assert f"  unfinished: {d}" in out
    assert f"  failed: {e} (RuntimeError: boom)" in out
    assert not any(str(a) in line or str(b) in line for line in out)
    assert [cell.outcome for cell in summarize(sweep, callback.launch).cells] == [
        "skipped", "completed", "failed", "unfinished", "failed"
    ]


def test_marker_names_the_slurm_job_and_a_single_run_writes_none(tmp_path: Path, monkeypatch) -> None:
    single = SweepSummary()  # no on_multirun_start: `python run.py` without -m
    single.on_job_start(config=job(tmp_path / "run"))
    assert not (tmp_path / "run" / CELL_FILE).exists()

    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "41")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    callback = SweepSummary()
    callback.on_multirun_start(config=None)
    callback.on_job_start(config=job(tmp_path / "cell"))
    marker = json.loads((tmp_path / "cell" / CELL_FILE).read_text())
    assert marker["outcome"] == "running" and marker["launch"] == callback.launch
    assert marker["slurm"]["SLURM_ARRAY_JOB_ID"] == "41" and marker["slurm"]["SLURM_ARRAY_TASK_ID"] == "3"
