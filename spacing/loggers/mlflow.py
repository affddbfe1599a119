"""MLflow: by default a local SQLite store shared by a sweep, no server and no network.

Without ``logger.mlflow.tracking_uri`` the store is ``<sweep dir>/mlflow.db`` with artifacts in
``<sweep dir>/mlartifacts`` (``<run dir>/...`` for a single run); one experiment per sweep, named
after it (``spacing`` for a single run). MLflow 3 keeps its file store in maintenance mode and
refuses it by default, so the local store is SQLite; its creation is serialised with a file
lock because a sweep's cells may start at the same moment. MLflow's usage telemetry is off
unless ``MLFLOW_DISABLE_TELEMETRY`` is set. A run resumed from its checkpoint continues the same
MLflow run (its id is kept in the run dir).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spacing.config import MlflowConfig
from spacing.config import flatten
from spacing.loggers.base import Logger, RunInfo, missing_package
from spacing.contract import COMPLETED, DIVERGED, FAILED, HISTORY_FILE, RESULT_FILE, RUNNING

STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
LOCK_FILE = "mlflow.lock"
DEFAULT_EXPERIMENT = "spacing"
MAX_PARAMS_PER_CALL = 100
"""MLflow's limit on params in one log_batch."""
STEP_KEY = "step/lr"
EPOCH_KEY = "lr"
"""Metrics sent at every logged step and every epoch (spacing.loggers.base): what a store holds is read from them."""
RUN_STATUS = {COMPLETED: "FINISHED", FAILED: "FAILED", DIVERGED: "FAILED", RUNNING: "KILLED"}
"""Run record status -> MLflow run status (``running`` at the end means the run was interrupted)."""


class MlflowLogger(Logger):
    name = "mlflow"

    def __init__(self, cfg: MlflowConfig) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        try:
            from mlflow.entities import Metric, Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise missing_package(self.name, "mlflow") from None
        self._client_class = MlflowClient
        self._metric = Metric
        self._param = Param
        self.cfg = cfg
        self.client: Any = None
        self.run_id: str | None = None
        self.info: RunInfo | None = None
        self.pending: Any = None
        """The last metric batch, logged in the background while training goes on."""
        self.held_step = 0
        self.held_epoch = 0
        """What a resumed run's store already holds: its last global step and epoch (sent again, they are skipped)."""

    def start(self, info: RunInfo, resume_id: str | None) -> str:
        """A resumed run continues its MLflow run when the store still holds it (status RUNNING again)."""
        self.info = info
        experiment = info.group or DEFAULT_EXPERIMENT
        if self.cfg.tracking_uri:
            self.client = self._client_class(self.cfg.tracking_uri)
            experiment_id = self._experiment_id(experiment, artifact_location=None)
        else:
            info.store_dir.mkdir(parents=True, exist_ok=True)
            with _exclusive(info.store_dir / LOCK_FILE):
                self.client = self._client_class(f"sqlite:///{info.store_dir / STORE_FILE}")
                experiment_id = self._experiment_id(experiment, (info.store_dir / ARTIFACTS_DIR).as_uri())
        if resume_id is not None and self._exists(resume_id):
            self.run_id = resume_id
            self.client.update_run(resume_id, status="RUNNING")
            self.held_step = self._last_step(resume_id, STEP_KEY)
            self.held_epoch = self._last_step(resume_id, EPOCH_KEY)
            return resume_id
        run = self.client.create_run(experiment_id, run_name=info.name, tags={**info.tags, "output_dir": str(info.out_dir)})
        self.run_id = run.info.run_id
        params = [self._param(key, str(value)) for key, value in flatten(info.config).items()]
        for first in range(0, len(params), MAX_PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=params[first : first + MAX_PARAMS_PER_CALL])
        return self.run_id

    def _last_step(self, run_id: str, key: str) -> int:
        """The highest step at which the store holds `key` for the run (0 when none)."""
        return max((int(m.step) for m in self.client.get_metric_history(run_id, key)), default=0)

    def _exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
        except MlflowException:
            return False
        return True

    def _experiment_id(self, name: str, artifact_location: str | None) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        return str(self.client.create_experiment(name, artifact_location=artifact_location))

    def _log(self, step: int, values: dict[str, float], synchronous: bool = False) -> None:
        """Log a metric batch; keeps one batch in flight, so a store write never holds up training."""
        self._wait()
        now = int(time.time() * 1000)
        metrics = [self._metric(key, value, now, step) for key, value in values.items()]
        self.pending = self.client.log_batch(self.run_id, metrics=metrics, synchronous=synchronous)

    def _wait(self) -> None:
        """Wait for the batch in flight (raising its error, if it failed)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.wait()

    def log_step(self, step: int, values: dict[str, float]) -> None:
        if step > self.held_step:
            self._log(step, values)

    def log_epoch(self, epoch: int, step: int, values: dict[str, float]) -> None:
        if epoch > self.held_epoch:
            self._log(epoch, values)

    def finish(self, status: str, error: str | None, values: dict[str, float]) -> None:
        if self.run_id is None or self.info is None:
            return
        run_id = self.run_id
        try:
            self._log(int(values.get("final/epochs_completed", 0)), values, synchronous=True)
            self.client.set_tag(run_id, "status", status)
            if error:
                self.client.set_tag(run_id, "error", error)
            for name in (RESULT_FILE, HISTORY_FILE):
                if (self.info.out_dir / name).exists():
                    self.client.log_artifact(run_id, str(self.info.out_dir / name))
        finally:
            self.run_id = None
            self.client.set_terminated(run_id, RUN_STATUS.get(status, "FAILED"))


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the duration of the block."""
    import fcntl  # POSIX only: imported here so the core still imports on other systems

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
