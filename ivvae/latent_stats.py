"""Latent normalisation for a latent diffusion model: ``shift_factor`` and ``scaling_factor``.

A diffusion model trains on ``scaling_factor * (z - shift_factor)`` (what
:meth:`ivvae.models.IVVAE.normalize_latents` computes and ``ivvae encode --normalize`` stores).
Following SD3 / Flux, the two factors are chosen so that these latents have zero mean and unit
variance over the diffusion model's training videos: ``shift_factor`` is the mean of all latent
elements and ``scaling_factor`` is ``1 / std`` of all latent elements (one number each, pooled over
channels, frames and positions).

:func:`estimate_latent_statistics` encodes clips to the posterior *mode* (the latents ``ivvae
encode`` stores) and accumulates per-channel counts, sums and sums of squares in float64; the
overall mean and std follow from the per-channel sums. :func:`with_latent_statistics` writes the
factors into a model's config::

    from ivvae import load_model
    from ivvae.eval.runner import DatasetSpec
    from ivvae.latent_stats import estimate_latent_statistics, with_latent_statistics

    vae = load_model("models/ivvae_z16_dim64")
    spec = DatasetSpec("train_videos/", protocol="custom", crop=256, clips_per_video=4, small_frames="native")
    clips = (c for c in spec.iter_clips() if not isinstance(c, tuple))   # tuples: unreadable videos
    stats = estimate_latent_statistics(vae, clips, progress=True)
    with_latent_statistics(vae, stats).save_pretrained("models/ivvae_z16_dim64_normalised")

``ivvae latent-stats`` does the same from the command line.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sized
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ._files import write_atomically

__all__ = ["LatentStatistics", "estimate_latent_statistics", "has_identity_normalization", "identity_normalization_warning",
           "with_latent_statistics", "write_statistics_json"]


@dataclass
class LatentStatistics:
    """Statistics of the latent means (posterior modes) of a set of clips.

    Attributes:
        mean: mean of all latent elements (every channel, frame and position).
        std: standard deviation of all latent elements (population std, ``ddof=0``).
        channel_mean: mean per latent channel.
        channel_std: standard deviation per latent channel.
        num_values: latent elements counted (all channels).
        clips: what was encoded, one dict per clip (``path``, ``start``, ``size``, ... for clips
            read from videos; ``index``, ``frames``, ``size`` for plain tensors).
    """

    mean: float
    std: float
    channel_mean: list[float]
    channel_std: list[float]
    num_values: int
    clips: list[dict[str, Any]] = field(default_factory=list)

    @property
    def shift_factor(self) -> float:
        """The ``shift_factor`` that centres the latents: their mean."""
        return self.mean

    @property
    def scaling_factor(self) -> float:
        """The ``scaling_factor`` that gives the shifted latents unit variance: ``1 / std`` (``inf`` for std 0)."""
        return 1.0 / self.std if self.std else math.inf

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the two factors, the statistics and the clips."""
        return {
            "shift_factor": self.shift_factor,
            "scaling_factor": self.scaling_factor,
            "mean": self.mean,
            "std": self.std,
            "channel_mean": list(self.channel_mean),
            "channel_std": list(self.channel_std),
            "num_values": self.num_values,
            "num_clips": len(self.clips),
            "clips": [dict(c) for c in self.clips],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatentStatistics:
        """Inverse of :meth:`to_dict` (extra keys, such as the factors, are ignored)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a dict as LatentStatistics.to_dict() writes it, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        missing = [f.name for f in fields(cls) if f.name not in data and f.name != "clips"]
        if missing:
            raise ValueError(f"not latent statistics as LatentStatistics.to_dict() writes them: missing {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names})


def _model_device_dtype(model: Any) -> tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        return p.device, (p.dtype if p.is_floating_point() else torch.float32)
    return torch.device("cpu"), torch.float32


#: Clip values beyond this are in another convention (0..255, say), not [-1, 1] with some overshoot.
_FAR_OUTSIDE = 9.0


def _as_batch(video: torch.Tensor, i: int) -> torch.Tensor:
    """``(3, T, H, W)`` or ``(1, 3, T, H, W)`` float tensor -> ``(1, 3, T, H, W)``."""
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"clip {i}: expected a torch.Tensor (3, T, H, W) in [-1, 1], got {type(video).__name__}")
    if not video.is_floating_point():
        raise ValueError(f"clip {i}: expected a float tensor in [-1, 1], got dtype {video.dtype} "
                         "(convert uint8 frames (T, H, W, 3) with ivvae.io.frames_to_tensor)")
    if video.dim() == 4:
        video = video.unsqueeze(0)
    if video.dim() != 5 or video.shape[0] != 1:
        raise ValueError(f"clip {i}: expected shape (3, T, H, W) or (1, 3, T, H, W), got {tuple(video.shape)}")
    if video.numel() and float(video.detach().abs().max()) > _FAR_OUTSIDE:  # the statistics would describe other latents
        raise ValueError(f"clip {i}: values up to {float(video.detach().abs().max()):g}, far outside [-1, 1] "
                         "(0..255 frames? map uint8 frames with ivvae.io.frames_to_tensor)")
    return video


def _check_inputs(model: Any, clips: Any) -> None:
    if not (callable(getattr(model, "encode", None)) and callable(getattr(model, "parameters", None))):
        raise TypeError(f"model must be a loaded VAE of the family (ivvae.load_model(DIR)), got {type(model).__name__}")
    if isinstance(clips, torch.Tensor) and clips.dim() == 4:  # iterating it would take each channel for a clip
        raise TypeError(f"clips is one (3, T, H, W) tensor of shape {tuple(clips.shape)}: pass a list of clips, [clip]")
    if not isinstance(clips, Iterable):
        raise TypeError(f"clips must be an iterable of (3, T, H, W) tensors in [-1, 1], got {type(clips).__name__}")


def _clip_record(item: Any, video: torch.Tensor, i: int) -> dict[str, Any]:
    t, h, w = (int(v) for v in video.shape[2:])
    describe = getattr(item, "describe", None)
    if callable(describe):
        return {**describe(), "frames": t}
    return {"index": i, "frames": t, "size": [w, h]}


def estimate_latent_statistics(
    model: Any,
    clips: Iterable[torch.Tensor],
    *,
    chunk_groups: int | None = 1,
    progress: bool = False,
) -> LatentStatistics:
    """Mean and std of the latent means of ``clips``: the normalisation a diffusion model trains on.

    Each clip is encoded under ``torch.no_grad()`` with the model in eval mode on its own device
    (its training mode is restored afterwards) and the posterior mode
    (``model.encode(x, chunk_groups=...).latent_dist.mode()``, the latents ``ivvae encode`` stores)
    is accumulated: per channel the count, sum and sum of squares, in float64. The latents include
    the model's padding (a clip is padded to ``1 + 4k`` frames and multiples of 8 pixels), as
    ``ivvae encode`` stores them.

    Args:
        model: an :class:`~ivvae.models.IVVAE` (or family member: ImageVAE, CausalVAE).
        clips: float tensors ``(3, T, H, W)`` or ``(1, 3, T, H, W)`` in ``[-1, 1]``; objects with a
            ``video`` tensor and a ``describe()`` dict (:class:`ivvae.eval.runner.Clip`) are accepted
            too and recorded with their description. Any iterable: clips are read one at a time.
        chunk_groups: stream each clip in chunks of this many frame groups (exactly the one-pass
            result, less memory); ``None``: the model's own setting (one pass by default).
        progress: show a progress bar over the clips.

    Returns:
        :class:`LatentStatistics`; ``shift_factor`` and ``scaling_factor`` are its properties.

    Raises:
        ValueError: no clip was given; a clip has the wrong shape or dtype; the latents are
            constant (std 0: ``1 / std`` undefined) or not finite (NaN / inf).
    """
    if chunk_groups is not None and chunk_groups < 1:
        raise ValueError(f"chunk_groups must be >= 1 or None (one pass), got {chunk_groups}")
    _check_inputs(model, clips)
    device, dtype = _model_device_dtype(model)
    moments = _ChannelMoments()
    records: list[dict[str, Any]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(clips) if isinstance(clips, Sized) else None, desc="latent stats", unit="clip",
                   leave=False, dynamic_ncols=True)
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        with torch.no_grad():
            for i, item in enumerate(clips):
                video = _as_batch(getattr(item, "video", item), i)
                moments.add(model.encode(video.to(device=device, dtype=dtype), chunk_groups=chunk_groups).latent_dist.mode(), i)
                records.append(_clip_record(item, video, i))
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    return moments.statistics(records)


class _ChannelMoments:
    """Per latent channel: count, sum and sum of squares in float64; and the extremes, an exact test
    for constant latents (the sums' rounding is not exactly 0)."""

    def __init__(self) -> None:
        self.count: torch.Tensor | None = None
        self.total = self.sq_total = None
        self.low, self.high = math.inf, -math.inf

    def add(self, latents: torch.Tensor, clip_index: int) -> None:
        z = latents.detach().to(torch.float64).transpose(0, 1).reshape(latents.shape[1], -1)  # (Z, values)
        n = torch.full((z.shape[0],), z.shape[1], dtype=torch.float64, device=z.device)
        s, sq = z.sum(dim=1), (z * z).sum(dim=1)
        self.low, self.high = min(self.low, float(z.min())), max(self.high, float(z.max()))
        if self.count is None:
            self.count, self.total, self.sq_total = n, s, sq
            return
        if s.shape != self.total.shape:
            raise ValueError(f"clip {clip_index}: {s.shape[0]} latent channels, earlier clips had {self.total.shape[0]}")
        self.count, self.total, self.sq_total = self.count + n, self.total + s, self.sq_total + sq

    def statistics(self, records: list[dict[str, Any]]) -> LatentStatistics:
        if self.count is None:
            raise ValueError("no clips given: latent statistics need at least one clip")
        count, total, sq_total = self.count.cpu(), self.total.cpu(), self.sq_total.cpu()
        channel_mean = total / count
        channel_var = (sq_total / count - channel_mean**2).clamp_min(0.0)
        n_all = float(count.sum())
        mean = float(total.sum()) / n_all
        var = max(float(sq_total.sum()) / n_all - mean * mean, 0.0)
        std = math.sqrt(var) if math.isfinite(var) else float("nan")
        if not (math.isfinite(mean) and math.isfinite(std)):
            raise ValueError(f"latent statistics are not finite (mean {mean}, std {std}): the model produced NaN or infinite "
                             f"latents on these {len(records)} clip(s); check the model's weights and the input range [-1, 1]")
        if std == 0.0 or self.low == self.high:
            raise ValueError(f"latent std is 0: the latents of all {len(records)} clip(s) are constant (every value "
                             f"{mean:.6g}), so scaling_factor = 1/std is undefined; is the model trained, and do the clips differ?")
        return LatentStatistics(
            mean=mean,
            std=std,
            channel_mean=[float(v) for v in channel_mean],
            channel_std=[float(v) for v in channel_var.sqrt()],
            num_values=round(n_all),
            clips=records,
        )


def with_latent_statistics(model: Any, stats: LatentStatistics | Mapping[str, Any]) -> Any:
    """Set ``model.config.scaling_factor`` / ``shift_factor`` to ``stats``'s factors; return ``model``.

    Uses diffusers' ``register_to_config``, so :meth:`~ivvae.models.IVVAE.normalize_latents`,
    :meth:`~ivvae.models.IVVAE.denormalize_latents` and ``save_pretrained`` use the new values.
    ``stats`` may be any object with ``scaling_factor`` and ``shift_factor`` attributes, or a dict
    with those keys (as :meth:`LatentStatistics.to_dict` and ``ivvae latent-stats --json`` write them).

    Raises:
        ValueError: a factor is not finite, or ``scaling_factor`` is not positive.
        TypeError: ``model`` has no diffusers config, or ``stats`` has no factors.
    """
    if not callable(getattr(model, "register_to_config", None)):
        raise TypeError(f"model must be a loaded VAE of the family (ivvae.load_model(DIR)), got {type(model).__name__}")
    scaling, shift = _factors(stats)
    if not (math.isfinite(scaling) and math.isfinite(shift) and scaling > 0):
        raise ValueError(f"invalid latent normalisation: scaling_factor {scaling}, shift_factor {shift} "
                         "(need finite values and scaling_factor > 0)")
    model.register_to_config(scaling_factor=scaling, shift_factor=shift)
    if model.config.scaling_factor != scaling or model.config.shift_factor != shift:  # pragma: no cover - diffusers API change
        raise RuntimeError("register_to_config did not update the model's scaling_factor / shift_factor")
    return model


def _factors(stats: Any) -> tuple[float, float]:
    """``(scaling_factor, shift_factor)`` of statistics, or of the dict ``to_dict()`` / ``--json`` writes."""
    if isinstance(stats, Mapping):
        values = (stats.get("scaling_factor"), stats.get("shift_factor"))
    else:
        values = (getattr(stats, "scaling_factor", None), getattr(stats, "shift_factor", None))
    if any(v is None for v in values):
        raise TypeError(f"stats must be LatentStatistics (estimate_latent_statistics) or a dict with scaling_factor and "
                        f"shift_factor, got {type(stats).__name__}")
    try:
        return float(values[0]), float(values[1])
    except (TypeError, ValueError):
        raise ValueError(f"scaling_factor and shift_factor must be numbers, got {values[0]!r} and {values[1]!r}") from None


def write_statistics_json(report: LatentStatistics | Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write statistics (or a report dict holding them, as ``ivvae latent-stats --json`` makes) as JSON.

    The file is written whole or not at all: a failed write (a full disk) leaves no empty or partial
    file that would read as other statistics, and raises ``OSError`` ("cannot write 'PATH': ...").
    """
    data = report.to_dict() if isinstance(report, LatentStatistics) else dict(report)
    text = json.dumps(data, indent=2) + "\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, lambda tmp: tmp.write_text(text))


def has_identity_normalization(model: Any) -> bool:
    """Whether ``model``'s factors leave latents unchanged (scaling_factor 1, shift_factor 0: a fresh training
    export, before ``ivvae latent-stats`` estimated them)."""
    return float(model.config.scaling_factor) == 1.0 and float(model.config.shift_factor) == 0.0


def identity_normalization_warning(model_name: str | os.PathLike) -> str:
    """The one-line warning for ``--normalize`` with identity factors, naming the fix."""
    return (f"--normalize: '{model_name}' has scaling_factor 1 and shift_factor 0 (as a fresh training export), so the latents "
            f"stay unnormalised; estimate the factors with `ivvae latent-stats --model {model_name} --data TRAIN_VIDEOS "
            "--write-model OUT_DIR`, then pass --model OUT_DIR")
