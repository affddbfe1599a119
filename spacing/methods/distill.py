"""Network level, shared by online KD and self KD: the distillation losses and spaced replay.

Spaced KD lets the teacher side learn from each fresh batch first and distils the student side
on that batch later, when the teacher is ahead. Only what identifies a batch is kept (its
dataset indices and augmentation seed, ~0.5 KB for a batch of 128): the batch is rebuilt bit
for bit when it is replayed, so memory does not grow with the interval's images.

Replay modes (``method.replay``), with ``S`` the schedule's period in steps:

* ``lagged`` (default): after each teacher step, the oldest kept batch is distilled once more
  than S batches are kept, so every batch is distilled exactly S teacher steps after the
  teacher learned from it.
* ``rounds`` (the papers' code): at every refresh step all kept batches are distilled in order;
  the teacher is S-1 steps ahead on a round's first batch and 0 on its last. With
  ``method.late_counter`` the refresh steps are those of a counter started one epoch late, as
  in the self KD script: rounds fall at (t + 1 - L) % S == 0 for L steps per epoch.

A random schedule always replays in rounds, at its random refresh steps. Massed
(``interval=0``) distils each batch right away from the teacher's outputs before its update
(ordinary online KD). Offline KD (``inf``) is not a replay: see spacing.methods.online_kd.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spacing.config import DistillConfig
from spacing.data import Batch
from spacing.methods.base import Method, MethodContext, StepStats, merge_stats
from spacing.schedule import Schedule


def soft_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float, variant: str) -> Tensor:
    """The soft-target term.

    ``kl``: KL(p_teacher || p_student) at temperature T with log-probabilities as input, mean over
    the batch, times T^2 (so its gradient scale does not shrink with T; Hinton et al.).
    ``softce``: the soft cross-entropy -sum p_teacher * log p_student at temperature T, mean over
    the batch, no T^2 — the self KD script's term (KL plus the teacher's entropy, which has no
    gradient for the student; so the ``kl`` gradient divided by T^2).
    ``paper``: softmax *probabilities* of the student passed where KL-div expects
    log-probabilities, mean over the batch, no T^2 — the online KD script's term.
    """
    target = F.softmax(teacher_logits / temperature, dim=1)
    if variant == "paper":
        return F.kl_div(F.softmax(student_logits / temperature, dim=1), target, reduction="batchmean")
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    if variant == "softce":
        return -(target * log_student).sum(dim=1).mean()
    return F.kl_div(log_student, target, reduction="batchmean") * temperature**2


def feature_loss(student_features: Tensor, teacher_features: Tensor) -> Tensor:
    """Plain L2 norm of the feature difference over the whole batch (the papers' feature term)."""
    return torch.linalg.vector_norm(student_features - teacher_features)


@contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Forward in train mode (batch statistics) without touching BatchNorm running stats.

    A teacher re-reading a replayed batch should give the targets its training forward would,
    without counting the batch twice in its running statistics.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum


@dataclass(frozen=True)
class KeptBatch:
    """What identifies a batch for replay, and how many teacher steps had been taken after it."""

    indices: Tensor
    seed: int
    teacher_steps: int

    @property
    def nbytes(self) -> int:
        return self.indices.nbytes + 16


class ReplayQueue:
    """Batches kept for later distillation, released as the schedule and replay mode say."""

    def __init__(self, schedule: Schedule, mode: str, counter_offset: int = 0, lag: int | None = None) -> None:
        self.schedule = schedule
        lagged = mode == "lagged" and schedule.kind == "periodic" and not schedule.offline
        self.lag = lag if lag is not None else int(schedule.period) if lagged else None
        """The oldest batch is distilled once more than `lag` are kept (lagged: the schedule's S unless given);
        None: all kept batches in rounds at the schedule's refresh steps."""
        self.counter_offset = counter_offset
        """Rounds fall at the refresh steps of a counter started this many steps late."""
        self.kept: deque[KeptBatch] = deque()
        self.nbytes = 0
        self.peak_nbytes = 0
        self.peak_batches = 0

    def __len__(self) -> int:
        return len(self.kept)

    def push(self, batch: Batch, teacher_steps: int) -> KeptBatch:
        entry = KeptBatch(batch.indices.to("cpu", torch.int32), batch.seed, teacher_steps)
        self.kept.append(entry)
        self.nbytes += entry.nbytes
        self.peak_nbytes = max(self.peak_nbytes, self.nbytes)
        self.peak_batches = max(self.peak_batches, len(self.kept))
        return entry

    def due(self, step: int) -> list[KeptBatch]:
        """The batches to distil after global step `step`, oldest first."""
        if self.lag is not None:
            count = max(0, len(self.kept) - self.lag)
        else:
            count = len(self.kept) if self.schedule.is_refresh(step - self.counter_offset) else 0
        return [self._pop() for _ in range(count)]

    def drain(self) -> list[KeptBatch]:
        return [self._pop() for _ in range(len(self.kept))]

    def _pop(self) -> KeptBatch:
        entry = self.kept.popleft()
        self.nbytes -= entry.nbytes
        return entry

    def state_dict(self) -> dict[str, Any]:
        return {
            "kept": [(e.indices, e.seed, e.teacher_steps) for e in self.kept],
            "peak_nbytes": self.peak_nbytes,
            "peak_batches": self.peak_batches,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kept = deque(KeptBatch(indices.cpu(), seed, steps) for indices, seed, steps in state["kept"])
        self.nbytes = sum(e.nbytes for e in self.kept)
        self.peak_nbytes = state["peak_nbytes"]
        self.peak_batches = state["peak_batches"]


class SpacedDistillation(Method):
    """The spaced-KD skeleton: fresh batches train the teacher side; kept batches are distilled later.

    Subclasses say what a massed step, a fresh (teacher-side) step and a replay (distillation)
    step are; the timing — queue, tail, counters — lives here once.
    """

    strength_name = "alpha"

    def __init__(self, cfg: DistillConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.cfg: DistillConfig = cfg
        self.queue = ReplayQueue(self.schedule, cfg.replay, ctx.steps_per_epoch if cfg.late_counter else 0, self.lead)
        self.fresh_steps = 0
        self.distill_steps = 0
        self.replay_rounds = 0
        self.undistilled = 0
        self.lead_min: int | None = None
        self.lead_max: int | None = None

    @property
    def lead(self) -> int | None:
        """A massed run's constant teacher lead in steps, held by lagging the student's batches (None: the
        schedule's timing). Online KD's matched-lead control has one (:attr:`OnlineKDConfig.teacher_lead`)."""
        return None

    @property
    def distils_at_once(self) -> bool:
        """Massed without a lead: each fresh batch is distilled from the teacher's outputs before its step on it."""
        return self.schedule.massed and not self.lead

    @abstractmethod
    def massed_step(self, batch: Batch) -> dict[str, StepStats]:
        """Interval 0: learn and distil on the same fresh batch."""

    @abstractmethod
    def fresh_step(self, batch: Batch, distilled_now: bool) -> dict[str, StepStats]:
        """Spaced: the teacher side learns from a fresh batch (`distilled_now`: it is replayed in this very step)."""

    @abstractmethod
    def replay_step(self, batch: Batch) -> dict[str, StepStats]:
        """Spaced: distil on a rebuilt batch, the teacher side now ahead."""

    def train_step(self, batch: Batch, step: int) -> dict[str, StepStats]:
        self.fresh_steps += 1
        if self.distils_at_once:
            self._note_lead(0)
            self.distill_steps += 1
            return self.massed_step(batch)
        entry = self.queue.push(batch, self.fresh_steps)
        due = self.queue.due(step)
        stats = self.fresh_step(batch, any(kept is entry for kept in due))
        if due:
            self.replay_rounds += 1
            merge_stats(stats, self._replay(due))
        return stats

    def end_epoch(self, epoch: int) -> dict[str, StepStats]:
        if epoch != self.ctx.epochs - 1 or not len(self.queue):
            return {}
        if not self.cfg.distill_tail:
            self.undistilled = len(self.queue.drain())
            return {}
        self.replay_rounds += 1
        return self._replay(self.queue.drain())

    def _replay(self, kept: list[KeptBatch]) -> dict[str, StepStats]:
        stats: dict[str, StepStats] = {}
        for entry in kept:
            self._note_lead(self.fresh_steps - entry.teacher_steps)
            self.distill_steps += 1
            merge_stats(stats, self.replay_step(self.ctx.stream.rebuild(entry.indices.long(), entry.seed)))
        return stats

    def _note_lead(self, lead: int) -> None:
        self.lead_min = lead if self.lead_min is None else min(self.lead_min, lead)
        self.lead_max = lead if self.lead_max is None else max(self.lead_max, lead)

    def counters(self) -> dict[str, float | None]:
        return {
            "fresh_steps": self.fresh_steps,
            "distill_steps": self.distill_steps,
            "replay_rounds": self.replay_rounds,
            "teacher_lead_min": self.lead_min,
            "teacher_lead_max": self.lead_max,
            "replay_peak_batches": self.queue.peak_batches,
            "replay_peak_bytes": self.queue.peak_nbytes,
            "undistilled_batches": self.undistilled,
        }

    def extra_state(self) -> dict[str, Any]:
        return {
            "queue": self.queue.state_dict(),
            "counts": (self.fresh_steps, self.distill_steps, self.replay_rounds, self.undistilled),
            "lead": (self.lead_min, self.lead_max),
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.queue.load_state_dict(state["queue"])
        self.fresh_steps, self.distill_steps, self.replay_rounds, self.undistilled = state["counts"]
        self.lead_min, self.lead_max = state["lead"]

