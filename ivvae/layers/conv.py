"""Per-frame 2-D convs and the branch ("dual") conv of keyframe-based temporal compression."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: Branch kinds: how a branch's convs treat time.
BRANCH_KINDS = ("2d", "group_causal", "causal")

# Per-frame convs run as 2-D convs with frames folded into the batch (a free view of a channels-last
# 3-D tensor); convs across time are native 3-D convs (TimeConv3d).


def frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, T, H, W)`` -> ``(B*T, C, H, W)``."""
    return x.transpose(1, 2).flatten(0, 1)


def batch_to_frames(x: torch.Tensor, batch: int) -> torch.Tensor:
    """``(B*T, C, H, W)`` -> ``(B, C, T, H, W)``."""
    return x.unflatten(0, (batch, -1)).transpose(1, 2)


class FrameConv2d(nn.Conv2d):
    """A 2-D conv applied to every frame of a ``(B, C, T, H, W)`` tensor (or to images)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return super().forward(x)
        return batch_to_frames(super().forward(frames_to_batch(x)), x.shape[0])


class TimeConv3d(nn.Conv3d):
    """A Conv3d whose input arrives padded in time (the temporal layers add cached or repeated frames).

    Output frame ``j`` reads input frames ``j*s .. j*s + kt - 1``. Until session 17 it stacked those
    frames along channels for one 2-D conv (batch-1 conv3d had measured 1.5 GFLOP/s on a CPU then);
    with torch 2.13 the native conv3d is faster and skips the stacked copy
    (`benchmarks/bench_train_step.py --baseline stacked-time-conv`, benchmarks/README.md).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.padding[0] != 0 or self.dilation != (1, 1, 1) or self.groups != 1:
            raise ValueError("TimeConv3d takes inputs padded in time, without dilation or groups")


def make_frame_conv(in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1) -> FrameConv2d:
    """A 'same'-padded per-frame conv."""
    return FrameConv2d(in_channels, out_channels, kernel_size, padding=dilation * (kernel_size // 2), dilation=dilation)


def make_branch_conv(kind: str, in_channels: int, out_channels: int, kernel_size: int, group_size: int) -> nn.Module:
    """One branch's conv: per-frame 2-D, group causal 3-D or causal 3-D (temporal kernel = kernel_size)."""
    from .temporal import CausalConv3d, GroupCausalConv3d  # temporal convs build on TimeConv3d above

    if kind == "2d":
        return make_frame_conv(in_channels, out_channels, kernel_size)
    if kind == "group_causal":
        return GroupCausalConv3d(in_channels, out_channels, kernel_size, kernel_size, group_size)
    if kind == "causal":
        return CausalConv3d(in_channels, out_channels, kernel_size, kernel_size)
    raise ValueError(f"unknown branch kind {kind!r}; expected one of {BRANCH_KINDS}")


def branch_names(num_branches: int) -> tuple[str, ...]:
    """Module names of the branches: the paper's keyframe/temporal halves, or one main branch."""
    return (
        ("keyframe", "temporal")
        if num_branches == 2
        else ("main",)
        if num_branches == 1
        else tuple(f"branch{i}" for i in range(num_branches))
    )


class BranchConv(nn.Module):
    """The dual conv of KTC: each branch reads *all* channels and writes its own part.

    In IV-VAE the keyframe branch is a per-frame 2-D conv and the temporal branch a group causal
    3-D conv; the outputs are concatenated, keyframe part first.
    """

    def __init__(self, in_channels: int, out_width: int, branches: Sequence[str], kernel_size: int = 3, group_size: int = 4) -> None:
        super().__init__()
        self.convs = nn.ModuleDict(
            {
                name: make_branch_conv(kind, in_channels, out_width, kernel_size, group_size)
                for name, kind in zip(branch_names(len(branches)), branches, strict=True)
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [conv(x) for conv in self.convs.values()]
        return torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]
