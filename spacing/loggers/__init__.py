"""Experiment trackers (TensorBoard, Weights & Biases, MLflow) as optional run loggers.

``logger.<tracker>.enabled`` selects a tracker (the ``conf/logger/*`` options set it, e.g.
``logger=[tensorboard,wandb]``); :func:`build_loggers` turns the selection into one
:class:`LoggerList` the runner calls. The tracker packages are optional extras, imported only
when their tracker is selected.
"""

from __future__ import annotations

from spacing.config import LoggerConfig
from spacing.loggers.base import Logger, RunInfo
from spacing.loggers.logger_list import LoggerList
from spacing.loggers.mlflow import MlflowLogger
from spacing.loggers.tensorboard import TensorBoardLogger
from spacing.loggers.wandb import WandbLogger

TRACKERS: dict[str, type[Logger]] = {
    "tensorboard": TensorBoardLogger,
    "wandb": WandbLogger,
    "mlflow": MlflowLogger,
}
"""Tracker name (= its field in LoggerConfig) -> its Logger class."""

__all__ = ["TRACKERS", "Logger", "LoggerList", "RunInfo", "build_loggers"]


def build_loggers(cfg: LoggerConfig) -> LoggerList:
    """The enabled trackers; raises ConfigError naming the extra to install when a package is missing."""
    return LoggerList([tracker(getattr(cfg, name)) for name, tracker in TRACKERS.items() if getattr(cfg, name).enabled], cfg.group)
