"""What tests share: composing and running configs as the CLI does, reading run dirs back, launching
sweeps, fake copies of the data sets' on-disk formats, and record sets with known values for analysis.

Test modules import these by name (``from tests.helpers import ...``); fixtures that wrap them live
in the conftest.py files.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pickle
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from spacing.build import build_run
from spacing.compose import register_configs
from spacing.config import Config, to_dict
from spacing.contract import HISTORY_FILE, RESULT_FILE
from spacing.data import DataBundle
from spacing.methods import METHODS, Method
from spacing.neutral import cell_dir_name
from spacing.sweep_state import CELL_FILE

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# --- Configs and runs, as the CLI composes and trains them -----------------------------------

TINY = ("dataset=synthetic", "dataset.train_size=200", "model=small_cnn", "model.width=4", "trainer.batch_size=16")
"""A method's config at the smallest size that still has several batches per epoch."""
FAST = ("trainer.epochs=1", "trainer.device=cpu", "dataset=synthetic", "model=small_cnn", "model.width=8")
"""A run of a second: one epoch of a small model on synthetic data, on the CPU."""
SYNTHETIC = ("dataset=synthetic", "model.width=4", "trainer.epochs=2", "trainer.log_every=2")
"""A run of a second or two: 4 steps per epoch, a tiny model, train loss logged every 2 steps."""
SMALL_WIDTH = {
    "small_cnn": 8,
    "resnet18": 8,
    "resnet34": 8,
    "resnet50": 8,
    "resnet101": 4,
    "wrn28_10": 8,
    "wrn16_4": 8,
    "vgg16_bn": 8,
    "mobilenetv2": 8,
    "shufflenetv2": 16,
    "vit_tiny": 32,
}
"""A width per architecture at which it builds and runs in well under a second."""


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The config `python run.py <overrides>` would run, composed with Hydra's compose API."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def method_options() -> list[str]:
    """Every ``method=`` option: the registered methods (which need no file) and the presets in conf/method/."""
    return sorted(set(METHODS) | {path.stem for path in (CONF / "method").glob("*.yaml")})


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
    """The method and data of `config` for `epochs` epochs on the CPU, built as a run builds them."""
    config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, epochs=epochs, device="cpu"))
    parts = build_run(config)
    return parts.method, parts.data


def train_epochs(method: Method, data: DataBundle, epochs: int) -> int:
    """Drive `method` through `epochs` epochs as the loop does (without evaluation); returns the steps taken."""
    step = 0
    for epoch in range(epochs):
        for batch in data.train.epoch(epoch):
            method.train_step(batch, step)
            step += 1
        method.end_epoch(epoch)
    return step


# --- A run dir, read back ----------------------------------------------------------------------


def read_record(run_dir: Path) -> dict[str, Any]:
    """The run's result.json."""
    return json.loads((run_dir / RESULT_FILE).read_text())


def history_rows(run_dir: Path) -> list[dict[str, str]]:
    """The run's history.csv, one dict per row (values as text)."""
    with open(run_dir / HISTORY_FILE, newline="") as handle:
        return list(csv.DictReader(handle))


def history_series(run_dir: Path, column: str, target: str) -> list[float]:
    """One history.csv column of one target, in epoch order."""
    rows = sorted((r for r in history_rows(run_dir) if r["target"] == target), key=lambda r: int(r["epoch"]))
    return [float(r[column]) for r in rows]


def history_epochs(cell: Path) -> list[int]:
    """The epochs in a cell's history.csv, one entry per row (the runs here have one target)."""
    path = cell / HISTORY_FILE
    if not path.exists():
        return []
    return [int(line.split(",", 1)[0]) for line in path.read_text().splitlines()[1:] if line]


def logged_epochs(cell: Path) -> list[int]:
    """The epoch numbers of every `epoch i/N` line in a cell's log, across all its launches."""
    return [int(m) for m in re.findall(r" - epoch (\d+)/\d+ \|", (cell / "run.log").read_text())]


def resumed_at(cell: Path) -> list[int]:
    """The epochs a cell's log says it resumed from its checkpoint at."""
    return [int(m) for m in re.findall(r"resumed from .*checkpoint\.pt at epoch (\d+)", (cell / "run.log").read_text())]


# --- Sweeps, launched as a user would ---------------------------------------------------------

CELL_TINY = ("dataset=synthetic", "model.width=8", "trainer.device=cpu")
"""Cells that train in well under a second per epoch on one CPU core."""
SLURM_CPU = (
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=15",
)
"""The slurm launcher shrunk to the test cluster: CPU-only tasks of one core."""

def cli_env() -> dict[str, str]:
    """The environment of a launch: the repo importable by every cell's process, one thread per cell."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("HYDRA_FULL_ERROR", None)  # what a user has: Hydra's short report for bugs, our sentences for the rest
    return env


def launch(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`python run.py -m ARGS` in `cwd`, waited for."""
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def spacing(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`spacing ARGS` (as `python -m spacing ARGS`) in `cwd`, waited for."""
    return subprocess.run(
        [sys.executable, "-m", "spacing", *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout
    )


def launch_in_background(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """`python run.py -m ARGS` in `cwd`, left running in a session of its own; its output goes to `cwd/driver.log`."""
    with open(cwd / "driver.log", "w") as log:  # the child keeps its own copy of the file descriptor
        return subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "-m", *args],
            cwd=cwd,
            env=cli_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def cells(sweep_dir: Path) -> list[Path]:
    """The cell dirs of a sweep dir (those a launch marked), sorted."""
    return sorted(path.parent for path in sweep_dir.rglob(CELL_FILE))


def marker(cell: Path) -> dict:
    return json.loads((cell / CELL_FILE).read_text())


def summary_line(output: str) -> str:
    """The counts line SweepSummary prints at the end of a launch."""
    lines = [line for line in output.splitlines() if re.match(r"^sweep .*: \d+ cells, ", line)]
    assert lines, f"no sweep summary in the output:\n{output[-3000:]}"
    return lines[-1]


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    """Poll `condition` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def cell_dir(sweep_dir: Path, *overrides: str) -> Path:
    """Where a sweep puts the cell of `overrides` (its dir is named from its resolved config)."""
    return sweep_dir / cell_dir_name(to_dict(compose_config(list(overrides))))


# --- Fake copies of the data sets' on-disk formats, read back through the real loaders ----------


def random_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _pickle(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(content, handle)


def write_cifar(root: Path, hundred: bool, per_batch: int = 4, test: int = 3) -> dict[str, torch.Tensor]:
    """cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta or cifar-100-python/train, test, meta (5 x `per_batch` training images)."""
    classes = 100 if hundred else 10
    label_key = "fine_labels" if hundred else "labels"
    train_names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    n_train = per_batch * 5
    images = random_images(n_train + test)
    labels = torch.arange(n_train + test) % classes
    rows = images.reshape(len(images), 3 * 32 * 32).numpy()
    chunk = n_train // len(train_names)
    for i, name in enumerate(train_names):
        part = slice(i * chunk, (i + 1) * chunk)
        _pickle(folder / name, {"data": rows[part], label_key: labels[part].tolist(), "batch_label": name})
    _pickle(folder / ("test" if hundred else "test_batch"), {"data": rows[n_train:], label_key: labels[n_train:].tolist()})
    names = {"fine_label_names": [f"c{i}" for i in range(100)]} if hundred else {"label_names": [f"c{i}" for i in range(10)]}
    _pickle(folder / ("meta" if hundred else "batches.meta"), names)
    return {"train_images": images[:n_train], "train_labels": labels[:n_train], "test_images": images[n_train:], "test_labels": labels[n_train:]}


def write_svhn(root: Path, n_train: int = 6, n_test: int = 4) -> dict[str, torch.Tensor]:
    """train_32x32.mat / test_32x32.mat: X is H x W x C x N uint8, y is N x 1 with 10 for the digit 0."""
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        images = random_images(n, seed=seed)
        digits = torch.arange(n) % 10
        savemat(root / f"{split}_32x32.mat", {"X": images.permute(2, 3, 1, 0).numpy(), "y": np.where(digits.numpy() == 0, 10, digits.numpy())[:, None]})
        out[f"{split}_images"], out[f"{split}_labels"] = images, digits
    return out


def write_tiny_imagenet(root: Path, wnids: list[str], train_per_class: int = 2, val_per_class: int = 2) -> Path:
    """tiny-imagenet-200/ with wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and val_annotations.txt.

    Class k's images are a flat colour (k * 60, 255 - k * 60, 128), so labels survive JPEG; the
    first training image is greyscale, as some official ones are.
    """
    from PIL import Image

    tree = root / "tiny-imagenet-200"
    (tree / "val" / "images").mkdir(parents=True)
    (tree / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    annotations = []
    for k, wnid in enumerate(wnids):
        colour = (k * 60, 255 - k * 60, 128)
        folder = tree / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(train_per_class):
            image = Image.new("L", (64, 64), 100) if k == 0 and i == 0 else Image.new("RGB", (64, 64), colour)
            image.save(folder / f"{wnid}_{i}.JPEG", quality=95)
        for i in range(val_per_class):
            name = f"val_{k * val_per_class + i}.JPEG"
            Image.new("RGB", (64, 64), colour).save(tree / "val" / "images" / name, quality=95)
            annotations.append(f"{name}\t{wnid}\t0\t0\t63\t63\n")
    (tree / "val" / "val_annotations.txt").write_text("".join(annotations))
    return tree


# --- Record sets with known values, written the way training writes them (for analysis) -------

SEED_OFFSET = {0: -0.01, 1: 0.0, 2: 0.01}
#: ema-target final test accuracy per (decay, interval); the raw model is 0.05 lower.
EMA_BASE = {
    (0.9, 0.0): 0.80, (0.9, 0.5): 0.82, (0.9, 1.0): 0.81,
    (0.99, 0.0): 0.83, (0.99, 0.5): 0.84, (0.99, 1.0): 0.86,
}
RANDOM_BASE = 0.85  # ema decay 0.99, schedule random
BASELINE_BASE = 0.78
FAILED_CELL = (0.99, 1.0, 2)  # (decay, interval, seed) whose run failed
MISSING_CELL = (0.9, 1.0, 1)  # (decay, interval, seed) that has no record at all
RECORD_EPOCHS = 3
MAIN_TARGET = {"ema": "ema", "baseline": "model"}
"""The main target the runner writes for the methods of these records (spacing.methods declares them)."""


def make_record(method: str, interval: float, strength: float | None, seed: int, accs: dict[str, float],
                status: str = "completed", schedule: str = "periodic", **extra: Any) -> dict[str, Any]:
    """A result.json as the run record contract describes it."""
    metrics = {
        target: {"test_acc": acc, "best_test_acc": acc + 0.02, "val_acc": acc - 0.01, "best_val_acc": acc,
                 "test_acc_at_best_val": acc + 0.01, "best_val_epoch": 2, "best_test_epoch": 3}
        for target, acc in accs.items()
    }
    return {"status": status, "method": method, "interval": interval, "schedule": schedule,
            "strength_name": None if strength is None else "decay", "strength": strength,
            "main_target": MAIN_TARGET.get(method, next(iter(accs), None)), "seed": seed,
            "dataset": "digits", "model": "small_cnn", "epochs": RECORD_EPOCHS,
            "epochs_completed": RECORD_EPOCHS if status == "completed" else 1, "steps": 90, "wall_time_s": 1.0,
            "images_per_s": 100.0, "metrics": metrics, "counters": {"ema_updates": 9}, "config": {"seed": seed},
            "versions": {}, "git_commit": None, "error": None, "an_unknown_key": [1, 2], **extra}


def write_run(run_dir: Path, result: dict[str, Any] | str, history: bool = True) -> Path:
    """Write result.json (a dict, or raw text for corrupt files) and a history.csv ending at the final accuracy.

    Epoch e of target t has test_acc = final - 0.01 * (E - e), E the record's epochs_completed when it is
    completed (so its history agrees with it), else RECORD_EPOCHS.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra").mkdir(exist_ok=True)
    text = result if isinstance(result, str) else json.dumps(result)
    (run_dir / "result.json").write_text(text)
    if history and isinstance(result, dict):
        lines = ["epoch,target,train_loss,train_acc,val_acc,test_acc,lr,seconds"]
        epochs = result.get("epochs_completed") if result.get("status") == "completed" else None
        for target, metrics in result["metrics"].items():
            for epoch in range(1, (epochs or RECORD_EPOCHS) + 1):  # a completed record's history has its every epoch
                acc = metrics["test_acc"] - 0.01 * ((epochs or RECORD_EPOCHS) - epoch)
                lines.append(f"{epoch},{target},0.5,0.9,,{acc},0.01,0.1")
        (run_dir / "history.csv").write_text("\n".join(lines) + "\n")
    return run_dir


@dataclass
class Sweep:
    """Where the record set lies, and the numbers it was written from."""

    root: Path
    corrupt: Path
    orphan: Path
    failed: Path
    seed_offset: ClassVar[dict[int, float]] = SEED_OFFSET
    ema_base: ClassVar[dict[tuple[float, float], float]] = EMA_BASE
    random_base: ClassVar[float] = RANDOM_BASE
    baseline_base: ClassVar[float] = BASELINE_BASE
    failed_cell: ClassVar[tuple[float, float, int]] = FAILED_CELL
    missing_cell: ClassVar[tuple[float, float, int]] = MISSING_CELL
    epochs: ClassVar[int] = RECORD_EPOCHS


def make_sweep(root: Path) -> Sweep:
    """Write the record set the ``sweep`` fixture of tests/analysis/conftest.py describes under ``root``."""
    job = 0

    def add(result: dict[str, Any] | str) -> Path:
        nonlocal job
        job += 1
        return write_run(root / f"job{job:02d}", result)

    failed_dir = None
    for (decay, interval), base in EMA_BASE.items():
        for seed, offset in SEED_OFFSET.items():
            if (decay, interval, seed) == MISSING_CELL:
                continue
            accs = {"ema": base + offset, "model": base + offset - 0.05}
            if (decay, interval, seed) == FAILED_CELL:
                failed_dir = add(make_record("ema", interval, decay, seed, {}, status="failed",
                                             error="ValueError: loss is NaN at step 12"))
            else:
                add(make_record("ema", interval, decay, seed, accs))
    for seed, offset in SEED_OFFSET.items():
        add(make_record("ema", 0.0, 0.99, seed, {"ema": RANDOM_BASE + offset, "model": RANDOM_BASE + offset - 0.05},
                        schedule="random"))
        add(make_record("baseline", 0.0, None, seed, {"model": BASELINE_BASE + offset}))
    corrupt = add('{"status": "completed", "method": ')
    orphan = root / "job99"
    (orphan / ".hydra").mkdir(parents=True)
    assert failed_dir is not None
    return Sweep(root, corrupt / "result.json", orphan, failed_dir)
