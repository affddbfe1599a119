"""The paper's optimiser (SGD with momentum and weight decay) and the per-epoch LR schedules."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LRScheduler, MultiStepLR

from spacing.config import TrainerConfig


def build_optimizer(params: Iterable[nn.Parameter], cfg: TrainerConfig) -> torch.optim.SGD:
    """SGD with the trainer's settings; on a GPU its fused kernel (one launch for all parameters,
    and fp16 loss scaling without a host read of the overflow flag)."""
    params = list(params)
    on_gpu = bool(params) and all(p.is_cuda for p in params)
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
        fused=True if on_gpu else None,
    )


def build_lr_schedule(optimizer: torch.optim.Optimizer, cfg: TrainerConfig) -> LRScheduler:
    """A scheduler stepped once per epoch: constant, multistep (x gamma at milestones) or cosine to 0."""
    if cfg.lr_schedule == "multistep":
        return MultiStepLR(optimizer, milestones=list(cfg.milestones), gamma=cfg.gamma)
    if cfg.lr_schedule == "cosine":
        return CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return ConstantLR(optimizer, factor=1.0, total_iters=0)
