"""Benchmark: how long a cold aggregation of many synthetic run records takes.

``python -m analysis bench [--records 10000]`` writes the records to a temporary directory, then
times ``report.load`` (find, parse and check every result.json, vet series, duplicates and
impossible values, build the tidy table, aggregate, pair the gains with their intervals, list
what is incomplete) in a fresh Python process, so no module or cache of this one helps.
The budget it checks against is 10 s for 10,000 records; it is a measurement, not a test.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from spacing.contract import RESULT_FILE

METHODS = {
    "dropout": ("p", (0.1, 0.2, 0.3, 0.4, 0.5), ("model",), "model"),
    "ema": ("decay", (0.99, 0.995, 0.998, 0.999, 0.9995), ("model", "ema"), "ema"),
    "online_kd": ("alpha", (0.1, 0.2, 0.3, 0.4, 0.5), ("student", "teacher"), "student"),
    "self_kd": ("alpha", (0.1, 0.2, 0.3, 0.4, 0.5), ("exit1", "exit2", "exit3", "exit4", "ensemble"), "ensemble"),
}
"""Per method of the synthetic records: strength name, strengths, targets and main target."""
INTERVALS = (0.0, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 4.0, 8.0, float("inf"))
BUDGET_S = 10.0


def synthetic_record(method: str, interval: float, strength: float, seed: int, rng: random.Random) -> dict[str, Any]:
    """A result.json as training writes it, including a resolved config of realistic size."""
    strength_name, _, targets, main_target = METHODS[method]
    metrics = {}
    for target in targets:
        acc = 0.7 + 0.05 * rng.random()
        metrics[target] = {"test_acc": acc, "best_test_acc": acc + 0.01, "val_acc": acc - 0.01,
                           "best_val_acc": acc, "test_acc_at_best_val": acc + 0.005,
                           "best_val_epoch": 70, "best_test_epoch": 72}
    config = {"method": {"name": method, "interval": interval, strength_name: strength, "schedule": "periodic"},
              "dataset": {"name": "cifar100", "root": "/data/cifar100", "batch_size": 128, "num_workers": 8},
              "model": {"name": "resnet18", "num_classes": 100},
              "trainer": {"epochs": 80, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "device": "cuda",
                          "precision": "bf16", "checkpoint_every": 1, "lr_milestones": [60, 120, 160]},
              "seed": seed, "notes": "x" * 1500}
    return {"status": "completed", "method": method, "interval": interval, "schedule": "periodic",
            "strength_name": strength_name, "strength": strength, "main_target": main_target, "seed": seed, "dataset": "cifar100",
            "model": "resnet18", "epochs": 80, "epochs_completed": 80, "steps": 31280, "wall_time_s": 1800.0,
            "images_per_s": 2200.0, "metrics": metrics, "counters": {"updates": 31280}, "config": config,
            "versions": {"python": "3.11", "torch": "2.4"}, "git_commit": "0" * 40, "error": None}


def write_records(root: Path, count: int) -> None:
    """``count`` records in ``root``/<i>/result.json, cycling the method x strength x interval grid."""
    cells = [(m, i, s) for m, (_, strengths, _, _) in METHODS.items() for s in strengths for i in INTERVALS]
    rng = random.Random(0)
    for index in range(count):
        method, interval, strength = cells[index % len(cells)]
        run_dir = root / str(index)
        run_dir.mkdir(parents=True)
        record = synthetic_record(method, interval, strength, index // len(cells), rng)
        (run_dir / RESULT_FILE).write_text(json.dumps(record))


_CHILD = """
import json, sys, time
start = time.perf_counter()
from analysis.report import load
imported = time.perf_counter()
analysis = load([__import__("pathlib").Path(sys.argv[1])])
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "aggregate_s": done - imported,
                  "runs": len(analysis.runs), "rows": len(analysis.tidy), "points": len(analysis.points)}))
"""


def run(count: int) -> str:
    """Write ``count`` records, time a cold aggregation in a fresh process, return the report line."""
    with tempfile.TemporaryDirectory(prefix="analysis-bench-") as tmp:
        write_records(Path(tmp), count)
        project_root = str(Path(__file__).resolve().parent.parent)
        child = subprocess.run([sys.executable, "-c", _CHILD, tmp], capture_output=True, text=True,
                               cwd=project_root, check=True)
    timing = json.loads(child.stdout)
    verdict = "within" if timing["aggregate_s"] < BUDGET_S * count / 10_000 else "OVER"
    return (f"aggregate {timing['runs']} records: {timing['aggregate_s']:.2f} s "
            f"({timing['rows']} tidy rows, {timing['points']} points; fresh process, imports "
            f"{timing['import_s']:.2f} s more; {verdict} the {BUDGET_S:g} s per 10,000 budget)")
