"""Plain cross-entropy training of one model: the reference every spaced method is compared with."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spacing.config import BaselineConfig, MethodConfig
from spacing.data import Batch
from spacing.methods.base import Method, MethodContext, StepStats


class Baseline(Method):
    """One model, one optimizer, a cross-entropy step per batch; methods that add to it extend it."""

    config = BaselineConfig
    targets = ("model",)
    main_target = "model"

    def __init__(self, cfg: MethodConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.model = ctx.build_model(None)
        self.optimizer = ctx.build_optimizer(self.model.parameters())

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": self.optimizer}

    def train_step(self, batch: Batch, step: int) -> dict[str, StepStats]:
        with self.autocast():
            logits = self.model(batch.images)
            loss = F.cross_entropy(logits, batch.labels)
        self.optimize(self.optimizer, loss)
        return {"model": StepStats.of(loss, logits, batch.labels)}

    def predict(self, images: Tensor) -> dict[str, Tensor]:
        return {"model": self.model(images)}
