"""Per-frame spatial self-attention, one independent block per branch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv import branch_names
from .norm import RMSNorm


class SpatialAttention(nn.Module):
    """Single-head self-attention over the ``H*W`` positions of each frame, with a residual."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = RMSNorm(width, spatial_dims=2)
        self.to_qkv = nn.Conv2d(width, width * 3, 1)
        self.proj = nn.Conv2d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = x.shape
        frames_2d = x.transpose(1, 2).flatten(0, 1)  # (B T) C H W
        qkv = self.to_qkv(self.norm(frames_2d)).flatten(2).transpose(1, 2)  # (B T) HW 3C
        q, k, v = qkv.unsqueeze(1).chunk(3, dim=-1)
        attended = F.scaled_dot_product_attention(q, k, v).squeeze(1).transpose(1, 2)
        out = self.proj(attended.reshape(-1, channels, height, width))
        return x + out.unflatten(0, (batch, frames)).transpose(1, 2)


class BranchAttention(nn.Module):
    """One :class:`SpatialAttention` per branch; the branches do not attend to each other."""

    def __init__(self, width: int, num_branches: int) -> None:
        super().__init__()
        self.width = width
        self.blocks = nn.ModuleDict({name: SpatialAttention(width) for name in branch_names(num_branches)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = x.split(self.width, dim=1)
        outputs = [block(part) for block, part in zip(self.blocks.values(), parts, strict=True)]
        return torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]
