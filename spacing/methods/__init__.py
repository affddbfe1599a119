"""Method registry: ``method.name`` -> the strategy class the runner plugs into its loop."""

from __future__ import annotations

from spacing.config import MethodConfig
from spacing.errors import ConfigError
from spacing.methods.base import Method, MethodContext, StepStats
from spacing.methods.baseline import Baseline
from spacing.methods.dropout import SpacedDropout
from spacing.methods.ema import SpacedEMA
from spacing.methods.online_kd import OnlineKD
from spacing.methods.self_kd import SelfKD
from spacing.schedule import Schedule

METHODS: dict[str, type[Method]] = {
    "baseline": Baseline,
    "dropout": SpacedDropout,
    "ema": SpacedEMA,
    "online_kd": OnlineKD,
    "self_kd": SelfKD,
}

__all__ = ["METHODS", "Method", "MethodContext", "StepStats", "build_method"]


def build_method(cfg: MethodConfig, ctx: MethodContext) -> Method:
    """The method `cfg` names; for a control run (``method.control=matched``) the massed run its schema derives."""
    if cfg.name not in METHODS:
        raise ConfigError(f"unknown method.name '{cfg.name}'; valid choices: {', '.join(sorted(METHODS))}.")
    if cfg.control == "none":
        return METHODS[cfg.name](cfg, ctx)
    spaced = Schedule(cfg.interval, cfg.schedule, ctx.steps_per_epoch, ctx.seed, cfg.random_max_gap)
    method = METHODS[cfg.name](cfg.matched_control(spaced), ctx)
    method.controls = cfg
    return method
