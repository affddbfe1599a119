"""Network level: spaced self knowledge distillation (Be Your Own Teacher).

One network with an exit after every stage: shallow exits get a feature adapter (1x1 conv to
the deepest stage's width, BatchNorm, ReLU, global pooling) and a linear classifier; the
deepest exit is the model's own classifier and teaches the others. The full loss is
``CE(deepest) + sum_i [(1 - alpha) * CE(exit_i) + alpha * soft(exit_i, deepest, T)
+ beta * ||a_i(f_i) - f_deepest||]`` over the shallow exits, with the deepest outputs detached.
The feature term covers every shallow exit with ``a_i`` the identity, or (``feature_loss=paper``)
every shallow exit but the deepest shallow one, each with a trained Linear ``a_i``.
Spaced: fresh batches train only the deepest exit's cross-entropy; kept batches are replayed
with the full loss when the network is ahead of them (spacing.methods.distill).
Targets: ``exit1..exitK`` (K = number of stages; exitK is the deepest) and ``ensemble``: the
mean of the exits' softmax probabilities (``ensemble=probs``) or of their logits
(``ensemble=logits``, the paper). An exit's train loss in history.csv is its own term of the
full loss (the deepest exit's is its cross-entropy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spacing.config import SelfKDConfig
from spacing.data import Batch
from spacing.methods.base import MethodContext, StepStats
from spacing.methods.distill import SpacedDistillation, feature_loss, soft_loss
from spacing.models import StagedNet, entry_point


class MultiExitNet(nn.Module):
    """A StagedNet with an adapter and a classifier on every stage but the last.

    ``feature_adapters[i]`` maps shallow exit i's feature before the feature loss; exits beyond
    the list get no feature loss (see :func:`feature_adapters`).
    """

    def __init__(self, backbone: StagedNet, num_classes: int, feature_loss: str = "all") -> None:
        super().__init__()
        self.backbone = backbone
        width = backbone.feature_dim
        self.adapters = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
            for c in backbone.stage_channels[:-1]
        )
        self.heads = nn.ModuleList(nn.Linear(width, num_classes) for _ in backbone.stage_channels[:-1])
        self.feature_adapters = feature_adapters(len(backbone.stage_channels) - 1, width, feature_loss)

    @property
    def num_exits(self) -> int:
        return len(self.backbone.stage_channels)

    @entry_point
    def exits(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Logits and pooled features of every exit, shallowest first (the last is the deepest)."""
        maps = self.backbone.stage_outputs(x)
        features = [self.backbone.pool(adapter(m)) for adapter, m in zip(self.adapters, maps[:-1])]
        features.append(self.backbone.pool(maps[-1]))
        logits = [head(f) for head, f in zip(self.heads, features[:-1])]
        logits.append(self.backbone.classifier(features[-1]))
        return logits, features


def feature_adapters(shallow_exits: int, width: int, rule: str) -> nn.ModuleList:
    """The maps a shallow exit's feature goes through before the feature loss, shallowest first.

    ``all``: an identity for every shallow exit. ``paper``: a Linear(width, width) for every
    shallow exit but the deepest shallow one; the self KD script skips that one (on a ResNet the
    two shallowest of its three shallow exits get the term).
    """
    if rule == "paper":
        return nn.ModuleList(nn.Linear(width, width) for _ in range(shallow_exits - 1))
    return nn.ModuleList(nn.Identity() for _ in range(shallow_exits))


def exit_losses(
    logits: list[Tensor], features: list[Tensor], labels: Tensor, cfg: SelfKDConfig, adapters: nn.ModuleList
) -> list[Tensor]:
    """Each exit's own term of the BYOT loss, shallowest first (the deepest, last, is plain CE).

    Shallow exit i's feature term is ``beta * ||adapters[i](f_i) - f_deepest||``; exits past the
    end of `adapters` have none.
    """
    deep_logits, deep_features = logits[-1].detach(), features[-1].detach()
    shallow = []
    for i, (exit_logits, exit_features) in enumerate(zip(logits[:-1], features[:-1])):
        term = (1 - cfg.alpha) * F.cross_entropy(exit_logits, labels) + cfg.alpha * soft_loss(
            exit_logits, deep_logits, cfg.temperature, cfg.soft_loss
        )
        if i < len(adapters):
            term = term + cfg.beta * feature_loss(adapters[i](exit_features), deep_features)
        shallow.append(term)
    return [*shallow, F.cross_entropy(logits[-1], labels)]


def self_distillation_loss(
    logits: list[Tensor], features: list[Tensor], labels: Tensor, cfg: SelfKDConfig, adapters: nn.ModuleList
) -> Tensor:
    """The full BYOT loss over all exits (the deepest is last): the sum of their terms."""
    return torch.stack(exit_losses(logits, features, labels, cfg, adapters)).sum()


def ensemble_logits(logits: list[Tensor], rule: str) -> Tensor:
    """The exits' ensemble: log of their mean softmax probabilities (``probs``) or their mean logits (``logits``)."""
    if rule == "logits":
        return torch.stack(logits).mean(0)
    return torch.stack([F.softmax(x, dim=1) for x in logits]).mean(0).log()


class SelfKD(SpacedDistillation):
    def __init__(self, cfg: SelfKDConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        self.cfg: SelfKDConfig = cfg
        self.net = ctx.prepare(MultiExitNet(ctx.build_model(None), ctx.num_classes, cfg.feature_loss))
        self.optimizer = ctx.build_optimizer(self.net.parameters())
        self.targets = (*(f"exit{i + 1}" for i in range(self.net.num_exits)), "ensemble")

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"net": self.optimizer}

    def _full_step(self, batch: Batch) -> dict[str, StepStats]:
        with self.autocast():
            logits, features = self.net.exits(batch.images)
            terms = exit_losses(logits, features, batch.labels, self.cfg, self.net.feature_adapters)
        self.optimize(self.optimizer, torch.stack(terms).sum())
        return {f"exit{i + 1}": StepStats.of(term, out, batch.labels) for i, (term, out) in enumerate(zip(terms, logits))}

    def massed_step(self, batch: Batch) -> dict[str, StepStats]:
        return self._full_step(batch)

    def fresh_step(self, batch: Batch, distilled_now: bool) -> dict[str, StepStats]:
        every_exit = self.cfg.fresh_steps == "paper"
        if every_exit and distilled_now:
            # The script forwards every batch through all exits first (BatchNorm running
            # statistics see it); a refresh step's own batch then trains only in its round.
            with torch.no_grad(), self.autocast():
                self.net.exits(batch.images)
            return {}
        with self.autocast():
            logits = self.net.exits(batch.images)[0][-1] if every_exit else self.net.backbone(batch.images)
            loss = F.cross_entropy(logits, batch.labels)
        self.optimize(self.optimizer, loss)
        return {f"exit{self.net.num_exits}": StepStats.of(loss, logits, batch.labels)}

    def replay_step(self, batch: Batch) -> dict[str, StepStats]:
        return self._full_step(batch)

    def predict(self, images: Tensor) -> dict[str, Tensor]:
        logits, _ = self.net.exits(images)
        out = {f"exit{i + 1}": exit_logits for i, exit_logits in enumerate(logits)}
        out["ensemble"] = ensemble_logits(logits, self.cfg.ensemble)
        return out
