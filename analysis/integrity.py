"""Which records may be averaged: one series per config, no impossible values, one run per seed.

A sweep directory can hold records that must not enter a mean as they are:

- two sweeps of the same grid that differ in a key outside the grid (``trainer.epochs`` 3 vs 4)
  are two experiments, not four seeds of one: each record gets a ``series`` label naming the
  config keys in which its method's records differ (beyond the seed, the cell's own keys and the
  keys that do not change the numbers, see ``analysis.neutral``), and the series is part of the
  cell;
- a re-launch that landed in new directories leaves two records of one config and seed: that is
  one run, so one is kept (completed before unfinished, then more epochs, then the later finish,
  then the first path) and the other is listed as a ``duplicate`` naming the kept one and why;
- a record with an impossible value (an accuracy outside 0..1 or not a number, ``completed`` with
  fewer epochs than configured, no metrics for its main target or no main target named: a record
  written before result.json named it), or a completed one whose history.csv lacks epochs of it
  (truncated, rows dropped) or holds impossible values (a test_acc of 1.7), is listed as
  ``impossible`` with the reason.

Listed records stay in the tidy table (with ``problem`` and ``problem_detail`` set) and in the cost,
and are left out of every mean, gain and figure.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from analysis.tidy import CELL
from spacing.contract import ACCURACY_METRICS, COMPLETED, DIVERGED, FAILED, HISTORY_FILE, RUNNING, history_problem

STATUS_ORDER = (COMPLETED, RUNNING, DIVERGED, FAILED)
"""Which of two records of one run is kept: the first status in this order."""
IMPOSSIBLE, DUPLICATE = "impossible", "duplicate"
_UNSET = object()


def vet(records: list[dict[str, Any]]) -> None:
    """Set ``series``, ``problem`` and ``problem_detail`` on every record, in place."""
    for record in records:
        record["problem"] = record["problem_detail"] = None
    label_series(records)
    for record in records:
        reason = impossible(record)
        if reason is not None:
            record["problem"], record["problem_detail"] = IMPOSSIBLE, reason
    mark_duplicates(records)


def _cell_keys(record: dict[str, Any]) -> set[str]:
    """Config keys that are already columns of the cell (or the seed): never part of a series label."""
    keys = {"method.name", "method.interval", "method.schedule", "dataset.name", "model.name"}
    if record.get("strength_name"):
        keys.add(f"method.{record['strength_name']}")
    return keys


def label_series(records: list[dict[str, Any]]) -> None:
    """``series``: the config keys in which a method's ordinary records differ, with this record's values.

    Control runs take the labels of the keys that vary among ordinary runs, so a control lands in
    the series of the cell it controls. A record without a resolved config gets an empty label.
    """
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_method[record["method"]].append(record)
    for group in by_method.values():
        rests = {id(r): _rest(r) for r in group if r.get("numbers_config") is not None}
        ordinary = [rests[id(r)] for r in group if id(r) in rests and r.get("control_kind") is None]
        keys = set().union(*ordinary) if ordinary else set()
        varying = sorted(k for k in keys if len({rest.get(k, _UNSET) for rest in ordinary}) > 1)
        for record in group:
            rest = rests.get(id(record))
            record["series"] = "" if rest is None else ", ".join(
                f"{key}={_value_text(rest[key])}" if key in rest else f"{key} unset" for key in varying)


def _rest(record: dict[str, Any]) -> dict[str, str]:
    cell_keys = _cell_keys(record)
    return {k: v for k, v in record["numbers_config"].items() if k not in cell_keys}


def _value_text(value: Any) -> str:
    """A config value as a reader writes it: 0.5, true, null, cifar100, [60, 120] (already JSON text)."""
    return value if isinstance(value, str) else json.dumps(value)


def impossible(record: dict[str, Any]) -> str | None:
    """Why the record's values cannot be true (first reason found), or None."""
    metrics = record.get("metrics") or {}
    for target, values in metrics.items():
        if not isinstance(values, dict):
            return f"metrics of target '{target}' is not an object"
        for key in ACCURACY_METRICS:
            value = values.get(key)
            if value is None:
                continue  # absent (e.g. no validation split): not impossible, just not there
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"{target} {key} = {value!r} is not a number"
            if math.isnan(value):
                return f"{target} {key} is NaN"
            if not 0.0 <= value <= 1.0:
                return f"{target} {key} = {value:g} is outside 0..1"
    if record["status"] != COMPLETED:
        return None
    configured, done = _configured_epochs(record), record.get("epochs_completed")
    if configured is not None and (not isinstance(done, int) or done < configured):
        return f"completed with {done} of {configured} configured epochs"
    if not record.get("main_target"):
        return "completed without a main_target (written before result.json named it); run it again"
    if record["main_target"] not in metrics:
        return f"completed without metrics for its main target '{record['main_target']}'"
    return _history_disagrees(record)


def _history_disagrees(record: dict[str, Any]) -> str | None:
    """Why the completed record's history.csv (where one was written) does not agree with it: truncated,
    rows dropped, impossible values (:func:`spacing.contract.history_problem`, its rows alone)."""
    run_dir = Path(record["path"]) if record.get("path") else None
    if run_dir is None or not (run_dir / HISTORY_FILE).exists():
        return None
    return history_problem(run_dir, record, derives_metrics=False)


def _configured_epochs(record: dict[str, Any]) -> int | None:
    epochs = record.get("epochs")
    if epochs is None and record.get("numbers_config"):
        epochs = record["numbers_config"].get("trainer.epochs")
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def mark_duplicates(records: list[dict[str, Any]]) -> None:
    """Keep one record per (config, seed); mark the others ``duplicate``, naming the kept one and why.

    Then, as a last guard, one record per (cell, seed): records that share a cell and seed but whose
    configs differ only in keys that no ordinary run varies (so no series tells them apart) would
    otherwise count as two seeds; they are marked the same way, naming the differing keys.
    """
    sane = [r for r in records if r["problem"] is None]
    same_config: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for record in sane:
        config = json.dumps(record.get("numbers_config"), sort_keys=True)
        same_config[(_cell(record), record["seed"], config)].append(record)
    for group in same_config.values():
        _keep_one(group, "same config and seed as")
    same_cell: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for record in sane:
        if record["problem"] is None:
            same_cell[(_cell(record), record["seed"])].append(record)
    for group in same_cell.values():
        if len(group) > 1:
            keys = sorted({k for r in group for k in (r.get("numbers_config") or {})
                           if len({json.dumps((o.get("numbers_config") or {}).get(k)) for o in group}) > 1})
            _keep_one(group, f"same cell and seed (configs differ only in {', '.join(keys) or 'unknown keys'}) as")


def _cell(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record.get(key) for key in CELL)


def _keep_one(group: list[dict[str, Any]], relation: str) -> None:
    if len(group) < 2:
        return
    ranked = _ranked(group)
    kept = ranked[0]
    for other in ranked[1:]:
        other["problem"] = DUPLICATE
        other["problem_detail"] = f"{relation} {kept['path']}, which is kept because {_why(kept, other)}"


def _ranked(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best first: completed over unfinished, more epochs, later finish, then path order (stable sorts)."""
    ranked = sorted(group, key=lambda r: r["path"])
    ranked = sorted(ranked, key=lambda r: r.get("finished_at") or "", reverse=True)
    return sorted(ranked, key=lambda r: (_status_rank(r), -_epochs_done(r)))


def _status_rank(record: dict[str, Any]) -> int:
    status = record.get("status")
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)


def _epochs_done(record: dict[str, Any]) -> int:
    done = record.get("epochs_completed")
    return done if isinstance(done, int) else 0


def _why(kept: dict[str, Any], other: dict[str, Any]) -> str:
    if _status_rank(kept) != _status_rank(other):
        return f"it is {kept['status']} and this one is {other['status']}"
    if _epochs_done(kept) != _epochs_done(other):
        return f"it has more epochs ({_epochs_done(kept)} vs {_epochs_done(other)})"
    if (kept.get("finished_at") or "") != (other.get("finished_at") or ""):
        return f"it finished later ({kept.get('finished_at')} vs {other.get('finished_at') or 'never'})"
    return "its path sorts first (the two records are otherwise alike)"
