"""Tiny-ImageNet (200 classes, 64x64): download, prepare once, then load as uint8 tensors.

Preparing the official ``tiny-imagenet-200`` tree means: move each validation image from
``val/images/`` into ``val/<wnid>/images/`` as ``val/val_annotations.txt`` says (the layout of
``train/``), check the counts, and write the marker file ``.spacing-prepared``. The
validation split serves as the test set (the official test labels are not public).

Counts are checked against the tree's own listings: every class of ``wnids.txt`` has training
images, and ``val_annotations.txt`` accounts for every validation image. A tree whose
``wnids.txt`` lists 200 classes claims to be the official set and must also hold exactly
100,000 training and 10,000 validation images; a smaller tree (a subset, a test fixture) is
held only to its own listings. The decoded images are cached beside the tree in
``uint8-cache.pt`` so later runs skip JPEG decoding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spacing.atomic import atomic_write, atomic_write_text
from spacing.config import DatasetConfig
from spacing.data.files import dataset_root, download
from spacing.data.source import ImageSplits
from spacing.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
ARCHIVE = "tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
FOLDER = "tiny-imagenet-200"
MARKER = ".spacing-prepared"
CACHE = "uint8-cache.pt"
OFFICIAL_COUNTS = {"classes": 200, "train": 100_000, "val": 10_000}


@dataclass(frozen=True)
class Counts:
    classes: int
    train: int
    val: int


def load_tiny_imagenet(cfg: DatasetConfig) -> ImageSplits:
    root = dataset_root(cfg)
    tree = root / FOLDER
    if not (tree / MARKER).is_file():
        if not (tree / "wnids.txt").is_file():
            download(URL, root, ARCHIVE, MD5, cfg.download, unpacked=FOLDER)
        prepare(tree)
    cache = tree / CACHE
    if cache.is_file():
        tensors = torch.load(cache, weights_only=True)
    else:
        tensors = _decode(tree)
        atomic_write(cache, lambda handle: torch.save(tensors, handle))
    return ImageSplits(
        tensors["train_images"],
        tensors["train_labels"],
        tensors["val_images"],
        tensors["val_labels"],
        len(_wnids(tree)),
        IMAGENET_MEAN,
        IMAGENET_STD,
    )


def prepare(tree: Path) -> Counts:
    """Sort validation images into class folders, verify the tree, and write the marker."""
    wnids = _wnids(tree)
    for filename, wnid in _val_annotations(tree).items():
        source = tree / "val" / "images" / filename
        target = tree / "val" / wnid / "images" / filename
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)
    counts = verify(tree, wnids)
    atomic_write_text(tree / MARKER, json.dumps(vars(counts)) + "\n")
    return counts


def verify(tree: Path, wnids: list[str]) -> Counts:
    """Check the prepared tree against its own listings (and the official totals for a 200-class tree)."""
    fix = f"delete {tree} and run again to re-download, or place the official {ARCHIVE} in {tree.parent}"
    annotations = _val_annotations(tree)
    train = 0
    for wnid in wnids:
        n = len(_images(tree / "train" / wnid / "images"))
        if n == 0:
            raise DataError(f"class {wnid} of {tree / 'wnids.txt'} has no training images; {fix}.")
        train += n
    unknown = sorted({wnid for wnid in annotations.values()} - set(wnids))
    if unknown:
        raise DataError(f"{tree / 'val' / 'val_annotations.txt'} names classes not in wnids.txt ({', '.join(unknown[:3])}); {fix}.")
    placed = {path.name for wnid in wnids for path in _images(tree / "val" / wnid / "images")}
    if placed != set(annotations):
        raise DataError(
            f"{tree / 'val'} holds {len(placed)} sorted validation images but val_annotations.txt lists "
            f"{len(annotations)}; {fix}."
        )
    counts = Counts(classes=len(wnids), train=train, val=len(annotations))
    check_official(counts, fix)
    return counts


def check_official(counts: Counts, fix: str) -> None:
    """A 200-class tree is the official set: it must have exactly its 100,000 / 10,000 images."""
    if counts.classes != OFFICIAL_COUNTS["classes"]:
        return
    if (counts.train, counts.val) != (OFFICIAL_COUNTS["train"], OFFICIAL_COUNTS["val"]):
        raise DataError(
            f"Tiny-ImageNet has {counts.train} training and {counts.val} validation images instead of "
            f"{OFFICIAL_COUNTS['train']} and {OFFICIAL_COUNTS['val']}; {fix}."
        )


def _wnids(tree: Path) -> list[str]:
    """Class ids in label order (sorted, as torchvision's ImageFolder orders class folders)."""
    return sorted(line.strip() for line in (tree / "wnids.txt").read_text().splitlines() if line.strip())


def _val_annotations(tree: Path) -> dict[str, str]:
    """Validation file name -> wnid, from the tab-separated `val_annotations.txt`."""
    path = tree / "val" / "val_annotations.txt"
    if not path.is_file():
        raise DataError(f"{path} is missing; delete {tree} and run again, or place the official {ARCHIVE} in {tree.parent}.")
    return dict(line.split("\t")[:2] for line in path.read_text().splitlines() if line.strip())


def _images(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.JPEG")) if folder.is_dir() else []


def _decode(tree: Path) -> dict[str, torch.Tensor]:
    """Every image of the prepared tree as uint8 N x 3 x H x W (grey JPEGs become RGB)."""
    from PIL import Image

    out: dict[str, torch.Tensor] = {}
    for split in ("train", "val"):
        images, labels = [], []
        for label, wnid in enumerate(_wnids(tree)):
            for path in _images(tree / split / wnid / "images"):
                with Image.open(path) as image:
                    images.append(np.asarray(image.convert("RGB")))
                labels.append(label)
        out[f"{split}_images"] = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        out[f"{split}_labels"] = torch.tensor(labels, dtype=torch.int64)
    return out
