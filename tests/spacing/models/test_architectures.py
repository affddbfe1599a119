"""Every architecture: forward/backward at 32 and 64 px, output and feature shapes, stage boundaries."""

from __future__ import annotations

import pytest
import torch

from spacing.config import ModelConfig
from spacing.errors import ConfigError
from spacing.models import MODELS, StagedNet, build_model
from tests.helpers import SMALL_WIDTH

STAGES = {"small_cnn": 3, "wrn28_10": 3, "wrn16_4": 3, "shufflenetv2": 3, "vgg16_bn": 5}
PARAMETERS_M = {  # at the default width, 100 classes; published CIFAR-100 sizes
    "resnet18": 11.22,
    "resnet34": 21.33,
    "resnet50": 23.71,
    "resnet101": 42.70,
    "wrn28_10": 36.54,
    "wrn16_4": 2.77,
    "mobilenetv2": 2.35,
    "shufflenetv2": 1.36,
}


def test_every_model_has_a_small_width_here() -> None:
    assert sorted(SMALL_WIDTH) == sorted(MODELS)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_backward_shapes_and_stage_boundaries(name: str, size: int) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, width=SMALL_WIDTH[name]), num_classes=7, in_channels=3, image_size=size)
    assert isinstance(model, StagedNet)
    x = torch.randn(2, 3, size, size)
    stages = model.stage_outputs(x)
    assert len(stages) == STAGES.get(name, 4) == len(model.stage_channels)
    assert [s.shape[1] for s in stages] == model.stage_channels
    assert all(s.dim() == 4 and s.shape[0] == 2 for s in stages)
    assert all(later.shape[-1] <= earlier.shape[-1] for earlier, later in zip(stages, stages[1:]))
    logits, features = model.forward_with_features(x)
    assert logits.shape == (2, 7) and features.shape == (2, model.feature_dim)
    assert model.feature_dim == model.stage_channels[-1]
    torch.testing.assert_close(features, stages[-1].mean(dim=(2, 3)))
    logits.square().sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("size", [32, 64])
def test_vit_stages_are_8x8_token_maps_of_the_embedding_width(size: int) -> None:
    model = build_model(ModelConfig(name="vit_tiny", width=32), num_classes=5, in_channels=3, image_size=size)
    assert [tuple(s.shape) for s in model.stage_outputs(torch.randn(1, 3, size, size))] == [(1, 32, 8, 8)] * 4
    assert model.stem.project.kernel_size == (size // 8, size // 8)


def test_vit_rejects_an_image_size_it_cannot_patch() -> None:
    with pytest.raises(ConfigError, match="model=vit_tiny needs images whose size is a multiple of 8 px; got 12 px"):
        build_model(ModelConfig(name="vit_tiny"), num_classes=5, in_channels=3, image_size=12)


@pytest.mark.slow
def test_default_widths_have_the_published_parameter_counts() -> None:
    for name, millions in PARAMETERS_M.items():
        model = build_model(ModelConfig(name=name), num_classes=100, in_channels=3)
        count = sum(p.numel() for p in model.parameters()) / 1e6
        assert abs(count - millions) < 0.02 * millions, (name, count)
