"""What a sweep is missing: running, failed, diverged, missing, unreadable, impossible and duplicate runs.

A mean over 2 of 3 seeds looks exactly like a mean over 3 unless someone says so. Means use only
completed runs without a listed problem (tidy.usable), and this module lists everything else, so a
partial sweep is never averaged silently. Expected seeds come from ``multirun.yaml`` when Hydra wrote one, else from the
seeds seen in that sweep; expected cells are the interval x strength product seen per method,
schedule, dataset and model (Hydra's sweeper always runs full products).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import pandas as pd

from analysis.records import RecordSet
from analysis.labels import METRICS, interval_label
from analysis.tidy import CELL
from spacing.contract import COMPLETED

COLUMNS = ("status", "sweep_root", *CELL, "seed", "path", "detail")
MISSING = "missing"


def incomplete(runs: pd.DataFrame, record_set: RecordSet, metric: str) -> pd.DataFrame:
    """One row per run (or expected run) that is not averaged, with the reason.

    ``runs`` has one row per run (tidy.select). Statuses: unreadable, no record (a Hydra job
    directory without result.json), impossible / duplicate (analysis.integrity, with the reason),
    running / failed / diverged (as the record says), no metric (completed but the chosen metric is
    null), missing (no record for a cell's seed).
    """
    rows: list[dict[str, Any]] = [
        {"status": "unreadable", "path": p.path, "detail": p.reason} for p in record_set.problems
    ]
    rows += [{"status": "no record", "path": p.path, "detail": p.reason} for p in record_set.orphans]
    columns = ["status", "sweep_root", *CELL, "seed", "path"]
    listed = runs["problem"].notna()
    for run in runs[listed].to_dict("records"):
        rows.append({**{c: run[c] for c in columns}, "status": run["problem"], "detail": run["problem_detail"]})
    for run in runs[~listed & ~runs["status"].eq(COMPLETED)].to_dict("records"):
        progress = f"{_int_text(run['epochs_completed'])}/{_int_text(run['epochs'])} epochs"
        rows.append({**{c: run[c] for c in columns}, "detail": run["error"] or progress})
    key = METRICS[metric].key
    no_metric = ~listed & runs["status"].eq(COMPLETED) & runs[key].isna()
    for run in runs[no_metric].to_dict("records"):
        detail = f"target '{run['target']}' has no {key} (needed by --metric {metric})"
        rows.append({**{c: run[c] for c in columns}, "status": "no metric", "detail": detail})
    for sweep_root, sweep_runs in runs.groupby("sweep_root", sort=True):
        expected = record_set.sweeps[sweep_root].seeds or sorted(set(sweep_runs["seed"].astype(int)))
        rows += _missing(sweep_root, sweep_runs, expected)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _missing(sweep_root: str, runs: pd.DataFrame, expected_seeds: list[int] | tuple[int, ...]) -> list[dict[str, Any]]:
    """Rows for each expected (cell, seed) of one sweep that has no record at all.

    Ordinary cells are expected as the interval x strength product seen per method, schedule,
    dataset, model and series; control cells only as seen (each controls one spaced cell).
    """
    seeds_of: dict[tuple[Any, ...], set[int]] = defaultdict(set)
    for *values, seed in runs[[*CELL, "seed"]].itertuples(index=False):
        seeds_of[tuple(_key(v) for v in values)].add(int(seed))
    grid: dict[tuple[Any, ...], tuple[set[Any], set[Any]]] = defaultdict(lambda: (set(), set()))
    expected_cells = [cell for cell in seeds_of if cell[CELL.index("control_kind")] is not None]
    for cell in seeds_of:
        values = dict(zip(CELL, cell))
        if values["control_kind"] is None:
            intervals, strengths = grid[tuple(values[k] for k in CELL if k not in ("interval", "strength"))]
            intervals.add(values["interval"])
            strengths.add(values["strength"])
    for family, (intervals, strengths) in grid.items():
        for interval in sorted(intervals):
            for strength in sorted(strengths, key=lambda v: (v is not None, v or 0.0)):
                values = dict(zip([k for k in CELL if k not in ("interval", "strength")], family))
                expected_cells.append(tuple({**values, "interval": interval, "strength": strength}[k] for k in CELL))
    rows = []
    for cell in expected_cells:
        seen = seeds_of.get(cell, set())
        detail = "no record for this seed" if seen else "no record for this cell"
        rows += [
            {"status": MISSING, "sweep_root": sweep_root, **dict(zip(CELL, cell)), "seed": seed, "path": None,
             "detail": detail}
            for seed in expected_seeds if seed not in seen
        ]
    return rows


def _key(value: Any) -> Any:
    """Hashable, NaN-free cell component (NaN != NaN would split one cell into many)."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _int_text(value: Any) -> str:
    return "?" if value is None or pd.isna(value) else str(int(value))


def summary(table: pd.DataFrame, limit: int = 20) -> list[str]:
    """Human-readable lines for the console: counts per status, then the first ``limit`` rows."""
    if table.empty:
        return ["complete: every cell has a completed record for every seed"]
    counts = ", ".join(f"{n} {status}" for status, n in table["status"].value_counts(sort=False).items())
    lines = [f"incomplete (left out of every mean): {counts}"]
    for row in table.head(limit).itertuples(index=False):
        lines.append("  " + describe(row))
    if len(table) > limit:
        lines.append(f"  ... and {len(table) - limit} more (see incomplete.csv)")
    return lines


def describe(row: Any) -> str:
    """One line for one incomplete row: status, cell, seed, path, reason (blank parts dropped)."""
    parts = [f"{row.status}:"]
    if isinstance(row.method, str):
        strength = "" if pd.isna(row.strength) else f" {row.strength_name}={row.strength:g}"
        series = f" ({row.series})" if isinstance(row.series, str) and row.series else ""
        control = f" {row.control_kind} control" if isinstance(row.control_kind, str) else ""
        parts.append(f"{row.method}{strength}{control} {row.schedule} s={interval_label(row.interval)} "
                     f"{row.dataset}/{row.model}{series} seed={int(row.seed)}")
    parts += [str(part) for part in (row.path, row.detail) if isinstance(part, str) and part]
    return " ".join(parts)
