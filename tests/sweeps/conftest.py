"""Fixtures for the sweep tests: launching `python run.py -m` as a user would, reading cells back,
and the private SLURM cluster of tests/slurm/ (skipped without one, except in CI)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from spacing.sweep_state import CELL_FILE
from spacing.config import to_dict
from spacing.neutral import cell_dir_name
from tests.conftest import ROOT, compose_config

TINY = ("dataset=synthetic", "model.width=8", "trainer.device=cpu")
"""Cells that train in well under a second per epoch on one CPU core."""


def cli_env() -> dict[str, str]:
    """The environment of a launch: the repo importable by every cell's process, one thread per cell."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("HYDRA_FULL_ERROR", None)  # what a user has: Hydra's short report for bugs, our sentences for the rest
    return env


def launch(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`python run.py -m ARGS` in `cwd`, waited for."""
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def spacing(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`spacing ARGS` (as `python -m spacing ARGS`) in `cwd`, waited for."""
    return subprocess.run(
        [sys.executable, "-m", "spacing", *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout
    )


def launch_in_background(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """`python run.py -m ARGS` in `cwd`, left running in a session of its own; its output goes to `cwd/driver.log`."""
    with open(cwd / "driver.log", "w") as log:  # the child keeps its own copy of the file descriptor
        return subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "-m", *args],
            cwd=cwd,
            env=cli_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def cells(sweep_dir: Path) -> list[Path]:
    """The cell dirs of a sweep dir (those a launch marked), sorted."""
    return sorted(path.parent for path in sweep_dir.rglob(CELL_FILE))


def marker(cell: Path) -> dict:
    return json.loads((cell / CELL_FILE).read_text())


def record(cell: Path) -> dict:
    return json.loads((cell / "result.json").read_text())


def history_epochs(cell: Path) -> list[int]:
    """The epochs in a cell's history.csv, one entry per row (the runs here have one target)."""
    path = cell / "history.csv"
    if not path.exists():
        return []
    return [int(line.split(",", 1)[0]) for line in path.read_text().splitlines()[1:] if line]


def logged_epochs(cell: Path) -> list[int]:
    """The epoch numbers of every `epoch i/N` line in a cell's log, across all its launches."""
    return [int(m) for m in re.findall(r" - epoch (\d+)/\d+ \|", (cell / "run.log").read_text())]


def resumed_at(cell: Path) -> list[int]:
    """The epochs a cell's log says it resumed from its checkpoint at."""
    return [int(m) for m in re.findall(r"resumed from .*checkpoint\.pt at epoch (\d+)", (cell / "run.log").read_text())]


def summary_line(output: str) -> str:
    """The counts line SweepSummary prints at the end of a launch."""
    lines = [line for line in output.splitlines() if re.match(r"^sweep .*: \d+ cells, ", line)]
    assert lines, f"no sweep summary in the output:\n{output[-3000:]}"
    return lines[-1]


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    """Poll `condition` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="session")
def slurm() -> Callable[..., subprocess.CompletedProcess[str]]:
    """A SLURM cluster this process can submit to; returns a runner of SLURM commands.

    Start one with `tests/slurm/start_slurm.sh --install` and `source /tmp/spacing-slurm/env.sh`
    (`.ci/run` does both). Without one the SLURM tests skip, except in CI (CI=true), where they fail.
    """
    reason = None
    if shutil.which("sbatch") is None:
        reason = "sbatch is not on PATH"
    elif not os.environ.get("SLURM_CONF"):
        reason = "SLURM_CONF is not set"
    else:
        ping = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
        if ping.returncode != 0 or not ping.stdout.strip():
            reason = f"sinfo does not answer ({ping.stderr.strip() or 'no nodes'})"
    if reason is not None:
        message = (
            f"no SLURM cluster: {reason}; start one with tests/slurm/start_slurm.sh --install "
            "and source /tmp/spacing-slurm/env.sh"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI must run the SLURM tests)")
        pytest.skip(message)

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=True)

    return command


SLURM_CPU = (
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=15",
)
"""The slurm launcher shrunk to the test cluster: CPU-only tasks of one core."""


def cell_dir(sweep_dir: Path, *overrides: str) -> Path:
    """Where a sweep puts the cell of `overrides` (its dir is named from its resolved config)."""
    return sweep_dir / cell_dir_name(to_dict(compose_config(list(overrides))))
