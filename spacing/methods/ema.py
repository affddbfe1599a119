"""Synaptic level: spaced EMA (weight averaging).

A shadow copy follows the model, ``theta_ema <- decay * theta_ema + (1 - decay) * theta``, but
only at the schedule's refresh steps: every step when massed, every S steps when spaced, after
random gaps when random. The update is one fused lerp over all parameters (and averaged
buffers) and one fused copy of the copied buffers.

BatchNorm running statistics of the shadow (``method.buffers``): ``recompute`` them from train
batches with the shadow's own weights before each evaluation (default, as SWA does: the only
policy whose statistics belong to the averaged weights however rarely they are refreshed),
``average`` them like the weights (as timm does), ``copy`` the model's, or ``none``: never update
them, as the paper's code did (parameters only).

The shadow starts at the initial weights, which keep a share decay^k after k refreshes (counter
``ema_initial_weight``): a spaced shadow refreshed a few times is still partly the untrained model.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from spacing.config import EmaConfig
from spacing.data import Batch
from spacing.methods.base import MethodContext, StepStats
from spacing.methods.baseline import Baseline


class SpacedEMA(Baseline):
    """Baseline training of `model`, plus a shadow `ema` refreshed on the schedule."""

    config = EmaConfig
    targets = ("model", "ema")
    main_target = "ema"
    strength_name = "decay"
    shared_targets = ("model",)

    def __init__(self, cfg: EmaConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.cfg: EmaConfig = cfg
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.updates = 0
        self.initial_weight = 1.0
        self.first_update: int | None = None
        self.last_update: int | None = None

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model, "ema": self.ema}

    def share(self, leader: SpacedEMA) -> None:
        self.model, self.optimizer = leader.model, leader.optimizer

    def train_step(self, batch: Batch, step: int) -> dict[str, StepStats]:
        stats = {} if self.following else super().train_step(batch, step)
        if self.schedule.is_refresh(step):
            self.update(step)
        return stats

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the shadow towards the model by (1 - decay)."""
        weight = 1.0 - self.cfg.decay
        averaged = list(zip(self.ema.parameters(), self.model.parameters()))
        copied = []
        if self.cfg.buffers in ("average", "copy"):
            for shadow, live in zip(self.ema.buffers(), self.model.buffers()):
                if self.cfg.buffers == "average" and shadow.is_floating_point():
                    averaged.append((shadow, live))
                else:
                    copied.append((shadow, live))
        torch._foreach_lerp_([shadow for shadow, _ in averaged], [live for _, live in averaged], weight)
        if copied:
            torch._foreach_copy_([shadow for shadow, _ in copied], [live for _, live in copied])
        self.updates += 1
        self.initial_weight *= self.cfg.decay
        self.first_update = step if self.first_update is None else self.first_update
        self.last_update = step

    def end_epoch(self, epoch: int) -> dict[str, StepStats]:
        if self.cfg.buffers == "recompute":
            self.recompute_bn_stats(self.ema, epoch, self.cfg.recompute_batches)
        return {}

    def eval_mode(self, split: str = "test") -> None:
        if not self.cfg.eval_train_mode:
            super().eval_mode(split)

    def predict(self, images: Tensor) -> dict[str, Tensor]:
        own = {"ema": self.ema(images)}
        return own if self.following else {**super().predict(images), **own}

    def counters(self) -> dict[str, float | None]:
        return {
            "ema_updates": self.updates,
            "ema_first_update_step": self.first_update,
            "ema_last_update_step": self.last_update,
            "ema_initial_weight": self.initial_weight,
        }

    def extra_state(self) -> dict[str, float | None]:
        return {"updates": self.updates, "first": self.first_update, "last": self.last_update, "initial_weight": self.initial_weight}

    def load_extra_state(self, state: dict[str, float | None]) -> None:
        self.updates = int(state["updates"] or 0)
        self.first_update, self.last_update = state["first"], state["last"]
        self.initial_weight = float(state["initial_weight"])
