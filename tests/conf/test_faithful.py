"""faithful=paper sets exactly the quirk switches and recipe of the method's script, for every method option.

The expected switches are listed here from the scripts (dropout/train.py, online_KD/train_EMA.py,
online_KD/train_kd.py, self_KD/train.py), not read from conf/faithful.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from spacing.config import to_config
from spacing.data.cifar import CIFAR100_MEAN, CIFAR100_STD
from tests.helpers import CONF, ROOT, compose_config, method_options, run_cli

SWEEPS = ROOT / "sweeps"

RECIPE = {"trainer.epochs": 80, "trainer.eval_batch_size": 128, "dataset.val_fraction": 0.0}
"""All scripts: 80 epochs, test batches of 128, no validation split."""

QUIRKS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "dropout": {
        "trainer.nesterov": True,
        "method.eval_dropout": True,
        "method.eval_bn": "running",
        "method.max_scope": "batch",
        "method.paper_cutout": True,
    },
    "ema": {"method.buffers": "none", "method.eval_train_mode": True},
    "online_kd": {
        "method.soft_loss": "paper",
        "method.replay": "rounds",
        "method.distill_tail": False,
        "method.replay_teacher_bn": True,
    },
    "self_kd": {
        "method.soft_loss": "softce",
        "method.ensemble": "logits",
        "method.replay": "rounds",
        "method.late_counter": True,
        "method.distill_tail": False,
        "method.feature_loss": "paper",
        "method.fresh_steps": "paper",
    },
}
PRESETS = {"spaced_dropout": "dropout", "spaced_ema": "ema", "spaced_kd": "online_kd", "spaced_self_kd": "self_kd"}
SELF_KD_CIFAR = {
    "dataset.mean": [0.4914, 0.4822, 0.4465],
    "dataset.std": [0.2023, 0.1994, 0.2010],
    "dataset.augment.rotation": 0.0,
    "dataset.augment.fill": 128,
    "dataset.augment.autoaugment": True,
    "dataset.augment.cutout": 16,
    "dataset.augment.cutout_black": True,
}
"""self_KD/train.py on CIFAR: RandomCrop(32, 4, fill=128), flip, CIFAR10Policy (fill 128), Cutout(16) before Normalize(CIFAR-10 stats)."""


def flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): node}


def changes_by(addition: str, *overrides: str) -> dict[str, Any]:
    """What `addition` changes in the composed config of `overrides`."""
    plain = flat(OmegaConf.to_container(compose_config(list(overrides)), resolve=True))
    added = flat(OmegaConf.to_container(compose_config([*overrides, addition]), resolve=True))
    assert set(added) == set(plain)
    return {key: value for key, value in added.items() if plain[key] != value}


def changes(*overrides: str) -> dict[str, Any]:
    """What faithful=paper changes in the composed config of `overrides`."""
    return changes_by("faithful=paper", *overrides)


def test_every_method_option_has_a_faithful_preset() -> None:
    assert method_options() == sorted([*QUIRKS, *PRESETS])
    presets = sorted(path.stem for path in (CONF / "faithful" / "method").glob("*.yaml"))
    assert presets == [f"paper_{option}" for option in method_options()]


@pytest.mark.parametrize("option", sorted([*QUIRKS, *PRESETS]))
def test_faithful_paper_sets_exactly_the_scripts_switches(option: str) -> None:
    expected = {**RECIPE, **QUIRKS[PRESETS.get(option, option)]}
    assert changes(f"method={option}", "dataset=tiny_imagenet") == expected
    to_config(compose_config([f"method={option}", "dataset=tiny_imagenet", "faithful=paper"]))  # valid


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
@pytest.mark.parametrize("option", ["self_kd", "spaced_self_kd"])
def test_faithful_self_kd_on_cifar_adds_the_scripts_data_pipeline(option: str, dataset: str) -> None:
    assert changes(f"method={option}", f"dataset={dataset}") == {**RECIPE, **QUIRKS["self_kd"], **SELF_KD_CIFAR}


def test_the_other_scripts_data_pipeline_is_the_data_sets_default() -> None:
    # dropout, EMA and online KD scripts: RandomCrop(32, 4), flip, RandomRotation(15), CIFAR-100 stats to 3 decimals.
    dataset = to_config(compose_config(["method=online_kd", "dataset=cifar100", "faithful=paper"])).dataset
    augment = dataset.augment
    assert (augment.crop_padding, augment.hflip, augment.rotation, augment.fill, augment.autoaugment, augment.cutout) == (4, True, 15, 0, False, 0)
    assert dataset.mean is None  # the loader's CIFAR-100 statistics
    assert (CIFAR100_MEAN, CIFAR100_STD) == ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276))


def test_later_overrides_win_over_the_preset() -> None:
    method = to_config(compose_config(["method=online_kd", "faithful=paper", "method.replay=lagged"])).method
    assert (method.replay, method.soft_loss) == ("lagged", "paper")


def test_a_paper_sweep_takes_faithful_on_top() -> None:
    assert changes("+sweep=self_kd_curve") == QUIRKS["self_kd"]
    assert changes("+sweep=dropout_grid") == {k: v for k, v in QUIRKS["dropout"].items() if k != "trainer.nesterov"}


def test_the_cli_runs_a_method_as_its_paper_script(tmp_path: Path) -> None:
    proc = run_cli(
        "method=self_kd", "faithful=paper", "method.interval=0.5", "dataset=synthetic", "model=small_cnn",
        "model.width=4", "trainer.epochs=2", "trainer.device=cpu", f"hydra.run.dir={tmp_path}", cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["status"] == "completed" and record["config"]["method"]["late_counter"] is True
    assert record["config"]["method"]["ensemble"] == "logits" and record["config"]["dataset"]["val_fraction"] == 0.0
    assert record["metrics"]["ensemble"]["val_acc"] is None


@pytest.mark.parametrize(
    ("sweep", "extra"),
    [
        ("baseline", {}),
        ("dropout_grid", {"trainer.nesterov": True}),
        ("ema_grid", {}),
        ("online_kd_curve", {}),
        ("online_kd_random", {}),
        ("self_kd_curve", SELF_KD_CIFAR),
    ],
)
def test_paper_sweeps_run_the_scripts_recipe(sweep: str, extra: dict[str, Any]) -> None:
    config = flat(OmegaConf.to_container(compose_config([f"+sweep={sweep}"]), resolve=True))
    for key, value in {**RECIPE, **extra}.items():
        assert config[key] == value, key
    assert (SWEEPS / f"{sweep}.yaml").read_text().count("Differs from the paper") == 1


def test_every_recipe_composes_and_is_what_the_scripts_share() -> None:
    assert sorted(path.stem for path in (CONF / "recipe").glob("*.yaml")) == ["dropout", "paper", "self_kd_cifar"]
    for recipe, expected in (("paper", RECIPE), ("dropout", {**RECIPE, "trainer.nesterov": True}), ("self_kd_cifar", SELF_KD_CIFAR)):
        assert changes_by(f"+recipe={recipe}", "dataset=cifar100") == expected
        to_config(compose_config([f"+recipe={recipe}", "dataset=cifar100"]))

