"""Network level: spaced online knowledge distillation, and offline KD.

A teacher and a student (same or different architectures) train on one stream. The teacher
takes a cross-entropy step on every fresh batch; the student distils on each batch later, when
the teacher is ahead (see spacing.methods.distill for the timing). The student's loss is
``(1 - alpha) * CE + alpha * soft(T) + beta * ||proj(f_student) - f_teacher||`` where f are the
pooled penultimate features and proj a small MLP to the teacher's feature size.

The matched-lead control (``method.control=matched``, kind ``matched_lead``) is massed online KD
whose teacher is S steps ahead (``method.teacher_lead``) on a stream of its own: the training split
in another order (:class:`OwnStream`), so the student's batch is not one the teacher learned S steps
before. The student still reads the run's stream, S steps behind the teacher, so every
distillation falls at the step, teacher lead, learning rate and epoch boundary of the spaced
cell's: with ``method.teacher_stream=student`` the control trains exactly as that cell.

Offline KD (``interval=inf``) trains in two phases, as users and the paper know it: the teacher
trains all ``trainer.epochs`` epochs first; then the student trains as many epochs, with its own
LR schedule, against the frozen teacher in eval mode. The run therefore has 2 x trainer.epochs
epochs, each evaluated.
"""

from __future__ import annotations

import contextlib
import copy
from itertools import chain
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spacing.config import OnlineKDConfig
from spacing.data import Batch, TrainStream, derive_seed
from spacing.methods.base import MethodContext, StepStats
from spacing.methods.distill import SpacedDistillation, feature_loss, frozen_bn_stats, soft_loss


TEACHER_STREAM = 0x7EAC
"""Mixed into the run's seed for the order of a leading teacher's own stream."""


class OwnStream:
    """The teacher's own stream: the run's training batches (same data, batch size, augmentation) in
    another order, that of the stream seeded with `seed`; batch `step` (0-based, over all epochs)."""

    def __init__(self, stream: TrainStream, seed: int) -> None:
        self.stream = stream
        self.order = copy.copy(stream)
        self.order.seed = seed
        self.epoch: int | None = None
        self.plan: list[tuple[Tensor, int]] = []

    def batch(self, step: int) -> Batch:
        epoch, position = divmod(step, self.stream.steps_per_epoch)
        if epoch != self.epoch:
            self.epoch, self.plan = epoch, list(self.order.plan(epoch))
        return self.stream.rebuild(*self.plan[position])


class OnlineKD(SpacedDistillation):
    config = OnlineKDConfig
    targets = ("student", "teacher")
    main_target = "student"
    supports_offline: ClassVar[bool] = True
    shared_targets = ("teacher",)

    def __init__(self, cfg: OnlineKDConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.cfg: OnlineKDConfig = cfg
        self.teacher = ctx.build_model(cfg.teacher)
        self.student = ctx.build_model(cfg.student)
        hidden = cfg.projection_hidden or (self.student.feature_dim + self.teacher.feature_dim) // 2
        self.projection = nn.Sequential(
            nn.Linear(self.student.feature_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, self.teacher.feature_dim),
        ).to(ctx.device)
        self.teacher_optimizer = ctx.build_optimizer(self.teacher.parameters())
        self.student_optimizer = ctx.build_optimizer(chain(self.student.parameters(), self.projection.parameters()))
        self.fresh_outputs: tuple[Tensor, Tensor] | None = None
        """The teacher's logits and features of the latest fresh batch, from before its step on it."""
        self.teacher_stream: OwnStream | None = None
        """With a teacher lead: the stream the teacher learns from (the student reads the run's)."""
        if cfg.teacher_lead:
            own = cfg.teacher_stream == "own"
            self.teacher_stream = OwnStream(ctx.stream, derive_seed(ctx.stream.seed, TEACHER_STREAM) if own else ctx.stream.seed)

    @property
    def lead(self) -> int | None:
        return self.cfg.teacher_lead or None

    def modules(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher, "student": self.student, "projection": self.projection}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"student": self.student_optimizer, "teacher": self.teacher_optimizer}

    @property
    def offline(self) -> bool:
        return self.schedule.offline

    @property
    def teacher_steps_total(self) -> int:
        """Offline KD: the steps of the teacher's phase (all of trainer.epochs)."""
        return self.ctx.epochs * self.ctx.steps_per_epoch

    @property
    def epochs(self) -> int:
        return 2 * self.ctx.epochs if self.offline else self.ctx.epochs

    def scheduled_optimizers(self, epoch: int) -> tuple[str, ...]:
        if not self.offline:
            return super().scheduled_optimizers(epoch)
        return ("teacher",) if epoch < self.ctx.epochs else ("student",)

    def train_mode(self) -> None:
        super().train_mode()
        if self.offline and self.fresh_steps >= self.teacher_steps_total:
            self.teacher.eval()  # the student phase of offline KD: a frozen teacher in eval mode

    def train_step(self, batch: Batch, step: int) -> dict[str, StepStats]:
        if not self.offline:
            return super().train_step(batch, step)
        if step < self.teacher_steps_total:
            self.fresh_steps += 1
            return self._teacher_step(batch)
        self.distill_steps += 1
        with torch.no_grad(), self.autocast():
            logits, features = self.teacher.forward_with_features(batch.images)
        return self._student_step(batch, logits, features)

    def share(self, leader: OnlineKD) -> None:
        self.teacher, self.teacher_optimizer = leader.teacher, leader.teacher_optimizer

    def _teacher_step(self, batch: Batch) -> dict[str, StepStats]:
        """The teacher's cross-entropy step on a fresh batch, its outputs before the step kept for a massed student.

        In a fused group the leader takes it once for all (a follower's is a no-op).
        """
        if self.following:
            return {}
        with self.autocast():
            logits, features = self.teacher.forward_with_features(batch.images)
            loss = F.cross_entropy(logits, batch.labels)
        self.optimize(self.teacher_optimizer, loss)
        self.fresh_outputs = (logits.detach(), features.detach())
        return {"teacher": StepStats.of(loss, logits, batch.labels)}

    def _student_step(self, batch: Batch, teacher_logits: Tensor, teacher_features: Tensor) -> dict[str, StepStats]:
        cfg = self.cfg
        with self.autocast():
            logits, features = self.student.forward_with_features(batch.images)
            loss = (
                (1 - cfg.alpha) * F.cross_entropy(logits, batch.labels)
                + cfg.alpha * soft_loss(logits, teacher_logits, cfg.temperature, cfg.soft_loss)
                + cfg.beta * feature_loss(self.projection(features), teacher_features)
            )
        self.optimize(self.student_optimizer, loss)
        return {"student": StepStats.of(loss, logits, batch.labels)}

    def massed_step(self, batch: Batch) -> dict[str, StepStats]:
        stats = self._teacher_step(batch)
        logits, features = (self.leader or self).fresh_outputs
        return {**stats, **self._student_step(batch, logits, features)}

    def fresh_step(self, batch: Batch, distilled_now: bool) -> dict[str, StepStats]:
        if self.teacher_stream is not None and not self.following:
            batch = self.teacher_stream.batch(self.fresh_steps - 1)
        return self._teacher_step(batch)

    def replay_step(self, batch: Batch) -> dict[str, StepStats]:
        bn_stats = contextlib.nullcontext() if self.cfg.replay_teacher_bn else frozen_bn_stats(self.teacher)
        with torch.no_grad(), bn_stats, self.autocast():
            logits, features = self.teacher.forward_with_features(batch.images)
        return self._student_step(batch, logits, features)

    def predict(self, images: Tensor) -> dict[str, Tensor]:
        own = {"student": self.student(images)}
        return own if self.following else {**own, "teacher": self.teacher(images)}
