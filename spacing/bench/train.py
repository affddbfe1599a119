"""``python -m spacing.bench train``: train-step images/s, one speed factor at a time.

Five measurements on the same model, batch size and CIFAR-100-sized synthetic data, each after
a warm-up epoch (where cuDNN autotuning and compilation happen), timed between explicit device
synchronisations:

1. an fp32 loop over batches already on the device (the model's own speed: no data pipeline);
2. the runner (:meth:`spacing.runner.Trainer.train_epoch`) at fp32, default memory format:
   batches augmented on the device, the method's step, the loop's bookkeeping;
3. + bf16 autocast; 4. + channels_last; 5. + torch.compile.

Each line ends in the ratio to the line above it, so every factor's own effect is its ratio;
the last line is the whole fast path against the fp32 loop.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from spacing.bench.reference import PAPER_AUGMENT, sync
from spacing.config import Config, MethodConfig, ModelConfig, SyntheticDatasetConfig, TrainerConfig, to_dict
from spacing.data import build_data
from spacing.device import resolve_device
from spacing.models import build_model
from spacing.optim import build_optimizer
from spacing.record import RunRecord
from spacing.runner import Trainer
from spacing.speed import compiling_with

NUM_CLASSES = 100


@dataclass(frozen=True)
class Factor:
    """One line of the report: a label and the trainer switches it runs with (None: the plain fp32 loop)."""

    label: str
    switches: dict[str, object] | None


FACTORS = (
    Factor("fp32 loop over device-resident batches", None),
    Factor("runner at fp32", {"precision": "fp32", "channels_last": "false", "compile": False}),
    Factor("+ bf16", {"precision": "bf16", "channels_last": "false", "compile": False}),
    Factor("+ channels_last", {"precision": "bf16", "channels_last": "true", "compile": False}),
    Factor("+ compile", {"precision": "bf16", "channels_last": "true", "compile": True}),
)


def timed(device: torch.device, work: Callable[[], int]) -> float:
    """Images per second of `work` (returning the images it trained on), between two device synchronisations."""
    sync(device)
    started = time.perf_counter()
    images = work()
    sync(device)
    return images / (time.perf_counter() - started)


def bench_config(model: str, width: int | None, steps: int, batch_size: int, device: torch.device, switches: dict[str, object]) -> Config:
    """A baseline run over `steps` full batches of 3 x 32 x 32 synthetic images, with the papers' augmentation."""
    dataset = SyntheticDatasetConfig(
        name="synthetic",
        num_classes=min(NUM_CLASSES, steps * batch_size),
        train_size=steps * batch_size,
        test_size=batch_size,
        image_size=32,
        channels=3,
        val_fraction=0.0,
        augment=PAPER_AUGMENT,
    )
    trainer = TrainerConfig(epochs=2, batch_size=batch_size, device=str(device), log_every=max(steps, 1), **switches)  # type: ignore[arg-type]
    return Config(dataset=dataset, model=ModelConfig(name=model, width=width), method=MethodConfig(name="baseline"), trainer=trainer)


def runner_rate(config: Config) -> float:
    """Images/s of the runner's second training epoch (the first warms up)."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, to_dict(config), RunRecord(Path(tmp), to_dict(config)), Path(tmp))
        trainer.train_epoch(0)

        def epoch() -> int:
            trainer.train_epoch(1)
            return len(trainer.data.train)

        return timed(trainer.device, epoch)


def loop_rate(config: Config, device: torch.device) -> float:
    """Images/s of a plain fp32 loop over the runner's own batches, built beforehand on the device."""
    data = build_data(config.dataset, config.trainer.batch_size, config.trainer.eval_batch_size, config.seed, device)
    batches = list(data.train.epoch(0))
    model = build_model(config.model, data.num_classes, 3, 32).to(device)
    optimizer = build_optimizer(model.parameters(), config.trainer)

    def epoch() -> int:
        for batch in batches:
            loss = F.cross_entropy(model(batch.images), batch.labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return sum(len(batch) for batch in batches)

    epoch()
    return timed(device, epoch)


def measure(factor: Factor, model: str, width: int | None, steps: int, batch_size: int, device: torch.device) -> float:
    fp32 = {"precision": "fp32", "channels_last": "false", "compile": False}
    config = bench_config(model, width, steps, batch_size, device, factor.switches or fp32)
    return loop_rate(config, device) if factor.switches is None else runner_rate(config)


def report_factors(rates: list[tuple[str, float]]) -> None:
    """One line per factor: its images/s and its ratio to the line above (the first: 1.00x); then the total."""
    width = max(len(label) for label, _ in rates)
    previous = rates[0][1]
    for label, rate in rates:
        print(f"  {label:<{width}}  {rate:>12,.0f} images/s  {rate / previous:.2f}x")
        previous = rate
    print(f"runner fast path vs fp32 loop: {rates[-1][1] / rates[0][1]:.1f}x")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--model", default="resnet18", help="a model name (default resnet18)")
    parser.add_argument("--width", type=int, default=None, help="model.width (default: the model's own)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per factor (default: 12 on CPU, 200 on a GPU)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend of the compile factor (eager, aot_eager: no C++ compiler)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of this process (default: torch's choice)")


def run(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    steps = args.steps or (200 if device.type == "cuda" else 12)
    print(
        f"{args.model} train step, batch {args.batch_size}, CIFAR-100-sized synthetic data, {steps} timed steps per factor "
        f"after a warm-up epoch, on {device}; compile backend {args.compile_backend}"
    )
    with compiling_with(args.compile_backend):
        rates = [(f.label, measure(f, args.model, args.width, steps, args.batch_size, device)) for f in FACTORS]
    torch._dynamo.reset()
    report_factors(rates)
