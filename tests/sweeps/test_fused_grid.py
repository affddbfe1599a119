"""Fused grid sweeps (hydra.sweeper.fuse=true): which cells share a job, what the job carries, and that
each cell of a group is exactly the cell its overrides compose alone, trained into the same dir."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from spacing.cli import main, run_command
from spacing.config import to_dict
from spacing.neutral import cell_dir_name
from spacing.sweep_state import LAUNCHES_DIR
from spacing.sweeper import Job, grid_cells, grid_jobs, group_cells
from tests.helpers import compose_config, read_record, summary_line

TINY_GRID = ("dataset=synthetic", "model.width=8", "trainer.epochs=1", "trainer.device=cpu")


def grid(*overrides: str, controls: bool = False) -> list[list[str]]:
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return grid_cells(parsed, lambda cell: compose_config(list(cell)), controls)


def jobs_of(cells: Sequence[Sequence[str]]) -> list[Job]:
    return grid_jobs(cells, lambda cell: compose_config(list(cell)), fuse=True)


def test_cells_that_differ_only_in_fusable_keys_share_a_job_in_the_order_of_their_first_cell() -> None:
    cells = grid("method=ema", "method.decay=0.9,0.99", "method.interval=0,0.5", "seed=0,1", controls=True)
    jobs = jobs_of(cells)
    seed0 = [i for i, cell in enumerate(cells) if "seed=0" in cell]
    seed1 = [i for i, cell in enumerate(cells) if "seed=1" in cell]
    assert [job.cells for job in jobs] == [tuple(seed0), tuple(seed1)]  # each seed's controls join its group
    assert len(seed0) == 6 and cells[seed0[2]][-1] == "method.control=matched"
    # the job: its first cell's overrides, then every cell's values of the keys that vary in the group
    listed = ("fused_cells=[{interval:0.0,decay:0.9,control:none},{interval:0.5,decay:0.9,control:none},"
              "{interval:0.5,decay:0.9,control:matched},{interval:0.0,decay:0.99,control:none},"
              "{interval:0.5,decay:0.99,control:none},{interval:0.5,decay:0.99,control:matched}]")
    assert jobs[0].overrides == ("method=ema", "method.decay=0.9", "method.interval=0", "seed=0", listed)
    assert jobs[1].overrides == ("method=ema", "method.decay=0.9", "method.interval=0", "seed=1", listed)


def test_a_kd_curve_fuses_its_intervals_offline_included_and_only_the_varying_keys_are_listed() -> None:
    jobs = jobs_of(grid("method=online_kd", "method.interval=0,1.5,inf", "seed=0,1"))
    assert [job.cells for job in jobs] == [(0, 2, 4), (1, 3, 5)]
    assert jobs[0].overrides[-1] == "fused_cells=[{interval:0.0},{interval:1.5},{interval:inf}]"


def test_kd_controls_form_a_group_of_their_own_per_seed_and_the_plan_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    cells = grid("method=online_kd", "method.interval=0,0.5,1", "seed=0,1", controls=True)
    controls = [i for i, cell in enumerate(cells) if cell[-1] == "method.control=matched"]
    assert len(controls) == 4  # one per spaced cell; massed has none
    by_seed = [[i for i in positions if f"seed={seed}" in cells[i]] for seed in (0, 1) for positions in
               ([i for i in range(len(cells)) if i not in controls], controls)]
    assert sorted(job.cells for job in jobs_of(cells)) == sorted(tuple(positions) for positions in by_seed)
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "method=online_kd", "method.interval=0,0.5", "dataset=synthetic", "hydra.sweeper.controls=true",
                 "hydra.sweeper.fuse=true", "hydra.sweep.dir=sweep"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert notes == ["note: the matched_lead controls of online_kd train in fused groups of their own, apart from their "
                     "spaced cells: a control's teacher reads its own data stream, not its spaced cell's, so it shares "
                     "no trajectory with that cell's group; the controls of one seed share one teacher and fuse with each other."]


def test_kd_cells_that_replay_in_rounds_get_no_control() -> None:
    assert grid("method=online_kd", "method.interval=0.5", "method.replay=rounds", controls=True) == [
        ["method=online_kd", "method.interval=0.5", "method.replay=rounds"]]
    assert len(grid("method=online_kd", "method.schedule=random", controls=True)) == 1


@pytest.mark.parametrize(
    "overrides",
    [
        ("method=dropout", "method.interval=0,0.5"),  # dropout changes training itself
        ("method=self_kd", "method.interval=0,1"),
        ("method=baseline", "seed=0,1"),
        ("method=online_kd", "method.replay_teacher_bn=true", "method.interval=0,1"),  # replays move the teacher's BN
        ("method=ema", "method.interval=0.5", "seed=0,1"),  # groups of one
        ("method=ema", "method.interval=0.5", "method.buffers=copy,average"),  # differ in a key EMA does not fuse
        ("method=ema", "method.interval=0,-1"),  # an invalid cell is left for the plan to report
    ],
)
def test_cells_that_cannot_fuse_and_groups_of_one_are_ordinary_jobs(overrides: tuple[str, ...]) -> None:
    cells = grid(*overrides)
    jobs = jobs_of(cells)
    assert [(job.overrides, job.cells) for job in jobs] == [(tuple(cell), (i,)) for i, cell in enumerate(cells)]
    assert not any(job.fused for job in jobs)


def test_a_repeated_cell_is_trained_once_by_its_groups_job() -> None:
    cells = grid("method=ema", "method.interval=0,0.5,0", "seed=0")
    (job,) = jobs_of(cells)
    assert job.cells == (0, 2, 1) and job.overrides[-1] == "fused_cells=[{interval:0.0},{interval:0.5}]"


def test_fusable_and_unfusable_cells_of_one_grid_and_no_fusion_without_the_option() -> None:
    cells = grid("method=ema,dropout", "method.interval=0,0.5")
    jobs = jobs_of(cells)
    assert [job.cells for job in jobs] == [(0, 1), (2,), (3,)]
    assert jobs[0].overrides == ("method=ema", "method.interval=0", "fused_cells=[{interval:0.0},{interval:0.5}]")
    unfused = grid_jobs(cells, lambda cell: compose_config(list(cell)), fuse=False)
    assert [job.overrides for job in unfused] == [tuple(cell) for cell in cells]


@pytest.mark.parametrize(
    "overrides",
    [
        ("method=ema", "method.decay=0.9,0.99", "method.interval=0,0.5", "method.schedule=periodic,random", "seed=3"),
        ("method=online_kd", "method.interval=0,0.5,inf", "trainer.epochs=2", "method.schedule=periodic,random"),
        ("+sweep=demo", "method.interval=0,0.25,0.5,1", "seed=0"),
    ],
)
def test_each_cells_config_is_the_group_jobs_config_with_its_values_set(overrides: tuple[str, ...]) -> None:
    """What the task rebuilds from the job equals what Hydra composes for the cell alone, so the cell's
    record and dir are those of the unfused cell; the job's own dir is its first cell's."""
    cells = grid(*overrides, controls=True)
    jobs = jobs_of(cells)
    # online KD's matched-lead controls read a data stream of their own: a job apart from their spaced cells' (issue 25)
    assert len(jobs) == (2 if "method=online_kd" in overrides else 1)
    assert sorted(i for job in jobs for i in job.cells) == list(range(len(cells))) and len(jobs[0].cells) > 2
    for job in jobs:
        job_config = compose_config(list(job.overrides))
        rebuilt = group_cells(job_config, Path("sweep")) if len(job.cells) > 1 else [(job_config, None)]
        alone = [compose_config(list(cells[i])) for i in job.cells]
        assert [to_dict(cell) for cell, _ in rebuilt] == [to_dict(cell) for cell in alone]
        names = [cell_dir_name(to_dict(cell)) for cell in alone]
        if len(job.cells) > 1:
            assert [cell_dir for _, cell_dir in rebuilt] == [Path("sweep") / name for name in names]
        assert len(set(names)) == len(names)
        assert cell_dir_name(to_dict(job_config)) == names[0]  # fused_cells is neutral: Hydra's job dir is the first cell's


def test_fused_cells_may_list_only_keys_the_method_fuses_and_only_for_a_method_that_fuses() -> None:
    from spacing.config import to_config
    from spacing.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^fused_cells: method.buffers is not a key ema fuses .*method.interval, "
                                          r"method.decay, method.schedule, method.control\); run these cells unfused.$"):
        to_config(compose_config(["method=ema", "fused_cells=[{interval:0.0},{buffers:copy}]"]))
    with pytest.raises(ConfigError, match=r"^fused_cells: this dropout config cannot share its training trajectory"):
        to_config(compose_config(["method=dropout", "fused_cells=[{interval:0.0},{interval:1.0}]"]))
    with pytest.raises(ConfigError, match=r"^fused_cells: this online_kd config cannot share"):
        to_config(compose_config(["method=online_kd", "method.replay_teacher_bn=true", "fused_cells=[{interval:0.0},{interval:1.0}]"]))


def test_fusion_with_an_optimising_sweeper_is_refused_in_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    assert run_command(["-m", "+tune=lr", "hydra.sweeper.fuse=true"]) == 2
    assert capsys.readouterr().err == (
        "error: hydra.sweeper.fuse is an option of spacing's grid sweeper, not of the OptunaSweeper: fusion is for grid "
        "sweeps only, and a fused job trains several cells, so it has no one objective to return to an optimising "
        "sweeper; drop hydra.sweeper.fuse (a sweep file that sets it is a grid: do not combine it with another sweeper).\n"
    )
    assert run_command(["-m", "+sweep=ema_grid", "+tune=lr"]) == 2  # the sweep file asks for fusion
    assert capsys.readouterr().err.startswith("error: hydra.sweeper.fuse is an option of spacing's grid sweeper, not of the OptunaSweeper")


def test_fusion_with_hydras_basic_sweeper_names_the_sweeper_to_drop(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(["-m", "+sweep=online_kd_curve", "hydra/sweeper=basic"]) == 2
    assert capsys.readouterr().err == (
        "error: hydra.sweeper.fuse is an option of spacing's grid sweeper (the default one), not of Hydra's "
        "BasicSweeper; drop hydra/sweeper=basic (or hydra.sweeper.fuse).\n"
    )


def test_fused_cells_given_by_hand_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_command(["method=ema", "fused_cells=[{interval:0.0},{interval:1.0}]"]) == 2
    assert capsys.readouterr().err == (
        "error: fused_cells is written by the grid sweeper into each fused group's job, not given on the command line "
        "or in a config; remove it (and ask for fusion with hydra.sweeper.fuse=true in a grid sweep).\n"
    )
    assert not (tmp_path / "outputs").exists()


def test_plan_counts_cells_and_the_jobs_they_are_launched_in(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "method=ema,dropout", "method.interval=0,0.5", "seed=0,1", "hydra.sweeper.fuse=true",
                 "hydra.sweep.dir=sweep"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("sweep sweep: 8 cells (8 new) in 6 jobs (2 fused groups, 4 single cells), composed and checked in ")
    cell_lines = [line for line in lines if not line.startswith("warning: ")]  # EMA at decay 0.999: shadows warned of
    assert len(cell_lines) == 9  # the cells are listed as without fusion, one line each
    assert main(["plan", "method=dropout", "method.interval=0,0.5", "hydra.sweeper.fuse=true", "hydra.sweep.dir=sweep"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("sweep sweep: 2 cells (2 new), composed and checked in ")


def run_each_cell(cells: Sequence[tuple[DictConfig, Path]], sweep_dir: Path | None = None) -> list[Any]:
    """A reference spacing.fused.run_group_cells: what the fused core must equal, each cell trained by
    spacing.runner.run_cell."""
    from spacing.runner import run_cell

    return [run_cell(cell, cell_dir, sweep_dir) for cell, cell_dir in cells]


@pytest.fixture
def groups_run(monkeypatch) -> list[list[str]]:
    """spacing.fused with run_group_cells replaced by :func:`run_each_cell`; the dir names of each group it was given."""
    calls: list[list[str]] = []

    def run_group_cells(cells: Sequence[tuple[DictConfig, Path]], sweep_dir: Path | None = None) -> list[Any]:
        calls.append([cell_dir.name for _, cell_dir in cells])
        return run_each_cell(cells, sweep_dir)

    monkeypatch.setitem(sys.modules, "spacing.fused", types.SimpleNamespace(run_group_cells=run_group_cells))
    return calls


@pytest.mark.slow  # three launches of six tiny cells
def test_a_fused_multirun_trains_each_group_in_one_job_into_the_unfused_cells_dirs_and_counts_cells(
    tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str], groups_run: list[list[str]]
) -> None:
    monkeypatch.chdir(tmp_path)
    values = ("method=ema", "method.decay=0.9", "method.interval=0,0.5", "seed=0,1")
    args = ["-m", *values, *TINY_GRID, "hydra.sweeper.controls=true", "~hydra.callbacks.analyze", "hydra.sweep.dir=sweep"]
    assert run_command([*args, "hydra.sweeper.fuse=true"]) == 0
    out = capsys.readouterr().out
    assert summary_line(out) == "sweep sweep: 6 cells, 6 completed, 0 skipped, 0 failed"
    unfused = [list(cell) for cell in grid(*values, *TINY_GRID, controls=True)]
    names = {seed: [cell_dir_name(to_dict(compose_config(c))) for c in unfused if f"seed={seed}" in c] for seed in (0, 1)}
    assert groups_run == [names[0], names[1]]  # one job per seed: massed, spaced and its control
    for cell in unfused:
        record = read_record(tmp_path / "sweep" / cell_dir_name(to_dict(compose_config(cell))))
        assert record["status"] == "completed" and record["config"] == to_dict(compose_config(cell))
    markers = [json.loads(path.read_text()) for path in (tmp_path / "sweep").glob("*/sweep_cell.json")]
    assert len(markers) == 6 and {m["outcome"] for m in markers} == {"completed"}
    (launch,) = (tmp_path / "sweep" / LAUNCHES_DIR).glob("*.json")
    assert sorted(json.loads(launch.read_text())["cells"]) == sorted(names[0] + names[1])

    # a fused and an unfused launch of the same grid are interchangeable: every cell is found completed
    assert run_command([*args, "hydra.sweeper.fuse=false"]) == 0
    assert summary_line(capsys.readouterr().out) == "sweep sweep: 6 cells, 0 completed, 6 skipped, 0 failed"
    assert run_command([*args, "hydra.sweeper.fuse=true"]) == 0
    assert summary_line(capsys.readouterr().out) == "sweep sweep: 6 cells, 0 completed, 6 skipped, 0 failed"
    assert len(groups_run) == 4


def test_a_group_stopped_by_a_cell_running_elsewhere_keeps_its_completed_cells(tmp_path: Path, monkeypatch) -> None:
    from spacing.claim import RUNNING_ELSEWHERE, RunningElsewhere
    from spacing.cli import _train_group

    def run_group_cells(cells: Sequence[tuple[DictConfig, Path]], sweep_dir: Path | None = None) -> list[Any]:
        run_each_cell(cells[:1], sweep_dir)
        raise RunningElsewhere(f"{cells[1][1]} is being trained by another process")

    monkeypatch.setitem(sys.modules, "spacing.fused", types.SimpleNamespace(run_group_cells=run_group_cells))
    cells = grid("method=ema", "method.interval=0,0.5,1", *TINY_GRID)
    (job,) = jobs_of(cells)
    outcome = _train_group(compose_config(list(job.overrides)), tmp_path)
    names = [cell_dir_name(to_dict(compose_config(cell))) for cell in cells]
    assert outcome.status == RUNNING_ELSEWHERE
    assert outcome.cells == {names[0]: "completed", names[1]: RUNNING_ELSEWHERE, names[2]: RUNNING_ELSEWHERE}


def test_submit_submits_one_task_per_job_and_records_each_cells_task(tmp_path: Path, monkeypatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import spacing.submit
    from hydra_plugins.spacing_launchers import CellsPerTaskSlurmLauncher

    submitted: list[list[str]] = []

    def submit(launcher: object, job_overrides: Sequence[Sequence[str]], initial_job_idx: int = 0) -> list[types.SimpleNamespace]:
        submitted.extend(list(job) for job in job_overrides)
        return [types.SimpleNamespace(job_id=f"77_{index}") for index in range(len(job_overrides))]

    monkeypatch.setattr(spacing.submit, "check_launcher", lambda master: None)  # no sbatch here: nothing is sent to SLURM
    monkeypatch.setattr(CellsPerTaskSlurmLauncher, "submit", submit)
    monkeypatch.chdir(tmp_path)
    values = ("method=ema,dropout", "method.interval=0,0.5", "seed=0")
    assert main(["submit", *values, *TINY_GRID, "hydra/launcher=slurm", "hydra.sweeper.fuse=true", "hydra.sweep.dir=sweep"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "submitted SLURM array job 77 (3 tasks for 4 cells: 1 fused group) for sweep sweep"
    )
    cells = grid(*values, *TINY_GRID)
    assert submitted == [list(job.overrides) for job in jobs_of(cells)]
    (launch,) = (tmp_path / "sweep" / LAUNCHES_DIR).glob("*.json")
    record = json.loads(launch.read_text())
    assert record["cells"] == [cell_dir_name(to_dict(compose_config(cell))) for cell in cells]
    assert record["slurm_jobs"] == ["77_0", "77_0", "77_1", "77_2"]  # both EMA cells run in the group's task


def test_an_outcome_keeps_each_cells_status_through_pickling() -> None:
    import pickle

    from spacing.cli import Outcome

    outcome = pickle.loads(pickle.dumps(Outcome(float("nan"), "failed", {"a": "completed", "b": "failed"})))
    assert outcome.status == "failed" and outcome.cells == {"a": "completed", "b": "failed"}
