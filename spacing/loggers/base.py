"""What every experiment tracker receives, and the metric names it receives it under.

A tracker is a :class:`Logger`: it is started once per process with a :class:`RunInfo`, gets flat
``{name: number}`` dicts per logged step and per epoch, and is finished with the run's status and
final numbers. The names are built here, once, so every tracker shows the same series:

- per step (x = global step): ``step/train_loss/<target>`` (mean over the steps since the last
  log), ``step/lr``;
- per epoch (x = epoch): ``<column>/<target>`` for the history.csv columns ``train_loss``,
  ``train_acc``, ``val_acc``, ``test_acc``, plus ``lr``, ``epoch_seconds`` and
  ``counters/<name>`` (the method's own counts);
- at the end: ``final/<metric>/<target>`` for every number in result.json's ``metrics``,
  ``final/counters/<name>``, and ``final/<key>`` for steps, time and throughput.

Tracker packages are optional: a tracker imports its package in its constructor and turns an
ImportError into :func:`missing_package`'s one sentence.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spacing.contract import EPOCH_VALUES
from spacing.errors import ConfigError

FINAL_KEYS = ("epochs_completed", "steps", "wall_time_s", "images_per_s")
"""result.json keys sent as ``final/<key>``."""


@dataclass(frozen=True)
class RunInfo:
    """Who a run is, for a tracker: a readable name, its group, tags, config and where it lives."""

    name: str
    """Readable: method, interval, (schedule,) strength, seed; a sweep over other knobs repeats names."""
    group: str | None
    """The sweep the run belongs to (None for a run on its own)."""
    tags: dict[str, str]
    config: dict[str, Any]
    """The resolved config, as in result.json."""
    out_dir: Path
    """The run's output dir (result.json, history.csv, checkpoint)."""
    store_dir: Path
    """Where a store shared by a sweep's runs goes: the sweep dir in a multirun, the run dir otherwise."""

    @classmethod
    def of(cls, record: dict[str, Any], out_dir: Path, sweep_dir: Path | None, group: str | None) -> RunInfo:
        """Info from a run record (the identity fields of result.json)."""
        group = group or (sweep_dir.name if sweep_dir is not None else None)
        tags = {
            "method": record.get("method"),
            "interval": record.get("interval"),
            "schedule": record.get("schedule"),
            "strength_name": record.get("strength_name"),
            "strength": record.get("strength"),
            "seed": record.get("seed"),
            "dataset": record.get("dataset"),
            "model": record.get("model"),
            "sweep": group,
        }
        return cls(
            name=run_name(record),
            group=group,
            tags={key: _text(value) for key, value in tags.items() if value is not None},
            config=record.get("config") or {},
            out_dir=out_dir.resolve(),
            store_dir=(sweep_dir if sweep_dir is not None else out_dir).resolve(),
        )


def run_name(record: dict[str, Any]) -> str:
    """E.g. ``ema-i0.1-decay0.999-seed0``; ``-random`` marks the random schedule, and a control run
    is named after the spaced cell it controls, ``-control`` added (``ema-i0.5-decay0.7-control-seed0``)."""
    control = record.get("control")
    cell = {**record, **control} if isinstance(control, dict) else record
    parts = [str(record.get("method")), f"i{_text(cell.get('interval'))}"]
    if cell.get("schedule") not in (None, "periodic"):
        parts.append(str(cell["schedule"]))
    if cell.get("strength") is not None:
        parts.append(f"{record.get('strength_name')}{_text(cell['strength'])}")
    if isinstance(control, dict):
        parts.append("control")
    parts.append(f"seed{record.get('seed')}")
    return "-".join(parts)


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    """The entries that are numbers, as floats (drops None, text and bools)."""
    return {
        key: float(value)
        for key, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def step_metrics(losses: dict[str, float], lr: float) -> dict[str, float]:
    """Per-step values: mean train loss per target since the last log, and the learning rate."""
    return {**{f"step/train_loss/{target}": loss for target, loss in losses.items()}, "step/lr": lr}


def epoch_metrics(rows: list[dict[str, Any]], counters: dict[str, Any]) -> dict[str, float]:
    """Per-epoch values from one epoch's history.csv rows (one per target) and the method's counters."""
    values: dict[str, Any] = {}
    for row in rows:
        for column in EPOCH_VALUES:
            values[f"{column}/{row['target']}"] = row[column]
    if rows:
        values["lr"] = rows[0]["lr"]
        values["epoch_seconds"] = rows[0]["seconds"]
    values.update({f"counters/{name}": value for name, value in counters.items()})
    return _numbers(values)


def final_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The final numbers of a run record: metrics per target, counters, steps, time, throughput."""
    values: dict[str, Any] = {f"final/{key}": record.get(key) for key in FINAL_KEYS}
    for target, metrics in (record.get("metrics") or {}).items():
        values.update({f"final/{name}/{target}": value for name, value in metrics.items()})
    values.update({f"final/counters/{name}": value for name, value in (record.get("counters") or {}).items()})
    return _numbers(values)


def missing_package(tracker: str, package: str) -> ConfigError:
    """The one sentence for a selected tracker whose package is not installed."""
    return ConfigError(
        f"logger '{tracker}' needs the {package} package, which is not installed; "
        f'install it with pip install -e ".[{tracker}]" or choose another logger.'
    )


class Logger(ABC):
    """One experiment tracker. Methods may raise: :class:`spacing.loggers.LoggerList` contains it.

    The constructor only checks that the tracker's package is importable (raising
    :func:`missing_package`); nothing is opened or written before :meth:`start`.
    """

    name: str

    @abstractmethod
    def start(self, info: RunInfo, resume_id: str | None) -> str | None:
        """Open the tracker's run and send the config, tags and output dir; return its run id.

        `resume_id` is the id this tracker returned when the same run started before (it is
        resuming from a checkpoint): the tracker continues that run instead of opening another.
        A tracker without run ids (TensorBoard: event files in the run dir) returns None.
        """

    @abstractmethod
    def log_step(self, step: int, values: dict[str, float]) -> None:
        """Values at global step `step` (the number of steps done)."""

    @abstractmethod
    def log_epoch(self, epoch: int, step: int, values: dict[str, float]) -> None:
        """Values of epoch `epoch` (1-based), which ended at global step `step`."""

    @abstractmethod
    def finish(self, status: str, error: str | None, values: dict[str, float]) -> None:
        """Send the final values and the status (completed, failed, diverged, running = interrupted), and close."""
