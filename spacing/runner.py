"""The one training loop every method runs in.

:func:`run` is what the CLI (and the tests) call: it turns a composed config into a run record
in `out_dir`, resuming from the dir's checkpoint when there is one and skipping the run when
the dir already holds a completed record of the same config.
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
from omegaconf import DictConfig
from tqdm import tqdm

from spacing.atomic import atomic_write
from spacing.config import Config, ModelConfig, to_config, to_dict
from spacing.data import EvalSet, build_data
from spacing.device import resolve_device
from spacing.errors import ConfigError, UserError
from spacing.loggers import LoggerList, build_loggers
from spacing.methods import MethodContext, StepStats, build_method
from spacing.methods.base import merge_stats
from spacing.models import build_model
from spacing.optim import build_lr_schedule, build_optimizer
from spacing.record import RunRecord, read_result
from spacing.seeding import restore_rng_state, rng_state, seed_everything
from spacing.speed import Speed

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
RESUME_INSENSITIVE = (
    ("trainer", "resume"),
    ("trainer", "keep_checkpoint"),
    ("trainer", "log_every"),
    ("trainer", "device"),
    ("trainer", "eval_batch_size"),
    ("dataset", "root"),
    ("dataset", "download"),
    ("dataset", "workers"),
    ("trainer", "compile"),
)
"""Config keys that may differ between a run and its resumption: they do not change the numbers."""
RESUME_INSENSITIVE_GROUPS = ("logger",)
"""Config groups that may differ between a run and its resumption (or its skipped re-launch)."""


class Diverged(Exception):
    """The training loss stopped being finite."""


def run(cfg: DictConfig | Config, out_dir: Path | str, sweep_dir: Path | str | None = None) -> dict[str, Any]:
    """Train one run into `out_dir` and return its run record (the content of result.json).

    User errors (bad config, missing data, no GPU) are recorded as ``failed`` and re-raised as
    :class:`UserError`; any other exception is recorded as ``failed`` and re-raised unchanged.
    `sweep_dir` (a multirun's root) groups the run with its sweep in the experiment trackers.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config_dict = to_dict(cfg)
    previous = read_result(out_dir)
    if previous is not None and previous.get("status") == "completed":
        if _comparable(previous.get("config", {})) != _comparable(config_dict):
            raise ConfigError(
                f"{out_dir} already holds a completed run of a different config; "
                "choose another output dir (hydra.run.dir=...) or move that one away."
            )
        if (config_dict.get("trainer") or {}).get("resume", True):
            log.info("skipped: %s already holds a completed run of this config", out_dir)
            return previous
    record = RunRecord(out_dir, config_dict)
    loggers = LoggerList()
    try:
        config = to_config(cfg)
        loggers = build_loggers(config.logger)
        trainer = Trainer(config, config_dict, record, out_dir, loggers)
        loggers.start(record.data, out_dir, Path(sweep_dir) if sweep_dir is not None else None)
        return trainer.fit()
    except UserError as exc:
        record.save("failed", error=str(exc))
        raise
    except Exception as exc:
        record.save("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        loggers.finish(record.data)


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """`config` without the keys listed in RESUME_INSENSITIVE and the groups in RESUME_INSENSITIVE_GROUPS."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in config.items()}
    for group, key in RESUME_INSENSITIVE:
        if isinstance(out.get(group), dict):
            out[group].pop(key, None)
    for group in RESUME_INSENSITIVE_GROUPS:
        out.pop(group, None)
    return out


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
    ) -> None:
        self.config = config
        self.config_dict = config_dict
        self.record = record
        self.out_dir = out_dir
        self.loggers = loggers if loggers is not None else LoggerList()
        trainer = config.trainer
        seed_everything(config.seed)
        self.device = resolve_device(trainer.device)
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
        record.update(strength_name=self.method.strength_name, strength=self.method.strength)
        self.progress = Progress()

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_FILE

    @property
    def lr(self) -> float:
        """The learning rate of the first optimizer (the one history.csv reports)."""
        return next(iter(self.method.optimizers().values())).param_groups[0]["lr"]

    def fit(self) -> dict[str, Any]:
        trainer = self.config.trainer
        if trainer.resume and self.checkpoint_path.exists():
            self.load_checkpoint()
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
        while self.progress.epoch < trainer.epochs:
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
                for schedule in self.schedules.values():
                    schedule.step()
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
        if not trainer.keep_checkpoint:
            self.checkpoint_path.unlink(missing_ok=True)
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
            desc=f"epoch {epoch + 1}/{trainer.epochs}",
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
        """Accuracy of every target on `split`, with the method in its evaluation mode."""
        correct: dict[str, torch.Tensor] = {}
        self.method.eval_mode()
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
        log.info("epoch %d/%d | %s", epoch, self.config.trainer.epochs, " | ".join(parts))

    def _update_record(self) -> None:
        progress = self.progress
        self.record.update(
            steps=progress.step,
            wall_time_s=round(progress.wall_seconds, 3),
            images_per_s=round(progress.images / progress.train_seconds, 2) if progress.train_seconds else None,
            counters=self.method.counters(),
        )

    def save_checkpoint(self) -> None:
        state = {
            "progress": vars(self.progress).copy(),
            "method": self.method.state_dict(),
            "schedules": {name: s.state_dict() for name, s in self.schedules.items()},
            "rng": rng_state(self.device),
            "grad_scaler": self.grad_scaler.state_dict() if self.grad_scaler is not None else None,
            "history": self.record.history,
            "config": self.config_dict,
        }
        atomic_write(self.checkpoint_path, lambda handle: torch.save(state, handle))

    def load_checkpoint(self) -> None:
        # On the CPU: RNG states must be CPU tensors, and load_state_dict moves weights and
        # optimizer state to where the live tensors are.
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        if _comparable(state["config"]) != _comparable(self.config_dict):
            raise ConfigError(
                f"{self.checkpoint_path} was written by a run with a different config; "
                "delete it, choose another output dir, or set trainer.resume=false."
            )
        self.method.load_state_dict(state["method"])
        for name, schedule in self.schedules.items():
            schedule.load_state_dict(state["schedules"][name])
        restore_rng_state(state["rng"], self.device)
        if self.grad_scaler is not None and state.get("grad_scaler"):
            self.grad_scaler.load_state_dict(state["grad_scaler"])
        self.progress = Progress(**state["progress"])
        self.record.restore_history(state["history"])
        self._update_record()
        log.info("resumed from %s at epoch %d", self.checkpoint_path, self.progress.epoch)


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
