"""The data keys the self KD script's recipe needs: fill, a black Cutout, normalisation statistics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from spacing.config import AugmentConfig, DatasetConfig, SyntheticDatasetConfig, to_config
from spacing.data import build_data
from spacing.data.augment import BatchAugment, warp
from spacing.data.autoaugment import geometric_operation
from spacing.data.pil import PILAugment, pil_transform
from spacing.errors import ConfigError
from tests.conftest import compose_config

CPU = torch.device("cpu")


def test_crop_padding_takes_the_fill_grey_level_like_a_padded_crop() -> None:
    images = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    offsets = torch.tensor([[0, 0], [8, 3], [4, 4]])
    out = warp(images, 4, offsets, torch.zeros(3, dtype=torch.bool), torch.zeros(3), fill=128)
    # torchvision RandomCrop(8, padding=4, fill=128): pad with 128, then cut the window at the offset.
    padded = F.pad(images, (4, 4, 4, 4), value=128)
    expected = torch.stack([padded[i, :, dy : dy + 8, dx : dx + 8] for i, (dy, dx) in enumerate(offsets.tolist())])
    assert torch.equal(out, expected)


def test_autoaugment_fills_with_the_fill_grey_level() -> None:
    images = torch.full((2, 3, 16, 16), 50, dtype=torch.uint8)
    for fill in (0, 128):
        everyone = torch.ones(2, dtype=torch.bool)
        moved = geometric_operation(images, {"TranslateX": everyone}, torch.full((2,), 8.0, dtype=torch.float64), fill)
        assert set(moved[:, :, :, :8].unique().tolist()) == {fill} and set(moved[:, :, :, 8:].unique().tolist()) == {50}


@pytest.mark.parametrize("black", [False, True])
def test_black_cutout_is_zero_before_normalisation_on_both_paths(black: bool) -> None:
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    cfg = AugmentConfig(cutout=8, cutout_black=black)
    images = torch.full((4, 3, 16, 16), 200, dtype=torch.uint8)
    fast = BatchAugment.from_config(cfg, torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1))
    pil = PILAugment(pil_transform(cfg, 16, mean, std))
    hole = torch.tensor([-m / s for m, s in zip(mean, std)]) if black else torch.zeros(3)
    image = torch.tensor([(200 / 255 - m) / s for m, s in zip(mean, std)])
    for out in (fast(images, torch.Generator().manual_seed(1)), pil(images, torch.Generator().manual_seed(1))):
        values = {tuple(round(v, 4) for v in pixel.tolist()) for pixel in out.permute(0, 2, 3, 1).reshape(-1, 3)}
        assert values == {tuple(round(v, 4) for v in hole.tolist()), tuple(round(v, 4) for v in image.tolist())}


def test_normalisation_statistics_can_be_set() -> None:
    cfg = SyntheticDatasetConfig(name="synthetic", channels=3, mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 0.25])
    data = build_data(cfg, 16, 16, seed=0, device=CPU)
    images, _ = next(iter(data.test))
    raw = data.test.images[:16].float() / 255
    expected = (raw - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.5, 0.25]).view(1, 3, 1, 1)
    assert torch.allclose(images, expected, atol=1e-6)


def test_bad_normalisation_statistics_are_one_sentence_errors() -> None:
    with pytest.raises(ConfigError, match="dataset.mean and dataset.std are set together"):
        to_config(compose_config(["dataset=synthetic", "dataset.mean=[0.5]"]))
    with pytest.raises(ConfigError, match=r"need one value per channel each, std > 0"):
        DatasetConfig(name="digits", mean=[0.5], std=[0.0])
    with pytest.raises(ConfigError, match=r"dataset.mean and dataset.std need 1 values \(one per channel of synthetic\); got 3."):
        build_data(SyntheticDatasetConfig(name="synthetic", mean=[0.1, 0.2, 0.3], std=[1.0, 1.0, 1.0]), 16, 16, 0, CPU)
    with pytest.raises(ConfigError, match=r"dataset.augment.fill must be a grey level in \[0, 255\]; got 300."):
        to_config(compose_config(["dataset.augment.fill=300"]))
