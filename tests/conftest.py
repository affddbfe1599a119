"""Shared fixtures: compose the real Hydra config (as the CLI does) and run it into tmp dirs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from spacing.compose import register_configs
from spacing.config import Config, to_dict
from spacing.data import DataBundle
from spacing.methods import Method
from spacing.record import RunRecord
from spacing.runner import Trainer

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
TINY = ("dataset=synthetic", "dataset.train_size=200", "model=small_cnn", "model.width=4", "trainer.batch_size=16")
"""A method's config at the smallest size that still has several batches per epoch."""
FAST = ("trainer.epochs=1", "trainer.device=cpu", "dataset=synthetic", "model=small_cnn", "model.width=8")


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The config `python run.py <overrides>` would run, composed with Hydra's compose API."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture
def make_config() -> Callable[..., DictConfig]:
    """compose(*overrides), shrunk to a tiny CPU run unless the overrides say otherwise."""

    def make(*overrides: str, fast: bool = True) -> DictConfig:
        return compose_config([*(FAST if fast else ()), *overrides])

    return make


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python run.py ARGS` in a subprocess, as a user would type it."""
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def build_method_for(config: Config, epochs: int = 2) -> tuple[Method, DataBundle]:
    """The method and data of `config` for `epochs` epochs on the CPU, built by the runner's own Trainer."""
    config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, epochs=epochs, device="cpu"))
    out_dir = Path(tempfile.gettempdir())  # a Trainer writes nothing before fit()
    trainer = Trainer(config, to_dict(config), RunRecord(out_dir, to_dict(config)), out_dir)
    return trainer.method, trainer.data


def train_epochs(method: Method, data: DataBundle, epochs: int) -> int:
    """Drive `method` through `epochs` epochs as the runner does (without evaluation); returns the steps taken."""
    step = 0
    for epoch in range(epochs):
        for batch in data.train.epoch(epoch):
            method.train_step(batch, step)
            step += 1
        method.end_epoch(epoch)
    return step
