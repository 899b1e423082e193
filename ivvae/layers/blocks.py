"""Residual blocks: 3-D (branch convs, time inside) or 2-D (dense per-frame convs)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .conv import BranchConv, make_frame_conv
from .norm import RMSNorm


def make_conv(in_width: int, out_width: int, branches: Sequence[str], temporal: bool, kernel_size: int, group_size: int) -> nn.Module:
    """A conv between branched features of ``in_width`` and ``out_width`` channels per branch.

    ``temporal``: branch convs (each branch its own kind); otherwise one dense per-frame 2-D conv
    over all channels, used once time is fully compressed.
    """
    n = len(branches)
    if temporal:
        return BranchConv(in_width * n, out_width, branches, kernel_size, group_size)
    return make_frame_conv(in_width * n, out_width * n, kernel_size)


class ResidualBlock(nn.Module):
    """norm, SiLU, conv, norm, SiLU, dropout, conv, plus a shortcut (1x1 conv where width changes)."""

    def __init__(
        self,
        in_width: int,
        out_width: int,
        branches: Sequence[str],
        temporal: bool,
        group_size: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        n = len(branches)
        self.norm1 = RMSNorm(in_width, n)
        self.conv1 = make_conv(in_width, out_width, branches, temporal, 3, group_size)
        self.norm2 = RMSNorm(out_width, n)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = make_conv(out_width, out_width, branches, temporal, 3, group_size)
        self.shortcut = make_conv(in_width, out_width, branches, temporal, 1, group_size) if in_width != out_width else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.dropout(self.act(self.norm2(h))))
        return self.shortcut(x) + h
