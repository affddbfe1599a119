"""Trainer speed switches: autocast precision, channels_last, the fp16 loss scaler, torch.compile."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from spacing.config import BaselineConfig, Config, ModelConfig, SyntheticDatasetConfig, TrainerConfig, to_config
from spacing.data import build_data
from spacing.methods.base import Method
from spacing.models import build_model, compile_module
from spacing.models.compiled import compile_backend
from spacing.contract import CHECKPOINT_FILE
from spacing.runner import run
from spacing.speed import Speed
from tests.helpers import TINY, build_method_for, compose_config

CPU = torch.device("cpu")


def small_resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(name="resnet18", width=8), num_classes=10, in_channels=3).eval()


def test_auto_means_plain_fp32_on_cpu() -> None:
    speed = Speed.resolve(TrainerConfig(), CPU)
    assert (speed.dtype, speed.channels_last, speed.compile) == (None, False, False)
    assert speed.grad_scaler() is None
    speed = Speed.resolve(TrainerConfig(precision="bf16", channels_last="true"), CPU)
    assert (speed.dtype, speed.memory_format) == (torch.bfloat16, torch.channels_last)
    assert isinstance(Speed.resolve(TrainerConfig(precision="fp16"), CPU).grad_scaler(), torch.amp.GradScaler)


@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", 1e-4), ("bf16", 0.1), ("fp16", 0.02)])
def test_autocast_and_channels_last_predict_like_fp32(precision: str, tolerance: float) -> None:
    images = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = small_resnet()(images)
        speed = Speed.resolve(TrainerConfig(precision=precision, channels_last="true"), CPU)
        model = speed.prepare(small_resnet())
        assert model.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
        with speed.autocast():
            fast = model(images.contiguous(memory_format=torch.channels_last))
    assert fast.dtype == (torch.float32 if speed.dtype is None else speed.dtype)
    scale = reference.abs().max()
    assert (fast.float() - reference).abs().max() < tolerance * scale
    assert (fast.argmax(1) == reference.argmax(1)).float().mean() >= 0.9


def test_fp16_scaler_step_equals_a_plain_step() -> None:
    def one_step(precision: str) -> tuple[list[torch.Tensor], Method]:
        method, data = build_method_for(config(precision, "false"), epochs=1)
        batch = next(data.train.epoch(0))
        method.optimize(method.optimizers()["model"], F.cross_entropy(method.modules()["model"](batch.images), batch.labels))
        method.end_iteration()
        return [p.detach().clone() for p in method.modules()["model"].parameters()], method

    plain, _ = one_step("fp32")
    scaled, method = one_step("fp16")
    for a, b in zip(plain, scaled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert method.ctx.grad_scaler is not None and method.ctx.grad_scaler.get_scale() == 65536.0


def test_build_data_serves_channels_last_batches() -> None:
    dataset = SyntheticDatasetConfig(name="synthetic", channels=3, image_size=8, train_size=32)
    data = build_data(dataset, 8, 8, seed=0, device=CPU, memory_format=torch.channels_last)
    assert next(data.train.epoch(0)).images.is_contiguous(memory_format=torch.channels_last)
    assert next(iter(data.test))[0].is_contiguous(memory_format=torch.channels_last)


def config(precision: str, channels_last: str) -> Config:
    return Config(
        dataset=SyntheticDatasetConfig(name="synthetic", channels=3, image_size=8, train_size=256, test_size=128),
        model=ModelConfig(name="small_cnn", width=8),
        method=BaselineConfig(),
        trainer=TrainerConfig(
            epochs=2, batch_size=32, lr=0.05, device="cpu", precision=precision, channels_last=channels_last, keep_checkpoint=True
        ),
    )


def test_mixed_precision_runs_reach_the_fp32_accuracy(tmp_path: Path) -> None:
    reference = run(config("fp32", "false"), tmp_path / "fp32")["metrics"]["model"]["test_acc"]
    for precision in ("bf16", "fp16"):
        result = run(config(precision, "true"), tmp_path / precision)
        assert result["status"] == "completed"
        assert abs(result["metrics"]["model"]["test_acc"] - reference) <= 0.1
    checkpoint = torch.load(tmp_path / "fp16" / CHECKPOINT_FILE, weights_only=True)
    assert checkpoint["grad_scaler"]["scale"] > 0
    assert torch.load(tmp_path / "bf16" / CHECKPOINT_FILE, weights_only=True)["grad_scaler"] is None


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cc") is None, reason="torch.compile's inductor on CPU needs a C compiler")
def test_inductor_compiled_entry_points_compute_what_the_eager_model_does() -> None:
    torch.manual_seed(0)
    eager = build_model(ModelConfig(name="small_cnn", width=8), num_classes=4, in_channels=1, image_size=8).eval()
    compiled = build_model(ModelConfig(name="small_cnn", width=8), num_classes=4, in_channels=1, image_size=8).eval()
    compiled.load_state_dict(eager.state_dict())
    compile_module(compiled, "inductor")
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    images = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(compiled.stage_outputs(images)[-1], eager.stage_outputs(images)[-1], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(compiled.forward_with_features(images)[1], eager.forward_with_features(images)[1], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(compiled(images), eager(images), rtol=1e-4, atol=1e-4)
    torch._dynamo.reset()


def test_modules_a_method_adds_get_the_runs_memory_format_and_compile() -> None:
    config = to_config(compose_config(["method=self_kd", *TINY, "dataset.channels=3", "trainer.channels_last=true", "trainer.compile=true"]))
    method, _ = build_method_for(config)
    adapter = method.modules()["net"].adapters[0][0]
    assert adapter.weight.is_contiguous(memory_format=torch.channels_last)
    assert compile_backend(method.modules()["net"]) == "inductor"  # its exits run as one compiled graph
    assert compile_backend(method.modules()["net"].backbone) == "inductor"
