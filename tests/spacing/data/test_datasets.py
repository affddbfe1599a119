"""Each file-backed dataset loader reads a fake copy of its official on-disk format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
from tests.helpers import write_cifar, write_svhn, write_tiny_imagenet

from spacing.config import DatasetConfig
from spacing.data import DATASETS
from spacing.data.cifar import CIFAR100_MEAN, CIFAR100_STD
from spacing.data.files import dataset_root
from spacing.data.tiny_imagenet import CACHE, IMAGENET_MEAN, MARKER, Counts, check_official
from spacing.errors import DataError

REPO = Path(__file__).resolve().parents[2]


def load(name: str, root: Path, download: bool = False):  # type: ignore[no-untyped-def]
    return DATASETS[name](DatasetConfig(name=name, root=str(root), download=download))


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_pickles_load_pixel_exact(tmp_path: Path, hundred: bool) -> None:
    written = write_cifar(tmp_path, hundred)
    splits = load("cifar100" if hundred else "cifar10", tmp_path)
    assert splits.num_classes == (100 if hundred else 10)
    for key, value in written.items():
        assert torch.equal(getattr(splits, key), value), key
    assert splits.train_images.shape == (20, 3, 32, 32)
    assert (splits.mean, splits.std) == (CIFAR100_MEAN, CIFAR100_STD)


def test_svhn_mat_files_load_with_ten_as_zero(tmp_path: Path) -> None:
    written = write_svhn(tmp_path)
    splits = load("svhn", tmp_path)
    for key, value in written.items():
        assert torch.equal(getattr(splits, key), value), key
    assert splits.train_labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert splits.num_classes == 10


def test_tiny_imagenet_is_prepared_once_and_labelled_by_class_folder(tmp_path: Path) -> None:
    wnids = ["n02", "n01", "n03"]
    tree = write_tiny_imagenet(tmp_path, wnids)
    splits = load("tiny_imagenet", tmp_path)
    assert splits.num_classes == 3
    assert splits.train_images.shape == (6, 3, 64, 64) and splits.test_images.shape == (6, 3, 64, 64)
    assert splits.mean == IMAGENET_MEAN
    # Labels follow sorted wnids: n01 -> 0 (written as class k=1), n02 -> 1 (k=0), n03 -> 2 (k=2).
    assert splits.test_labels.tolist() == [0, 0, 1, 1, 2, 2]
    red = splits.test_images[:, 0].float().mean(dim=(1, 2))
    assert torch.allclose(red, torch.tensor([60.0, 60, 0, 0, 120, 120]), atol=3)
    grey = splits.train_images[2]  # n02's first image was written greyscale
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    # Validation images were moved into class folders once, and the marker records the counts.
    assert not list((tree / "val" / "images").glob("*.JPEG"))
    assert len(list((tree / "val" / "n01" / "images").glob("*.JPEG"))) == 2
    assert json.loads((tree / MARKER).read_text()) == {"classes": 3, "train": 6, "val": 6}
    # Later loads read the decoded cache, not the JPEGs.
    assert (tree / CACHE).is_file()
    for path in tree.rglob("*.JPEG"):
        path.unlink()
    again = load("tiny_imagenet", tmp_path)
    assert torch.equal(again.train_images, splits.train_images)


def test_tiny_imagenet_with_missing_validation_image_is_rejected(tmp_path: Path) -> None:
    tree = write_tiny_imagenet(tmp_path, ["n01", "n02"])
    (tree / "val" / "images" / "val_0.JPEG").unlink()
    with pytest.raises(DataError, match="holds 3 sorted validation images but val_annotations.txt lists 4"):
        load("tiny_imagenet", tmp_path)
    assert not (tree / MARKER).exists()


def test_official_counts_are_enforced_only_for_a_200_class_tree() -> None:
    check_official(Counts(classes=200, train=100_000, val=10_000), "fix")
    check_official(Counts(classes=3, train=6, val=6), "fix")
    with pytest.raises(DataError, match="99999 training and 10000 validation images instead of 100000 and 10000"):
        check_official(Counts(classes=200, train=99_999, val=10_000), "fix")


@pytest.mark.parametrize(
    ("name", "archive"),
    [
        ("cifar10", "cifar-10-python.tar.gz"),
        ("cifar100", "cifar-100-python.tar.gz"),
        ("svhn", "train_32x32.mat"),
        ("tiny_imagenet", "tiny-imagenet-200.zip"),
    ],
)
def test_missing_data_without_download_names_the_file_and_folder(tmp_path: Path, name: str, archive: str) -> None:
    with pytest.raises(DataError) as info:
        load(name, tmp_path / name, download=False)
    message = str(info.value)
    assert f"place {archive}" in message and f"in {tmp_path / name}." in message
    assert message.count(". ") == 0  # one sentence


def test_failed_download_names_the_file_to_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", offline)
    with pytest.raises(DataError, match=r"could not download cifar-100-python.tar.gz \(URLError: .*\); place cifar-100-python.tar.gz"):
        load("cifar100", tmp_path, download=True)


def test_default_root_is_a_per_user_cache_overridable_by_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPACING_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert dataset_root(DatasetConfig(name="cifar10")) == tmp_path / ".cache" / "spacing" / "cifar10"
    monkeypatch.setenv("SPACING_DATA", str(tmp_path / "shared"))
    assert dataset_root(DatasetConfig(name="svhn")) == tmp_path / "shared" / "svhn"
    assert dataset_root(DatasetConfig(name="svhn", root=str(tmp_path / "mine"))) == tmp_path / "mine"


def test_cli_reports_missing_dataset_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "SPACING_DATA": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, "run.py", "dataset=cifar10", "dataset.download=false", f"hydra.run.dir={tmp_path / 'out'}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'data' / 'cifar10' / 'cifar-10-python.tar.gz'} is missing and dataset.download=false; "
        f"place cifar-10-python.tar.gz (from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz) "
        f"or its unpacked cifar-10-batches-py/ folder in {tmp_path / 'data' / 'cifar10'}."
    ]


def test_an_archive_placed_by_hand_is_unpacked_without_downloading(tmp_path: Path) -> None:
    import tarfile

    source = tmp_path / "source"
    written = write_cifar(source, hundred=False)
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    splits = load("cifar10", root, download=False)
    assert torch.equal(splits.test_images, written["test_images"])
