"""Parallel atrous convs (PAC) at the end of the encoder, where time is fully compressed."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .conv import make_frame_conv


class ParallelAtrousConv(nn.Module):
    """A 1x1 conv and dilated 3x3 convs in parallel, fused by a 1x1 conv.

    Each conv maps all channels to ``out_width`` per branch. Their outputs are regrouped branch by
    branch (all keyframe parts in conv order, then all temporal parts) before the fusing conv, so
    that the branches stay apart as in the released checkpoints.
    """

    def __init__(self, in_channels: int, out_width: int, num_branches: int, dilations: Sequence[int] = (1, 3, 6, 9, 12)) -> None:
        super().__init__()
        self.out_width = out_width
        self.num_branches = num_branches
        self.dilations = tuple(dilations)
        total_out = out_width * num_branches
        self.convs = nn.ModuleList([make_frame_conv(in_channels, total_out, 1)])
        self.convs.extend(make_frame_conv(in_channels, total_out, 3, dilation=d) for d in self.dilations)
        self.fuse = make_frame_conv(total_out * len(self.convs), total_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        per_conv = [conv(x).split(self.out_width, dim=1) for conv in self.convs]
        by_branch = [part for branch in range(self.num_branches) for part in (parts[branch] for parts in per_conv)]
        return self.fuse(torch.cat(by_branch, dim=1))
