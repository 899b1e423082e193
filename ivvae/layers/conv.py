"""Per-frame 2-D convs and the branch ("dual") conv of keyframe-based temporal compression."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .temporal import CausalConv3d, GroupCausalConv3d

#: Branch kinds: how a branch's convs treat time.
BRANCH_KINDS = ("2d", "group_causal", "causal")


class FrameConv2d(nn.Conv2d):
    """A 2-D conv applied to every frame of a ``(B, C, T, H, W)`` tensor.

    The weight keeps its 2-D shape; it runs as a conv3d with temporal kernel 1, which avoids
    folding time into the batch (a copy) and suits ``channels_last_3d`` tensors.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return super().forward(x)
        return F.conv3d(
            x,
            self.weight.unsqueeze(2),
            self.bias,
            stride=(1, *self.stride),
            padding=(0, *self.padding),
            dilation=(1, *self.dilation),
        )


def make_frame_conv(in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1) -> FrameConv2d:
    """A 'same'-padded per-frame conv."""
    return FrameConv2d(in_channels, out_channels, kernel_size, padding=dilation * (kernel_size // 2), dilation=dilation)


def make_branch_conv(kind: str, in_channels: int, out_channels: int, kernel_size: int, group_size: int) -> nn.Module:
    """One branch's conv: per-frame 2-D, group causal 3-D or causal 3-D (temporal kernel = kernel_size)."""
    if kind == "2d":
        return make_frame_conv(in_channels, out_channels, kernel_size)
    if kind == "group_causal":
        return GroupCausalConv3d(in_channels, out_channels, kernel_size, kernel_size, group_size)
    if kind == "causal":
        return CausalConv3d(in_channels, out_channels, kernel_size, kernel_size)
    raise ValueError(f"unknown branch kind {kind!r}; expected one of {BRANCH_KINDS}")


def branch_names(num_branches: int) -> tuple[str, ...]:
    """Module names of the branches: the paper's keyframe/temporal halves, or one main branch."""
    return ("keyframe", "temporal") if num_branches == 2 else ("main",) if num_branches == 1 else tuple(f"branch{i}" for i in range(num_branches))


class BranchConv(nn.Module):
    """The dual conv of KTC: each branch reads *all* channels and writes its own part.

    In IV-VAE the keyframe branch is a per-frame 2-D conv and the temporal branch a group causal
    3-D conv; the outputs are concatenated, keyframe part first.
    """

    def __init__(self, in_channels: int, out_width: int, branches: Sequence[str], kernel_size: int = 3, group_size: int = 4) -> None:
        super().__init__()
        self.convs = nn.ModuleDict(
            {name: make_branch_conv(kind, in_channels, out_width, kernel_size, group_size) for name, kind in zip(branch_names(len(branches)), branches)}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [conv(x) for conv in self.convs.values()]
        return torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]
