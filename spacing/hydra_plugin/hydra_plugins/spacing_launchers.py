"""spacing's slurm and local launchers: Hydra's submitit and joblib launchers, plus ``cells_per_task``.

``hydra.launcher.cells_per_task=k`` runs k cells at once in each task (spacing.task_cells says
how, and what the cells share); 1, the default, launches exactly as the upstream launcher does.
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
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_joblib_launcher._core import execute_job, process_joblib_cfg
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig, OmegaConf

from spacing.launcher_schemas import CellsPerTaskJoblibConf, CellsPerTaskSlurmConf
from spacing.task_cells import SlurmTask, check_cells_per_task, run_local_task, tasks_of

log = logging.getLogger(__name__)

ConfigStore.instance().store(group="hydra/launcher", name="joblib_cells", node=CellsPerTaskJoblibConf, provider="spacing")
ConfigStore.instance().store(group="hydra/launcher", name="submitit_slurm_cells", node=CellsPerTaskSlurmConf, provider="spacing")


class CellsPerTaskJoblibLauncher(JoblibLauncher):
    """hydra-joblib-launcher's launcher; with ``cells_per_task`` > 1 each worker task runs that many cells at once."""

    def __init__(self, cells_per_task: int = 1, **joblib: Any) -> None:
        super().__init__(**joblib)
        self.cells_per_task = check_cells_per_task(cells_per_task)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        if self.cells_per_task == 1:
            return super().launch(job_overrides, initial_job_idx)
        from joblib import Parallel, delayed, effective_n_jobs

        from spacing.cli import lost_cell  # here, not above: Hydra's plugin scan imports this module in every app

        assert self.config is not None and self.task_function is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)

        settings = {**self.joblib, "backend": "loky"}  # as upstream: Hydra needs processes, not threads
        process_joblib_cfg(settings)
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
        runs = Parallel(**settings)(
            delayed(run_local_task)(os.getpid(), [cell for _, cell in task], [name for name, _ in task], self.cells_per_task,
                                    self.task_function, lost_cell)
            for task in tasks
        )
        return [run for task in runs for run in task]


class CellsPerTaskSlurmLauncher(Launcher):
    """hydra-submitit-launcher's SLURM launcher; with ``cells_per_task`` > 1 each array task runs that many cells at once.

    Wraps the upstream :class:`SlurmLauncher` (what the cluster unpickles, see the module's
    docstring) instead of extending it; ``cells_per_task=1`` is the upstream launcher's ``launch``.
    """

    def __init__(self, cells_per_task: int = 1, **params: Any) -> None:
        self.cells_per_task = check_cells_per_task(cells_per_task)
        self.slurm = SlurmLauncher(**params)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.slurm.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        if self.cells_per_task == 1:
            return self.slurm.launch(job_overrides, initial_job_idx)
        assert self.slurm.config is not None
        log.info("Submitit 'slurm' sweep output dir : %s", self.slurm.config.hydra.sweep.dir)
        for index, overrides in enumerate(job_overrides):
            log.info("\t#%d : %s", initial_job_idx + index, " ".join(filter_overrides(overrides)))
        tasks = -(-len(job_overrides) // self.cells_per_task)
        log.info("submitting %d cells, %d per task, as a job array of %d tasks: each task process starts a process per "
                 "cell; %d processes in total", len(job_overrides), self.cells_per_task, tasks, tasks + len(job_overrides))
        jobs = self.submit(job_overrides, initial_job_idx)
        return [run for job in jobs for run in job.results()[0]]

    def submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int = 0) -> list[Any]:
        """Submit the cells as one job array (one task per ``cells_per_task`` cells) and return its submitit jobs, one per task."""
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
        state = Singleton.get_state()
        cells = [
            (list(overrides), "hydra.sweep.dir", initial_job_idx + index, f"job_id_for_{initial_job_idx + index}", state)
            for index, overrides in enumerate(job_overrides)
        ]
        if self.cells_per_task == 1:
            return list(executor.map_array(self.slurm, *zip(*cells, strict=True)))
        from spacing.cli import lost_cell  # as in the local launcher's launch

        task = SlurmTask(self.slurm, self.cells_per_task, lost_cell)
        return list(executor.map_array(task, tasks_of(cells, self.cells_per_task)))
