"""What each cell of a sweep launch did, and the counts printed when the launch ends.

A Hydra multirun runs its cells wherever the launcher puts them: in the launching process
(`basic`), in local worker processes (`local`) or as the tasks of one SLURM job array (`slurm`).
:class:`SweepSummary`, listed under ``hydra.callbacks`` in conf/config.yaml, is called by Hydra in
the launching process at the start and end of the multirun and in each cell's process around its
job. Each cell writes ``sweep_cell.json`` into its dir, tagged with the launch it belongs to; at the
end the launching process reads those files back, so the counts are right whichever process or
machine ran a cell. Hydra only needs the hook names, so this module does not import hydra.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spacing.atomic import atomic_write_text
from spacing.claim import RUNNING_ELSEWHERE
from spacing.record import read_result

log = logging.getLogger(__name__)

CELL_FILE = "sweep_cell.json"
SLURM_VARIABLES = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT")
"""Environment that says which SLURM job (and array task, and requeue) ran a cell."""


def cell_outcome(returned: Any, before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """One of completed / skipped / failed / diverged / running elsewhere for a cell's job.

    `returned` is what the task function returned (run.py returns the run's status, or "failed"),
    `before` and `after` the cell's run record before and after the job. A completed cell whose
    record did not change was skipped: the runner found a completed run of the same config there.
    """
    if returned == "completed" and after is not None and after.get("status") == "completed":
        unchanged = before is not None and all(before.get(k) == after.get(k) for k in ("started_at", "finished_at"))
        return "skipped" if unchanged else "completed"
    if returned in ("diverged", RUNNING_ELSEWHERE):
        return returned
    return "failed"


@dataclass(frozen=True)
class Cell:
    """A cell of one launch as its ``sweep_cell.json`` tells it."""

    dir: Path
    outcome: str
    error: str | None


@dataclass(frozen=True)
class Summary:
    """The cells of one launch, counted by outcome."""

    sweep_dir: Path
    cells: tuple[Cell, ...]

    def count(self, outcome: str) -> int:
        return sum(cell.outcome == outcome for cell in self.cells)

    @property
    def not_completed(self) -> tuple[Cell, ...]:
        """Cells without a completed run: failed, diverged, or unfinished (killed mid-run)."""
        return tuple(cell for cell in self.cells if cell.outcome not in ("completed", "skipped"))

    def lines(self) -> list[str]:
        counts = [f"{self.count(o)} {o}" for o in ("completed", "skipped", "failed")]
        counts += [f"{self.count(o)} {o}" for o in ("diverged", "unfinished", RUNNING_ELSEWHERE) if self.count(o)]
        lines = [f"sweep {self.sweep_dir}: {len(self.cells)} cells, {', '.join(counts)}"]
        if self.not_completed:
            lines.append("not completed (re-launching the same command retries them; unfinished ones resume from their checkpoint):")
        for cell in self.not_completed:
            lines.append(f"  {cell.outcome}: {cell.dir}" + (f" ({cell.error})" if cell.error else ""))
        return lines


def summarize(sweep_dir: Path, launch: str) -> Summary:
    """The cells under `sweep_dir` that launch `launch` ran; a cell still marked running is unfinished."""
    cells = []
    for path in sorted(sweep_dir.rglob(CELL_FILE)):
        try:
            marker = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if marker.get("launch") != launch:
            continue
        outcome = marker.get("outcome")
        cells.append(Cell(path.parent, "unfinished" if outcome == "running" else outcome, marker.get("error")))
    return Summary(sweep_dir, tuple(cells))


class SweepSummary:
    """Hydra callback: mark each cell with its launch and outcome; print the counts at the end."""

    def __init__(self) -> None:
        self.launch: str | None = None
        self._records_before: dict[str, dict[str, Any] | None] = {}

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        # Set before the launcher pickles this object into the cells' processes, so they carry it.
        self.launch = uuid.uuid4().hex

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        if self.launch is None:  # a single run, not a sweep cell
            return
        out_dir = str(config.hydra.runtime.output_dir)
        self._records_before[out_dir] = read_result(Path(out_dir))
        self._write(Path(out_dir), "running", None)

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        if self.launch is None:
            return
        out_dir = str(config.hydra.runtime.output_dir)
        after = read_result(Path(out_dir))
        failed = job_return.status.name != "COMPLETED"  # the task raised past run.py's handler
        returned = job_return.return_value
        outcome = "failed" if failed else cell_outcome(returned, self._records_before.pop(out_dir, None), after)
        error = None
        if outcome in ("failed", "diverged"):
            recorded = after.get("error") if after is not None and after.get("status") == outcome else None
            error = recorded or (f"{type(returned).__name__}: {returned}" if failed else "see the log in the cell dir")
        self._write(Path(out_dir), outcome, error)
        log.info("%s: %s", outcome, out_dir)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        assert self.launch is not None
        print("\n".join(summarize(Path(str(config.hydra.sweep.dir)), self.launch).lines()), flush=True)

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        """Nothing to do for a single run (Hydra calls every hook of every callback)."""

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        """Nothing to do for a single run."""

    def _write(self, out_dir: Path, outcome: str, error: str | None) -> None:
        marker = {
            "launch": self.launch,
            "outcome": outcome,
            "error": error,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "slurm": {name: os.environ[name] for name in SLURM_VARIABLES if name in os.environ},
        }
        atomic_write_text(out_dir / CELL_FILE, json.dumps(marker, indent=2) + "\n")
