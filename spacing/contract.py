"""The run record contract: the files of a run dir, the statuses, the history columns, the metric keys.

These names are the only interface between training and analysis, so they are written here once
and both sides import them: :mod:`spacing.record` and :mod:`spacing.checkpoint` write what they
name, :mod:`analysis.records` and :mod:`analysis.tidy` read it. Nothing here imports anything, so
analysis reads records without torch (or the rest of ``spacing``).
"""

from __future__ import annotations

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
"""Every key of ``metrics.<target>`` in result.json (see :func:`spacing.record.summarize`)."""
VALIDATION_METRICS = ("val_acc", "best_val_acc")
"""The metrics measured on the validation split: what model selection and a sweeper's objective may read."""
INITIAL_WEIGHT_LIMIT = 0.05
"""A weight average (EMA's shadow; counter ``<target>_initial_weight``) still holding more than this share
of its initial weights measures too few refreshes, not spacing: ``spacing plan`` predicts it, analysis
names such cells and never chooses them (README, "The main job")."""

FUSED_FIELDS = ("group", "cells", "cost_share")
"""result.json's ``fused``, an object with these keys for a cell trained in a fused group (null for a run
trained alone): the group's id (its cells' dir names, sorted, hashed: 12 hex digits), how many cells
trained together, and the cell's share of the group's cost (counted per epoch: 1 / cells when all
train every epoch; analysis prices a run as ``wall_time_s`` x ``device.count`` x ``cost_share``)."""
