"""``spacing submit`` on a grid whose every cell is completed submits nothing and says so."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.helpers import CELL_TINY, SLURM_CPU, cli_env, launch


def test_submit_on_a_finished_grid_submits_nothing(tmp_path: Path) -> None:
    grid = ("method=baseline", *CELL_TINY, "trainer.epochs=1", "seed=0,1", "hydra.sweep.dir=multirun/done")
    assert launch(*grid, cwd=tmp_path).returncode == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"  # an sbatch that leaves a mark if anything calls it
    sbatch.write_text(f"#!/bin/sh\ntouch {tmp_path / 'sbatch-called'}\nexit 1\n")
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    scontrol = bin_dir / "scontrol"  # a controller that answers, were it asked (a finished grid needs none)
    scontrol.write_text("#!/bin/sh\necho 'Slurmctld(primary) at node is UP'\n")
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    env = cli_env()
    env["PATH"] = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env.get("PATH", "")])
    done = subprocess.run([sys.executable, "-m", "spacing", "submit", *grid, *SLURM_CPU], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "nothing to do: every cell of sweep multirun/done is completed (2 cells); nothing was submitted. "
        "Its analysis: python -m analysis multirun/done"
    )
    assert not (tmp_path / "sbatch-called").exists()
    assert not (tmp_path / "multirun" / "done" / ".submitit").exists()
