"""Synaptic level: spaced EMA (weight averaging).

A shadow copy follows the model, ``theta_ema <- decay * theta_ema + (1 - decay) * theta``, but
only at the schedule's refresh steps: every step when massed, every S steps when spaced, after
random gaps when random. The update is one fused lerp over all parameters (and averaged
buffers) and one fused copy of the copied buffers.

BatchNorm running statistics of the shadow (``method.buffers``): ``average`` them like the
weights (default, as timm does), ``copy`` the model's, ``recompute`` them from train batches
with the shadow's own weights before each evaluation (the most faithful to the averaged
weights), or ``none``: never update them, as the paper's code did (parameters only).
"""

from __future__ import annotations

import copy
from itertools import islice

import torch
from torch import Tensor, nn

from spacing.config import EmaConfig
from spacing.data import Batch
from spacing.methods.base import MethodContext, StepStats
from spacing.methods.baseline import Baseline


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, batches: list[Tensor]) -> None:
    """Replace BatchNorm running stats with the exact average over `batches` (as SWA does).

    Each forward runs at momentum 1 (the running stats become that batch's) and the averages
    are summed here, rather than with PyTorch's cumulative momentum=None, which reads a
    counter on the host in every layer (a GPU sync, and a graph break in a compiled model).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms or not batches:
        return
    momenta = [m.momentum for m in norms]
    stats = [s for m in norms for s in (m.running_mean, m.running_var)]
    sums = [torch.zeros_like(s) for s in stats]
    for m in norms:
        m.reset_running_stats()
        m.momentum = 1.0
    was_training = model.training
    model.train()
    for images in batches:
        model(images)
        torch._foreach_add_(sums, stats)
    torch._foreach_copy_(stats, torch._foreach_div(sums, float(len(batches))))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


class SpacedEMA(Baseline):
    """Baseline training of `model`, plus a shadow `ema` refreshed on the schedule."""

    config = EmaConfig
    targets = ("model", "ema")
    main_target = "ema"
    strength_name = "decay"

    def __init__(self, cfg: EmaConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.cfg: EmaConfig = cfg
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.updates = 0
        self.first_update: int | None = None
        self.last_update: int | None = None

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model, "ema": self.ema}

    def train_step(self, batch: Batch, step: int) -> dict[str, StepStats]:
        stats = super().train_step(batch, step)
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
        self.first_update = step if self.first_update is None else self.first_update
        self.last_update = step

    def end_epoch(self, epoch: int) -> dict[str, StepStats]:
        if self.cfg.buffers == "recompute":
            batches = islice(self.ctx.stream.epoch(epoch), self.cfg.recompute_batches)
            with self.autocast():
                recompute_bn_stats(self.ema, [batch.images for batch in batches])
        return {}

    def eval_mode(self, split: str = "test") -> None:
        if not self.cfg.eval_train_mode:
            super().eval_mode(split)

    def predict(self, images: Tensor) -> dict[str, Tensor]:
        return {**super().predict(images), "ema": self.ema(images)}

    def counters(self) -> dict[str, float | None]:
        return {"ema_updates": self.updates, "ema_first_update_step": self.first_update, "ema_last_update_step": self.last_update}

    def extra_state(self) -> dict[str, int | None]:
        return {"updates": self.updates, "first": self.first_update, "last": self.last_update}

    def load_extra_state(self, state: dict[str, int | None]) -> None:
        self.updates = int(state["updates"] or 0)
        self.first_update, self.last_update = state["first"], state["last"]
