"""Method registry: ``method.name`` -> the strategy class the runner plugs into its loop.

A method is one module in this package: a :class:`Method` subclass that declares its ``config``
(a schema in :mod:`spacing.config`, whose ``name`` names the method), its ``targets`` and its
``main_target``. Every module here is imported and every class that declares a ``config`` is
registered, so adding a method adds no line anywhere else.
"""

from __future__ import annotations

import importlib
import pkgutil

from spacing.config import MethodConfig
from spacing.errors import ConfigError
from spacing.methods.base import Method, MethodContext, StepStats, merge_stats
from spacing.schedule import Schedule


def _declared_methods() -> dict[str, type[Method]]:
    """Every Method subclass in this package that declares its own ``config``, by the config's method name."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    found: dict[str, type[Method]] = {}
    pending: list[type[Method]] = [Method]
    while pending:
        method = pending.pop(0)
        pending.extend(method.__subclasses__())
        if "config" in vars(method):
            found[method.config.name] = method
    return found


METHODS: dict[str, type[Method]] = _declared_methods()

__all__ = ["METHODS", "Method", "MethodContext", "StepStats", "build_method", "merge_stats"]


def build_method(cfg: MethodConfig, ctx: MethodContext) -> Method:
    """The method `cfg` names; for a control run (``method.control=matched``) the massed run its schema derives."""
    if cfg.name not in METHODS:
        raise ConfigError(f"unknown method.name '{cfg.name}'; valid choices: {', '.join(sorted(METHODS))}.")
    method = METHODS[cfg.name]
    if type(cfg) is not method.config:
        raise ConfigError(
            f"method.name={cfg.name} does not go with the keys of another method's config; "
            f"select the method with method={cfg.name} instead of setting method.name."
        )
    if cfg.control == "none":
        return method(cfg, ctx)
    spaced = Schedule(cfg.interval, cfg.schedule, ctx.steps_per_epoch, ctx.seed, cfg.random_max_gap)
    control_run = method(cfg.matched_control(spaced), ctx)
    control_run.controls = cfg
    return control_run
