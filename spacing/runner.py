"""The one training loop every method runs in.

:func:`run` is what the CLI (and the tests) call: it turns a composed config into a run record
in `out_dir`, resuming from the dir's checkpoint when there is one and skipping the run when
the dir already holds a completed record of the same config.

What a cell dir can be left holding, and how a run copes with it:

- another process training it: the cell's claim (:mod:`spacing.claim`) says so, and the run
  stops before touching anything;
- a record or checkpoint of a different config: refused before anything is written;
- temp files of writes killed midway: removed once the claim is held;
- an unreadable latest checkpoint: the run resumes from the one before it
  (``checkpoint.prev.pt``), losing one epoch, and says so in ``checkpoint_recoveries``;
- a checkpoint left in a completed cell by a kill during its deletion: removed when skipping.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from spacing.atomic import atomic_write, disk_full_errno, remove_stale_temps
from spacing.claim import CLAIM_FILE, Claim, RunningElsewhere, claim
from spacing.config import Config, ModelConfig, to_config, to_dict
from spacing.data import EvalSet, build_data
from spacing.device import resolve_device
from spacing.errors import ConfigError, DiskFull, UserError
from spacing.loggers import LoggerList, build_loggers
from spacing.methods import MethodContext, StepStats, build_method
from spacing.methods.base import merge_stats
from spacing.models import build_model
from spacing.neutral import comparable
from spacing.optim import build_lr_schedule, build_optimizer
from spacing.record import HISTORY_FILE, RESULT_FILE, RunRecord, hardware, read_result
from spacing.seeding import restore_rng_state, rng_state, seed_everything
from spacing.speed import Speed

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.pt"
"""The checkpoint before the last one, kept so that a damaged last checkpoint costs one epoch, not the run."""
CHECKPOINT_KEYS = ("progress", "method", "schedules", "rng", "history", "config")
RUNNER_FILES = (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE, RESULT_FILE, HISTORY_FILE)
"""The files the runner writes into a cell dir (atomically, through temp files)."""


class Diverged(Exception):
    """The training loss stopped being finite."""


@dataclass
class Resumable:
    """What a cell dir's checkpoints offer a resume: the newest readable state, and the damaged ones passed over."""

    state: dict[str, Any] | None = None
    path: Path | None = None
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def epoch(self) -> int:
        return int(self.state["progress"]["epoch"]) if self.state is not None else 0


def run(cfg: DictConfig | Config, out_dir: Path | str, sweep_dir: Path | str | None = None) -> dict[str, Any]:
    """Train one run into `out_dir` and return its run record (the content of result.json).

    The cell is claimed first: if another live process holds it, :class:`RunningElsewhere` is
    raised and nothing in `out_dir` is touched. A record or checkpoint of a different config is
    refused (ConfigError) before anything is written. Other user errors (bad config, missing data,
    no GPU, a full disk) are recorded as ``failed`` and re-raised as :class:`UserError`; any other
    exception is recorded as ``failed`` and re-raised unchanged. `sweep_dir` (a multirun's root)
    groups the run with its sweep in the experiment trackers.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config_dict = to_dict(cfg)
    try:
        held = claim(out_dir)
    except OSError as exc:
        code = disk_full_errno(exc)
        if code is None:
            raise
        path = out_dir / CLAIM_FILE
        saved = (read_result(out_dir) or {}).get("epochs_completed") or 0
        raise DiskFull(_disk_full_sentence(path, code, saved, config_dict), path, code) from exc
    with held:
        return _run_claimed(cfg, config_dict, out_dir, sweep_dir, held)


def _run_claimed(
    cfg: DictConfig | Config, config_dict: dict[str, Any], out_dir: Path, sweep_dir: Path | str | None, held: Claim
) -> dict[str, Any]:
    options = config_dict.get("trainer") or {}
    resume = options.get("resume", True)
    previous = read_result(out_dir)
    if previous is not None and previous.get("status") == "completed":
        if comparable(previous.get("config", {})) != comparable(config_dict):
            raise ConfigError(
                f"{out_dir} already holds a completed run of a different config; "
                "choose another output dir (hydra.run.dir=...) or move that one away."
            )
        if resume:
            _remove_leftovers(out_dir)
            if not options.get("keep_checkpoint", False):
                remove_checkpoints(out_dir)  # left by a kill between the record and the deletion
            log.info("skipped: %s already holds a completed run of this config", out_dir)
            return previous
    resumable = read_checkpoints(out_dir) if resume else Resumable()
    if resumable.state is not None and comparable(resumable.state["config"]) != comparable(config_dict):
        raise ConfigError(
            f"{resumable.path} was written by a run with a different config; choose another output dir, "
            f"set trainer.resume=false, or delete {CHECKPOINT_FILE} and {PREVIOUS_CHECKPOINT_FILE} there."
        )
    _remove_leftovers(out_dir)
    if not resume:
        remove_checkpoints(out_dir)  # a fresh start must never fall back on another trajectory's checkpoint
    record = RunRecord(out_dir, config_dict)
    record.update(checkpoint_recoveries=_recoveries(resumable))
    if resumable.state is not None:
        record.restore_history(resumable.state["history"])  # so that a failure below keeps the epochs done
    loggers = LoggerList()
    trainer: Trainer | None = None
    try:
        config = to_config(cfg)
        loggers = build_loggers(config.logger)
        trainer = Trainer(
            config, config_dict, record, out_dir, loggers, Path(sweep_dir) if sweep_dir is not None else None, claim=held
        )
        if resumable.state is not None:
            assert resumable.path is not None
            trainer.load_checkpoint(resumable.state, resumable.path)
        return trainer.fit()
    except RunningElsewhere:
        raise  # this process lost the cell to another: it writes nothing more
    except Exception as exc:
        saved = trainer.saved_epoch if trainer is not None else resumable.epoch
        if isinstance(exc, DiskFull):
            full = DiskFull(_disk_full_sentence(exc.path, exc.errno, saved, config_dict), exc.path, exc.errno)
            _record_failure(record, str(full), saved)
            raise full from exc
        _record_failure(record, str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}", saved)
        raise
    finally:
        loggers.finish(record.data)


def read_checkpoints(out_dir: Path) -> Resumable:
    """The newest readable checkpoint in `out_dir` (the last one, else the one before), noting damaged ones.

    A missing last checkpoint with a previous one present is a kill between the two renames of a
    checkpoint write (see :func:`~spacing.atomic.atomic_write`), not damage.
    """
    found = Resumable()
    for name in (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE):
        path = out_dir / name
        if not path.exists():
            continue
        try:
            # On the CPU: RNG states must be CPU tensors, and load_state_dict moves weights and
            # optimizer state to where the live tensors are.
            state = torch.load(path, map_location="cpu", weights_only=False)
            missing = [key for key in CHECKPOINT_KEYS if key not in state] if isinstance(state, dict) else ["all"]
            if missing:
                raise ValueError(f"not a checkpoint of this harness (missing {', '.join(missing)})")
        except Exception as exc:  # any way a damaged file fails to load: truncated zip, bad pickle, empty
            reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
            log.warning("cannot read %s (%s); falling back on an earlier checkpoint", path, reason)
            found.unreadable.append((path, reason))
            continue
        found.state, found.path = state, path
        break
    return found


def _remove_leftovers(out_dir: Path) -> None:
    """Remove the temp files of the runner's writes that a kill interrupted (the cell's claim is held)."""
    for name in RUNNER_FILES:
        for tmp in remove_stale_temps(out_dir / name):
            log.info("removed %s, left by a write that was killed", tmp)


def remove_checkpoints(out_dir: Path, keep_last: bool = False) -> None:
    """Delete the cell's checkpoints (all but the last with `keep_last`)."""
    names = (PREVIOUS_CHECKPOINT_FILE,) if keep_last else (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE)
    for name in names:
        (out_dir / name).unlink(missing_ok=True)


def _recoveries(resumable: Resumable) -> list[dict[str, Any]]:
    """The record's ``checkpoint_recoveries``: those the resumed checkpoint carries, plus one per damaged file now."""
    earlier = list(resumable.state.get("recoveries", [])) if resumable.state is not None else []
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return earlier + [
        {
            "at": now,
            "unreadable": path.name,
            "error": reason,
            "resumed_from": resumable.path.name if resumable.path is not None else None,
            "resumed_at_epoch": resumable.epoch,
        }
        for path, reason in resumable.unreadable
    ]


def _record_failure(record: RunRecord, error: str, saved_epoch: int) -> None:
    """Save `record` as failed with the epochs its checkpoint holds (what a re-launch resumes from).

    A write error here (the disk may be full) is logged, so the error that failed the run is the one raised.
    """
    record.restore_history([row for row in record.history if row["epoch"] <= saved_epoch])
    try:
        record.save("failed", error=error)
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


@dataclass
class Progress:
    """Counters that survive a resume."""

    epoch: int = 0
    step: int = 0
    wall_seconds: float = 0.0
    train_seconds: float = 0.0
    images: int = 0


class Trainer:
    """Holds a run's data, method and schedules, and drives epochs of train + evaluate + save."""

    def __init__(
        self,
        config: Config,
        config_dict: dict[str, Any],
        record: RunRecord,
        out_dir: Path,
        loggers: LoggerList | None = None,
        sweep_dir: Path | None = None,
        claim: Claim | None = None,
    ) -> None:
        self.config = config
        self.config_dict = config_dict
        self.record = record
        self.out_dir = out_dir
        self.loggers = loggers if loggers is not None else LoggerList()
        self.claim = claim
        self.saved_epoch = 0
        """The epoch the newest good checkpoint on disk holds: where a re-launch would resume."""
        self._rotate = False
        """Whether checkpoint.pt holds this run's newest state, to be kept as checkpoint.prev.pt on the next save."""
        self.sweep_dir = sweep_dir
        trainer = config.trainer
        seed_everything(config.seed)
        self.device = resolve_device(trainer.device)
        record.update(**hardware(self.device))
        self.speed = Speed.resolve(trainer, self.device)
        self.grad_scaler = self.speed.grad_scaler()
        self.data = build_data(
            config.dataset, trainer.batch_size, trainer.eval_batch_size, config.seed, self.device, self.speed.memory_format
        )
        in_channels, image_size = self.data.image_shape[0], self.data.image_shape[-1]

        def make_model(name: str | None):  # type: ignore[no-untyped-def]
            model_cfg = config.model if name in (None, config.model.name) else ModelConfig(name=name)
            model = build_model(model_cfg, self.data.num_classes, in_channels, image_size).to(self.device)
            return self.speed.prepare(model)

        self.method = build_method(
            config.method,
            MethodContext(
                num_classes=self.data.num_classes,
                in_channels=in_channels,
                steps_per_epoch=self.data.train.steps_per_epoch,
                epochs=trainer.epochs,
                device=self.device,
                stream=self.data.train,
                seed=config.seed,
                build_model=make_model,
                build_optimizer=lambda params: build_optimizer(params, trainer),
                prepare=self.speed.prepare,
                autocast=self.speed.autocast,
                grad_scaler=self.grad_scaler,
            ),
        )
        self.schedules = {name: build_lr_schedule(opt, trainer) for name, opt in self.method.optimizers().items()}
        record.update(
            interval=self.method.cfg.interval,
            schedule=self.method.cfg.schedule,
            strength_name=self.method.strength_name,
            strength=self.method.strength,
            control=self.method.control(),
            epochs=self.method.epochs,
            data=self.data.sizes,
        )
        self.progress = Progress()

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_FILE

    @property
    def lr(self) -> float:
        """The learning rate history.csv reports: that of the first optimizer training in this epoch."""
        name = self.method.scheduled_optimizers(self.progress.epoch)[0]
        return self.method.optimizers()[name].param_groups[0]["lr"]

    def fit(self) -> dict[str, Any]:
        trainer = self.config.trainer
        # After the checkpoint (loaded by run()): a resumed run continues its tracker runs.
        self.loggers.start(self.record.data, self.out_dir, self.sweep_dir, self.record.history, self.data.train.steps_per_epoch)
        log.info(
            "training %s on %s (%s, %d steps/epoch) on %s -> %s",
            self.config.method.name,
            self.config.dataset.name,
            self.config.model.name,
            self.data.train.steps_per_epoch,
            self.device,
            self.out_dir,
        )
        self.record.save("running")
        while self.progress.epoch < self.method.epochs:
            started = time.perf_counter()
            epoch = self.progress.epoch
            lr = self.lr
            try:
                stats = self.train_epoch(epoch)
            except Diverged as exc:
                self._finish_timing(started)
                self.record.save("diverged", error=str(exc))
                log.error("%s", exc)
                return self.record.data
            val = self.evaluate(self.data.val) if self.data.val is not None else {}
            test = self.evaluate(self.data.test)
            with warnings.catch_warnings():
                # A spaced student may not have stepped yet in its first epochs; its LR still follows the epochs.
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
                for name in self.method.scheduled_optimizers(epoch):
                    self.schedules[name].step()
            self.progress.epoch += 1
            seconds = time.perf_counter() - started
            self.progress.wall_seconds += seconds
            rows = self._history_rows(epoch + 1, stats, val, test, lr, seconds)
            self.record.add_epoch(rows)
            self.loggers.log_epoch(epoch + 1, self.progress.step, rows, self.method.counters())
            self._log_epoch(epoch + 1, stats, val, test)
            self._update_record()
            self.save_checkpoint()
            self.record.save("running")
        self.record.save("completed")
        remove_checkpoints(self.out_dir, keep_last=trainer.keep_checkpoint)
        return self.record.data

    def train_epoch(self, epoch: int) -> dict[str, StepStats]:
        """One pass over the training stream; returns the summed stats per target."""
        trainer = self.config.trainer
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
                if (i + 1) % trainer.log_every == 0:
                    self._check_finite(totals, epoch)
                    bar.set_postfix(_postfix(totals, self.method.targets))
                    self.loggers.log_step(self.progress.step, _losses_since(totals, logged), self.lr)
                    logged = dict(totals)
            merge_stats(totals, self.method.end_epoch(epoch))
            self.method.end_iteration()
        self._check_finite(totals, epoch)
        self.progress.train_seconds += time.perf_counter() - started
        return totals

    def _check_finite(self, totals: dict[str, StepStats], epoch: int) -> None:
        for target, stats in totals.items():
            if not torch.isfinite(stats.loss_sum):
                raise Diverged(
                    f"the {target} loss became {float(stats.loss_sum)} in epoch {epoch + 1} "
                    f"(by step {self.progress.step}); lower trainer.lr or check the data."
                )

    def _finish_timing(self, started: float) -> None:
        self.progress.wall_seconds += time.perf_counter() - started
        self._update_record()

    def evaluate(self, split: EvalSet) -> dict[str, float]:
        """Accuracy of every target on `split` (the validation or the test set), with the method in its evaluation mode."""
        correct: dict[str, torch.Tensor] = {}
        self.method.eval_mode("val" if split is self.data.val else "test")
        with torch.no_grad():
            for images, labels in split:
                with self.speed.autocast():
                    predictions = self.method.predict(images)
                for target, logits in predictions.items():
                    hits = (logits.argmax(1) == labels).sum()
                    correct[target] = correct[target] + hits if target in correct else hits
        self.method.train_mode()
        return {target: float(hits) / len(split) for target, hits in correct.items()}

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

    def save_checkpoint(self) -> None:
        """Write this epoch's state to checkpoint.pt, keeping the one before as checkpoint.prev.pt.

        Only while this process still holds the cell's claim; each save is also a heartbeat.
        """
        if self.claim is not None:
            self.claim.refresh()
        state = {
            "progress": vars(self.progress).copy(),
            "method": self.method.state_dict(),
            "schedules": {name: s.state_dict() for name, s in self.schedules.items()},
            "rng": rng_state(self.device),
            "grad_scaler": self.grad_scaler.state_dict() if self.grad_scaler is not None else None,
            "history": self.record.history,
            "config": self.config_dict,
            "recoveries": self.record.data.get("checkpoint_recoveries", []),
        }
        previous = self.out_dir / PREVIOUS_CHECKPOINT_FILE if self._rotate else None
        atomic_write(self.checkpoint_path, lambda handle: torch.save(state, handle), previous=previous)
        self._rotate = True
        self.saved_epoch = self.progress.epoch

    def load_checkpoint(self, state: dict[str, Any], path: Path) -> None:
        """Continue from `state`, read from `path` by :func:`read_checkpoints` (which checked its config).

        Resumed from checkpoint.prev.pt (the last one was missing or damaged), the next save
        replaces checkpoint.pt and leaves the good previous one in place.
        """
        self.method.load_state_dict(state["method"])
        for name, schedule in self.schedules.items():
            schedule.load_state_dict(state["schedules"][name])
        restore_rng_state(state["rng"], self.device)
        if self.grad_scaler is not None and state.get("grad_scaler"):
            self.grad_scaler.load_state_dict(state["grad_scaler"])
        self.progress = Progress(**state["progress"])
        self.record.restore_history(state["history"])
        self._update_record()
        self._rotate = path.name == CHECKPOINT_FILE
        self.saved_epoch = self.progress.epoch
        log.info("resumed from %s at epoch %d", path, self.progress.epoch)


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
