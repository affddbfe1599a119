"""``python -m spacing.bench data``: images/s of the papers' PIL DataLoader pipeline vs our batched pipeline.

Both produce the same augmentation (crop with 4 px padding, flip, rotation up to 15 degrees,
normalisation) on the same CIFAR-sized synthetic uint8 data, in one process, side by side.
"""

from __future__ import annotations

import argparse
import os

import torch

from spacing.bench.reference import PAPER_AUGMENT, reference_loader, report, synthetic_cifar, timed
from spacing.data.augment import BatchAugment
from spacing.data.cifar import CIFAR100_MEAN, CIFAR100_STD
from spacing.data.stream import TrainStream
from spacing.device import resolve_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=50_000, help="synthetic training set size")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=100, help="batches timed per pipeline (after one warm-up batch)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="DataLoader workers of the PIL pipeline")
    parser.add_argument("--device", default="auto", help="where the batched pipeline keeps the data: auto, cpu, cuda")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the batched pipeline (default 1, as each PIL worker has one); 0: torch's choice"
    )


def run(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    images, labels = synthetic_cifar(args.images)
    print(
        f"data pipeline: {args.images} x 3 x 32 x 32 uint8, batch {args.batch_size}, crop 4 + flip + rotation 15 + normalise, "
        f"{args.batches} batches each"
    )

    loader = iter(reference_loader(images, labels, args.batch_size, args.workers, pin_memory=False))
    next(loader)
    pil_rate = timed(loader, args.batches, lambda batch: len(batch[1]), torch.device("cpu"))

    mean = torch.tensor(CIFAR100_MEAN, device=device).view(1, -1, 1, 1)
    std = torch.tensor(CIFAR100_STD, device=device).view(1, -1, 1, 1)
    stream = TrainStream(images.to(device), labels.to(device), BatchAugment.from_config(PAPER_AUGMENT, mean, std), args.batch_size, seed=0)
    batches = stream.epoch(0)
    next(batches)
    batched_rate = timed(batches, args.batches, len, device)

    report(
        [(f"(a) torchvision PIL DataLoader, {args.workers} workers", pil_rate), (f"(b) batched on {device}", batched_rate)],
        "data pipeline, batched vs PIL DataLoader",
        batched_rate / pil_rate,
    )
