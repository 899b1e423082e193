"""Temporal convolutions and their streaming cache.

Two padding rules in time (kernel 3):

* **Group causal** (IV-VAE's GCConv): frames are cut into groups of ``group_size``; each group is
  padded with the frame just before it and a zero frame after it, and convolved on its own, so
  frames of a group see each other both ways while a group only sees the past. The video's first
  frame is a group of its own, padded ``[x, x, 0]``.
* **Causal** (the baseline of the paper's Sec. 3.1): two earlier frames before every frame, none
  after; the video starts with two copies of its first frame.

Either way only the last input frames of a chunk are needed to continue the video with the next
chunk. In streaming mode (see :func:`stream`) each layer keeps those frames itself, so a video
processed chunk by chunk gives exactly the one-pass result with memory bounded by the chunk size.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .conv import TimeConv3d


class StreamingModule:
    """Mixin for a layer whose output depends on frames of earlier chunks of the same video.

    Outside streaming mode every call sees a whole video (frame 0 first) and keeps no state.
    Inside it, the layer remembers what it needs from the chunk it just processed.
    """

    streaming: bool = False
    _seen_frames: bool = False
    #: What a layer carries from one chunk to the next (saved and restored per spatial tile).
    _stream_fields: tuple[str, ...] = ("_seen_frames",)

    def stream_state(self) -> tuple:
        return tuple(getattr(self, name) for name in self._stream_fields)

    def load_stream_state(self, state: tuple) -> None:
        for name, value in zip(self._stream_fields, state, strict=True):
            setattr(self, name, value)

    def start_stream(self) -> None:
        self.streaming = True
        self.reset_stream()

    def end_stream(self) -> None:
        self.streaming = False
        self.reset_stream()

    def reset_stream(self) -> None:
        """Forget earlier chunks: the next call starts a new video."""
        self._seen_frames = False

    def starts_video(self) -> bool:
        """Whether the input of the current call begins with the video's first frame."""
        return not (self.streaming and self._seen_frames)

    def mark_seen(self) -> None:
        if self.streaming:
            self._seen_frames = True


def _streaming_layers(module: nn.Module) -> list[StreamingModule]:
    return [m for m in module.modules() if isinstance(m, StreamingModule)]


def stream_states(module: nn.Module) -> list[tuple]:
    """What every streaming layer of ``module`` carries to the next chunk (see :func:`load_stream_states`)."""
    return [layer.stream_state() for layer in _streaming_layers(module)]


def load_stream_states(module: nn.Module, states: list[tuple]) -> None:
    """Continue a video from :func:`stream_states` (inside :func:`stream`): one module can then
    carry several videos (e.g. the spatial tiles of one) chunk by chunk, in turn."""
    for layer, state in zip(_streaming_layers(module), states, strict=True):
        layer.load_stream_state(state)


@contextmanager
def stream(module: nn.Module) -> Iterator[nn.Module]:
    """Run ``module`` chunk by chunk over one video: each call continues the previous one.

    Every :class:`StreamingModule` inside is switched into streaming mode and cleared at exit.
    """
    layers = _streaming_layers(module)
    for layer in layers:
        layer.start_stream()
    try:
        yield module
    finally:
        for layer in layers:
            layer.end_stream()


class _TemporalConv3d(StreamingModule, TimeConv3d):
    """A 3-D conv (temporal kernel ``kt``, spatial ``k``), 'same' zero padding in space only."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, temporal_kernel: int = 3) -> None:
        super().__init__(
            in_channels, out_channels, (temporal_kernel, kernel_size, kernel_size), padding=(0, kernel_size // 2, kernel_size // 2)
        )
        self.temporal_kernel = temporal_kernel
        self._cache: torch.Tensor | None = None

    _stream_fields = StreamingModule._stream_fields + ("_cache",)

    def reset_stream(self) -> None:
        super().reset_stream()
        self._cache = None

    def _remember(self, frames: torch.Tensor) -> None:
        if self.streaming:
            self._cache = frames.clone()  # a copy: a view would keep the whole chunk's activation alive
            self._seen_frames = True

    def _previous_frames(self) -> torch.Tensor | None:
        return None if self.starts_video() else self._cache


class GroupCausalConv3d(_TemporalConv3d):
    """Group causal conv (GCConv): bidirectional inside a group of frames, causal across groups.

    The input holds, in order, the video's first frame (only when the call starts the video) and
    then whole groups of ``group_size`` frames.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, temporal_kernel: int = 3, group_size: int = 4) -> None:
        super().__init__(in_channels, out_channels, kernel_size, temporal_kernel)
        if temporal_kernel not in (1, 3):
            raise ValueError(f"group causal conv supports temporal kernel 1 or 3, got {temporal_kernel}")
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.temporal_kernel == 1:
            return super().forward(x)
        previous = self._previous_frames()
        outputs = []
        if previous is None:  # the first frame is a group of its own, padded [x, x, 0]
            first = x[:, :, :1]
            outputs.append(super().forward(torch.cat([first, first, torch.zeros_like(first)], dim=2)))
            previous, x = first, x[:, :, 1:]
        if x.shape[2] > 0:
            outputs.append(self._convolve_groups(x, previous))
            previous = x[:, :, -1:]
        self._remember(previous)
        return torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]

    def _convolve_groups(self, x: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """Convolve whole groups, batched: each padded with its predecessor frame and a zero frame."""
        batch, channels, frames, height, width = x.shape
        size = self.group_size
        if frames % size:
            raise ValueError(f"{frames} frames do not form whole groups of {size} (the first frame of a video excepted)")
        groups = x.unflatten(2, (frames // size, size))  # B C G size H W
        before = torch.cat([previous, x[:, :, size - 1 : -1 : size]], dim=2).unsqueeze(3)
        after = torch.zeros_like(before)
        padded = torch.cat([before, groups, after], dim=3)  # B C G size+2 H W
        padded = padded.transpose(1, 2).flatten(0, 1)  # (B G) C size+2 H W
        out = super().forward(padded)  # (B G) C' size H W
        return out.unflatten(0, (batch, -1)).transpose(1, 2).flatten(2, 3)


class CausalConv3d(_TemporalConv3d):
    """Causal conv: ``temporal_kernel - 1`` earlier frames before each frame, none after.

    The video starts with copies of its first frame, so the first frame is computed alone.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        history = self.temporal_kernel - 1
        if history == 0:
            return super().forward(x)
        previous = self._previous_frames()
        if previous is None:
            previous = x[:, :, :1].expand(-1, -1, history, -1, -1)
        padded = torch.cat([previous, x], dim=2)
        self._remember(padded[:, :, -history:])
        return super().forward(padded)
