"""Training losses: MAE + LPIPS + a small KL, and a patch-GAN term for the last stage.

The paper trains with "MAE + LPIPS" (plus the usual small KL) and adds a GAN loss from a 3-D
discriminator, with a per-resolution weight, in the mixed-resolution stage. `VAELoss` combines
the terms for the generator step; `VAELoss.discriminator_loss` is the discriminator step.

KL reduction: `VAELoss` defaults to ``kl_reduction="mean"`` (per latent element) with
``kl_weight=1e-6``, and the configs should keep it. The reconstruction terms are per-element means,
so a per-element KL keeps the balance fixed across resolutions and clip lengths (stage 3 mixes
them); the taming-style ``"sum"`` with weight 1e-6 was tuned against a *summed* reconstruction
loss and would rival the L1 term at 256x256x17.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "kl_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "vanilla_d_loss",
    "vanilla_g_loss",
    "gan_losses",
    "adaptive_gan_weight",
    "build_lpips_loss",
    "VAELoss",
]

logger = logging.getLogger(__name__)

LpipsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------- KL


def kl_loss(posterior: Any, reduction: str = "sum") -> torch.Tensor:
    """KL(q || N(0, I)) of a diagonal Gaussian posterior with latents of any rank.

    `posterior` is diffusers' `DiagonalGaussianDistribution` (or anything with `mean` and
    `logvar`). Its own `.kl()` sums dims 1-3 only, which leaves the width axis of 5-D video
    latents unsummed, hence this function.

    reduction: "sum" sums over all non-batch dims and averages over the batch (the taming /
    Stable Diffusion convention); "mean" averages over every element.
    """
    if getattr(posterior, "deterministic", False):
        return posterior.mean.new_zeros(())
    mean, logvar = posterior.mean, posterior.logvar
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)
    if reduction == "sum":
        return kl.flatten(1).sum(1).mean()
    if reduction == "mean":
        return kl.mean()
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


# -------------------------------------------------------------------------------- GAN terms


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss: 0.5 * (mean relu(1 - real) + mean relu(1 + fake))."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss: -mean(fake logits)."""
    return -logits_fake.mean()


def vanilla_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Standard (cross-entropy) discriminator loss: 0.5 * (softplus(-real) + softplus(fake))."""
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def vanilla_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: mean softplus(-fake) = -mean log sigmoid(fake)."""
    return F.softplus(-logits_fake).mean()


_GAN_LOSSES = {
    "hinge": (hinge_d_loss, hinge_g_loss),
    "vanilla": (vanilla_d_loss, vanilla_g_loss),
}


def gan_losses(kind: str) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """Return `(d_loss_fn, g_loss_fn)` for `kind` in {"hinge", "vanilla"}."""
    if kind not in _GAN_LOSSES:
        raise ValueError(f"gan loss must be one of {sorted(_GAN_LOSSES)}, got {kind!r}")
    return _GAN_LOSSES[kind]


def adaptive_gan_weight(
    rec_loss: torch.Tensor,
    g_loss: torch.Tensor,
    last_layer_weight: torch.Tensor | Sequence[torch.Tensor],
    max_weight: float = 1e4,
) -> torch.Tensor:
    """The taming-transformers adaptive GAN weight: ||d rec / d W|| / (||d g / d W|| + 1e-4).

    `W` is the decoder's last layer weight, or a list of weights taken as one flattened tensor
    (every branch of a dual last conv: each writes its own output channels). The result is
    clamped to [0, max_weight] and detached. It is 0 when either loss does not reach `W` (no
    graph, e.g. under `no_grad`, or a generator loss that does not depend on it).

    Under DDP / accelerate pass the parameter of the *unwrapped* model
    (`accelerator.unwrap_model(vae).<...>.weight`): the wrapper has no model attributes, and the
    parameter object is shared, so the gradients are the same. `torch.autograd.grad` fires no
    DDP hooks. Gradient checkpointing must be non-reentrant (`use_reentrant=False`): the reentrant
    variant refuses `torch.autograd.grad`.
    """
    weights = [last_layer_weight] if isinstance(last_layer_weight, torch.Tensor) else list(last_layer_weight)
    zero = weights[0].new_zeros(()).detach()
    if not (rec_loss.requires_grad and g_loss.requires_grad):
        return zero
    rec_grads = torch.autograd.grad(rec_loss, weights, retain_graph=True, allow_unused=True)
    g_grads = torch.autograd.grad(g_loss, weights, retain_graph=True, allow_unused=True)
    rec_norm, g_norm = _joint_norm(rec_grads), _joint_norm(g_grads)
    if rec_norm is None or g_norm is None:
        return zero
    weight = rec_norm / (g_norm + 1e-4)
    return weight.clamp(0.0, max_weight).detach()


def _joint_norm(grads: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    """The norm of the gradients as one flattened vector (unused weights count as 0); None if none is used."""
    used = [g.float() for g in grads if g is not None]
    if not used:
        return None
    return torch.sqrt(sum(g.square().sum() for g in used))


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Turn off `requires_grad` on a module's parameters for the duration, then restore it.

    In the generator step the discriminator only has to pass gradients through to the
    reconstruction: frozen weights skip their weight gradients and keep the discriminator's
    `.grad` clean for its own step.
    """
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _unwrap_ddp(module: nn.Module) -> nn.Module:
    # The frozen forward has nothing to all-reduce: a plain module call keeps it out of DDP's
    # per-iteration reducer bookkeeping (and, with BatchNorm, its buffer broadcast).
    return module.module if isinstance(module, DistributedDataParallel) else module


# ------------------------------------------------------------------------------------ LPIPS


def build_lpips_loss(
    config: Mapping[str, Any] | None, on_missing: str = "stop"
) -> nn.Module | None:
    """Build the frozen LPIPS network from an `lpips` config section, or return None.

    config keys: `net` ("alex" by default), `backbone_weights`, `head_weights` (paths; a missing
    key lets `ivvae.eval.lpips.LPIPS` search its default locations), `pretrained` (false: an
    untrained network that reads no file, for smoke runs). `None` or `enabled: false` -> None.

    on_missing: what to do when a weights file does not exist. "stop" raises
    `FileNotFoundError` naming the file and the config field; "skip" logs a warning and returns
    None, and `VAELoss` then trains without the LPIPS term.
    """
    if on_missing not in ("stop", "skip"):
        raise ValueError(f"on_missing must be 'stop' or 'skip', got {on_missing!r}")
    if config is None or not config.get("enabled", True):
        return None
    try:  # lazy: the LPIPS module is optional for users who only run inference
        from ivvae.eval.lpips import LPIPS, WeightsNotFoundError
    except ImportError as err:
        raise ImportError(f"the LPIPS loss needs ivvae.eval.lpips: {err}") from err

    fields = {
        k: str(Path(config[k]).expanduser())
        for k in ("backbone_weights", "head_weights")
        if config.get(k)
    }
    for field, path in fields.items():
        if not Path(path).is_file():
            return _lpips_missing(f"{path} (config field loss.lpips.{field})", on_missing)
    try:
        if "pretrained" in config:  # False: an untrained network, for smoke runs only
            fields["pretrained"] = bool(config["pretrained"])
        lpips = LPIPS(net=config.get("net", "alex"), **fields)
    except WeightsNotFoundError as err:  # e.g. a default path resolved inside LPIPS
        where = "config fields loss.lpips.backbone_weights / loss.lpips.head_weights"
        return _lpips_missing(f"{err} ({where})", on_missing, err)
    return lpips.eval().requires_grad_(False)


def _lpips_missing(what: str, on_missing: str, cause: Exception | None = None) -> None:
    message = f"LPIPS weights not found: {what}"
    if on_missing == "stop":
        raise FileNotFoundError(
            f"{message}. Set the path in the config, or use on_missing='skip' to train "
            "without the LPIPS term."
        ) from cause
    logger.warning("%s; training without the LPIPS term.", message)
    return None


# ---------------------------------------------------------------------------------- VAELoss


class VAELoss(nn.Module):
    """L1 (+ MSE, + block MSE) + LPIPS + KL, plus an adaptively weighted GAN term from `gan_start_step` on.

    total = l1_weight * L1 + mse_weight * MSE + block_mse_weight * block MSE + lpips_weight * LPIPS
            + kl_weight * KL + [step >= gan_start_step] * gan_weight * adaptive_weight * g_loss

    Args:
        mse_weight: weight of the mean squared error (0: no term; the paper's recipe is L1 +
            LPIPS; PSNR is a function of the MSE).
        block_mse_weight: weight of the MSE between the ``block_mse_size``-pixel block means of each
            frame (0: no term). The block means are the error's coarse part (local colour and
            brightness), part of the MSE already; this term weights it more, so its gradient is not
            drowned by the fine detail's (see :func:`block_mse`).
        block_mse_size: block side in pixels.
        lpips: a callable `(x, y) -> per-sample distance` on images (B, 3, H, W) in [-1, 1],
            e.g. from `build_lpips_loss`; None omits the term. Video frames are folded into
            the batch. An `nn.Module` is registered (moves with `.to()`) and kept in eval mode.
        lpips_frames: if set, LPIPS sees only this many random frames per clip (saves compute).
        kl_reduction: "mean" (default, see the module docstring) or "sum".
        gan_loss: "hinge" or "vanilla".
        gan_weight: default GAN weight; a per-call `gan_weight` (per resolution) overrides it.
        gan_start_step: before it the discriminator is never called in either step.
        adaptive_weight: scale the GAN term by `adaptive_gan_weight` (needs the last layer).
    """

    def __init__(
        self,
        l1_weight: float = 1.0,
        lpips: LpipsFn | None = None,
        lpips_weight: float = 1.0,
        lpips_frames: int | None = None,
        kl_weight: float = 1e-6,
        kl_reduction: str = "mean",
        gan_loss: str = "hinge",
        gan_weight: float = 0.5,
        gan_start_step: int = 0,
        adaptive_weight: bool = True,
        max_adaptive_weight: float = 1e4,
        mse_weight: float = 0.0,
        block_mse_weight: float = 0.0,
        block_mse_size: int = 4,
    ) -> None:
        super().__init__()
        if lpips_frames is not None and lpips_frames < 1:
            raise ValueError(f"lpips_frames must be >= 1 or None, got {lpips_frames}")
        if block_mse_size < 2:
            raise ValueError(f"block_mse_size must be >= 2 pixels, got {block_mse_size}")
        self.l1_weight = l1_weight
        self.mse_weight = mse_weight
        self.block_mse_weight = block_mse_weight
        self.block_mse_size = block_mse_size
        self.lpips = lpips
        self.lpips_weight = lpips_weight
        self.lpips_frames = lpips_frames
        self.kl_weight = kl_weight
        self.kl_reduction = kl_reduction
        self.d_loss_fn, self.g_loss_fn = gan_losses(gan_loss)
        self.gan_weight = gan_weight
        self.gan_start_step = gan_start_step
        self.adaptive_weight = adaptive_weight
        self.max_adaptive_weight = max_adaptive_weight

    def train(self, mode: bool = True) -> VAELoss:
        """Switch mode but keep a module LPIPS in eval mode (its heads may hold dropout)."""
        super().train(mode)
        if isinstance(self.lpips, nn.Module):
            self.lpips.eval()
        return self

    def gan_active(self, step: int) -> bool:
        """Whether the GAN terms are on at `step`."""
        return step >= self.gan_start_step

    def forward(
        self,
        x: torch.Tensor,
        x_rec: torch.Tensor,
        posterior: Any,
        step: int,
        last_layer_weight: torch.Tensor | Sequence[torch.Tensor] | None = None,
        discriminator: nn.Module | None = None,
        gan_weight: float | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Generator-step loss for videos (B, C, T, H, W) or images (B, C, H, W).

        The GAN term is computed only when `discriminator` is given, `step >= gan_start_step`
        and the GAN weight is nonzero; the discriminator's parameters are frozen while it
        judges `x_rec` (its `.grad` stays untouched), and a DDP wrapper is bypassed.

        Returns the total loss and float logs: l1, mse, block_mse and lpips (only when the term exists), kl, total,
        and g_loss, d_weight (= gan_weight * adaptive weight) when the GAN term is on.
        """
        terms: dict[str, torch.Tensor] = {"l1": (x_rec - x).abs().mean()}
        rec = self.l1_weight * terms["l1"]
        if self.mse_weight:
            terms["mse"] = (x_rec - x).square().mean()
            rec = rec + self.mse_weight * terms["mse"]
        if self.block_mse_weight:
            terms["block_mse"] = block_mse(x, x_rec, self.block_mse_size)
            rec = rec + self.block_mse_weight * terms["block_mse"]
        if self.lpips is not None:
            terms["lpips"] = self._lpips(x, x_rec)
            rec = rec + self.lpips_weight * terms["lpips"]
        terms["kl"] = kl_loss(posterior, self.kl_reduction)
        total = rec + self.kl_weight * terms["kl"]

        weight = self.gan_weight if gan_weight is None else gan_weight
        if discriminator is not None and self.gan_active(step) and weight != 0:
            disc = _unwrap_ddp(discriminator)
            with _frozen(disc):
                g_loss = self.g_loss_fn(disc(x_rec))
            d_weight = self._adaptive(rec, g_loss, last_layer_weight) * weight
            total = total + d_weight * g_loss
            terms["g_loss"], terms["d_weight"] = g_loss, d_weight
        terms["total"] = total
        return total, _to_floats(terms)

    def discriminator_loss(
        self, discriminator: nn.Module, x: torch.Tensor, x_rec: torch.Tensor, step: int
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """Discriminator-step loss on real `x` and detached `x_rec`.

        Returns `(None, {})` before `gan_start_step`: skip the backward and the optimiser step.
        Real and fake go through one forward (concatenated), so a DDP-wrapped discriminator
        sees one forward per backward. Logs: d_loss, logits_real, logits_fake (means).
        """
        if not self.gan_active(step):
            return None, {}
        logits = discriminator(torch.cat([x.detach(), x_rec.detach()]))
        logits_real, logits_fake = logits.chunk(2)
        d_loss = self.d_loss_fn(logits_real, logits_fake)
        logs = {
            "d_loss": d_loss,
            "logits_real": logits_real.mean(),
            "logits_fake": logits_fake.mean(),
        }
        return d_loss, _to_floats(logs)

    def _adaptive(
        self, rec: torch.Tensor, g_loss: torch.Tensor, last_layer_weight: torch.Tensor | Sequence[torch.Tensor] | None
    ) -> torch.Tensor:
        if not self.adaptive_weight:
            return g_loss.new_ones(())
        if last_layer_weight is None:
            raise ValueError("adaptive GAN weight needs last_layer_weight (decoder's last conv)")
        return adaptive_gan_weight(rec, g_loss, last_layer_weight, self.max_adaptive_weight)

    def _lpips(self, x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
        """Mean LPIPS over images or over (a random subset of) the frames of each clip."""
        if x.ndim == 5:
            x, x_rec = _select_frames(x, x_rec, self.lpips_frames)
            x, x_rec = _fold_frames(x), _fold_frames(x_rec)
        return self.lpips(x, x_rec).reshape(-1).mean()


def block_mse(x: torch.Tensor, x_rec: torch.Tensor, size: int) -> torch.Tensor:
    """Mean squared error of the ``size x size`` block means of each frame of ``x`` and ``x_rec``
    (videos ``(B, C, T, H, W)`` or images ``(B, C, H, W)``; a partial block at the bottom or right
    edge is left out).

    The error's energy splits exactly into what lies within blocks and what the block means carry
    (local colour and brightness at scales of ``size`` pixels and more), so the plain MSE already
    contains this term once. A bicubic x4 reconstruction keeps each 4x4 mean of a frame and loses
    what is inside; a VAE at 4x8x8 compression trades the other way (benchmarks/error_by_scale.py).
    Weighting this term moves a model's error between scales, not necessarily out of it: on the
    bundled model (weight 20, size 4) it traded detail for coarse accuracy at the same PSNR
    (docs/default-model.md, "Where the error is").
    """
    if x.ndim == 5:
        x, x_rec = _fold_frames(x), _fold_frames(x_rec)
    if min(x.shape[-2:]) < size:
        raise ValueError(f"block_mse: frames of {x.shape[-1]}x{x.shape[-2]} pixels hold no {size}x{size} block")
    error = (x_rec - x).float()
    return F.avg_pool2d(error, size).square().mean()


def _select_frames(
    x: torch.Tensor, x_rec: torch.Tensor, count: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the same `count` random frames (independently per clip) from `x` and `x_rec`."""
    b, c, t, h, w = x.shape
    if count is None or count >= t:
        return x, x_rec
    idx = torch.rand(b, t, device=x.device).argsort(dim=1)[:, :count]
    idx = idx.view(b, 1, count, 1, 1).expand(b, c, count, h, w)
    return x.gather(2, idx), x_rec.gather(2, idx)


def _fold_frames(video: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B * T, C, H, W)."""
    b, c, t, h, w = video.shape
    return video.transpose(1, 2).reshape(b * t, c, h, w)


def _to_floats(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    # One device sync for all logs instead of one `.item()` each.
    values = torch.stack([v.detach().float().reshape(()) for v in terms.values()]).tolist()
    return dict(zip(terms, values, strict=True))
