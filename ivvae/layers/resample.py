"""Down- and upsampling in space, and in time for the keyframe and temporal branches.

In time, the video's first frame is never resampled (it is its own latent frame); the frames
after it come in whole groups, so pairs never straddle a group or a chunk boundary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv import FrameConv2d, TimeConv3d, branch_names, make_frame_conv
from .temporal import StreamingModule


def _split_first_frame(layer: StreamingModule, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Separate the video's first frame (if this call starts the video) from the grouped frames."""
    if layer.starts_video():
        return x[:, :, :1], x[:, :, 1:]
    return None, x


def _join_first_frame(first: torch.Tensor | None, rest: torch.Tensor) -> torch.Tensor:
    return rest if first is None else torch.cat([first, rest], dim=2)


def upsample_nearest_2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest 2x in height and width (equals ``nearest-exact`` at scale 2).

    Written with ``expand`` instead of ``F.interpolate``: the compiled backward of nearest
    interpolation under bf16 autocast on CPU returned zero gradients.
    """
    b, c, t, h, w = x.shape
    return x[:, :, :, :, None, :, None].expand(b, c, t, h, 2, w, 2).reshape(b, c, t, 2 * h, 2 * w)


class Downsample(StreamingModule, nn.Module):
    """Halve height and width of each branch; with ``temporal``, also halve time.

    In time the keyframe branch (branch 0 of a two-branch model) keeps frames 0, 2, 4, ... of each
    group and every other branch goes through a kernel-2, stride-2 conv over frame pairs.
    """

    def __init__(self, width: int, num_branches: int, temporal: bool) -> None:
        super().__init__()
        self.width = width
        names = branch_names(num_branches)
        # Zero-pad one pixel right and bottom (in forward), then a stride-2 3x3 conv per frame.
        self.spatial = nn.ModuleDict({name: FrameConv2d(width, width, 3, stride=2) for name in names})
        self.temporal = temporal
        self.keyframe_selects = num_branches == 2
        if temporal:
            convolved = names[1:] if self.keyframe_selects else names
            self.time_convs = nn.ModuleDict({name: TimeConv3d(width, width, (2, 1, 1), stride=(2, 1, 1)) for name in convolved})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 1, 0, 1))
        parts = [down(part) for down, part in zip(self.spatial.values(), x.split(self.width, dim=1), strict=True)]
        if self.temporal:
            parts = [self._downsample_time(name, part) for name, part in zip(self.spatial.keys(), parts, strict=True)]
            self.mark_seen()
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def _downsample_time(self, name: str, x: torch.Tensor) -> torch.Tensor:
        first, rest = _split_first_frame(self, x)
        if rest.shape[2]:
            rest = self.time_convs[name](rest) if name in self.time_convs else rest[:, :, ::2]
        return _join_first_frame(first, rest)


class Upsample(StreamingModule, nn.Module):
    """Double height and width of each branch, halving its width; with ``temporal``, double time first.

    In time the keyframe branch repeats each frame; every other branch goes through a pointwise
    conv to twice its width, whose first half becomes the earlier frame of each new pair.
    """

    def __init__(self, width: int, num_branches: int, temporal: bool) -> None:
        super().__init__()
        self.width = width
        names = branch_names(num_branches)
        self.spatial = nn.ModuleDict({name: make_frame_conv(width, width // 2, 3) for name in names})
        self.temporal = temporal
        self.keyframe_repeats = num_branches == 2
        if temporal:
            convolved = names[1:] if self.keyframe_repeats else names
            self.time_convs = nn.ModuleDict({name: TimeConv3d(width, 2 * width, 1) for name in convolved})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = x.split(self.width, dim=1)
        if self.temporal:
            parts = [self._upsample_time(name, part) for name, part in zip(self.spatial.keys(), parts, strict=True)]
            self.mark_seen()
        parts = [conv(upsample_nearest_2x(part)) for conv, part in zip(self.spatial.values(), parts, strict=True)]
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def _upsample_time(self, name: str, x: torch.Tensor) -> torch.Tensor:
        first, rest = _split_first_frame(self, x)
        if rest.shape[2]:
            if name in self.time_convs:
                pairs = self.time_convs[name](rest).unflatten(1, (2, self.width))  # B 2 C T H W
                rest = pairs.permute(0, 2, 3, 1, 4, 5).flatten(2, 3)  # B C (T 2) H W
            else:
                rest = rest.repeat_interleave(2, dim=2)
        return _join_first_frame(first, rest)
