"""One list of the keys that do not change a run's numbers (spacing.neutral): a finished sweep re-launched
with every one of them changed trains nothing, and keys that change numbers are not on it."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

from spacing.neutral import EVAL_BATCH_SIZE, NEUTRAL_GROUPS, NEUTRAL_KEYS, cell_dir_name, comparable
from tests.helpers import CELL_TINY, cells, launch, summary_line

CONFIG = {
    "dataset": {"name": "synthetic", "root": None, "download": True, "workers": 2, "val_fraction": 0.1},
    "model": {"name": "small_cnn", "width": 8},
    "method": {"name": "dropout", "interval": 1.0, "schedule": "periodic", "p": 0.5, "eval_dropout": False},
    "trainer": {"epochs": 2, "eval_batch_size": 512, "device": "cpu", "threads": None, "log_every": 20,
                "resume": True, "keep_checkpoint": False, "compile": False, "lr": 0.01},
    "logger": {"tensorboard": {"enabled": False}, "group": None},
    "objective": {"metric": "val_acc", "target": None},
    "seed": 0,
    "fused_cells": [],
}
CHANGED = {
    "trainer.device": "auto",
    "trainer.threads": 1,
    "trainer.log_every": 7,
    "trainer.resume": True,  # the first launch ran with resume=false
    "trainer.keep_checkpoint": True,
    "dataset.root": "ROOT",
    "dataset.download": False,
    "dataset.workers": 0,
    "trainer.eval_batch_size": 64,
    "objective.metric": "best_val_acc",
    "fused_cells": [{"interval": 0.0}, {"interval": 1.0}],
}
"""A new value for every neutral key (and for a key of each neutral group but the logger's)."""
WRITTEN_BY_THE_SWEEPER = ("fused_cells",)
"""Neutral keys a launch cannot be given (the grid sweeper writes them into a fused group's job)."""


def changed(config: dict, key: str, value: object) -> dict:
    out = copy.deepcopy(config)
    parent, _, leaf = key.rpartition(".")
    node = out
    for part in parent.split(".") if parent else ():
        node = node[part]
    node[leaf] = value
    return out


def test_every_neutral_key_and_group_gets_a_new_value_here() -> None:
    """So a key added to the list is re-launched changed too (the logger group is changed in the launch)."""
    grouped = {key for key in CHANGED if key.split(".")[0] in NEUTRAL_GROUPS}
    assert set(CHANGED) - grouped == {*NEUTRAL_KEYS, EVAL_BATCH_SIZE}
    assert {key.split(".")[0] for key in grouped} | {"logger"} == set(NEUTRAL_GROUPS)


@pytest.mark.parametrize("key", sorted(CHANGED))
def test_a_neutral_key_changes_neither_the_comparison_nor_the_dir(key: str) -> None:
    other = changed(CONFIG, key, CHANGED[key])
    assert comparable(other) == comparable(CONFIG)
    assert cell_dir_name(other) == cell_dir_name(CONFIG)


@pytest.mark.parametrize("key,value", [("trainer.compile", True), ("trainer.lr", 0.02), ("dataset.val_fraction", 0.2), ("seed", 1)])
def test_keys_that_change_the_numbers_change_the_dir(key: str, value: object) -> None:
    other = {**CONFIG, "seed": value} if key == "seed" else changed(CONFIG, key, value)
    assert comparable(other) != comparable(CONFIG)
    assert cell_dir_name(other) != cell_dir_name(CONFIG)


@pytest.mark.parametrize("switch", ["method.eval_dropout", "method.eval_train_mode"])
def test_eval_batch_size_counts_when_evaluation_depends_on_the_batch(switch: str) -> None:
    config = changed(CONFIG, switch, True)
    assert cell_dir_name(changed(config, EVAL_BATCH_SIZE, 64)) != cell_dir_name(config)


@pytest.mark.slow
def test_relaunching_a_finished_sweep_with_every_neutral_key_changed_skips_every_cell(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "neutral"
    args = ("method=baseline", *CELL_TINY, "trainer.epochs=1", "seed=0,1", f"hydra.sweep.dir={sweep}")
    first = launch(*args, "trainer.resume=false", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    records = {cell.name: (cell / "result.json").read_bytes() for cell in cells(sweep)}
    assert len(records) == 2

    overrides = [f"{key}={tmp_path if value == 'ROOT' else str(value).lower() if isinstance(value, bool) else value}"
                 for key, value in CHANGED.items() if key not in WRITTEN_BY_THE_SWEEPER]
    if importlib.util.find_spec("tensorboard") is not None:
        overrides.append("logger=tensorboard")
    again = launch(*args, *overrides, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert summary_line(again.stdout) == f"sweep {sweep}: 2 cells, 0 completed, 2 skipped, 0 failed"
    assert {cell.name: (cell / "result.json").read_bytes() for cell in cells(sweep)} == records
