"""The one training loop every method runs in: epochs of train, evaluate, record and checkpoint.

:class:`Trainer` drives built parts (:mod:`spacing.build`) and never asks which method it runs;
the checkpoint's files are :class:`spacing.checkpoint.Checkpoints`' business. Inside an epoch the
host reads from the device only every ``trainer.log_every`` steps (progress bar, NaN check,
tracker step values); the epoch's sums are read once at its end.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
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
        record.update(**parts.record_fields())

    @property
    def lr(self) -> float:
        """The learning rate history.csv reports: that of the first optimizer training in this epoch."""
        name = self.method.scheduled_optimizers(self.progress.epoch)[0]
        return self.method.optimizers()[name].param_groups[0]["lr"]

    def fit(self) -> dict[str, Any]:
        """Train the epochs left, evaluating, recording and checkpointing after each; returns the run record."""
        out_dir = self.record.out_dir
        self.loggers.start(self.record.data, out_dir, self.sweep_dir, self.record.history, self.data.train.steps_per_epoch)
        log.info(
            "training %s on %s (%s, %d steps/epoch) on %s -> %s",
            self.config.method.name,
            self.config.dataset.name,
            self.config.model.name,
            self.data.train.steps_per_epoch,
            self.parts.device,
            out_dir,
        )
        self.record.save(RUNNING)
        while self.progress.epoch < self.method.epochs:
            started = time.perf_counter()
            epoch = self.progress.epoch
            lr = self.lr
            try:
                stats = self.train_epoch(epoch)
            except Diverged as exc:
                self.progress.wall_seconds += time.perf_counter() - started
                self._update_record()
                self.record.save(DIVERGED, error=str(exc))
                log.error("%s", exc)
                return self.record.data
            val = self.evaluate(self.data.val) if self.data.val is not None else {}
            test = self.evaluate(self.data.test)
            self._step_lr_schedules(epoch)
            self.progress.epoch += 1
            seconds = time.perf_counter() - started
            self.progress.wall_seconds += seconds
            rows = self._history_rows(epoch + 1, stats, val, test, lr, seconds)
            self.record.add_epoch(rows)
            self.loggers.log_epoch(epoch + 1, self.progress.step, rows, self.method.counters())
            self._log_epoch(epoch + 1, stats, val, test)
            self._update_record()
            self.checkpoints.save(self.state_dict(), self.progress.epoch)
            self.record.save(RUNNING)
        self.record.save(COMPLETED)
        self.checkpoints.remove(keep_last=self.config.trainer.keep_checkpoint)
        return self.record.data

    def train_epoch(self, epoch: int) -> dict[str, StepStats]:
        """One pass over the training stream; returns the summed stats per target."""
        log_every = self.config.trainer.log_every
        totals: dict[str, StepStats] = {}
        logged: dict[str, StepStats] = {}
        self.method.train_mode()
        started = time.perf_counter()
        bar = tqdm(
            total=self.data.train.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{self.method.epochs}",
            leave=False,
            disable=None,
            dynamic_ncols=True,
        )
        with bar:
            for i, batch in enumerate(self.data.train.epoch(epoch)):
                merge_stats(totals, self.method.train_step(batch, self.progress.step))
                self.method.end_iteration()
                self.progress.step += 1
                self.progress.images += len(batch)
                bar.update()
                if (i + 1) % log_every == 0:
                    self._check_finite(totals, epoch)
                    bar.set_postfix(_postfix(totals, self.method.targets))
                    self.loggers.log_step(self.progress.step, _losses_since(totals, logged), self.lr)
                    logged = dict(totals)
            merge_stats(totals, self.method.end_epoch(epoch))
            self.method.end_iteration()
        self._check_finite(totals, epoch)
        self.progress.train_seconds += time.perf_counter() - started
        return totals

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
        log.info("resumed from %s at epoch %d", resumable.path, self.progress.epoch)

    def _step_lr_schedules(self, epoch: int) -> None:
        """After epoch `epoch`: a step of the LR schedule of every optimizer that trained in it."""
        with warnings.catch_warnings():
            # A spaced student may not have stepped yet in its first epochs; its LR still follows the epochs.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            for name in self.method.scheduled_optimizers(epoch):
                self.parts.lr_schedules[name].step()

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

    def _log_epoch(self, epoch: int, stats: dict[str, StepStats], val: dict[str, float], test: dict[str, float]) -> None:
        parts = []
        for target in self.method.targets:
            train = f"loss {stats[target].summary()[0]:.4f} " if target in stats else ""
            val_part = f"val {val[target]:.4f} " if target in val else ""
            parts.append(f"{target}: {train}{val_part}test {test[target]:.4f}")
        log.info("epoch %d/%d | %s", epoch, self.method.epochs, " | ".join(parts))

    def _update_record(self) -> None:
        progress = self.progress
        self.record.update(
            steps=progress.step,
            wall_time_s=round(progress.wall_seconds, 3),
            images_per_s=round(progress.images / progress.train_seconds, 2) if progress.train_seconds else None,
            counters=self.method.counters(),
        )


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
