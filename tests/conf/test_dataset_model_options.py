"""The new dataset/model YAML options and the data/trainer switches compose and validate as the CLI does."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from run import register_configs
from spacing.config import Config, to_config
from spacing.errors import ConfigError
from spacing.models import MODELS

CONF = Path(__file__).resolve().parents[2] / "conf"


def composed(*overrides: str) -> Config:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return to_config(compose("config", overrides=list(overrides)))


@pytest.mark.parametrize(
    ("name", "crop", "flip", "rotation"),
    [("cifar10", 4, True, 15), ("cifar100", 4, True, 15), ("svhn", 4, False, 0), ("tiny_imagenet", 4, True, 0)],
)
def test_dataset_options_carry_the_papers_augmentation(name: str, crop: int, flip: bool, rotation: float) -> None:
    dataset = composed(f"dataset={name}").dataset
    assert dataset.name == name and dataset.loader == "fast" and dataset.download and dataset.root is None
    augment = dataset.augment
    assert (augment.crop_padding, augment.hflip, augment.rotation, augment.cutout, augment.autoaugment) == (crop, flip, rotation, 0, False)


def test_self_kd_augmentation_is_two_overrides() -> None:
    augment = composed("dataset=cifar100", "dataset.augment.autoaugment=true", "dataset.augment.cutout=16").dataset.augment
    assert augment.autoaugment and augment.cutout == 16 and augment.rotation == 15


def test_every_model_option_names_a_registered_model() -> None:
    options = sorted(path.stem for path in (CONF / "model").glob("*.yaml"))
    assert options == sorted(MODELS)
    for name in options:
        assert composed(f"model={name}").model.name == name


def test_trainer_speed_switches() -> None:
    trainer = composed().trainer
    assert (trainer.precision, trainer.channels_last, trainer.compile) == ("auto", "auto", False)
    trainer = composed("trainer.precision=bf16", "trainer.channels_last=true", "trainer.compile=true").trainer
    assert (trainer.precision, trainer.channels_last, trainer.compile) == ("bf16", "true", True)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.precision=fp8", "trainer.precision must be one of auto, fp32, bf16, fp16; got 'fp8'."),
        ("trainer.channels_last=maybe", "trainer.channels_last must be one of auto, true, false; got 'maybe'."),
        ("dataset.loader=dali", "dataset.loader must be one of fast, torchvision; got 'dali'."),
        ("dataset.augment.rotation=-5", "dataset.augment.rotation must be in [0, 180] degrees; got -5.0."),
        ("dataset.augment.cutout=-1", "dataset.augment.cutout must be >= 0 pixels (0 = off); got -1."),
    ],
)
def test_bad_switches_are_one_sentence_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        composed(override)
    assert str(info.value) == message
