"""``python -m spacing.bench train``: ResNet-18 train-step images/s at batch 128, reference loop vs our runner.

(a) the reference: an fp32 loop (model in the default memory format, SGD with the papers'
settings) over batches of the PIL DataLoader pipeline; (b) our runner's training epoch
(:meth:`spacing.runner.Trainer.train_epoch`) with the fast path: batches augmented on the
device, and the trainer's `auto` precision and memory format for that device. Same model, same
augmentation, CIFAR-100-sized synthetic data; each side runs `--steps` warm-up steps first.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from spacing.bench.reference import PAPER_AUGMENT, reference_loader, report, synthetic_cifar, timed
from spacing.config import Config, MethodConfig, ModelConfig, SyntheticDatasetConfig, TrainerConfig, to_dict
from spacing.device import resolve_device
from spacing.models import build_model
from spacing.optim import build_optimizer
from spacing.record import RunRecord
from spacing.runner import Trainer

NUM_CLASSES = 100


def num_classes(steps: int, batch_size: int) -> int:
    """CIFAR-100's 100 classes, fewer only when a tiny run has fewer training images than that."""
    return min(NUM_CLASSES, steps * batch_size)


def reference_rate(steps: int, batch_size: int, workers: int, device: torch.device, trainer: TrainerConfig) -> float:
    """Images/s of the fp32 DataLoader loop over `steps` steps, after `steps` warm-up steps."""
    classes = num_classes(steps, batch_size)
    images, labels = synthetic_cifar(2 * steps * batch_size, classes)
    model = build_model(ModelConfig(name="resnet18"), classes, 3, 32).to(device)
    optimizer = build_optimizer(model.parameters(), trainer)
    batches = iter(reference_loader(images, labels, batch_size, workers, pin_memory=device.type == "cuda"))

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        inputs, targets = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        loss = F.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return len(targets)

    timed(batches, steps, step, device)
    return timed(batches, steps, step, device)


def runner_rate(steps: int, batch_size: int, trainer: TrainerConfig, out_dir: Path) -> tuple[float, Trainer]:
    """Images/s of the runner's second training epoch of `steps` steps (the first one warms up)."""
    dataset = SyntheticDatasetConfig(
        name="synthetic",
        num_classes=num_classes(steps, batch_size),
        train_size=steps * batch_size,
        test_size=batch_size,
        image_size=32,
        channels=3,
        val_fraction=0.0,
        augment=PAPER_AUGMENT,
    )
    config = Config(dataset=dataset, model=ModelConfig(name="resnet18"), method=MethodConfig(name="baseline"), trainer=trainer)
    run = Trainer(config, to_dict(config), RunRecord(out_dir, to_dict(config)), out_dir)
    run.train_epoch(0)
    seconds_before = run.progress.train_seconds
    run.train_epoch(1)
    return steps * batch_size / (run.progress.train_seconds - seconds_before), run


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m spacing.bench train", description=__doc__)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per side (default: 12 on CPU, 200 on a GPU)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="DataLoader workers of the reference")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the runner's model (trainer.compile=true)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of this process (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    steps = args.steps or (200 if device.type == "cuda" else 12)
    trainer = TrainerConfig(epochs=2, batch_size=args.batch_size, device=str(device), compile=args.compile)
    with tempfile.TemporaryDirectory() as tmp:
        fast_rate, run = runner_rate(steps, args.batch_size, trainer, Path(tmp))
    speed = run.speed
    print(
        f"ResNet-18 train step, batch {args.batch_size}, CIFAR-100-sized synthetic data, {steps} timed steps each, on {device}; "
        f"fast path: {speed.dtype or 'fp32'}, channels_last={speed.channels_last}, compile={speed.compile}"
    )
    slow_rate = reference_rate(steps, args.batch_size, args.workers, device, trainer)
    report(
        [(f"(a) fp32 loop over the PIL DataLoader, {args.workers} workers", slow_rate), ("(b) runner, fast path", fast_rate)],
        "ResNet-18 train step, runner fast path vs fp32 DataLoader loop",
        fast_rate / slow_rate,
    )
