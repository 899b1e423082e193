"""IVVAE: the model class with the diffusers autoencoder API, for every member of the family."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin

from .. import streaming
from .._checks import is_whole_number
from .network import Decoder, Encoder, NetworkSpec, as_flags, as_tuple, check_latent_normalization, split_moments

#: Inputs are in [-1, 1]; values beyond this (0..255 frames, say) are another convention, refused
#: by encode. Generous: test signals such as torch.randn stay far below it.
INPUT_LIMIT = 16.0


class LatentDistribution(DiagonalGaussianDistribution):
    """diffusers' diagonal Gaussian over latents, whose ``sample`` names a wrong ``generator``
    (a seed given as an int would fail deep inside diffusers with an AttributeError)."""

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"posterior.sample(generator): expected a torch.Generator or None, got {type(generator).__name__} "
                            f"{generator!r}; for a seed use torch.Generator(device=z.device).manual_seed(seed)")
        return super().sample(generator)


class IVVAE(ModelMixin, ConfigMixin):
    r"""IV-VAE, the improved video VAE (keyframe-based temporal compression + group causal convs).

    Compresses ``(B, 3, T, H, W)`` videos in ``[-1, 1]`` 4x in time and 8x in height and width, to
    ``(B, Z, 1 + (T-1)/4, H/8, W/8)`` latents; any ``T >= 1`` and any ``H, W`` are accepted (see
    :mod:`ivvae.streaming` for the padding rule) and outputs are cropped back to the input's size.

    Execution: the whole video in one pass (default, fastest), or chunk by chunk with
    ``chunk_groups`` frame groups per chunk (:meth:`enable_streaming`; exact, memory bounded),
    optionally in spatial tiles (:meth:`enable_tiling`) and one sample at a time
    (:meth:`enable_slicing`).

    Args: see :class:`ivvae.models.network.NetworkSpec`; plus ``scaling_factor`` and
    ``shift_factor``, the latent normalisation a diffusion model trains on
    (``scaling_factor * (z - shift_factor)``, see :meth:`normalize_latents`).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        latent_channels: int = 16,
        base_channels: int = 64,
        channel_multipliers: Sequence[int] = (1, 2, 4, 4),
        encoder_blocks: int = 2,
        decoder_blocks: int = 3,
        branches: Sequence[str] = ("2d", "group_causal"),
        temporal_downsample: Sequence[bool] = (False, True, True),
        full_compression_attention: bool = True,
        parallel_atrous: bool = True,
        atrous_dilations: Sequence[int] = (1, 3, 6, 9, 12),
        dropout: float = 0.0,
        scaling_factor: float = 1.0,
        shift_factor: float = 0.0,
    ) -> None:
        super().__init__()
        check_latent_normalization(scaling_factor, shift_factor)
        self.spec = NetworkSpec(
            in_channels=in_channels,
            latent_channels=latent_channels,
            base_channels=base_channels,
            channel_multipliers=as_tuple("channel_multipliers", channel_multipliers),
            encoder_blocks=encoder_blocks,
            decoder_blocks=decoder_blocks,
            branches=as_tuple("branches", branches),
            temporal_downsample=as_flags("temporal_downsample", temporal_downsample),
            full_compression_attention=full_compression_attention,
            parallel_atrous=parallel_atrous,
            atrous_dilations=as_tuple("atrous_dilations", atrous_dilations),
            dropout=dropout,
        )
        self.encoder = Encoder(self.spec)
        self.decoder = Decoder(self.spec)
        self.chunk_groups: int | None = None
        self.use_slicing = False
        self.use_tiling = False
        self.tile_size = 256
        self.tile_overlap = 64

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """diffusers' ``save_pretrained``, with the files' modes from the umask (safetensors writes
        0600) and without the writer's local path (``_name_or_path``) in config.json."""
        from .._files import tidy_saved_model

        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True) and Path(save_directory, "config.json").is_file():
            tidy_saved_model(save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """diffusers' ``from_pretrained``, which also takes the short name of a model bundled with
        the package (``IVVAE.from_pretrained("ivvae-small-z16")``, offline); a folder of the same
        name wins over a bundled model.

        A name that is neither a folder nor a bundled model is looked up as a Hugging Face Hub repo
        id in the local cache only: nothing is downloaded unless you pass ``local_files_only=False``
        (so a mistyped folder fails at once with :class:`ivvae.hub.ModelNotFoundError`, instead of
        after diffusers' network retries).
        """
        from .. import hub

        source = hub.bundled_model_folder(pretrained_model_name_or_path) or pretrained_model_name_or_path
        if not kwargs.get("subfolder"):
            hub.check_pretrained_source(source)
        if kwargs.get("torch_dtype") is not None:
            kwargs["torch_dtype"] = hub.check_dtype(kwargs["torch_dtype"], "torch_dtype")
        # A local folder is checked as ivvae.load_model checks it (diffusers would leave a missing
        # tensor on the meta device and load NaN weights silently); Hub repos are diffusers' to fetch.
        local = Path(source) if not kwargs.get("subfolder") and Path(source).is_dir() else None
        weights = hub.check_model_folder(local, cls) if local is not None else None
        from_hub_cache = not Path(source).exists() and kwargs.setdefault("local_files_only", True) is True
        try:
            model = super().from_pretrained(source, *args, **kwargs)
        except OSError:
            if not from_hub_cache:
                raise
            raise hub.model_not_found(os.fspath(source), hub_hint=True) from None
        if weights is not None:
            hub.check_loaded_model(model, weights)
        return model

    # ----------------------------------------------------------------------------- properties
    @property
    def temporal_compression(self) -> int:
        """Frames per latent frame (after the first): 4 for IV-VAE, 1 for the image VAE."""
        return self.spec.temporal_compression

    @property
    def spatial_compression(self) -> int:
        return self.spec.spatial_compression

    @property
    def last_layer_weight(self) -> torch.Tensor:
        """The decoder's last conv weight (the adaptive GAN weight balances gradients there)."""
        return next(iter(self.decoder.conv_out.convs.values())).weight

    def latent_shape(self, video_shape: Sequence[int]) -> tuple[int, ...]:
        """Latent shape for a ``(B, 3, T, H, W)`` video, padding included."""
        shape = tuple(video_shape)
        if len(shape) != 5 or not all(isinstance(d, numbers.Integral) and d >= 1 for d in shape):
            raise ValueError(f"latent_shape: expected a video shape (batch, {self.spec.in_channels}, frames, height, width) of "
                             f"positive sizes, got {shape}")
        batch, _, frames, height, width = shape
        s = self.spatial_compression
        return (
            batch,
            self.spec.latent_channels,
            streaming.latent_length(frames, self.temporal_compression),
            -(-height // s),
            -(-width // s),
        )

    # ----------------------------------------------------------------------------- switches
    def to_channels_last(self) -> IVVAE:
        """Store conv weights channels-last (``channels_last_3d`` / ``channels_last``).

        With bf16 autocast this is the fast path of oneDNN convolutions on CPUs with AMX, and of
        cuDNN on GPUs. Feed inputs with ``x.to(memory_format=torch.channels_last_3d)`` too.
        """
        formats = {5: torch.channels_last_3d, 4: torch.channels_last}
        for param in self.parameters():
            if param.dim() in formats:
                param.data = param.data.contiguous(memory_format=formats[param.dim()])
        return self

    def enable_streaming(self, chunk_groups: int = 1) -> None:
        """Process videos chunk by chunk, ``chunk_groups`` frame groups (4 frames / 1 latent frame) each.

        Exactly equal to one pass; peak memory no longer grows with the video's length.
        """
        if chunk_groups is None:
            raise ValueError("enable_streaming(chunk_groups=None): give a whole number of frame groups per chunk (>= 1); "
                             "disable_streaming() goes back to one pass")
        self.chunk_groups = streaming.check_chunk_groups(chunk_groups)

    def disable_streaming(self) -> None:
        self.chunk_groups = None

    def enable_slicing(self) -> None:
        """Encode and decode one sample of a batch at a time."""
        self.use_slicing = True

    def disable_slicing(self) -> None:
        self.use_slicing = False

    def enable_tiling(self, tile_size: int | None = None, tile_overlap: int | None = None) -> None:
        """Process frames in overlapping spatial tiles (pixels), blended linearly over the overlap.

        A size not given keeps its current value (256 / 64 px until set), as diffusers' models keep
        their tile sizes across ``enable_tiling()``. Both sizes must be multiples of the spatial
        compression (8): tiles cut the latent grid, and rounding silently would run another tile
        than the one asked for. Temporal length is bounded by streaming (:meth:`enable_streaming`),
        not by tiles.
        """
        s = self.spatial_compression
        tile_size = self.tile_size if tile_size is None else tile_size
        tile_overlap = self.tile_overlap if tile_overlap is None else tile_overlap
        if isinstance(tile_size, bool):  # diffusers' old enable_tiling(use_tiling) took a switch
            raise ValueError(f"enable_tiling({tile_size}): the first argument is the tile size in pixels, not a switch; "
                             "enable_tiling() turns tiling on (keeping the tile sizes), disable_tiling() turns it off")
        for name, value in (("tile_size", tile_size), ("tile_overlap", tile_overlap)):
            if not is_whole_number(value):
                raise ValueError(f"{name}={value!r}: expected a whole number of pixels, a multiple of the spatial compression ({s} px)")
        if tile_size < 2 * s or tile_overlap < 0 or tile_overlap >= tile_size:
            raise ValueError(f"need tile_size >= {2 * s} and 0 <= tile_overlap < tile_size, got {tile_size}, {tile_overlap}")
        if tile_size % s or tile_overlap % s:
            raise ValueError(f"tile_size and tile_overlap must be multiples of the spatial compression ({s} px), got "
                             f"{tile_size}, {tile_overlap}; e.g. {tile_size // s * s}, {tile_overlap // s * s}")
        self.use_tiling = True
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap

    def disable_tiling(self) -> None:
        self.use_tiling = False

    # ----------------------------------------------------------------------------- encode / decode
    def encode(
        self, x: torch.Tensor, return_dict: bool = True, chunk_groups: int | None = None, callback: streaming.ChunkCallback | None = None
    ) -> AutoencoderKLOutput | tuple[DiagonalGaussianDistribution]:
        """Encode a video ``(B, 3, T, H, W)`` in ``[-1, 1]`` to a diagonal Gaussian over latents.

        ``latent_dist.mode()`` is the mean (deterministic); ``latent_dist.sample(generator)`` draws.
        ``chunk_groups`` overrides :meth:`enable_streaming` for this call; ``callback(done, total)``
        is called after each chunk, counting over every tile and batch slice of the call.
        """
        self._check_video_input(x)
        chunk_groups = self.chunk_groups if chunk_groups is None else streaming.check_chunk_groups(chunk_groups)
        x = streaming.pad_video(x, self.temporal_compression, self.spatial_compression)
        callback = self._counted(callback, x, self.temporal_compression, chunk_groups, self.tile_size, self.tile_overlap)
        moments = self._per_sample(x, lambda v: self._encode_moments(v, chunk_groups, callback))
        posterior = self._posterior(moments)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def decode(
        self,
        z: torch.Tensor,
        return_dict: bool = True,
        chunk_groups: int | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        callback: streaming.ChunkCallback | None = None,
        generator: torch.Generator | None = None,
    ) -> DecoderOutput | tuple[torch.Tensor]:
        """Decode latents ``(B, Z, T', H', W')`` to a video ``(B, 3, 1 + 4(T'-1), 8H', 8W')``.

        ``num_frames``, ``height``, ``width``: crop the output to the original video's size.
        ``generator`` is accepted as diffusers' ``AutoencoderKL.decode`` takes it (its pipelines call
        ``vae.decode(z, return_dict=False, generator=g)``); decoding is deterministic and does not use it.
        """
        self._check_latent_input(z)
        return self._decode(z, return_dict, chunk_groups, (num_frames, height, width), callback)

    def _decode(
        self,
        z: torch.Tensor,
        return_dict: bool,
        chunk_groups: int | None,
        size: Sequence[int | None],
        callback: streaming.ChunkCallback | None,
    ) -> DecoderOutput | tuple[torch.Tensor]:
        """:meth:`decode` once its latents are checked (``forward`` skips the finiteness check: its latents are the
        model's own, and a model whose activations overflow returns NaN for its caller to see)."""
        full = (1 + self.temporal_compression * (z.shape[2] - 1), z.shape[3] * self.spatial_compression,
                z.shape[4] * self.spatial_compression)
        crop = [_check_crop(name, value, limit) for name, value, limit in zip(("num_frames", "height", "width"), size, full, strict=True)]
        chunk_groups = self.chunk_groups if chunk_groups is None else streaming.check_chunk_groups(chunk_groups)
        s = self.spatial_compression
        callback = self._counted(callback, z, 1, chunk_groups, self.tile_size // s, self.tile_overlap // s)
        video = self._per_sample(z, lambda v: self._decode_latents(v, chunk_groups, callback))
        video = streaming.crop_video(video, *crop)
        return DecoderOutput(sample=video) if return_dict else (video,)

    def forward(
        self, sample: torch.Tensor, sample_posterior: bool = False, return_dict: bool = True, generator: torch.Generator | None = None
    ) -> DecoderOutput | tuple[torch.Tensor]:
        """Reconstruct a video; the output has the input's shape."""
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self._decode(z, return_dict, None, sample.shape[2:], None)

    # ----------------------------------------------------------------------------- videos in pieces
    def encode_stream(self, pieces: Iterable[torch.Tensor], chunk_groups: int | None = 1) -> Iterator[LatentDistribution]:
        """Encode a video that arrives in pieces, yielding posteriors as its chunks complete.

        ``pieces`` are consecutive parts ``(B, 3, t, H, W)`` of one video in ``[-1, 1]`` (any ``t``;
        the same batch and frame size). Each posterior covers the latent frames of one chunk: the
        first (frame 0 alone), then ``chunk_groups`` at a time; the video ends with the pieces, its
        last group padded as :meth:`encode` pads it. Concatenated in time, the posteriors equal
        :meth:`encode`'s with the same ``chunk_groups`` and tiling (``None``: one pass at the end),
        so neither the video nor its activations are ever held whole. Tiling applies
        (:meth:`enable_tiling`); slicing does not (the batch goes through together).
        """
        _check_pieces(pieces, "encode_stream", "x.split(4, dim=2)", "encode(x)")
        chunk_groups = streaming.check_chunk_groups(chunk_groups)
        s = self.spatial_compression
        tile = (self.tile_size, self.tile_overlap, 1 / s) if self.use_tiling else None
        runner = streaming.ChunkedStream(self.encoder, self.temporal_compression, chunk_groups, tile)
        shape = None
        for piece in pieces:
            shape = self._check_piece(piece, shape, self._check_video_input)
            for moments in runner.push(streaming.pad_space(piece, s)):
                yield self._posterior(moments)
        for moments in runner.finish():
            yield self._posterior(moments)

    def decode_stream(
        self,
        pieces: Iterable[torch.Tensor],
        chunk_groups: int | None = 1,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Decode latents that arrive in pieces ``(B, Z, t', H', W')``, yielding video frames
        ``(B, 3, t, H, W)`` chunk by chunk (the first latent frame gives one frame, every later one
        :attr:`temporal_compression`). Concatenated, they equal :meth:`decode` with the same
        ``chunk_groups`` and tiling. ``height``/``width`` crop every chunk, ``num_frames`` ends the
        video there (dropping the padding of its last group), as in :meth:`decode`.
        """
        _check_pieces(pieces, "decode_stream", "z.split(1, dim=2)", "decode(z)")
        chunk_groups = streaming.check_chunk_groups(chunk_groups)
        s = self.spatial_compression
        tile = (self.tile_size // s, self.tile_overlap // s, s) if self.use_tiling else None
        runner = streaming.ChunkedStream(self.decoder, 1, chunk_groups, tile)
        if num_frames is not None and (not is_whole_number(num_frames) or num_frames < 1):
            raise ValueError(f"num_frames={num_frames!r}: expected a whole number >= 1 (the original video's frame count) or None")
        remaining, shape, crop = num_frames, None, None

        def cropped(videos: list[torch.Tensor]) -> Iterator[torch.Tensor]:
            nonlocal remaining
            for video in videos:
                video = video[:, :, :remaining, : crop[0], : crop[1]]
                if remaining is not None:
                    remaining -= video.shape[2]
                if video.shape[2]:
                    yield video

        for piece in pieces:
            shape = self._check_piece(piece, shape, self._check_latent_input)
            if crop is None:  # the latent frame size bounds the crop
                crop = [_check_crop(name, value, limit * s) for name, value, limit in zip(("height", "width"), (height, width),
                                                                                           shape[2:], strict=True)]
            yield from cropped(runner.push(piece))
        yield from cropped(runner.finish())
        if remaining:  # as decode refuses a crop beyond the decoded video
            raise ValueError(f"num_frames={num_frames}: the latents decode to {num_frames - remaining} frames; give at most that")

    @staticmethod
    def _check_piece(piece: torch.Tensor, shape: tuple[int, ...] | None, check) -> tuple[int, ...]:
        """Check one piece of a streamed video; return (batch, channels, height, width) for the next."""
        check(piece)
        found = (piece.shape[0], piece.shape[1], *piece.shape[3:])
        if shape is not None and found != shape:
            raise ValueError(f"a piece of shape {tuple(piece.shape)} does not continue the earlier pieces (batch, channels, height, "
                             f"width = {shape}): every piece of one video has the same batch and frame size")
        return found

    # ----------------------------------------------------------------------------- latent normalisation
    def normalize_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Latents as a diffusion model sees them: ``scaling_factor * (z - shift_factor)``."""
        self._check_normalization_input(z, "normalize_latents")
        return (z - self.config.shift_factor) * self.config.scaling_factor

    def denormalize_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`normalize_latents` before :meth:`decode`."""
        self._check_normalization_input(z, "denormalize_latents")
        return z / self.config.scaling_factor + self.config.shift_factor

    # ----------------------------------------------------------------------------- internals
    def _check_input(self, x: torch.Tensor, what: str) -> None:
        """Inputs must be on the weights' device and match their dtype (autocast aside), or the first
        conv fails cryptically. Offloaded models (accelerate hooks, meta weights) move weights
        themselves, so their device is not checked."""
        device = self.device
        if x.device != device and device.type != "meta" and not hasattr(self, "_hf_hook"):
            raise ValueError(f"{what} on {x.device} but the model is on {device}; move one of them (x.to(model.device) "
                             f"or model.to(x.device))")
        if x.dtype != self.dtype and not torch.is_autocast_enabled(x.device.type):
            raise ValueError(f"{what} {x.dtype} but the model's weights are {self.dtype}; "
                             f"convert one of them (x.to(model.dtype)) or run under torch.autocast")

    def _check_finite(self, x: torch.Tensor, message: str) -> tuple[float, float]:
        """Refuse NaN or infinite values, which would come out as a NaN result without an error;
        return ``x``'s (min, max).

        One min/max pass (no copy; NaN propagates), negligible next to the network. Skipped (0, 0)
        in training mode and under ``torch.compile``, where the trainer checks its loss instead and
        a data-dependent check would cost a sync or a graph break per step."""
        if self.training or x.is_meta or torch.compiler.is_compiling():
            return 0.0, 0.0
        low, high = (float(v) for v in torch.aminmax(x.detach()))
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(message)
        return low, high

    def _check_normalization_input(self, z: torch.Tensor, name: str) -> None:
        """Float latents; a 5-D batch must have this model's latent channels (not a video or another model's latents)."""
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            got = f"a {z.dtype} tensor" if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"{name}: expected float latents (batch, {self.spec.latent_channels}, latent_frames, latent_height, "
                             f"latent_width), got {got}")
        if z.dim() == 5 and z.shape[1] != self.spec.latent_channels:
            raise ValueError(f"{name}: expected latents with {self.spec.latent_channels} channels (batch, "
                             f"{self.spec.latent_channels}, latent_frames, latent_height, latent_width), got shape {tuple(z.shape)}")

    def _check_video_input(self, x: torch.Tensor) -> None:
        """What :meth:`encode` refuses: a wrong layout, device or dtype, NaN, frames in 0..255."""
        check_video(x, self.spec.in_channels)
        self._check_input(x, "the input is")
        low, high = self._check_finite(x, "the input holds NaN or infinite values, which encode to NaN latents; clean it first "
                                          "(e.g. torch.nan_to_num(x)) and check where they came from")
        if max(-low, high) > INPUT_LIMIT:
            raise ValueError(f"the input holds values in [{low:g}, {high:g}], but videos are in [-1, 1]: for 0..255 frames use "
                             "x / 127.5 - 1 (ivvae.io.frames_to_tensor does it)")

    def _check_latent_input(self, z: torch.Tensor) -> None:
        """What :meth:`decode` refuses: a wrong layout, device or dtype, NaN or infinite values."""
        check_latents(z, self.spec.latent_channels)
        self._check_input(z, "the latents are")
        self._check_finite(z, "the latents hold NaN or infinite values, which decode to a NaN video; check what produced them "
                              "(a diffusion model's output, a latents file; if this model's encode did, its weights are broken)")

    def _posterior(self, moments: torch.Tensor) -> LatentDistribution:
        return LatentDistribution(torch.cat(split_moments(moments, self.spec.num_branches), dim=1))

    def _counted(self, callback: streaming.ChunkCallback | None, x: torch.Tensor, frames_per_group: int, chunk_groups: int | None,
                 tile: int, overlap: int) -> streaming.ChunkCallback | None:
        """``callback`` called with ``(done, total)`` over every chunk of every tile and batch slice of this call."""
        if callback is None:
            return None
        chunks = len(streaming.chunk_slices(x.shape[2], frames_per_group, chunk_groups))
        tiles = streaming.tile_count(x.shape[3], x.shape[4], tile, overlap) if self.use_tiling else 1
        slices = x.shape[0] if self.use_slicing else 1
        return streaming.ChunkCounter(callback, chunks * tiles * slices)

    def _per_sample(self, x: torch.Tensor, fn) -> torch.Tensor:
        if self.use_slicing and x.shape[0] > 1:
            return torch.cat([fn(part) for part in x.split(1)], dim=0)
        return fn(x)

    def _encode_moments(self, x: torch.Tensor, chunk_groups: int | None, callback) -> torch.Tensor:
        run = lambda tile: streaming.run_temporal(self.encoder, tile, self.temporal_compression, chunk_groups, callback)  # noqa: E731
        if self.use_tiling:
            return streaming.run_tiled(lambda tile, _: run(tile), x, self.tile_size, self.tile_overlap, 1 / self.spatial_compression)
        return run(x)

    def _decode_latents(self, z: torch.Tensor, chunk_groups: int | None, callback) -> torch.Tensor:
        run = lambda tile: streaming.run_temporal(self.decoder, tile, 1, chunk_groups, callback)  # noqa: E731
        if self.use_tiling:
            s = self.spatial_compression
            return streaming.run_tiled(lambda tile, _: run(tile), z, self.tile_size // s, self.tile_overlap // s, s)
        return run(z)


def _check_pieces(pieces: object, method: str, split: str, whole: str) -> None:
    """A tensor iterates over its batch, whose elements would be refused as 4-D pieces: name the fix instead."""
    if isinstance(pieces, torch.Tensor):
        raise ValueError(f"{method} takes an iterable of pieces of one video, got a tensor of shape {tuple(pieces.shape)}; "
                         f"cut it into pieces along time ({split}) or use {whole} for the whole of it")


def _check_crop(name: str, value: int | None, limit: int) -> int:
    """A ``decode`` crop size: ``None`` (no crop) or an integer in ``1 .. limit`` (the decoded size)."""
    if value is None:
        return limit
    if not is_whole_number(value) or not 1 <= value <= limit:
        raise ValueError(f"decode: {name}={value!r} is not a size these latents decode to: give an integer from 1 to "
                         f"{limit} (the decoded {name}), or None")
    return int(value)


def check_video(x: torch.Tensor, channels: int = 3) -> None:
    """Raise a ``ValueError`` naming the expected layout, and the likely fix, unless ``x`` is a float video batch."""
    expected = f"expected a float video tensor of shape (batch, {channels}, frames, height, width) with values in [-1, 1]"
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{expected}, got {type(x).__name__}{_not_a_tensor_hint(x)}")
    if x.dim() != 5:
        raise ValueError(f"{expected}, got a {x.dim()}-D tensor of shape {tuple(x.shape)}{_video_rank_hint(x.shape, channels)}")
    if x.shape[1] != channels:
        raise ValueError(f"{expected}, got {x.shape[1]} channels (shape {tuple(x.shape)}); videos are (B, C, T, H, W), channels second"
                         f"{_channel_axis_hint(x.shape, channels, 'x')}")
    if not x.is_floating_point():
        raise ValueError(f"{expected}, got dtype {x.dtype}; convert uint8 frames with x.float() / 127.5 - 1")
    if x.numel() == 0:
        raise ValueError(f"{expected}, got an empty tensor of shape {tuple(x.shape)}")


def _not_a_tensor_hint(x: object) -> str:
    """The fix for a non-tensor given where a tensor belongs."""
    if hasattr(x, "__array__") and hasattr(x, "shape"):
        return ": convert it with torch.from_numpy(x)"
    if isinstance(getattr(x, "sample", None), torch.Tensor):  # decode's or forward's DecoderOutput
        return ": pass the video, out.sample"
    if hasattr(x, "latent_dist"):  # encode's AutoencoderKLOutput
        return ": pass the latents, out.latent_dist.mode() (or .sample(generator))"
    if isinstance(x, DiagonalGaussianDistribution):
        return ": pass the latents, posterior.mode() (or posterior.sample(generator))"
    return ""


def _video_rank_hint(shape: torch.Size, channels: int) -> str:
    """The fix for a video tensor of the wrong rank, from where its channel axis is."""
    if len(shape) == 4 and channels in shape[:2]:  # (C, T, H, W) and (B, C, H, W) may look alike: name what fits
        fixes = (["for one video (C, T, H, W) add a batch axis: x.unsqueeze(0)"] * (shape[0] == channels)
                 + ["for images (B, C, H, W) add a time axis: x.unsqueeze(2)",
                    "for one video (T, C, H, W): x.permute(1, 0, 2, 3).unsqueeze(0)"] * (shape[1] == channels))
        return "; " + "; ".join(fixes)
    if len(shape) == 4 and shape[3] == channels:
        return "; for frames (T, H, W, C) use x.permute(3, 0, 1, 2).unsqueeze(0)"
    if len(shape) == 3 and shape[0] == channels:
        return "; for one image (C, H, W) use x[None, :, None]"
    return ""


def _channel_axis_hint(shape: torch.Size, channels: int, name: str) -> str:
    """The fix for a 5-D tensor whose channels are on another axis than the second."""
    if shape[2] == channels:
        return f"; for (B, T, C, H, W) tensors use {name}.permute(0, 2, 1, 3, 4)"
    if shape[4] == channels:
        return f"; for channels-last (B, T, H, W, C) tensors use {name}.permute(0, 4, 1, 2, 3)"
    return ""


def check_latents(z: torch.Tensor, channels: int) -> None:
    """Raise a ``ValueError`` naming the likely fix unless ``z`` is a float latent batch with ``channels`` channels."""
    expected = f"expected float latents of shape (batch, {channels}, latent_frames, latent_height, latent_width)"
    if not isinstance(z, torch.Tensor):
        raise ValueError(f"{expected}, got {type(z).__name__}{_not_a_tensor_hint(z)}")
    got = f"{expected}, got shape {tuple(z.shape)}, dtype {z.dtype}"
    if z.dim() != 5:
        one_video = z.dim() == 4 and z.shape[0] == channels
        hint = "; for one video's latents (Z, T', H', W') add a batch axis: z.unsqueeze(0)" if one_video else ""
        raise ValueError(f"{got}{hint}")
    if z.shape[1] != channels:
        other = ("; a video goes to encode(), latents to decode()" if z.shape[1] == 3
                 else f"; latents with {z.shape[1]} channels come from another model (this one's have {channels})")
        hint = _channel_axis_hint(z.shape, channels, "z") or other
        raise ValueError(f"{got}{hint}")
    if not z.is_floating_point() or z.numel() == 0:
        raise ValueError(got)
