"""What a training config builds: the model with its initial weights, the training data, the
validation clips.

:func:`build_model_from_config` turns the ``model`` section into a model (a preset, a class and
its config, weights from a folder, KTC inflation of an image VAE, optionally widened first);
:func:`build_train_data` turns ``data.buckets`` into one dataset per bucket behind a bucketed,
per-process sampler; :func:`build_validation` draws the fixed held-out clips.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ivvae.io import resolve_source

from .checkpoint import resolve_pretrained
from .config import BucketConfig, ConfigError, TrainConfig, model_class_name, unknown_model_class
from .data import (
    VIDEO_EXTENSIONS,
    BucketBatchSampler,
    ImageDataset,
    MovingCropDataset,
    MultiBucketDataset,
    VideoClipDataset,
    list_videos,
)

__all__ = [
    "TrainBatchSampler",
    "TrainDataset",
    "bucket_name",
    "bucket_short_side",
    "build_model_from_config",
    "build_train_data",
    "build_validation",
    "build_validation_clips",
]

logger = logging.getLogger("ivvae.train")


# ============================================================================================
# Model
# ============================================================================================


def _import_class(path: str) -> type:
    """The model class ``model.class`` names: only a class of the IV-VAE family (:data:`.config.MODEL_CLASSES`),
    checked again here for configs built in Python without :func:`load_config`'s validation."""
    from ivvae import models

    name = model_class_name(path)
    if name is None:
        raise ConfigError(unknown_model_class(path))
    return getattr(models, name)


def _arguments(cls: type) -> str:
    """The constructor arguments of ``cls``, for a message about a misspelt one."""
    params = [n for n, p in inspect.signature(cls.__init__).parameters.items()
              if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return ", ".join(params) if params else "no arguments"


def _grown(model: nn.Module, grow_cfg, log: logging.Logger) -> nn.Module:
    """``model`` widened as ``model.init.grow`` asks (unchanged without it)."""
    if grow_cfg is None:
        return model
    from ivvae.grow import GrowthError, grow

    try:
        grown, report = grow(model, channel_multipliers=grow_cfg.channel_multipliers, base_channels=grow_cfg.base_channels,
                             new_weight_scale=grow_cfg.new_weight_scale, seed=grow_cfg.seed)
    except GrowthError as err:
        raise ConfigError(f"model.init.grow: {err}") from None
    log.info("%s", report.summary())
    return grown


def _load_init_model(key: str, path: str, weights: str) -> nn.Module:
    """The model ``model.init.<key>`` names; a loading error names that key."""
    try:
        return resolve_pretrained(path, weights)
    except (FileNotFoundError, ValueError) as err:
        raise type(err)(f"model.init.{key}: {err}") from None


def build_model_from_config(mcfg, log: logging.Logger = logger) -> nn.Module:
    """The model a ``model`` config section describes, with its initial weights (train mode)."""
    from ivvae.models import build_model
    from ivvae.models.presets import PRESETS

    init = mcfg.init
    model = None
    if mcfg.preset:
        try:
            model = build_model(mcfg.preset, **mcfg.overrides)
        except TypeError as err:
            raise ConfigError(f"model.overrides: {err}") from None
        except ValueError as err:
            key = "model.overrides" if mcfg.overrides and mcfg.preset in PRESETS else "model.preset"
            raise ConfigError(f"{key}: {err}") from None
    elif mcfg.class_name or mcfg.config:
        cls = _import_class(mcfg.class_name or "ivvae.models.IVVAE")
        try:
            model = cls(**mcfg.config)
        except TypeError as err:  # an unknown or missing argument
            raise ConfigError(f"model.config: {err}; {cls.__name__} takes {_arguments(cls)}") from None
        except ValueError as err:  # a value the model refuses (e.g. latent_channels <= 0)
            raise ConfigError(f"model.config: {err}") from None

    if init.from_pretrained:
        loaded = _grown(_load_init_model("from_pretrained", init.from_pretrained, init.weights), init.grow, log)
        if model is None:
            model = loaded
        else:
            result = model.load_state_dict(loaded.state_dict(), strict=init.strict)
            if not init.strict and (result.missing_keys or result.unexpected_keys):
                log.warning("init.from_pretrained: %d missing, %d unexpected keys", len(result.missing_keys), len(result.unexpected_keys))
        log.info("initialised from %s", init.from_pretrained)
    elif init.inflate_from:
        try:
            from ivvae import inflate as inflation
        except ImportError as err:  # the inflation module is optional for other stages
            raise ImportError(f"model.init.inflate_from needs ivvae.inflate: {err}") from err
        image_vae = _grown(_load_init_model("inflate_from", init.inflate_from, init.weights), init.grow, log)
        if model is None:
            model, report = inflation.inflate_image_vae(image_vae, init.mode or "ktc", temporal_frame=init.temporal_frame,
                                                        allow_unfilled=init.allow_unfilled)
        else:
            mode = inflation.infer_mode(image_vae, model)
            if init.mode is not None and init.mode != mode:
                raise ConfigError(f"model.init.mode is {init.mode!r} but the image VAE and the model fit mode {mode!r}")
            report = inflation.inflate(image_vae, model, temporal_frame=init.temporal_frame, allow_unfilled=init.allow_unfilled)
        log.info("inflated from %s: %s", init.inflate_from, report.summary().splitlines()[0])
    if model is None:
        raise ConfigError("model: nothing to build (give preset, class/config, init.from_pretrained or init.inflate_from)")
    return model.float().train()


# ============================================================================================
# Data
# ============================================================================================


def _video_files(sources: Sequence[str], key: str) -> list[str]:
    files: list[str] = []
    for source in sources:
        try:
            files.extend(list_videos(resolve_source(source)))
        except (FileNotFoundError, ValueError) as err:
            raise ConfigError(f"{key}: {err}") from None
    return files


def _image_sources(sources: Sequence[str]) -> list[str]:
    return [resolve_source(s) for s in sources]


def _pair_or_int(value):
    return tuple(value) if isinstance(value, list) else value


def bucket_name(b: BucketConfig) -> str:
    crop = b.crop if not isinstance(b.crop, list) else f"{b.crop[0]}x{b.crop[1]}"
    frames = 1 if b.kind == "image" else b.num_frames
    return f"{b.kind}_{frames}x{crop if crop is not None else b.size}"


def bucket_short_side(b: BucketConfig) -> int | None:
    if isinstance(b.crop, list):
        return min(b.crop)
    return b.crop if b.crop is not None else b.size


class TrainBatchSampler(BucketBatchSampler):
    """Bucketed batches with a batch size per bucket, sharded over processes, resumable.

    A :class:`ivvae.train.data.BucketBatchSampler` (same epoch draws, same ``state_dict`` /
    ``load_state_dict`` protocol) whose batches use each bucket's own batch size; every process
    takes every ``num_replicas``-th batch of the shuffled epoch (all processes get equally many).
    """

    def __init__(self, bucket_of, batch_sizes: Sequence[int], seed: int = 0, *, weights=None, num_samples=None,
                 num_replicas: int = 1, rank: int = 0, tag_epoch: bool = False) -> None:
        super().__init__(bucket_of, 1, shuffle=True, seed=seed, drop_last=True, weights=weights, num_samples=num_samples,
                         tag_epoch=tag_epoch)
        self.batch_sizes = {int(b): int(s) for b, s in enumerate(batch_sizes)}
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        if len(self) == 0:
            raise ValueError("an epoch holds no batch for every process: raise data.samples_per_epoch or lower batch sizes")

    def _epoch_batches(self) -> list[list[int]]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch]))
        batches: list[list[int]] = []
        for b in sorted(self.buckets):
            chosen = self._draw(self.buckets[b], self.counts[b], rng)
            size = self.batch_sizes[b]
            for i in range(0, len(chosen) - size + 1, size):
                batches.append([int(j) for j in chosen[i:i + size]])
        batches = [batches[i] for i in rng.permutation(len(batches))]
        usable = len(batches) // self.num_replicas * self.num_replicas
        return batches[self.rank:usable:self.num_replicas]

    def __len__(self) -> int:
        total = sum(self.counts[b] // self.batch_sizes[b] for b in self.counts)
        return max(total // self.num_replicas - self._resume, 0)


class TrainDataset(MultiBucketDataset):
    """Adds the unreadable files met so far in this process (a DataLoader worker) to every item.

    ``item["bad_files"]``: ``(bucket, path, reason)`` triples, which the trainer counts and
    reports (the workers persist across epochs, so each keeps skipping what it has met).
    """

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        item = super().__getitem__(index)
        item["bad_files"] = tuple((k, path, reason) for k, ds in enumerate(self.datasets)
                                  for path, reason in getattr(ds, "bad_files", {}).items())
        return item


def build_train_data(cfg: TrainConfig, num_replicas: int = 1, rank: int = 0):
    """The training dataset (one bucket per config bucket), its sampler, the buckets used and their names."""
    d = cfg.data
    entries, batch_sizes, names = [], [], []
    time_range = tuple(d.train_time_range)
    buckets = [(i, b) for i, b in enumerate(d.buckets) if b.weight > 0]
    datasets = []
    for i, b in buckets:
        key = f"data.buckets.{i}"
        seed = cfg.seed * 1000 + i
        crop = _pair_or_int(b.crop)
        if b.kind == "video":
            files = _video_files(b.sources or d.sources, f"{key}.sources" if b.sources else "data.sources")
            ds = VideoClipDataset(files, num_frames=b.num_frames, frame_interval=_pair_or_int(b.frame_interval), size=b.size,
                                  crop=crop, random_flip=d.random_flip, random_time_reverse=d.random_time_reverse, train=True,
                                  time_range=time_range, seed=seed, frame_cache_mb=d.frame_cache_mb)
        elif b.kind == "image":
            try:
                ds = ImageDataset(_image_sources(b.sources or d.image_sources), size=b.size, crop=crop, random_flip=d.random_flip,
                                  train=True, seed=seed, video_frames_every=b.video_frames_every, time_range=time_range,
                                  frame_cache_mb=d.frame_cache_mb)
            except (FileNotFoundError, ValueError) as err:
                raise ConfigError(f"{key}: {err}") from None
        else:
            if crop is None:
                raise ConfigError(f"{key}.crop: a moving_crop bucket needs a crop size")
            try:
                ds = MovingCropDataset(_image_sources(b.sources or d.image_sources), num_frames=b.num_frames, crop=crop,
                                       max_speed_px=b.max_speed_px, zoom_range=tuple(b.zoom_range), seed=seed,
                                       random_flip=d.random_flip)
            except (FileNotFoundError, ValueError) as err:
                raise ConfigError(f"{key}: {err}") from None
        datasets.append((ds, b))
        names.append(bucket_name(b))
    num_files = sum(len(ds) for ds, _ in datasets)
    samples = d.samples_per_epoch or max(1000, num_files)
    total_weight = sum(b.weight for _, b in datasets)
    for ds, b in datasets:
        # enough distinct indices that no item repeats within an epoch (repeats draw fresh crops)
        share = round(samples * b.weight / total_weight)
        ds.repeats = max(1, math.ceil(share / max(len(ds) // ds.repeats, 1)))
        entries.append((ds, b.weight))
        batch_sizes.append(b.batch_size)
    dataset = TrainDataset(entries)
    # (epoch, index) keys: the data workers persist across epochs and never see set_epoch
    sampler = TrainBatchSampler(dataset.bucket_of, batch_sizes, seed=cfg.seed, weights=dataset.weights, num_samples=samples,
                                num_replicas=num_replicas, rank=rank, tag_epoch=True)
    return dataset, sampler, [b for _, b in datasets], names


NOT_HELD_OUT = "validation images are training images: not held out; set data.validation.sources"


def _spread(items: Sequence[Any], count: int) -> list[Any]:
    """At most ``count`` of ``items``, evenly spread over them."""
    if not items:
        return []
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int))]


def _videos_of(sources: Sequence[str]) -> list[str]:
    """The video files of sources (folders, manifests, files); a source without any gives none."""
    videos: list[str] = []
    for source in sources:
        if source == "skimage":
            continue
        try:
            videos.extend(f for f in list_videos(resolve_source(source)) if f.lower().endswith(VIDEO_EXTENSIONS))
        except (FileNotFoundError, ValueError):
            continue
    return list(dict.fromkeys(videos))


def _stills_trained(cfg: TrainConfig) -> bool:
    """Whether a training bucket reads the stills of ``data.image_sources``."""
    return any(b.kind in ("image", "moving_crop") and not b.sources and b.weight > 0 for b in cfg.data.buckets)


def _image_validation(cfg: TrainConfig, crop) -> tuple[ImageDataset, bool]:
    """The dataset of image validation and whether it is held out.

    Default (no ``data.validation.sources``): frames of the validation time range of the videos in
    ``data.sources`` and ``data.image_sources`` (training reads only the other part of them), from
    at most ``num_clips`` videos; the stills of ``data.image_sources`` when no bucket trains on
    them, or, with a warning (not held out), when there is no such video frame.
    """
    d, v = cfg.data, cfg.data.validation

    def dataset(sources: Sequence[str], every: int | None) -> ImageDataset:
        return ImageDataset(sources, size=v.size, crop=crop, train=False, seed=cfg.seed, video_frames_every=every,
                            time_range=tuple(v.time_range))

    try:
        if v.sources or not _stills_trained(cfg):
            return dataset(_image_sources(v.sources or d.image_sources), v.video_frames_every), True
        videos = _spread(_videos_of(list(d.sources) + list(d.image_sources)), v.num_clips)
        if videos:
            try:
                return dataset(videos, v.video_frames_every or 1), True
            except ValueError:  # no readable frame in their validation range
                pass
        logger.warning("%s", NOT_HELD_OUT)
        return dataset(_image_sources(d.image_sources), v.video_frames_every), False
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"data.validation: {err}") from None


def build_validation(cfg: TrainConfig) -> tuple[list[torch.Tensor], bool | None]:
    """Fixed held-out clips ``(1, 3, T, H, W)`` (CPU) from the validation section, and whether they
    are held out (``None``: validation off; ``False``: image validation that can only score
    training stills, with a warning)."""
    d, v = cfg.data, cfg.data.validation
    if not v.enabled:
        return [], None
    crop = _pair_or_int(v.crop)
    if v.kind == "image":
        ds, held_out = _image_validation(cfg, crop)
        return _validation_clips(ds, v.num_clips), held_out
    files = _video_files(v.sources or d.sources, "data.validation.sources" if v.sources else "data.sources")
    ds = VideoClipDataset(files, num_frames=v.num_frames, frame_interval=v.frame_interval, size=v.size, crop=crop,
                          train=False, time_range=tuple(v.time_range), seed=cfg.seed)
    return _validation_clips(ds, v.num_clips), True


def build_validation_clips(cfg: TrainConfig) -> list[torch.Tensor]:
    """The clips of :func:`build_validation`."""
    return build_validation(cfg)[0]


def _validation_clips(ds, num_clips: int) -> list[torch.Tensor]:
    """Up to ``num_clips`` items of ``ds``, evenly spread, one per (file, start)."""
    count = min(num_clips, len(ds))
    clips, seen = [], set()
    for index in np.unique(np.linspace(0, len(ds) - 1, count).round().astype(int)):
        try:
            item = ds[int(index)]
        except RuntimeError as err:  # nothing readable in the held-out range
            logger.warning("validation disabled: %s", err)
            return []
        key = (item.get("path"), item.get("start"))
        if key in seen:
            continue
        seen.add(key)
        clips.append(item["video"].unsqueeze(0))
    if ds.skipped:
        logger.warning("validation: %d unreadable file(s) skipped", ds.skipped)
    return clips
