"""Writers of small fake copies of the real on-disk dataset formats, read back through the real loaders."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch


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

