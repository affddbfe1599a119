"""What spacing gained, and whether it is real: paired gains with 95 % intervals, honest selection.

A spaced cell (0 < s, or the random schedule, or offline KD) is compared with the massed cell
(periodic, s = 0) of the same method, strength, dataset, model, target and series, and with its
control where one ran (a control run names the spaced cell it controls: its interval, strength and
schedule). Both cells ran the same seeds, and a seed fixes the initial weights and the data order,
so the comparison is **paired by seed**: the gain is the mean of the per-seed differences, its 95 %
interval the Student t interval of those differences (``scipy.stats.ttest_rel``). Where fewer than
two seeds pair, the two cells are compared unpaired (Welch's t, ``scipy.stats.ttest_ind`` with
unequal variances) and the row says so.

Model selection does not peek at the test set: per method, strength and series, the best spaced
interval is the one with the highest mean *validation* accuracy (the validation analogue of the
metric, see ``labels.METRICS``), and the gain reported is the test gain at that interval. The
interval that is best on test is flagged beside it, as the optimistic choice it is.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis import cost, measurable
from analysis.labels import METRICS, cell_words, comparison_words, line_label
from analysis.measurable import Evidence
from analysis.tidy import CONTROL, POINT, usable
from spacing.contract import METRIC_KEYS

CONFIDENCE = 0.95
POWER = 0.80
"""The power ``detectable`` is stated at: a true gain that large has its 95 % interval exclude 0 in 4 sweeps of 5."""
TARGET_HALF_WIDTH = 1.0
"""The 95 % interval half-width, in points, that ``seeds_needed`` plans for: enough to tell a 1-point gain from none."""
MASSED = "massed"
CONTROL_PREFIX = "control:"
FAMILY = ["method", "strength_name", "strength", "dataset", "model", "target", "series"]
GAIN_COLUMNS = [
    *POINT, "comparison", "metric", "mean", "sd", "low", "high", "n", "n_reference", "paired", "test", "seeds",
    "spaced_mean", "reference_mean", "val_mean", "best_on_val", "best_on_test",
    "cell_hours", "reference_hours", "cost_hours", "cost", "hardware", "mixed_hardware", "unmeasured",
    "detectable", "seeds_needed",
]
PAIR_COLUMNS = [*POINT, "comparison", "seed", "diff"]
Hardware = tuple[Any, Any, Any]  # (device kind, device count, threads); None where the record does not say


@dataclass(frozen=True)
class Difference:
    """spaced − reference, in points: mean, sd of per-seed differences (paired only), 95 % interval.

    ``low`` / ``high`` are NaN when there is no interval (one seed on a side); ``diffs`` are the
    per-seed differences of a paired comparison.
    """

    mean: float
    sd: float
    low: float
    high: float
    n: int
    n_reference: int
    paired: bool
    test: str
    seeds: tuple[int, ...]
    diffs: dict[int, float]


def difference(spaced: dict[int, float], reference: dict[int, float], confidence: float = CONFIDENCE) -> Difference:
    """Paired by seed when at least two seeds pair; else Welch when both sides have two; else no interval."""
    common = sorted(set(spaced) & set(reference))
    if len(common) >= 2 or (common and (len(spaced) < 2 or len(reference) < 2)):
        a, b = np.array([spaced[s] for s in common]), np.array([reference[s] for s in common])
        diffs = a - b
        low = high = math.nan
        if len(common) >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # identical differences: scipy warns, the interval is exact
                low, high = stats.ttest_rel(a, b).confidence_interval(confidence)
        sd = float(np.std(diffs, ddof=1)) if len(common) >= 2 else math.nan
        return Difference(float(diffs.mean()), sd, float(low), float(high), len(common), len(common), True,
                          "paired t", tuple(common), dict(zip(common, diffs.tolist())))
    a, b = np.array(list(spaced.values())), np.array(list(reference.values()))
    low = high = math.nan
    if len(a) >= 2 and len(b) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    return Difference(float(a.mean() - b.mean()), math.nan, float(low), float(high), len(a), len(b), False,
                      "Welch t" if len(a) >= 2 and len(b) >= 2 else "none", (), {})


def detectable_gain(sd: float, n: int, confidence: float = CONFIDENCE, power: float = POWER) -> float:
    """The smallest true gain a paired comparison of `n` seeds with per-seed sd `sd` detects at `power`.

    A paired t test at level 1 - `confidence` (two-sided) on n - 1 degrees of freedom detects a
    true mean difference d with probability `power` when d >= (t_{1-a/2} + t_{power}) sd / sqrt(n)
    (the usual planning approximation, the noncentral t replaced by a shifted central one).
    NaN without a paired sd (fewer than two paired seeds).
    """
    if n < 2 or not math.isfinite(sd):
        return math.nan
    quantiles = stats.t.ppf(1 - (1 - confidence) / 2, n - 1) + stats.t.ppf(power, n - 1)
    return float(quantiles * sd / math.sqrt(n))


def seeds_needed(sd: float, half_width: float = TARGET_HALF_WIDTH, confidence: float = CONFIDENCE) -> float:
    """The fewest paired seeds n >= 2 whose 95 % interval t_{1-a/2, n-1} sd / sqrt(n) is at most `half_width`
    wide on each side, at the observed per-seed sd; NaN without one."""
    if not math.isfinite(sd):
        return math.nan
    n = 2
    while stats.t.ppf(1 - (1 - confidence) / 2, n - 1) * sd / math.sqrt(n) > half_width:
        n += 1
    return float(n)


@dataclass
class Cell:
    """One point's usable values by seed (metric and validation, in %), hardware by seed, its cost, and
    what its runs say about whether it measured its interval (analysis.measurable)."""

    point: dict[str, Any]
    values: dict[int, float] = field(default_factory=dict)
    vals: dict[int, float] = field(default_factory=dict)
    hardware: dict[int, Hardware] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    evidence: Evidence = field(default_factory=Evidence)


def cells(frame: pd.DataFrame, metric: str) -> dict[tuple[Any, ...], Cell]:
    """Every point of ``frame`` (rows of runs x targets) with its usable values and all runs' cost.

    One pass over plain tuples: this runs on every analysis, and per-group pandas indexing made it
    the slowest step of a 10,000-record load.
    """
    key, val_key = METRICS[metric].key, METRICS[metric].val_key
    columns = [*POINT, "seed", key, val_key, "device_kind", "device_count", "threads", "hours", "epochs",
               "initial_weight", "path", *METRIC_KEYS]
    found: dict[tuple[Any, ...], Cell] = {}
    units = frame["device_kind"].map(cost.unit).tolist()
    ok = usable(frame, metric).tolist()
    # reindex: a frame built by hand may lack the columns that only the evidence reads
    for row, good, unit in zip(frame.reindex(columns=columns).itertuples(index=False, name=None), ok, units):
        point_key = tuple(_clean(v) for v in row[:len(POINT)])
        seed, value, val, kind, count, threads, hours, epochs, share, path = row[len(POINT):len(POINT) + 10]
        cell = found.get(point_key)
        if cell is None:
            cell = found[point_key] = Cell(dict(zip(POINT, point_key)))
        cell.cost[unit] = cell.cost.get(unit, 0.0) + hours
        if good:
            seed = int(seed)
            cell.values[seed] = 100.0 * value
            if not pd.isna(val):
                cell.vals[seed] = 100.0 * val
            cell.hardware[seed] = (_clean(kind), _clean(count), _clean(threads))
            evidence = cell.evidence
            evidence.shares[seed] = share
            evidence.signatures[seed] = measurable.signature(row[len(POINT) + 10:])
            evidence.paths[seed] = path
            evidence.beyond |= measurable.beyond_run(cell.point["schedule"], cell.point["interval"], _clean(epochs))
    kept = {point_key: cell for point_key, cell in found.items() if cell.values}
    _mark_identical(kept)
    return kept


def _mark_identical(found: dict[tuple[Any, ...], Cell]) -> None:
    """Per family, mark the periodic cells whose runs repeat those of a smaller interval."""
    families: dict[tuple[Any, ...], list[tuple[float, Evidence]]] = {}
    for cell in found.values():
        point = cell.point
        if point["control_kind"] is None and point["schedule"] == "periodic":
            family = tuple(point[k] for k in FAMILY)
            families.setdefault(family, []).append((point["interval"], cell.evidence))
    for family in families.values():
        measurable.mark_identical(family)


def _clean(value: Any) -> Any:
    """NaN -> None and numpy scalars -> Python, so that keys built from rows and by hand compare equal."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def gains(frame: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The gain table (one row per spaced cell and comparison) and the per-seed differences behind it."""
    found = cells(frame, metric)
    rows: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    for cell in found.values():
        for comparison, spaced in _comparisons(cell, found):
            diff = difference(spaced.values, cell.values)
            rows.append(_row(spaced, cell, comparison, diff, metric))
            pairs += [{**spaced.point, "comparison": comparison, "seed": seed, "diff": value}
                      for seed, value in diff.diffs.items()]
    table = pd.DataFrame(rows, columns=GAIN_COLUMNS)
    if not table.empty:
        table = table.sort_values([*FAMILY, "comparison", "schedule", "interval"], na_position="first",
                                  kind="stable").reset_index(drop=True)
        _select(table)
    return table, pd.DataFrame(pairs, columns=PAIR_COLUMNS)


def _comparisons(reference: Cell, found: dict[tuple[Any, ...], Cell]) -> list[tuple[str, Cell]]:
    """The spaced cells ``reference`` is the baseline of: all of them if it is massed, its own if a control."""
    point = reference.point
    if point["control_kind"] is not None:
        spaced_point = {**point, "schedule": point["control_schedule"], "interval": point["control_interval"],
                        "strength": point["control_strength"], **dict.fromkeys(CONTROL)}
        spaced = found.get(tuple(spaced_point[k] for k in POINT))
        return [] if spaced is None else [(f"{CONTROL_PREFIX}{point['control_kind']}", spaced)]
    if point["schedule"] != "periodic" or point["interval"] != 0:
        return []
    return [(MASSED, cell) for cell in found.values() if _is_spaced(cell.point) and all(
        cell.point[k] == point[k] for k in POINT if k not in ("schedule", "interval"))]


def _is_spaced(point: dict[str, Any]) -> bool:
    return point["control_kind"] is None and (point["schedule"] != "periodic" or point["interval"] != 0)


def _row(spaced: Cell, reference: Cell, comparison: str, diff: Difference, metric: str) -> dict[str, Any]:
    seeds = diff.seeds or tuple(sorted(spaced.values))
    ref_seeds = diff.seeds or tuple(sorted(reference.values))
    used = {spaced.hardware[s] for s in seeds} | {reference.hardware[s] for s in ref_seeds}
    cell_hours, reference_hours = sum(spaced.cost.values()), sum(reference.cost.values())
    return {
        **spaced.point, "comparison": comparison, "metric": metric, "mean": diff.mean, "sd": diff.sd,
        "low": diff.low, "high": diff.high, "n": diff.n, "n_reference": diff.n_reference,
        "paired": "yes" if diff.paired else "no", "test": diff.test, "seeds": ",".join(map(str, diff.seeds)),
        "spaced_mean": float(np.mean(list(spaced.values.values()))),
        "reference_mean": float(np.mean(list(reference.values.values()))),
        "val_mean": float(np.mean(list(spaced.vals.values()))) if spaced.vals else math.nan,
        "best_on_val": False, "best_on_test": False,
        "cell_hours": cell_hours, "reference_hours": reference_hours, "cost_hours": cell_hours + reference_hours,
        "cost": cost.text(cost.add([spaced.cost, reference.cost])),
        "hardware": "; ".join(sorted(hardware_text(h) for h in used)), "mixed_hardware": _mixed(used),
        "unmeasured": "; ".join(filter(None, (measurable.describe(cell.point, cell.evidence)
                                              for cell in (reference, spaced)))),
        "detectable": detectable_gain(diff.sd, diff.n) if diff.paired else math.nan,
        "seeds_needed": seeds_needed(diff.sd) if diff.paired else math.nan,
    }


def hardware_text(hardware: Hardware) -> str:
    """'cpu x1, 2 threads', 'NVIDIA H200 x1, 8 threads', 'unknown device x1, threads unknown'."""
    kind, count, threads = hardware
    threads_text = "threads unknown" if not threads else f"{threads} thread{'s' if threads != 1 else ''}"
    return f"{kind or 'unknown device'} x{count or 1}, {threads_text}"


def _mixed(used: set[Hardware]) -> bool:
    """True when two runs differ in a device kind, device count or thread count that both records state."""
    items = list(used)
    return any(a is not None and b is not None and a != b
               for i, one in enumerate(items) for other in items[i + 1:] for a, b in zip(one, other))


def _select(table: pd.DataFrame) -> None:
    """Flag, per family, the periodic spaced interval best on validation and the one best on test.

    Only gains over massed of periodic cells with 0 < s < inf compete (random and offline are
    other questions), and only where both cells measured what their interval claims (no
    ``unmeasured`` reason); ties go to the smaller interval. No validation values: nothing is best on val.
    """
    candidates = table[(table["comparison"] == MASSED) & (table["schedule"] == "periodic")
                       & (table["interval"] > 0) & np.isfinite(table["interval"]) & table["unmeasured"].eq("")]
    for _, family in candidates.groupby(FAMILY, dropna=False, sort=False):
        ordered = family.sort_values("interval")
        if ordered["val_mean"].notna().any():
            table.loc[ordered["val_mean"].idxmax(), "best_on_val"] = True
        table.loc[ordered["spaced_mean"].idxmax(), "best_on_test"] = True


def hardware_warnings(table: pd.DataFrame) -> list[str]:
    """One warning per comparison whose runs ran on different devices or thread counts."""
    lines = []
    with_target = bool(len(table)) and table.groupby("method")["target"].nunique().max() > 1
    for row in table[table["mixed_hardware"].astype(bool)].itertuples(index=False):
        lines.append(f"warning: {line_label(row, with_target)}, {cell_words(row.schedule, row.interval)} vs "
                     f"{comparison_words(row.comparison)}: the runs ran on different hardware ({row.hardware}); the "
                     "same seed gives the same numbers only on one device kind at one torch thread count, so "
                     "this gain includes that difference")
    return lines
