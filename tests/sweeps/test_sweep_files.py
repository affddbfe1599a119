"""Every named grid in sweeps/ parses, lands in its own sweep dir, and each of its values composes
to a valid run config. Hydra's compose API cannot expand a multirun, so the grid is expanded here
with the basic sweeper's own parser."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from spacing.compose import register_configs
from spacing.config import Config, to_config
from tests.helpers import CONF, ROOT

SWEEPS = ROOT / "sweeps"
NAMES = sorted(path.stem for path in SWEEPS.glob("*.yaml"))
SHARED_DIRS = {"online_kd_random": "online_kd_curve"}
"""Sweeps that add cells to another sweep's dir (an arm a cross-product grid cannot hold)."""


def compose_sweep(name: str, *overrides: str) -> DictConfig:
    """What `python run.py -m +sweep=NAME OVERRIDES` composes, hydra node included."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=[f"+sweep={name}", *overrides], return_hydra_config=True)


def grid(cfg: DictConfig) -> dict[str, list[str]]:
    """The sweeper params of a composed sweep, each expanded to its list of values."""
    params = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=False)
    assert isinstance(params, dict) and params, "a sweep file must set hydra.sweeper.params"
    parsed = OverridesParser.create().parse_overrides([f"{key}={value}" for key, value in params.items()])
    return {
        o.get_key_element(): list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        for o in parsed
    }


@pytest.mark.parametrize("name", NAMES)
def test_sweep_file_is_global_and_selected_by_its_name(name: str) -> None:
    assert (SWEEPS / f"{name}.yaml").read_text().splitlines()[0] == "# @package _global_"
    cfg = compose_sweep(name)
    assert cfg.hydra.runtime.choices["sweep"] == name
    assert cfg.hydra.sweep.dir == f"multirun/{SHARED_DIRS.get(name, name)}"


@pytest.mark.parametrize("name", NAMES)
def test_every_grid_value_composes_to_a_valid_config(name: str) -> None:
    """Each value of each parameter, with the others at their first value, passes the schema checks."""
    params = grid(compose_sweep(name))
    first = {key: values[0] for key, values in params.items()}
    parser = OverridesParser.create()
    for key, values in params.items():
        for value in values:
            overrides = [f"{k}={value if k == key else v}" for k, v in first.items()]
            cfg = compose_sweep(name, *overrides)
            with open_dict(cfg):
                cfg.pop("hydra")
            assert isinstance(to_config(cfg), Config)
            assert OmegaConf.select(cfg, key) == parser.parse_override(f"{key}={value}").value()


def test_demo_grid_is_an_ema_interval_curve_with_controls_and_seeds_on_offline_data_with_headroom() -> None:
    cfg = compose_sweep("demo")
    params = grid(cfg)
    assert params["method.interval"] == ["0", "0.25", "0.5", "1"]
    assert len(params["seed"]) == 10
    assert (cfg.method.name, cfg.dataset.name, cfg.model.name, cfg.trainer.device) == ("ema", "digits", "small_cnn", "cpu")
    assert cfg.hydra.sweeper.controls is True
    assert (cfg.dataset.label_noise, cfg.dataset.val_fraction, cfg.trainer.lr_schedule) == (0.4, 0.2, "cosine")
    assert cfg.trainer.threads == 1


@pytest.mark.parametrize(("name", "method", "intervals"), [("demo_kd", "online_kd", ["0", "0.5", "1", "inf"]),
                                                        ("demo_dropout", "dropout", ["0", "0.5", "1"])])
def test_kd_and_dropout_demos_are_interval_curves_with_controls_and_seeds_on_offline_data(
    name: str, method: str, intervals: list[str]
) -> None:
    cfg = compose_sweep(name)
    params = grid(cfg)
    assert params["method.interval"] == intervals and len(params["seed"]) == 10
    assert (cfg.method.name, cfg.dataset.name, cfg.model.name, cfg.trainer.device) == (method, "digits", "small_cnn", "cpu")
    assert cfg.hydra.sweeper.controls is True and cfg.trainer.threads == 1
    assert (cfg.dataset.label_noise, cfg.dataset.train_fraction, cfg.model.width) == (0.4, 0.5, 16)


FUSED_BY_DEFAULT = {"demo", "demo_kd", "ema_grid", "online_kd_curve"}
"""The grids whose cells share training trajectories (EMA, online KD): fused unless told otherwise."""


@pytest.mark.parametrize("name", NAMES)
def test_grids_of_methods_that_fuse_ask_for_fusion_and_the_others_do_not(name: str) -> None:
    cfg = compose_sweep(name)
    assert cfg.hydra.sweeper.fuse is (name in FUSED_BY_DEFAULT)
    with open_dict(cfg):
        cfg.pop("hydra")
    method = to_config(cfg).method
    if name in FUSED_BY_DEFAULT:
        assert method.fusable()
    elif name != "online_kd_random":  # its cells differ in the seed only: groups of one, so it need not ask
        assert not method.fusable()  # dropout and self KD change training itself; a baseline has nothing to share


@pytest.mark.parametrize(
    "name,keys,must_hold",
    [
        ("dropout_grid", ("method.p", "method.interval", "seed"), {"method.interval": "0"}),
        ("ema_grid", ("method.decay", "method.interval", "seed"), {"method.interval": "0"}),
        ("online_kd_curve", ("method.interval", "seed"), {"method.interval": "inf"}),
        ("online_kd_random", ("method.schedule", "method.interval", "seed"), {"method.schedule": "random"}),
        ("self_kd_curve", ("method.interval", "seed"), {"method.interval": "0"}),
    ],
)
def test_paper_grids_sweep_the_papers_axes_on_the_papers_recipe(name: str, keys: tuple[str, ...], must_hold: dict[str, str]) -> None:
    sweep = OmegaConf.load(SWEEPS / f"{name}.yaml")
    assert {"override /dataset": "cifar100"} in sweep.defaults and {"override /model": "resnet18"} in sweep.defaults
    assert compose_sweep(name).trainer.epochs == 80
    params = grid(sweep)
    assert tuple(params) == keys
    for key, value in must_hold.items():
        assert value in params[key]
    assert len(params["seed"]) >= 3
