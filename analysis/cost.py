"""What runs cost: device-hours from each record's ``wall_time_s`` and ``device``.

A run's cost is its wall time times the number of devices it held (``device.count``) times its
share of them (``fused.cost_share``: a fused cell shares its group's wall time), counted per
device kind: hours on a GPU and hours on a CPU are different money, so they are never added into
one number of "hours" in anything a reader sees. Every record counts, finished or not: a failed
or duplicate run was paid for too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from analysis.labels import hours_text


def run_hours(wall_time_s: Any, device_count: Any, cost_share: Any = None) -> float:
    """Device-hours of one run: wall time x devices held x its share of them; 0 when the record has no wall time.

    A fused cell's wall time is its whole group's (spacing.fused), so its share is ``fused.cost_share``
    (1/k for k cells that train every epoch together, more for one that trains some epochs alone);
    an unfused run holds its devices alone (share 1).
    """
    seconds = wall_time_s if isinstance(wall_time_s, (int, float)) and math.isfinite(wall_time_s) else 0.0
    count = device_count if isinstance(device_count, int) and device_count > 0 else 1
    valid = isinstance(cost_share, (int, float)) and not isinstance(cost_share, bool) and 0 < cost_share <= 1
    return seconds * count * (cost_share if valid else 1.0) / 3600.0


def cost_share(fused: Any) -> float | None:
    """The record's ``fused.cost_share`` (None for an unfused run or a record without one)."""
    share = fused.get("cost_share") if isinstance(fused, dict) else None
    return float(share) if isinstance(share, (int, float)) and not isinstance(share, bool) else None


def unit(device_kind: Any) -> str:
    """'CPU-hours' for cpu, 'GPU-hours' for any accelerator, 'device-hours' when the record does not say."""
    if not isinstance(device_kind, str):
        return "device-hours"
    return "CPU-hours" if device_kind == "cpu" else "GPU-hours"


def by_unit(runs: pd.DataFrame) -> dict[str, float]:
    """Hours per unit over ``runs`` (one row per run)."""
    units = runs["device_kind"].map(unit)
    return {name: float(hours) for name, hours in runs["hours"].groupby(units, sort=True).sum().items()}


def add(costs: Iterable[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for cost in costs:
        for name, hours in cost.items():
            total[name] = total.get(name, 0.0) + hours
    return total


def text(cost: dict[str, float]) -> str:
    """'0.41 GPU-hours', '0.02 CPU-hours + 1.5 GPU-hours', '0 device-hours'."""
    if not cost:
        return "0 device-hours"
    return " + ".join(f"{hours_text(hours)} {name}" for name, hours in sorted(cost.items()))


def sweep_lines(runs: pd.DataFrame) -> list[str]:
    """One line per sweep directory: runs found and what they cost, then the total when several."""
    lines = [f"cost of {root}: {len(group)} runs, {text(by_unit(group))}"
             for root, group in runs.groupby("sweep_root", sort=True)]
    if len(lines) > 1:
        lines.append(f"cost of all {len(runs)} runs: {text(by_unit(runs))}")
    return lines
