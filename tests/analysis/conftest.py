"""Record sets with known values, written the way training writes them.

Test modules get everything through fixtures (``sweep``, ``make_record``, ``write_run``), never by
importing this file, so they work under any pytest import mode and beside other conftest files.
The ``sweep`` fixture is a small EMA grid (decay 0.9 / 0.99 x interval 0 / 0.5 / 1 x seeds 0-2)
plus baseline and random-schedule cells, with one failed run, one missing seed, one corrupt file
and one Hydra job directory that never wrote a record. Every accuracy is
``BASE[cell] + SEED_OFFSET[seed]``, so means, sds and gains can be written down by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

SEED_OFFSET = {0: -0.01, 1: 0.0, 2: 0.01}
#: ema-target final test accuracy per (decay, interval); the raw model is 0.05 lower.
EMA_BASE = {
    (0.9, 0.0): 0.80, (0.9, 0.5): 0.82, (0.9, 1.0): 0.81,
    (0.99, 0.0): 0.83, (0.99, 0.5): 0.84, (0.99, 1.0): 0.86,
}
RANDOM_BASE = 0.85  # ema decay 0.99, schedule random
BASELINE_BASE = 0.78
FAILED = (0.99, 1.0, 2)  # (decay, interval, seed) whose run failed
MISSING = (0.9, 1.0, 1)  # (decay, interval, seed) that has no record at all
EPOCHS = 3


MAIN_TARGET = {"ema": "ema", "baseline": "model"}
"""The main target the runner writes for the methods of these records (spacing.methods declares them)."""


def record(method: str, interval: float, strength: float | None, seed: int, accs: dict[str, float],
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
            "dataset": "digits", "model": "small_cnn", "epochs": EPOCHS,
            "epochs_completed": EPOCHS if status == "completed" else 1, "steps": 90, "wall_time_s": 1.0,
            "images_per_s": 100.0, "metrics": metrics, "counters": {"ema_updates": 9}, "config": {"seed": seed},
            "versions": {}, "git_commit": None, "error": None, "an_unknown_key": [1, 2], **extra}


def write_run(run_dir: Path, result: dict[str, Any] | str, history: bool = True) -> Path:
    """Write result.json (a dict, or raw text for corrupt files) and a history.csv ending at the final accuracy.

    Epoch e of target t has test_acc = final - 0.01 * (EPOCHS - e).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra").mkdir(exist_ok=True)
    text = result if isinstance(result, str) else json.dumps(result)
    (run_dir / "result.json").write_text(text)
    if history and isinstance(result, dict):
        lines = ["epoch,target,train_loss,train_acc,val_acc,test_acc,lr,seconds"]
        for target, metrics in result["metrics"].items():
            for epoch in range(1, EPOCHS + 1):
                acc = metrics["test_acc"] - 0.01 * (EPOCHS - epoch)
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
    failed_cell: ClassVar[tuple[float, float, int]] = FAILED
    missing_cell: ClassVar[tuple[float, float, int]] = MISSING
    epochs: ClassVar[int] = EPOCHS


def make_sweep(root: Path) -> Sweep:
    """Write the record set described in the module docstring under ``root``."""
    job = 0

    def add(result: dict[str, Any] | str) -> Path:
        nonlocal job
        job += 1
        return write_run(root / f"job{job:02d}", result)

    failed_dir = None
    for (decay, interval), base in EMA_BASE.items():
        for seed, offset in SEED_OFFSET.items():
            if (decay, interval, seed) == MISSING:
                continue
            accs = {"ema": base + offset, "model": base + offset - 0.05}
            if (decay, interval, seed) == FAILED:
                failed_dir = add(record("ema", interval, decay, seed, {}, status="failed",
                                        error="ValueError: loss is NaN at step 12"))
            else:
                add(record("ema", interval, decay, seed, accs))
    for seed, offset in SEED_OFFSET.items():
        add(record("ema", 0.0, 0.99, seed, {"ema": RANDOM_BASE + offset, "model": RANDOM_BASE + offset - 0.05},
                   schedule="random"))
        add(record("baseline", 0.0, None, seed, {"model": BASELINE_BASE + offset}))
    corrupt = add('{"status": "completed", "method": ')
    orphan = root / "job99"
    (orphan / ".hydra").mkdir(parents=True)
    assert failed_dir is not None
    return Sweep(root, corrupt / "result.json", orphan, failed_dir)


@pytest.fixture
def sweep(tmp_path: Path) -> Sweep:
    return make_sweep(tmp_path / "sweep")


@pytest.fixture
def make_record() -> Callable[..., dict[str, Any]]:
    return record


@pytest.fixture(name="write_run")
def write_run_fixture() -> Callable[..., Path]:
    return write_run
