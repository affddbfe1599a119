"""``python -m spacing.bench fused``: training seconds of an EMA grid and a KD curve, fused against unfused.

Side by side in one process, on the CPU by default: every cell of a small EMA grid (intervals x
decays) and of a KD curve (intervals, offline ``inf`` included) is trained once as its own run
(:func:`spacing.runner.run`) and once in its fused group (:func:`spacing.fused.run_group`). The
records are checked equal (metrics, counters, history up to its timing column; a difference ends
the benchmark with an error), then the training seconds compared: unfused, the sum of the runs'
``wall_time_s``; fused, the group's (every cell records the group's); each the least over
``--repeats`` alternating repeats, so that load from other jobs does not decide. The last two lines are

    fused EMA grid: <unfused / fused>x
    fused KD curve: <unfused / fused>x

An EMA group trains its model once for all its cells and adds one cheap shadow update per cell;
a KD group shares its teacher's training, but each student still needs the teacher's forwards.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from spacing.compose import register_configs
from spacing.fused import run_group
from spacing import runner

CONF = Path(__file__).resolve().parents[2] / "conf"


def cell_configs(base: Sequence[str], cells: Sequence[Sequence[str]]) -> list[DictConfig]:
    """The composed config of each cell: the overrides `base` and then the cell's own."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return [compose(config_name="config", overrides=[*base, *cell]) for cell in cells]


def comparable_record(record: dict[str, Any], out_dir: Path) -> tuple[Any, ...]:
    """What a fused cell must share with its separate run: status, metrics, counters, steps and history but its seconds."""
    with open(out_dir / "history.csv", newline="") as handle:
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]
    return record["status"], record["metrics"], record["counters"], record["steps"], rows


def measure(label: str, base: Sequence[str], cells: Sequence[Sequence[str]], root: Path, repeats: int) -> float:
    """Train `cells` unfused and fused under `root`, `repeats` times each in alternation, checking every fused
    record equal to its separate run's; returns unfused / fused training seconds, each the least of its repeats
    (what the work costs; the others lost time to whatever else the machine ran)."""
    configs = cell_configs(base, cells)
    unfused, fused = [], []
    for repeat in range(repeats):
        alone_dirs = [root / label / str(repeat) / "unfused" / str(i) for i in range(len(cells))]
        together_dirs = [root / label / str(repeat) / "fused" / str(i) for i in range(len(cells))]
        alone = [runner.run(config, out_dir) for config, out_dir in zip(configs, alone_dirs)]
        together = run_group(list(zip(configs, together_dirs)))
        for cell, a, b, a_dir, b_dir in zip(cells, alone, together, alone_dirs, together_dirs):
            if comparable_record(a, a_dir) != comparable_record(b, b_dir):
                raise SystemExit(f"the fused record of {label} cell {' '.join(cell)} differs from its separate run's")
        unfused.append(sum(record["wall_time_s"] for record in alone))
        fused.append(max(record["wall_time_s"] for record in together))
    print(f"  {label}: {len(cells)} cells, unfused {min(unfused):.3f} s, fused {min(fused):.3f} s, records equal")
    return min(unfused) / min(fused)


def _floats(text: str) -> list[str]:
    return [value.strip() for value in text.split(",") if value.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="digits", help="a dataset option (default digits)")
    parser.add_argument("--model", default="small_cnn", help="a model name (default small_cnn)")
    parser.add_argument("--width", type=int, default=None, help="model.width (default: the model's own)")
    parser.add_argument("--epochs", type=int, default=2, help="trainer.epochs of every cell (default 2)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ema-intervals", type=_floats, default=_floats("0,0.25,0.5,1"), help="EMA grid intervals (default 0,0.25,0.5,1)")
    parser.add_argument("--decays", type=_floats, default=_floats("0.9,0.99"), help="EMA grid decays (default 0.9,0.99)")
    parser.add_argument("--kd-intervals", type=_floats, default=_floats("0,0.5,1,inf"), help="KD curve intervals (default 0,0.5,1,inf)")
    parser.add_argument("--device", default="cpu", help="trainer.device (default cpu: equal records are only promised there)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of this process (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3, help="times each side is trained, alternating; the least seconds count (default 3)")
    parser.add_argument("--override", action="append", default=[], help="any further config override, for every cell (repeatable)")


def run_bench(args: argparse.Namespace, root: Path) -> tuple[float, float]:
    base = [
        f"dataset={args.dataset}",
        f"model={args.model}",
        f"trainer.epochs={args.epochs}",
        f"trainer.batch_size={args.batch_size}",
        f"trainer.device={args.device}",
        *([f"model.width={args.width}"] if args.width else []),
        *args.override,
    ]
    print(
        f"fused vs unfused on {args.device}, {torch.get_num_threads()} threads: {args.dataset}, {args.model}, "
        f"{args.epochs} epochs, batch {args.batch_size}; least training seconds of {args.repeats} alternating repeats"
    )
    ema_cells = [(f"method.interval={i}", f"method.decay={d}") for i in args.ema_intervals for d in args.decays]
    ema = measure("EMA grid", [*base, "method=ema"], ema_cells, root, args.repeats)
    kd = measure("KD curve", [*base, "method=online_kd"], [(f"method.interval={i}",) for i in args.kd_intervals], root, args.repeats)
    return ema, kd


def run(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="spacing-bench-fused-") as tmp:
        ema, kd = run_bench(args, Path(tmp))
    print(f"fused EMA grid: {ema:.2f}x")
    print(f"fused KD curve: {kd:.2f}x")
