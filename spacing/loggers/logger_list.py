"""Fan-out to the selected trackers that never lets a tracker stop training.

A tracker can fail at any time (disk full, server down, a bug in its client). The run record
(result.json, history.csv) is what analysis reads, so a failing tracker costs only its own
copy: the error is logged as a warning, the tracker gets nothing more but a last ``finish``
(to close what it opened), and training goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spacing.loggers.base import Logger, RunInfo, epoch_metrics, final_metrics, step_metrics

log = logging.getLogger(__name__)


class LoggerList:
    """The trackers of one run; an empty list (``logger=none``) makes every call a no-op."""

    def __init__(self, trackers: Sequence[Logger] = (), group: str | None = None) -> None:
        self.trackers = list(trackers)
        self.group = group
        self.started: list[Logger] = []
        """Trackers whose start was attempted: each gets one finish."""
        self.live: list[Logger] = []
        """Started trackers that have not failed: they get every call."""

    def start(self, record: dict[str, Any], out_dir: Path, sweep_dir: Path | None) -> None:
        """Open a tracker run for the run record `record` (its identity fields and config)."""
        if not self.trackers:
            return
        info = RunInfo.of(record, out_dir, sweep_dir, self.group)
        for tracker in self.trackers:
            self.started.append(tracker)
            if _call(tracker, "start", info):
                self.live.append(tracker)

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
            if not _call(tracker, method, *args):
                self.live.remove(tracker)


def _call(tracker: Logger, method: str, *args: Any) -> bool:
    """``tracker.<method>(*args)``; on an exception, warn and return False."""
    try:
        getattr(tracker, method)(*args)
    except Exception as exc:  # a tracker must never stop training: any failure is contained
        log.warning(
            "the %s logger failed in %s (%s: %s); it is dropped for the rest of this run, which goes on "
            "(result.json and history.csv are unaffected)",
            tracker.name,
            method,
            type(exc).__name__,
            exc,
        )
        return False
    return True
