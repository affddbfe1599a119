"""Every option of every config group composes and builds its objects; site profiles and the per-user site file compose."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir

from spacing.compose import register_configs
from spacing.config import Config, to_config
from spacing.data import build_data
from spacing.methods import METHODS
from spacing.models import MODELS, build_model
from tests.conftest import CONF, ROOT, build_method_for, compose_config
from tests.data.fake_datasets import write_cifar, write_svhn, write_tiny_imagenet

GROUPS = ("dataset", "model", "method", "trainer")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_to_a_valid_config(group: str, option: str) -> None:
    config = to_config(compose_config([f"{group}={option}"]))
    assert isinstance(config, Config)
    if group in ("dataset", "model") or option in METHODS:
        assert getattr(config, group).name == option
    elif group == "method":  # a preset: a method at the papers' default interval
        assert config.method.name in METHODS and config.method.interval > 0


FAKE_COPIES = {
    "cifar10": lambda root: write_cifar(root, hundred=False),
    "cifar100": lambda root: write_cifar(root, hundred=True),
    "svhn": write_svhn,
    "tiny_imagenet": lambda root: write_tiny_imagenet(root, ["n01", "n02", "n03"]),
}
"""Datasets that download: the test writes a small copy in the real on-disk format instead."""


@pytest.mark.parametrize("option", options("dataset"))
def test_every_dataset_builds_streams(option: str, tmp_path) -> None:
    overrides = [f"dataset={option}"]
    if option in FAKE_COPIES:
        FAKE_COPIES[option](tmp_path)
        overrides += [f"dataset.root={tmp_path}", "dataset.download=false"]
    config = to_config(compose_config(overrides))
    data = build_data(config.dataset, 32, 64, seed=0, device=torch.device("cpu"))
    batch = next(data.train.epoch(0))
    assert batch.images.dtype == torch.float32
    assert tuple(batch.images.shape[1:]) == data.image_shape
    assert int(batch.labels.max()) < data.num_classes
    assert len(data.test) > 0


@pytest.mark.parametrize("option", options("model"))
def test_every_model_builds_with_logits_and_features(option: str) -> None:
    config = to_config(compose_config([f"model={option}"]))
    model = build_model(config.model, num_classes=7, in_channels=3)
    logits, features = model.forward_with_features(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 7)
    assert features.shape == (2, model.feature_dim)
    assert [o.shape[1] for o in model.stage_outputs(torch.randn(2, 3, 32, 32))] == model.stage_channels


@pytest.mark.parametrize("option", options("method"))
def test_every_method_builds_and_predicts_its_targets(option: str) -> None:
    config = to_config(compose_config([f"method={option}", "dataset=synthetic", "model=small_cnn", "model.width=8"]))
    method, data = build_method_for(config)
    method.eval_mode()
    with torch.no_grad():
        predictions = method.predict(next(iter(data.test))[0])
    assert set(predictions) == set(method.targets)


def test_registries_and_config_groups_agree() -> None:
    assert set(options("model")) <= set(MODELS)
    for name in options("method"):
        assert to_config(compose_config([f"method={name}"])).method.name in METHODS


def test_a_cluster_profile_selects_the_slurm_launcher_with_its_site_values() -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["+sweep=demo", "cluster=example"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert (cfg.hydra.launcher.partition, cfg.hydra.launcher.array_parallelism) == ("gpu", 64)
    assert cfg.hydra.runtime.choices["cluster"] == "example"


def test_an_untracked_site_file_is_picked_up_when_present_and_ignored_by_git(tmp_path) -> None:
    """conf/site/local.yaml is read if it exists; a config dir given with --config-dir stands in for conf/ here."""

    site = tmp_path / "site" / "local.yaml"
    site.parent.mkdir()
    site.write_text("# @package _global_\nhydra:\n  launcher:\n    account: my-lab\n    qos: high\ntrainer:\n  epochs: 3\n")
    shown = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "cluster=example", "--cfg", "all", f"--config-dir={tmp_path}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    composed = yaml.safe_load(shown.stdout)
    assert (composed["hydra"]["launcher"]["account"], composed["hydra"]["launcher"]["qos"]) == ("my-lab", "high")
    assert composed["hydra"]["launcher"]["partition"] == "gpu" and composed["trainer"]["epochs"] == 3
    without = subprocess.run([sys.executable, str(ROOT / "run.py"), "--cfg", "job"], capture_output=True, text=True,
                             timeout=300, cwd=tmp_path)
    assert yaml.safe_load(without.stdout)["trainer"]["epochs"] == 10
    ignored = subprocess.run(["git", "check-ignore", "-q", "conf/site/local.yaml"], cwd=ROOT)
    assert ignored.returncode == 0, "conf/site/local.yaml must be named in .gitignore"
