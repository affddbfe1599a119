"""Helpers for the tracker tests: compose the real config, read a run's record back."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from spacing.compose import register_configs

REPO = Path(__file__).resolve().parents[2]


def compose_config(*overrides: str) -> DictConfig:
    """The config `python run.py <overrides>` would run."""
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    with open(run_dir / "history.csv") as handle:
        return list(csv.DictReader(handle))


def read_result(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "result.json").read_text())


def history_series(run_dir: Path, column: str, target: str) -> list[float]:
    """One history.csv column of one target, in epoch order."""
    rows = sorted((r for r in read_history(run_dir) if r["target"] == target), key=lambda r: int(r["epoch"]))
    return [float(r[column]) for r in rows]


SYNTHETIC = ("dataset=synthetic", "model.width=4", "trainer.epochs=2", "trainer.log_every=2")
"""A run of a second or two: 4 steps per epoch, a tiny model, train loss logged every 2 steps."""
