"""A DeiT-Tiny-like vision transformer for 32 px and 64 px inputs, shaped as a StagedNet.

Patches of ``image_size // 8`` pixels give an 8 x 8 grid of tokens at either input size; 12
pre-norm transformer blocks of width 192 (3 heads) follow, and the head reads the average of the
final (layer-normed) tokens rather than a class token, so the StagedNet pool-and-classify head
applies unchanged.

Stages are the four groups of three blocks. Between stages the tokens travel as a token map
(N, D, h, w): the grid of patch tokens with the embedding as channels. So a stage output looks
like a CNN feature map with ``stage_channels[i] = D`` channels, and what methods do to CNN
stages (dropout after a stage, a self-KD exit that pools and classifies a stage's map) acts on
the ViT's tokens without special cases.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spacing.errors import ConfigError
from spacing.models.staged import StagedNet

DEPTH, STAGES, MLP_RATIO, HEAD_DIM, GRID = 12, 4, 4, 64, 8


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> linear embedding + learned position embedding, as a token map."""

    def __init__(self, in_channels: int, dim: int, patch: int, grid: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.position = nn.Parameter(torch.zeros(1, dim, grid, grid))
        nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        return self.project(x) + self.position


class Block(nn.Module):
    """Pre-norm multi-head self-attention and MLP, each with a residual connection, on (N, tokens, D)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, MLP_RATIO * dim), nn.GELU(), nn.Linear(MLP_RATIO * dim, dim))

    def forward(self, tokens: Tensor) -> Tensor:
        normed = self.norm1(tokens)
        tokens = tokens + self.attention(normed, normed, normed, need_weights=False)[0]
        return tokens + self.mlp(self.norm2(tokens))


class TokenStage(nn.Module):
    """Transformer blocks applied to a token map (N, D, h, w); returns a token map of the same shape."""

    def __init__(self, blocks: list[Block], norm: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.norm = norm

    def forward(self, x: Tensor) -> Tensor:
        n, d, h, w = x.shape
        tokens = self.norm(self.blocks(x.flatten(2).transpose(1, 2)))
        return tokens.transpose(1, 2).reshape(n, d, h, w)


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def vit_tiny(num_classes: int, in_channels: int, image_size: int, width: int = 192) -> StagedNet:
    """`width` is the embedding size D (192 in DeiT-Tiny); heads = D / 64 (at least one)."""
    if image_size % GRID:
        raise ConfigError(f"model=vit_tiny needs images whose size is a multiple of {GRID} px; got {image_size} px (use 32 or 64 px data).")
    heads = max(1, width // HEAD_DIM)
    per_stage = DEPTH // STAGES
    stem = PatchEmbed(in_channels, width, image_size // GRID, GRID)
    stages: list[nn.Module] = [
        TokenStage([Block(width, heads) for _ in range(per_stage)], nn.LayerNorm(width) if i == STAGES - 1 else nn.Identity())
        for i in range(STAGES)
    ]
    model = StagedNet(stem, stages, [width] * STAGES, num_classes)
    model.apply(_init)
    return model
