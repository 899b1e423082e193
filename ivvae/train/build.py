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
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ivvae.io import resolve_source

from .checkpoint import resolve_pretrained
from .config import BucketConfig, ConfigError, DataConfig, TrainConfig, model_class_name, unknown_model_class
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
    "freeze_submodules",
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


def _checkpoint_config(checkpoint: Path) -> tuple[dict[str, Any], Path]:
    """The model config a trainer checkpoint records, and the folder holding it."""
    from ivvae.hub import read_config

    folder = checkpoint if (checkpoint / "config.json").is_file() else checkpoint / "ema"
    return dict(read_config(folder)), folder


def _checkpoint_architecture(checkpoint: Path) -> nn.Module:
    """A randomly initialised model of the architecture a trainer checkpoint records (its ``config.json``)."""
    from ivvae.hub import model_class

    config, folder = _checkpoint_config(checkpoint)
    return model_class(config, f"'{folder / 'config.json'}'").from_config(config)


def _resume_architecture(mcfg, checkpoint: Path, log: logging.Logger) -> nn.Module | None:
    """The model to load ``checkpoint`` into, built without the ``init`` weights it replaces; None
    when the architecture comes from an ``init`` folder that is still there (built as for a new run)."""
    model = _configured_model(mcfg)
    if model is not None:
        log.info("resuming from %s: model built from the config, model.init weights not loaded", checkpoint)
        try:
            recorded = _checkpoint_config(checkpoint)[0]
        except (OSError, ValueError):  # not this function's to report: loading the checkpoint names its damage
            recorded = {}
        _keep_latent_normalization(model, recorded, mcfg, log)
        return model
    key, source = ("from_pretrained", mcfg.init.from_pretrained) if mcfg.init.from_pretrained else ("inflate_from", mcfg.init.inflate_from)
    if source and Path(source).expanduser().exists():
        return None
    log.warning("resuming from %s: model.init.%s '%s' is gone; the architecture is the one the checkpoint records", checkpoint, key, source)
    return _checkpoint_architecture(checkpoint)


def _configured_model(mcfg) -> nn.Module | None:
    """The model ``model.preset`` or ``model.class``/``model.config`` builds (random weights), or None."""
    from ivvae.models import build_model
    from ivvae.models.presets import PRESETS

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
    return model


# config entries that do not shape the weights: the latent normalisation (kept from a pretrained model, re-measured
# after training the encoder)
_WEIGHTLESS_CONFIG_KEYS = {"scaling_factor", "shift_factor"}


def _architecture_differences(model: nn.Module, loaded: nn.Module) -> list[str]:
    """``"key: pretrained P, config C"`` for each config entry where ``loaded`` and ``model`` differ."""
    if type(model) is not type(loaded):
        return [f"class: pretrained {type(loaded).__name__}, config {type(model).__name__}"]
    ours, theirs = dict(getattr(model, "config", {})), dict(getattr(loaded, "config", {}))
    return [f"{key}: pretrained {_plain(theirs.get(key))}, config {_plain(ours.get(key))}"
            for key in sorted(ours.keys() | theirs.keys())
            if not key.startswith("_") and key not in _WEIGHTLESS_CONFIG_KEYS and _plain(ours.get(key)) != _plain(theirs.get(key))]


def _plain(value):
    """Config values compare as lists whatever sequence type stored them (FrozenDict keeps tuples or lists)."""
    return list(value) if isinstance(value, (list, tuple)) else value


def _load_init_weights(model: nn.Module, loaded: nn.Module, init, log: logging.Logger) -> None:
    """Copies the ``from_pretrained`` weights into the model the config builds; a model of another
    architecture is a ConfigError naming the entries that differ, not PyTorch's list of tensor shapes."""
    try:
        result = model.load_state_dict(loaded.state_dict(), strict=init.strict)
    except RuntimeError as err:
        detail = "; ".join(_architecture_differences(model, loaded)) or str(err).splitlines()[0]
        raise ConfigError(
            f"model.init.from_pretrained: the model in '{init.from_pretrained}' does not fit the one the config builds "
            f"({detail}). Make the model section describe the pretrained model (or leave model.config/preset out to take "
            "its architecture), or, where the config's model is the wider one, grow the pretrained one to it with "
            "model.init.grow") from None
    if not init.strict and (result.missing_keys or result.unexpected_keys):
        log.warning("init.from_pretrained: %d missing, %d unexpected keys", len(result.missing_keys), len(result.unexpected_keys))


def _keep_latent_normalization(model: nn.Module, theirs: dict[str, Any], mcfg, log: logging.Logger) -> None:
    """Give the config-built model the latent normalisation of the config ``theirs`` (the pretrained model's, or on
    resume the checkpoint's) unless the model section states it: the latents are the pretrained model's until the
    encoder trains (for good with ``model.freeze: [encoder]``), as when the architecture comes from the folder."""
    stated = set(mcfg.config) | set(mcfg.overrides)
    ours = dict(getattr(model, "config", {}))
    carried = {key: theirs[key] for key in sorted(_WEIGHTLESS_CONFIG_KEYS - stated) if key in theirs and key in ours
               and theirs[key] != ours[key]}
    if carried:
        model.register_to_config(**carried)
        log.info("latent normalisation of the pretrained model kept: %s (re-measure it with `ivvae latent-stats "
                 "--write-model` once the encoder has trained)", ", ".join(f"{k} {v:g}" for k, v in carried.items()))


def _inflated(inflation, image_vae: nn.Module, model: nn.Module | None, init):
    """``(model, report)``: ``image_vae`` inflated into ``model`` (or into the IV-VAE ``init.mode`` builds when None)."""
    if model is None:
        return inflation.inflate_image_vae(image_vae, init.mode or "ktc", temporal_frame=init.temporal_frame,
                                           allow_unfilled=init.allow_unfilled)
    mode = inflation.infer_mode(image_vae, model)
    if init.mode is not None and init.mode != mode:
        raise ConfigError(f"model.init.mode is {init.mode!r} but the image VAE and the model fit mode {mode!r}")
    return model, inflation.inflate(image_vae, model, temporal_frame=init.temporal_frame, allow_unfilled=init.allow_unfilled)


def build_model_from_config(mcfg, log: logging.Logger = logger, *, resume_from: str | os.PathLike | None = None) -> nn.Module:
    """The model a ``model`` config section describes, with its initial weights (train mode).

    ``resume_from``: a checkpoint whose weights will replace the initial ones (a resumed run). The
    ``init`` weights are then not loaded, so a run resumes after its init folder is gone; the
    architecture comes from ``preset``/``class``, else the init folder, else the checkpoint's config.json.
    """
    if resume_from is not None:
        model = _resume_architecture(mcfg, Path(resume_from), log)
        if model is not None:
            return model.float().train()
    init = mcfg.init
    model = _configured_model(mcfg)
    if init.from_pretrained:
        loaded = _grown(_load_init_model("from_pretrained", init.from_pretrained, init.weights), init.grow, log)
        if model is None:
            model = loaded
        else:
            _load_init_weights(model, loaded, init, log)
            _keep_latent_normalization(model, dict(getattr(loaded, "config", {})), mcfg, log)
        log.info("initialised from %s", init.from_pretrained)
    elif init.inflate_from:
        try:
            from ivvae import inflate as inflation
        except ImportError as err:  # the inflation module is optional for other stages
            raise ImportError(f"model.init.inflate_from needs ivvae.inflate: {err}") from err
        image_vae = _grown(_load_init_model("inflate_from", init.inflate_from, init.weights), init.grow, log)
        try:
            model, report = _inflated(inflation, image_vae, model, init)
        except inflation.InflationError as err:  # e.g. inflate_from names a video model, not an image VAE
            raise ConfigError(f"model.init.inflate_from: '{init.inflate_from}': {err}") from None
        log.info("inflated from %s: %s", init.inflate_from, report.summary().splitlines()[0])
    if model is None:
        raise ConfigError("model: nothing to build (give preset, class/config, init.from_pretrained or init.inflate_from)")
    return model.float().train()


def freeze_submodules(model: nn.Module, names: Sequence[str]) -> int:
    """Stop training the submodules ``names`` (``model.freeze``); returns the parameters left to train.

    Raises:
        ConfigError: a name that is not a submodule of ``model`` (the message lists its top-level
            ones), or nothing left to train.
    """
    for name in names:
        try:
            part = model.get_submodule(name)
        except AttributeError:
            children = ", ".join(n for n, _ in model.named_children())
            raise ConfigError(f"model.freeze: {type(model).__name__} has no submodule {name!r}; its submodules are "
                              f"{children} (nested ones by dotted name, e.g. 'decoder.conv_out')") from None
        part.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if names and not trainable:
        raise ConfigError(f"model.freeze: {list(names)} freezes every parameter of {type(model).__name__}: nothing would train")
    return trainable


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


def _still_sources(d: DataConfig, b: BucketConfig, key: str) -> tuple[list[str], int | None, str]:
    """The sources of an image/moving_crop bucket, its video-frame step and the key naming them.

    Neither the bucket's ``sources`` nor ``data.image_sources`` given: the training data itself,
    every frame of its videos unless ``video_frames_every`` says otherwise (demo photos only when named).
    """
    if b.sources:
        return list(b.sources), b.video_frames_every, f"{key}.sources"
    where = "data.sources" if d.image_sources is None else "data.image_sources"
    return d.still_sources(), _stills_frames_every(d, b.video_frames_every), where


def _stills_frames_every(d: DataConfig, given: int | None) -> int | None:
    """The video-frame step of stills read from ``data.still_sources()``: as given, else every frame
    when they are the training data itself (its videos are all it has)."""
    return given or (1 if d.image_sources is None else None)


def _describe_stills(ds: ImageDataset) -> str:
    stills, frames, videos = ds.item_counts()
    return f"{stills} images + {frames} frames of {videos} videos"


def _check_bucket_shape(b: BucketConfig, key: str, group_size: int | None) -> None:
    """Warn about a bucket shape that trains, but not as the user likely meant."""
    short = bucket_short_side(b)
    if b.kind != "moving_crop" and b.size is not None and b.crop is not None and short is not None and b.size < short:
        logger.warning("%s: size %d is smaller than its crop %s: frames are upscaled before cropping; set size >= crop (or "
                       "size: null)", key, b.size, b.crop)
    if b.kind != "image" and group_size and group_size > 1 and b.num_frames > 1 and (b.num_frames - 1) % group_size:
        fits = 1 + group_size * max(round((b.num_frames - 1) / group_size), 1)
        logger.warning("%s: num_frames %d is not 1 + %dk: the video model pads each clip to whole frame groups and "
                       "trains on the padding; use num_frames %d", key, b.num_frames, group_size, fits)


def _group_size(mcfg) -> int | None:
    """Frames per temporal group of the model a config builds, guessed without building it: 4 for the
    video members of the family, None for the image VAE (which takes any frame count). The trainer
    passes the built model's own ``temporal_compression`` instead."""
    if (mcfg.class_name and model_class_name(mcfg.class_name) == "ImageVAE") or (mcfg.preset or "").startswith("image_vae"):
        return None
    return 4


def _bucket_dataset(cfg: TrainConfig, i: int, b: BucketConfig):
    """The dataset of bucket ``i`` and a line saying what data it found."""
    d, key = cfg.data, f"data.buckets.{i}"
    seed, crop, time_range = cfg.seed * 1000 + i, _pair_or_int(b.crop), tuple(d.train_time_range)
    if b.kind == "video":
        where = f"{key}.sources" if b.sources else "data.sources"
        files = _video_files(b.sources or d.sources, where)
        ds = VideoClipDataset(files, num_frames=b.num_frames, frame_interval=_pair_or_int(b.frame_interval), size=b.size,
                              crop=crop, random_flip=d.random_flip, random_time_reverse=d.random_time_reverse, train=True,
                              time_range=time_range, seed=seed, frame_cache_mb=d.frame_cache_mb)
        return ds, f"{len(files)} videos from {where}"
    if b.kind == "moving_crop" and crop is None:
        raise ConfigError(f"{key}.crop: a moving_crop bucket needs a crop size")
    sources, every, where = _still_sources(d, b, key)
    try:
        if b.kind == "image":
            ds = ImageDataset(_image_sources(sources), size=b.size, crop=crop, random_flip=d.random_flip, train=True, seed=seed,
                              video_frames_every=every, time_range=time_range, frame_cache_mb=d.frame_cache_mb)
            return ds, f"{_describe_stills(ds)} from {where}"
        ds = MovingCropDataset(_image_sources(sources), num_frames=b.num_frames, crop=crop, max_speed_px=b.max_speed_px,
                               zoom_range=tuple(b.zoom_range), seed=seed, random_flip=d.random_flip, video_frames_every=every,
                               time_range=time_range)
        return ds, f"{_describe_stills(ds.images)} from {where}"
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"{key}: {err} ({where}; for stills elsewhere set data.image_sources or {key}.sources)") from None


def build_train_data(cfg: TrainConfig, num_replicas: int = 1, rank: int = 0, *, frame_group: int | None = None):
    """The training dataset (one bucket per config bucket), its sampler, the buckets used and their names.

    ``frame_group``: frames per temporal group of the model being trained (its ``temporal_compression``),
    for the clip-length warning; None guesses it from ``cfg.model``.
    Logs one line per bucket saying how many videos / images it found and where.
    """
    d = cfg.data
    entries, batch_sizes, names = [], [], []
    datasets = []
    group_size = _group_size(cfg.model) if frame_group is None else frame_group
    for i, b in enumerate(d.buckets):
        if b.weight <= 0:
            continue
        _check_bucket_shape(b, f"data.buckets.{i}", group_size)
        ds, found = _bucket_dataset(cfg, i, b)
        logger.info("data.buckets.%d (%s): %s", i, bucket_name(b), found)
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
    """Whether a training bucket reads the stills of ``data.image_sources`` (``data.sources`` when not set)."""
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

    stills = d.still_sources()
    stills_every = _stills_frames_every(d, v.video_frames_every)  # of the held-out time range here
    try:
        if v.sources:
            return dataset(_image_sources(v.sources), v.video_frames_every), True
        if not _stills_trained(cfg):
            return dataset(_image_sources(stills), stills_every), True
        videos = _spread(_videos_of(list(d.sources) + list(d.image_sources or [])), v.num_clips)
        if videos:
            try:
                return dataset(videos, v.video_frames_every or 1), True
            except ValueError:  # no readable frame in their validation range
                pass
        logger.warning("%s", NOT_HELD_OUT)
        return dataset(_image_sources(stills), stills_every), False
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
