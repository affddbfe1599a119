"""The method plug-in interface: a strategy the one training loop drives.

A method owns its models and optimizers, takes one training step per batch, and names its
evaluation targets (``model``, ``ema``, ``student``, ...). The runner never asks which method
it is running; everything method-specific happens behind this interface.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from itertools import islice
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from spacing.config import MethodConfig
from spacing.data import Batch, TrainStream
from spacing.errors import ConfigError
from spacing.models import StagedNet
from spacing.schedule import Schedule


@dataclass
class StepStats:
    """Running sums of loss and correct predictions, kept on the device to avoid syncs."""

    loss_sum: Tensor
    correct: Tensor
    count: int

    @classmethod
    def of(cls, loss: Tensor, logits: Tensor, labels: Tensor) -> StepStats:
        """Stats of one batch from its mean loss and logits."""
        n = int(labels.shape[0])
        return cls(loss.detach().float() * n, (logits.detach().argmax(1) == labels).sum(), n)

    def __add__(self, other: StepStats) -> StepStats:
        return StepStats(self.loss_sum + other.loss_sum, self.correct + other.correct, self.count + other.count)

    def summary(self) -> tuple[float, float]:
        """(mean loss, accuracy) over everything added so far."""
        return float(self.loss_sum) / self.count, float(self.correct) / self.count


@dataclass
class MethodContext:
    """What the runner gives a method: problem size, stream, and factories bound to the run's config."""

    num_classes: int
    in_channels: int
    steps_per_epoch: int
    epochs: int
    device: torch.device
    stream: TrainStream
    seed: int
    build_model: Callable[[str | None], StagedNet]
    """Build an architecture by ``model.name`` (None: the run's own model), on the device."""
    build_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    """SGD with the run's trainer settings; the run's building attaches its LR schedule."""
    prepare: Callable[[nn.Module], nn.Module]
    """Put a module a method adds (self KD's exits) on the device, in the run's memory format, compiled if asked."""
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    """The run's mixed-precision region (a no-op in fp32); :meth:`Method.autocast` hands it out."""
    grad_scaler: torch.amp.GradScaler | None = None
    """The run's loss scaler under fp16 autocast (None otherwise); :meth:`Method.optimize` applies it."""


@torch.no_grad()
def exact_bn_stats(model: nn.Module, batches: list[Tensor]) -> None:
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


def merge_stats(totals: dict[str, StepStats], new: dict[str, StepStats]) -> None:
    """Add `new` into `totals`, target by target."""
    for target, stats in new.items():
        totals[target] = totals[target] + stats if target in totals else stats


class Method(ABC):
    """Base of every method. A method declares ``config``, ``targets`` and ``main_target`` and
    implements the abstract methods; declaring ``config`` registers it (:mod:`spacing.methods`).
    """

    config: ClassVar[type[MethodConfig]]
    """The method's config schema (in :mod:`spacing.config`); its `name` is the method's name."""

    targets: tuple[str, ...]
    """Evaluation targets, in the order they are reported; the first is shown in the progress bar."""

    main_target: ClassVar[str]
    """The target analysis reports by default (result.json's ``main_target``); one of ``targets``."""

    strength_name: str | None = None
    """Name of the config field that sets the method's variation strength (None if it has none)."""

    supports_offline: ClassVar[bool] = False
    """Whether `interval=inf` (offline: the ensemble is never refreshed while training) makes sense."""

    controls: MethodConfig | None = None
    """For a control run, the config of the spaced cell it controls (``cfg`` is the massed run it trains)."""

    shared_targets: ClassVar[tuple[str, ...]] = ()
    """Targets whose training does not depend on the method's own keys (EMA's model, online KD's
    teacher): the cells of a fused group train them once, in the group's leader (:meth:`follow`).
    Empty: the method changes training itself and cannot fuse."""

    leader: Method | None = None
    """In a fused group, the method whose shared targets this one uses (None: it trains its own)."""

    def __init__(self, cfg: MethodConfig, ctx: MethodContext) -> None:
        if math.isinf(cfg.interval) and not self.supports_offline:
            raise ConfigError(
                f"method.interval=inf (offline: the teacher trains first) does not apply to {cfg.name}; "
                "use a finite interval in epochs."
            )
        self.cfg = cfg
        self.ctx = ctx
        self._scaled: list[torch.optim.Optimizer] = []
        self.schedule = Schedule(cfg.interval, cfg.schedule, ctx.steps_per_epoch, ctx.seed, cfg.random_max_gap)

    @property
    def strength(self) -> float | None:
        return None if self.strength_name is None else float(getattr(self.cfg, self.strength_name))

    def control(self) -> dict[str, Any] | None:
        """The record's ``control``: None for an ordinary run, else the kind and the spaced cell it controls."""
        spaced = self.controls
        if spaced is None:
            return None
        strength = None if self.strength_name is None else float(getattr(spaced, self.strength_name))
        return {"kind": spaced.control_kind, "interval": spaced.interval, "strength": strength, "schedule": spaced.schedule}

    def follow(self, leader: Method) -> None:
        """Use `leader`'s shared targets from now on: the same modules, optimizers (hence LR schedules).

        A follower never trains them: its :meth:`train_step` does only its own part, after the
        leader's step on the same batch, and its :meth:`predict` leaves them out (the loop copies
        the leader's stats and accuracies). Called after both were built and resumed as separate
        runs would be, so everything a follower owns starts exactly as in its separate run.
        """
        if not self.shared_targets or type(leader) is not type(self):
            raise ConfigError(f"method {self.cfg.name} cannot share its training with another run (it has no shared targets).")
        self.leader = leader
        self.share(leader)

    def share(self, leader: Method) -> None:
        """Replace this method's shared modules and optimizers by `leader`'s (methods with shared targets)."""
        raise NotImplementedError(f"{type(self).__name__} declares no shared targets")

    @property
    def following(self) -> bool:
        return self.leader is not None

    def autocast(self) -> contextlib.AbstractContextManager:
        """The mixed-precision region for a forward pass and its loss, never for backward or a step.

        Autocast keeps one low-precision copy of each weight for the whole region and does not
        see in-place optimizer updates: a forward after an optimizer step inside the same region
        would run on the old weights (a KD teacher's targets one step stale, replays at frozen
        weights). So each forward opens its own region and :meth:`optimize` runs outside it.
        """
        return self.ctx.autocast()

    def optimize(self, optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
        """One update of `optimizer` on `loss`; in fp16 the loss is scaled and an overflowing step skipped."""
        optimizer.zero_grad(set_to_none=True)
        scaler = self.ctx.grad_scaler
        if scaler is None:
            loss.backward()
            optimizer.step()
            return
        if any(optimizer is stepped for stepped in self._scaled):
            self.end_iteration()  # the same optimizer again (a replay burst): a new iteration
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        self._scaled.append(optimizer)

    def end_iteration(self) -> None:
        """Update the fp16 loss scale once for every optimizer that stepped since the last call.

        PyTorch's AMP recipe updates the scale once per iteration, after all of its optimizers
        stepped; the runner calls this after each training step (a no-op outside fp16).
        """
        if self._scaled:
            assert self.ctx.grad_scaler is not None
            self.ctx.grad_scaler.update()
            self._scaled.clear()

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every trainable or stateful module, by a stable name (used for modes and checkpoints)."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer, by a stable name; the runner schedules their learning rates."""

    @abstractmethod
    def train_step(self, batch: Batch, step: int) -> dict[str, StepStats]:
        """Train on one batch at global step `step` (0-based); stats per target that learned from it."""

    @abstractmethod
    def predict(self, images: Tensor) -> dict[str, Tensor]:
        """Logits of every target for a batch; called under no_grad after :meth:`eval_mode`."""

    @property
    def epochs(self) -> int:
        """How many epochs the run trains: trainer.epochs, unless the method trains in phases."""
        return self.ctx.epochs

    def scheduled_optimizers(self, epoch: int) -> tuple[str, ...]:
        """The optimizers that trained in epoch `epoch` (0-based): their LR schedules step after it."""
        return tuple(self.optimizers())

    def train_mode(self) -> None:
        for module in self.modules().values():
            module.train()

    def eval_mode(self, split: str = "test") -> None:
        """Evaluation mode before the forwards of `split` (``val`` or ``test``)."""
        for module in self.modules().values():
            module.eval()

    def recompute_bn_stats(self, model: nn.Module, epoch: int, batches: int) -> None:
        """Give `model`'s BatchNorm layers the exact statistics of its forwards on the first `batches` train batches of `epoch`.

        For evaluations where the running statistics gathered in training belong to another network
        than the one evaluated (an averaged shadow; a model trained under dropout, evaluated without).
        """
        with self.autocast():
            exact_bn_stats(model, [batch.images for batch in islice(self.ctx.stream.epoch(epoch), batches)])

    def end_epoch(self, epoch: int) -> dict[str, StepStats]:
        """Hook after the last step of epoch `epoch` (0-based), before evaluation; may train more."""
        return {}

    def counters(self) -> dict[str, float]:
        """The method's own counts (updates, replay rounds, ...), reported in the run record."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """State beyond modules and optimizers that a resumed run needs."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    def state_dict(self) -> dict[str, Any]:
        return {
            "modules": {name: m.state_dict() for name, m in self.modules().items()},
            "optimizers": {name: o.state_dict() for name, o in self.optimizers().items()},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, module in self.modules().items():
            module.load_state_dict(state["modules"][name])
        for name, optimizer in self.optimizers().items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.load_extra_state(state["extra"])
