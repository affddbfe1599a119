"""Where log lines go: each cell's ``run.log`` gets all of its own, the terminal what a person reads.

Hydra configures logging from ``conf/hydra/job_logging/spacing.yaml`` for each job and from
``conf/hydra/hydra_logging/spacing.yaml`` in the launching process; both name the classes here.

- A line about one cell carries that cell's dir (:class:`CellLogger`). A ``run.log`` takes the
  lines of its own cell and those about no cell in particular (:class:`OwnCell`). A fused group's
  cells train in one job, whose Hydra log is its first cell's ``run.log``; :func:`cell_logs` gives
  each other cell of the group a ``run.log`` of its own while the group trains.
- The terminal of a job (:class:`JobConsole`): a single run shows every line (one per epoch). A
  sweep's cells show only warnings and errors, because the launching process draws the sweep's
  view (:mod:`spacing.sweep_view`) on the same terminal; a SLURM task writes to a log file of its
  own, where a job also shows its one line per epoch (records marked :data:`EPOCH_SUMMARY`).
- Console lines are written through tqdm (:class:`ConsoleHandler`), so a live bar on the same
  terminal is redrawn below them instead of being cut.
- The launchers log ``#N : <overrides>`` per job, where a fused group's overrides list each of its
  cells (hundreds of characters); :class:`LaunchLines` writes the number of cells instead.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

CELL = "cell"
"""The log record attribute that names the cell (its absolute dir) a line is about."""
EPOCH_SUMMARY = "epoch_summary"
"""The log record attribute set on a job's one line per epoch (its cell's, or its fused group's)."""
FUSED_LIST = re.compile(r"fused_cells=\[.*\]")
LAUNCH_LINE = re.compile(r"^\s*#\d+ : ")


class CellLogger(logging.LoggerAdapter):
    """`logger`, with each record naming the cell in `cell_dir` (and any ``extra`` a call adds)."""

    def __init__(self, logger: logging.Logger, cell_dir: Path | str) -> None:
        super().__init__(logger, {CELL: os.path.abspath(cell_dir)})

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


class OwnCell(logging.Filter):
    """Lets through the lines of the cell in `cell_dir` and those that name no cell: a cell's run.log."""

    def __init__(self, cell_dir: str) -> None:
        super().__init__()
        self.cell_dir = os.path.abspath(cell_dir)

    def filter(self, record: logging.LogRecord) -> bool:
        cell = getattr(record, CELL, None)
        return cell is None or cell == self.cell_dir


class JobConsole(logging.Filter):
    """What a job shows on its terminal: everything in a single run; warnings and errors in a sweep's cell,
    plus the job's line per epoch in a SLURM task (whose output is a log file of its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or not in_sweep():
            return True
        return bool(getattr(record, EPOCH_SUMMARY, False)) and os.environ.get("SUBMITIT_EXECUTOR") == "slurm"


def in_sweep() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


class LaunchLines(logging.Filter):
    """Shortens a launcher's ``#N : <overrides>`` line: a fused group's cell list becomes its count."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if LAUNCH_LINE.match(message) and FUSED_LIST.search(message):
            record.msg = FUSED_LIST.sub(lambda m: f"fused_cells=[{m.group(0).count('{')} cells]", message)
            record.args = ()
        return True


class ConsoleHandler(logging.StreamHandler):
    """A stream handler that writes through tqdm: a progress bar on the terminal is cleared and redrawn around the line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # noqa: BLE001 - logging's own convention: report, never raise
            self.handleError(record)


@contextmanager
def cell_logs(cell_dirs: Sequence[Path]) -> Iterator[None]:
    """While inside: each of `cell_dirs` gets a copy of the job's log file (Hydra's ``run.log``, a file
    handler of the root logger) in its own dir, taking that cell's lines and those about no cell.

    The cell whose dir holds the job's log file already has it. Without a job log file (a run
    started outside Hydra) nothing is added.
    """
    root = logging.getLogger()
    added: list[logging.Handler] = []
    for job_log in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        job_file = Path(job_log.baseFilename)
        for cell_dir in cell_dirs:
            if Path(cell_dir).resolve() == job_file.parent.resolve():
                continue
            handler = logging.FileHandler(Path(cell_dir) / job_file.name)
            handler.setLevel(job_log.level)
            handler.setFormatter(job_log.formatter)
            handler.addFilter(OwnCell(str(cell_dir)))
            root.addHandler(handler)
            added.append(handler)
    try:
        yield
    finally:
        for handler in added:
            root.removeHandler(handler)
            handler.close()
