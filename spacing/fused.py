"""Fused runs: the cells of one group trained in one process, along one shared trajectory.

Spaced EMA never feeds back into training, so every interval, decay and control of an EMA grid
shares one model trajectory; an online KD teacher learns from cross-entropy alone, so every
interval of a KD curve (offline included) shares one teacher. A group is such cells: configs
that differ only in their method's ``fusable_keys`` (:class:`spacing.config.MethodConfig`).
:func:`run_group` builds each cell exactly as its separate run would, makes the cell with the
most epochs the leader and the others its followers (:meth:`spacing.loop.Trainer.follow`), and
trains them in lock-step (:func:`spacing.loop.fit_together`): the shared targets once, each
cell's own part (a shadow, a student) apart. On the CPU with one seed every cell's record equals
its separate run's, up to the timing columns; each cell keeps its own dir, record, checkpoint and
``run.log`` (:func:`spacing.run_log.cell_logs`).

Each cell inside a group means what :func:`spacing.runner.run` means for it alone: a completed
cell is skipped, a cell of another config refused, a failure recorded in every cell that was
training. The unfinished cells train together from the latest epoch all of them can be put back
to (their newest or previous checkpoint, else the start), so a kill between two cells' saves
costs one epoch and a cell that lost its dir re-trains its group's unfinished cells with it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from spacing.build import build_run
from spacing.checkpoint import Checkpoints, Resumable, read_previous, remove_checkpoints
from spacing.claim import Claim, RunningElsewhere
from spacing.config import Config, flatten, to_config, to_dict
from spacing.contract import FINISHED, FUSED_FIELDS
from spacing.data import DataBundle
from spacing.errors import ConfigError
from spacing.loggers import LoggerList, build_loggers
from spacing.loop import Trainer, fit_together
from spacing.methods import METHODS
from spacing.neutral import comparable
from spacing.run_log import cell_logs
from spacing.runner import CellRun, claim_cell, inspect_cell, new_record, prepare_cell, record_failure, run_cell

log = logging.getLogger(__name__)


def run_group(cells: Sequence[tuple[DictConfig | Config, Path]], sweep_dir: Path | None = None) -> list[dict[str, Any]]:
    """Train the cells of one fused group, each into its own dir; returns each cell's run record, in the order given
    (:func:`run_group_cells`' records)."""
    return [cell.record for cell in run_group_cells(cells, sweep_dir)]


def run_group_cells(cells: Sequence[tuple[DictConfig | Config, Path]], sweep_dir: Path | None = None) -> list[CellRun]:
    """Train the cells of one fused group, each into its own dir; returns each cell's run record and whether it was
    skipped, in the order given.

    Raises ConfigError (before anything is written) for a group that cannot fuse, naming the key
    that differs and is not fusable, and RunningElsewhere when another process holds one of its
    cells. A group of one cell is :func:`spacing.runner.run_cell`.
    """
    if len(cells) == 1:
        config, out_dir = cells[0]
        return [run_cell(config, out_dir, sweep_dir)]
    out_dirs = [Path(out_dir) for _, out_dir in cells]
    dicts = [to_dict(config) for config, _ in cells]
    configs = [to_config(config) for config, _ in cells]
    check_group(configs, dicts, out_dirs)
    with ExitStack() as stack:
        held = [stack.enter_context(claim_cell(out_dir, config)) for out_dir, config in zip(out_dirs, dicts)]
        return _run_claimed(configs, dicts, out_dirs, held, Path(sweep_dir) if sweep_dir is not None else None)


def check_group(configs: Sequence[Config], dicts: Sequence[dict[str, Any]], out_dirs: Sequence[Path]) -> None:
    """Raise ConfigError unless the configs can share one trajectory: one fusable method, differing only in its fusable keys."""
    names = {config.method.name for config in configs}
    if len(names) > 1:
        raise ConfigError(f"a fused group runs one method; these cells differ in method.name ({', '.join(sorted(names))}).")
    name = names.pop()
    if not METHODS[name].shared_targets or not type(configs[0].method).fusable_keys:
        raise ConfigError(
            f"method={name} cannot run fused: it changes training itself, so its cells share no trajectory "
            "(see docs/sweeps.md, fused runs); run its cells separately."
        )
    for config, out_dir in zip(configs, out_dirs):
        if not config.method.fusable():
            raise ConfigError(
                f"the {name} config of {out_dir} cannot run fused: one of its switches moves the shared "
                "trajectory (e.g. method.replay_teacher_bn=true); run its cells separately."
            )
    fusable = {f"method.{key}" for key in type(configs[0].method).fusable_keys}
    flat = [flatten(comparable(config)) for config in dicts]
    for key in sorted(set().union(*flat)):
        if key not in fusable and len({repr(values.get(key)) for values in flat}) > 1:
            raise ConfigError(
                f"the cells of a fused group may differ only in {', '.join(sorted(fusable))}; they differ in {key}, "
                "which changes the shared trajectory: put them in separate groups."
            )


def group_id(out_dirs: Sequence[Path]) -> str:
    """The record's ``fused.group``: the group's cells' dir names, sorted, hashed (12 hex digits)."""
    names = "\n".join(sorted(Path(out_dir).name for out_dir in out_dirs))
    return hashlib.sha256(names.encode()).hexdigest()[:12]


def common_start(resumables: Sequence[Resumable]) -> list[Resumable]:
    """Per cell, the state to train from: all at the latest epoch every cell can be put back to (its newest
    checkpoint, the one before it, or the start), so the cells go on together in lock-step."""
    choices: list[dict[int, Resumable]] = []
    for resumable in resumables:
        states = {0: Resumable(unreadable=resumable.unreadable)}
        if resumable.state is not None:
            states[resumable.epoch] = resumable
        choices.append(states)
    if len({max(states) for states in choices}) > 1:
        for states, resumable in zip(choices, resumables):
            previous = read_previous(resumable)
            if previous is not None:
                states.setdefault(previous.epoch, previous)
    epoch = max(set.intersection(*(set(states) for states in choices)))
    return [states[epoch] for states in choices]


def _run_claimed(
    configs: list[Config], dicts: list[dict[str, Any]], out_dirs: list[Path], held: list[Claim], sweep_dir: Path | None
) -> list[CellRun]:
    inspected = [inspect_cell(out_dir, config) for out_dir, config in zip(out_dirs, dicts)]  # refuses before any write
    records: list[dict[str, Any] | None] = [
        prepare_cell(out_dir, config, completed) for out_dir, config, (completed, _) in zip(out_dirs, dicts, inspected)
    ]
    skipped = [record is not None for record in records]
    pending = [i for i, record in enumerate(records) if record is None]
    if pending:
        starts = common_start([inspected[i][1] for i in pending])
        with cell_logs([out_dirs[i] for i in pending]):
            trained = _train(
                [configs[i] for i in pending],
                [dicts[i] for i in pending],
                [out_dirs[i] for i in pending],
                [held[i] for i in pending],
                starts,
                group_id(out_dirs),
                sweep_dir,
            )
        for i, record in zip(pending, trained):
            records[i] = record
    return [CellRun(record, skip) for record, skip in zip(records, skipped) if record is not None]


def _train(
    configs: list[Config],
    dicts: list[dict[str, Any]],
    out_dirs: list[Path],
    held: list[Claim],
    starts: list[Resumable],
    group: str,
    sweep_dir: Path | None,
) -> list[dict[str, Any]]:
    """Build, resume and train the unfinished cells of a group together; a failure is recorded in each of them."""
    for out_dir, start in zip(out_dirs, starts):
        if start.state is None:
            remove_checkpoints(out_dir)  # a restart from the beginning: no other point of the trajectory stays behind
    checkpoints = [Checkpoints(out_dir, claim, start) for out_dir, claim, start in zip(out_dirs, held, starts)]
    records = [new_record(out_dir, config, start) for out_dir, config, start in zip(out_dirs, dicts, starts)]
    fused = dict(zip(FUSED_FIELDS, (group, len(configs), 1.0 / len(configs))))
    for record in records:
        record.update(fused=fused)
    loggers = [LoggerList() for _ in configs]
    try:
        data: DataBundle | None = None
        trainers = []
        for i, (config, start) in enumerate(zip(configs, starts)):
            parts = build_run(config, data)
            data = parts.data
            loggers[i] = build_loggers(config.logger)
            trainer = Trainer(parts, records[i], checkpoints[i], loggers[i], sweep_dir)
            if start.state is not None:
                trainer.resume(start)
            trainers.append(trainer)
        leader = max(trainers, key=lambda trainer: trainer.method.epochs)
        followers = [trainer for trainer in trainers if trainer is not leader]
        for trainer in followers:
            trainer.follow(leader)
        log.info("training %d cells fused (group %s), led by %s", len(trainers), group, leader.record.out_dir)
        fit_together([leader, *followers])
        return [trainer.record.data for trainer in trainers]
    except RunningElsewhere:
        raise  # this process lost a cell to another: it writes nothing more
    except Exception as exc:
        replaced = None
        for record, checkpoint, config in zip(records, checkpoints, dicts):
            if record.data["status"] not in FINISHED:  # a cell that completed (or diverged) before the failure keeps its record
                replaced = record_failure(exc, record, checkpoint.saved_epoch, config) or replaced
        if replaced is not None:
            raise replaced from exc
        raise
    finally:
        for logger, record in zip(loggers, records):
            logger.finish(record.data)

