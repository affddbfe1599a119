"""``spacing submit ARGS``: submit a grid as one SLURM job array, print its job id and sweep dir, return.

The array's tasks are exactly those of ``python run.py -m ARGS hydra/launcher=slurm``: the same
launcher object submits them (``CellsPerTaskSlurmLauncher.submit``: one task per
``hydra.launcher.cells_per_task`` jobs, a job being a cell or a fused group of cells, see
``hydra.sweeper.fuse``) and runs each job with the same callbacks, so cells are marked, resumed
and skipped as in a blocking launch. Only the wait is left out: the submitting process exits at
once, and ``spacing status SWEEP_DIR`` reports on the array from any shell,
any time later, and analyses the sweep once every cell has finished.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydra._internal.callbacks import Callbacks
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, RunMode
from omegaconf import OmegaConf

from spacing.cli import COMPOSE_ERRORS, check_launcher, probe_writable, train
from spacing.compose import compose_master, explain, hydra_session, is_grid, shown
from spacing.contract import COMPLETED
from spacing.errors import UserError
from spacing.permissions import guard_outputs
from spacing.plan import counted, make_plan
from spacing.sweep_callback import SweepCallback
from spacing.sweep_state import write_launch
from spacing.task_cells import SLURM_LAUNCHER


def submit(args: argparse.Namespace) -> int:
    """Check the grid, submit it as one array, record the array in the sweep dir, print where to look."""
    with hydra_session(args) as session:
        try:
            master = compose_master(session, args, RunMode.MULTIRUN)
        except COMPOSE_ERRORS as exc:
            raise UserError(explain(exc)) from None
        if not is_grid(master):
            raise UserError("spacing submit submits a fixed grid, and this sweeper chooses its cells while it runs; "
                            "launch it with python run.py -m instead.")
        if str(OmegaConf.select(master, "hydra.launcher._target_")) != SLURM_LAUNCHER:
            raise UserError("spacing submit needs the SLURM launcher: add hydra/launcher=slurm (or a cluster=NAME profile).")
        sweep_dir = Path(str(master.hydra.sweep.dir))
        finished = make_plan(session, master)
        if finished.cells and not finished.invalid and all(cell.state == COMPLETED for cell in finished.cells):
            print(f"nothing to do: every cell of sweep {shown(sweep_dir)} is completed ({counted(len(finished.cells), 'cell')}); "
                  f"nothing was submitted. Its analysis: python -m analysis {shown(sweep_dir)}")
            return 0
        check_launcher(master)  # after: a finished grid needs no cluster
        guard_outputs(master, multirun=True)
        probe_writable(sweep_dir, "hydra.sweep.dir")
        callbacks = Callbacks(master)
        callbacks.on_multirun_start(config=master, config_name=master.hydra.job.config_name)
        sweep = next((c for c in callbacks.callbacks if isinstance(c, SweepCallback)), None)
        if sweep is None or sweep.plan is None:
            raise UserError("spacing submit needs hydra.callbacks.sweep (spacing.sweep_callback.SweepCallback) in the config.")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(master, sweep_dir / "multirun.yaml")
        context = HydraContext(config_loader=session.config_loader, callbacks=callbacks)
        launcher = Plugins.instance().instantiate_launcher(config=master, hydra_context=context, task_function=train)
        plan = sweep.plan
        jobs = launcher.submit([job.overrides for job in plan.jobs])
        tasks = [str(job.job_id) for job in jobs]
        task_of_job = [tasks[index // launcher.cells_per_task] for index in range(len(plan.jobs))]
        write_launch(sweep_dir, str(sweep.launch), [cell.dir for cell in plan.cells], sys.argv, slurm_jobs=plan.task_of_cells(task_of_job))
    job = tasks[0].split("_")[0]
    # submitit submits a single job as a plain job, not an array
    what = f"array job {job} ({len(tasks)} tasks" if len(tasks) > 1 else f"job {job} (1 task"
    if len(plan.cells) != len(tasks):
        what += f" for {len(plan.cells)} cells" + (f": {counted(len(plan.fused), 'fused group')}" if plan.fused else "")
    what += ")"
    print(f"submitted SLURM {what} for sweep {shown(sweep_dir)}")
    print(f"follow it from any shell with: spacing status {shown(sweep_dir)}  (live: add --watch)")
    return 0
