"""``python -m spacing.bench replay``: peak memory of spaced KD's replay store vs storing images.

Drives the real :class:`~spacing.methods.distill.ReplayQueue` with the batches a real
:class:`~spacing.data.TrainStream` plans (indices and seeds only: no images) through the real schedule on a
CIFAR-sized stream (50,000 images, batch 128 -> 391 steps per epoch) for a few spaced
intervals and compares its peak bytes with what keeping the float32 augmented batches would
cost (the papers' code kept those: ~0.9 GB at s = 1.5).
"""

from __future__ import annotations

import argparse
import math

import torch

from spacing.data import Batch, TrainStream
from spacing.methods.distill import ReplayQueue
from spacing.schedule import Schedule

IMAGE_SHAPE = (3, 32, 32)


def measure(interval: float, images: int, batch_size: int, mode: str) -> tuple[int, int]:
    """(peak bytes, peak batches) of the replay store over two periods plus an epoch."""
    labels = torch.zeros(images, dtype=torch.long)
    stream = TrainStream(torch.empty(images, 0, dtype=torch.uint8), labels, augment=None, batch_size=batch_size, seed=0)
    schedule = Schedule(interval, "periodic", stream.steps_per_epoch)
    queue = ReplayQueue(schedule, mode)
    empty = torch.empty(0)
    steps = 2 * int(schedule.period) + stream.steps_per_epoch
    plans = (plan for epoch in range(steps // stream.steps_per_epoch + 1) for plan in stream.plan(epoch))
    for step, (indices, seed) in zip(range(steps), plans):
        queue.push(Batch(empty, empty, indices, seed), teacher_steps=step + 1)
        queue.due(step)
    return queue.peak_nbytes, queue.peak_batches


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.5, 1.5, 4.0])
    parser.add_argument("--mode", choices=["lagged", "rounds"], default="lagged")


def run(args: argparse.Namespace) -> None:
    steps_per_epoch = math.ceil(args.images / args.batch_size)
    batch_image_bytes = args.batch_size * math.prod(IMAGE_SHAPE) * 4
    print(f"replay store ({args.mode}), {args.images} images, batch {args.batch_size}, {steps_per_epoch} steps/epoch")
    print(f"{'s':>5} {'S steps':>8} {'peak batches':>13} {'replay bytes':>13} {'image bytes':>15} {'ratio':>8}")
    line = ""
    for interval in args.intervals:
        peak_bytes, peak_batches = measure(interval, args.images, args.batch_size, args.mode)
        image_bytes = peak_batches * batch_image_bytes
        ratio = image_bytes / peak_bytes
        period = int(interval * steps_per_epoch)
        print(f"{interval:>5g} {period:>8d} {peak_batches:>13d} {peak_bytes:>13,d} {image_bytes:>15,d} {ratio:>7.0f}x")
        line = f"replay memory at s={interval:g}: {peak_bytes} bytes ({ratio:.0f}x less than storing images)"
    print(line)

