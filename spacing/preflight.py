"""What a command's config is checked for before anything is written: bad input creates no file.

Hydra creates a run's dir, its ``.hydra/`` and ``run.log`` before the task function starts, and a
launcher its sweep dir before the first job; a value the run would refuse a second later must be
refused before that. The values themselves are the schema's (:func:`spacing.config.to_config`: a
single run's here, each cell's in :mod:`spacing.plan`); what is checked here is what the schema
cannot see: the machine (a GPU, a tracker's package, the data folder) and the sweeper's and
launcher's own options, which have no schema. Nothing here imports torch unless a GPU is asked for.
"""

from __future__ import annotations

import importlib.util

from omegaconf import DictConfig, OmegaConf

from spacing.config import DatasetConfig
from spacing.errors import ConfigError
from spacing.loggers.base import missing_package

TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
"""Each tracker (``logger=NAME``) and the package it imports."""
SWEEPER_SWITCHES = ("controls", "fuse")
"""The grid sweeper's options that are true or false (spacing.sweeper.GridSweeperConf)."""


def check_machine(config: DictConfig, runs_here: bool) -> None:
    """Raise UserError for what this machine cannot give the run(s) of `config`: a data folder that is a file,
    a tracker's package, a GPU.

    `runs_here`: the runs train on this machine (a single run, or a local launcher); a GPU is
    then checked for. A SLURM array's cells run on compute nodes, which this one cannot see.
    """
    root = OmegaConf.select(config, "dataset.root")
    if root is not None:
        from spacing.data.files import dataset_root  # torch: only when a data folder is named

        dataset_root(DatasetConfig(name=str(OmegaConf.select(config, "dataset.name")), root=str(root)))
    for tracker, package in TRACKER_PACKAGES.items():
        if OmegaConf.select(config, f"logger.{tracker}.enabled") and importlib.util.find_spec(package) is None:
            raise missing_package(tracker, package)
    device = str(OmegaConf.select(config, "trainer.device") or "auto")
    if runs_here and device.startswith("cuda"):
        from spacing.device import check_device  # torch: only when a GPU is asked for

        check_device(device)


def check_sweep_options(master: DictConfig) -> None:
    """Raise ConfigError for a sweeper or launcher option the run would otherwise take wrongly or crash on."""
    for switch in SWEEPER_SWITCHES:
        value = OmegaConf.select(master, f"hydra.sweeper.{switch}")
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"hydra.sweeper.{switch} is true or false; got {value!r}.")
    n_jobs = OmegaConf.select(master, "hydra.launcher.n_jobs")
    if n_jobs is not None and (not isinstance(n_jobs, int) or n_jobs == 0):
        raise ConfigError(
            f"hydra.launcher.n_jobs is the number of cells run at once (> 0; -1 = one per CPU, as joblib counts); got {n_jobs!r}."
        )
