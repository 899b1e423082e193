"""CausalVAE: the 3-D causal-conv video VAE baseline of the paper (Sec. 3.1, Table 4 "baseline").

One branch of plain causal 3-D convs (:class:`ivvae.layers.CausalConv3d`): every frame sees the
two frames before it and none after; the video starts with copies of its first frame, so frame 0
is coded alone (its own latent frame), and the frames after it compress 4x in time (MAGVIT-v2
style) and 8x in space. RMSNorm throughout, no keyframe/temporal split, by default no PAC and no
attention after full compression (the Table 4 baseline; the middle attention is always there).

It is the same network code as IV-VAE with ``branches=("causal",)``, so it runs on the same
streaming engine: chunked execution keeps the last two input frames of each temporal conv and
equals the one-pass result. Initialise it from an image VAE with the *tail* rule
``W3D = [0, 0, W2D]`` (:func:`ivvae.inflate.inflate`, mode ``"tail"``).
"""

from __future__ import annotations

from collections.abc import Sequence

from diffusers.configuration_utils import register_to_config

from .image_vae import _build_network
from .ivvae import IVVAE


class CausalVAE(IVVAE):
    r"""The causal 3-D baseline (single ``"causal"`` branch; the paper's baseline uses width 96).

    Args: as :class:`IVVAE`, without ``branches`` (fixed to ``("causal",)``); the defaults are
    the Table 4 baseline: ``base_channels=96``, ``latent_channels=8``, no PAC, no attention after
    full compression.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        latent_channels: int = 8,
        base_channels: int = 96,
        channel_multipliers: Sequence[int] = (1, 2, 4, 4),
        encoder_blocks: int = 2,
        decoder_blocks: int = 3,
        temporal_downsample: Sequence[bool] = (False, True, True),
        full_compression_attention: bool = False,
        parallel_atrous: bool = False,
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
            branches=("causal",),
            temporal_downsample=temporal_downsample,
            full_compression_attention=full_compression_attention,
            parallel_atrous=parallel_atrous,
            atrous_dilations=atrous_dilations,
            dropout=dropout,
            scaling_factor=scaling_factor,
            shift_factor=shift_factor,
        )
