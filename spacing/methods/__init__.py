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

METHODS: dict[str, type[Method]] = {
    "baseline": Baseline,
    "dropout": SpacedDropout,
    "ema": SpacedEMA,
    "online_kd": OnlineKD,
    "self_kd": SelfKD,
}

__all__ = ["METHODS", "Method", "MethodContext", "StepStats", "build_method"]


def build_method(cfg: MethodConfig, ctx: MethodContext) -> Method:
    if cfg.name not in METHODS:
        raise ConfigError(f"unknown method.name '{cfg.name}'; valid choices: {', '.join(sorted(METHODS))}.")
    return METHODS[cfg.name](cfg, ctx)
