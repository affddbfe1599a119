"""The config schemas of spacing's slurm and local launchers: the upstream launchers' schemas plus ``cells_per_task``.

Registered in Hydra's ConfigStore by the launchers' plugin module
(spacing/hydra_plugin/hydra_plugins/spacing_launchers.py) and selected by
conf/hydra/launcher/{slurm,local}.yaml. They live here, in an ordinary module, because a sweep's
config, which every SLURM task unpickles, names its launcher node's schema class: a fresh task
process can import ``spacing``, not the ``hydra_plugins`` portion that holds the launchers.
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

from spacing.task_cells import SLURM_LAUNCHER


@dataclass
class CellsPerTaskJoblibConf(JobLibLauncherConf):
    """hydra/launcher=local: hydra-joblib-launcher's settings, and how many cells each worker task runs at once."""

    _target_: str = "hydra_plugins.spacing_launchers.CellsPerTaskJoblibLauncher"
    cells_per_task: int = 1


@dataclass
class CellsPerTaskSlurmConf(SlurmQueueConf):
    """hydra/launcher=slurm: hydra-submitit-launcher's settings, and how many cells each array task runs at once."""

    _target_: str = SLURM_LAUNCHER
    cells_per_task: int = 1
