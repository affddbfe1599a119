"""Neuronal level: spaced dropout.

Dropout acts on the feature map after every stage of the model. Its rate at training step t is
``p * schedule.multiplier(t)``: constant ``p`` when massed (standard dropout), ``p*|sin(pi t/S)|``
when spaced (it rises from 0 to p and back every S steps), ``p*U(0,1)`` when random.
Variants: ``standard`` (zero random units, rescale by 1/(1-rate)), ``max`` (zero the units whose
per-sample min-max normalised activation exceeds 1 - rate, no rescale), and ``cutout``
(input level: a Cutout hole of side ``cutout_size * multiplier`` at a random place per image,
rounded down to even as in the Cutout paper's code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spacing.config import DropoutConfig
from spacing.data import Batch
from spacing.data.augment import cutout
from spacing.data.stream import derive_seed
from spacing.errors import ConfigError
from spacing.methods.base import Method, MethodContext, StepStats


def standard_dropout(x: Tensor, rate: Tensor) -> Tensor:
    """Zero each unit with probability `rate` and scale the rest by 1 / (1 - rate), as F.dropout does.

    The rate is a tensor: a compiled model reads it as an input, where F.dropout's Python float
    would be baked into the graph and recompile it at every new rate.
    """
    keep = torch.rand_like(x, dtype=torch.float32) >= rate
    return x * keep / (1 - rate)


def max_dropout(x: Tensor, rate: Tensor | float) -> Tensor:
    """Zero the units whose per-sample min-max normalised value exceeds 1 - rate."""
    flat = x.flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    high = flat.max(dim=1, keepdim=True).values
    normalised = (flat - low) / (high - low).clamp_min(1e-12)
    return (flat * (normalised <= 1 - rate)).view_as(x)


CUTOUT_STREAM = 0xC07
"""Mixed into the seed of each step's cutout draws, apart from the data pipeline's own."""


class SpacedDropout(Method):
    targets = ("model",)

    def __init__(self, cfg: DropoutConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.cfg: DropoutConfig = cfg
        if cfg.schedule == "periodic" and self.schedule.period == 1:
            raise ConfigError(
                f"method.interval={cfg.interval} is a period of 1 step, where |sin(pi t / S)| is always 0 "
                f"(no dropout); use method.interval=0 (standard dropout) or >= {2 / ctx.steps_per_epoch:.3g} epochs."
            )
        self.strength_name = "cutout_size" if cfg.variant == "cutout" else "p"
        self.model = ctx.build_model(None)
        self.optimizer = ctx.build_optimizer(self.model.parameters())
        self.rate = 0.0
        self._rate = torch.zeros((), device=ctx.device)  # `rate` where the dropout hooks read it (see standard_dropout)
        self.forwards = 0
        self.train_steps = 0
        self.train_strength_sum = 0.0
        if cfg.variant != "cutout":
            for stage in self.model.stages:
                stage.register_forward_hook(self._drop)

    def _advance(self) -> float:
        """Move the dropout clock one forward call on; returns the schedule's multiplier for it."""
        multiplier = self.schedule.multiplier(self.forwards)
        self.rate = self.cfg.p * multiplier
        self._rate.fill_(self.rate)
        self.forwards += 1
        return multiplier

    def _drop(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        if not (self.model.training or self.cfg.eval_dropout):
            return output
        if self.cfg.variant == "max":
            return max_dropout(output, self._rate)
        return standard_dropout(output, self._rate)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": self.optimizer}

    def train_step(self, batch: Batch, step: int) -> dict[str, StepStats]:
        multiplier = self._advance()
        images = batch.images
        if self.cfg.variant == "cutout":
            hole = round(self.cfg.cutout_size * multiplier)
            images = cutout(images, hole, torch.Generator(images.device).manual_seed(derive_seed(self.ctx.seed, step, CUTOUT_STREAM)))
            self.train_strength_sum += hole
        else:
            self.train_strength_sum += self.rate
        self.train_steps += 1
        with self.autocast():
            logits = self.model(images)
            loss = F.cross_entropy(logits, batch.labels)
        self.optimize(self.optimizer, loss)
        return {"model": StepStats.of(loss, logits, batch.labels)}

    def predict(self, images: Tensor) -> dict[str, Tensor]:
        if self.cfg.eval_dropout and self.cfg.variant != "cutout":
            self._advance()
        return {"model": self.model(images)}

    def counters(self) -> dict[str, float]:
        mean = self.train_strength_sum / self.train_steps if self.train_steps else 0.0
        key = "mean_cutout_size" if self.cfg.variant == "cutout" else "mean_dropout_rate"
        return {key: mean, "dropout_forwards": self.forwards, "train_steps": self.train_steps}

    def extra_state(self) -> dict[str, float]:
        return {"forwards": self.forwards, "train_steps": self.train_steps, "strength_sum": self.train_strength_sum}

    def load_extra_state(self, state: dict[str, float]) -> None:
        self.forwards = int(state["forwards"])
        self.train_steps = int(state["train_steps"])
        self.train_strength_sum = float(state["strength_sum"])
