"""Model registry: ``model.name`` -> a builder returning a :class:`StagedNet`."""

from __future__ import annotations

from collections.abc import Callable

from spacing.config import ModelConfig
from spacing.errors import ConfigError
from spacing.models.resnet import resnet18
from spacing.models.small_cnn import small_cnn
from spacing.models.staged import StagedNet

MODELS: dict[str, Callable[..., StagedNet]] = {
    "small_cnn": small_cnn,
    "resnet18": resnet18,
}

__all__ = ["MODELS", "StagedNet", "build_model"]


def build_model(cfg: ModelConfig, num_classes: int, in_channels: int) -> StagedNet:
    """Build `cfg.name`; `cfg.width` overrides the architecture's default width when set."""
    if cfg.name not in MODELS:
        raise ConfigError(f"unknown model.name '{cfg.name}'; valid choices: {', '.join(sorted(MODELS))}.")
    width = {} if cfg.width is None else {"width": cfg.width}
    return MODELS[cfg.name](num_classes=num_classes, in_channels=in_channels, **width)
