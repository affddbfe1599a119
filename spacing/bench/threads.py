"""``python -m spacing.bench threads``: images/s at the default thread count vs at 1..N threads, side by side.

Two workloads: ``python run.py``'s own run (a small CNN on the 8 x 8 digits) and a CIFAR-sized one
(ResNet-18 on 3 x 32 x 32 synthetic images, batch 128). The default is what a run with
``trainer.threads=null`` chooses here (:func:`spacing.cli.thread_count`: the CPUs free when it
starts); the other counts are set by hand. Each line is the runner's second training epoch (the
first warms up), the best of ``--repeats``; the last line of a workload is default / best, which
should stay near 1 (<= 1.2) on an idle machine and on a busy one alike.
"""

from __future__ import annotations

import argparse

import torch
from hydra.types import RunMode
from omegaconf import OmegaConf

from spacing.bench.train import bench_config, runner_rate
from spacing.cli import thread_count
from spacing.compose import app_config, compose_master, hydra_session, parse_args
from spacing.config import Config
from spacing.cpus import usable_cpus


def default_run_config(overrides: list[str]) -> Config:
    """The config ``python run.py OVERRIDES`` trains (composed as the command line composes it)."""
    args = parse_args(overrides)
    with hydra_session(args) as session:
        master = compose_master(session, args, RunMode.RUN)
    return OmegaConf.to_object(app_config(master))  # type: ignore[return-value]


def rates(config: Config, counts: list[int], repeats: int) -> dict[int, float]:
    """Images/s of the runner at each thread count in `counts` (the best of `repeats` epochs)."""
    measured = {}
    for count in counts:
        torch.set_num_threads(count)
        measured[count] = max(runner_rate(config) for _ in range(repeats))
    return measured


def report(label: str, default: int, measured: dict[int, float]) -> None:
    print(label)
    for count, rate in measured.items():
        mark = "  <- default" if count == default else ""
        print(f"  {count:>3} threads  {rate:>10,.0f} images/s{mark}")
    best = max(measured, key=measured.__getitem__)
    print(f"  best ({best} threads) / default ({default}): {measured[best] / measured[default]:.2f}x (1.00: the default is the fastest)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-threads", type=int, default=None, help="the highest count tried (default: the usable CPUs)")
    parser.add_argument("--steps", type=int, default=4, help="batches per epoch of the CIFAR-sized workload")
    parser.add_argument("--width", type=int, default=None, help="model.width of the CIFAR-sized ResNet-18 (default: its own, 64)")
    parser.add_argument("--repeats", type=int, default=2, help="epochs timed per count (the best is kept)")


def run(args: argparse.Namespace) -> None:
    default = thread_count(None, None) or torch.get_num_threads()
    counts = sorted(set(range(1, (args.max_threads or usable_cpus()) + 1)) | {default})
    print(f"usable CPUs {usable_cpus()}; a run with trainer.threads=null would use {default} now; trying {counts}")
    small = default_run_config(["trainer.device=cpu"])
    report("python run.py (small_cnn on digits)", default, rates(small, counts, args.repeats))
    cifar = bench_config("resnet18", args.width, args.steps, 128, torch.device("cpu"),
                         {"precision": "fp32", "channels_last": "false", "compile": False})
    report(f"resnet18 on 3 x 32 x 32, batch 128, {args.steps} steps", default, rates(cifar, counts, args.repeats))
