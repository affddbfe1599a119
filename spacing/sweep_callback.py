"""The Hydra callback of every multirun: check the grid, mark each cell, count the launch's cells.

A Hydra multirun runs its cells wherever the launcher puts them: in the launching process
(`basic`), in local worker processes (`local`) or as the tasks of one SLURM job array (`slurm`).
:class:`SweepCallback`, listed first under ``hydra.callbacks`` in conf/config.yaml, is called by
Hydra in the launching process at the start and end of the multirun and in each cell's process
around its job:

- at the start, every cell of a grid is composed and checked (:mod:`spacing.plan`); one invalid
  cell and nothing is launched (exit code 2). The launch is recorded in ``<sweep dir>/.launches/``,
  and the launching process shows the sweep's view (:mod:`spacing.sweep_view`: cells done, running,
  failed, skipped, elapsed, time left) until the launch ends;
- around each job, the cell's ``sweep_cell.json`` says which launch ran it, where, and how it
  ended; a fused group's job (``hydra.sweeper.fuse``) marks each of its cells, so cells are
  counted, never jobs; a cell in a worker process of the launching process
  (``hydra/launcher=local``) ends when the launching process ends;
- at the end, the launching process takes the view off and reads those files back, so the counts
  are right whichever process or machine ran a cell, and prints them; the command line then exits
  with code 4 when a cell did not complete (:func:`launch_exit_code`), after the callbacks listed
  before this one (the analysis) have run too.

Hydra catches every Exception a callback raises and only warns; refusing a grid and the exit code
are therefore ``SystemExit``, which it lets through.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from spacing.atomic import atomic_write_text
from spacing.claim import RUNNING_ELSEWHERE
from spacing.compose import app_config
from spacing.contract import COMPLETED, DIVERGED, FAILED, RUNNING
from spacing.errors import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_USER_ERROR
from spacing.record import read_result
from spacing.sweep_state import (
    CELL_FILE,
    LAUNCHES_DIR,
    SKIPPED,
    launch_outcome_path,
    read_launch_outcome,
    write_launch,
)
from spacing.sweep_view import SweepView, launch_tally
from spacing.sweeper import group_cells, is_group

log = logging.getLogger(__name__)

SLURM_VARIABLES = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT")
"""Environment that says which SLURM job (and array task, and requeue) ran a cell."""
LOST = "lost"
"""The outcome of a cell whose process ended without a result (spacing.task_cells): killed, or it could not start."""
PARENT_POLL_S = 1.0
"""How often a worker cell checks that the launching process is still its parent."""


def cell_outcome(status: str | None, after: dict[str, Any] | None) -> str:
    """One of completed / skipped / failed / diverged / lost / running elsewhere for a cell's job.

    `status` is what the task reported for the cell (None when it raised past its own handler): the
    run's status, or skipped when the runner, holding the cell's claim, found a completed run of the
    same config there. `after` is the cell's run record after the job: completed or skipped only
    when it says completed.
    """
    if status in (COMPLETED, SKIPPED):
        return status if after is not None and after.get("status") == COMPLETED else FAILED
    if status in (DIVERGED, LOST, RUNNING_ELSEWHERE):
        return status
    return FAILED


@dataclass(frozen=True)
class Cell:
    """A cell of one launch, as the launch recorded it (``.launches/<launch>/<cell>.json``)."""

    dir: Path
    outcome: str
    error: str | None


@dataclass(frozen=True)
class LaunchSummary:
    """The cells of one launch, counted by outcome."""

    sweep_dir: Path
    cells: tuple[Cell, ...]
    ALWAYS: ClassVar[tuple[str, ...]] = (COMPLETED, SKIPPED, FAILED)
    """The outcomes counted even when no cell has them; any other outcome is counted when some cell has it."""
    OTHERS: ClassVar[tuple[str, ...]] = (DIVERGED, LOST, "unfinished", RUNNING_ELSEWHERE)
    """The order of the other outcomes in the counts (an outcome not named here comes last)."""

    def count(self, outcome: str) -> int:
        return sum(cell.outcome == outcome for cell in self.cells)

    @property
    def not_completed(self) -> tuple[Cell, ...]:
        """Cells this launch left without a completed run: failed, diverged, or unfinished (killed mid-run).

        A cell running elsewhere is not among them: another launch holds it and will finish it.
        """
        return tuple(cell for cell in self.cells if cell.outcome not in (COMPLETED, SKIPPED, RUNNING_ELSEWHERE))

    def lines(self) -> list[str]:
        counts = [f"{self.count(o)} {o}" for o in self.ALWAYS]
        others = sorted({cell.outcome for cell in self.cells} - set(self.ALWAYS),
                        key=lambda o: (self.OTHERS.index(o) if o in self.OTHERS else len(self.OTHERS), o))
        counts += [f"{self.count(o)} {o}" for o in others]
        lines = [f"sweep {self.sweep_dir}: {len(self.cells)} cells, {', '.join(counts)}"]
        if self.not_completed:
            lines.append(
                "not completed (re-launching the same command retries them; unfinished ones resume from their checkpoint):"
            )
        for cell in self.not_completed:
            lines.append(f"  {cell.outcome}: {cell.dir}" + (f" ({cell.error})" if cell.error else ""))
        lines += [f"  {RUNNING_ELSEWHERE}: {cell.dir}" for cell in self.cells if cell.outcome == RUNNING_ELSEWHERE]
        return lines


def summarize_launch(sweep_dir: Path, launch: str, planned: Sequence[Path] = ()) -> LaunchSummary:
    """Every cell of launch `launch`, once, by what happened to it in that launch.

    `planned`: the launch's cells (its grid, checked before it started); each is counted once, a
    cell whose job never recorded an outcome or is still marked running as ``unfinished``. Without
    a plan (an optimising sweeper chooses its cells while it runs) the launch's cells are the ones
    it recorded an outcome for.
    """
    cells = list(dict.fromkeys(planned)) or sorted(
        sweep_dir / path.stem for path in (sweep_dir / LAUNCHES_DIR / launch).glob("*.json"))
    counted = []
    for cell in cells:
        marker = read_launch_outcome(cell, launch) or {}
        outcome = marker.get("outcome")
        counted.append(Cell(cell, "unfinished" if outcome in (None, RUNNING) else outcome, marker.get("error")))
    return LaunchSummary(sweep_dir, tuple(counted))


class SweepCallback:
    """Hydra callback: check the grid, mark each cell with its launch and outcome, print the counts at the end."""

    def __init__(self) -> None:
        self.launch: str | None = None
        self.launcher_pid: int | None = None
        self.plan: Any = None
        """The checked grid (a :class:`spacing.plan.Plan`), in the launching process."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        global _view
        self.begin_launch()
        self.check_grid(config)
        if self.plan.cells:  # a grid (an optimising sweeper picks its cells as it runs: no view)
            dirs = list(dict.fromkeys(cell.dir for cell in self.plan.cells if cell.dir is not None))
            launch = self.launch
            assert launch is not None
            _view = SweepView(lambda: launch_tally(dirs, launch), always=LaunchSummary.ALWAYS)
            _view.start()

    def begin_launch(self) -> None:
        """Name this launch and its process; set before the launcher pickles this object into the
        cells' processes, so they carry both."""
        self.launch = uuid.uuid4().hex
        self.launcher_pid = os.getpid()

    def check_grid(self, config: Any) -> None:
        """Compose and check every cell; print one sentence per bad value and end the launch if any."""
        from hydra.core.global_hydra import GlobalHydra

        from spacing.plan import make_plan

        hydra = GlobalHydra.instance().hydra
        assert hydra is not None, "check_grid runs inside a Hydra multirun"
        self.plan = make_plan(hydra, config)
        if self.plan.invalid:
            for sentence in self.plan.errors():
                print(f"error: {sentence}", file=sys.stderr)
            invalid = f"{len(self.plan.invalid)} of {len(self.plan.cells)} cells are invalid"
            what = "its base config is invalid" if self.plan.sweeper else invalid
            print(f"nothing was launched: {what} (spacing plan ARGS lists the cells).", file=sys.stderr)
            raise SystemExit(EXIT_USER_ERROR)
        assert self.launch is not None
        for warning in self.plan.warnings():  # cells that cannot measure their interval: said before they train
            print(f"warning: {warning}", file=sys.stderr)
        if self.plan.cells:
            write_launch(self.plan.sweep_dir, self.launch, [c.dir for c in self.plan.cells], sys.argv)

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        if self.launch is None:  # a single run, not a sweep cell
            return
        for cell in job_cells(config):
            self._write(cell, RUNNING, None)
        if self.launcher_pid is not None and os.getppid() == self.launcher_pid:
            end_with_parent(self.launcher_pid)

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        if self.launch is None:
            return
        out_dir = Path(str(config.hydra.runtime.output_dir))
        returned = job_return._return_value  # the property re-raises a failed job's exception
        statuses = getattr(returned, "cells", None) or {}
        for cell in job_cells(config):
            after = read_result(cell)
            status = statuses.get(cell.name, getattr(returned, "status", None))
            outcome = cell_outcome(status, after)
            error = None
            if outcome in (FAILED, DIVERGED, LOST):
                recorded = after.get("error") if after is not None and after.get("status") == outcome else None
                raised = f"{type(returned).__name__}: {returned}" if isinstance(returned, BaseException) else None
                error = recorded or raised or ("see the log in the cell dir" if cell == out_dir else f"see the log in {out_dir}")
            self._write(cell, outcome, error)
            log.info("%s: %s", outcome, cell)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        global _launch_exit_code, _view
        assert self.launch is not None
        if _view is not None:
            _view.stop()
            _view = None
        planned = [cell.dir for cell in self.plan.cells] if self.plan is not None else []
        summary = summarize_launch(Path(str(config.hydra.sweep.dir)), self.launch, planned)
        print("\n".join(summary.lines()), flush=True)
        # Not raised here: the callbacks after this one (the analysis) still run; the command line exits with it.
        _launch_exit_code = EXIT_INCOMPLETE if summary.not_completed else 0

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
        assert self.launch is not None
        atomic_write_text(launch_outcome_path(out_dir, self.launch), json.dumps(marker, indent=2) + "\n")


def job_cells(config: Any) -> list[Path]:
    """The cell dirs a job trains: its output dir, or each cell's dir for a fused group's job (the first is its output dir)."""
    out_dir = Path(str(config.hydra.runtime.output_dir))
    if not is_group(config):
        return [out_dir]
    return [cell_dir for _, cell_dir in group_cells(app_config(config), Path(str(config.hydra.sweep.dir)))]


_launch_exit_code = 0
_view: SweepView | None = None
"""The launching process's view of its sweep, from the start of the multirun to its end (kept out of the
callback object, which the launchers pickle into the cells' processes)."""


def launch_exit_code() -> int:
    """The exit code the last multirun of this process earned: 4 when a cell did not complete, else 0."""
    return _launch_exit_code


_watched_parent: int | None = None


def end_with_parent(parent: int) -> None:
    """End this process within a second of `parent` no longer being its parent (it was terminated).

    Worker processes of the local launcher are children of the launching process; without this
    a worker trains its cell to the end after the launch was stopped. The cell stays ``running``
    in its record and resumes from its last checkpoint when the sweep is launched again.
    """
    global _watched_parent
    if _watched_parent == parent:  # a worker process runs several cells; one watcher is enough
        return
    _watched_parent = parent

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        log.error("the launching process (pid %d) ended; stopping this cell, which resumes when the sweep is launched again",
                  parent)
        logging.shutdown()
        os._exit(EXIT_INTERRUPTED)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()
