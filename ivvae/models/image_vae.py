"""ImageVAE: the single-branch, per-frame member of the IV-VAE family (trained first, then inflated).

The same network code as IV-VAE (:mod:`ivvae.models.network`) with one ``"2d"`` branch and no
temporal downsampling: per-frame 2-D convs, RMSNorm, attention, PAC, channel shrink at
upsampling, 8x spatial compression. In the paper it has Z/2 latent channels and initialises the
IV-VAE with Z (see :mod:`ivvae.inflate`).

Images ``(B, 3, H, W)`` give latents ``(B, Z, H/8, W/8)``; videos ``(B, 3, T, H, W)`` are coded
frame by frame (latents ``(B, Z, T, H/8, W/8)``), each frame exactly as the same image alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput

from .ivvae import IVVAE, LatentDistribution
from .network import as_tuple

# IVVAE.__init__ without its config registration: the subclasses register their own, smaller
# config (no ``branches``/``temporal_downsample`` keys, which they fix), so that their
# ``config.json`` round-trips through ``from_pretrained`` without unexpected keys.
_build_network = IVVAE.__init__.__wrapped__


def check_image(x: torch.Tensor, channels: int = 3) -> None:
    """Raise a ``ValueError`` naming the expected layout unless ``x`` is a float image batch."""
    expected = f"expected a float image tensor of shape (batch, {channels}, height, width) with values in [-1, 1]"
    if x.dim() == 3:
        raise ValueError(f"{expected}, got a 3-D tensor of shape {tuple(x.shape)}; for one image add a batch axis: x.unsqueeze(0)")
    if x.shape[1] != channels:
        raise ValueError(f"{expected}, got {x.shape[1]} channels (shape {tuple(x.shape)}); images are (B, C, H, W), channels second")
    if not x.is_floating_point():
        raise ValueError(f"{expected}, got dtype {x.dtype}; convert uint8 images with x.float() / 127.5 - 1")
    if x.numel() == 0:
        raise ValueError(f"{expected}, got an empty tensor of shape {tuple(x.shape)}")


def check_image_latents(z: torch.Tensor, channels: int, num_frames: int | None) -> None:
    """Raise a ``ValueError`` unless ``z`` is a float batch of image latents ``(B, Z, H', W')``
    (named as such, not as the video latents it is decoded as); ``num_frames`` does not apply to them."""
    expected = f"expected float image latents of shape (batch, {channels}, latent_height, latent_width)"
    if z.shape[1] != channels or not z.is_floating_point() or z.numel() == 0:
        raise ValueError(f"{expected}, got shape {tuple(z.shape)}, dtype {z.dtype}")
    if num_frames not in (None, 1):
        raise ValueError(f"decode: num_frames={num_frames!r} does not apply to image latents {tuple(z.shape)}, which decode to "
                         "single images; leave it out, or decode video latents (batch, Z, latent_frames, H', W')")


class ImageVAE(IVVAE):
    r"""The image VAE: one per-frame 2-D branch, 8x spatial compression, no temporal compression.

    Same API as :class:`IVVAE` (encode / decode / forward, streaming, tiling, slicing,
    ``save_pretrained`` / ``from_pretrained``), and additionally 4-D images: ``encode`` of a
    ``(B, 3, H, W)`` batch gives a distribution over ``(B, Z, H/8, W/8)`` latents, ``decode`` of
    4-D latents gives 4-D images, ``forward`` returns the input's shape.

    Args: as :class:`IVVAE`, without ``branches`` and ``temporal_downsample`` (fixed to
    ``("2d",)`` and no temporal downsampling).
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        latent_channels: int = 8,
        base_channels: int = 64,
        channel_multipliers: Sequence[int] = (1, 2, 4, 4),
        encoder_blocks: int = 2,
        decoder_blocks: int = 3,
        full_compression_attention: bool = True,
        parallel_atrous: bool = True,
        atrous_dilations: Sequence[int] = (1, 3, 6, 9, 12),
        dropout: float = 0.0,
        scaling_factor: float = 1.0,
        shift_factor: float = 0.0,
    ) -> None:
        _build_network(
            self,
            in_channels=in_channels,
            latent_channels=latent_channels,
            base_channels=base_channels,
            channel_multipliers=channel_multipliers,
            encoder_blocks=encoder_blocks,
            decoder_blocks=decoder_blocks,
            branches=("2d",),
            temporal_downsample=(False,) * (len(as_tuple("channel_multipliers", channel_multipliers)) - 1),
            full_compression_attention=full_compression_attention,
            parallel_atrous=parallel_atrous,
            atrous_dilations=atrous_dilations,
            dropout=dropout,
            scaling_factor=scaling_factor,
            shift_factor=shift_factor,
        )

    def latent_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Latent shape for an image batch ``(B, 3, H, W)`` or a video ``(B, 3, T, H, W)``."""
        if len(shape) == 4:
            batch, channels, height, width = shape
            return tuple(d for i, d in enumerate(super().latent_shape((batch, channels, 1, height, width))) if i != 2)
        return super().latent_shape(shape)

    def encode(self, x: torch.Tensor, return_dict: bool = True, chunk_groups: int | None = None, callback=None):
        """Encode images ``(B, 3, H, W)`` or videos ``(B, 3, T, H, W)`` (frame by frame).

        For videos ``chunk_groups`` is the number of frames per chunk (see :meth:`IVVAE.encode`).
        """
        if isinstance(x, torch.Tensor) and x.dim() in (3, 4):
            check_image(x, self.spec.in_channels)
            posterior = super().encode(x.unsqueeze(2), chunk_groups=chunk_groups, callback=callback).latent_dist
            posterior = LatentDistribution(posterior.parameters.squeeze(2))
            return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)
        return super().encode(x, return_dict=return_dict, chunk_groups=chunk_groups, callback=callback)

    def decode(
        self,
        z: torch.Tensor,
        return_dict: bool = True,
        chunk_groups: int | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        callback=None,
        generator: torch.Generator | None = None,
    ) -> DecoderOutput | tuple[torch.Tensor]:
        """Decode latents ``(B, Z, H', W')`` to images, or ``(B, Z, T, H', W')`` to videos.
        ``generator``: as diffusers takes it, unused (decoding is deterministic)."""
        if isinstance(z, torch.Tensor) and z.dim() == 4:
            check_image_latents(z, self.spec.latent_channels, num_frames)
            images = (
                super().decode(z.unsqueeze(2), chunk_groups=chunk_groups, height=height, width=width, callback=callback).sample.squeeze(2)
            )
            return DecoderOutput(sample=images) if return_dict else (images,)
        return super().decode(
            z, return_dict=return_dict, chunk_groups=chunk_groups, num_frames=num_frames, height=height, width=width, callback=callback
        )

    def forward(
        self, sample: torch.Tensor, sample_posterior: bool = False, return_dict: bool = True, generator: torch.Generator | None = None
    ) -> DecoderOutput | tuple[torch.Tensor]:
        """Reconstruct images or videos; the output has the input's shape."""
        if isinstance(sample, torch.Tensor) and sample.dim() in (3, 4):
            check_image(sample, self.spec.in_channels)
            images = super().forward(sample.unsqueeze(2), sample_posterior=sample_posterior, generator=generator).sample.squeeze(2)
            return DecoderOutput(sample=images) if return_dict else (images,)
        return super().forward(sample, sample_posterior=sample_posterior, return_dict=return_dict, generator=generator)
