"""Model registry: ``model.name`` -> a builder returning a :class:`StagedNet`.

Every builder takes ``(num_classes, in_channels, image_size, width=<its default>)``; the
convolutional ones accept any input size and ignore ``image_size``, the ViT sizes its patches
from it.
"""

from __future__ import annotations

from collections.abc import Callable

from spacing.config import ModelConfig
from spacing.errors import ConfigError
from spacing.models.compiled import compile_module, entry_point
from spacing.models.mobilenet import mobilenetv2
from spacing.models.resnet import resnet18, resnet34, resnet50, resnet101
from spacing.models.shufflenet import shufflenetv2
from spacing.models.small_cnn import small_cnn
from spacing.models.staged import StagedNet
from spacing.models.vgg import vgg16_bn
from spacing.models.vit import vit_tiny
from spacing.models.wide_resnet import wrn16_4, wrn28_10

MODELS: dict[str, Callable[..., StagedNet]] = {
    "small_cnn": small_cnn,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "wrn28_10": wrn28_10,
    "wrn16_4": wrn16_4,
    "vgg16_bn": vgg16_bn,
    "mobilenetv2": mobilenetv2,
    "shufflenetv2": shufflenetv2,
    "vit_tiny": vit_tiny,
}

__all__ = ["MODELS", "StagedNet", "build_model", "compile_module", "entry_point"]


def build_model(cfg: ModelConfig, num_classes: int, in_channels: int, image_size: int = 32) -> StagedNet:
    """Build `cfg.name` for `image_size` px inputs; `cfg.width` overrides the architecture's default width when set."""
    if cfg.name not in MODELS:
        raise ConfigError(f"unknown model.name '{cfg.name}'; valid choices: {', '.join(sorted(MODELS))}.")
    width = {} if cfg.width is None else {"width": cfg.width}
    return MODELS[cfg.name](num_classes=num_classes, in_channels=in_channels, image_size=image_size, **width)
