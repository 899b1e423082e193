"""Per-frame 2-D convs and the branch ("dual") conv of keyframe-based temporal compression."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: Branch kinds: how a branch's convs treat time.
BRANCH_KINDS = ("2d", "group_causal", "causal")

# Every conv below runs as a 2-D conv with frames folded into the batch. On CPU, PyTorch sends a
# batch-1 conv3d to a slow reference kernel (measured 1.5 GFLOP/s against 25-50 GFLOP/s for the
# equivalent conv2d on 2 cores), and a video is usually a batch of one.


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
    """A Conv3d without temporal padding, computed as one 2-D conv over stacked time taps.

    Output frame ``j`` reads input frames ``j*s .. j*s + kt - 1``; those ``kt`` frames are stacked
    along channels and convolved by the weight reshaped to ``(out, kt*in, k, k)``. Same numbers as
    ``nn.Conv3d`` with ``padding=(0, p, p)``, at 2-D conv speed.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.padding[0] != 0 or self.dilation != (1, 1, 1) or self.groups != 1:
            raise ValueError("TimeConv3d takes inputs padded in time, without dilation or groups")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_channels, in_channels, taps, kh, kw = self.weight.shape
        windows = x.unfold(2, taps, self.stride[0])  # B C T' H W taps
        stacked = windows.permute(0, 2, 5, 1, 3, 4).flatten(0, 1).flatten(1, 2)  # (B T') (taps C) H W
        weight = self.weight.transpose(1, 2).reshape(out_channels, taps * in_channels, kh, kw)
        out = F.conv2d(stacked, weight, self.bias, stride=self.stride[1:], padding=self.padding[1:])
        return batch_to_frames(out, x.shape[0])


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
