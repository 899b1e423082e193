"""Patch discriminators for the GAN stage (paper stage 3: "a 3-D discriminator").

`PatchDiscriminator3D` is the PatchGAN of pix2pix / taming-transformers with 3-D convolutions,
as used by video VAEs (MAGVIT, Open-Sora-Plan `NLayerDiscriminator3D`): a stack of 4x4x4 convs,
stride 2 in space for the first `n_layers` convs and stride 2 in time for the first
`temporal_downsample` of them, LeakyReLU(0.2), a norm layer after every conv but the first and
last, and a 1-channel map of patch logits at the end.

Design choices:

* **Norm: GroupNorm** (default). Training runs at batch 1 per GPU with mixed resolutions and clip
  lengths; BatchNorm statistics over one clip are noise, differ between real and fake batches
  (a cue the discriminator can cheat with), and under DDP its running-stat buffers are
  re-broadcast on every forward, which breaks the two-forwards-per-iteration GAN pattern
  ("variable modified by an inplace operation") unless one switches to SyncBatchNorm. GroupNorm
  is per sample, has no buffers and needs no synchronisation. `norm="batch"` and `"none"` remain
  available for comparisons.
* **Time padding (1, 2) instead of 1 per side.** A 4-tap kernel with 3 frames of zero padding
  maps T frames to `(T - 1) // s + 1`: any T >= 1 works, T = 1 + 4k keeps the 1 + 2k' form under
  stride 2 (17 -> 9 -> 5), and T = 1 (an image) stays one frame at every layer, the image being
  seen by one temporal slice of each kernel. No layer ever has to switch kernels by clip length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PatchDiscriminator3D", "PatchDiscriminator2D", "build_discriminator"]

_KERNEL = 4
_TIME_PAD = (1, 2)  # frames of zero padding before / after; see the module docstring


class _TimePaddedConv3d(nn.Conv3d):
    """Conv3d with spatial padding 1 and asymmetric time padding `_TIME_PAD` (zeros)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = F.pad(x, (1, 1, 1, 1, *_TIME_PAD))
        return super().forward(x)


def _norm(kind: str, channels: int, dims: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(math.gcd(32, channels), channels, eps=1e-6, affine=True)
    if kind == "batch":
        return nn.BatchNorm3d(channels) if dims == 3 else nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'group', 'batch' or 'none', got {kind!r}")


def _conv(dims: int, c_in: int, c_out: int, stride: tuple[int, ...], bias: bool) -> nn.Module:
    if dims == 3:
        return _TimePaddedConv3d(c_in, c_out, _KERNEL, stride=stride, padding=0, bias=bias)
    return nn.Conv2d(c_in, c_out, _KERNEL, stride=stride, padding=1, bias=bias)


def _init_weights(module: nn.Module) -> None:
    """The pix2pix / taming init: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.Conv3d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.GroupNorm, nn.BatchNorm2d, nn.BatchNorm3d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class _PatchDiscriminator(nn.Module):
    """The PatchGAN stack shared by the 2-D and 3-D variants."""

    dims: int = 3

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        n_layers: int = 3,
        norm: str = "group",
        temporal_downsample: int = 2,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.n_layers = n_layers
        self.temporal_downsample = temporal_downsample if self.dims == 3 else 0
        bias = norm != "batch"  # an affine BatchNorm makes a conv bias redundant

        layers: list[nn.Module] = [
            _conv(self.dims, in_channels, base_channels, self._stride(0, 2), bias=True),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        c_out = base_channels
        # n_layers strided convs in all, then one stride-1 conv, as in the classic code.
        for i in range(1, n_layers + 1):
            c_in, c_out = c_out, base_channels * min(2**i, 8)
            space_stride = 2 if i < n_layers else 1
            layers += [
                _conv(self.dims, c_in, c_out, self._stride(i, space_stride), bias=bias),
                _norm(norm, c_out, self.dims),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(_conv(self.dims, c_out, 1, self._stride(n_layers + 1, 1), bias=True))
        self.layers = nn.Sequential(*layers)
        self.apply(_init_weights)

    def _stride(self, index: int, space: int) -> tuple[int, ...]:
        if self.dims == 2:
            return (space, space)
        time = 2 if index < self.temporal_downsample and space == 2 else 1
        return (time, space, space)

    def output_spatial_size(self, size: int) -> int:
        """Side of the logit map for an input side `size` (each 4-tap conv has padding 1)."""
        for i in range(self.n_layers + 2):
            stride = 2 if i < self.n_layers else 1
            size = (size + 2 - _KERNEL) // stride + 1
        return size

    def output_frames(self, frames: int) -> int:
        """Frames of the logit map for an input of `frames` frames (3-D variant)."""
        for _ in range(min(self.temporal_downsample, self.n_layers)):
            frames = (frames - 1) // 2 + 1
        return frames

    def _check_size(self, shape: Sequence[int]) -> None:
        h, w = shape[-2:]
        if min(self.output_spatial_size(h), self.output_spatial_size(w)) < 1:
            raise ValueError(
                f"input {h}x{w} is too small for a {self.n_layers}-layer patch discriminator; "
                f"use larger frames or fewer layers (n_layers=3 needs at least 24x24)"
            )


class PatchDiscriminator3D(_PatchDiscriminator):
    """3-D PatchGAN over videos: (B, C, T, H, W) -> patch logits (B, 1, T', H', W').

    Any T >= 1 is accepted (see the module docstring); a 4-D image batch (B, C, H, W) is treated
    as T = 1 and gets a 4-D logit map back. With the defaults (n_layers=3, temporal_downsample=2)
    a 17x256x256 clip gives a 5x30x30 map and a 32x32 image a 1x2x2 map.
    """

    dims = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logit map; same rank as the input."""
        image = x.ndim == 4
        if image:
            x = x.unsqueeze(2)
        if x.ndim != 5:
            raise ValueError(f"expected (B, C, T, H, W) or (B, C, H, W), got {tuple(x.shape)}")
        self._check_size(x.shape)
        out = self.layers(x)
        return out.squeeze(2) if image else out


class PatchDiscriminator2D(_PatchDiscriminator):
    """The classic 2-D PatchGAN for the image stage: (B, C, H, W) -> (B, 1, H', W').

    A video (B, C, T, H, W) is judged frame by frame (frames folded into the batch) and returns
    (B, 1, T, H', W'), so the same loss code serves both stages. `temporal_downsample` is ignored.
    """

    dims = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logit map; same rank as the input."""
        if x.ndim == 4:
            self._check_size(x.shape)
            return self.layers(x)
        if x.ndim != 5:
            raise ValueError(f"expected (B, C, H, W) or (B, C, T, H, W), got {tuple(x.shape)}")
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        self._check_size(frames.shape)
        out = self.layers(frames)
        return out.reshape(b, t, *out.shape[1:]).transpose(1, 2)


def build_discriminator(
    kind: str = "3d",
    in_channels: int = 3,
    base_channels: int = 64,
    n_layers: int = 3,
    norm: str = "group",
    temporal_downsample: int = 2,
) -> PatchDiscriminator3D | PatchDiscriminator2D:
    """Build a patch discriminator: `kind="3d"` for the video GAN stage, `"2d"` for images."""
    kwargs = dict(
        in_channels=in_channels, base_channels=base_channels, n_layers=n_layers, norm=norm
    )
    if kind == "3d":
        return PatchDiscriminator3D(temporal_downsample=temporal_downsample, **kwargs)
    if kind == "2d":
        return PatchDiscriminator2D(**kwargs)
    raise ValueError(f"kind must be '3d' or '2d', got {kind!r}")
