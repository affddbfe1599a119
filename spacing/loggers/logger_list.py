"""Fan-out to the selected trackers that never lets a tracker stop training, and continues them on resume.

A tracker can fail at any time (disk full, server down, a bug in its client). The run record
(result.json, history.csv) is what analysis reads, so a failing tracker costs only its own
copy: the error is logged as a warning, the tracker gets nothing more but a last ``finish``
(to close what it opened), and training goes on.

A run that resumes from its checkpoint (pre-empted, requeued, killed) is one run in each tracker:
``trackers.json`` in the run dir keeps each tracker's run id, the resumed process reopens those
runs and sends them the epochs it restored from the checkpoint again, and each tracker keeps
what it already holds: MLflow reads its store, W&B never goes back to a step it has, TensorBoard
replaces the points of a restarted step range. What a tracker had not yet saved when its process
was killed (W&B offline keeps a run's data in memory until the run ends) is so sent again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

from spacing.loggers.base import Logger, RunInfo, epoch_metrics, final_metrics, step_metrics

log = logging.getLogger(__name__)

TRACKERS_FILE = "trackers.json"


def read_run_ids(out_dir: Path) -> dict[str, str]:
    """Tracker name -> the id of its run for this run dir (empty when there is none)."""
    try:
        return {str(k): str(v) for k, v in json.loads((out_dir / TRACKERS_FILE).read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def write_run_ids(out_dir: Path, run_ids: dict[str, str]) -> None:
    tmp = out_dir / f".{TRACKERS_FILE}.tmp"
    tmp.write_text(json.dumps(run_ids, indent=2) + "\n")
    os.replace(tmp, out_dir / TRACKERS_FILE)


class LoggerList:
    """The trackers of one run; an empty list (``logger=none``) makes every call a no-op."""

    def __init__(self, trackers: Sequence[Logger] = (), group: str | None = None) -> None:
        self.trackers = list(trackers)
        self.group = group
        self.started: list[Logger] = []
        """Trackers whose start was attempted: each gets one finish."""
        self.live: list[Logger] = []
        """Started trackers that have not failed: they get every call."""

    def start(
        self,
        record: dict[str, Any],
        out_dir: Path,
        sweep_dir: Path | None,
        history: list[dict[str, Any]] | None = None,
        steps_per_epoch: int = 0,
    ) -> None:
        """Open a tracker run for the run record `record` (its identity fields and config).

        `history`: the history.csv rows a run resuming from its checkpoint restored (none for a
        fresh start). The tracker runs this dir opened before are then continued, and sent those
        epochs again (epoch e ended at global step e * `steps_per_epoch`).
        """
        if not self.trackers:
            return
        run_ids = read_run_ids(out_dir) if history else {}
        info = RunInfo.of(record, out_dir, sweep_dir, self.group)
        for tracker in self.trackers:
            self.started.append(tracker)
            ok, run_id = _call(tracker, "start", info, run_ids.get(tracker.name))
            if ok:
                self.live.append(tracker)
            if run_id is not None:
                run_ids[tracker.name] = run_id
        write_run_ids(out_dir, run_ids)
        for epoch, rows in groupby(history or [], key=lambda row: int(row["epoch"])):
            self.log_epoch(epoch, epoch * steps_per_epoch, list(rows), {})

    def log_step(self, step: int, losses: dict[str, float], lr: float) -> None:
        """Mean train loss per target since the last call, and the lr, at global step `step`."""
        if self.live:
            values = step_metrics(losses, lr)
            self._fan_out("log_step", step, values)

    def log_epoch(self, epoch: int, step: int, rows: list[dict[str, Any]], counters: dict[str, Any]) -> None:
        """One epoch's history.csv rows and the method's counters; `epoch` is 1-based."""
        if self.live:
            values = epoch_metrics(rows, counters)
            self._fan_out("log_epoch", epoch, step, values)

    def finish(self, record: dict[str, Any]) -> None:
        """Send the final record (status, error, metrics, counters) and close every started tracker."""
        if not self.started:
            return
        values = final_metrics(record)
        for tracker in self.started:
            _call(tracker, "finish", record["status"], record.get("error"), values)
        self.started, self.live = [], []

    def _fan_out(self, method: str, *args: Any) -> None:
        for tracker in list(self.live):
            if not _call(tracker, method, *args)[0]:
                self.live.remove(tracker)


def _call(tracker: Logger, method: str, *args: Any) -> tuple[bool, Any]:
    """(True, ``tracker.<method>(*args)``); on an exception, warn and return (False, None)."""
    try:
        result = getattr(tracker, method)(*args)
    except Exception as exc:  # a tracker must never stop training: any failure is contained
        log.warning(
            "the %s logger failed in %s (%s: %s); it is dropped for the rest of this run, which goes on "
            "(result.json and history.csv are unaffected)",
            tracker.name,
            method,
            type(exc).__name__,
            exc,
        )
        return False, None
    return True, result
