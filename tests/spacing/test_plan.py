"""`spacing plan`: every cell of a grid composed and checked up front, with its dir and state, in
seconds and without torch; cells whose resolved configs are equal share a dir however their values
were given; `python run.py -m ... --cfg job` prints the plan with each cell's config."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from spacing.neutral import cell_dir_name
from spacing.sweep_state import CELL_FILE
from tests.helpers import ROOT
from tests.helpers import cli_env, spacing

DEMO_CELLS = 70
"""4 intervals x 10 seeds, and the controls of the 3 spaced intervals."""


def plan_lines(*args: str, cwd: Path) -> list[str]:
    done = spacing("plan", *args, cwd=cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def cell_rows(lines: list[str]) -> list[list[str]]:
    """Each cell line of a plan as [state, dir, value...]."""
    return [line.split() for line in lines[1:] if line.startswith("  ") and not line.startswith("    ")]


def test_plan_lists_every_cell_new_without_importing_torch(tmp_path: Path) -> None:
    probe = (
        "import sys; from spacing.cli import main; code = main(['plan', '+sweep=demo']); "
        "assert 'torch' not in sys.modules, 'plan imported torch'; sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"sweep multirun/demo: {DEMO_CELLS} cells ({DEMO_CELLS} new) in 10 jobs (10 fused groups), "
                               "composed and checked in ")  # one job per seed: its intervals and their controls
    rows = cell_rows(lines)
    assert len(rows) == DEMO_CELLS and {row[0] for row in rows} == {"new"}
    assert rows[0][2:] == ["method.interval=0", "seed=0"]  # the values that make the cell
    assert rows[0][1].startswith("multirun/demo/ema-i0-seed0-")
    spaced = rows.index(next(row for row in rows if row[2:] == ["method.interval=0.25", "seed=0"]))
    control = rows[spaced + 1]  # each spaced cell's control follows it
    assert control[2:] == ["method.interval=0.25", "seed=0", "method.control=matched"]
    assert control[1].startswith("multirun/demo/ema-i0.25-control-seed0-")
    assert not (tmp_path / "multirun").exists()  # a plan writes nothing
    assert not [line for line in lines if line.startswith("warning:")]  # every demo cell can measure its interval


def test_plan_shows_each_cells_state_from_its_files(tmp_path: Path) -> None:
    rows = cell_rows(plan_lines("+sweep=demo", "method.interval=0,1", "seed=0,1", cwd=tmp_path))
    dirs = [tmp_path / row[1] for row in rows]
    statuses = {dirs[0]: "completed", dirs[1]: "failed", dirs[2]: "running"}
    for cell, status in statuses.items():
        cell.mkdir(parents=True)
        (cell / "result.json").write_text(json.dumps({"status": status}))
    # a live process of this host holds the running cell: this test's own process
    (dirs[2] / CELL_FILE).write_text(json.dumps({"outcome": "running", "host": socket.gethostname(), "pid": os.getpid()}))
    states = [row[0] for row in cell_rows(plan_lines("+sweep=demo", "method.interval=0,1", "seed=0,1", cwd=tmp_path))]
    assert states == ["completed", "failed", "running", "new", "new", "new"]  # s = 1's controls are new too


def test_an_invalid_grid_is_one_sentence_per_bad_value_and_launches_nothing(tmp_path: Path) -> None:
    args = ("+sweep=demo", "method.decay=0.7,1.5", "method.interval=0,-1", "trainer.epochs=1")
    planned = spacing("plan", *args, cwd=tmp_path)
    assert planned.returncode == 2
    assert planned.stderr.splitlines() == [  # a cell with both bad values is refused for the first check it fails
        "error: 10 cells: method.decay must be in [0, 1); got 1.5.",
        "error: 20 cells: method.interval must be >= 0 epochs (0 = massed, inf = offline KD); got -1.0.",
    ]
    launched = subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", *args], cwd=tmp_path, env=cli_env(),
                              capture_output=True, text=True, timeout=300)
    assert launched.returncode == 2
    assert [line for line in launched.stderr.splitlines() if line.startswith("error:")] == planned.stderr.splitlines()
    assert "Traceback" not in launched.stderr
    assert not (tmp_path / "multirun").exists()


def test_multirun_cfg_prints_the_plan_with_each_cells_config_instead_of_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", "+sweep=demo", "--cfg", "job"], cwd=tmp_path,
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stdout.count("\n    method:\n") == DEMO_CELLS
    assert done.stdout.splitlines()[0].startswith(f"sweep multirun/demo: {DEMO_CELLS} cells")


def test_equal_resolved_configs_share_a_dir_however_their_values_were_given(tmp_path: Path) -> None:
    base = cell_rows(plan_lines("+sweep=demo", cwd=tmp_path))
    typed = cell_rows(plan_lines("+sweep=demo", "trainer.epochs=10", "method.decay=0.7", "dataset=digits", cwd=tmp_path))
    neutral = cell_rows(plan_lines("+sweep=demo", "trainer.log_every=3", "dataset.workers=0", "trainer.device=auto", cwd=tmp_path))
    assert [row[1] for row in typed] == [row[1] for row in neutral] == [row[1] for row in base]
    other = cell_rows(plan_lines("+sweep=demo", "trainer.epochs=11", cwd=tmp_path))
    assert not {row[1] for row in other} & {row[1] for row in base}


def test_the_dir_name_is_computed_from_the_resolved_config() -> None:
    config = {"method": {"name": "ema", "interval": 0.5, "schedule": "periodic", "decay": 0.9},
              "trainer": {"epochs": 3, "device": "cpu"}, "seed": 2, "logger": {"group": None}}
    name = cell_dir_name(config)
    assert name.startswith("ema-i0.5-seed2-") and len(name.rsplit("-", 1)[1]) == 10
    assert cell_dir_name({**config, "trainer": {"epochs": 3, "device": "cuda"}, "logger": {"group": "x"}}) == name
    assert cell_dir_name({**config, "method": {**config["method"], "decay": 0.99}}) != name
    random = {**config, "method": {**config["method"], "schedule": "random"}}
    assert cell_dir_name(random).startswith("ema-i0.5-random-seed2-")


@pytest.mark.parametrize("flag", ["--help", "-sc query=bash"])
def test_help_and_shell_completion_answer_without_torch(flag: str, tmp_path: Path) -> None:
    probe = (
        "import sys; from spacing.cli import run_command\n"
        f"try:\n    run_command({flag.split()!r})\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    env = {**cli_env(), "COMP_LINE": "python run.py trainer.ep"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "False"
    assert ("trainer.epochs=" in done.stdout) if flag.startswith("-sc") else ("== Configuration groups ==" in done.stdout)
