"""Building a run: the device, data, method and LR schedules a config asks for, ready to train.

Everything random is seeded first, and the parts are made in a fixed order (device and speed
switches, data on the device, the method's models and optimizers, one LR schedule per
optimizer), so one config and seed always start from the same weights, data order and draws.
Nothing here trains, evaluates or writes a file: :class:`spacing.loop.Trainer` drives the parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from spacing.config import Config, ModelConfig
from spacing.data import DataBundle, build_data
from spacing.device import resolve_device
from spacing.methods import Method, MethodContext, build_method
from spacing.models import StagedNet, build_model
from spacing.optim import build_lr_schedule, build_optimizer
from spacing.record import hardware
from spacing.seeding import seed_everything
from spacing.speed import Speed


@dataclass
class RunParts:
    """What one run trains with."""

    config: Config
    device: torch.device
    speed: Speed
    grad_scaler: torch.amp.GradScaler | None
    """The fp16 loss scaler (None in fp32 and bf16); the method applies it, the checkpoint keeps it."""
    data: DataBundle
    method: Method
    lr_schedules: dict[str, LRScheduler]
    """One per optimizer of the method, by the optimizer's name; stepped after each epoch it trained in."""

    def record_fields(self) -> dict[str, Any]:
        """What the run record says about the built run: hardware, the cell it trains (a control run
        trains a massed cell and names the spaced cell it controls), strength, main target, epochs, data sizes."""
        return {
            **hardware(self.device),
            "interval": self.method.cfg.interval,
            "schedule": self.method.cfg.schedule,
            "control": self.method.control(),
            "strength_name": self.method.strength_name,
            "strength": self.method.strength,
            "main_target": self.method.main_target,
            "epochs": self.method.epochs,
            "data": self.data.sizes,
        }


def build_run(config: Config, data: DataBundle | None = None) -> RunParts:
    """Seed, then build the device, speed switches, data, method and LR schedules of `config`.

    `data`: a bundle already built for the same dataset, trainer and seed (the cells of a fused
    group share one); building data draws only from its own seeded generators, so the method's
    weights come out the same either way.
    """
    trainer = config.trainer
    seed_everything(config.seed)
    device = resolve_device(trainer.device)
    speed = Speed.resolve(trainer, device)
    grad_scaler = speed.grad_scaler()
    if data is None:
        data = build_data(config.dataset, trainer.batch_size, trainer.eval_batch_size, config.seed, device, speed.memory_format)
    in_channels, image_size = data.image_shape[0], data.image_shape[-1]

    def make_model(name: str | None) -> StagedNet:
        """The run's model (`name` None or its own), or another architecture at its default width (a KD teacher)."""
        model_cfg = config.model if name in (None, config.model.name) else ModelConfig(name=name)
        return speed.prepare(build_model(model_cfg, data.num_classes, in_channels, image_size).to(device))

    method = build_method(
        config.method,
        MethodContext(
            num_classes=data.num_classes,
            in_channels=in_channels,
            steps_per_epoch=data.train.steps_per_epoch,
            epochs=trainer.epochs,
            device=device,
            stream=data.train,
            seed=config.seed,
            build_model=make_model,
            build_optimizer=lambda params: build_optimizer(params, trainer),
            prepare=speed.prepare,
            autocast=speed.autocast,
            grad_scaler=grad_scaler,
        ),
    )
    lr_schedules = {name: build_lr_schedule(optimizer, trainer) for name, optimizer in method.optimizers().items()}
    return RunParts(config, device, speed, grad_scaler, data, method, lr_schedules)
