"""Network level: spaced online knowledge distillation.

A teacher and a student (same or different architectures) train on one stream. The teacher
takes a cross-entropy step on every fresh batch; the student distils on each batch later, when
the teacher is ahead (see spacing.methods.distill for the timing). The student's loss is
``(1 - alpha) * CE + alpha * soft(T) + beta * ||proj(f_student) - f_teacher||`` where f are the
pooled penultimate features and proj a small MLP to the teacher's feature size.
"""

from __future__ import annotations

from itertools import chain

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spacing.config import OnlineKDConfig
from spacing.data import Batch
from spacing.methods.base import MethodContext, StepStats
from spacing.methods.distill import SpacedDistillation, feature_loss, frozen_bn_stats, soft_loss


class OnlineKD(SpacedDistillation):
    targets = ("student", "teacher")

    def __init__(self, cfg: OnlineKDConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.cfg: OnlineKDConfig = cfg
        self.teacher = ctx.build_model(cfg.teacher)
        self.student = ctx.build_model(cfg.student)
        self.projection = nn.Sequential(
            nn.Linear(self.student.feature_dim, cfg.projection_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.projection_hidden, self.teacher.feature_dim),
        ).to(ctx.device)
        self.teacher_optimizer = ctx.build_optimizer(self.teacher.parameters())
        self.student_optimizer = ctx.build_optimizer(chain(self.student.parameters(), self.projection.parameters()))

    def modules(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher, "student": self.student, "projection": self.projection}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"student": self.student_optimizer, "teacher": self.teacher_optimizer}

    def _teacher_step(self, batch: Batch) -> tuple[dict[str, StepStats], Tensor, Tensor]:
        with self.autocast():
            logits, features = self.teacher.forward_with_features(batch.images)
            loss = F.cross_entropy(logits, batch.labels)
        self.optimize(self.teacher_optimizer, loss)
        return {"teacher": StepStats.of(loss, logits, batch.labels)}, logits.detach(), features.detach()

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
        stats, logits, features = self._teacher_step(batch)
        return {**stats, **self._student_step(batch, logits, features)}

    def fresh_step(self, batch: Batch) -> dict[str, StepStats]:
        return self._teacher_step(batch)[0]

    def replay_step(self, batch: Batch) -> dict[str, StepStats]:
        with torch.no_grad(), frozen_bn_stats(self.teacher), self.autocast():
            logits, features = self.teacher.forward_with_features(batch.images)
        return self._student_step(batch, logits, features)

    def predict(self, images: Tensor) -> dict[str, Tensor]:
        return {"student": self.student(images), "teacher": self.teacher(images)}
