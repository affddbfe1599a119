"""Neuronal level: spaced dropout.

Dropout acts on the feature map after every stage of the model. Its rate at forward call t is
``p * schedule.multiplier(t)``: constant ``p`` when massed (standard dropout), ``p*|sin(pi t/S)|``
when spaced (it rises from 0 to p and back every S steps), ``p*U(0,1)`` when random, drawn for
every stage separately (as the paper's code did).
Variants: ``standard`` (zero random units, rescale by 1/(1-rate)), ``max`` (zero the units whose
min-max normalised activation exceeds 1 - rate, no rescale; normalised per sample, or over the
whole batch with ``max_scope=batch`` as the paper's MaxDropout), and ``cutout`` (input level: a
Cutout hole of side ``cutout_size * multiplier`` at a random place per image, rounded down to
even as in the Cutout paper's code; ``paper_cutout`` reproduces the paper's Cutout_input).

The forward counter t counts training forwards, and test forwards too when ``eval_dropout``
keeps dropout on at evaluation (the paper's quirk); validation forwards never move it.

BatchNorm after a dropped-out stage learns running statistics of dropped-out activations, whose
variance grows with the rate; evaluated without dropout, the model meets other statistics (the
"variance shift"), by an amount that depends on the rate in the last steps before the evaluation,
so on the interval. ``eval_bn=recompute`` (default) gives BatchNorm the statistics of the network
as it is evaluated before every evaluation; ``running`` keeps the trained ones (the paper's code,
which evaluated with dropout on, where they match).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from spacing.config import DropoutConfig
from spacing.data import Batch, cutout, derive_seed
from spacing.errors import ConfigError
from spacing.methods.base import MethodContext, StepStats
from spacing.methods.baseline import Baseline


def standard_dropout(x: Tensor, rate: Tensor) -> Tensor:
    """Zero each unit with probability `rate` and scale the rest by 1 / (1 - rate), as F.dropout does.

    The rate is a tensor: a compiled model reads it as an input, where F.dropout's Python float
    would be baked into the graph and recompile it at every new rate.
    """
    keep = torch.rand_like(x, dtype=torch.float32) >= rate
    return x * keep / (1 - rate)


def max_dropout(x: Tensor, rate: Tensor | float, scope: str = "sample") -> Tensor:
    """Zero the units whose min-max normalised value exceeds 1 - rate.

    The min and max are taken over each sample (``sample``) or over the whole batch tensor
    (``batch``, the paper's MaxDropout: a sample's units then compete with the whole batch's).
    """
    flat = x.flatten(1) if scope == "sample" else x.reshape(1, -1)
    low = flat.min(dim=1, keepdim=True).values
    high = flat.max(dim=1, keepdim=True).values
    normalised = (flat - low) / (high - low).clamp_min(1e-12)
    return (flat * (normalised <= 1 - rate)).view_as(x)


def batch_cutout(images: Tensor, length: int, generator: torch.Generator) -> Tensor:
    """One `length` x `length` hole at the same uniformly drawn place in every image (the paper's Cutout_input)."""
    return images * cutout(torch.ones_like(images[:1]), length, generator)


CUTOUT_STREAM = 0xC07
"""Mixed into the seed of each step's cutout draws, apart from the data pipeline's own."""


class SpacedDropout(Baseline):
    """The baseline's model and step, with dropout (or cutout) at the schedule's rate on every training forward."""

    config = DropoutConfig

    def __init__(self, cfg: DropoutConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.cfg: DropoutConfig = cfg
        if cfg.schedule == "periodic" and self.schedule.period == 1:
            raise ConfigError(
                f"method.interval={cfg.interval} is a period of 1 step, where |sin(pi t / S)| is always 0 "
                f"(no dropout); use method.interval=0 (standard dropout) or >= {2 / ctx.steps_per_epoch:.3g} epochs."
            )
        self.strength_name = "cutout_size" if cfg.variant == "cutout" else "p"
        self.rates = [0.0] * len(self.model.stages)
        self._rates = torch.zeros(len(self.rates), device=ctx.device)
        """`rates` where the dropout hooks read them: tensors, so a compiled model does not recompile per rate."""
        self.forwards = 0
        self.train_steps = 0
        self.train_strength_sum = 0.0
        self.advance_on_predict = False
        self.recomputing = False
        if cfg.variant != "cutout":
            for index, stage in enumerate(self.model.stages):
                stage.register_forward_hook(self._dropout_hook(index))

    def _advance(self) -> float:
        """Move the dropout clock one forward call on; returns the schedule's (first stage's) multiplier for it."""
        multipliers = [self.schedule.multiplier(self.forwards, draw) for draw in range(len(self.rates))]
        self.rates = [self.cfg.p * m for m in multipliers]
        for index, rate in enumerate(self.rates):
            self._rates[index].fill_(rate)  # a kernel launch, no host wait
        self.forwards += 1
        return multipliers[0]

    def _dropout_hook(self, index: int):  # type: ignore[no-untyped-def]
        def drop(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
            if not (self.cfg.eval_dropout or (self.model.training and not self.recomputing)):
                return output
            if self.cfg.variant == "max":
                return max_dropout(output, self._rates[index], self.cfg.max_scope)
            return standard_dropout(output, self._rates[index])

        return drop

    def _cutout(self, images: Tensor, multiplier: float, step: int) -> tuple[Tensor, int]:
        """The step's cutout and its hole side: per image, or the paper's one hole per batch."""
        generator = torch.Generator(images.device).manual_seed(derive_seed(self.ctx.seed, step, CUTOUT_STREAM))
        if not self.cfg.paper_cutout:
            hole = round(self.cfg.cutout_size * multiplier)
            return cutout(images, hole, generator), hole
        if self.schedule.kind == "periodic" and not self.schedule.massed:
            # The paper's period is interval * steps_per_epoch, not rounded to whole steps.
            multiplier = abs(math.sin(math.pi * self.train_steps / (self.cfg.interval * self.ctx.steps_per_epoch)))
        hole = int(self.cfg.cutout_size * multiplier)
        return batch_cutout(images, hole, generator), hole

    def train_step(self, batch: Batch, step: int) -> dict[str, StepStats]:
        """Move the dropout clock (the hooks drop at its rates during the baseline's step), or cut the images out."""
        multiplier = self._advance()
        if self.cfg.variant == "cutout":
            images, hole = self._cutout(batch.images, multiplier, step)
            batch = dataclasses.replace(batch, images=images)
            self.train_strength_sum += hole
        else:
            self.train_strength_sum += sum(self.rates) / len(self.rates)
        self.train_steps += 1
        return super().train_step(batch, step)

    def end_epoch(self, epoch: int) -> dict[str, StepStats]:
        """Before evaluation: BatchNorm statistics of the network as evaluated (without dropout unless eval_dropout)."""
        if self.cfg.eval_bn == "recompute":
            self.recomputing = True
            self.recompute_bn_stats(self.model, epoch, self.cfg.recompute_batches)
            self.recomputing = False
        return {}

    def eval_mode(self, split: str = "test") -> None:
        super().eval_mode(split)
        self.advance_on_predict = self.cfg.eval_dropout and self.cfg.variant != "cutout" and split == "test"

    def predict(self, images: Tensor) -> dict[str, Tensor]:
        if self.advance_on_predict:
            self._advance()
        return super().predict(images)

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
