"""spacing's slurm and local launchers: Hydra's submitit and joblib launchers, plus ``cells_per_task``.

``hydra.launcher.cells_per_task=k`` runs k cells at once in each task (spacing.task_cells says
how, and what the cells share); 1, the default, launches one cell per task as the upstream
launcher does (the local one with each cell in a process of its own, see
:class:`CellsPerTaskJoblibLauncher`).
conf/hydra/launcher/{slurm,local}.yaml select these classes. They live here, in spacing's portion of
Hydra's ``hydra_plugins`` namespace package (installed by ``pip install``, see spacing_sweeper.py),
because Hydra instantiates launchers only from that namespace. Their config schemas
(spacing.launcher_schemas) are registered here: Hydra's plugin scan runs this module before it
composes ``hydra/launcher``, as it does the upstream launchers' modules that register theirs.

A SLURM task unpickles what it runs in a fresh process, which may run from a checkout that is not
installed on the node (its ``setup`` lines put the checkout on the path): the objects sent to the
cluster are therefore upstream classes (:class:`SlurmLauncher`) and
:class:`spacing.task_cells.SlurmTask`, never the classes defined here.
"""

import logging
import os
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_joblib_launcher._core import execute_job, process_joblib_cfg
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig, OmegaConf, open_dict

from spacing.launcher_schemas import CellsPerTaskJoblibConf, CellsPerTaskSlurmConf
from spacing.task_cells import SlurmTask, check_cells_per_task, end_orphans, run_local_task, tasks_of

log = logging.getLogger(__name__)

ConfigStore.instance().store(group="hydra/launcher", name="joblib_cells", node=CellsPerTaskJoblibConf, provider="spacing")
ConfigStore.instance().store(group="hydra/launcher", name="submitit_slurm_cells", node=CellsPerTaskSlurmConf, provider="spacing")


class CellsPerTaskJoblibLauncher(JoblibLauncher):
    """hydra-joblib-launcher's launcher, each cell in a process of its own; with ``cells_per_task`` > 1 each worker
    task runs that many cells at once.

    With one worker and one cell per task, the upstream launcher runs the cells one after another in
    this process. Otherwise each worker starts a process per cell (:func:`spacing.task_cells.run_local_task`),
    so a cell whose process dies is a lost cell and the others go on; a worker that dies breaks
    joblib's whole pool, so the tasks that had not returned run once more (:data:`WORKER_DEATHS_RETRIED`),
    their cells resuming from their checkpoints.
    """

    def __init__(self, cells_per_task: int = 1, **joblib: Any) -> None:
        super().__init__(**joblib)
        self.cells_per_task = check_cells_per_task(cells_per_task)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from joblib import effective_n_jobs

        settings = {**self.joblib, "backend": "loky"}  # as upstream: Hydra needs processes, not threads
        process_joblib_cfg(settings)
        if self.cells_per_task == 1 and effective_n_jobs(settings["n_jobs"]) == 1:
            return super().launch(job_overrides, initial_job_idx)
        from spacing.cli import lost_cell  # here, not above: Hydra's plugin scan imports this module in every app

        assert self.config is not None and self.task_function is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)

        state = Singleton.get_state()
        cells = [
            (" ".join(filter_overrides(overrides)),
             partial(execute_job, initial_job_idx + i, overrides, self.hydra_context, self.config, singleton_state=state))
            for i, overrides in enumerate(job_overrides)
        ]
        tasks = tasks_of(cells, self.cells_per_task)
        workers = min(effective_n_jobs(settings["n_jobs"]), len(tasks))
        log.info("Joblib.Parallel(%s) is launching %d cells, %d per task, in %d tasks: %d worker processes start a "
                 "process per cell, at most %d cells at once; %d processes in total",
                 ",".join(f"{k}={v}" for k, v in settings.items()), len(cells), self.cells_per_task, len(tasks),
                 workers, min(workers * self.cells_per_task, len(cells)), workers + len(cells))
        for index, (name, _) in enumerate(cells):
            log.info("\t#%d : %s", initial_job_idx + index, name)
        runs = run_tasks(settings, [[cell for _, cell in task] for task in tasks], [[name for name, _ in task] for task in tasks],
                         self.cells_per_task, self.task_function, lost_cell)
        return [run for task in runs for run in task]


WORKER_DEATHS_RETRIED = 1
"""How often the tasks of a local launch run again after a worker process died: once, so a stray kill (or an
out-of-memory kill of a worker) does not cost the launch; a worker that dies again loses its task's cells."""


def run_tasks(settings: dict[str, Any], tasks: list[list[Any]], names: list[list[str]], cells_per_task: int,
              task_function: TaskFunction, lost_task: Any) -> list[list[JobReturn]]:
    """Each task on joblib's workers (:func:`spacing.task_cells.run_local_task`), its cells' returns in task order.

    A worker that dies (killed, out of memory) makes joblib stop the pool: its other workers end, and
    their cells with them. The tasks that had not returned then run again in a new pool, each cell
    resuming from its checkpoint (a completed one is skipped); after :data:`WORKER_DEATHS_RETRIED`
    such runs, the cells of the tasks still without a return are lost cells, recorded in this process.
    """
    from joblib import Parallel, delayed
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    returned: dict[int, list[JobReturn]] = {}
    with tempfile.TemporaryDirectory(prefix="spacing-cell-pids-") as folder:
        pid_dir = Path(folder)
        for attempt in range(WORKER_DEATHS_RETRIED + 1):
            pending = [index for index in range(len(tasks)) if index not in returned]
            try:
                for index, runs in Parallel(**settings, return_as="generator_unordered")(
                    delayed(_numbered)(index, run_local_task, os.getpid(), tasks[index], names[index], cells_per_task,
                                       task_function, lost_task, pid_dir)
                    for index in pending
                ):
                    returned[index] = runs
                break
            except TerminatedWorkerError as exc:
                end_orphans(pid_dir)  # the dead pool's cells, which hold their claims until they end
                _after_worker_death(exc, attempt, tasks, returned, lost_task)
    return [returned[index] for index in range(len(tasks))]


def _after_worker_death(exc: BaseException, attempt: int, tasks: list[list[Any]], returned: dict[int, list[JobReturn]],
                        lost_task: Any) -> None:
    """Say that a worker died; on the last attempt, record the cells of the tasks without a return as lost."""
    left = len(tasks) - len(returned)
    if attempt < WORKER_DEATHS_RETRIED:
        log.warning("a worker process died (%s); the %d tasks that had not finished run again, each cell resuming "
                    "from its checkpoint", _first_line(exc), left)
        return
    log.error("a worker process died again (%s); the cells of the %d tasks that had not finished are lost",
              _first_line(exc), left)
    message = f"its worker process died ({_first_line(exc)})"
    for index in range(len(tasks)):
        if index not in returned:
            returned[index] = [cell(partial(lost_task, message)) for cell in tasks[index]]


def _numbered(index: int, function: Any, *args: Any) -> tuple[int, Any]:
    """`function(*args)` with the index of its task, so results that arrive in any order find their task."""
    return index, function(*args)


def _first_line(exc: BaseException) -> str:
    """The first sentence of `exc`'s message (joblib's goes on to guess causes), or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0].split(". ")[0].rstrip(".") if text else type(exc).__name__


class CellsPerTaskSlurmLauncher(Launcher):
    """hydra-submitit-launcher's SLURM launcher; with ``cells_per_task`` > 1 each array task runs that many cells at once.

    Wraps the upstream :class:`SlurmLauncher` (what the cluster unpickles, see the module's
    docstring) instead of extending it, and submits as its ``launch`` does. A task that ends without
    a result (cancelled, killed, its node lost) does not end the launch: its cells are lost cells,
    recorded here, and the launch waits for the others (the summary names them, exit code 4).
    """

    def __init__(self, cells_per_task: int = 1, **params: Any) -> None:
        self.cells_per_task = check_cells_per_task(cells_per_task)
        self.slurm = SlurmLauncher(**params)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.slurm.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.core.utils import FailedJobError, UncompletedJobError

        assert self.slurm.config is not None
        log.info("Submitit 'slurm' sweep output dir : %s", self.slurm.config.hydra.sweep.dir)
        for index, overrides in enumerate(job_overrides):
            log.info("\t#%d : %s", initial_job_idx + index, " ".join(filter_overrides(overrides)))
        if self.cells_per_task > 1:
            tasks = -(-len(job_overrides) // self.cells_per_task)
            log.info("submitting %d cells, %d per task, as a job array of %d tasks: each task process starts a process "
                     "per cell; %d processes in total", len(job_overrides), self.cells_per_task, tasks,
                     tasks + len(job_overrides))
        cells = self.cells(job_overrides, initial_job_idx)
        returns: list[JobReturn] = []
        for job, task in zip(self.submit_cells(cells), tasks_of(cells, self.cells_per_task), strict=True):
            try:
                result = job.results()[0]
            except (UncompletedJobError, FailedJobError) as exc:
                message = f"its SLURM task {job.job_id} ended without a result ({_first_line(exc)})"
                log.error("lost: %s", message)
                returns += [self.lost(cell, message) for cell in task]
                continue
            returns += result if self.cells_per_task > 1 else [result]
        return returns

    def submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int = 0) -> list[Any]:
        """Submit the cells as one job array (one task per ``cells_per_task`` cells) and return its submitit jobs, one per task."""
        return self.submit_cells(self.cells(job_overrides, initial_job_idx))

    def cells(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[tuple[Any, ...]]:
        """Each cell as the upstream launcher's call takes it: its overrides, dir key, number, id and Hydra's state."""
        state = Singleton.get_state()
        return [
            (list(overrides), "hydra.sweep.dir", initial_job_idx + index, f"job_id_for_{initial_job_idx + index}", state)
            for index, overrides in enumerate(job_overrides)
        ]

    def submit_cells(self, cells: list[tuple[Any, ...]]) -> list[Any]:
        """Submit `cells` (:meth:`cells`) as one job array and return its submitit jobs, one per task."""
        import submitit

        assert self.slurm.config is not None
        params = dict(self.slurm.params)
        executor = submitit.AutoExecutor(
            cluster="slurm", folder=params.pop("submitit_folder"), slurm_max_num_timeout=params.pop("max_num_timeout")
        )
        common = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{key if key in common else f"slurm_{key}": value for key, value in params.items()})
        sweep_dir = Path(str(self.slurm.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.slurm.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.slurm.config.hydra.sweep.mode), 8))
        if self.cells_per_task == 1:
            return list(executor.map_array(self.slurm, *zip(*cells, strict=True)))
        from spacing.cli import lost_cell  # as in the local launcher's launch

        task = SlurmTask(self.slurm, self.cells_per_task, lost_cell)
        return list(executor.map_array(task, tasks_of(cells, self.cells_per_task)))

    def lost(self, cell: tuple[Any, ...], message: str) -> JobReturn:
        """Record `cell`, whose task ended without a result, as a lost cell: its job run here, with the lost task
        function (the upstream call, less what only a SLURM job has: its job id)."""
        from spacing.cli import lost_cell

        overrides, job_dir_key, job_num, job_id, _ = cell
        assert self.slurm.hydra_context is not None and self.slurm.config is not None
        sweep_config = self.slurm.hydra_context.config_loader.load_sweep_config(self.slurm.config, list(overrides))
        with open_dict(sweep_config.hydra.job) as job:
            job.id = job_id
            job.num = job_num
        return run_job(hydra_context=self.slurm.hydra_context, task_function=partial(lost_cell, message),
                       config=sweep_config, job_dir_key=job_dir_key, job_subdir_key="hydra.sweep.subdir")
