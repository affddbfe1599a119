"""The one training loop every method runs in: epochs of train, evaluate, record and checkpoint.

:class:`Trainer` holds one run's built parts (:mod:`spacing.build`), record and checkpoints and
never asks which method it runs; :func:`fit_together` is the loop, over one trainer (a run) or
several in lock-step (a fused group, :mod:`spacing.fused`), so both share every line of it. The
checkpoint's files are :class:`spacing.checkpoint.Checkpoints`' business. Inside an epoch the
host reads from the device only every ``trainer.log_every`` steps (progress bar, NaN check,
tracker step values); the epoch's sums are read once at its end.

Each trainer's log lines name its cell (:class:`spacing.run_log.CellLogger`), so they land in that
cell's ``run.log``: one line per epoch with every target's numbers. A fused group adds one line per
epoch for the whole group, its shared targets once and a column per cell for each of the others.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from spacing.build import RunParts
from spacing.checkpoint import Checkpoints, Resumable
from spacing.contract import COMPLETED, DIVERGED, RUNNING
from spacing.data import EvalSet
from spacing.loggers import LoggerList
from spacing.methods import StepStats, merge_stats
from spacing.record import RunRecord
from spacing.run_log import EPOCH_SUMMARY, CellLogger, in_sweep
from spacing.seeding import restore_rng_state, rng_state

log = logging.getLogger(__name__)


class Diverged(Exception):
    """The training loss stopped being finite."""


@dataclass
class Progress:
    """Counters that survive a resume."""

    epoch: int = 0
    step: int = 0
    wall_seconds: float = 0.0
    train_seconds: float = 0.0
    images: int = 0
    cost_seconds: float = 0.0
    """This run's share of the wall seconds: an epoch that n trainers of a fused group ran together
    costs each seconds / n (an ordinary run: its wall seconds)."""


class Trainer:
    """Trains built parts epoch by epoch into `record`, saving each epoch to `checkpoints`.

    `loggers` are the run's experiment trackers (started in :meth:`fit`, after a resume, so a
    resumed run continues its tracker runs); `sweep_dir` groups the run with its sweep there.
    """

    def __init__(
        self,
        parts: RunParts,
        record: RunRecord,
        checkpoints: Checkpoints | None = None,
        loggers: LoggerList | None = None,
        sweep_dir: Path | None = None,
    ) -> None:
        self.parts = parts
        self.config = parts.config
        self.method = parts.method
        self.data = parts.data
        self.record = record
        self.checkpoints = checkpoints if checkpoints is not None else Checkpoints(record.out_dir)
        self.loggers = loggers if loggers is not None else LoggerList()
        self.sweep_dir = sweep_dir
        self.progress = Progress()
        self.diverged = False
        self.log = CellLogger(log, record.out_dir)
        record.update(**parts.record_fields())

    @property
    def lr(self) -> float:
        """The learning rate history.csv reports: that of the first optimizer training in this epoch."""
        name = self.method.scheduled_optimizers(self.progress.epoch)[0]
        return self.method.optimizers()[name].param_groups[0]["lr"]

    def fit(self) -> dict[str, Any]:
        """Train the epochs left, evaluating, recording and checkpointing after each; returns the run record."""
        return fit_together([self])[0]

    def start(self) -> None:
        """Before the first epoch (of this process): start the trackers and save the record as running."""
        out_dir = self.record.out_dir
        self.loggers.start(self.record.data, out_dir, self.sweep_dir, self.record.history, self.data.train.steps_per_epoch)
        self.log.info(
            "training %s on %s (%s, %d steps/epoch) on %s -> %s",
            self.config.method.name,
            self.config.dataset.name,
            self.config.model.name,
            self.data.train.steps_per_epoch,
            self.parts.device,
            out_dir,
        )
        self.record.save(RUNNING)

    @property
    def training(self) -> bool:
        """Whether epochs are left to train."""
        return self.progress.epoch < self.method.epochs

    @property
    def live(self) -> bool:
        """Whether the run still trains into its record: epochs left and not diverged."""
        return self.training and not self.diverged

    def follow(self, leader: Trainer) -> None:
        """Join `leader`'s fused group: the method follows the leader's, and the LR schedules of the
        optimizers it now shares are the leader's (stepped once per epoch, checkpointed with each cell)."""
        self.method.follow(leader.method)
        shared = leader.method.optimizers()
        for name, optimizer in self.method.optimizers().items():
            if shared.get(name) is optimizer:
                self.parts.lr_schedules[name] = leader.parts.lr_schedules[name]

    def train_epoch(self, epoch: int) -> dict[str, StepStats]:
        """One pass over the training stream; returns the summed stats per target."""
        return train_epoch_together([self], epoch)[0]

    def diverge(self, exc: Diverged, seconds: float, sharing: int = 1) -> None:
        """The run's loss stopped being finite `seconds` into the epoch (run by `sharing` trainers
        together): record it as diverged; it trains no more."""
        self.diverged = True
        self._add_seconds(seconds, sharing)
        self._update_record()
        self.record.save(DIVERGED, error=str(exc))
        self.log.error("%s: %s", self.record.out_dir.name, exc)

    def end_epoch(
        self,
        stats: dict[str, StepStats],
        val: dict[str, float],
        test: dict[str, float],
        lr: float,
        seconds: float,
        sharing: int = 1,
    ) -> None:
        """After an epoch's training and evaluation (`seconds` long, run by `sharing` trainers together):
        record its history rows, checkpoint, and complete the run after its last."""
        self.progress.epoch += 1
        self._add_seconds(seconds, sharing)
        epoch = self.progress.epoch
        rows = self._history_rows(epoch, stats, val, test, lr, seconds)
        self.record.add_epoch(rows)
        self.loggers.log_epoch(epoch, self.progress.step, rows, self.method.counters())
        self._log_epoch(epoch, stats, val, test, summary=sharing == 1)
        self._update_record()
        self.checkpoints.save(self.state_dict(), epoch)
        self.record.save(RUNNING)
        if not self.training:
            self.complete()

    def complete(self) -> None:
        """All epochs trained (and checkpointed): the record says completed and the checkpoints go."""
        self.record.save(COMPLETED)
        self.checkpoints.remove(keep_last=self.config.trainer.keep_checkpoint)

    def evaluate(self, split: EvalSet) -> dict[str, float]:
        """Accuracy of every target on `split` (the validation or the test set), with the method in its evaluation mode."""
        correct: dict[str, torch.Tensor] = {}
        self.method.eval_mode("val" if split is self.data.val else "test")
        with torch.no_grad():
            for images, labels in split:
                with self.parts.speed.autocast():
                    predictions = self.method.predict(images)
                for target, logits in predictions.items():
                    hits = (logits.argmax(1) == labels).sum()
                    correct[target] = correct[target] + hits if target in correct else hits
        self.method.train_mode()
        return {target: float(hits) / len(split) for target, hits in correct.items()}

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs (what a checkpoint holds), with the config it belongs to."""
        scaler = self.parts.grad_scaler
        return {
            "progress": vars(self.progress).copy(),
            "method": self.method.state_dict(),
            "schedules": {name: s.state_dict() for name, s in self.parts.lr_schedules.items()},
            "rng": rng_state(self.parts.device),
            "grad_scaler": scaler.state_dict() if scaler is not None else None,
            "history": self.record.history,
            "config": self.record.data["config"],
            "recoveries": self.record.data.get("checkpoint_recoveries", []),
        }

    def resume(self, resumable: Resumable) -> None:
        """Continue from the checkpoint :func:`~spacing.checkpoint.read_checkpoints` found (its config already checked)."""
        state = resumable.state
        assert state is not None
        self.method.load_state_dict(state["method"])
        for name, schedule in self.parts.lr_schedules.items():
            schedule.load_state_dict(state["schedules"][name])
        restore_rng_state(state["rng"], self.parts.device)
        if self.parts.grad_scaler is not None and state.get("grad_scaler"):
            self.parts.grad_scaler.load_state_dict(state["grad_scaler"])
        self.progress = Progress(**state["progress"])
        self.record.restore_history(state["history"])
        self._update_record()
        self.log.info("resumed from %s at epoch %d", resumable.path, self.progress.epoch)

    def _check_finite(self, totals: dict[str, StepStats], epoch: int) -> None:
        for target, stats in totals.items():
            if not torch.isfinite(stats.loss_sum):
                raise Diverged(
                    f"the {target} loss became {float(stats.loss_sum)} in epoch {epoch + 1} "
                    f"(by step {self.progress.step}); lower trainer.lr or check the data."
                )

    def _history_rows(
        self,
        epoch: int,
        stats: dict[str, StepStats],
        val: dict[str, float],
        test: dict[str, float],
        lr: float,
        seconds: float,
    ) -> list[dict[str, Any]]:
        rows = []
        for target in self.method.targets:
            loss, acc = stats[target].summary() if target in stats else (None, None)
            rows.append(
                {
                    "epoch": epoch,
                    "target": target,
                    "train_loss": loss,
                    "train_acc": acc,
                    "val_acc": val.get(target),
                    "test_acc": test[target],
                    "lr": lr,
                    "seconds": round(seconds, 4),
                }
            )
        return rows

    def _log_epoch(
        self, epoch: int, stats: dict[str, StepStats], val: dict[str, float], test: dict[str, float], summary: bool
    ) -> None:
        """The cell's line of the epoch, naming it; `summary`: it is also its job's line of the epoch (not fused)."""
        parts = [_target_numbers(target, stats, val, test) for target in self.method.targets]
        self.log.info(
            "epoch %d/%d | %s | %s", epoch, self.method.epochs, self.record.out_dir.name, " | ".join(parts),
            extra={EPOCH_SUMMARY: summary},
        )

    def _add_seconds(self, seconds: float, sharing: int) -> None:
        self.progress.wall_seconds += seconds
        self.progress.cost_seconds += seconds / sharing

    def _update_record(self) -> None:
        progress = self.progress
        self.record.update(
            steps=progress.step,
            wall_time_s=round(progress.wall_seconds, 3),
            images_per_s=round(progress.images / progress.train_seconds, 2) if progress.train_seconds else None,
            counters=self.method.counters(),
        )
        fused = self.record.data.get("fused")
        if fused is not None and progress.wall_seconds > 0:
            # The epochs this cell ran alone (an offline KD cell's student phase) are all its own.
            self.record.update(fused={**fused, "cost_share": progress.cost_seconds / progress.wall_seconds})


def fit_together(trainers: Sequence[Trainer]) -> list[dict[str, Any]]:
    """The one loop: train `trainers` epoch by epoch, in lock-step over one batch stream; returns their run records.

    One trainer is an ordinary run. Several are a fused group (:mod:`spacing.fused`), all at the
    same epoch: the first is the leader, which trains the shared targets and has the most epochs;
    the others follow it (:meth:`Trainer.follow`) and each step do only their own part, after the
    leader's. Each is evaluated on its own targets, the shared ones' accuracies copied from the
    leader's; each records and checkpoints its own epochs, with the group's times. A run whose
    loss stops being finite is recorded as diverged and stops; a diverged leader keeps training
    (unrecorded) while others need its shared targets.
    """
    leader = trainers[0]
    for trainer in trainers:
        trainer.start()
        if not trainer.training:
            trainer.complete()  # resumed from its last epoch's checkpoint: killed before it said so
    while any(trainer.live for trainer in trainers):
        epoch = leader.progress.epoch
        active = [t for t in trainers if t.training and (t.live or t is leader)]
        started = time.perf_counter()
        lrs = [trainer.lr for trainer in active]
        stats = train_epoch_together(active, epoch)
        if not any(trainer.live for trainer in active):
            break
        val = _evaluate_together(active, lambda trainer: trainer.data.val) if leader.data.val is not None else None
        test = _evaluate_together(active, lambda trainer: trainer.data.test)
        _step_lr_schedules(active, epoch)
        seconds = time.perf_counter() - started
        for i, trainer in enumerate(active):
            if trainer.live:
                trainer.end_epoch(stats[i], val[i] if val is not None else {}, test[i], lrs[i], seconds, len(active))
            else:
                trainer.progress.epoch += 1  # a diverged leader, still training the shared targets
        if len(active) > 1:
            _log_group_epoch(active, stats, val, test)
    return [trainer.record.data for trainer in trainers]


def _log_group_epoch(
    trainers: Sequence[Trainer],
    stats: list[dict[str, StepStats]],
    val: list[dict[str, float]] | None,
    test: list[dict[str, float]],
) -> None:
    """The fused group's line of the epoch just ended: the shared targets' numbers once (the leader's,
    the first), then for each other target its test accuracy in every cell, named by what sets the
    cells apart (:func:`cell_labels`)."""
    leader = trainers[0]
    shared = [t for t in leader.method.targets if any(t in trainer.method.shared_targets for trainer in trainers)]
    parts = [_target_numbers(target, stats[0], val[0] if val is not None else {}, test[0]) for target in shared]
    labels = cell_labels([trainer.record.out_dir.name for trainer in trainers])
    own = dict.fromkeys(t for trainer in trainers for t in trainer.method.targets if t not in shared)
    for target in own:
        columns = [f"{label} {acc[target]:.4f}" for label, acc in zip(labels, test) if target in acc]
        parts.append(f"{target} test: {', '.join(columns)}")
    log.info(
        "fused group of %d cells, epoch %d/%d | %s", len(trainers), leader.progress.epoch, leader.method.epochs,
        " | ".join(parts), extra={EPOCH_SUMMARY: True},
    )


def cell_labels(names: Sequence[str]) -> list[str]:
    """Short names of the cells of one group: the parts of their dir names (``ema-i0.5-control-seed1-<hash>``)
    that not all of them share, without the hash; a name left with nothing is its hash."""
    parts = [name.split("-") for name in names]
    common = set.intersection(*(set(p[:-1]) for p in parts)) if parts else set()
    return ["-".join(part for part in p[:-1] if part not in common) or p[-1] for p in parts]


def _target_numbers(target: str, stats: dict[str, StepStats], val: dict[str, float], test: dict[str, float]) -> str:
    """``<target>: loss L val V test T`` (the loss where the target trained this epoch, val where there is a split)."""
    train = f"loss {stats[target].summary()[0]:.4f} " if target in stats else ""
    val_part = f"val {val[target]:.4f} " if target in val else ""
    return f"{target}: {train}{val_part}test {test[target]:.4f}"


def train_epoch_together(trainers: Sequence[Trainer], epoch: int) -> list[dict[str, StepStats]]:
    """One pass of `trainers` (the first leads, see :func:`fit_together`) over epoch `epoch`'s batches; their summed stats per target.

    A follower's stats of the shared targets are the leader's of the same step. The host reads
    from the device every ``trainer.log_every`` steps: progress bar, finiteness, tracker steps.
    """
    leader = trainers[0]
    log_every = leader.config.trainer.log_every
    totals: list[dict[str, StepStats]] = [{} for _ in trainers]
    logged: list[dict[str, StepStats]] = [{} for _ in trainers]
    for trainer in trainers:
        trainer.method.train_mode()
    started = time.perf_counter()
    bar = tqdm(
        total=leader.data.train.steps_per_epoch,
        desc=f"epoch {epoch + 1}/{leader.method.epochs}",
        leave=False,
        disable=True if in_sweep() else None,  # a sweep's terminal shows the sweep's view (spacing.sweep_view)
        dynamic_ncols=True,
    )
    with bar:
        for i, batch in enumerate(leader.data.train.epoch(epoch)):
            shared: dict[str, StepStats] = {}
            for trainer, total in zip(trainers, totals):
                if not (trainer.live or trainer is leader):
                    continue
                stats = trainer.method.train_step(batch, trainer.progress.step)
                if trainer.method.following:
                    stats = {**{t: shared[t] for t in trainer.method.shared_targets if t in shared}, **stats}
                else:
                    shared = stats
                merge_stats(total, stats)
                trainer.method.end_iteration()
                trainer.progress.step += 1
                trainer.progress.images += len(batch)
            bar.update()
            if (i + 1) % log_every == 0:
                _check_finite(trainers, totals, epoch, started)
                if not any(trainer.live for trainer in trainers):
                    return totals
                bar.set_postfix(_postfix(totals[0], leader.method.targets))
                for trainer, total, before in zip(trainers, totals, logged):
                    if trainer.live:
                        trainer.loggers.log_step(trainer.progress.step, _losses_since(total, before), trainer.lr)
                logged = [dict(total) for total in totals]
        for trainer, total in zip(trainers, totals):
            if trainer.live or trainer is leader:
                merge_stats(total, trainer.method.end_epoch(epoch))
                trainer.method.end_iteration()
    _check_finite(trainers, totals, epoch, started)
    seconds = time.perf_counter() - started
    for trainer in trainers:
        trainer.progress.train_seconds += seconds
    return totals


def _check_finite(trainers: Sequence[Trainer], totals: list[dict[str, StepStats]], epoch: int, started: float) -> None:
    """Record as diverged every live trainer whose summed loss of some target is no longer finite."""
    for trainer, total in zip(trainers, totals):
        if trainer.live:
            try:
                trainer._check_finite(total, epoch)
            except Diverged as exc:
                trainer.diverge(exc, time.perf_counter() - started, len(trainers))


def _evaluate_together(trainers: Sequence[Trainer], split_of: Callable[[Trainer], EvalSet]) -> list[dict[str, float]]:
    """Accuracies per target of each trainer on its split; a follower's shared targets are the leader's (the first's)."""
    results: list[dict[str, float]] = []
    for trainer in trainers:
        own = trainer.evaluate(split_of(trainer))
        if trainer.method.following:
            own = {**{t: results[0][t] for t in trainer.method.shared_targets if t in results[0]}, **own}
        results.append(own)
    return results


def _step_lr_schedules(trainers: Sequence[Trainer], epoch: int) -> None:
    """After epoch `epoch`: one step of the LR schedule of every optimizer that trained in it (a shared one once)."""
    schedules = {}
    for trainer in trainers:
        for name in trainer.method.scheduled_optimizers(epoch):
            schedule = trainer.parts.lr_schedules[name]
            schedules[id(schedule)] = schedule
    with warnings.catch_warnings():
        # A spaced student may not have stepped yet in its first epochs; its LR still follows the epochs.
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
        for schedule in schedules.values():
            schedule.step()


def _losses_since(totals: dict[str, StepStats], before: dict[str, StepStats]) -> dict[str, float]:
    """Mean loss per target over the steps added to `totals` since its snapshot `before`."""
    losses = {}
    for target, stats in totals.items():
        count = stats.count - (before[target].count if target in before else 0)
        if count:
            loss_sum = stats.loss_sum - before[target].loss_sum if target in before else stats.loss_sum
            losses[target] = float(loss_sum) / count
    return losses


def _postfix(totals: dict[str, StepStats], targets: tuple[str, ...]) -> dict[str, str]:
    shown = next((t for t in targets if t in totals), None)
    if shown is None:
        return {}
    loss, acc = totals[shown].summary()
    return {"loss": f"{loss:.4f}" if math.isfinite(loss) else str(loss), "acc": f"{acc:.3f}"}
