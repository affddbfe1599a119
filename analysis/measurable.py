"""Cells that cannot measure what their interval claims: named with the reason, kept in every mean, never chosen.

A spaced cell answers "what does refreshing the ensemble every s epochs do?" only when the run let
the interval act. Three ways it did not, each seen on real sweeps:

- **a shadow that did not learn**: a weight average (EMA's shadow) that still holds more than
  ``SHARE_LIMIT`` of its initial weights after training (the record's counter
  ``<target>_initial_weight``, tidy column ``initial_weight``) measures how few refreshes it got,
  not spacing. A massed cell can be one too (decay 0.999 over 33 steps keeps 97 %).
- **an interval at or beyond the run's length** (periodic, s >= trainer.epochs): the ensemble is
  refreshed at most once, at the very end.
- **a cell identical to another interval**: on every seed it shares with a smaller interval of its
  family (massed included), its metrics, and its per-epoch test accuracy where both runs wrote one,
  equal that interval's: the longer interval changed nothing (e.g. online KD at 2 epochs, where
  s = 2, 3 and 4 give the run of s = 1).

Such cells stay in the tables and figures with their numbers; the gains that involve one say why
(gains.csv ``unmeasured``), and the verdict never names a winner from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.labels import cell_words, target_words
from analysis.records import read_history
from spacing.contract import INITIAL_WEIGHT_LIMIT as SHARE_LIMIT


@dataclass
class Evidence:
    """What one cell's usable runs say about whether it measured its interval.

    ``shares``: the initial-weight share by seed (where the method records one); ``beyond``: the
    interval is at or beyond the run's length; ``signatures`` / ``paths``: every metric of the
    analysed target and the run dir, by seed; ``same_as``: the smaller interval it is identical to.
    """

    shares: dict[int, float] = field(default_factory=dict)
    beyond: bool = False
    signatures: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    paths: dict[int, str] = field(default_factory=dict)
    same_as: float | None = None


def beyond_run(schedule: str, interval: float, epochs: Any) -> bool:
    """A periodic spaced interval (0 < s < inf) at or beyond the configured number of epochs."""
    return (schedule == "periodic" and 0 < interval < math.inf and isinstance(epochs, (int, float))
            and not isinstance(epochs, bool) and not math.isnan(epochs) and interval >= epochs)


def mark_identical(family: list[tuple[float, Evidence]]) -> None:
    """Set ``same_as`` on each periodic cell of one family (its intervals) that repeats a smaller one.

    A cell repeats a smaller interval when they share at least one seed and, on every shared seed,
    every metric is equal and so is the per-epoch test accuracy (where both runs wrote history.csv).
    """
    ordered = sorted((item for item in family if math.isfinite(item[0])), key=lambda item: item[0])
    for index, (interval, evidence) in enumerate(ordered):
        for smaller, other in ordered[:index]:
            if other.same_as is None and _same_runs(evidence, other):
                evidence.same_as = smaller
                break


def _same_runs(one: Evidence, other: Evidence) -> bool:
    common = sorted(set(one.signatures) & set(other.signatures))
    if not common or any(one.signatures[s] != other.signatures[s] for s in common):
        return False
    return all(_same_history(one.paths[s], other.paths[s]) for s in common)


def _same_history(path: str, other: str) -> bool:
    """Equal per-epoch test accuracy, every target; True when either history is unreadable (the metrics decide)."""
    if not (isinstance(path, str) and isinstance(other, str)):
        return True
    try:
        mine, theirs = read_history(path), read_history(other)
    except (OSError, ValueError):
        return True
    columns = ["epoch", "target", "test_acc"]
    return mine[columns].reset_index(drop=True).equals(theirs[columns].reset_index(drop=True))


def reasons(evidence: Evidence, target: str) -> list[str]:
    """Why the cell cannot measure its interval, as phrases ([] when it can)."""
    found = []
    shares = [share for share in evidence.shares.values() if not math.isnan(share)]
    if shares and max(shares) > SHARE_LIMIT:
        low, high = (round(100 * v) for v in (min(shares), max(shares)))
        held = f"{low}-{high} %" if low != high else f"{high} %"
        found.append(f"its {target_words(target)} still hold {held} of their initial weights "
                     f"(more than {100 * SHARE_LIMIT:g} %: too few refreshes)")
    if evidence.beyond:
        found.append("the interval is at or beyond the run's length, so the ensemble is refreshed at most once")
    if evidence.same_as is not None:
        found.append(f"its runs are identical to those of {cell_words('periodic', evidence.same_as)}")
    return found


def describe(point: dict[str, Any], evidence: Evidence) -> str:
    """'s = 0.5: its EMA weights still hold 99 % ...', or '' when the cell measured its interval."""
    found = reasons(evidence, point["target"])
    if not found:
        return ""
    where = cell_words(point["schedule"], point["interval"])
    if point.get("control_kind") is not None:
        where = f"the control of {cell_words(point['control_schedule'], point['control_interval'])}"
    return f"{where}: {' and '.join(found)}"


def signature(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Metric values as exactly comparable items (NaN equals NaN here: both runs lack the value)."""
    return tuple("nan" if isinstance(v, float) and np.isnan(v) else v for v in values)
