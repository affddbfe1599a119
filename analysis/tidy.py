"""The tidy table (one row per run and evaluation target) and its aggregation over seeds.

Every figure and table is a function of these frames, so the rules that decide what a number
means live here, once: which result.json key a ``--metric`` reads, what identifies a cell, and
that only completed runs with a value and no listed problem (analysis.integrity) are averaged.
Which target is a run's "main" one its record says (``main_target``, declared by its method).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis.cost import run_hours
from analysis.labels import METRICS
from spacing.contract import COMPLETED, METRIC_KEYS

#: What identifies a point of a sweep; seeds of the same cell are averaged. ``series`` names the
#: config keys in which runs of one method differ beyond the grid (see analysis.integrity); the
#: control columns are set for a control run and name the spaced cell it controls.
CONTROL = ("control_kind", "control_interval", "control_strength", "control_schedule")
CELL = ("method", "schedule", "interval", "strength_name", "strength", "dataset", "model", "series", *CONTROL)
POINT = (*CELL, "target")
RUN_KEYS = (
    "sweep", "sweep_root", "path", "status", *CELL, "seed",
    "epochs", "epochs_completed", "steps", "wall_time_s", "images_per_s", "device_kind", "device_count", "threads",
    "cost_share", "error", "problem", "problem_detail",
)
TIDY_COLUMNS = (*RUN_KEYS, "hours", "target", "main", *METRIC_KEYS, "initial_weight")
#: A target that averages weights records the share of its initial weights it still holds as the
#: counter ``<target>_initial_weight`` (EMA: ``ema_initial_weight``); column ``initial_weight``.
INITIAL_WEIGHT_COUNTER = "{target}_initial_weight"


def tidy_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (run, target), metrics under their result.json names (fractions 0..1).

    ``records`` have been through ``analysis.integrity.vet`` (series, problem). A run without
    metrics for its main target (it evaluated nothing yet, or its record is broken) still gets a row
    for it with empty metrics, so the completeness report can list it; so does a run whose record
    names no main target (it failed before its method was built, or an older spacing wrote it), as
    target None. ``hours``: the run's device-hours (a fused cell's share of its group's);
    ``initial_weight``: the share of its initial weights the target still holds, where its method
    records one (NaN elsewhere).
    """
    rows: list[tuple[Any, ...]] = []
    for record in records:
        run = (*(record.get(key) for key in RUN_KEYS), run_hours(record.get("wall_time_s"), record.get("device_count"), record.get("cost_share")))
        metrics = record.get("metrics") or {}
        main = record.get("main_target")
        counters = record.get("counters")
        counters = counters if isinstance(counters, dict) else {}
        for target in [*metrics, *([] if main in metrics else [main])]:
            values = metrics.get(target)
            values = values if isinstance(values, dict) else {}
            share = _number(counters.get(INITIAL_WEIGHT_COUNTER.format(target=target)))
            rows.append((*run, target, target == main, *(_number(values.get(k)) for k in METRIC_KEYS), share))
    frame = pd.DataFrame.from_records(rows, columns=list(TIDY_COLUMNS))
    for column in ("interval", "strength", "control_interval", "control_strength", "seed", *METRIC_KEYS, "initial_weight"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["series"] = frame["series"].fillna("")
    return frame


def _number(value: Any) -> float:
    """JSON null (and anything non-numeric) becomes NaN so that columns stay numeric."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


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
    """Which rows may be averaged: completed runs with a value for the metric and no listed problem."""
    return runs["status"].eq(COMPLETED) & runs[METRICS[metric].key].notna() & runs["problem"].isna()


def aggregate(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, sd (ddof 1) and n over seeds per point, in percent, over usable rows only.

    ``hours`` is what every run of the point cost (usable or not: failed runs were paid for too).
    Points without a usable run are left out.
    """
    ok = usable(runs, metric)
    frame = runs.assign(value=(100.0 * runs[METRICS[metric].key]).where(ok), seed_used=runs["seed"].where(ok))
    grouped = frame.groupby(list(POINT), dropna=False, sort=True)
    points = grouped["value"].agg(["mean", "std", "count"]).rename(columns={"std": "sd", "count": "n"})
    points["seeds"] = grouped["seed_used"].agg(lambda s: ",".join(str(int(v)) for v in sorted(s.dropna())))
    points["hours"] = grouped["hours"].sum()
    points = points[points["n"] > 0].reset_index()
    points["metric"] = metric
    return points
