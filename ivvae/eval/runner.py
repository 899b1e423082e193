"""Reconstruction evaluation of one or more video VAEs on one data set (the paper's protocol).

:func:`evaluate` streams 17-frame clips of a folder or manifest of videos through each model
(encode to the latent mean and decode, chunk by chunk: bounded memory, exactly the one-pass result)
and computes, per model:

* PSNR, SSIM (per frame, mean over frames, mean over clips), LPIPS (when its weights are found),
  FVD (when the I3D weights are found; real-clip features are computed once and shared);
* SSIM by position in the frame group (paper Appendix A.2: frame 0 dropped, the other 16 frames
  form 4 groups of 4, SSIM averaged over groups per position; flat is good);
* information preservation ``1 - sum|x - x'| / sum|x|`` pooled over all clips (Appendix A.1);
* PSNR and SSIM per frame index (mean over clips).

A missing LPIPS / I3D weight file does not stop the run: the metric is reported as unavailable with
the reason (what file is missing and how to pass it) and the other metrics are computed.  A file
named in :class:`EvalSettings` that cannot be loaded is an error, raised before any model is loaded.
:func:`ivvae.eval.report.write_report` turns the :class:`EvalResults` into ``results.json``,
``results.md`` and plots.

Data-set protocols (:data:`PROTOCOLS`, paper Sec. 4.1 / 4.2):

* ``original`` -- Kinetics-600 / ActivityNet style: videos at their native resolution (the model's
  padding rule accepts any size; outputs are cropped back), usually ``num_videos`` of them chosen at
  random with ``seed`` (the paper: 2,400 per set).
* ``resized-480`` / ``resized-720`` / ``resized-1080`` -- MotionHD style: the short side resized to
  480 / 720 / 1080 and a centre crop of 848x480 / 1280x720 / 1920x1080.  A frame whose aspect
  ratio is narrower than 16:9 is enlarged further so that the crop fits (never padded).
* ``custom`` -- ``size`` (short side) and/or ``crop`` given explicitly.

Clips: ``frames`` (17) consecutive frames.  ``clip_start="first"`` (default) takes the first frames
of each video, which is deterministic and needs no seek; ``clip_start="random"`` draws the start
uniformly among the valid starts with a generator seeded by ``(seed, index of the video in the
listing)``, so a video's clip does not depend on which other videos are chosen.  Videos that cannot
be read or are shorter than ``frames`` are skipped and listed with the reason; when ``num_videos``
is set the next videos of the seeded order replace them.

Held-out parts: ``start_fraction=F`` evaluates only frames from ``int(F * num_frames)`` on, with the
header's frame count as training uses it (what a training run with ``train_time_range: [0, F]``
never saw), ``clips_per_video=K`` takes up to K consecutive clips per video (fewer when the file
holds fewer frames than its header says), and ``small_frames="native"`` keeps frames smaller than
the crop at their size instead of enlarging them.

Video selection with ``num_videos=N``: the listing (sorted for a folder, file order for a manifest)
is shuffled with ``numpy.random.default_rng(seed)`` and the first ``N`` readable videos of that
order are evaluated (so the sets for ``N`` and ``N + 1`` are nested).  Without ``num_videos`` every
video is evaluated in listing order.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._checks import is_whole_number
from .._files import path_list
from ..io import VideoInfo, VideoReadError, frames_to_tensor, probe_video, read_video
from .lpips import LPIPS, WeightsNotFoundError
from .lpips import MIN_SIZE as LPIPS_MIN_SIZE
from .metrics import (
    SSIM_WINDOW,
    InformationPreservation,
    MeanAccumulator,
    psnr_per_frame,
    ssim_by_group_position,
    ssim_per_frame,
)

logger = logging.getLogger(__name__)

__all__ = [
    "PROTOCOLS",
    "RESULTS_FORMAT",
    "Clip",
    "DatasetSpec",
    "EvalResults",
    "EvalSettings",
    "ModelResult",
    "Protocol",
    "evaluate",
    "load_eval_model",
    "model_info",
    "reconstruct_clip",
]

RESULTS_FORMAT = "ivvae-eval-results"
RESULTS_VERSION = 1

PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------------
# Protocols and data sets
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Protocol:
    """A named evaluation preset: short side to resize to and centre crop ``(width, height)``."""

    name: str
    short_side: int | None
    crop: tuple[int, int] | None
    description: str


PROTOCOLS: dict[str, Protocol] = {
    "original": Protocol("original", None, None,
                         "native resolution (Kinetics-600 / ActivityNet test in the paper: 2,400 random videos each)"),
    "resized-480": Protocol("resized-480", 480, (848, 480), "short side 480, centre crop 848x480 (MotionHD 480p)"),
    "resized-720": Protocol("resized-720", 720, (1280, 720), "short side 720, centre crop 1280x720 (MotionHD 720p)"),
    "resized-1080": Protocol("resized-1080", 1080, (1920, 1080), "short side 1080, centre crop 1920x1080 (MotionHD 1080p)"),
    "custom": Protocol("custom", None, None, "short side and/or centre crop given explicitly (size, crop)"),
}

CLIP_STARTS = ("first", "random")
SMALL_FRAMES = ("enlarge", "native")


def _crop_wh(crop: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``N`` -> ``(N, N)``; ``(W, H)`` kept; validated."""
    if crop is None:
        return None
    if is_whole_number(crop):
        crop = (int(crop), int(crop))
    # a string is a sequence too: '16' would read as (1, 6)
    if isinstance(crop, (str, bytes)) or not isinstance(crop, Sequence) or len(crop) != 2 or not all(is_whole_number(v) for v in crop):
        raise TypeError(f"crop must be an int N (N x N) or a (width, height) pair of ints, got {crop!r}")
    w, h = (int(v) for v in crop)
    if w < 1 or h < 1:
        raise ValueError(f"crop must be positive (width, height), got {crop}")
    return w, h


def _check_source(source: object) -> PathLike | list[PathLike]:
    """A path, or a list of paths (any other iterable of paths becomes a list)."""
    if isinstance(source, (str, os.PathLike)):
        return source
    return path_list(source, "source", "a folder, a manifest, a video file or a list of them")


def _check_int(name: str, value: object, minimum: int, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not is_whole_number(value):
        raise TypeError(f"{name} must be an integer{' or None' if optional else ''}, got {value!r}")
    if value < minimum:  # type: ignore[operator]
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def fit_size(width: int, height: int, short_side: int | None, crop: tuple[int, int] | None,
             enlarge: bool = True) -> tuple[int, int]:
    """Frame size ``(width, height)`` to decode at: short side to ``short_side`` (if given), enlarged
    if needed so that a ``crop = (w, h)`` fits (frames are never padded).  ``enlarge=False`` keeps
    frames smaller than the crop as they are (the crop is then clipped to the frame)."""
    scale = 1.0 if short_side is None else short_side / min(width, height)
    if crop is not None and not enlarge:
        crop = None
    if crop is not None:
        scale = max(scale, crop[0] / width, crop[1] / height)
    if scale == 1.0:
        return width, height
    w, h = round(width * scale), round(height * scale)
    if crop is not None:
        w, h = max(w, crop[0]), max(h, crop[1])
    return w, h


def _center_crop(frames: torch.Tensor, crop: tuple[int, int] | None) -> torch.Tensor:
    """Central ``crop = (w, h)`` of uint8 frames ``(T, H, W, 3)`` (clipped to the frame)."""
    if crop is None:
        return frames
    h, w = frames.shape[1:3]
    cw, ch = min(crop[0], w), min(crop[1], h)
    top, left = (h - ch) // 2, (w - cw) // 2
    return frames[:, top : top + ch, left : left + cw].contiguous()


@dataclass
class Clip:
    """One evaluation clip: ``video`` float32 ``(3, T, H, W)`` in ``[-1, 1]``."""

    video: torch.Tensor
    path: str
    index: int  # position of the video in the listing
    start: int
    native_size: tuple[int, int]  # (width, height) of the file
    size: tuple[int, int]  # (width, height) evaluated

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "start": self.start, "native_size": list(self.native_size), "size": list(self.size)}


def _each_once(paths: list[str]) -> list[str]:
    """``paths`` without repeats of one file (a folder and a file in it, a repeated manifest row), first kept.

    A video listed twice would be evaluated, counted and encoded twice (and a latent data set would
    then take its clips for an incomplete video).
    """
    seen: set[str] = set()
    unique = []
    for path in paths:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            unique.append(path)
    if len(unique) < len(paths):
        logger.warning("%d video(s) listed more than once in the data: each is used once", len(paths) - len(unique))
    return unique


@dataclass
class DatasetSpec:
    """Which clips to evaluate (see the module docstring for the protocols and the selection rule).

    Args:
        source: a folder of videos (recursive), a manifest (``.csv`` with a ``path`` column -- e.g.
            written by ``ivvae build-motionhd`` --, ``.jsonl``, ``.txt``) or a list of video files.
        protocol: ``"original"``, ``"resized-480"``, ``"resized-720"``, ``"resized-1080"`` or
            ``"custom"``.
        num_videos: evaluate this many videos chosen at random with ``seed`` (``None``: all).
        seed: seed of the video choice and of random clip starts.
        frames: frames per clip (17; SSIM by position needs ``1 + 4k``).
        size: short side (``custom`` only).
        crop: centre crop, ``N`` or ``(width, height)`` (``custom`` only).
        clip_start: ``"first"`` (the first frames of the evaluated part) or ``"random"`` (a start
            drawn in it, seeded per video).
        start_fraction: evaluate only frames from ``int(F * num_frames)`` on, e.g. ``0.8`` for the part
            a training run with ``train_time_range: [0, 0.8]`` never saw.
        clips_per_video: up to this many consecutive, non-overlapping clips per video (as many as fit).
        small_frames: ``"enlarge"`` (default) enlarges frames smaller than ``crop`` until it fits;
            ``"native"`` keeps them at their size (the crop is clipped to the frame).
    """

    source: PathLike | Sequence[PathLike]
    protocol: str = "original"
    num_videos: int | None = None
    seed: int = 0
    frames: int = 17
    size: int | None = None
    crop: int | tuple[int, int] | None = None
    clip_start: str = "first"
    start_fraction: float = 0.0
    clips_per_video: int = 1
    small_frames: str = "enlarge"

    def __post_init__(self) -> None:
        self.source = _check_source(self.source)
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; choose from {', '.join(PROTOCOLS)}")
        if self.protocol != "custom" and (self.size is not None or self.crop is not None):
            raise ValueError(f"size/crop are only for protocol 'custom' (protocol {self.protocol!r} fixes them)")
        # a float count or size would fail later, deep inside numpy or the reader, or cut clips short
        _check_int("frames", self.frames, 1)
        _check_int("num_videos", self.num_videos, 1, optional=True)
        _check_int("seed", self.seed, 0)
        _check_int("size", self.size, 1, optional=True)
        _check_int("clips_per_video", self.clips_per_video, 1)
        if self.clip_start not in CLIP_STARTS:
            raise ValueError(f"clip_start must be one of {CLIP_STARTS}, got {self.clip_start!r}")
        if isinstance(self.start_fraction, bool) or not isinstance(self.start_fraction, (int, float)) \
                or not 0.0 <= self.start_fraction < 1.0:
            raise ValueError(f"start_fraction must be a number in [0, 1), got {self.start_fraction!r}")
        if self.small_frames not in SMALL_FRAMES:
            raise ValueError(f"small_frames must be one of {SMALL_FRAMES}, got {self.small_frames!r}")
        self.crop = _crop_wh(self.crop)

    # -- geometry
    @property
    def short_side(self) -> int | None:
        return self.size if self.protocol == "custom" else PROTOCOLS[self.protocol].short_side

    @property
    def crop_size(self) -> tuple[int, int] | None:
        """Centre crop ``(width, height)`` or ``None``."""
        return self.crop if self.protocol == "custom" else PROTOCOLS[self.protocol].crop

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` at which a ``width x height`` video is evaluated."""
        crop = self.crop_size
        w, h = fit_size(width, height, self.short_side, crop, enlarge=self.small_frames == "enlarge")
        return (min(crop[0], w), min(crop[1], h)) if crop is not None else (w, h)

    # -- listing
    def list_videos(self) -> list[str]:
        """All candidate videos, each once, in listing order; with one-frame clips, folders' images too."""
        from ..io import resolve_source
        from ..train.data import MANIFEST_EXTENSIONS, list_videos

        with_images = self.frames == 1
        if isinstance(self.source, (str, os.PathLike)):
            return _each_once(list_videos(resolve_source(os.fspath(self.source)), with_images=with_images))
        paths: list[str] = []
        for source in self.source:
            path = resolve_source(os.fspath(source))
            # a manifest among several sources is read as one, not taken for a (broken) video file
            if Path(path).suffix.lower() in MANIFEST_EXTENSIONS and not Path(path).is_dir():
                paths.extend(list_videos(path, with_images=with_images))
            else:
                paths.append(path)
        return _each_once(list_videos(paths, with_images=with_images))

    def order(self, paths: Sequence[str]) -> list[int]:
        """Indices of ``paths`` in evaluation order (seeded permutation when ``num_videos`` is set)."""
        if self.num_videos is None:
            return list(range(len(paths)))
        return [int(i) for i in np.random.default_rng(self.seed).permutation(len(paths))]

    # -- reading
    def load_clip(self, path: str, index: int = 0, number: int = 0) -> Clip:
        """Read clip ``number`` (0, 1, ...: consecutive clips) of video ``path`` (``index``: its position
        in the listing, seeds a random start).  Raises :class:`~ivvae.io.VideoReadError` for unreadable
        videos and videos too short for that clip."""
        info = probe_video(path)
        num_frames = info.num_frames
        # from the header count, as training computes its time range: a corrected (smaller) count
        # learned below must not move the held-out part into frames training may have seen
        first = int(num_frames * self.start_fraction)
        for _ in range(2):
            need = self.frames * (number + 1)
            if num_frames - first < need:
                part = f" from frame {first}" if first else ""
                raise VideoReadError(path, f"too short: {num_frames} frame{'' if num_frames == 1 else 's'}, clip {number + 1} "
                                     f"needs {need} frames{part}",
                                     total_frames=num_frames)
            start = self._first_clip_start(num_frames, first, index) + number * self.frames
            try:
                return self._read_clip(path, index, info, start)
            except VideoReadError as err:
                # headers may overcount frames: learn the true length and draw again once
                if err.total_frames is not None and 0 < err.total_frames < num_frames:
                    num_frames = err.total_frames
                    continue
                raise
        raise VideoReadError(path, "frame count changed while reading")

    def _first_clip_start(self, num_frames: int, first: int, index: int) -> int:
        """Start of clip 0: ``first``, or a seeded draw leaving room for ``clips_per_video`` clips."""
        room = num_frames - first - self.frames * self.clips_per_video
        if self.clip_start != "random" or room < 0:
            return first
        rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), int(index)]))
        return first + int(rng.integers(0, room + 1))

    def _read_clip(self, path: str, index: int, info: VideoInfo, start: int) -> Clip:
        """``frames`` frames from ``start``, resized and cropped as the protocol says."""
        size = fit_size(info.width, info.height, self.short_side, self.crop_size, enlarge=self.small_frames == "enlarge")
        resize = None if size == (info.width, info.height) else size
        video = read_video(path, start=start, num_frames=self.frames, resize=resize)
        frames = _center_crop(video.frames, self.crop_size)
        out_size = (int(frames.shape[2]), int(frames.shape[1]))
        return Clip(frames_to_tensor(frames), str(path), index, start, (info.width, info.height), out_size)

    def clip_count(self, num_frames: int) -> int:
        """Clips evaluated from a video of ``num_frames`` frames (0: too short)."""
        usable = num_frames - int(num_frames * self.start_fraction)
        return min(self.clips_per_video, usable // self.frames)

    def iter_clips(self, paths: Sequence[str] | None = None, *, min_side: int = 1) -> Iterator[Clip | tuple[str, str]]:
        """Clips in evaluation order; an unreadable video, or one whose clips are narrower than
        ``min_side`` pixels, yields ``(path, reason)`` instead (and the next video takes its place).

        Stops after ``num_videos`` videos (each giving up to ``clips_per_video`` clips) when that is set.
        """
        paths = self.list_videos() if paths is None else list(paths)
        wanted = len(paths) if self.num_videos is None else self.num_videos
        done = 0
        for i in self.order(paths):
            if done >= wanted:
                return
            try:
                clips = self.video_clips(paths[i], i)
            except (VideoReadError, OSError) as err:
                yield paths[i], " ".join(str(err).split())
                continue
            w, h = clips[0].size
            if min(w, h) < min_side:
                yield paths[i], f"its clips are {w}x{h} pixels, smaller than the {min_side}x{min_side} the metrics need"
                continue
            done += 1
            yield from clips

    def video_clips(self, path: str, index: int = 0) -> list[Clip]:
        """Every clip chosen from one video (``index``: its position in the listing): clip 0, then
        the consecutive clips after it that the video holds (at most ``clips_per_video``).

        Raises :class:`~ivvae.io.VideoReadError` (or ``OSError``) when the video cannot be read
        or is too short for one clip."""
        clips = [self.load_clip(path, index)]
        if self.clips_per_video == 1:
            return clips
        info = probe_video(path)
        for k in range(1, self.clip_count(info.num_frames)):
            try:
                clips.append(self._read_clip(path, index, info, clips[0].start + k * self.frames))
            except VideoReadError as err:
                if err.total_frames is None:
                    raise
                break  # the stream ends before the header count says: the clips that fit stand
        return clips

    def to_dict(self) -> dict[str, Any]:
        source = self.source
        src: Any = os.fspath(source) if isinstance(source, (str, os.PathLike)) else [os.fspath(s) for s in source]
        return {
            "source": src,
            "protocol": self.protocol,
            "protocol_description": PROTOCOLS[self.protocol].description,
            "short_side": self.short_side,
            "crop": list(self.crop_size) if self.crop_size else None,
            "num_videos": self.num_videos,
            "seed": self.seed,
            "frames": self.frames,
            "clip_start": self.clip_start,
            "start_fraction": self.start_fraction,
            "clips_per_video": self.clips_per_video,
            "small_frames": self.small_frames,
        }


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
@dataclass
class EvalSettings:
    """How the models are run and which metrics are computed.

    Args:
        chunk_groups: frame groups (4 frames) per chunk of the streaming path (1: the least memory;
            exact whatever the value); ``None`` runs each clip in one pass.
        tile: ``(size, overlap)`` pixels for spatial tiling (large frames), or ``None``.
        dtype: ``"fp32"`` or ``"bf16"`` (autocast).
        device: where models given by name are loaded and where clips and metrics are computed
            (``"auto"``: CUDA if available).  Models given as objects run where their parameters are.
        quantize: round reconstructions to 8-bit levels first (as if written to a video file).
        lpips: ``True`` computes LPIPS when its weights are found (else reported unavailable),
            ``False`` skips it, or an :class:`~ivvae.eval.lpips.LPIPS` instance to use.
        lpips_net, lpips_backbone, lpips_heads: network and weight files (``None``: the default
            locations of :class:`~ivvae.eval.lpips.LPIPS`; a file given here must load, else ValueError).
        fvd: ``True`` computes FVD when the I3D weights are found, ``False`` skips it, or an
            :class:`~ivvae.eval.i3d.InceptionI3d`, an :class:`~ivvae.eval.fvd.I3DFeatureExtractor`
            or any callable ``videos (B, 3, T, H, W) -> features (B, D)``.
        i3d_path: ``i3d_pretrained_400.pt`` (``None``: default locations of
            :func:`~ivvae.eval.i3d.load_i3d`; a file given here must load, else an error).
        progress: show a tqdm progress bar over clips.
        keep_per_clip: keep every clip's values in the results.
    """

    chunk_groups: int | None = 1
    tile: tuple[int, int] | None = None
    dtype: str = "fp32"
    device: str = "cpu"
    quantize: bool = False
    lpips: bool | torch.nn.Module = True
    lpips_net: str = "alex"
    lpips_backbone: PathLike | None = None
    lpips_heads: PathLike | None = None
    fvd: bool | Callable[[torch.Tensor], torch.Tensor] = True
    i3d_path: PathLike | None = None
    progress: bool = True
    keep_per_clip: bool = True

    def __post_init__(self) -> None:
        if self.chunk_groups is not None and int(self.chunk_groups) < 1:
            raise ValueError(f"chunk_groups must be >= 1 or None (one pass), got {self.chunk_groups}")
        if self.dtype not in ("fp32", "bf16"):
            raise ValueError(f"dtype must be 'fp32' or 'bf16', got {self.dtype!r}")
        if self.tile is not None:  # whole latent pixels are checked per model, once the models are loaded
            if isinstance(self.tile, (str, bytes)) or not isinstance(self.tile, Sequence) or len(self.tile) != 2 \
                    or not all(is_whole_number(v) for v in self.tile):
                raise TypeError(f"tile must be a (size, overlap) pair of ints in pixels, got {self.tile!r}")
            size, overlap = (int(v) for v in self.tile)
            if size < 16 or not 0 <= overlap < size:
                raise ValueError(f"tile must be (size >= 16, 0 <= overlap < size), got {self.tile}")
            self.tile = (size, overlap)
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError):
                raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}") from None

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def to_dict(self) -> dict[str, Any]:
        def describe(v: Any) -> Any:
            if isinstance(v, bool) or v is None:
                return v
            return type(v).__name__

        return {
            "chunk_groups": self.chunk_groups,
            "execution": "one pass" if self.chunk_groups is None else f"streaming, {self.chunk_groups} frame group(s) per chunk",
            "tile": list(self.tile) if self.tile else None,
            "dtype": self.dtype,
            "device": str(self.resolved_device()),
            "quantize": self.quantize,
            "lpips": describe(self.lpips),
            "lpips_net": self.lpips_net,
            "lpips_backbone": os.fspath(self.lpips_backbone) if self.lpips_backbone else None,
            "lpips_heads": os.fspath(self.lpips_heads) if self.lpips_heads else None,
            "fvd": describe(self.fvd),
            "i3d_path": os.fspath(self.i3d_path) if self.i3d_path else None,
        }


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
METRICS = ("psnr", "ssim", "lpips", "fvd", "information_preservation")


@dataclass
class ModelResult:
    """Everything measured for one model (see :meth:`EvalResults.to_dict` for the JSON layout)."""

    name: str
    info: dict[str, Any]
    metrics: dict[str, float | None]
    num_clips: int
    ssim_by_position: list[float] | None = None
    psnr_per_frame: list[float] = field(default_factory=list)
    ssim_per_frame: list[float] = field(default_factory=list)
    per_clip: list[dict[str, Any]] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def ssim_position_spread(self) -> float | None:
        """max - min of the SSIM by position (0 = perfectly flat)."""
        if not self.ssim_by_position:
            return None
        return max(self.ssim_by_position) - min(self.ssim_by_position)


@dataclass
class EvalResults:
    """The outcome of :func:`evaluate`: per-model results plus the data set and settings used."""

    models: dict[str, ModelResult]
    dataset: dict[str, Any]
    settings: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> ModelResult:
        return self.models[name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RESULTS_FORMAT,
            "version": RESULTS_VERSION,
            "dataset": self.dataset,
            "settings": self.settings,
            "environment": self.environment,
            "models": {name: asdict(r) for name, r in self.models.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalResults:
        if data.get("format") != RESULTS_FORMAT:
            raise ValueError(f"not an ivvae evaluation results file (format {data.get('format')!r})")
        models = {name: ModelResult(**r) for name, r in data["models"].items()}
        return cls(models=models, dataset=dict(data["dataset"]), settings=dict(data["settings"]),
                   environment=dict(data.get("environment", {})))

    def save_json(self, path: PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_json_safe(self.to_dict()), indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def load_json(cls, path: PathLike) -> EvalResults:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _json_safe(obj: Any) -> Any:
    """Non-finite floats -> None, tuples -> lists, paths -> str (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    return obj


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
def load_eval_model(name_or_path: PathLike, device: str | torch.device = "cpu"):
    """Load a model folder or bundled model name in eval mode (:func:`ivvae.hub.load_model`), or a
    plain reference such as ``bicubic-x4`` (:mod:`ivvae.eval.reference`)."""
    from ..hub import load_model
    from .reference import reference_model

    reference = reference_model(os.fspath(name_or_path))
    if reference is not None and not os.path.exists(name_or_path):
        return reference
    return load_model(name_or_path, device=device)


def check_eval_model(name_or_path: PathLike) -> None:
    """Check, without loading any weights, that :func:`load_eval_model` will find a loadable model
    (a reference name, or a folder whose config and weights file fit each other).

    Raises:
        ModelNotFoundError, ModelLoadError: as :func:`ivvae.hub.load_model` would, after the data.
    """
    from ..hub import check_model_source
    from .reference import reference_model

    if reference_model(os.fspath(name_or_path)) is None or os.path.exists(name_or_path):
        check_model_source(name_or_path)


def model_info(model: Any) -> dict[str, Any]:
    """Class, source, parameter count, latent channels Z and compression factors of a model."""
    params = None
    if hasattr(model, "parameters"):
        params = int(sum(p.numel() for p in model.parameters()))
    config = getattr(model, "config", None)
    z = None
    if config is not None:
        z = config.get("latent_channels") if isinstance(config, Mapping) else getattr(config, "latent_channels", None)
    if z is None:
        z = getattr(model, "latent_channels", None)
    return {
        "class": type(model).__name__,
        "source": os.fspath(getattr(model, "name_or_path", "") or "") or None,
        "params": params,
        "latent_channels": int(z) if z is not None else None,
        "temporal_compression": int(getattr(model, "temporal_compression", 4)),
        "spatial_compression": int(getattr(model, "spatial_compression", 8)),
    }


def _model_device(model: Any, default: torch.device) -> torch.device:
    if hasattr(model, "parameters"):
        for p in model.parameters():
            return p.device
    return default


@contextlib.contextmanager
def _execution(model: Any, tile: tuple[int, int] | None, dtype: str, device: torch.device) -> Iterator[None]:
    """Tiling (restored after) and autocast for one reconstruction."""
    tiling = hasattr(model, "enable_tiling")
    saved = (model.use_tiling, model.tile_size, model.tile_overlap) if tiling else None
    try:
        if tiling:
            if tile is not None:
                model.enable_tiling(*tile)
            else:
                model.disable_tiling()
        elif tile is not None:
            raise ValueError(f"{type(model).__name__} does not support spatial tiling")
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            yield
    finally:
        if saved is not None:
            model.use_tiling, model.tile_size, model.tile_overlap = saved


def _check_tile_fits(models: Mapping[str, Any], tile: tuple[int, int] | None) -> None:
    """Tiles must be whole latent pixels of every model, checked before any clip runs."""
    from ..pipeline import check_tile

    for name, model in models.items():
        if tile is not None and hasattr(model, "spatial_compression"):
            try:
                check_tile(tile, model.spatial_compression)
            except ValueError as err:
                raise ValueError(f"model {name}: {err}") from None


def reconstruct_clip(
    model: Any,
    x: torch.Tensor,
    *,
    chunk_groups: int | None = 1,
    tile: tuple[int, int] | None = None,
    dtype: str = "fp32",
) -> torch.Tensor:
    """Encode ``x`` ``(B, 3, T, H, W)`` in ``[-1, 1]`` to the latent mean and decode it: float32, same
    shape, on ``x``'s device.

    ``model`` is anything with the :class:`~ivvae.models.IVVAE` API (``encode(x, chunk_groups=)
    .latent_dist.mode()``, ``decode(z, chunk_groups=, num_frames=, height=, width=).sample``).
    With ``chunk_groups=N`` both run chunk by chunk (exactly the one-pass result).
    """
    t, h, w = x.shape[2:]
    with _execution(model, tile, dtype, x.device):
        z = model.encode(x, chunk_groups=chunk_groups).latent_dist.mode()
        y = model.decode(z, chunk_groups=chunk_groups, num_frames=t, height=h, width=w).sample
    return y.float()


# --------------------------------------------------------------------------------------------
# Metric back-ends
# --------------------------------------------------------------------------------------------
def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _given_weights_error(what: str, option: str, path: PathLike, err: BaseException) -> ValueError:
    """A weight file the user named that cannot be used stops the run: a quiet "n/a" would hide a wrong path."""
    cli, python = option.split()
    return ValueError(f"{cli} {os.fspath(path)} ({python} in Python) cannot be used as the {what} (give the right file, or leave "
                      f"{cli} out to look in the default locations): {_one_line(err)}")


def _load_lpips_weights(module: LPIPS, settings: EvalSettings) -> str | None:
    """Load the LPIPS trunk and heads; returns why LPIPS is unavailable, or None.  Files named in the
    settings are loaded first and must work; a file missing from the default locations only makes
    LPIPS unavailable."""
    parts = [(settings.lpips_backbone, "LPIPS backbone", "--lpips-backbone lpips_backbone=", module._resolve_backbone,
              module.load_backbone),
             (settings.lpips_heads, "LPIPS heads", "--lpips-heads lpips_heads=", module._resolve_heads, module.load_heads)]
    for given, what, option, resolve, load in parts:
        if given is not None:
            try:
                load(resolve(given))
            except ValueError as err:
                raise _given_weights_error(what, option, given, err) from None
    for given, _, _, resolve, load in parts:
        if given is None:
            try:
                load(resolve(None))
            except WeightsNotFoundError as err:
                return f"LPIPS weights not found: {_one_line(err)} (CLI: --lpips-backbone PATH --lpips-heads PATH)"
            except ValueError as err:
                return f"LPIPS weights could not be loaded: {_one_line(err)}"
    return None


def _build_lpips(settings: EvalSettings, device: torch.device) -> tuple[torch.nn.Module | None, str | None, str | None]:
    """(LPIPS module or None, reason when unavailable, note)."""
    if settings.lpips is False:
        return None, "disabled (no LPIPS requested)", None
    if isinstance(settings.lpips, torch.nn.Module):
        module = settings.lpips
    else:
        module = LPIPS(settings.lpips_net, pretrained=False)
        reason = _load_lpips_weights(module, settings)
        if reason is not None:
            return None, reason, None
    note = None
    if isinstance(module, LPIPS) and (module.backbone_path is None or module.head_path is None):
        note = "LPIPS ran with untrained (random) weights: the values are not LPIPS, only a pipeline check"
    return module.to(device).eval(), None, note


def _lpips_min_side(lpips_net: torch.nn.Module | None) -> int:
    """Smallest frame side the LPIPS trunk accepts (0 without LPIPS): smaller clips are skipped, not a crash mid-run."""
    return 0 if lpips_net is None else LPIPS_MIN_SIZE.get(getattr(lpips_net, "net_name", None), 0)


def _build_fvd(settings: EvalSettings, device: torch.device) -> tuple[Callable[[torch.Tensor], torch.Tensor] | None, str | None]:
    """(feature extractor or None, reason when unavailable).  The I3D file is loaded here so that a
    missing file is reported before the run, not after it; a file named in the settings must load."""
    from .fvd import I3DFeatureExtractor
    from .i3d import InceptionI3d, load_i3d

    if settings.fvd is False:
        return None, "disabled (no FVD requested)"
    if isinstance(settings.fvd, InceptionI3d):
        return I3DFeatureExtractor(settings.fvd.to(device).eval(), device=device), None
    if callable(settings.fvd) and settings.fvd is not True:
        return settings.fvd, None
    try:
        net = load_i3d(settings.i3d_path, device=device)
    except ValueError as err:
        if settings.i3d_path is not None:
            raise _given_weights_error("I3D weights", "--i3d i3d_path=", settings.i3d_path, err) from None
        return None, f"I3D weights could not be loaded: {_one_line(err)}"
    except WeightsNotFoundError as err:
        if settings.i3d_path is not None:
            raise
        return None, f"I3D weights not found: {_one_line(err)}"
    return I3DFeatureExtractor(net, device=device), None


class _ModelState:
    """Running sums for one model."""

    def __init__(self, name: str, model: Any, device: torch.device) -> None:
        self.name = name
        self.model = model
        self.device = _model_device(model, device)
        self.info = model_info(model)
        # frame-wise models (image VAEs, references) are read in the paper's groups of 4 too
        self.group = self.info["temporal_compression"] if self.info["temporal_compression"] > 1 else 4
        self.psnr = MeanAccumulator()
        self.ssim = MeanAccumulator()
        self.lpips = MeanAccumulator()
        self.psnr_frames = MeanAccumulator()
        self.ssim_frames = MeanAccumulator()
        self.position = MeanAccumulator()
        self.ip = InformationPreservation()
        self.fake_features: list[torch.Tensor] = []
        self.per_clip: list[dict[str, Any]] = []
        self.seconds = 0.0
        self.position_reason: str | None = None


def _quantize(y: torch.Tensor) -> torch.Tensor:
    return ((y.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
def evaluate(
    models: Mapping[str, Any],
    dataset: DatasetSpec,
    settings: EvalSettings | None = None,
) -> EvalResults:
    """Evaluate every model of ``models`` (``{name: model or model folder / bundled name}``) on the
    clips of ``dataset``; returns :class:`EvalResults` (write it with
    :func:`ivvae.eval.report.write_report`).

    Each clip is decoded from its file once and reconstructed by every model in turn; the real
    clip's I3D features are computed once.  Memory is bounded by one clip and one chunk of the
    streaming path (``settings.chunk_groups``), whatever the number of clips.

    Example::

        from ivvae.eval.runner import DatasetSpec, EvalSettings, evaluate
        from ivvae.eval.report import write_report

        results = evaluate({"z16": "models/z16", "z8": "models/z8"},
                           DatasetSpec("k600_val/", protocol="original", num_videos=2400, seed=0),
                           EvalSettings(chunk_groups=1, device="cuda"))
        write_report(results, "eval/k600")
    """
    settings = settings or EvalSettings()
    _check_arguments(models, dataset, settings)
    device = settings.resolved_device()
    # the metric networks first: a bad weight file is reported before any model is loaded or run
    lpips_net, lpips_reason, lpips_note = _build_lpips(settings, device)
    extractor, fvd_reason = _fvd_for_clips(*_build_fvd(settings, device), dataset.frames)
    loaded = {name: (load_eval_model(m, device) if isinstance(m, (str, os.PathLike)) else m) for name, m in models.items()}
    _check_tile_fits(loaded, settings.tile)
    states = [_ModelState(name, m, device) for name, m in loaded.items()]
    real_features: list[torch.Tensor] = []

    paths = dataset.list_videos()
    expected = len(paths) if dataset.num_videos is None else min(dataset.num_videos, len(paths))
    bar = None
    if settings.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=expected if dataset.clips_per_video == 1 else None, desc="eval", unit="clip", dynamic_ncols=True)
    clips: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    started = time.perf_counter()
    try:
        for item in dataset.iter_clips(paths, min_side=max(SSIM_WINDOW, _lpips_min_side(lpips_net))):
            if isinstance(item, tuple):
                skipped.append({"path": item[0], "reason": item[1]})
                if bar is not None:
                    bar.write(f"skipping {item[0]}: {item[1]}")
                continue
            clips.append(item.describe())
            real = None
            if extractor is not None:
                real = extractor(item.video.unsqueeze(0).to(device)).detach().to("cpu", torch.float64)
                real_features.append(real)
            for state in states:
                _evaluate_clip(state, item, settings, lpips_net, extractor)
            if bar is not None:
                bar.set_postfix({s.name[:12]: f"{float(s.psnr.compute()):.2f}dB" for s in states[:3]})
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if not clips:
        reasons = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:3])
        raise ValueError(f"no clip could be read from {dataset.source!r} ({len(skipped)} video(s) skipped: {reasons})")

    results = {s.name: _finish(s, settings, lpips_reason, lpips_note, fvd_reason, real_features) for s in states}
    dataset_info = {
        **dataset.to_dict(),
        "videos_listed": len(paths),
        "num_clips": len(clips),
        "clips": clips,
        "skipped": skipped,
    }
    environment = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine()),
        "threads": torch.get_num_threads(),
        "wall_seconds": round(time.perf_counter() - started, 3),
    }
    return EvalResults(models=results, dataset=dataset_info, settings=settings.to_dict(), environment=environment)


def _check_arguments(models: Mapping[str, Any], dataset: DatasetSpec, settings: EvalSettings) -> None:
    """Wrong argument types and sizes no metric can use, before any file is read or model loaded."""
    if not isinstance(models, Mapping):
        raise TypeError(f"models must be a dict {{name: model, model folder or bundled name}}, got {type(models).__name__}")
    if not models:
        raise ValueError("evaluate() needs at least one model")
    for name, model in models.items():
        if not isinstance(model, (str, os.PathLike)) and not (callable(getattr(model, "encode", None))
                                                               and callable(getattr(model, "decode", None))):
            raise TypeError(f"model {name!r} is a {type(model).__name__}, not a video VAE: give a model with encode/decode "
                            "(ivvae.load_model), a model folder or a bundled model name")
    if not isinstance(dataset, DatasetSpec):
        raise TypeError(f"dataset must be a DatasetSpec (e.g. DatasetSpec('videos/')), got {type(dataset).__name__}")
    if not isinstance(settings, EvalSettings):
        raise TypeError(f"settings must be an EvalSettings, got {type(settings).__name__}")
    device = settings.resolved_device()
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {settings.device!r}: CUDA is not available on this machine; use device='cpu'")
    # frames are enlarged to fit a crop, so the crop, else the short side, bounds every clip's size
    side = min(dataset.crop_size) if dataset.crop_size else dataset.short_side
    if side is not None and side < SSIM_WINDOW:
        what = "crop" if dataset.crop_size else "size"
        raise ValueError(f"{what} {side} makes clips smaller than SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window; "
                         f"evaluate at {SSIM_WINDOW} pixels or more")


def _fvd_for_clips(extractor: Callable[[torch.Tensor], torch.Tensor] | None, reason: str | None, frames: int
                   ) -> tuple[Callable[[torch.Tensor], torch.Tensor] | None, str | None]:
    """I3D cannot embed clips shorter than its head needs: FVD is then unavailable, not a failure mid-run."""
    from .fvd import I3DFeatureExtractor
    from .i3d import MIN_FRAMES

    if isinstance(extractor, I3DFeatureExtractor) and frames < MIN_FRAMES:
        return None, f"FVD's I3D needs clips of at least {MIN_FRAMES} frames, these have {frames}"
    return extractor, reason


def _evaluate_clip(state: _ModelState, clip: Clip, settings: EvalSettings, lpips_net, extractor) -> None:
    x = clip.video.unsqueeze(0).to(state.device)
    t0 = time.perf_counter()
    y = reconstruct_clip(state.model, x, chunk_groups=settings.chunk_groups, tile=settings.tile, dtype=settings.dtype)
    if state.device.type == "cuda":
        torch.cuda.synchronize(state.device)
    state.seconds += time.perf_counter() - t0
    if y.shape != x.shape:
        raise RuntimeError(f"model {state.name!r} returned shape {tuple(y.shape)} for a clip of shape {tuple(x.shape)}")
    if not bool(torch.isfinite(y).all()):  # NaN metrics would be reported as if measured
        raise ValueError(f"model {state.name!r} reconstructed '{clip.path}' (frame {clip.start} on) with NaN or infinite values; "
                         f"check its weights (dtype {settings.dtype})")
    if settings.quantize:
        y = _quantize(y)
    with torch.inference_mode():
        clamped = y.clamp(-1.0, 1.0)  # what these metrics clamp to anyway; overshoot is not a wrong value range
        psnr_f = psnr_per_frame(x, clamped)  # (1, T)
        ssim_f = ssim_per_frame(x, clamped)
        ip = state.ip.update(x, clamped)
        state.psnr.update(psnr_f.mean(dim=1))
        state.ssim.update(ssim_f.mean(dim=1))
        state.psnr_frames.update(psnr_f)
        state.ssim_frames.update(ssim_f)
        record: dict[str, Any] = {
            "path": clip.path,
            "start": clip.start,
            "psnr": float(psnr_f.mean()),
            "ssim": float(ssim_f.mean()),
            "information_preservation": float(ip[0]),
        }
        t = x.shape[2]
        g = state.group
        if g >= 1 and t >= 1 + g and (t - 1) % g == 0:
            pos = ssim_by_group_position(x, clamped, group_size=g, reduction="none", per_frame=ssim_f)
            state.position.update(pos)
            record["ssim_by_position"] = [float(v) for v in pos[0]]
        else:
            state.position_reason = f"needs clips of 1 + k*{g} frames (k >= 1), got {t}"
        if lpips_net is not None:
            lp_device = next(lpips_net.parameters()).device
            lp = lpips_net.video(x.to(lp_device), clamped.to(lp_device))
            state.lpips.update(lp.float())
            record["lpips"] = float(lp[0])
        if extractor is not None:
            state.fake_features.append(extractor(y).detach().to("cpu", torch.float64))
    record["seconds"] = round(time.perf_counter() - t0, 4)
    if settings.keep_per_clip:
        state.per_clip.append(record)


def _finish(state: _ModelState, settings: EvalSettings, lpips_reason, lpips_note, fvd_reason, real_features) -> ModelResult:
    from .fvd import fvd_from_features

    n = state.psnr.count
    unavailable: dict[str, str] = {}
    notes: list[str] = []
    metrics: dict[str, float | None] = {
        "psnr": float(state.psnr.compute()),
        "ssim": float(state.ssim.compute()),
        "lpips": None,
        "fvd": None,
        "information_preservation": state.ip.compute() if state.ip.abs_signal > 0 else None,
    }
    if metrics["information_preservation"] is None:
        unavailable["information_preservation"] = "every clip is black (sum|x| = 0)"
    if lpips_reason is None:
        metrics["lpips"] = float(state.lpips.compute())
        if lpips_note:
            notes.append(lpips_note)
    else:
        unavailable["lpips"] = lpips_reason
    if fvd_reason is not None:
        unavailable["fvd"] = fvd_reason
    elif n < 2:
        unavailable["fvd"] = f"FVD needs at least 2 clips, got {n}"
    else:
        real = torch.cat(real_features)
        fake = torch.cat(state.fake_features)
        metrics["fvd"] = fvd_from_features(real, fake)
        if n <= real.shape[1]:
            notes.append(
                f"FVD from {n} clips (not more than the {real.shape[1]} feature dimensions): the covariances are singular, "
                "so the value is only comparable between models on these same clips (the paper uses 2,400)"
            )
    position = None
    if state.position.count:
        position = [float(v) for v in state.position.compute()]
    else:
        unavailable["ssim_by_position"] = state.position_reason or "no clip"
    return ModelResult(
        name=state.name,
        info=state.info,
        metrics=metrics,
        num_clips=n,
        ssim_by_position=position,
        psnr_per_frame=[float(v) for v in state.psnr_frames.compute()],
        ssim_per_frame=[float(v) for v in state.ssim_frames.compute()],
        per_clip=state.per_clip,
        unavailable=unavailable,
        notes=notes,
        timing={"reconstruction_seconds": round(state.seconds, 3), "seconds_per_clip": round(state.seconds / max(n, 1), 4)},
    )
