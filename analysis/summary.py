"""The answer in words: one verdict per method and strength, printed after a sweep and kept in summary.md.

A verdict says what the interval chosen on validation gained over massed, whether that is more
than seed noise (the 95 % interval), on how many seeds, and what the comparison cost, e.g.

    EMA, decay 0.99: best interval on val 0.5: +0.82 points over massed (95 % CI +0.21 to +1.43,
    n = 5 paired seeds), 0.4 GPU-hours; best on test (optimistic) 1: +1.10 points (...)

followed by the gain over its control where one ran, and one line for each random-schedule or
offline cell. Everything in it is a column of gains.csv.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.gains import FAMILY, MASSED
from analysis.labels import cell_words, comparison_words, interval_label, line_label, metric_words, signed


def ci_text(row: Any) -> str:
    """'95 % CI +0.21 to +1.43, n = 5 paired seeds', or why there is no interval."""
    if row.paired == "yes":
        seeds = f"n = {row.n} paired seed{'s' if row.n != 1 else ''}"
    else:
        seeds = f"n = {row.n} vs {row.n_reference} unpaired seeds"
    if math.isnan(row.low) or math.isnan(row.high):
        return f"no interval with {seeds}"
    welch = "" if row.paired == "yes" else ", Welch"
    return f"95 % CI {signed(row.low)} to {signed(row.high)}{welch}, {seeds}"


def gain_text(row: Any, with_cost: bool = True) -> str:
    """'+0.82 points over massed (95 % CI +0.21 to +1.43, n = 5 paired seeds), 0.4 GPU-hours'."""
    text = f"{signed(row.mean)} points over {comparison_words(row.comparison)} ({ci_text(row)})"
    return f"{text}, {row.cost}" if with_cost else text


def verdicts(table: pd.DataFrame, points: pd.DataFrame) -> list[str]:
    """One line per method, strength, target and series (plus one per random / offline cell)."""
    families = _families(points)
    if families.empty:
        return []
    several_tasks = len(families[["dataset", "model"]].drop_duplicates()) > 1
    with_target = families.groupby("method")["target"].nunique().max() > 1
    lines = []
    for row in families.itertuples(index=False):
        name = line_label(row, with_target) + (f" on {row.dataset} / {row.model}" if several_tasks else "")
        family = _match(table, {k: getattr(row, k) for k in FAMILY}) if len(table) else table
        lines += _family_lines(name, family)
    return lines


def _families(points: pd.DataFrame) -> pd.DataFrame:
    """(method, strength, dataset, model, target, series) of every non-baseline ordinary cell."""
    ordinary = points[points["control_kind"].isna() & (points["method"] != "baseline")]
    return ordinary[FAMILY].drop_duplicates().sort_values(FAMILY, na_position="first").reset_index(drop=True)


def _match(table: pd.DataFrame, keys: dict[str, Any]) -> pd.DataFrame:
    for column, value in keys.items():
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        table = table[table[column].isna()] if missing else table[table[column] == value]
    return table


def _family_lines(name: str, family: pd.DataFrame) -> list[str]:
    if family.empty:
        return [f"{name}: no gain to report: it needs completed runs of the massed cell (s = 0) and of a spaced cell"]
    rows = list(family.itertuples(index=False))
    massed = [row for row in rows if row.comparison == MASSED]
    chosen = next((row for row in massed if row.best_on_val), None)
    optimistic = next((row for row in massed if row.best_on_test), None)
    parts = []
    if chosen is not None:
        parts.append(f"best interval on val {interval_label(chosen.interval)}: {gain_text(chosen)}")
        parts += _controls(rows, chosen)
        if optimistic is not None and optimistic.interval != chosen.interval:
            parts.append(f"best on test (optimistic) {interval_label(optimistic.interval)}: "
                         f"{gain_text(optimistic, with_cost=False)}")
        elif optimistic is not None:
            parts.append("the same interval is best on test")
    elif optimistic is not None:
        parts.append(f"no validation accuracy to choose an interval on (dataset.val_fraction=0); best on test "
                     f"(optimistic) {interval_label(optimistic.interval)}: {gain_text(optimistic)}")
        parts += _controls(rows, optimistic)
    lines = [f"{name}: " + "; ".join(parts)] if parts else []
    for row in massed:
        if row.schedule != "periodic" or math.isinf(row.interval):
            lines.append(f"{name}, {cell_words(row.schedule, row.interval)}: "
                         + "; ".join([gain_text(row), *_controls(rows, row)]))
    compared = {(row.schedule, row.interval) for row in massed}
    for row in rows:
        if row.comparison != MASSED and (row.schedule, row.interval) not in compared:
            lines.append(f"{name}, {cell_words(row.schedule, row.interval)}: {gain_text(row)}")
    return lines


def _controls(rows: list[Any], cell: Any) -> list[str]:
    """The gains of ``cell`` over its controls, in words."""
    return [f"over {comparison_words(row.comparison)}: {signed(row.mean)} points ({ci_text(row)})"
            for row in rows if row.comparison != MASSED and (row.schedule, row.interval) == (cell.schedule, cell.interval)]


def markdown(roots: list[Path], metric: str, verdict_lines: list[str], cost_lines: list[str], warnings: list[str],
             left_out: list[str]) -> str:
    """summary.md: what was analysed, how, the verdicts, the cost, and what was left out."""
    lines = ["# Summary", "", f"Sweeps: {', '.join(f'`{root}`' for root in roots)}", "",
             f"Metric: {metric_words(metric)}. Gains are in accuracy points, spaced minus its reference, mean of "
             "the per-seed differences with a 95 % confidence interval (Student t, paired by seed; Welch where "
             "seeds do not pair). The interval is chosen on validation accuracy; the interval best on test is "
             "optimistic and labelled so. Every number is a row of gains.csv.", "", "## Verdict", ""]
    lines += [f"- {line}" for line in verdict_lines] or ["- nothing to compare yet"]
    lines += ["", "## Cost", "", *(f"- {line}" for line in cost_lines)]
    if warnings:
        lines += ["", "## Warnings", "", *(f"- {line.removeprefix('warning: ')}" for line in warnings)]
    lines += ["", "## Left out of every mean", "", *(f"- {line.strip()}" for line in left_out)]
    return "\n".join(lines) + "\n"
