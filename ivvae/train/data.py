"""Training and evaluation datasets: video clips, still images, synthetic motion, bucketing.

Every dataset returns float32 tensors in [-1, 1] laid out ``(3, T, H, W)`` (images: ``T = 1``)
under the key ``"video"``.

Randomness is reproducible: each item draws from an RNG seeded by ``(seed, epoch, index)``;
call ``set_epoch(epoch)`` on datasets and samplers before each epoch. Persistent DataLoader
workers keep the dataset epoch they were started with, so a sampler made with
``tag_epoch=True`` hands out ``(epoch, index)`` keys instead, which every dataset here accepts:
the key's epoch then decides the draws.

Unreadable items (corrupt/truncated/too-short files) are skipped: ``__getitem__`` falls back to
another item chosen deterministically, logs the file and reason once (logger ``ivvae.data``) and
counts it (``bad_files``, ``skipped``, ``num_fallbacks``; per process, i.e. per DataLoader
worker). If every file is bad a ``RuntimeError`` is raised instead of looping forever.

Datasets hold only plain Python data (paths, numbers), so they pickle into DataLoader workers;
files are opened per item.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import json
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset, Sampler, default_collate

from ivvae.io import VideoInfo, VideoReadError, frames_to_tensor, probe_video, read_video

__all__ = [
    "IMAGE_EXTENSIONS",
    "SKIMAGE_IMAGES",
    "VIDEO_EXTENSIONS",
    "BucketBatchSampler",
    "ImageDataset",
    "MovingCropDataset",
    "MultiBucketDataset",
    "VideoClipDataset",
    "available_skimage_images",
    "clip_collate",
    "list_images",
    "list_videos",
]

logger = logging.getLogger("ivvae.data")

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MANIFEST_EXTENSIONS = (".csv", ".jsonl", ".txt")

PathLike = str | os.PathLike
Source = PathLike | Sequence[PathLike]


# --------------------------------------------------------------------------------------------
# File listing
# --------------------------------------------------------------------------------------------

def _manifest_jsonl_path(manifest: Path, lineno: int, line: str) -> str:
    """The ``"path"`` of one .jsonl line; a broken line is named, so the user can fix that line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"manifest '{manifest}' line {lineno}: not valid JSON ({error.msg}); "
                         f"each line must be a JSON object like {{\"path\": \"video.mp4\"}}") from None
    if not isinstance(record, dict) or "path" not in record:
        raise ValueError(f"manifest '{manifest}' line {lineno}: no \"path\" key")
    if not isinstance(record["path"], str):
        raise ValueError(f"manifest '{manifest}' line {lineno}: \"path\" must be a string, got {record['path']!r}")
    return record["path"]


def _manifest_csv_paths(manifest: Path, f: Iterator[str]) -> list[str]:
    reader = csv.DictReader(f)
    if not reader.fieldnames or "path" not in reader.fieldnames:
        raise ValueError(f"manifest '{manifest}' has no 'path' column (columns: {reader.fieldnames})")
    entries = []
    for row in reader:
        if row["path"] is None:  # a short row: DictReader leaves the missing columns None
            raise ValueError(f"manifest '{manifest}' line {reader.line_num}: no value in the 'path' column")
        entries.append(row["path"])
    return entries


def _read_manifest(manifest: Path) -> list[str]:
    """Paths listed in a .csv (``path`` column), .jsonl (``"path"`` key) or .txt (one per line)."""
    base = manifest.parent
    suffix = manifest.suffix.lower()
    try:
        with open(manifest, newline="", encoding="utf-8") as f:
            if suffix == ".csv":
                entries = _manifest_csv_paths(manifest, f)
            elif suffix == ".jsonl":
                entries = [_manifest_jsonl_path(manifest, n, line) for n, line in enumerate(f, 1) if line.strip()]
            else:
                entries = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    except (UnicodeDecodeError, csv.Error) as error:  # a binary file given as a manifest
        raise ValueError(f"manifest '{manifest}' is not a UTF-8 text {suffix} list of videos ({error})") from None
    return [str(p if (p := Path(e.strip())).is_absolute() else base / p) for e in entries if e.strip()]


def _scan_folder(folder: Path, extensions: tuple[str, ...]) -> list[str]:
    found = [str(p) for p in folder.rglob("*") if p.suffix.lower() in extensions and p.is_file()]
    return sorted(found)


def _list_files(source: Source, extensions: tuple[str, ...], what: str) -> list[str]:
    """Expand folders (recursively), manifests and lists of paths into a list of files."""
    if isinstance(source, (str, os.PathLike)):
        entries: Sequence[PathLike] = [source]
        single = True
    else:
        entries, single = list(source), False
    files: list[str] = []
    for entry in entries:
        path = Path(entry)
        if path.is_dir():
            files.extend(_scan_folder(path, extensions))
        elif single and path.suffix.lower() in MANIFEST_EXTENSIONS:
            if not path.is_file():
                raise FileNotFoundError(f"manifest not found: '{path}'")
            files.extend(_read_manifest(path))
        elif single and not path.exists():
            raise FileNotFoundError(f"{what} source not found: '{path}'")
        else:
            files.append(str(path))  # listed explicitly: a missing file is skipped at read time
    if not files:
        raise ValueError(f"no {what} files ({', '.join(e.lstrip('.') for e in extensions)}) found in {source!r}")
    return files


def list_videos(source: Source, *, with_images: bool = False) -> list[str]:
    """List video files from a folder (recursive), a manifest or a list of paths.

    Args:
        source: a folder (recursive; mp4, mov, avi, mkv, webm, m4v), a manifest (``.csv`` with
            a ``path`` column, ``.jsonl`` with a ``"path"`` key per line, ``.txt`` with one
            path per line; relative paths are resolved against the manifest's folder), or a
            list of paths (files or folders).
        with_images: folders also list image files (png, jpg, ...), which read as one-frame
            videos (for one-frame clips: image latents, image reconstruction).

    Raises:
        FileNotFoundError: the folder/manifest does not exist.
        ValueError: nothing found.
    """
    if with_images:
        return _list_files(source, VIDEO_EXTENSIONS + IMAGE_EXTENSIONS, "video or image")
    return _list_files(source, VIDEO_EXTENSIONS, "video")


def list_images(source: Source) -> list[str]:
    """List image files (png, jpg, jpeg, bmp, tif) like :func:`list_videos`."""
    return _list_files(source, IMAGE_EXTENSIONS, "image")


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------

def _pair(value: int | Sequence[int] | None, name: str) -> tuple[int, int] | None:
    """int or (h, w) -> (h, w)."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    h, w = (int(v) for v in value)
    if h <= 0 or w <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return h, w


def _check_time_range(time_range: tuple[float, float]) -> tuple[float, float]:
    t0, t1 = float(time_range[0]), float(time_range[1])
    if not 0.0 <= t0 < t1 <= 1.0:
        raise ValueError(f"time_range must satisfy 0 <= start < end <= 1, got {time_range}")
    return t0, t1


def _usable_frames(num_frames: int, time_range: tuple[float, float]) -> tuple[int, int]:
    """[lo, hi) frame range; adjacent ranges like (0, .8) and (.8, 1) share no frame."""
    return int(num_frames * time_range[0]), int(num_frames * time_range[1])


def _fit_size(width: int, height: int, short_side: int | None,
              crop_hw: tuple[int, int] | None) -> tuple[int, int] | None:
    """(width, height) to resize to: short side to `short_side`, enlarged if needed to fit the crop.

    None when the native size already fits.
    """
    scale = 1.0 if short_side is None else short_side / min(width, height)
    if crop_hw is not None:
        scale = max(scale, crop_hw[0] / height, crop_hw[1] / width)
    if scale == 1.0:
        return None
    w, h = round(width * scale), round(height * scale)
    if crop_hw is not None:
        w, h = max(w, crop_hw[1]), max(h, crop_hw[0])
    return (w, h) if (w, h) != (width, height) else None


def _crop_offsets(height: int, width: int, crop_hw: tuple[int, int] | None, rng: np.random.Generator,
                  random: bool) -> tuple[int, int, int, int]:
    """(top, left, crop_h, crop_w): random in train mode, centred otherwise."""
    if crop_hw is None:
        return 0, 0, height, width
    ch, cw = crop_hw
    if random:
        return int(rng.integers(0, height - ch + 1)), int(rng.integers(0, width - cw + 1)), ch, cw
    return (height - ch) // 2, (width - cw) // 2, ch, cw


#: Default memory for decoded frames each dataset keeps (per process; see ``frame_cache_mb``).
DEFAULT_FRAME_CACHE_MB = 256.0


class _ByteBudgetCache:
    """Least-recently-used arrays up to a total size in MiB (0: keeps nothing)."""

    def __init__(self, max_mb: float):
        self.max_bytes = int(max_mb * 2**20)
        self.nbytes = 0
        self._arrays: OrderedDict[Hashable, np.ndarray] = OrderedDict()

    def get(self, key: Hashable) -> np.ndarray | None:
        arr = self._arrays.get(key)
        if arr is not None:
            self._arrays.move_to_end(key)
        return arr

    def room(self) -> int:
        """Bytes that can still be added without evicting anything."""
        return self.max_bytes - self.nbytes

    def put(self, key: Hashable, arr: np.ndarray) -> None:
        if arr.nbytes > self.max_bytes or key in self._arrays:
            return
        self._arrays[key] = arr
        self.nbytes += arr.nbytes
        while self.nbytes > self.max_bytes:
            self.nbytes -= self._arrays.popitem(last=False)[1].nbytes


class _SkipItem(Exception):
    """This item cannot be produced, but its file is not broken (e.g. header overcounted frames)."""


# Failures that make an item unusable (as opposed to bugs, which must surface).
_SKIPPABLE = (VideoReadError, OSError, _SkipItem, Image.DecompressionBombError)


def split_epoch_key(key: int | tuple[int, int], default_epoch: int) -> tuple[int, int]:
    """``(epoch, index)`` of a dataset key: an index alone means the dataset's current epoch."""
    if isinstance(key, tuple):
        epoch, index = key
        return int(epoch), int(index)
    return int(default_epoch), int(key)


class _RobustDataset(Dataset):
    """Base: per-item seeded RNG, virtual repeats, deterministic fallback over unreadable files.

    Subclasses implement ``_num_items``, ``_item_key`` (file identity for bad-file bookkeeping)
    and ``_load(item, key_seed)``.
    """

    _FALLBACK_TAG = 0xFA11BAC

    def __init__(self, seed: int, repeats: int = 1):
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        self.seed = int(seed)
        self.repeats = int(repeats)
        self.epoch = 0
        self.bad_files: dict[str, str] = {}  # file -> reason, in this process
        self.num_fallbacks = 0  # items served by another index, in this process

    # -- subclass interface
    def _num_items(self) -> int:
        raise NotImplementedError

    def _item_key(self, item: int) -> str:
        raise NotImplementedError

    def _load(self, item: int, rng_keys: tuple[int, ...]) -> dict[str, Any]:
        raise NotImplementedError

    # -- public
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws (crops, clip starts, flips) items use."""
        self.epoch = int(epoch)

    @property
    def skipped(self) -> int:
        """Number of distinct unreadable files met so far in this process."""
        return len(self.bad_files)

    def __len__(self) -> int:
        return self._num_items() * self.repeats

    def _rng(self, *keys: int) -> np.random.Generator:
        """The RNG of ``(seed, *keys)``; the keys an item gets start with its epoch."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, *keys]))

    def _candidates(self, epoch: int, index: int) -> Iterator[tuple[int, int]]:
        """(attempt, item) pairs: the item itself, then all others in a seeded order."""
        n = self._num_items()
        first = index % n
        yield 0, first
        order = self._rng(epoch, index, self._FALLBACK_TAG).permutation(n)
        yield from enumerate((int(i) for i in order if i != first), start=1)

    def _mark_bad(self, key: str, err: BaseException) -> None:
        if key not in self.bad_files:
            reason = " ".join(str(err).split()) or type(err).__name__
            self.bad_files[key] = reason
            logger.warning("skipping unreadable file '%s': %s", key, reason)

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        """Item ``index`` of the current epoch, or of ``epoch`` for an ``(epoch, index)`` key."""
        epoch, index = split_epoch_key(index, self.epoch)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for dataset of length {len(self)}")
        for attempt, item in self._candidates(epoch, index):
            key = self._item_key(item)
            if key not in self.bad_files:
                try:
                    return self._load(item, (epoch, index, attempt))
                except _SkipItem:
                    pass
                except _SKIPPABLE as err:
                    self._mark_bad(key, err)
            self.num_fallbacks += 1
        example = next(iter(self.bad_files.items()), ("?", "?"))
        raise RuntimeError(f"{type(self).__name__}: no item could be loaded; {len(self.bad_files)} unreadable "
                           f"file(s), e.g. '{example[0]}': {example[1]}")


# --------------------------------------------------------------------------------------------
# Video clips
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _ClipPlan:
    start: int
    interval: int
    size: tuple[int, int] | None  # (width, height) to decode at
    top: int
    left: int
    crop_h: int
    crop_w: int
    flip: bool
    reverse: bool


class VideoClipDataset(_RobustDataset):
    """Random (train) or fixed (eval) clips of ``num_frames`` frames from video files.

    Args:
        source: folder, manifest or list of paths (see :func:`list_videos`).
        num_frames: frames per clip.
        frame_interval: step between clip frames; an int, or an inclusive ``(min, max)`` range
            sampled per item (capped at what the video's length allows, never below min).
        size: short side after resizing (``None``: native size). Frames are enlarged if needed
            so the crop fits.
        crop: int or ``(h, w)``; random crop in train mode, centre crop in eval mode;
            ``None`` keeps the whole frame.
        random_flip: random horizontal flip (train mode).
        random_time_reverse: play the clip backwards with probability 1/2 (train mode).
        train: train mode (random sampling) or eval mode (deterministic: the clip starts at
            the beginning of the usable range with the minimum interval, centre crop, no
            flip/reverse, identical every epoch).
        time_range: fraction ``[start, end)`` of each video's frames usable, e.g. ``(0, 0.8)``
            for training and ``(0.8, 1.0)`` for held-out validation (disjoint frames).
        seed: base seed; items draw from ``(seed, epoch, index)``.
        repeats: clips per video per epoch (index ``i`` reads video ``i % num_videos``).
        frame_cache_mb: memory for decoded frames kept between clips (per process; ``0``:
            none). Small datasets then decode each frame once instead of once per clip.

    Items: ``{"video": float32 (3, T, H, W) in [-1, 1], "path": str, "start": int}``.
    """

    def __init__(self, source: Source, num_frames: int = 17, frame_interval: int | tuple[int, int] = 1,
                 size: int | None = 256, crop: int | tuple[int, int] | None = 256, random_flip: bool = True,
                 random_time_reverse: bool = False, train: bool = True,
                 time_range: tuple[float, float] = (0.0, 1.0), seed: int = 0, repeats: int = 1,
                 frame_cache_mb: float = DEFAULT_FRAME_CACHE_MB):
        super().__init__(seed, repeats)
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if isinstance(frame_interval, (int, np.integer)):
            frame_interval = (int(frame_interval), int(frame_interval))
        lo, hi = (int(v) for v in frame_interval)
        if not 1 <= lo <= hi:
            raise ValueError(f"frame_interval must be >= 1 (and min <= max), got {frame_interval}")
        if size is not None and size <= 0:
            raise ValueError(f"size must be positive or None, got {size}")
        self.paths = list_videos(source)
        self.num_frames = int(num_frames)
        self.frame_interval = (lo, hi)
        self.size = size
        self.crop = _pair(crop, "crop")
        self.random_flip = random_flip
        self.random_time_reverse = random_time_reverse
        self.train = train
        self.time_range = _check_time_range(time_range)
        self._info: dict[str, VideoInfo] = {}  # probe cache, filled lazily in each worker (true counts once learned)
        self._header_frames: dict[str, int] = {}  # the probed counts: where time_range's bounds lie
        self._frame_cache = _ByteBudgetCache(frame_cache_mb)

    def _num_items(self) -> int:
        return len(self.paths)

    def _item_key(self, item: int) -> str:
        return self.paths[item]

    def _probe(self, path: str) -> VideoInfo:
        if path not in self._info:
            info = self._info[path] = probe_video(path)
            self._header_frames[info.path] = info.num_frames
        return self._info[path]

    def _usable(self, info: VideoInfo) -> tuple[int, int]:
        """[lo, hi) of ``time_range`` computed from the header count, as on every side of the split (a
        training and a validation set of the same videos): a true, smaller count learned on a failed read
        only cuts the end, else the held-out range would slide into frames training may have used."""
        lo, hi = _usable_frames(self._header_frames.get(info.path, info.num_frames), self.time_range)
        return lo, min(hi, info.num_frames)

    def _plan(self, info: VideoInfo, rng: np.random.Generator) -> _ClipPlan:
        """Draw the clip's frames and augmentations; raises VideoReadError if too short."""
        lo, hi = self._usable(info)
        usable = max(hi - lo, 0)
        min_iv, max_iv = self.frame_interval
        span_steps = self.num_frames - 1
        fit_iv = (usable - 1) // span_steps if span_steps else max_iv
        if usable < 1 or fit_iv < min_iv:
            need = span_steps * min_iv + 1
            header = self._header_frames.get(info.path, info.num_frames)
            decodable = f", {info.num_frames} decodable" if info.num_frames < header else ""
            raise VideoReadError(info.path, f"too short: {usable} usable frames (of {header}{decodable}, "
                                            f"time_range {self.time_range}), a clip needs {need}")
        random = self.train
        interval = int(rng.integers(min_iv, min(max_iv, fit_iv) + 1)) if random else min_iv
        span = span_steps * interval + 1
        start = lo + (int(rng.integers(0, usable - span + 1)) if random else 0)
        size = _fit_size(info.width, info.height, self.size, self.crop)
        width, height = size if size is not None else (info.width, info.height)
        top, left, ch, cw = _crop_offsets(height, width, self.crop, rng, random)
        flip = bool(random and self.random_flip and rng.random() < 0.5)
        reverse = bool(random and self.random_time_reverse and rng.random() < 0.5)
        return _ClipPlan(start, interval, size, top, left, ch, cw, flip, reverse)

    def _load(self, item: int, rng_keys: tuple[int, ...]) -> dict[str, Any]:
        path = self.paths[item]
        info = self._probe(path)
        for _ in range(2):
            plan = self._plan(info, self._rng(*rng_keys))
            try:
                frames = self._read_frames(path, plan)
            except VideoReadError as err:
                # Headers may overcount frames; learn the true length and redraw once (within the same range).
                if err.total_frames is not None and 0 < err.total_frames < info.num_frames:
                    info = self._info[path] = dataclasses.replace(info, num_frames=err.total_frames)
                    continue
                raise
            frames = frames[:, plan.top:plan.top + plan.crop_h, plan.left:plan.left + plan.crop_w]
            if plan.flip:
                frames = frames.flip(2)
            if plan.reverse:
                frames = frames.flip(0)
            return {"video": frames_to_tensor(frames.contiguous()), "path": path, "start": plan.start}
        raise VideoReadError(path, "frame count changed while reading")

    def fill_frame_cache(self) -> int:
        """Decode the usable frames of each video into the frame cache (while they fit); returns the count.

        One sequential decode per video instead of one seek per clip. The trainer calls it once in
        the main process before its data workers start, so every worker starts with a warm cache.
        Unreadable videos are left to the items that read them (which report or skip them).
        """
        added = 0
        for path in self.paths:
            try:
                info = self._probe(path)
                lo, hi = self._usable(info)
                size = _fit_size(info.width, info.height, self.size, self.crop)
                width, height = size if size is not None else (info.width, info.height)
                if hi <= lo or (hi - lo) * width * height * 3 > self._frame_cache.room():
                    continue
                frames = read_video(path, start=lo, num_frames=hi - lo, resize=size).frames
            except VideoReadError:
                continue
            for k, frame in enumerate(frames):
                self._frame_cache.put((path, lo + k, size), frame.numpy().copy())
            added += len(frames)
        return added

    def _read_frames(self, path: str, plan: _ClipPlan) -> torch.Tensor:
        """uint8 ``(T, H, W, 3)`` frames of the plan (uncropped), from the cache when all are there."""
        keys = [(path, plan.start + i * plan.interval, plan.size) for i in range(self.num_frames)]
        cached = [self._frame_cache.get(key) for key in keys]
        if all(frame is not None for frame in cached):
            return torch.from_numpy(np.stack(cached))
        frames = read_video(path, start=plan.start, num_frames=self.num_frames, stride=plan.interval,
                            resize=plan.size).frames
        for key, frame in zip(keys, frames, strict=True):
            self._frame_cache.put(key, frame.numpy().copy())
        return frames


# --------------------------------------------------------------------------------------------
# Still images
# --------------------------------------------------------------------------------------------

# Colour photographs bundled with scikit-image (no download needed), short side >= 256.
# "cat" is the same picture as "chelsea"; "colorwheel"/"logo" are synthetic graphics.
SKIMAGE_IMAGES = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry",
                  "motorcycle_left", "motorcycle_right", "retina", "rocket")
_SKIMAGE_MIN_SIDE = 256


@lru_cache(maxsize=len(SKIMAGE_IMAGES))  # ~25 MB for all of them
def _skimage_array(name: str) -> np.ndarray:
    """uint8 (H, W, 3) array of a scikit-image sample; raises OSError if unavailable offline."""
    import skimage.data

    try:
        if name.startswith("motorcycle_"):
            left, right, _ = skimage.data.stereo_motorcycle()
            arr = left if name.endswith("left") else right
        else:
            arr = getattr(skimage.data, name)()
    except Exception as err:  # pooch downloads, missing optional deps...: treat as unavailable
        raise OSError(f"skimage sample {name!r} unavailable: {err}") from None
    return np.ascontiguousarray(arr)


@lru_cache(maxsize=1)
def available_skimage_images() -> tuple[str, ...]:
    """Names from :data:`SKIMAGE_IMAGES` that load offline as RGB with short side >= 256."""
    names = []
    for name in SKIMAGE_IMAGES:
        try:
            arr = _skimage_array(name)
        except OSError:
            continue
        if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8 and min(arr.shape[:2]) >= _SKIMAGE_MIN_SIDE:
            names.append(name)
    _skimage_array.cache_clear()  # keep workers lean; items reload on demand
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class _ImageItem:
    kind: str  # "file", "skimage" or "video"
    path: str
    frame: int = 0
    width: int = 0  # video frames only (from the probe)
    height: int = 0

    @property
    def name(self) -> str:
        if self.kind == "skimage":
            return f"skimage:{self.path}"
        return f"{self.path}#{self.frame}" if self.kind == "video" else self.path


def _resize_rgb(arr: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resized (or copied: callers may hold a cached array) writable uint8 array."""
    if size is None:
        return np.array(arr)
    # PIL filters scale their support when shrinking, i.e. they antialias.
    return np.array(Image.fromarray(arr).resize(size, Image.Resampling.BICUBIC))


class ImageDataset(_RobustDataset):
    """Still images (and optionally frames of videos) as single-frame clips ``(3, 1, H, W)``.

    Args:
        sources: one source or a list of them. A source is ``"skimage"`` (the colour photographs
            bundled with scikit-image, see :func:`available_skimage_images`), a folder (images
            recursively; also videos when ``video_frames_every`` is set), a manifest, or a
            file path.
        size: short side after resizing (``None``: native); enlarged if needed to fit the crop.
        crop: int or ``(h, w)``; random in train mode, centred in eval mode; ``None``: whole image.
        random_flip: random horizontal flip (train mode).
        train: train or eval mode.
        seed: base seed; items draw from ``(seed, epoch, index)``.
        video_frames_every: take every N-th frame of each video found in the sources
            (``None``: ignore videos).
        time_range: fraction of each video's frames to take frames from (see VideoClipDataset).
        repeats: passes over the images per epoch.
        frame_cache_mb: memory for decoded video frames kept between items (per process;
            ``0``: none): decoding one frame means seeking to a keyframe and decoding from
            there, which costs more than a training step's share of the batch.

    Items: ``{"video": float32 (3, 1, H, W) in [-1, 1], "path": str}``.
    """

    def __init__(self, sources: Source, size: int | None = 256, crop: int | tuple[int, int] | None = 256,
                 random_flip: bool = True, train: bool = True, seed: int = 0, *,
                 video_frames_every: int | None = None, time_range: tuple[float, float] = (0.0, 1.0),
                 repeats: int = 1, frame_cache_mb: float = DEFAULT_FRAME_CACHE_MB):
        super().__init__(seed, repeats)
        if video_frames_every is not None and video_frames_every < 1:
            raise ValueError(f"video_frames_every must be >= 1 or None, got {video_frames_every}")
        self.size = size
        self.crop = _pair(crop, "crop")
        self.random_flip = random_flip
        self.train = train
        self.video_frames_every = video_frames_every
        self.time_range = _check_time_range(time_range)
        self.items = self._collect_items(sources)
        if not self.items:
            raise ValueError(f"no usable images found in {sources!r}")
        self._frame_cache = _ByteBudgetCache(frame_cache_mb)

    # -- item list
    def _collect_items(self, sources: Source) -> list[_ImageItem]:
        if isinstance(sources, (str, os.PathLike)):
            sources = [sources]
        items: list[_ImageItem] = []
        extensions = IMAGE_EXTENSIONS + (VIDEO_EXTENSIONS if self.video_frames_every else ())
        for source in sources:
            if str(source) == "skimage":
                items.extend(_ImageItem("skimage", name) for name in available_skimage_images())
                continue
            for path in _list_files(source, extensions, "image"):
                if Path(path).suffix.lower() in VIDEO_EXTENSIONS:
                    if self.video_frames_every:
                        items.extend(self._video_items(path))
                else:
                    items.append(_ImageItem("file", path))
        return items

    def _video_items(self, path: str) -> list[_ImageItem]:
        try:
            info = probe_video(path)
        except VideoReadError as err:
            self._mark_bad(path, err)
            return []
        lo, hi = _usable_frames(info.num_frames, self.time_range)
        return [_ImageItem("video", path, k, info.width, info.height)
                for k in range(lo, hi, self.video_frames_every)]

    def item_counts(self) -> tuple[int, int, int]:
        """``(stills, video frames, videos)`` among the items: what a run logs about its data."""
        frames = [it.path for it in self.items if it.kind == "video"]
        return len(self.items) - len(frames), len(frames), len(set(frames))

    # -- loading
    def _num_items(self) -> int:
        return len(self.items)

    def _item_key(self, item: int) -> str:
        it = self.items[item]
        return it.name if it.kind == "skimage" else it.path

    def load_rgb(self, item: int, short_side: int | None, min_hw: tuple[int, int] | None) -> np.ndarray:
        """uint8 (H, W, 3) of an item, short side resized to `short_side`, at least `min_hw`."""
        it = self.items[item]
        if it.kind == "video":
            size = _fit_size(it.width, it.height, short_side, min_hw)
            key = (item, size)
            frame = self._frame_cache.get(key)
            if frame is None:
                frame = self._decode_frame(it, size)
                self._frame_cache.put(key, frame)
            return frame.copy()  # callers flip/crop views of it
        # stills are cached resized too: a bicubic resize costs ~10x a crop of a cached frame
        key = (item, short_side, min_hw)
        arr = self._frame_cache.get(key)
        if arr is None:
            arr = self._read_still(it)
            arr = _resize_rgb(arr, _fit_size(arr.shape[1], arr.shape[0], short_side, min_hw))
            self._frame_cache.put(key, arr)
        return arr.copy()

    @staticmethod
    def _read_still(it: _ImageItem) -> np.ndarray:
        if it.kind == "skimage":
            return _skimage_array(it.path)
        with Image.open(it.path) as img:
            return np.asarray(img.convert("RGB"))

    def fill_frame_cache(self) -> int:
        """Decode the video frames among the items into the frame cache (while they fit); returns the count.

        One sequential decode per video instead of a seek per frame (see
        :meth:`VideoClipDataset.fill_frame_cache`).
        """
        by_path: dict[str, list[int]] = {}
        for index, it in enumerate(self.items):
            if it.kind == "video":
                by_path.setdefault(it.path, []).append(index)
        added = 0
        for path, indices in by_path.items():
            first = self.items[indices[0]]
            size = _fit_size(first.width, first.height, self.size, self.crop)
            width, height = size if size is not None else (first.width, first.height)
            if len(indices) * width * height * 3 > self._frame_cache.room():
                continue
            try:  # the items of a video are frames lo, lo + every, ... (see _video_items)
                frames = read_video(path, start=first.frame, num_frames=len(indices), stride=self.video_frames_every,
                                    resize=size).frames
            except VideoReadError:
                continue
            for index, frame in zip(indices, frames, strict=True):
                self._frame_cache.put((index, size), frame.numpy().copy())
            added += len(frames)
        return added

    @staticmethod
    def _decode_frame(it: _ImageItem, size: tuple[int, int] | None) -> np.ndarray:
        try:
            return read_video(it.path, start=it.frame, num_frames=1, resize=size).frames[0].numpy()
        except VideoReadError as err:
            if err.total_frames is not None and it.frame >= err.total_frames > 0:
                raise _SkipItem from None  # header overcounted; the file itself is fine
            raise

    def _load(self, item: int, rng_keys: tuple[int, ...]) -> dict[str, Any]:
        rng = self._rng(*rng_keys)
        arr = self.load_rgb(item, self.size, self.crop)
        top, left, ch, cw = _crop_offsets(arr.shape[0], arr.shape[1], self.crop, rng, self.train)
        frame = torch.from_numpy(np.ascontiguousarray(arr[top:top + ch, left:left + cw]))
        if self.train and self.random_flip and rng.random() < 0.5:
            frame = frame.flip(1)
        return {"video": frames_to_tensor(frame[None].contiguous()), "path": self.items[item].name}


# --------------------------------------------------------------------------------------------
# Synthetic motion from stills
# --------------------------------------------------------------------------------------------

class MovingCropDataset(_RobustDataset):
    """Clips with real (rigid) motion synthesised from still photographs.

    A crop window travels along a random straight line (sub-pixel, bilinear resampling) while
    its zoom changes linearly between two values drawn from ``zoom_range``.

    Args:
        images_source: image sources as for :class:`ImageDataset` (e.g. ``"skimage"``).
        num_frames: frames per clip.
        crop: output int or ``(h, w)``.
        max_speed_px: maximal window speed in source pixels per frame (the speed is drawn from
            ``[max/4, max]`` in a random direction, reduced if the path would leave the image).
        zoom_range: ``(min, max)`` zoom factors (>1 magnifies: the window covers crop/zoom pixels).
        seed: base seed; items draw from ``(seed, epoch, index)``.
        size: short side the photograph is resized to first; default ``crop / min_zoom +
            max_speed * (T - 1)``, so a full-speed path fits along the short side.
        random_flip: flip the photograph horizontally with probability 1/2.
        repeats: clips per photograph per epoch.
        video_frames_every / time_range: also use every N-th frame of the videos in the sources, from
            that fraction of each video (as for :class:`ImageDataset`; ``None``: ignore videos).

    Items: ``{"video": float32 (3, T, H, W) in [-1, 1], "path": str}``.
    """

    def __init__(self, images_source: Source, num_frames: int = 17, crop: int | tuple[int, int] = 256,
                 max_speed_px: float = 8.0, zoom_range: tuple[float, float] = (1.0, 1.1), seed: int = 0, *,
                 size: int | None = None, random_flip: bool = True, repeats: int = 1,
                 video_frames_every: int | None = None, time_range: tuple[float, float] = (0.0, 1.0)):
        super().__init__(seed, repeats)
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if max_speed_px < 0:
            raise ValueError(f"max_speed_px must be >= 0, got {max_speed_px}")
        z0, z1 = float(zoom_range[0]), float(zoom_range[1])
        if not 0 < z0 <= z1:
            raise ValueError(f"zoom_range must satisfy 0 < min <= max, got {zoom_range}")
        self.num_frames = int(num_frames)
        self.crop = _pair(crop, "crop")
        self.max_speed_px = float(max_speed_px)
        self.zoom_range = (z0, z1)
        self.random_flip = random_flip
        window = max(self.crop) / z0
        self.size = size if size is not None else math.ceil(window + self.max_speed_px * (self.num_frames - 1))
        self.images = ImageDataset(images_source, size=None, crop=None, random_flip=False, train=False, seed=seed,
                                   video_frames_every=video_frames_every, time_range=time_range)
        self.bad_files = self.images.bad_files  # one bookkeeping for both

    def _num_items(self) -> int:
        return self.images._num_items()

    def _item_key(self, item: int) -> str:
        return self.images._item_key(item)

    def _path(self, rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Window centres x(t), y(t) in pixels and zoom z(t), all staying inside the image."""
        steps = max(self.num_frames - 1, 1)
        ch, cw = self.crop
        z_start, z_end = rng.uniform(*self.zoom_range, size=2)
        win_h, win_w = ch / min(z_start, z_end), cw / min(z_start, z_end)  # largest window on the path
        angle = rng.uniform(0.0, 2.0 * math.pi)
        speed = rng.uniform(0.25, 1.0) * self.max_speed_px
        room_x, room_y = max(width - win_w, 0.0), max(height - win_h, 0.0)
        vx = float(np.clip(speed * math.cos(angle), -room_x / steps, room_x / steps))
        vy = float(np.clip(speed * math.sin(angle), -room_y / steps, room_y / steps))
        x0 = win_w / 2 + max(0.0, -vx * steps) + rng.uniform(0.0, 1.0) * (room_x - abs(vx) * steps)
        y0 = win_h / 2 + max(0.0, -vy * steps) + rng.uniform(0.0, 1.0) * (room_y - abs(vy) * steps)
        t = np.arange(self.num_frames, dtype=np.float64)
        return x0 + vx * t, y0 + vy * t, z_start + (z_end - z_start) * t / steps

    def _load(self, item: int, rng_keys: tuple[int, ...]) -> dict[str, Any]:
        rng = self._rng(*rng_keys)
        ch, cw = self.crop
        window_max = (math.ceil(ch / self.zoom_range[0]), math.ceil(cw / self.zoom_range[0]))
        arr = self.images.load_rgb(item, self.size, window_max)
        if self.random_flip and rng.random() < 0.5:
            arr = arr[:, ::-1]
        height, width = arr.shape[:2]
        xs, ys, zs = self._path(rng, height, width)
        # affine_grid maps output coords in [-1, 1] to input coords in [-1, 1] (align_corners=False:
        # -1/+1 are the outer pixel edges, so a centre c in pixels is 2c/W - 1).
        theta = torch.zeros(self.num_frames, 2, 3, dtype=torch.float32)
        theta[:, 0, 0] = torch.from_numpy(cw / zs / width)
        theta[:, 1, 1] = torch.from_numpy(ch / zs / height)
        theta[:, 0, 2] = torch.from_numpy(2.0 * xs / width - 1.0)
        theta[:, 1, 2] = torch.from_numpy(2.0 * ys / height - 1.0)
        image = frames_to_tensor(torch.from_numpy(np.ascontiguousarray(arr))[None])  # (3, 1, H, W)
        image = image.permute(1, 0, 2, 3).expand(self.num_frames, -1, -1, -1)
        grid = F.affine_grid(theta, [self.num_frames, 3, ch, cw], align_corners=False)
        clip = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return {"video": clip.permute(1, 0, 2, 3).clamp_(-1.0, 1.0).contiguous(),
                "path": self.images.items[item].name}


# --------------------------------------------------------------------------------------------
# Buckets: several shapes in one run
# --------------------------------------------------------------------------------------------

class BucketBatchSampler(Sampler[list[int]]):
    """Batches whose items all come from one bucket (hence share one shape).

    Args:
        bucket_of: bucket id of every dataset index.
        batch_size: items per batch.
        shuffle: shuffle items within buckets and the order of batches.
        seed: base seed; each epoch's order derives from ``(seed, epoch)``.
        drop_last: drop each bucket's last incomplete batch.
        weights: optional sampling weight per bucket id (sequence or mapping). With weights an
            epoch holds ``round(num_samples * w / sum(w))`` items from each bucket, drawn
            without replacement and cycling through the bucket if it is smaller. Without
            weights every index appears once per epoch.
        num_samples: epoch size when weights are given (default ``len(bucket_of)``).
        tag_epoch: yield ``(epoch, index)`` keys instead of indices, so that persistent
            DataLoader workers draw each epoch's crops without ``set_epoch`` reaching them.

    Resuming: ``state_dict(batches_consumed)`` records the epoch and position;
    ``load_state_dict`` makes the next iteration skip the consumed batches of that epoch
    (``len()`` then counts the remaining ones).
    """

    def __init__(self, bucket_of: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, *, weights: Sequence[float] | Mapping[int, float] | None = None,
                 num_samples: int | None = None, tag_epoch: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.bucket_of = np.asarray(bucket_of, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.tag_epoch = tag_epoch
        self.buckets = {int(b): np.flatnonzero(self.bucket_of == b) for b in np.unique(self.bucket_of)}
        self.counts = self._bucket_counts(weights, num_samples)
        self.epoch = 0
        self._resume = 0  # batches to skip in the next iteration
        self._yielded = 0  # batches handed out by the current iteration

    def _bucket_counts(self, weights, num_samples: int | None) -> dict[int, int]:
        if weights is None:
            return {b: len(idx) for b, idx in self.buckets.items()}
        w = {b: float(weights[b]) for b in self.buckets}
        if any(v < 0 for v in w.values()) or sum(w.values()) <= 0:
            raise ValueError(f"bucket weights must be >= 0 with a positive sum, got {w}")
        total = len(self.bucket_of) if num_samples is None else int(num_samples)
        norm = sum(w.values())
        return {b: int(round(total * v / norm)) for b, v in w.items()}

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (its shuffle order); resets any pending resume position."""
        if int(epoch) != self.epoch:
            self._resume = 0
        self.epoch = int(epoch)

    def _draw(self, idx: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` indices from a bucket: a permutation, repeated with fresh ones if needed."""
        if count == 0 or len(idx) == 0:
            return idx[:0]
        reps = -(-count // len(idx))
        parts = [rng.permutation(idx) if self.shuffle else idx for _ in range(reps)]
        return np.concatenate(parts)[:count]

    def _epoch_batches(self) -> list[list[int]]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch]))
        batches: list[list[int]] = []
        for b in sorted(self.buckets):
            chosen = self._draw(self.buckets[b], self.counts[b], rng)
            for i in range(0, len(chosen), self.batch_size):
                batch = chosen[i:i + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append([int(j) for j in batch])
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._epoch_batches()
        start, self._resume = self._resume, 0
        self._yielded = start
        for batch in batches[start:]:
            self._yielded += 1
            yield [(self.epoch, j) for j in batch] if self.tag_epoch else batch

    def __len__(self) -> int:
        per_bucket = (c // self.batch_size if self.drop_last else -(-c // self.batch_size)
                      for c in self.counts.values())
        return max(sum(per_bucket) - self._resume, 0)

    def state_dict(self, batches_consumed: int | None = None) -> dict[str, int]:
        """Epoch and position. Pass the number of batches the training loop actually consumed:
        DataLoader workers prefetch, so the sampler's own count (the default) runs ahead."""
        consumed = self._yielded if batches_consumed is None else int(batches_consumed)
        return {"epoch": self.epoch, "batches_consumed": consumed, "seed": self.seed}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Resume: the next iteration continues epoch ``state["epoch"]`` after the consumed batches."""
        if "seed" in state and int(state["seed"]) != self.seed:
            raise ValueError(f"sampler state was saved with seed {state['seed']}, this sampler has {self.seed}")
        self.epoch = int(state["epoch"])
        self._resume = int(state["batches_consumed"])


class MultiBucketDataset(Dataset):
    """Concatenation of datasets, each its own bucket (shape), with sampling weights.

    Args:
        entries: ``(dataset, weight)`` pairs; weights are relative shares of each epoch's items
            (used by :meth:`batch_sampler`).

    Items are the child's dict plus ``"bucket"`` (the entry's position). ``bucket_of`` lists
    the bucket of every index, for :class:`BucketBatchSampler`.
    """

    def __init__(self, entries: Sequence[tuple[Dataset, float]]):
        if not entries:
            raise ValueError("MultiBucketDataset needs at least one (dataset, weight) entry")
        self.datasets = [ds for ds, _ in entries]
        self.weights = [float(w) for _, w in entries]
        sizes = [len(ds) for ds in self.datasets]
        if any(n == 0 for n in sizes):
            raise ValueError(f"empty dataset in MultiBucketDataset (sizes {sizes})")
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        self.bucket_of = [k for k, n in enumerate(sizes) for _ in range(n)]

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        """Item ``index``; an ``(epoch, index)`` key passes its epoch on to the child dataset."""
        epoch, index = index if isinstance(index, tuple) else (None, index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for dataset of length {len(self)}")
        k = bisect.bisect_right(self.offsets, index) - 1
        child_index = index - self.offsets[k]
        item = dict(self.datasets[k][child_index if epoch is None else (epoch, child_index)])
        item["bucket"] = k
        return item

    def fill_frame_caches(self) -> int:
        """Fill the frame cache of every child dataset that has one; returns the frames decoded."""
        return sum(ds.fill_frame_cache() for ds in self.datasets if hasattr(ds, "fill_frame_cache"))

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to every child dataset that supports it."""
        for ds in self.datasets:
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)

    @property
    def skipped(self) -> int:
        return sum(getattr(ds, "skipped", 0) for ds in self.datasets)

    def batch_sampler(self, batch_size: int, *, shuffle: bool = True, seed: int = 0, drop_last: bool = True,
                      num_samples: int | None = None) -> BucketBatchSampler:
        """A :class:`BucketBatchSampler` over this dataset using its weights."""
        return BucketBatchSampler(self.bucket_of, batch_size, shuffle, seed, drop_last,
                                  weights=self.weights, num_samples=num_samples)


def clip_collate(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack ``"video"`` tensors (all must share one shape); other keys: lists or int tensors."""
    if not batch:
        raise ValueError("cannot collate an empty batch")
    shapes = {tuple(item["video"].shape) for item in batch}
    if len(shapes) > 1:
        raise ValueError(f"a batch mixes clip shapes {sorted(shapes)}; use BucketBatchSampler")
    out: dict[str, Any] = {"video": torch.stack([item["video"] for item in batch])}
    for key in batch[0]:
        if key == "video":
            continue
        values = [item[key] for item in batch]
        out[key] = default_collate(values) if all(isinstance(v, (int, float)) for v in values) else values
    return out
