"""Plain resampling references to compare a VAE against (``ivvae eval --model bicubic-x4``).

A VAE with 4x8x8 compression and Z = 16 latent channels keeps 16 numbers per 4x8x8x3 = 768 input
numbers (1/48).  Per-frame bicubic down-sampling by 4 and back up keeps 1/16 -- three times more
-- and needs no training, so a useful video VAE must beat it.  :class:`BicubicReference` is that
reference with the model API the evaluation uses (``encode(...).latent_dist.mode()``,
``decode(...).sample``): its "latent" is the down-sampled frames.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput

REFERENCE_PATTERN = re.compile(r"^bicubic-x(\d+)$")


class BicubicReference:
    """Per-frame bicubic down-sampling by ``factor`` (anti-aliased) and bicubic up-sampling back.

    Args:
        factor: spatial reduction per side (4 keeps 1/16 of the numbers).
    """

    temporal_compression = 1

    def __init__(self, factor: int = 4) -> None:
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        self.factor = int(factor)
        self.spatial_compression = self.factor
        self.latent_channels = 3
        self.name_or_path = f"bicubic-x{self.factor}"

    def __repr__(self) -> str:
        return f"BicubicReference(factor={self.factor})"

    @staticmethod
    def _frames(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """``(B, C, T, H, W)`` -> ``(B*T, C, H, W)`` and ``(B, T)``."""
        b, c, t, h, w = x.shape
        return x.transpose(1, 2).reshape(b * t, c, h, w), (b, t)

    @staticmethod
    def _video(frames: torch.Tensor, bt: tuple[int, int]) -> torch.Tensor:
        b, t = bt
        return frames.reshape(b, t, *frames.shape[1:]).transpose(1, 2)

    def encode(self, x: torch.Tensor, **_: object) -> AutoencoderKLOutput:
        """Down-sampled frames ``(B, 3, T, ceil(H/f), ceil(W/f))`` as a deterministic latent."""
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"expected a video (B, 3, T, H, W), got shape {tuple(x.shape)}")
        frames, bt = self._frames(x.float())
        h, w = frames.shape[-2:]
        small = F.interpolate(frames, size=(-(-h // self.factor), -(-w // self.factor)), mode="bicubic",
                              align_corners=False, antialias=True)
        low = self._video(small, bt)
        return AutoencoderKLOutput(latent_dist=DiagonalGaussianDistribution(torch.cat([low, torch.zeros_like(low)], 1),
                                                                            deterministic=True))

    def decode(self, z: torch.Tensor, *, num_frames: int | None = None, height: int | None = None,
               width: int | None = None, **_: object) -> DecoderOutput:
        """Bicubic up-sampling of the latent frames to ``height x width`` (default ``factor`` x)."""
        frames, bt = self._frames(z.float())
        size = (height or frames.shape[-2] * self.factor, width or frames.shape[-1] * self.factor)
        big = F.interpolate(frames, size=size, mode="bicubic", align_corners=False).clamp(-1.0, 1.0)
        return DecoderOutput(sample=self._video(big, bt))


def reference_model(name: str) -> BicubicReference | None:
    """The reference called ``name`` (``bicubic-xN``), or ``None`` when ``name`` is not one."""
    match = REFERENCE_PATTERN.match(str(name))
    return BicubicReference(int(match.group(1))) if match else None
