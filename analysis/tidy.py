"""The tidy table (one row per run and evaluation target) and its aggregation over seeds.

Every figure and table is a function of these frames, so the rules that decide what a number
means live here, once: which result.json key a ``--metric`` reads, which target is a method's
"main" one, what identifies a cell, and that only completed runs with a value are averaged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

COMPLETED = "completed"


@dataclass(frozen=True)
class Metric:
    """A ``--metric`` choice: the result.json key it reads, a short label for axes, a description for captions."""

    key: str
    label: str
    description: str


METRICS: dict[str, Metric] = {
    "final": Metric("test_acc", "final epoch", "final-epoch test accuracy"),
    "best_val": Metric("test_acc_at_best_val", "at best-val epoch", "test accuracy at the best-validation epoch"),
    "best_test": Metric("best_test_acc", "best over epochs", "best test accuracy over epochs (what the paper reported)"),
}

#: The target each paper reports for a method; ``--target`` overrides it wherever a run has one.
MAIN_TARGET: dict[str, str] = {
    "baseline": "model",
    "dropout": "model",
    "ema": "ema",
    "online_kd": "student",
    "self_kd": "ensemble",
}
#: For method names added by presets: the first of these targets a run has is its main one.
TARGET_PREFERENCE = ("ensemble", "student", "ema", "model")

#: What identifies a point of a sweep; seeds of the same cell are averaged.
CELL = ("method", "schedule", "interval", "strength_name", "strength", "dataset", "model")
POINT = (*CELL, "target")
METRIC_KEYS = (
    "test_acc", "best_test_acc", "val_acc", "best_val_acc",
    "test_acc_at_best_val", "best_val_epoch", "best_test_epoch",
)
RUN_KEYS = (
    "sweep", "sweep_root", "path", "status", *CELL, "seed",
    "epochs", "epochs_completed", "steps", "wall_time_s", "images_per_s", "error",
)
TIDY_COLUMNS = (*RUN_KEYS, "target", "main", *METRIC_KEYS)


def metric_label(metric: str) -> str:
    """The axis / colour-bar label naming the metric, e.g. 'test accuracy (%), final epoch'."""
    return f"test accuracy (%), {METRICS[metric].label}"


def metric_caption(metric: str) -> str:
    """The metric in titles and captions, e.g. 'metric final: final-epoch test accuracy'."""
    return f"metric {metric}: {METRICS[metric].description}"


def main_target(method: str, targets: Iterable[str]) -> str:
    """The target reported for ``method`` given the targets a run evaluated."""
    targets = list(targets)
    if method in MAIN_TARGET:
        return MAIN_TARGET[method]
    return next((t for t in TARGET_PREFERENCE if t in targets), min(targets, default="model"))


def tidy_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (run, target), metrics under their result.json names (fractions 0..1).

    A run that evaluated nothing yet (failed at start, running) still gets one row, under its
    method's main target with empty metrics, so the completeness report can list it.
    """
    rows: list[tuple[Any, ...]] = []
    for record in records:
        run = tuple(record.get(key) for key in RUN_KEYS)
        metrics = record.get("metrics") or {}
        main = main_target(record["method"], metrics)
        for target in metrics or [main]:
            values = metrics.get(target) or {}
            rows.append((*run, target, target == main, *(_number(values.get(k)) for k in METRIC_KEYS)))
    frame = pd.DataFrame.from_records(rows, columns=list(TIDY_COLUMNS))
    for column in ("interval", "strength", "seed", *METRIC_KEYS):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def _number(value: Any) -> float:
    """JSON null (and anything non-numeric) becomes NaN so that columns stay numeric."""
    return float(value) if isinstance(value, (int, float)) else math.nan


def select(tidy: pd.DataFrame, target: str | None = None) -> pd.DataFrame:
    """One row per run: the analysed target (``target`` where the run has it, else the main one)."""
    if target is None:
        chosen = tidy["main"]
    else:
        is_target = tidy["target"].eq(target)
        has_target = is_target.groupby(tidy["path"]).transform("any")
        chosen = is_target.where(has_target, tidy["main"])
    return tidy[chosen.astype(bool)].reset_index(drop=True)


def usable(runs: pd.DataFrame, metric: str) -> pd.Series:
    """Which rows may be averaged: completed runs that have a value for the metric."""
    return runs["status"].eq(COMPLETED) & runs[METRICS[metric].key].notna()


def aggregate(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, sd (ddof 1) and n over seeds per point, in percent; only usable rows count."""
    key = METRICS[metric].key
    kept = runs[usable(runs, metric)].assign(value=lambda f: 100.0 * f[key])
    grouped = kept.groupby(list(POINT), dropna=False, sort=True)
    points = grouped["value"].agg(["mean", "std", "count"]).rename(columns={"std": "sd", "count": "n"})
    points["seeds"] = grouped["seed"].agg(lambda s: ",".join(str(int(v)) for v in sorted(s)))
    points = points.reset_index()
    points["metric"] = metric
    return points


def line_label(row: Any) -> str:
    """How a (method, strength, target) line is named in legends and tables."""
    strength = "" if pd.isna(row.strength) else f" {row.strength_name}={row.strength:g}"
    return f"{row.method}{strength} [{row.target}]"


def interval_label(interval: float) -> str:
    """Tick / table text for an interval: '0' is massed, inf is offline KD."""
    return "offline" if math.isinf(interval) else f"{interval:g}"
