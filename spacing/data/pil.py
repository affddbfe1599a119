"""The torchvision path (``dataset.loader=torchvision``): per-image PIL transforms in DataLoader workers.

It exists to check the fast batched path against the pipeline the papers' scripts run
(``RandomCrop``, ``RandomHorizontalFlip``, ``RandomRotation``, ``AutoAugment`` on PIL images,
then ``ToTensor`` and ``Normalize``). Batches keep the identity of the fast path: each is made
of the same `(indices, seed)`, and each image's transforms are seeded from the batch's seed, so
:meth:`TrainStream.rebuild` recreates a batch a worker made, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from spacing.config import AugmentConfig
from spacing.data.augment import cutout
from spacing.data.stream import Augment, Batch, TrainStream, to_device


class PILCutout:
    """Cutout on one normalised image tensor, drawing from the global RNG like torchvision transforms do."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, image: Tensor) -> Tensor:
        return cutout(image[None], self.length, torch.default_generator)[0]


def pil_transform(cfg: AugmentConfig, image_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Callable:
    """The torchvision transform of one PIL image that matches :class:`BatchAugment` for `cfg`."""
    from torchvision import transforms as T

    steps: list[Callable] = []
    if cfg.crop_padding:
        steps.append(T.RandomCrop(image_size, padding=cfg.crop_padding, fill=cfg.fill))
    if cfg.hflip:
        steps.append(T.RandomHorizontalFlip())
    if cfg.rotation:
        steps.append(T.RandomRotation(cfg.rotation, fill=cfg.fill))
    if cfg.autoaugment:
        steps.append(T.AutoAugment(T.AutoAugmentPolicy.CIFAR10, fill=cfg.fill))
    steps.append(T.ToTensor())
    if cfg.cutout and cfg.cutout_black:
        steps.append(PILCutout(cfg.cutout))
    steps.append(T.Normalize(mean, std))
    if cfg.cutout and not cfg.cutout_black:
        steps.append(PILCutout(cfg.cutout))
    return T.Compose(steps)


def to_pil(image: Tensor):  # type: ignore[no-untyped-def]
    """uint8 C x H x W -> PIL image (mode L for one channel, RGB for three)."""
    from PIL import Image

    array = image.permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else np.ascontiguousarray(array))


class PILAugment:
    """An :data:`Augment` that runs `transform` on each image, seeded per image from the batch generator."""

    def __init__(self, transform: Callable, memory_format: torch.memory_format = torch.contiguous_format) -> None:
        self.transform = transform
        self.memory_format = memory_format

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        seeds = torch.randint(0, 2**62, (len(images),), generator=generator).tolist()
        out = []
        for image, seed in zip(images.cpu(), seeds, strict=True):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out.append(self.transform(to_pil(image)))
        return torch.stack(out).contiguous(memory_format=self.memory_format)


class _BatchJobs(Dataset):
    """Item i = batch i of a plan, augmented (what a DataLoader worker computes)."""

    def __init__(self, stream: TrainStream, plan: list[tuple[Tensor, int]]) -> None:
        self.images, self.labels, self.augment, self.plan = stream.images, stream.labels, stream.augment, plan

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        indices, seed = self.plan[i]
        return self.augment(self.images[indices], torch.Generator().manual_seed(seed)), self.labels[indices]


class TorchvisionStream(TrainStream):
    """A :class:`TrainStream` whose batches are augmented in `workers` DataLoader processes on the CPU."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        augment: Augment,
        batch_size: int,
        seed: int,
        device: torch.device,
        workers: int,
    ) -> None:
        super().__init__(images.cpu(), labels.cpu(), augment, batch_size, seed)
        self.device = device
        self.workers = workers

    def epoch(self, epoch: int) -> Iterator[Batch]:
        plan = list(self.plan(epoch))
        loader = DataLoader(
            _BatchJobs(self, plan),
            batch_size=None,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )
        for (indices, seed), (images, labels) in zip(plan, loader, strict=True):
            yield Batch(to_device(images, self.device), to_device(labels, self.device), indices, seed)
