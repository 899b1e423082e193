"""The training engine: one config-driven loop for every model of the family and every stage.

``ivvae train CONFIG`` (or :func:`run_training`) runs the paper's recipe stage by stage, one
config each (``configs/``): the image VAE on stills, KTC inflation into IV-VAE, video training
at 256 then 512, and the mixed resolutions / lengths stage with a 3-D GAN loss.

Engine: HuggingFace Accelerate. The same command runs on CPU, one GPU, or many GPUs / nodes::

    ivvae train configs/tiny_cpu.yaml                              # CPU or one GPU
    accelerate launch --num_processes 4 -m ivvae.train.trainer configs/ivvae_256.yaml  # DDP
    accelerate launch --multi_gpu --num_machines 2 --machine_rank R --main_process_ip H \\
        --main_process_port 29500 --num_processes 16 -m ivvae.train.trainer CONFIG  # 2 nodes
    accelerate launch --num_processes 2 --cpu -m ivvae.train.trainer CONFIG           # 2 CPU procs (gloo)

(``-m ivvae.train.trainer`` takes the same arguments as ``ivvae train``.) Every process reads its
own batches (the bucket sampler shards batches by rank); ``batch_size`` in a bucket is per process.
Multi-node runs need ``output_dir`` on a shared filesystem (every process writes its RNG state into
the checkpoint). FSDP: ``accelerate config`` -> FSDP, then ``accelerate launch --config_file ...``;
model/optimiser checkpoints then go through accelerate's FSDP state dicts, but the EMA copy and
validation assume full weights on the main process, so set ``ema.enabled: false`` there (the models
here are 100-250M parameters: DDP is the tested path).

Per step: encode, sample the posterior, decode; ``VAELoss`` (L1 + LPIPS + KL, and from
``loss.gan.start_step`` the adaptively weighted GAN term with the bucket's GAN weight) and, when
the GAN is on, the discriminator's hinge loss; gradient accumulation, clipping, AdamW, LR warmup +
schedule, EMA update. Logging every ``logging.every`` steps (tqdm, TensorBoard, ``metrics.jsonl``),
validation PSNR and an (input | reconstruction | EMA) image grid every ``logging.val_every`` steps,
atomic checkpoints every ``checkpoint.every`` steps, an EMA export at the end (and when a file
``EXPORT`` appears in the output dir), and ``summary.json``. SIGTERM or Ctrl-C (``timeout``, a
scheduler's preemption) ends the run after the step in progress with a checkpoint and an export
(:mod:`ivvae.train.stop`); ``--resume auto`` continues it. A NaN or infinite loss ends it at once with
:class:`NonFiniteLossError`, before the diverged weights reach the EMA, a checkpoint or an export. A run
that fails before its first step (a config error, a checkpoint that does not fit or is damaged)
removes what it added to its output dir.

Determinism: data items are seeded by ``(seed, epoch, index)`` and batches by ``(seed, epoch)``; the
training RNG (posterior samples, LPIPS frame choice) is seeded by ``seed + rank`` and saved in
checkpoints, so a resumed run repeats the uninterrupted one step for step (fp32; same world size).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from .build import bucket_short_side, build_model_from_config, build_train_data, build_validation, freeze_submodules
from .checkpoint import (
    CHECKPOINTS_DIR,
    EMA_DIR,
    STATE_FILE,
    TMP_PREFIX,
    check_checkpoint_shapes,
    checkpoint_name,
    checkpoint_step,
    export_checkpoint,
    export_files_not_written,
    export_model,
    export_run_id,
    exported_step,
    finalize_dir,
    latest_checkpoint,
    prune_checkpoints,
    reading_checkpoint,
    resolve_resume,
    set_aside_newer,
    write_json_atomic,
    write_latest,
)
from .config import ConfigError, TrainConfig, config_to_dict, load_config
from .ema import EMA
from .stop import StopRequest, ignore_stop_signals

__all__ = [
    "NonFiniteLossError",
    "Trainer",
    "add_train_arguments",
    "last_layer_weights",
    "lr_factor",
    "run_training",
    "train_main",
]

logger = logging.getLogger("ivvae.train")

EXPORT_REQUEST_FILE = "EXPORT"
PERIODIC_EXPORTS_DIR = "exports"  # <run>/exports/step_N: the exports during the run (export.every, the EXPORT file)
CONFIG_FILE = "config.yaml"  # the run's first config; a resumed session's other config: config.resume-N.yaml
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"

StepCallback = Callable[["Trainer", int, dict[str, float]], None]


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite: the run stops before the diverged weights are saved anywhere."""


# ============================================================================================
# The module DDP wraps
# ============================================================================================


class _Autoencoder(nn.Module):
    """What DDP wraps: encode, sample the posterior, decode; returns tensors only."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, sample_posterior: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        posterior = self.vae.encode(x).latent_dist
        z = posterior.sample() if sample_posterior else posterior.mode()
        frames, height, width = x.shape[2:]
        rec = self.vae.decode(z, num_frames=frames, height=height, width=width).sample
        return rec, posterior.mean, posterior.logvar


# ============================================================================================
# Schedule, images
# ============================================================================================


def lr_factor(step: int, warmup: int, total: int, kind: str, min_ratio: float = 0.0) -> float:
    """LR multiplier at optimiser step ``step`` (0-based): linear warmup, then cosine/linear/constant."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = min(max((step - warmup) / max(total - warmup, 1), 0.0), 1.0)
    if kind == "cosine":
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if kind == "linear":
        return min_ratio + (1.0 - min_ratio) * (1.0 - progress)
    raise ValueError(f"unknown schedule kind {kind!r}")


def last_layer_weights(vae: nn.Module) -> list[torch.Tensor]:
    """The weights of the decoder's last conv, every branch of it: the adaptive GAN weight balances the
    gradients there, and the temporal branch of a dual conv writes frames the keyframe branch does not."""
    convs = getattr(getattr(getattr(vae, "decoder", None), "conv_out", None), "convs", None)
    if isinstance(convs, nn.ModuleDict) and len(convs):
        return [conv.weight for conv in convs.values()]
    return [vae.last_layer_weight]


def _to_uint8(frame: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((frame.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def reconstruction_grid(columns: Sequence[Sequence[torch.Tensor]], frames: int = 4, gap: int = 4) -> np.ndarray:
    """One row per clip: ``frames`` frames of each column (input, reconstruction, ...) side by side.

    ``columns[c][k]`` is clip ``k`` of column ``c``, a ``(1, 3, T, H, W)`` tensor. Returns (H, W, 3) uint8.
    """
    rows = []
    for k in range(len(columns[0])):
        parts = []
        for c, column in enumerate(columns):
            clip = column[k][0]
            t = clip.shape[1]
            picks = np.unique(np.linspace(0, t - 1, min(frames, t)).round().astype(int))
            strip = np.concatenate([_to_uint8(clip[:, i]) for i in picks], axis=1)
            if c:
                parts.append(np.full((strip.shape[0], gap * 2, 3), 255, np.uint8))
            parts.append(strip)
        rows.append(np.concatenate(parts, axis=1))
    width = max(r.shape[1] for r in rows)
    padded = []
    for r in rows:
        if r.shape[1] < width:
            r = np.concatenate([r, np.full((r.shape[0], width - r.shape[1], 3), 255, np.uint8)], axis=1)
        padded.append(r)
        padded.append(np.full((gap, width, 3), 255, np.uint8))
    return np.concatenate(padded[:-1], axis=0)


# ============================================================================================
# Logging helpers
# ============================================================================================


class _TqdmHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm.auto import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


@contextmanager
def _log_handlers(run_dir: Path | None, main: bool):
    """Console (tqdm-safe) and ``train.log`` handlers on the ``ivvae`` logger for the run."""
    root = logging.getLogger("ivvae")
    added: list[logging.Handler] = []
    old_level = root.level
    if main:
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        if not root.handlers and not logging.getLogger().handlers:  # else the application shows logs already
            console = _TqdmHandler(logging.INFO)
            console.setFormatter(fmt)
            added.append(console)
        if run_dir is not None:
            file_handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
            file_handler.setFormatter(fmt)
            file_handler.setLevel(logging.INFO)
            added.append(file_handler)
        for h in added:
            root.addHandler(h)
        if root.level == logging.NOTSET or root.level > logging.INFO:
            root.setLevel(logging.INFO)
    try:
        yield
    finally:
        for h in added:
            root.removeHandler(h)
            h.close()
        root.setLevel(old_level)


# ============================================================================================
# Trainer
# ============================================================================================


class Trainer:
    """One training run of a :class:`TrainConfig` (see the module docstring).

    Args:
        cfg: the config.
        output_dir: overrides ``cfg.output_dir`` (default ``runs/<name>``).
        callbacks: ``fn(trainer, step, logs)`` called on every process at the end of every
            optimiser step, after its logging, validation and checkpoint (logs: this step's
            losses, averaged over micro-batches, this process only).
        resume: what :meth:`train` will be asked to resume (``"auto"`` or a path): that checkpoint's
            architecture is built when the config's init folder is gone, and its init weights are not loaded.
    """

    def __init__(self, cfg: TrainConfig, output_dir: str | os.PathLike | None = None,
                 callbacks: Sequence[StepCallback] = (), *, resume: str | os.PathLike | None = None) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, set_seed

        from ivvae.runtime import tune_cpu_allocator

        self.cfg = cfg
        self.callbacks = list(callbacks)
        self._planned_resume = resume  # what train() will resume: its checkpoint's weights replace the init ones
        tune_cpu_allocator()  # activations freed by one step are reused by the next (no page faults)
        if cfg.train.num_threads is not None:
            torch.set_num_threads(cfg.train.num_threads)
        self.run_dir = Path(output_dir or cfg.output_dir or Path("runs") / (cfg.name or "run"))
        t = cfg.train
        if t.precision == "fp16" and not torch.cuda.is_available():
            raise ConfigError(f"{cfg.source}: 'train.precision' fp16 needs a GPU; use bf16 (or no) on CPU")
        _reset_accelerate_state()
        # Without CUDA, processes launched by torchrun / accelerate only form a (gloo) group when
        # accelerate is told to use the CPU.
        world = int(os.environ.get("WORLD_SIZE", "1"))
        cpu = t.cpu or (world > 1 and not torch.cuda.is_available())
        self.accelerator = Accelerator(
            cpu=cpu,
            mixed_precision=t.precision,
            gradient_accumulation_steps=t.gradient_accumulation_steps,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=t.find_unused_parameters)],
            step_scheduler_with_optimizer=False,
        )
        acc = self.accelerator
        self.is_main = acc.is_main_process
        self.device = acc.device
        if self.device.type == "cuda":  # a run sees a few fixed bucket shapes: let cuDNN pick the fastest convs
            torch.backends.cudnn.benchmark = True
        # until the first step, a failure removes what this run added to the output dir
        self._new_outputs: _NewOutputs | None = _NewOutputs(self.run_dir) if self.is_main else None
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        self._log_context = _log_handlers(self.run_dir, self.is_main)
        self._log_context.__enter__()
        try:
            self._build(set_seed, cfg)
        except ConfigError as err:
            self._abandon_start()
            raise _in_file(err, cfg.source) from err
        except BaseException:
            self._abandon_start()
            raise

    # ----------------------------------------------------------------------------- building
    def _checkpoint_to_build_for(self) -> Path | None:
        """The checkpoint whose weights will replace the init ones: the one ``resume`` names, else this
        run dir's latest (resumed, or refused by train()). A bad ``resume`` is reported by train()."""
        try:
            planned = resolve_resume(self._planned_resume, self.run_dir)
        except FileNotFoundError:
            planned = None
        return planned or latest_checkpoint(self.checkpoint_root)

    def _build(self, set_seed, cfg: TrainConfig) -> None:
        from .discriminator import build_discriminator

        acc = self.accelerator
        set_seed(cfg.seed)  # identical initial weights on every process
        # a resumed checkpoint's weights replace the init ones, whose folder may be gone
        vae = build_model_from_config(cfg.model, resume_from=self._checkpoint_to_build_for())
        if cfg.model.gradient_checkpointing:
            vae.enable_gradient_checkpointing()
        if cfg.model.channels_last:
            vae.to_channels_last()
        self.trainable_parameters = freeze_submodules(vae, cfg.model.freeze)
        self.vae = vae
        single_frame = any(b.kind == "image" or b.num_frames == 1 for b in cfg.data.buckets if b.weight > 0)
        handler = getattr(acc, "ddp_handler", None)
        if single_frame and vae.temporal_compression > 1 and handler is not None and not handler.find_unused_parameters:
            # one-frame clips leave the temporal resampling convs unused: DDP must be told
            handler.find_unused_parameters = True
        g = cfg.loss.gan
        self.discriminator = None
        if g.enabled:
            dc = g.discriminator
            self.discriminator = build_discriminator(dc.kind, base_channels=dc.base_channels, n_layers=dc.n_layers, norm=dc.norm,
                                                     temporal_downsample=dc.temporal_downsample)
        self.ema = None
        if cfg.ema.enabled and self.is_main:
            self.ema = EMA(vae, cfg.ema.decay, cfg.ema.update_every, cfg.ema.start_step, cfg.ema.warmup).to(self.device)
            for p in self.ema.model.parameters():
                p.data = p.data.contiguous()

        self._build_optimizers(cfg, vae)
        if g.enabled and g.adaptive_weight and not all(w.requires_grad for w in self.last_layer_weights):
            raise ConfigError("model.freeze keeps the decoder's last conv fixed, but the adaptive GAN weight "
                              "(loss.gan.adaptive_weight) is measured by its gradients: unfreeze it or set "
                              "loss.gan.adaptive_weight: false")
        self._compile(cfg.train.compile)

        self.loss_fn = self._build_loss(cfg)

        self.train_dataset, self.train_sampler, self.buckets, self.bucket_names = build_train_data(
            cfg, acc.num_processes, acc.process_index, frame_group=vae.temporal_compression)
        self.bucket_gan_weights = [
            b.gan_weight if b.gan_weight is not None else g.weight_by_size.get(bucket_short_side(b), g.weight)
            for b in self.buckets
        ]
        # held out: False when image validation can only score training stills (summary.json says so)
        self.val_clips, self.val_held_out = build_validation(cfg) if self.is_main else ([], None)

        self._reset_training_state()
        set_seed(cfg.seed + acc.process_index)  # training randomness differs per process

        if self.is_main:
            n_params = sum(p.numel() for p in vae.parameters())
            frozen = (f" ({self.trainable_parameters / 1e6:.2f}M trained; frozen: {', '.join(cfg.model.freeze)})"
                      if cfg.model.freeze else "")
            logger.info("model %s: %.2fM parameters%s; %d process(es) on %s, precision %s", type(vae).__name__, n_params / 1e6,
                        frozen, acc.num_processes, self.device, cfg.train.precision)
            logger.info("data: %s; %d validation clip(s)", ", ".join(
                f"{n} (weight {b.weight:g}, batch {b.batch_size})" for n, b in zip(self.bucket_names, self.buckets, strict=True)),
                len(self.val_clips))

    def _build_optimizers(self, cfg: TrainConfig, vae: nn.Module) -> None:
        """AdamW and the lr schedule for the VAE (and the discriminator), prepared by Accelerate."""
        acc, g = self.accelerator, cfg.loss.gan
        o = cfg.optimizer
        trained = [p for p in vae.parameters() if p.requires_grad]  # model.freeze leaves the rest out
        opt = torch.optim.AdamW(trained, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay, eps=o.eps)
        s = cfg.schedule
        # The schedule's horizon: max_steps, unless a time budget (train.max_minutes) shortens it.
        self.total_steps = cfg.train.max_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(step, s.warmup_steps, self.total_steps, s.kind, s.min_lr_ratio))
        self.ae = _Autoencoder(vae)
        if self.discriminator is not None:
            od = g.optimizer
            opt_d = torch.optim.AdamW(self.discriminator.parameters(), lr=od.lr, betas=tuple(od.betas),
                                      weight_decay=od.weight_decay, eps=od.eps)
            start = g.start_step
            self.scheduler_d = torch.optim.lr_scheduler.LambdaLR(
                opt_d, lambda step: lr_factor(max(step - start, 0), s.warmup_steps, max(self.total_steps - start, 1), s.kind,
                                              s.min_lr_ratio))
            self.ae, self.discriminator, self.optimizer, self.optimizer_d = acc.prepare(self.ae, self.discriminator, opt, opt_d)
        else:
            self.scheduler_d = None
            self.optimizer_d = None
            self.ae, self.optimizer = acc.prepare(self.ae, opt)
        self.vae_unwrapped = acc.unwrap_model(self.ae).vae
        self.last_layer_weights = last_layer_weights(self.vae_unwrapped)

    def _build_loss(self, cfg: TrainConfig) -> nn.Module:
        """The VAE loss of ``cfg.loss`` (LPIPS from its weight files, or skipped as ``on_missing`` says)."""
        from .losses import VAELoss, build_lpips_loss

        g = cfg.loss.gan
        lp = cfg.loss.lpips
        lpips_cfg = {"enabled": lp.enabled, "net": lp.net, "backbone_weights": lp.backbone_weights,
                     "head_weights": lp.head_weights}
        if not lp.pretrained:
            lpips_cfg["pretrained"] = False
        lpips = build_lpips_loss(lpips_cfg if lp.enabled else None, on_missing=lp.on_missing)
        return VAELoss(
            l1_weight=cfg.loss.l1_weight, mse_weight=cfg.loss.mse_weight, block_mse_weight=cfg.loss.block_mse_weight,
            block_mse_size=cfg.loss.block_mse_size, lpips=lpips, lpips_weight=lp.weight, lpips_frames=lp.frames,
            kl_weight=cfg.loss.kl_weight, kl_reduction=cfg.loss.kl_reduction, gan_loss=g.loss, gan_weight=g.weight,
            gan_start_step=g.start_step, adaptive_weight=g.adaptive_weight, max_adaptive_weight=g.max_adaptive_weight,
        ).to(self.device)

    def _reset_training_state(self) -> None:
        """Step, epoch and data position, losses, validation history: a fresh run's (a resume loads them)."""
        self.step = 0
        self.epoch = 0
        self.batches_consumed = 0  # in the current epoch, by this process
        self.samples_seen = 0
        self.first_losses: dict[str, float] | None = None
        self.last_losses: dict[str, float] | None = None
        self.val_history: list[dict[str, float]] = []
        self.bad_files: dict[str, str] = {}
        self.time_trained = 0.0  # seconds of training steps over all sessions
        self.data_wait_s = 0.0  # of this session's, waiting for the data loader
        self._resume_sampler_state: dict | None = None
        self._resumed_from: Path | None = None
        # identifies this run in its exports (and checkpoints): a run replaces only exports it wrote itself
        self.run_id = uuid.uuid4().hex
        self._legacy_run = False  # resumed from a checkpoint of this folder written before runs had ids
        self._overwrite_exports = False
        self._writer = None
        self._pbar = None

    def _compile(self, cc) -> None:
        """Compile the step (``train.compile``); its gradients are checked on the first batch."""
        self.ae_eager = self.ae
        self.compile_report: dict[str, Any] = {"enabled": cc.enabled}
        self._compile_check_pending = False
        if not cc.enabled:
            return
        from .compiled import compile_module

        g = self.cfg.loss.gan
        if g.enabled and g.adaptive_weight:
            # the adaptive GAN weight differentiates the loss twice (retain_graph=True), which a
            # compiled backward that donates its buffers refuses
            import torch._functorch.config as functorch_config

            functorch_config.donated_buffer = False
        self.ae = compile_module(self.ae_eager, mode=cc.mode, dynamic=cc.dynamic)
        self.compile_report.update(mode=cc.mode, dynamic=cc.dynamic, used=True)
        self._compile_check_pending = cc.check_gradients

    def _check_compiled_step(self, x: torch.Tensor) -> None:
        """One L1 step on ``x`` eagerly and compiled (no update); train eagerly if they disagree."""
        from .compiled import compare_gradients, step_gradients

        cc = self.cfg.train.compile
        started = time.perf_counter()
        named = [(n, p) for n, p in self.vae_unwrapped.named_parameters() if p.requires_grad]
        names, params = [n for n, _ in named], [p for _, p in named]
        eager = step_gradients(self.ae_eager, params, x, self.accelerator.autocast)
        try:
            compiled = step_gradients(self.ae, params, x, self.accelerator.autocast)  # compiles
        except Exception as error:  # a compiler failure costs the speed-up, not the run
            for p in params:
                p.grad = None
            self.ae = self.ae_eager
            reason = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
            self.compile_report.update(used=False, error=reason, compile_and_check_s=round(time.perf_counter() - started, 2))
            logger.warning("torch.compile failed (%s): training eagerly", reason)
            return
        check = compare_gradients(eager, compiled, names, cc.min_cosine)
        self.compile_report.update(check=check.to_dict(), compile_and_check_s=round(time.perf_counter() - started, 2))
        if check.passed:
            logger.info("torch.compile: compiled in %.1f s; gradients match eager (%s)",
                        self.compile_report["compile_and_check_s"], check.describe())
        else:
            self.ae = self.ae_eager
            self.compile_report["used"] = False
            logger.warning("torch.compile: the compiled step's gradients differ from eager ones (%s): training "
                           "eagerly; set train.compile.enabled false to skip the compile", check.describe())

    # ----------------------------------------------------------------------------- paths
    @property
    def checkpoint_root(self) -> Path:
        return self.run_dir / CHECKPOINTS_DIR

    # ----------------------------------------------------------------------------- data
    def _make_loader(self):
        """One loader for the whole run: its workers persist across epochs (starting a dozen
        workers every epoch stalled the GPU when epochs were a few seconds long); the sampler's
        ``(epoch, index)`` keys carry the epoch to them."""
        from torch.utils.data import DataLoader

        from .data import clip_collate

        d = self.cfg.data
        workers = d.num_workers
        kwargs: dict[str, Any] = {}
        if workers > 0:
            kwargs["prefetch_factor"] = d.prefetch_factor
            kwargs["multiprocessing_context"] = _worker_start_method()
            kwargs["persistent_workers"] = True
        return DataLoader(self.train_dataset, batch_sampler=self.train_sampler, num_workers=workers, collate_fn=clip_collate,
                          worker_init_fn=ignore_stop_signals if workers > 0 else None,
                          pin_memory=d.pin_memory and torch.cuda.is_available(),
                          generator=torch.Generator().manual_seed(self.cfg.seed * 7919), **kwargs)

    def _batches(self) -> Iterator[dict[str, Any]]:
        resume = self._resume_sampler_state
        self._resume_sampler_state = None
        d = self.cfg.data
        # Workers inherit a preloaded cache only when forked; spawned ones would each get a pickled copy.
        if d.preload_frames and d.frame_cache_mb > 0 and (d.num_workers == 0 or _worker_start_method() == "fork"):
            started = time.perf_counter()
            frames = self.train_dataset.fill_frame_caches()
            if frames:
                logger.info("preloaded %d decoded frames into the frame caches in %.1f s", frames,
                            time.perf_counter() - started)
        loader = self._make_loader()
        try:
            while True:
                self.train_sampler.set_epoch(self.epoch)
                self.train_dataset.set_epoch(self.epoch)
                if resume is not None:
                    self.train_sampler.load_state_dict(resume)
                    self.batches_consumed = int(resume["batches_consumed"])
                    resume = None
                else:
                    self.batches_consumed = 0
                for batch in loader:
                    self.batches_consumed += 1
                    yield batch
                self.epoch += 1
        finally:
            del loader  # shuts the persistent workers down

    def _note_bad_files(self, batch: dict[str, Any]) -> None:
        for entries in batch.get("bad_files", ()):
            for _bucket, path, reason in entries:
                if path not in self.bad_files:
                    self.bad_files[path] = reason
                    logger.warning("skipped unreadable file %s: %s (%d skipped so far)", path, reason, len(self.bad_files))

    # ----------------------------------------------------------------------------- steps
    def _micro_step(self, batch: dict[str, Any]) -> dict[str, float]:
        acc = self.accelerator
        cfg = self.cfg
        x = batch["video"].to(self.device, non_blocking=True)
        if cfg.model.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        bucket = int(batch["bucket"][0])
        if self._compile_check_pending:
            self._compile_check_pending = False
            self._check_compiled_step(x)
        models = [self.ae] + ([self.discriminator] if self.discriminator is not None else [])
        with acc.accumulate(*models):
            with acc.autocast():
                rec, mean, logvar = self.ae(x, sample_posterior=cfg.loss.sample_posterior)
                rec = rec.float()
                posterior = SimpleNamespace(mean=mean.float(), logvar=logvar.float(), deterministic=False)
                loss, logs = self.loss_fn(x, rec, posterior, self.step, last_layer_weight=self.last_layer_weights,
                                          discriminator=self.discriminator, gan_weight=self.bucket_gan_weights[bucket])
            acc.backward(loss)
            if self.discriminator is not None and self.loss_fn.gan_active(self.step):
                with acc.autocast():
                    d_loss, d_logs = self.loss_fn.discriminator_loss(self.discriminator, x, rec, self.step)
                acc.backward(d_loss)
                logs.update(d_logs)
            if acc.sync_gradients:
                max_norm = cfg.train.max_grad_norm or float("inf")
                logs["grad_norm"] = float(acc.clip_grad_norm_(self.ae.parameters(), max_norm))
                if self.discriminator is not None and self.loss_fn.gan_active(self.step):
                    logs["grad_norm_d"] = float(acc.clip_grad_norm_(self.discriminator.parameters(), max_norm))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.optimizer_d is not None:
                self.optimizer_d.step()
                self.optimizer_d.zero_grad(set_to_none=True)
        if len(self.buckets) > 1:
            logs[f"l1/{self.bucket_names[bucket]}"] = logs["l1"]
        self.samples_seen += x.shape[0] * acc.num_processes
        return logs

    def _optimizer_step(self, batches: Iterator[dict[str, Any]]) -> dict[str, float]:
        micro: list[dict[str, float]] = []
        waited = 0.0
        for _ in range(self.cfg.train.gradient_accumulation_steps):
            start = time.perf_counter()
            batch = next(batches)  # the step before ended in a device sync (its logged floats): this is the loader's delay
            waited += time.perf_counter() - start
            self._note_bad_files(batch)
            micro.append(self._micro_step(batch))
        self.data_wait_s += waited
        if not self.accelerator.sync_gradients:  # pragma: no cover - accelerate bookkeeping drifted
            raise RuntimeError("gradient accumulation out of step with the optimiser")
        logs = _mean_dicts(micro)
        logs["data_wait_s"] = waited
        # the lr this step used: read before the schedulers move on to the next step's
        logs["lr"] = self.scheduler.get_last_lr()[0]
        if self.scheduler_d is not None:
            logs["lr_d"] = self.scheduler_d.get_last_lr()[0]
        if not self.accelerator.optimizer_step_was_skipped:
            self.scheduler.step()
        if self.scheduler_d is not None:
            self.scheduler_d.step()
        return logs

    # ----------------------------------------------------------------------------- run
    def train(self, resume: str | os.PathLike | None = None, overwrite: bool = False) -> dict[str, Any]:
        """Train to ``train.max_steps`` (or as far as ``train.max_minutes`` allows; resuming if asked).

        ``resume``: as :func:`run_training` takes it; None: the constructor's ``resume`` (pass it there, so
        that a run resumed from another run's checkpoint does not need the config's init folder).
        An export folder that exists, is not empty and was not written by this run (its earlier
        sessions included) is refused before the first step, unless ``overwrite``.
        Returns the summary (also written to summary.json).
        """
        self._overwrite_exports = overwrite
        resume = self._planned_resume if resume is None else resume
        try:
            with StopRequest() as self._stop:
                return self._train(resume)
        except BaseException:
            self._abandon_start()
            raise
        finally:
            self.close()

    def _abandon_start(self) -> None:
        """Close the outputs and, if no step has run yet, remove what this run added to the output dir."""
        self.close()
        if getattr(self, "_new_outputs", None) is not None:
            self._new_outputs.remove()
            self._new_outputs = None

    def close(self) -> None:
        """Close the progress bar, TensorBoard writer and log handlers (idempotent)."""
        if getattr(self, "_pbar", None) is not None:
            self._pbar.close()
            self._pbar = None
        if getattr(self, "_writer", None) is not None:
            self._writer.close()
            self._writer = None
        if getattr(self, "_log_context", None) is not None:
            self._log_context.__exit__(None, None, None)
            self._log_context = None

    def _start(self, resume) -> Path | None:
        """Resume (if asked) and open the outputs; returns the checkpoint resumed from.

        Everything that can fail (the --resume path, a checkpoint that does not fit or is damaged, an
        export folder this run may not replace) is checked before config.yaml is written and before the
        first step: a refused start costs no compute and leaves the output dir as it was.
        """
        checkpoint = resolve_resume(resume, self.run_dir)
        if resume is None and latest_checkpoint(self.checkpoint_root) is not None:
            raise FileExistsError(
                f"'{self.run_dir}' already holds checkpoints (latest: {latest_checkpoint(self.checkpoint_root).name}): "
                "continue that run with --resume auto, or start a new one with another --output-dir (or delete the folder)")
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
        elif resume is not None and self.is_main:
            logger.info("no checkpoint in %s: starting from scratch", self.checkpoint_root)
        self._check_export_destinations()
        if self.is_main:
            if checkpoint is not None:
                self._set_aside_abandoned_branch(checkpoint)
            if self.checkpoint_root.is_dir():
                prune_checkpoints(self.checkpoint_root, 0)  # remove temp dirs a killed run left behind
        self.accelerator.wait_for_everyone()
        self._open_outputs()
        if self.is_main:  # last: a failed start removes what it added, which must not be a config moved aside
            self._record_config(resumed=checkpoint is not None)
        self._new_outputs = None  # started: from here on the output dir is the run's record
        return checkpoint

    def _set_aside_abandoned_branch(self, checkpoint: Path) -> None:
        """Resuming from a checkpoint older than others of the output dir starts a new branch: move the
        newer ones aside (never deleted), else ``--resume auto`` and pruning would take them for this run's."""
        moved = set_aside_newer(self.checkpoint_root, checkpoint)
        if moved:
            logger.warning("resumed from %s, older than %d checkpoint(s) of this output dir: moved them to %s (an abandoned "
                           "branch; --resume auto and pruning follow this run)", checkpoint.name, len(moved), moved[0].parent)

    def _export_conflict(self, folder: Path) -> str | None:
        """Why this run must not replace export ``folder`` (None: it may).

        It may replace a missing or empty folder, and an export it wrote itself (its run id, which
        checkpoints carry across resumes; or, resuming a run of an older version, an export of this
        run folder) to which nothing was added. Anything else may be the user's: replacing deletes it.
        """
        if self._overwrite_exports or not folder.exists():
            return None
        if not folder.is_dir():
            return "exists and is not a folder"
        if not any(folder.iterdir()):
            return None
        owner = export_run_id(folder)
        legacy = (owner is None and self._legacy_run and _is_within(folder, self.run_dir)
                  and _export_step_of(folder, self.run_dir) is not None)
        if owner != self.run_id and not legacy:
            return "exists and was not written by this run"
        added = export_files_not_written(folder)
        if added:
            return f"holds files its export did not write ({', '.join(added[:3])}{', ...' if len(added) > 3 else ''})"
        return None

    def _check_export_destinations(self) -> None:
        """Refuse before the first step an export this run would write over a folder it may not replace:
        the end-of-run export (``export.dir``) and the run's periodic exports of the steps still to come."""
        folders = [self.run_dir / self.cfg.export.dir] if self.cfg.export.at_end else []
        periodic = self.run_dir / PERIODIC_EXPORTS_DIR
        if periodic.is_dir():
            folders += sorted(p for p in periodic.iterdir() if (checkpoint_step(p) or 0) > self.step)
        for folder in folders:
            why = self._export_conflict(folder)
            if why is not None:
                raise FileExistsError(f"export folder '{folder}' {why}: this run's export would replace it; choose another with "
                                      "--set export.dir=DIR (or another --output-dir), or replace it with --overwrite")

    def _record_config(self, resumed: bool) -> None:
        """Write the session's config into the run folder without ever losing one.

        ``config.yaml`` is the run's first config, as made, and is never rewritten: the checkpoints'
        advice names it, and it may be the very file the user gave (``ivvae train DIR/config.yaml
        --output-dir DIR``). A resumed session whose config differs (``--set``) from the last recorded
        one is recorded beside it as ``config.resume-N.yaml``. A fresh start in a folder holding
        another run's ``config.yaml`` (a start that saved no checkpoint) moves it to
        ``config.previous-N.yaml``. Each of these is said in train.log.
        """
        first = self.run_dir / CONFIG_FILE
        mine = config_to_dict(self.cfg)
        text = yaml.safe_dump(mine, sort_keys=False)
        if not first.exists():
            first.write_text(text)
            return
        if _same_file(first, self.cfg.source) and not resumed:
            return  # the user's own file is the run's config
        recorded = _numbered(self.run_dir, "resume") if resumed else []
        last = recorded[-1][1] if recorded else first
        if _config_dict_of(last) == mine:
            return
        keys = _changed_keys(_config_dict_of(last) or {}, mine)
        changed = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
        if resumed:
            target = self.run_dir / f"config.resume-{recorded[-1][0] + 1 if recorded else 1}.yaml"
            target.write_text(text)
            logger.info("resume: this session's config differs from %s (%s): recorded as %s; %s keeps the run's first config",
                        last.name, changed, target.name, CONFIG_FILE)
            return
        previous = _numbered(self.run_dir, "previous")
        aside = self.run_dir / f"config.previous-{previous[-1][0] + 1 if previous else 1}.yaml"
        os.rename(first, aside)
        first.write_text(text)
        logger.info("%s held another config (of a start that saved no checkpoint): moved to %s", CONFIG_FILE, aside.name)

    def _train(self, resume) -> dict[str, Any]:
        cfg, acc = self.cfg, self.accelerator
        checkpoint = self._start(resume)
        session_start = time.perf_counter()
        start_step = self.step
        self.data_wait_s = 0.0
        if self.step >= self.total_steps and self.is_main:
            logger.info("%s", _finished_note(self.step, self.total_steps))
        paused = 0.0  # seconds of validation / checkpointing / export in this session
        last_val_step = last_ckpt_step = -1
        if checkpoint is not None:
            last_ckpt_step = self.step
            if self.val_history and self.val_history[-1].get("step") == self.step:
                last_val_step = self.step
        validation = cfg.data.validation.enabled  # the same on every process (validate() has a barrier)
        if cfg.logging.val_at_start and self.step == 0 and validation:
            t0 = time.perf_counter()
            self.validate()
            last_val_step = 0
            paused += time.perf_counter() - t0
        window: dict[str, list[float]] = defaultdict(list)
        window_start, window_paused, window_step = time.perf_counter(), paused, self.step
        budget = _TimeBudget(cfg.train.max_minutes * 60.0, session_start) if cfg.train.max_minutes else None
        stopped_by: str | None = None
        batches = self._batches()
        try:
            while self.step < self.total_steps:
                logs = self._optimizer_step(batches)
                self.step += 1
                self._check_finite(logs)
                if self.ema is not None:
                    self.ema.update(self.vae_unwrapped, self.step)
                for key, value in logs.items():
                    window[key].append(value)
                if self._pbar is not None:
                    self._pbar.update(1)
                if self.step % cfg.logging.every == 0 or self.step == self.total_steps:
                    now = time.perf_counter()
                    train_time = (now - window_start) - (paused - window_paused)
                    self._log(window, (self.step - window_step) / max(train_time, 1e-9))
                    window.clear()
                    window_start, window_paused, window_step = now, paused, self.step
                    if budget is not None:
                        self._fit_horizon_to_budget(budget, now)
                t0 = time.perf_counter()
                if validation and cfg.logging.val_every and self.step % cfg.logging.val_every == 0:
                    self.validate()
                    last_val_step = self.step
                if cfg.checkpoint.every and self.step % cfg.checkpoint.every == 0:
                    self.save_checkpoint()
                    last_ckpt_step = self.step
                self._maybe_export_during_run()
                paused += time.perf_counter() - t0
                for callback in self.callbacks:
                    callback(self, self.step, logs)
                if self._stop_requested():
                    stopped_by = self._stop.signal_name or "another process"
                    if self.is_main:
                        logger.warning("step %d: stopped by %s; saving a checkpoint", self.step, stopped_by)
                    break
        finally:
            batches.close()
        session_time = time.perf_counter() - session_start
        train_time = session_time - paused
        self.time_trained += train_time
        if validation and last_val_step != self.step and not stopped_by:  # a stopped run saves, fast
            self.validate()
        if (cfg.checkpoint.at_end or stopped_by) and last_ckpt_step != self.step:  # a stopped run must be resumable
            self.save_checkpoint()
        export_dir = None
        if cfg.export.at_end:
            export_dir = self._final_export(trained=self.step > start_step)
        acc.wait_for_everyone()
        summary = self._run_summary(start_step, session_time, train_time, export_dir, stopped_by)
        if self.is_main:
            write_json_atomic(self.run_dir / SUMMARY_FILE, summary)
            logger.info("done: %d steps in %.1f s (%.3f steps/s, %.0f%% of it waiting for data); first loss %s, last loss %s; "
                        "%d file(s) skipped", summary["steps_this_session"], session_time, summary["steps_per_s"] or 0.0,
                        100 * (summary["data_wait_fraction"] or 0.0), _fmt(self.first_losses), _fmt(self.last_losses),
                        summary["num_skipped_files"])
        return summary

    def _run_summary(self, start_step: int, session_time: float, train_time: float, export_dir: Path | None,
                     stopped_by: str | None) -> dict[str, Any]:
        """What ``summary.json`` records of this session of the run."""
        steps = self.step - start_step
        summary = {
            "config": self.cfg.source,
            "name": self.cfg.name,
            "output_dir": str(self.run_dir),
            "model": type(self.vae_unwrapped).__name__,
            "parameters": sum(p.numel() for p in self.vae_unwrapped.parameters()),
            "trainable_parameters": self.trainable_parameters,
            "frozen": list(self.cfg.model.freeze),
            "steps": self.step,
            "max_steps": self.cfg.train.max_steps,
            "max_minutes": self.cfg.train.max_minutes,
            "start_step": start_step,
            "resumed_from": str(self._resumed_from) if self._resumed_from else None,
            "steps_this_session": steps,
            "time_s": round(session_time, 3),
            "train_time_s": round(train_time, 3),
            "steps_per_s": round(steps / train_time, 4) if steps and train_time > 0 else None,
            "wall_steps_per_s": round(steps / session_time, 4) if steps and session_time > 0 else None,
            # a share near 1 means the data loader, not the model, sets the pace (data.num_workers, frame_cache_mb)
            "data_wait_fraction": round(self.data_wait_s / train_time, 4) if steps and train_time > 0 else None,
            "samples_seen": self.samples_seen,
            "first_losses": self.first_losses,
            "last_losses": self.last_losses,
            "val_psnr": self.val_history,
            "validation_held_out": self.val_held_out,
            "skipped_files": self._all_bad_files(),
            "checkpoint": str(latest_checkpoint(self.checkpoint_root)) if latest_checkpoint(self.checkpoint_root) else None,
            "export": str(export_dir) if export_dir else None,
            "world_size": self.accelerator.num_processes,
            "precision": self.cfg.train.precision,
            "device": str(self.device),
            "compile": self.compile_report,
            "stopped_by": stopped_by,
        }
        summary["num_skipped_files"] = len(summary["skipped_files"])
        return summary

    def _check_finite(self, logs: dict[str, float]) -> None:
        """Stop at a NaN / infinite loss, before the diverged weights reach the EMA, a checkpoint or an export.

        The losses are per process: under DDP the processes agree on one flag (one tiny all-reduce
        per step), so that all of them stop at this step.
        """
        bad = _non_finite(logs, grad_norms=self.cfg.train.precision != "fp16")  # fp16: the scaler skips inf steps
        anywhere = bool(bad)
        if self.accelerator.num_processes > 1:
            flag = torch.tensor([float(anywhere)], device=self.device)
            anywhere = bool(self.accelerator.reduce(flag, reduction="sum").item())
        if not anywhere:
            return
        terms = ", ".join(f"{k}={v:.4g}" for k, v in logs.items() if not k.startswith("lr") and "/" not in k)
        where = "" if bad else " on another process"
        latest = latest_checkpoint(self.checkpoint_root)
        saved = f"the last checkpoint is {latest}" if latest is not None else "no checkpoint was saved"
        message = (f"step {self.step}: the loss is not finite{where} ({terms}): lower optimizer.lr or check the data; "
                   f"{saved} (nothing was saved or exported from this step on)")
        if self.is_main:
            logger.error("%s", message)  # the run's train.log says why it ended
        raise NonFiniteLossError(message)

    def _stop_requested(self) -> bool:
        """Whether a stop signal reached this process (or, under DDP, any process: all stop at one step)."""
        stop = getattr(self, "_stop", None)
        if self.accelerator.num_processes == 1:
            return bool(stop and stop.requested)
        if stop and stop.requested:
            self.accelerator.set_trigger()
        return self.accelerator.check_trigger()

    def _fit_horizon_to_budget(self, budget: _TimeBudget, now: float) -> None:
        """Shorten the run (and its lr schedule) to the steps that fit the time budget.

        Every process must stop at the same step, so the main process decides and broadcasts.
        """
        from accelerate.utils import broadcast

        horizon = budget.horizon(self.step, now, self.cfg.train.max_steps) if self.is_main else 0
        if self.accelerator.num_processes > 1:
            horizon = int(broadcast(torch.tensor([horizon], device=self.device)).item())
        horizon = max(horizon, self.step)
        if horizon != self.total_steps:
            if self.total_steps == self.cfg.train.max_steps and self.is_main:
                logger.info("time budget %.1f min: the run ends at step %d (was %d)", budget.seconds / 60, horizon,
                            self.cfg.train.max_steps)
            self.total_steps = horizon
            self._apply_schedule()  # the next step already follows the new horizon
            if self._pbar is not None:
                self._pbar.total = horizon
                self._pbar.refresh()

    def _all_bad_files(self) -> dict[str, str]:
        from accelerate.utils import gather_object

        gathered = gather_object([self.bad_files]) if self.accelerator.num_processes > 1 else [self.bad_files]
        merged: dict[str, str] = {}
        for part in gathered:
            merged.update(part)
        return dict(sorted(merged.items()))

    # ----------------------------------------------------------------------------- outputs
    def _open_outputs(self) -> None:
        if not self.is_main:
            return
        metrics = self.run_dir / METRICS_FILE
        if metrics.exists():  # drop lines of work lost since the checkpoint we resume from
            kept = [line for line in metrics.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= self.step]
            metrics.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        if self.cfg.logging.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step + 1 if self.step else None)
            except ImportError as err:  # pragma: no cover - tensorboard is a dependency
                logger.warning("TensorBoard unavailable (%s); logging to metrics.jsonl only", err)
        if self.cfg.logging.progress_bar:
            from tqdm.auto import tqdm

            self._pbar = tqdm(total=self.cfg.train.max_steps, initial=self.step, desc=self.cfg.name or "train",
                              dynamic_ncols=True, unit="step")

    def _log(self, window: dict[str, list[float]], steps_per_s: float) -> None:
        from accelerate.utils import gather_object

        local = {k: (float(np.sum(v)), len(v)) for k, v in window.items()}
        parts = gather_object([local]) if self.accelerator.num_processes > 1 else [local]
        if not self.is_main:
            return
        sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        for part in parts:
            for k, (total, n) in part.items():
                sums[k][0] += total
                sums[k][1] += n
        means = {k: total / n for k, (total, n) in sums.items() if n}
        record = {"step": self.step, "epoch": self.epoch, **{k: means[k] for k in sorted(means)},
                  "steps_per_s": steps_per_s, "samples_seen": self.samples_seen, "skipped_files": len(self.bad_files),
                  "time": time.time()}
        losses = {k: v for k, v in means.items() if not k.startswith(("lr", "grad_norm", "data_wait"))}
        if self.first_losses is None:
            self.first_losses = {"step": self.step, **losses}
        self.last_losses = {"step": self.step, **losses}
        with open(self.run_dir / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for k, v in means.items():
                group = "perf" if k.startswith("data_wait") else "train" if not k.startswith(("lr", "grad_norm")) else "optim"
                self._writer.add_scalar(f"{group}/{k}", v, self.step)
            self._writer.add_scalar("perf/steps_per_s", steps_per_s, self.step)
            self._writer.add_scalar("data/skipped_files", len(self.bad_files), self.step)
        if self._pbar is not None:
            post = {"loss": f"{means.get('total', float('nan')):.4f}", "l1": f"{means.get('l1', float('nan')):.4f}",
                    "lr": f"{means.get('lr', 0):.2e}", "steps/s": f"{steps_per_s:.2f}"}
            if "d_loss" in means:
                post["d"] = f"{means['d_loss']:.3f}"
            if self.bad_files:
                post["skipped"] = len(self.bad_files)
            self._pbar.set_postfix(post, refresh=False)

    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        """PSNR of the fixed validation clips (raw and EMA weights) and the image grid; main process."""
        from ivvae.eval.metrics import psnr

        result = None
        if self.is_main and self.val_clips:
            models = [("psnr", self.vae_unwrapped)] + ([("psnr_ema", self.ema.model)] if self.ema is not None else [])
            result = {"step": self.step}
            columns = [self.val_clips]
            for key, model in models:
                was_training = model.training
                model.eval()
                values, recs = [], []
                for clip in self.val_clips:
                    x = clip.to(self.device)
                    if self.cfg.model.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last_3d)
                    with self.accelerator.autocast():
                        rec = model(x).sample
                    rec = rec.float().clamp(-1, 1)
                    values.append(float(psnr(x.float(), rec)))
                    recs.append(rec.cpu())
                model.train(was_training)
                result[key] = float(np.mean(values))
                columns.append(recs)
            self.val_history.append(result)
            if self._writer is not None:
                for key, value in result.items():
                    if key != "step":
                        self._writer.add_scalar(f"val/{key}", value, self.step)
            if self.cfg.logging.images:
                grid = reconstruction_grid(columns, self.cfg.data.validation.image_frames)
                images = self.run_dir / "images"
                images.mkdir(exist_ok=True)
                from PIL import Image

                Image.fromarray(grid).save(images / f"val_{self.step:08d}.png")
                if self._writer is not None:
                    self._writer.add_image("val/input|reconstruction|ema", grid, self.step, dataformats="HWC")
            logger.info("step %d: validation %s", self.step, ", ".join(f"{k} {v:.3f} dB" for k, v in result.items() if k != "step"))
        self.accelerator.wait_for_everyone()
        return result

    # ----------------------------------------------------------------------------- checkpoints
    def _trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "sampler": self.train_sampler.state_dict(self.batches_consumed),
            "samples_seen": self.samples_seen,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "first_losses": self.first_losses,
            "last_losses": self.last_losses,
            "val_history": self.val_history,
            "bad_files": self._all_bad_files(),
            "time_trained_s": self.time_trained,
            "world_size": self.accelerator.num_processes,
            "run_id": self.run_id,
            "model_class": f"{type(self.vae_unwrapped).__module__}.{type(self.vae_unwrapped).__qualname__}",
            "config": config_to_dict(self.cfg),
            "saved_at": time.time(),
        }

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step_N`` atomically (all processes take part); returns its path."""
        acc = self.accelerator
        root = self.checkpoint_root
        name = checkpoint_name(self.step)
        tmp = root / f"{TMP_PREFIX}{name}"
        final = root / name
        if self.is_main:
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp), safe_serialization=True)
        state = self._trainer_state()  # collective (bad files of every process)
        if self.is_main:
            self.vae_unwrapped.save_config(str(tmp))
            if self.ema is not None:
                self.ema.model.save_pretrained(str(tmp / EMA_DIR), safe_serialization=True)
            torch.save({"vae": self.scheduler.state_dict(),
                        "discriminator": self.scheduler_d.state_dict() if self.scheduler_d is not None else None},
                       tmp / "schedulers.pt")
            write_json_atomic(tmp / STATE_FILE, state)  # last: marks the folder complete
        acc.wait_for_everyone()
        if self.is_main:
            finalize_dir(tmp, final)
            write_latest(root, name)
            removed = prune_checkpoints(root, self.cfg.checkpoint.keep_last, keep=(final,))
            logger.info("step %d: checkpoint %s%s", self.step, final,
                        f" (removed {len(removed)} old)" if removed else "")
        acc.wait_for_everyone()
        return final

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore everything a checkpoint holds: weights, optimisers, schedulers, RNG, data position.

        Raises:
            CheckpointMismatchError: its weights do not fit the model the config built (checked first).
            CheckpointDamagedError: a file of it cannot be read (the message names it).
        """
        from safetensors.torch import load_file

        path = Path(path)
        state = _read_trainer_state(path)
        acc = self.accelerator
        has_disc = (path / "model_1.safetensors").is_file() or (path / "pytorch_model_1.bin").is_file()
        if has_disc != (self.discriminator is not None):
            raise ValueError(f"checkpoint '{path}' {'has' if has_disc else 'has no'} discriminator but the config "
                             f"{'disables' if has_disc else 'enables'} the GAN; resume with the config it was written with, "
                             "or start a new stage with model.init.from_pretrained")
        saved_frozen = list(((state.get("config") or {}).get("model") or {}).get("freeze") or [])
        if saved_frozen != list(self.cfg.model.freeze):  # else load_state fails on the optimiser's parameter groups
            raise ValueError(f"checkpoint '{path}' was trained with model.freeze {saved_frozen} but the config says "
                             f"{list(self.cfg.model.freeze)}; resume with the freeze it was written with, or start a new "
                             "stage from it with model.init.from_pretrained")
        check_checkpoint_shapes(path, self._weights_files())  # a clear message instead of load_state's size mismatches
        with reading_checkpoint(path, path):  # weights, optimisers, RNG states: accelerate does not say which failed
            acc.load_state(str(path))
        with reading_checkpoint(path, path / "schedulers.pt"):
            schedulers = torch.load(path / "schedulers.pt", weights_only=False)
            self.scheduler.load_state_dict(schedulers["vae"])
            if self.scheduler_d is not None and schedulers.get("discriminator") is not None:
                self.scheduler_d.load_state_dict(schedulers["discriminator"])
        self._rebase_lr(self.scheduler, self.cfg.optimizer.lr, "optimizer.lr")
        if self.scheduler_d is not None:
            self._rebase_lr(self.scheduler_d, self.cfg.loss.gan.optimizer.lr, "loss.gan.optimizer.lr")
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.samples_seen = int(state.get("samples_seen", 0))
        self.first_losses = state.get("first_losses")
        self.last_losses = state.get("last_losses")
        self.val_history = list(state.get("val_history", []))
        self.bad_files = dict(state.get("bad_files", {})) if self.is_main else {}
        self.time_trained = float(state.get("time_trained_s", 0.0))
        self._adopt_run_id(path, state)
        self._resume_schedule(state)
        if int(state.get("world_size", acc.num_processes)) != acc.num_processes:
            logger.warning("checkpoint was written by %s process(es), resuming with %d: the data order changes from here on",
                           state.get("world_size"), acc.num_processes)
            self._resume_sampler_state = None
            self.epoch += 1  # start a fresh epoch rather than guess a position
        else:
            self._resume_sampler_state = state["sampler"]
        if self.ema is not None:
            ema_file = path / EMA_DIR / "diffusion_pytorch_model.safetensors"
            if ema_file.is_file():
                with reading_checkpoint(path, ema_file):
                    self.ema.load_state_dict(state.get("ema") or {}, load_file(str(ema_file)))
            else:
                logger.warning("checkpoint has no EMA weights: the EMA restarts from the current weights")
                self.ema.copy_from(self.vae_unwrapped)
        self._resumed_from = path
        if self.is_main:
            logger.info("resumed from %s (step %d, epoch %d, batch %d of the epoch)", path, self.step, self.epoch,
                        state["sampler"]["batches_consumed"])

    def _rebase_lr(self, scheduler: torch.optim.lr_scheduler.LambdaLR, lr: float, key: str) -> None:
        """Give a resumed schedule the config's peak lr (``--set optimizer.lr=...`` on ``--resume``).

        The loaded optimiser and scheduler states bring back the lr the checkpoint was trained with;
        rescale them so that each step's lr is ``lr`` times the schedule's factor. An unchanged lr
        leaves them untouched (the resume stays exact).
        """
        old = scheduler.base_lrs[0]
        if lr == old:
            return
        for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, strict=True):
            group["lr"] *= lr / base  # keeps the factor the checkpoint's schedule had reached
            group["initial_lr"] = lr
        scheduler.base_lrs = [lr] * len(scheduler.base_lrs)
        scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]  # what the next step logs
        if self.is_main:
            logger.info("resume: %s changed from %g to %g; the lr schedule is rescaled to it", key, old, lr)

    def _adopt_run_id(self, checkpoint: Path, state: dict[str, Any]) -> None:
        """Continue the run id of a checkpoint of this output dir (its exports stay this run's); a checkpoint of
        another folder starts a new run here, and one of this folder from before run ids marks a legacy run."""
        if not _is_within(checkpoint, self.run_dir):
            return
        run_id = state.get("run_id")
        if isinstance(run_id, str) and run_id:
            self.run_id = run_id
        else:
            self._legacy_run = True

    def _resume_schedule(self, state: dict[str, Any]) -> None:
        """Put the resumed step's lr on this session's schedule at once.

        The restored optimiser holds the lr the old schedule set for the next step; with another
        horizon (``--set train.max_steps=...``) the first resumed step would still use it and the lr
        would jump onto the new schedule one step late. An unchanged schedule gives the same value.
        """
        old_lr = self.scheduler.optimizer.param_groups[0]["lr"]
        self._apply_schedule()
        old_total = (state.get("config") or {}).get("train", {}).get("max_steps")
        if isinstance(old_total, int) and old_total != self.total_steps and self.is_main:
            logger.info("resume: the lr schedule's horizon changed from %d to %d steps (train.max_steps); the lr of step %d is "
                        "%.4g (the old schedule's: %.4g)", old_total, self.total_steps, int(state["step"]) + 1,
                        self.scheduler.get_last_lr()[0], old_lr)

    def _apply_schedule(self) -> None:
        """Set the lr of the next step from the schedules' lambdas (they read ``self.total_steps``)."""
        for scheduler in (self.scheduler, self.scheduler_d):
            if scheduler is None:
                continue
            lrs = [base * fn(scheduler.last_epoch) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True)]
            for group, lr in zip(scheduler.optimizer.param_groups, lrs, strict=True):
                group["lr"] = lr
            scheduler._last_lr = lrs  # what the next step logs

    def _weights_files(self) -> dict[str, nn.Module]:
        """Checkpoint weights file -> the bare module it holds (accelerate numbers the prepared models)."""
        files = {"model.safetensors": self.vae_unwrapped}
        if self.discriminator is not None:
            files["model_1.safetensors"] = self.accelerator.unwrap_model(self.discriminator)
        return files

    # ----------------------------------------------------------------------------- export
    def export(self, out_dir: str | os.PathLike) -> Path | None:
        """Write the EMA (or raw) weights as a ``from_pretrained`` folder (main process)."""
        out = None
        if self.is_main:
            use_ema = self.cfg.export.use_ema and self.ema is not None
            model = self.ema.model if use_ema else self.vae_unwrapped
            out = export_model(model, out_dir, self.cfg.export.dtype, step=self.step, run_id=self.run_id)
            logger.info("step %d: exported %s weights (%s) to %s", self.step, "EMA" if use_ema else "raw", self.cfg.export.dtype, out)
        self.accelerator.wait_for_everyone()
        return Path(out_dir) if out is None else out

    def _final_export(self, trained: bool) -> Path:
        """The end-of-run export; a session that trained no step keeps an export of this run already holding
        this step or a later one (rewriting it would only replace a newer export, or the same weights)."""
        out = self.run_dir / self.cfg.export.dir
        step = _export_step_of(out, self.run_dir) if out.is_dir() and not trained else None
        if step is not None and step >= self.step and self._export_conflict(out) is None:
            if self.is_main:
                logger.info("step %d: no step trained; %s already holds the export of step %d: kept", self.step, out, step)
            return out
        return self.export(out)

    def _maybe_export_during_run(self) -> None:
        every = self.cfg.export.every
        if self.is_main:
            request = self.run_dir / EXPORT_REQUEST_FILE
            due = bool(every) and self.step % every == 0
            if request.exists() or due:
                if request.exists():
                    request.unlink(missing_ok=True)
                use_ema = self.cfg.export.use_ema and self.ema is not None
                out = self.run_dir / PERIODIC_EXPORTS_DIR / checkpoint_name(self.step)
                why = self._export_conflict(out)
                if why is not None:  # appeared since the start's check: keep it, and keep training
                    logger.warning("step %d: not exported: '%s' %s (pass --overwrite to replace it)", self.step, out, why)
                    return
                export_model(self.ema.model if use_ema else self.vae_unwrapped, out, self.cfg.export.dtype, step=self.step,
                             run_id=self.run_id)
                logger.info("step %d: exported to %s", self.step, out)


class _NewOutputs:
    """What a run adds to its output dir, so that a failed start can remove that and nothing else."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        # the folders mkdir(parents=True) will create, innermost first
        self.created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
        self.existing = set(os.listdir(run_dir)) if run_dir.is_dir() else set()

    def remove(self) -> None:
        if self.created:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            for folder in self.created[1:]:
                try:
                    folder.rmdir()  # only while empty: another run may have started beside it
                except OSError:
                    break
            return
        if not self.run_dir.is_dir():
            return
        for name in set(os.listdir(self.run_dir)) - self.existing:
            path = self.run_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _in_file(error: ConfigError, source: str | None) -> ConfigError:
    """``error`` naming the config file (the model and data builders know only the key)."""
    if not source or str(error).startswith(source):
        return error
    return ConfigError(f"{source}: {error}")


def _is_within(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _same_file(path: Path, other: str | os.PathLike | None) -> bool:
    try:
        return other is not None and os.path.samefile(path, other)
    except OSError:
        return False


def _numbered(run_dir: Path, kind: str) -> list[tuple[int, Path]]:
    """``config.<kind>-N.yaml`` files of ``run_dir`` as (N, path), by N."""
    found = []
    for path in run_dir.glob(f"config.{kind}-*.yaml"):
        number = path.name[len(f"config.{kind}-"):-len(".yaml")]
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found)


def _config_dict_of(path: Path) -> dict[str, Any] | None:
    """The config of a YAML file as :func:`config_to_dict` gives it; None if it does not load."""
    try:
        return config_to_dict(load_config(path))
    except (ValueError, OSError):  # ConfigError included: then it is another config than ours
        return None


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two config mappings."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [prefix[:-1] or "(all)"] if old != new else []
    keys = dict.fromkeys([*new, *old])
    return [key for k in keys for key in _changed_keys(old.get(k), new.get(k), f"{prefix}{k}.")]


def _finished_note(step: int, max_steps: int) -> str:
    return (f"the run already reached train.max_steps={max_steps} (it is at step {step}): nothing to train; to train "
            f"further, resume it with --resume auto --set train.max_steps=N (N > {step})")


def _read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's trainer_state.json, with the entries resuming needs."""
    file = checkpoint / STATE_FILE
    with reading_checkpoint(checkpoint, file):
        state = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            raise ValueError(f"a JSON object was expected, got {type(state).__name__}")
        needed = (state["step"], state["epoch"], state["sampler"]["batches_consumed"])  # KeyError if cut short
        if not all(isinstance(v, int) for v in needed):
            raise ValueError(f"step, epoch and sampler.batches_consumed must be integers, got {needed}")
    return state


def _non_finite(logs: dict[str, float], grad_norms: bool = True) -> list[str]:
    """The loss terms (and gradient norms) of a step's logs that are NaN or infinite."""
    return [k for k, v in logs.items()
            if not k.startswith("lr") and (grad_norms or not k.startswith("grad_norm")) and not math.isfinite(v)]


def _worker_start_method() -> str | None:
    """``fork`` for data workers on Linux (they then share the preloaded frame caches' pages instead
    of each decoding the videos again; Python 3.14 made ``forkserver`` the default there), else
    the platform's default."""
    import multiprocessing

    return "fork" if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods() else None


class _TimeBudget:
    """Plans how many steps fit a wall-clock budget, from the pace measured so far.

    The pace is taken from the first call on (by then the first steps' one-off costs, such as
    kernel selection and data-worker start-up, are behind), over wall time, so validation and
    checkpoints during the run count against the budget too.
    """

    def __init__(self, seconds: float, start: float) -> None:
        self.seconds, self.start = seconds, start
        self._reference: tuple[int, float] | None = None

    def horizon(self, step: int, now: float, max_steps: int) -> int:
        """The last step to run: ``step`` when the budget is spent, at most ``max_steps``."""
        remaining = self.seconds - (now - self.start)
        if remaining <= 0:
            return step
        if self._reference is None or step <= self._reference[0]:
            self._reference = (step, now)
            return max_steps
        ref_step, ref_time = self._reference
        seconds_per_step = (now - ref_time) / (step - ref_step)
        return min(max_steps, step + int(remaining / seconds_per_step))


def _reset_accelerate_state() -> None:
    """Let a process run several trainings in turn (tests, notebooks) with different precision or
    accumulation: accelerate keeps one process-wide state and refuses changes to it. The process
    group (PartialState) is kept."""
    try:
        from accelerate.state import AcceleratorState, GradientState

        if AcceleratorState._shared_state:
            AcceleratorState._reset_state(reset_partial_state=False)
        if GradientState._shared_state:
            GradientState._reset_state()
    except (ImportError, AttributeError):  # pragma: no cover - accelerate internals moved
        pass


def _mean_dicts(dicts: Sequence[dict[str, float]]) -> dict[str, float]:
    acc: dict[str, list[float]] = defaultdict(list)
    for d in dicts:
        for k, v in d.items():
            acc[k].append(v)
    return {k: float(np.mean(v)) for k, v in acc.items()}


def _fmt(losses: dict[str, float] | None) -> str:
    if not losses:
        return "-"
    return f"{losses.get('total', float('nan')):.4f} (l1 {losses.get('l1', float('nan')):.4f}, step {losses.get('step')})"


# ============================================================================================
# Entry points
# ============================================================================================


def run_training(config_path: str | os.PathLike, overrides: Sequence[str] = (), resume: str | None = None, *,
                 output_dir: str | os.PathLike | None = None, callbacks: Sequence[StepCallback] = (),
                 overwrite: bool = False) -> dict[str, Any]:
    """Train from a YAML config; returns the run summary (also written to ``<output_dir>/summary.json``).

    Args:
        config_path: the YAML file (see :mod:`ivvae.train.config`).
        overrides: ``key.sub=value`` strings, as ``--set`` takes them.
        resume: ``None`` (a fresh run; refused if the output dir already holds checkpoints),
            ``"auto"`` (the latest complete checkpoint of the output dir, or a fresh start if none),
            or a checkpoint / run folder.
        output_dir: overrides the config's ``output_dir``.
        callbacks: ``fn(trainer, step, logs)`` after every optimiser step.
        overwrite: let the run's exports replace folders it did not write (``--overwrite``).

    Raises:
        ConfigError: an invalid config or override (the message names the key and the file).
        FileExistsError: ``resume`` is None but the output dir already holds checkpoints; or an export
            folder exists, is not empty and was not written by this run (checked before the first step).
        CheckpointMismatchError, CheckpointDamagedError: the checkpoint to resume holds a model of
            another shape, or a file of it cannot be read.
        NonFiniteLossError: the loss became NaN or infinite (nothing is saved from that step on).
    """
    cfg = load_config(config_path, overrides)
    trainer = Trainer(cfg, output_dir=output_dir, callbacks=callbacks, resume=resume)
    return trainer.train(overwrite=overwrite)


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``ivvae train``'s arguments: CONFIG, --set, --resume, --output-dir, --export-only."""
    parser.add_argument("config", help="training config (YAML), e.g. configs/tiny_cpu.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optimizer.lr=2e-4 --set data.num_workers=0 (repeatable)")
    parser.add_argument("--resume", default=None, metavar="auto|PATH",
                        help="'auto': continue from the latest complete checkpoint in the output dir (or start fresh); "
                             "PATH: a checkpoint folder or a run's output dir")
    parser.add_argument("--output-dir", default=None, metavar="DIR", help="run folder (default: the config's output_dir, "
                        "else runs/<config name>)")
    parser.add_argument("--export-only", action="store_true",
                        help="do not train: export the (EMA) weights of the checkpoint --resume names (default: the "
                             "latest) as a from_pretrained folder <output_dir>/<export.dir>")
    parser.add_argument("--overwrite", action="store_true",
                        help="let the export replace <output_dir>/<export.dir> (and <output_dir>/exports/step_N) even if this run "
                             "did not write it (or, with --export-only, it holds the export of a later step)")
    return parser


def _export_step_of(folder: Path, run_dir: Path) -> int | None:
    """The step of the export in ``folder``: its record, else (an export written before records) the
    run's summary.json when it names this folder; None if unknown."""
    step = exported_step(folder)
    if step is not None:
        return step
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
        named, steps = Path(summary["export"]).name, summary["steps"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return steps if named == folder.name and isinstance(steps, int) and not isinstance(steps, bool) else None


def _refuse_replacing_later_export(out: Path, checkpoint: Path, run_dir: Path, overwrite: bool) -> None:
    """--export-only of an older checkpoint must not silently replace the export of a later step, nor a
    folder that is not an export of the run at all (the user's files)."""
    if overwrite or not out.exists():
        return
    existing, step = _export_step_of(out, run_dir), checkpoint_step(checkpoint)
    if existing is None and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"'{out}' exists and is not an export of this run; export elsewhere with --set export.dir=NAME, "
                              "or replace it with --overwrite")
    if existing is not None and step is not None and existing > step:
        raise FileExistsError(f"'{out}' holds the export of step {existing}, later than checkpoint '{checkpoint}' (step {step}); "
                              "export it elsewhere with --set export.dir=NAME, or replace it with --overwrite")


def train_main(args: argparse.Namespace) -> int:
    """Run ``ivvae train`` from parsed :func:`add_train_arguments` arguments; returns the exit code."""
    if args.export_only:
        cfg = load_config(args.config, args.overrides)
        run_dir = Path(args.output_dir or cfg.output_dir or Path("runs") / (cfg.name or "run"))
        checkpoint = resolve_resume(args.resume or "auto", run_dir)
        if checkpoint is None:
            raise FileNotFoundError(f"no complete checkpoint in '{run_dir / CHECKPOINTS_DIR}' to export")
        _refuse_replacing_later_export(run_dir / cfg.export.dir, checkpoint, run_dir, args.overwrite)
        weights = "ema" if cfg.export.use_ema and cfg.ema.enabled else "model"
        out = export_checkpoint(checkpoint, run_dir / cfg.export.dir, cfg.export.dtype, weights=weights)
        print(f"exported {checkpoint} -> {out}")
        return 0
    try:
        summary = run_training(args.config, args.overrides, args.resume, output_dir=args.output_dir, overwrite=args.overwrite)
    finally:
        _end_process_group()
    main_process = int(os.environ.get("RANK", "0")) == 0  # one summary per run, not per process
    if main_process:
        print(json.dumps({k: summary[k] for k in ("output_dir", "steps", "time_s", "steps_per_s", "data_wait_fraction",
                                                  "first_losses", "last_losses",
                                                  "val_psnr", "num_skipped_files", "checkpoint", "export", "stopped_by")},
                         indent=1))
    stopped_by = summary.get("stopped_by")
    if main_process and not summary["steps_this_session"] and not stopped_by and summary["steps"] >= summary["max_steps"]:
        print(f"ivvae train: {_finished_note(summary['steps'], summary['max_steps'])}", file=sys.stderr)
    if not stopped_by:
        return 0
    if main_process:
        saved = f"checkpoint {summary['checkpoint']}" + (f", export {summary['export']}" if summary["export"] else "")
        print(f"stopped by {stopped_by} at step {summary['steps']} ({saved}): continue the run with --resume auto",
              file=sys.stderr)
    # the shell's convention for a signal's end (130 for Ctrl-C, 143 for SIGTERM): scripts see it did not finish
    return 128 + int(getattr(signal.Signals, stopped_by, signal.SIGTERM))


def _end_process_group() -> None:
    """Tear down the torchrun process group, as accelerate's ``end_training`` does: left to the interpreter's exit, a gloo
    group's threads can abort a process that finished its work ("terminate called without an active exception"), and
    torchrun then reports the whole run as failed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ivvae.train.trainer CONFIG ...`` (what ``accelerate launch -m`` runs)."""
    from ivvae.cli.argtypes import OneLineErrorParser

    parser = add_train_arguments(OneLineErrorParser(prog="ivvae train", description=__doc__.split("\n\n")[0]))
    args = parser.parse_args(argv)
    try:
        return train_main(args)
    except (ValueError, OSError) as err:  # the user's to fix, as `ivvae train` reports them (ConfigError included)
        print(f"ivvae train: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
