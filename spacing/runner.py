"""One run in one cell dir, from a composed config to a run record: what the CLI (and the tests) call.

:func:`run` claims the cell, decides what the dir's files allow, builds the run
(:mod:`spacing.build`), resumes it from its checkpoint (:mod:`spacing.checkpoint`) and trains it
(:class:`spacing.loop.Trainer`), recording any failure. What a cell dir can be left holding, and
how a run copes with it:

- another process training it: the cell's claim (:mod:`spacing.claim`) says so, and the run
  stops before touching anything;
- a completed record of the same config: the run is skipped, unless its history.csv does not
  agree with it (missing, truncated, rows dropped, impossible values): then it trains again;
- a result.json that is not a readable record (empty, truncated, not a record): said, and the
  run trains again (from its checkpoint where one is readable);
- a record or checkpoint of a different config: refused before anything is written;
- temp files of writes killed midway: removed once the claim is held;
- an unreadable latest checkpoint: the run resumes from the one before it
  (``checkpoint.prev.pt``), losing one epoch, and says so in ``checkpoint_recoveries``;
- a checkpoint left in a completed cell by a kill during its deletion: removed when skipping.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from spacing.atomic import disk_full_errno, remove_stale_temps
from spacing.build import build_run
from spacing.checkpoint import Checkpoints, Resumable, read_checkpoints, refuse_other_config, remove_checkpoints
from spacing.claim import Claim, RunningElsewhere, claim
from spacing.config import Config, to_config, to_dict
from spacing.contract import (
    CHECKPOINT_FILE,
    CLAIM_FILE,
    COMPLETED,
    FAILED,
    HISTORY_FILE,
    PREVIOUS_CHECKPOINT_FILE,
    RESULT_FILE,
    history_problem,
)
from spacing.errors import DiskFull, UserError
from spacing.loggers import LoggerList, build_loggers
from spacing.loop import Trainer
from spacing.record import RunRecord, read_record, read_result

log = logging.getLogger(__name__)

RUNNER_FILES = (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE, RESULT_FILE, HISTORY_FILE)
"""The files a run writes into a cell dir (atomically, through temp files)."""


@dataclass(frozen=True)
class CellRun:
    """What one job did with a cell: the cell's run record, and whether the job found it completed and skipped it.

    Only the process holding the cell's claim can tell a skip from training: a launch that reads the
    record around its job cannot, when another launch finishes the cell in between.
    """

    record: dict[str, Any]
    skipped: bool


def run(cfg: DictConfig | Config, out_dir: Path | str, sweep_dir: Path | str | None = None) -> dict[str, Any]:
    """Train one run into `out_dir` and return its run record (the content of result.json): :func:`run_cell`'s record."""
    return run_cell(cfg, out_dir, sweep_dir).record


def run_cell(cfg: DictConfig | Config, out_dir: Path | str, sweep_dir: Path | str | None = None) -> CellRun:
    """Train one run into `out_dir`; its run record (the content of result.json), and whether it was skipped.

    The cell is claimed first: if another live process holds it, :class:`RunningElsewhere` is
    raised and nothing in `out_dir` is touched. A record or checkpoint of a different config is
    refused (ConfigError) before anything is written. Other user errors (bad config, missing data,
    no GPU, a full disk) are recorded as ``failed`` and re-raised as :class:`UserError`; any other
    exception is recorded as ``failed`` and re-raised unchanged. `sweep_dir` (a multirun's root)
    groups the run with its sweep in the experiment trackers.

    The config is turned into its plain resolved dict once, here (what the record stores and
    every "same config?" question compares), and into checked dataclasses once, in
    :func:`_run_claimed`, where an invalid value is recorded as a failure.
    """
    out_dir = Path(out_dir)
    config_dict = to_dict(cfg)
    with claim_cell(out_dir, config_dict) as held:
        return _run_claimed(cfg, config_dict, out_dir, Path(sweep_dir) if sweep_dir is not None else None, held)


def claim_cell(out_dir: Path, config_dict: dict[str, Any]) -> Claim:
    """Make `out_dir` and claim it (:func:`spacing.claim.claim`); a full disk is said as one sentence (DiskFull)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return claim(out_dir)
    except OSError as exc:
        code = disk_full_errno(exc)
        if code is None:
            raise
        path = out_dir / CLAIM_FILE
        saved = (read_result(out_dir) or {}).get("epochs_completed") or 0
        raise DiskFull(_disk_full_sentence(path, code, saved, config_dict), path, code) from exc


def _run_claimed(
    cfg: DictConfig | Config, config_dict: dict[str, Any], out_dir: Path, sweep_dir: Path | None, held: Claim
) -> CellRun:
    completed, resumable = inspect_cell(out_dir, config_dict)
    skipped = prepare_cell(out_dir, config_dict, completed)
    if skipped is not None:
        return CellRun(skipped, skipped=True)
    checkpoints = Checkpoints(out_dir, held, resumable)
    record = new_record(out_dir, config_dict, resumable)
    loggers = LoggerList()
    try:
        config = to_config(cfg)
        loggers = build_loggers(config.logger)
        trainer = Trainer(build_run(config), record, checkpoints, loggers, sweep_dir)
        if resumable.state is not None:
            trainer.resume(resumable)
        return CellRun(trainer.fit(), skipped=False)
    except RunningElsewhere:
        raise  # this process lost the cell to another: it writes nothing more
    except Exception as exc:
        replaced = record_failure(exc, record, checkpoints.saved_epoch, config_dict)
        if replaced is not None:
            raise replaced from exc
        raise
    finally:
        loggers.finish(record.data)


def inspect_cell(out_dir: Path, config_dict: dict[str, Any]) -> tuple[dict[str, Any] | None, Resumable]:
    """What a claimed cell dir holds for a run of `config_dict`: its completed record (or None) and the checkpoints a
    resume would continue; a record or checkpoint of another config is refused (ConfigError). Writes nothing."""
    resume = (config_dict.get("trainer") or {}).get("resume", True)
    previous, damaged = read_record(out_dir)
    if damaged is not None:
        log.warning("%s; the run trains again, from its checkpoint where one is readable", damaged)
    completed = previous if previous is not None and previous.get("status") == COMPLETED else None
    refuse_other_config(out_dir, config_dict, completed, Resumable())
    disagreeing = history_problem(out_dir, completed) if completed is not None else None
    if disagreeing is not None:
        log.warning("%s; the completed run trains again to write its record and history anew", disagreeing)
        completed = None
    resumable = read_checkpoints(out_dir) if resume and completed is None else Resumable()
    refuse_other_config(out_dir, config_dict, None, resumable)
    return completed, resumable


def prepare_cell(out_dir: Path, config_dict: dict[str, Any], completed: dict[str, Any] | None) -> dict[str, Any] | None:
    """Tidy an inspected cell dir before training: remove killed writes' temp files; return the completed record
    when the run is skipped (its leftover checkpoints removed), or None when it trains (from scratch without resume)."""
    options = config_dict.get("trainer") or {}
    resume = options.get("resume", True)
    _remove_leftovers(out_dir)
    if completed is not None and resume:
        if not options.get("keep_checkpoint", False):
            remove_checkpoints(out_dir)  # left by a kill between the record and the deletion
        log.info("skipped: %s already holds a completed run of this config", out_dir)
        return completed
    if not resume:
        remove_checkpoints(out_dir)  # a fresh start must never fall back on another trajectory's checkpoint
    return None


def new_record(out_dir: Path, config_dict: dict[str, Any], resumable: Resumable) -> RunRecord:
    """The run record of a run about to train in `out_dir`, holding the epochs `resumable` saved (so a failure keeps them)."""
    record = RunRecord(out_dir, config_dict)
    record.update(checkpoint_recoveries=resumable.recoveries())
    if resumable.state is not None:
        record.restore_history(resumable.state["history"])
    return record


def record_failure(exc: Exception, record: RunRecord, saved_epoch: int, config_dict: dict[str, Any]) -> Exception | None:
    """Record `exc` as the run's failure, keeping the `saved_epoch` epochs its checkpoint holds; returns the
    exception to raise instead (a full disk, said with where the run resumes), or None to re-raise `exc`."""
    if isinstance(exc, DiskFull):
        full = DiskFull(_disk_full_sentence(exc.path, exc.errno, saved_epoch, config_dict), exc.path, exc.errno)
        _record_failure(record, str(full), saved_epoch)
        return full
    _record_failure(record, str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}", saved_epoch)
    return None


def _remove_leftovers(out_dir: Path) -> None:
    """Remove the temp files of the run's writes that a kill interrupted (the cell's claim is held)."""
    for name in RUNNER_FILES:
        for tmp in remove_stale_temps(out_dir / name):
            log.info("removed %s, left by a write that was killed", tmp)


def _record_failure(record: RunRecord, error: str, saved_epoch: int) -> None:
    """Save `record` as failed with the epochs its checkpoint holds (what a re-launch resumes from).

    A write error here (the disk may be full) is logged, so the error that failed the run is the one raised.
    """
    record.restore_history([row for row in record.history if row["epoch"] <= saved_epoch])
    try:
        record.save(FAILED, error=error)
    except (OSError, DiskFull) as exc:
        log.error("could not record the failure in %s: %s", record.out_dir, exc)


def _disk_full_sentence(path: Path, code: int, saved_epoch: int, config: dict[str, Any]) -> str:
    """Writing `path` failed with `code` (ENOSPC or EDQUOT); the newest good checkpoint holds `saved_epoch`."""
    epochs = (config.get("trainer") or {}).get("epochs")
    resumes = (
        f"it resumes from the checkpoint of epoch {saved_epoch} of {epochs}" if saved_epoch else "it starts again from epoch 1"
    )
    return (
        f"the disk is full at {path.parent} ({os.strerror(code)} while writing {path.name}); free space there "
        f"(or raise your quota) and run the same command again: {resumes}."
    )
