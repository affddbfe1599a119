"""The run record contract: the files of a run dir, the statuses, the history columns, the metric keys.

These names are the only interface between training and analysis, so they are written here once
and both sides import them: :mod:`spacing.record` and :mod:`spacing.checkpoint` write what they
name, :mod:`analysis.records` and :mod:`analysis.tidy` read it. What a record's metrics are (the
summary of its history, :func:`summarize`) and when a history agrees with its record
(:func:`history_problem`) are part of the contract too, as are the command lines' exit codes.
Nothing here imports anything but the standard library, so analysis reads records without torch
(or the rest of ``spacing``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"
"""The run record: status, identity, metrics per target, counters, resolved config, versions."""
HISTORY_FILE = "history.csv"
"""One row per epoch per target (:data:`HISTORY_COLUMNS`)."""
CHECKPOINT_FILE = "checkpoint.pt"
"""The last epoch's state while the run is unfinished."""
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.pt"
"""The checkpoint before the last one: a damaged last checkpoint costs one epoch, not the run."""
CLAIM_FILE = "claim.json"
"""Which process trains the cell now (:mod:`spacing.claim`)."""
TRACKERS_FILE = "trackers.json"
"""The experiment trackers' run ids, so a resumed run continues them (:mod:`spacing.loggers`)."""

RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
DIVERGED = "diverged"
STATUSES = (RUNNING, COMPLETED, FAILED, DIVERGED)
"""result.json's ``status``: ``running`` until the run ends (and after a kill), then one of the others."""
FINISHED = (COMPLETED, FAILED, DIVERGED)
"""The statuses of a run that ended; a finished record and its history.csv agree."""

EPOCH_VALUES = ("train_loss", "train_acc", "val_acc", "test_acc")
"""What history.csv holds per epoch and target (accuracies as fractions; val_acc empty without a validation split)."""
HISTORY_COLUMNS = ("epoch", "target", *EPOCH_VALUES, "lr", "seconds")
"""history.csv's header, in order."""

ACCURACY_METRICS = ("test_acc", "best_test_acc", "val_acc", "best_val_acc", "test_acc_at_best_val")
"""result.json's accuracies per target, as fractions in [0, 1] (null where there is no validation split)."""
METRIC_KEYS = (*ACCURACY_METRICS, "best_val_epoch", "best_test_epoch")
"""Every key of ``metrics.<target>`` in result.json (see :func:`summarize`)."""
VALIDATION_METRICS = ("val_acc", "best_val_acc")
"""The metrics measured on the validation split: what model selection and a sweeper's objective may read."""
INITIAL_WEIGHT_LIMIT = 0.05
"""A weight average (EMA's shadow; counter ``<target>_initial_weight``) still holding more than this share
of its initial weights measures too few refreshes, not spacing: ``spacing plan`` predicts it, analysis
names such cells and never chooses them (docs/controls.md)."""

FUSED_FIELDS = ("group", "cells", "cost_share")
"""result.json's ``fused``, an object with these keys for a cell trained in a fused group (null for a run
trained alone): the group's id (its cells' dir names, sorted, hashed: 12 hex digits), how many cells
trained together, and the cell's share of the group's cost (counted per epoch: 1 / cells when all
train every epoch; analysis prices a run as ``wall_time_s`` x ``device.count`` x ``cost_share``)."""

EXIT_BUG = 1
"""An unexpected exception: its traceback is printed."""
EXIT_USER_ERROR = 2
"""Bad input the user can fix: one sentence on stderr, nothing trained."""
EXIT_DIVERGED = 3
"""A single run whose loss stopped being finite (recorded as ``diverged``)."""
EXIT_INCOMPLETE = 4
"""A multirun in which at least one cell did not complete (failed, diverged or unfinished)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT, as shells report it): the run stays resumable."""


def summarize(history: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per target: final, best-on-test and best-on-validation accuracies from the history rows.

    ``test_acc`` is the last epoch's test accuracy; ``best_test_acc`` the best over epochs (what
    the paper reports); ``test_acc_at_best_val`` the test accuracy at the epoch with the best
    validation accuracy (the honest model-selection number). Ties go to the earliest epoch.
    """
    metrics: dict[str, dict[str, Any]] = {}
    for target in dict.fromkeys(row["target"] for row in history):
        rows = sorted((r for r in history if r["target"] == target), key=lambda r: r["epoch"])
        best_test = max(rows, key=lambda r: r["test_acc"])
        entry: dict[str, Any] = {
            "test_acc": rows[-1]["test_acc"],
            "best_test_acc": best_test["test_acc"],
            "best_test_epoch": best_test["epoch"],
            "val_acc": rows[-1]["val_acc"],
            "best_val_acc": None,
            "best_val_epoch": None,
            "test_acc_at_best_val": None,
        }
        with_val = [r for r in rows if r["val_acc"] is not None]
        if with_val:
            best_val = max(with_val, key=lambda r: r["val_acc"])
            entry.update(
                best_val_acc=best_val["val_acc"],
                best_val_epoch=best_val["epoch"],
                test_acc_at_best_val=best_val["test_acc"],
            )
        metrics[target] = entry
    return metrics


def history_problem(out_dir: Path, record: dict[str, Any], derives_metrics: bool = True) -> str | None:
    """Why history.csv in `out_dir` does not agree with the finished `record`, or None when it does.

    The history agrees when it has every epoch of every target once and only possible values
    (accuracies in [0, 1], a finite loss); with `derives_metrics`, also when it gives the record's
    metrics again (:func:`summarize`: what this release's runner checks before skipping a cell).
    Analysis reads records of any release and of other tools, whose metrics need not be this
    release's summary of the history: it checks the rows alone, up to the record's last epoch.
    """
    path = out_dir / HISTORY_FILE
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            header = tuple(reader.fieldnames or ())
            if header != HISTORY_COLUMNS:
                return f"{path} has the columns {', '.join(header) or 'none'}, not {', '.join(HISTORY_COLUMNS)}"
            rows = [_history_row(row) for row in reader]
    except FileNotFoundError:
        return f"{path} is missing"
    except (OSError, ValueError, TypeError) as exc:
        return f"{path} cannot be read ({exc})"
    epochs = int(record.get("epochs_completed") or 0)
    if not derives_metrics:  # rows past the record's epochs are ignored by analysis (result.json is authoritative)
        rows = [row for row in rows if row["epoch"] <= epochs]
    for target in record.get("metrics") or {}:
        seen = sorted(row["epoch"] for row in rows if row["target"] == target)
        if seen != list(range(1, epochs + 1)):
            return f"{path} holds epochs {_span(seen)} of target {target}, not 1-{epochs}"
    impossible = [row for row in rows if not _possible(row)]
    if impossible:
        return f"{path} holds impossible values at epoch {impossible[0]['epoch']} of target {impossible[0]['target']}"
    if not derives_metrics:
        return None
    derived = summarize(rows)
    for target, metrics in (record.get("metrics") or {}).items():
        if any(derived[target].get(key) != value for key, value in metrics.items()):  # keys an older release wrote too
            return f"{path} does not give the metrics of {out_dir / RESULT_FILE} (target {target})"
    return None


def _history_row(row: dict[str, str]) -> dict[str, Any]:
    """A history.csv row with its numbers parsed (an empty val_acc: None)."""
    parsed: dict[str, Any] = {"epoch": int(row["epoch"]), "target": row["target"]}
    for column in HISTORY_COLUMNS[2:]:
        parsed[column] = float(row[column]) if row[column] not in ("", None) else None
    return parsed


def _possible(row: dict[str, Any]) -> bool:
    accuracies = [row[column] for column in ("train_acc", "val_acc", "test_acc") if row[column] is not None]
    loss = row["train_loss"]
    return all(0.0 <= value <= 1.0 for value in accuracies) and row["test_acc"] is not None and (
        loss is None or math.isfinite(loss)
    )


def _span(epochs: list[int]) -> str:
    return f"{epochs[0]}-{epochs[-1]} ({len(epochs)} rows)" if epochs else "none"
