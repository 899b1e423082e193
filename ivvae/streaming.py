"""Execution of a video VAE over videos of any size: padding, one pass vs chunks, spatial tiles.

* **Padding.** The network needs ``T = 1 + k * t`` frames (``t`` = temporal compression, 4) and
  ``H, W`` multiples of the spatial compression (8). Inputs are padded at the end by repeating the
  last frame and, in space, by replicating the bottom row and right column; outputs are cropped
  back, so a reconstruction always has the input's shape.
* **One pass.** The whole video at once, every frame group batched: fastest.
* **Chunks.** The video's first frame alone, then ``chunk_groups`` groups at a time through the
  same layers in streaming mode (each temporal layer keeps its last input frames): exactly the
  one-pass result, with peak memory set by the chunk and not by the video's length.
* **Tiles.** Overlapping spatial tiles, each processed in full (one pass or chunks), blended
  linearly over the overlap, for frames too large for memory.
* **Pieces.** :class:`ChunkedStream` takes a video that arrives piece by piece (a decoder's
  output, latents being produced) and cuts the same chunks, so that neither the input nor the
  output of a long video is ever held whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import is_whole_number
from .layers import load_stream_states, stream, stream_states

ChunkCallback = Callable[[int, int], None]


def padded_length(num_frames: int, temporal_compression: int) -> int:
    """Smallest ``1 + k * temporal_compression >= num_frames``."""
    return 1 + math.ceil((num_frames - 1) / temporal_compression) * temporal_compression


def latent_length(num_frames: int, temporal_compression: int) -> int:
    """Latent frames for a video of ``num_frames`` frames (after padding)."""
    return 1 + math.ceil((num_frames - 1) / temporal_compression)


def pad_video(video: torch.Tensor, temporal_compression: int, spatial_compression: int) -> torch.Tensor:
    """Pad ``(B, C, T, H, W)`` at the end of time and space to sizes the network accepts.

    Time: the last frame is repeated. Space: the last row and column are replicated (no new
    edges for the convs to reconstruct).
    """
    frames = video.shape[2]
    extra_t = padded_length(frames, temporal_compression) - frames
    if extra_t:
        video = torch.cat([video, video[:, :, -1:].expand(-1, -1, extra_t, -1, -1)], dim=2)
    return pad_space(video, spatial_compression)


def pad_space(video: torch.Tensor, spatial_compression: int) -> torch.Tensor:
    """Pad ``(B, C, T, H, W)`` at the bottom and right to multiples of ``spatial_compression``."""
    height, width = video.shape[3:]
    extra_h = -height % spatial_compression
    extra_w = -width % spatial_compression
    if extra_h or extra_w:
        video = F.pad(video, (0, extra_w, 0, extra_h, 0, 0), mode="replicate")
    return video


def crop_video(video: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """Undo :func:`pad_video`."""
    return video[:, :, :frames, :height, :width]


def check_chunk_groups(chunk_groups: object) -> int | None:
    """``chunk_groups`` as given to the public API: ``None`` (one pass) or a positive integer.

    A float or a string would fail deep in ``range`` (or, converted with ``int``, silently run
    another chunk size than the one asked for)."""
    if chunk_groups is None:
        return None
    if not is_whole_number(chunk_groups) or chunk_groups < 1:
        raise ValueError(f"chunk_groups must be >= 1 (a whole number of frame groups per chunk; 1 uses the least memory) "
                         f"or None (one pass), got {chunk_groups!r}")
    return int(chunk_groups)


def chunk_slices(num_frames: int, frames_per_group: int, chunk_groups: int | None) -> list[slice]:
    """The frame ranges of each chunk: the first frame alone, then ``chunk_groups`` groups at a time.

    ``chunk_groups=None`` gives one slice over the whole video (one pass).
    """
    if chunk_groups is None:
        return [slice(0, num_frames)]
    if chunk_groups < 1:
        raise ValueError(f"chunk_groups must be >= 1, got {chunk_groups}")
    step = chunk_groups * frames_per_group
    return [slice(0, 1)] + [slice(start, min(start + step, num_frames)) for start in range(1, num_frames, step)]


def dense(x: torch.Tensor) -> torch.Tensor:
    """``x`` in one dense layout (a copy of a strided slice of a chunk or a tile): kernels may be
    chosen by the input's strides, so the same frames give the same numbers however they were cut."""
    if x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last_3d):
        return x
    return x.contiguous()


def run_temporal(
    module: nn.Module,
    x: torch.Tensor,
    frames_per_group: int,
    chunk_groups: int | None = None,
    callback: ChunkCallback | None = None,
) -> torch.Tensor:
    """Apply an encoder or decoder to a whole video, in one pass or chunk by chunk (exactly equal)."""
    slices = chunk_slices(x.shape[2], frames_per_group, chunk_groups)
    if len(slices) == 1:
        out = module(dense(x))
        if callback:
            callback(1, 1)
        return out
    outputs = []
    with stream(module):
        for done, piece in enumerate(slices, 1):
            outputs.append(module(dense(x[:, :, piece])))
            if callback:
                callback(done, len(slices))
    return torch.cat(outputs, dim=2)


class ChunkedStream:
    """An encoder or decoder run over a video that arrives piece by piece.

    :meth:`push` takes the next frames (any number, in order) and returns the outputs of the
    chunks they complete; :meth:`finish` runs what is left, its last group padded by repeating
    the last frame. The chunks are :func:`chunk_slices`' (the first frame alone, then
    ``chunk_groups`` groups), so the outputs, concatenated in time, equal :func:`run_temporal` on
    the whole video; ``chunk_groups=None`` keeps every piece for one pass at :meth:`finish`. With
    ``tile = (size, overlap, scale)`` each chunk is cut into spatial tiles as :func:`run_tiled`
    cuts a frame, and every tile carries its own streaming state from chunk to chunk.

    The module keeps no state between calls (each chunk restores the state it continues), so it
    may serve other work in between.
    """

    def __init__(self, module: nn.Module, frames_per_group: int, chunk_groups: int | None,
                 tile: tuple[int, int, float] | None = None) -> None:
        self.module, self.frames_per_group, self.chunk_groups, self.tile = module, frames_per_group, chunk_groups, tile
        self._pending: list[torch.Tensor] = []
        self._pending_frames = 0
        self._started = False
        self._states: dict[int, list[tuple]] = {}

    def push(self, piece: torch.Tensor) -> Iterator[torch.Tensor]:
        """Add ``(B, C, t, H, W)`` frames; the outputs of the chunks they complete, each run as it
        is asked for (consume them before the next push)."""
        self._pending.append(piece)
        self._pending_frames += piece.shape[2]
        return self._ready_chunks()

    def _ready_chunks(self) -> Iterator[torch.Tensor]:
        while self.chunk_groups is not None and self._pending_frames >= self._next_chunk_frames():
            yield self._run(self._take(self._next_chunk_frames()))

    def finish(self) -> Iterator[torch.Tensor]:
        """The outputs of the remaining frames (the last group completed with copies of the last frame)."""
        if not self._pending_frames:
            return
        rest = self._take(self._pending_frames)
        missing = -(rest.shape[2] - (0 if self._started else 1)) % self.frames_per_group
        if missing:
            rest = torch.cat([rest, rest[:, :, -1:].expand(-1, -1, missing, -1, -1)], dim=2)
        if self.chunk_groups is None:
            yield self._run(rest)
            return
        for piece in self._remaining_slices(rest.shape[2]):
            yield self._run(rest[:, :, piece])

    def _next_chunk_frames(self) -> int:
        return self.chunk_groups * self.frames_per_group if self._started else 1

    def _remaining_slices(self, frames: int) -> list[slice]:
        if self._started:
            step = self.chunk_groups * self.frames_per_group
            return [slice(start, min(start + step, frames)) for start in range(0, frames, step)]
        return chunk_slices(frames, self.frames_per_group, self.chunk_groups)

    def _take(self, frames: int) -> torch.Tensor:
        pending = torch.cat(self._pending, dim=2) if len(self._pending) > 1 else self._pending[0]
        taken, rest = pending[:, :, :frames], pending[:, :, frames:]
        self._pending = [rest] if rest.shape[2] else []
        self._pending_frames = rest.shape[2]
        return taken

    def _run(self, chunk: torch.Tensor) -> torch.Tensor:
        if self.tile is None:
            out = self._continue(chunk, 0)
        else:
            size, overlap, scale = self.tile
            out = run_tiled(self._continue, chunk, size, overlap, scale)
        self._started = True
        return out

    def _continue(self, chunk: torch.Tensor, tile_index: int) -> torch.Tensor:
        """One chunk of one tile, continuing that tile's video."""
        if self.chunk_groups is None:
            return self.module(dense(chunk))
        with stream(self.module):
            if tile_index in self._states:
                load_stream_states(self.module, self._states[tile_index])
            out = self.module(dense(chunk))
            self._states[tile_index] = stream_states(self.module)
        return out


def _tile_starts(size: int, tile: int, stride: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(length: int, overlap: int, ramp_start: bool, ramp_end: bool, device: torch.device) -> torch.Tensor:
    """Blending weights along one axis of a tile: linear ramps over the overlaps with neighbours."""
    weight = torch.ones(length, device=device)
    if overlap > 0:
        ramp = torch.arange(1, overlap + 1, device=device, dtype=torch.float32) / (overlap + 1)
        if ramp_start:
            weight[:overlap] = ramp
        if ramp_end:
            weight[-overlap:] = ramp.flip(0)
    return weight


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    """How many tiles :func:`run_tiled` cuts a ``height x width`` frame into."""
    if height <= tile and width <= tile:
        return 1
    return sum(1 for _ in iter_tiles(height, width, tile, overlap))


class ChunkCounter:
    """A :data:`ChunkCallback` counting over a whole call: :func:`run_temporal` reports each tile's
    (and each batch slice's) chunks from 1 again, so a progress report would restart per tile."""

    def __init__(self, callback: ChunkCallback, total: int) -> None:
        self.callback, self.total, self.done = callback, total, 0

    def __call__(self, done: int, total: int) -> None:
        self.done += 1
        self.callback(self.done, self.total)


def iter_tiles(height: int, width: int, tile: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Top-left corners of tiles of side ``tile`` that overlap by at least ``overlap``."""
    stride = max(tile - overlap, 1)
    for top in _tile_starts(height, tile, stride):
        for left in _tile_starts(width, tile, stride):
            yield top, left


def run_tiled(fn: Callable[[torch.Tensor, int], torch.Tensor], x: torch.Tensor, tile: int, overlap: int, scale: float) -> torch.Tensor:
    """Apply ``fn(tile, index)`` on overlapping spatial tiles of ``x`` and blend the outputs linearly.

    ``fn`` maps a tile of side ``s`` to one of side ``s * scale`` (1/8 to encode, 8 to decode);
    ``index`` numbers the tiles in a fixed order (the same for every frame size). A tile covering
    the whole frame returns ``fn(x, 0)`` exactly.
    """
    height, width = x.shape[-2:]
    if height <= tile and width <= tile:
        return fn(x, 0)
    out_h, out_w = round(height * scale), round(width * scale)
    out_overlap = round(overlap * scale)
    total = weights = None
    for index, (top, left) in enumerate(iter_tiles(height, width, tile, overlap)):
        piece = fn(x[..., top : top + tile, left : left + tile], index)
        if total is None:  # summed in float32: a bf16 sum would add its rounding to the blend
            total = piece.new_zeros(*piece.shape[:-2], out_h, out_w, dtype=torch.float32)
            weights = piece.new_zeros(out_h, out_w, dtype=torch.float32)
        o_top, o_left = round(top * scale), round(left * scale)
        ph, pw = piece.shape[-2:]
        w_rows = _ramp(ph, out_overlap, top > 0, top + tile < height, piece.device)
        w_cols = _ramp(pw, out_overlap, left > 0, left + tile < width, piece.device)
        weight = w_rows[:, None] * w_cols[None, :]
        total[..., o_top : o_top + ph, o_left : o_left + pw] += piece.float() * weight
        weights[o_top : o_top + ph, o_left : o_left + pw] += weight
    return (total / weights).to(piece.dtype)
