"""Weights & Biases: offline by default, into ``<run dir>/wandb/offline-run-*``.

Offline runs never touch the network (W&B's error reporting is switched off too, unless
``WANDB_ERROR_REPORTING`` is set); ``wandb sync <run dir>/wandb/offline-run-*`` uploads them
later. ``logger.wandb.mode=online`` streams to the server instead. Runs of one sweep share a
W&B group; epoch metrics are plotted against ``epoch``, step metrics against the global step.
A run resumed from its checkpoint continues the same W&B run (its id is kept in the run dir).
"""

from __future__ import annotations

import os
from typing import Any

from spacing.config import WandbConfig
from spacing.loggers.base import COMPLETED, Logger, RunInfo, missing_package

MAX_TAG_LENGTH = 64
"""W&B rejects longer tags."""


class WandbLogger(Logger):
    name = "wandb"

    def __init__(self, cfg: WandbConfig) -> None:
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
        try:
            import wandb
        except ImportError:
            raise missing_package(self.name, "wandb") from None
        self.wandb = wandb
        self.cfg = cfg
        self.run: Any = None
        self.info: RunInfo | None = None
        self.epoch_keys: set[str] = set()

    def start(self, info: RunInfo, resume_id: str | None) -> str:
        """A resumed run keeps its W&B id: online, W&B continues the run; offline, the new
        ``offline-run-*-<id>`` folder syncs into the same run."""
        self.info = info
        self.run = self.wandb.init(
            id=resume_id,
            resume="allow" if resume_id else None,
            project=self.cfg.project,
            entity=self.cfg.entity,
            mode=self.cfg.mode,
            dir=str(info.out_dir),
            name=info.name,
            group=info.group,
            tags=[f"{key}={value}"[:MAX_TAG_LENGTH] for key, value in info.tags.items()],
            config=info.config,
            reinit="create_new",
            settings=self.wandb.Settings(console="off"),
        )
        self.run.define_metric("epoch")
        self.run.summary["output_dir"] = str(info.out_dir)
        return str(self.run.id)

    def log_step(self, step: int, values: dict[str, float]) -> None:
        if step >= self.run.step:  # a resumed online run already holds the steps before its current one
            self.run.log(values, step=step)

    def log_epoch(self, epoch: int, step: int, values: dict[str, float]) -> None:
        if step < self.run.step:
            return
        for key in sorted(values.keys() - self.epoch_keys):
            self.run.define_metric(key, step_metric="epoch")
        self.epoch_keys |= values.keys()
        self.run.log({**values, "epoch": epoch}, step=step)

    def finish(self, status: str, error: str | None, values: dict[str, float]) -> None:
        if self.run is None or self.info is None:
            return
        run, self.run = self.run, None
        try:
            run.summary.update({**values, "status": status, **({"error": error} if error else {})})
            output = self.wandb.Artifact(f"output-{run.id}", type="run-output", description="the run's output dir")
            output.add_reference(self.info.out_dir.as_uri(), checksum=False)
            run.log_artifact(output)
        finally:
            run.finish(exit_code=0 if status == COMPLETED else 1)
