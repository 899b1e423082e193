"""Encoder and decoder of the IV-VAE family, built from one description.

The same code builds IV-VAE (a 2-D keyframe branch beside a group-causal 3-D temporal branch),
the single-branch image VAE, the causal 3-D baseline and the paper's ablations: they differ only
in their branch kinds, their temporal downsampling and two switches (see :class:`NetworkSpec`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .._checks import is_whole_number
from ..layers import BranchAttention, BranchConv, Downsample, ParallelAtrousConv, ResidualBlock, RMSNorm, Upsample, make_frame_conv
from ..layers.conv import BRANCH_KINDS


@dataclass(frozen=True)
class NetworkSpec:
    """Everything that shapes the network.

    Attributes:
        in_channels: image channels (3).
        latent_channels: Z, latent channels in all (split evenly between the branches).
        base_channels: C, the width per branch of the first stage.
        channel_multipliers: stage widths in units of C (encoder order).
        encoder_blocks / decoder_blocks: residual blocks per stage.
        branches: kind of each branch: ``"2d"`` (per frame), ``"group_causal"`` or ``"causal"``
            (3-D). Two branches: the first is the keyframe branch, the second the temporal one.
        temporal_downsample: which encoder downsamplings also halve time.
        full_compression_attention: attention after full compression (encoder end, decoder start).
        parallel_atrous: PAC encoder head (else a plain 3x3 conv).
        atrous_dilations: dilations of PAC's 3x3 convs (besides its 1x1 conv).
        dropout: dropout inside residual blocks.
    """

    in_channels: int = 3
    latent_channels: int = 16
    base_channels: int = 64
    channel_multipliers: tuple[int, ...] = (1, 2, 4, 4)
    encoder_blocks: int = 2
    decoder_blocks: int = 3
    branches: tuple[str, ...] = ("2d", "group_causal")
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    full_compression_attention: bool = True
    parallel_atrous: bool = True
    atrous_dilations: tuple[int, ...] = (1, 3, 6, 9, 12)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        # A config.json is edited by hand: a wrong type or sign must fail here, naming the field,
        # not deep inside a layer (negative tensor sizes, string formatting of "sixteen" % 2).
        for name in ("in_channels", "latent_channels", "base_channels", "encoder_blocks", "decoder_blocks"):
            _check_positive_int(name, getattr(self, name))
        _check_items("channel_multipliers", self.channel_multipliers, _is_positive_int, "positive integers, e.g. [1, 2, 4, 4]")
        _check_items("branches", self.branches, lambda kind: kind in BRANCH_KINDS, f"branch kinds out of {list(BRANCH_KINDS)}")
        if not all(isinstance(flag, bool) for flag in self.temporal_downsample):
            raise ValueError(f"temporal_downsample={list(self.temporal_downsample)!r}: expected a list of true/false flags")
        _check_items("atrous_dilations", self.atrous_dilations, _is_positive_int, "positive integers, e.g. [1, 3, 6, 9, 12]",
                     allow_empty=True)
        for name in ("full_compression_attention", "parallel_atrous"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r}: expected true or false")
        if not _is_real(self.dropout) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout!r}: expected a number in [0, 1)")
        n = len(self.branches)
        if n not in (1, 2):
            raise ValueError(f"a model has one or two branches, got {self.branches}")
        if self.latent_channels % n:
            raise ValueError(f"latent_channels={self.latent_channels} must split evenly between {n} branches")
        if len(self.temporal_downsample) != len(self.channel_multipliers) - 1:
            raise ValueError(f"temporal_downsample={list(self.temporal_downsample)} needs one entry per downsampling: "
                             f"{len(self.channel_multipliers) - 1} (len(channel_multipliers) - 1) for channel_multipliers="
                             f"{list(self.channel_multipliers)}")
        if any(self.temporal_downsample) and all(kind == "2d" for kind in self.branches) and n == 1:
            raise ValueError("temporal downsampling needs a temporal branch (a 3-D branch, or two branches)")

    @property
    def num_branches(self) -> int:
        return len(self.branches)

    @property
    def latent_width(self) -> int:
        """Latent channels contributed by each branch."""
        return self.latent_channels // self.num_branches

    @property
    def temporal_compression(self) -> int:
        return 2 ** sum(self.temporal_downsample)

    @property
    def spatial_compression(self) -> int:
        return 2 ** (len(self.channel_multipliers) - 1)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_positive_int(value: object) -> bool:
    return is_whole_number(value) and value > 0


def _check_positive_int(name: str, value: object) -> None:
    if not _is_positive_int(value):
        raise ValueError(f"{name}={value!r}: expected a positive integer")


def _check_items(name: str, values: tuple, valid: Callable[[object], bool], expected: str, allow_empty: bool = False) -> None:
    if (not values and not allow_empty) or not all(valid(value) for value in values):
        raise ValueError(f"{name}={list(values)!r}: expected a {'' if allow_empty else 'non-empty '}list of {expected}")


def as_tuple(name: str, value: object) -> tuple:
    """A list argument as a tuple; a string or a number is a config mistake, not a list (so that
    ``"branches": "2d"`` does not become the branches ``("2", "d")``)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{name}={value!r}: expected a list")
    return tuple(value)


def as_flags(name: str, value: object) -> tuple[bool, ...]:
    """A list of flags as bools; only true/false (or 0/1) count as flags, not any truthy value."""
    flags = as_tuple(name, value)
    if not all(isinstance(flag, bool) or (isinstance(flag, numbers.Integral) and flag in (0, 1)) for flag in flags):
        raise ValueError(f"{name}={list(flags)!r}: expected a list of true/false flags")
    return tuple(bool(flag) for flag in flags)


def check_latent_normalization(scaling_factor: object, shift_factor: object) -> None:
    """``scaling_factor * (z - shift_factor)`` must be an invertible map of finite numbers: a zero
    scale would give all-zero latents, a NaN one NaN latents."""
    if not _is_real(scaling_factor) or not math.isfinite(scaling_factor) or scaling_factor == 0:
        raise ValueError(f"scaling_factor={scaling_factor!r}: expected a finite non-zero number (1.0 leaves latents unscaled)")
    if not _is_real(shift_factor) or not math.isfinite(shift_factor):
        raise ValueError(f"shift_factor={shift_factor!r}: expected a finite number (0.0 leaves latents unshifted)")


class _Sequence(nn.Module):
    """Blocks applied in order, with optional gradient checkpointing of each block."""

    def __init__(self) -> None:
        super().__init__()
        self.gradient_checkpointing = False

    def run(self, blocks: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled() and not isinstance(block, (Downsample, Upsample)):
                x = self._gradient_checkpointing_func(block, x)
            else:
                x = block(x)
        return x


def _middle(width: int, branches: Sequence[str], dropout: float) -> nn.ModuleList:
    n = len(branches)
    return nn.ModuleList(
        [
            ResidualBlock(width, width, branches, False, dropout=dropout),
            BranchAttention(width, n),
            ResidualBlock(width, width, branches, False, dropout=dropout),
        ]
    )


class Encoder(_Sequence):
    """Video ``(B, 3, T, H, W)`` -> per-branch ``[mean | logvar]`` features at latent resolution.

    Stages before the last use branch convs (3-D where a branch is temporal); the last stage, the
    middle and the head are dense per-frame 2-D, since time is fully compressed there.
    """

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        n, c = spec.num_branches, spec.base_channels
        group = spec.temporal_compression  # frames per group at the current level
        self.conv_in = BranchConv(spec.in_channels, c, spec.branches, 3, group)
        self.blocks = nn.ModuleList()
        width = c
        last = len(spec.channel_multipliers) - 1
        for stage, multiplier in enumerate(spec.channel_multipliers):
            for _ in range(spec.encoder_blocks):
                self.blocks.append(ResidualBlock(width, c * multiplier, spec.branches, stage < last, group, spec.dropout))
                width = c * multiplier
                if stage == last and spec.full_compression_attention:
                    self.blocks.append(BranchAttention(width, n))
            if stage < last:
                self.blocks.append(Downsample(width, n, spec.temporal_downsample[stage]))
                group //= 2 if spec.temporal_downsample[stage] else 1
                if stage == last - 1 and spec.full_compression_attention:
                    self.blocks.append(BranchAttention(width, n))
        self.middle = _middle(width, spec.branches, spec.dropout)
        self.norm_out = RMSNorm(width, n)
        head_width = 2 * spec.latent_width
        if spec.parallel_atrous:
            self.head = ParallelAtrousConv(width * n, head_width, n, spec.atrous_dilations)
        else:
            self.head = make_frame_conv(width * n, head_width * n, 3)
        self.quant_conv = BranchConv(head_width * n, head_width, spec.branches, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.run([self.conv_in, *self.blocks, *self.middle], x)
        x = self.head(torch.nn.functional.silu(self.norm_out(x)))
        return self.quant_conv(x)


class Decoder(_Sequence):
    """Latent ``(B, Z, T', H', W')`` -> video ``(B, 3, T, H, W)``.

    Each upsampling halves the width it hands on (the paper's channel shrink). With two branches,
    frame 0 and the first frame of each later group come from the keyframe branch, the other frames
    of a group from the temporal branch.
    """

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        n, c = spec.num_branches, spec.base_channels
        self.num_branches = n
        self.group_size = spec.temporal_compression
        multipliers = spec.channel_multipliers[::-1]
        temporal_upsample = spec.temporal_downsample[::-1]
        width = c * multipliers[0]
        self.post_quant_conv = BranchConv(spec.latent_channels, spec.latent_width, spec.branches, 1)
        self.conv_in = make_frame_conv(spec.latent_width * n, width * n, 3)
        self.middle = _middle(width, spec.branches, spec.dropout)
        self.blocks = nn.ModuleList()
        group = 1
        last = len(multipliers) - 1
        for stage, multiplier in enumerate(multipliers):
            for _ in range(spec.decoder_blocks):
                self.blocks.append(ResidualBlock(width, c * multiplier, spec.branches, stage > 0, group, spec.dropout))
                width = c * multiplier
                if stage == 0 and spec.full_compression_attention:
                    self.blocks.append(BranchAttention(width, n))
            if stage < last:
                self.blocks.append(Upsample(width, n, temporal_upsample[stage]))
                width //= 2
                group *= 2 if temporal_upsample[stage] else 1
        self.norm_out = RMSNorm(width, n)
        self.conv_out = BranchConv(width * n, spec.in_channels, spec.branches, 3, group)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(self.post_quant_conv(z))
        x = self.run([*self.middle, *self.blocks], x)
        x = self.conv_out(torch.nn.functional.silu(self.norm_out(x)))
        if self.num_branches == 1:
            return x
        keyframe, temporal = x.chunk(2, dim=1)
        return torch.where(keyframe_mask(x.shape[2], self.group_size, x.device), keyframe, temporal)


def keyframe_mask(num_frames: int, group_size: int, device: torch.device | None = None) -> torch.Tensor:
    """Frames decoded by the keyframe branch: frame 0 of the video and the first frame of each group.

    A chunk that starts the video has ``1 + k * group_size`` frames, a later chunk a multiple of
    ``group_size``; the frame count tells which, so no state is needed.
    """
    index = torch.arange(num_frames, device=device)
    offset = 1 if num_frames % group_size == 1 % group_size else 0
    position = (index - offset) % group_size
    mask = position == 0
    if offset:
        mask[0] = True
    return mask.view(1, 1, -1, 1, 1)


def split_moments(moments: torch.Tensor, num_branches: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-branch ``[mean | logvar]`` features -> (mean, logvar), each branch's channels in order.

    For IV-VAE latent channels ``0..Z/2-1`` come from the keyframe branch and ``Z/2..Z-1`` from the
    temporal branch.
    """
    per_branch = moments.chunk(num_branches, dim=1)
    means, logvars = zip(*(part.chunk(2, dim=1) for part in per_branch), strict=True)
    return torch.cat(means, dim=1), torch.cat(logvars, dim=1)
