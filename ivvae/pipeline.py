"""Video in, video out: the library functions behind the ``ivvae`` command line.

Videos here are uint8 frames ``(T, H, W, 3)`` (as :func:`ivvae.io.read_video` returns them);
latents are float32 ``(1, Z, T', H', W')`` tensors plus a metadata dict.

* :func:`reconstruct`: encode to the latent mean and decode, in one pass or in chunks
  (``chunk_groups``), optionally in spatial tiles (``tile``) and in bf16. The output has the
  input's shape.
* :func:`encode_video` / :func:`decode_latents` split it in two; :func:`save_latents` /
  :func:`load_latents` store latents in a ``.safetensors`` file with the metadata needed to decode
  them (fps, original size, model, normalisation). With the same model, dtype, chunking and
  tiling, ``decode_latents(load_latents(save_latents(encode_video(v))))`` equals
  ``reconstruct(v)`` exactly (raw latents are stored bit for bit; ``reconstruct`` is built from
  the same two calls). :func:`encode_clips` encodes a batch of ``(B, 3, T, H, W)`` clips (what
  :mod:`ivvae.latent_dataset` does for whole data sets).
* :func:`reconstruction_metrics`: PSNR and SSIM of a reconstruction against its input.
* :func:`estimate_peak_memory_bytes` / :func:`check_memory`: a rough activation-size estimate,
  used to refuse runs likely to exhaust memory and to suggest ``--chunk-groups 1`` / ``--tile``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os
import tempfile
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from . import streaming
from ._checks import is_whole_number
from ._files import honour_umask
from .io import frames_to_tensor, tensor_to_frames
from .layers import stream, stream_states

__all__ = [
    "DTYPES",
    "EncodedVideo",
    "FrameMetrics",
    "LatentFileError",
    "MemoryRiskError",
    "available_memory_bytes",
    "center_crop",
    "check_memory",
    "config_hash",
    "decode_latents",
    "decode_pieces",
    "encode_clips",
    "encode_pieces",
    "encode_video",
    "estimate_peak_memory_bytes",
    "load_latents",
    "reconstruct",
    "reconstruct_pieces",
    "reconstruction_metrics",
    "save_latents",
    "side_by_side",
    "weights_hash",
    "weights_identity",
]

#: ``--dtype`` choices -> compute dtype. ``bf16`` runs under ``torch.autocast`` with channels-last weights.
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}

LATENT_FORMAT = "ivvae-latents"
LATENT_FORMAT_VERSION = "1"

#: Fraction of the available memory above which :func:`check_memory` refuses a run.
MEMORY_FRACTION = 0.7

Tile = tuple[int, int] | None


class LatentFileError(ValueError):
    """A latents file that cannot be read or was not written by :func:`save_latents`."""


class MemoryRiskError(ValueError):
    """The estimated peak memory of a run exceeds the safe fraction of the available memory."""


@dataclass
class EncodedVideo:
    """Latents ``(1, Z, T', H', W')`` (float32, CPU), what is needed to decode them, and where they
    came from (``source``, e.g. ``latents file 'clip.safetensors'``, named in decoding errors)."""

    latents: torch.Tensor
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Where the latents were read from (a file, a data set's clip), named in decoding errors.
    source: str = ""


# --------------------------------------------------------------------------------------------
# Execution settings
# --------------------------------------------------------------------------------------------
def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype}")
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def _dtype_name(dtype: str | torch.dtype) -> str:
    value = _dtype(dtype)
    return next(name for name, d in DTYPES.items() if d == value)


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _nearest_multiples(value: int, step: int, minimum: int) -> str:
    below, above = value // step * step, -(-value // step) * step
    return " or ".join(str(v) for v in dict.fromkeys((below, above)) if v >= minimum)


def check_tile(tile: Tile, spatial_compression: int) -> Tile:
    """``tile`` as ``(size, overlap)`` pixels, or a ``ValueError`` naming the nearest valid values.

    Both must be multiples of the spatial compression: the model works on whole latent pixels,
    and rounding silently would run (and record) another tile."""
    if tile is None:
        return None
    size, overlap = _tile_pair(tile)
    s = spatial_compression
    if size < 2 * s or overlap < 0 or overlap >= size:
        raise ValueError(f"tile must be (size >= {2 * s}, 0 <= overlap < size) pixels, got ({size}, {overlap})")
    if size % s or overlap % s:
        raise ValueError(
            f"tile ({size}, {overlap}): the tile size and overlap must be multiples of the model's spatial compression ({s} px); "
            f"nearest valid: size {_nearest_multiples(size, s, 2 * s)}, overlap {_nearest_multiples(overlap, s, 0)} "
            "(--tile SIZE --tile-overlap PX)"
        )
    return size, overlap


def _tile_pair(tile: object) -> tuple[int, int]:
    """``tile`` as two ints; int() would run 16.5 as 16 and unpacking a lone int fails cryptically."""
    if not isinstance(tile, (tuple, list)) or len(tile) != 2 or not all(is_whole_number(v) for v in tile):
        raise ValueError(f"tile must be None or a pair (size, overlap) of whole pixel counts, e.g. (256, 64), got {tile!r}")
    return int(tile[0]), int(tile[1])


def _check_chunk_groups(chunk_groups: int | None) -> int | None:
    # int() would run 1.5 as 1 and "2" as 2: another chunk size than asked for, recorded in the metadata
    return streaming.check_chunk_groups(chunk_groups)


def _check_model(model: Any) -> None:
    """The pipeline's functions take a model of the family, not its class or a path."""
    from .models import IVVAE

    if not isinstance(model, IVVAE):
        if isinstance(model, type) or isinstance(model, torch.nn.Module):
            got = f"the class {model.__name__}" if isinstance(model, type) else f"a {type(model).__name__} module"
        else:
            got = f"{type(model).__name__} {' '.join(repr(model).split()):.60}"
        raise ValueError(f"expected an IV-VAE model (IVVAE, ImageVAE or CausalVAE instance), got {got}; load one with "
                         "ivvae.load_model(NAME_OR_FOLDER)")


def _input_dtype(model, compute: torch.dtype) -> torch.dtype:
    """The dtype of the tensors fed to the model: its weights' (``dtype`` sets the compute precision,
    not the input's). Under bf16 autocast a half-precision model gets float32 inputs: autocast casts
    them itself, and on CPU it refuses float16 ones."""
    weights = next(model.parameters()).dtype
    return torch.float32 if compute == torch.bfloat16 and weights in (torch.float16, torch.bfloat16) else weights


@contextlib.contextmanager
def _execution(model, tile: Tile, dtype: torch.dtype) -> Iterator[None]:
    """Tiling and autocast for one call; the model's own tiling settings are restored after."""
    saved = (model.use_tiling, model.tile_size, model.tile_overlap)
    try:
        if tile is not None:
            model.enable_tiling(*tile)
        else:
            model.disable_tiling()
        device = _model_device(model)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if dtype == torch.bfloat16 else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            yield
    finally:
        model.use_tiling, model.tile_size, model.tile_overlap = saved


def _prepare_model(model, dtype: torch.dtype):
    if dtype == torch.bfloat16:
        model.to_channels_last()  # the fast layout of oneDNN / cuDNN convolutions in bf16
    return model


def _execution_options(model, chunk_groups: int | None, tile: Tile, dtype: str | torch.dtype):
    """The model checked and prepared for ``dtype``; ``(chunk_groups, tile, compute dtype)`` checked."""
    _check_model(model)
    chunk_groups, tile, compute = _check_chunk_groups(chunk_groups), check_tile(tile, model.spatial_compression), _dtype(dtype)
    _prepare_model(model, compute)
    return chunk_groups, tile, compute


def _memory_format(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last_3d) if dtype == torch.bfloat16 else x


def _tile_count(height: int, width: int, tile: Tile, scale: int = 1) -> int:
    """Tiles over a ``height x width`` frame (pixels, or latent pixels with ``scale`` = spatial compression)."""
    if tile is None:
        return 1
    size, overlap = (v // scale for v in tile)
    return streaming.tile_count(height, width, size, overlap)


class _ChunkProgress:
    """A tqdm bar over the chunks (and tiles) of one encode or decode call."""

    def __init__(self, desc: str, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="chunk", leave=False, dynamic_ncols=True)

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:  # the model's count is the authority (slicing runs a batch's samples in turn)
            if self.bar.total != total:
                self.bar.total = total
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _chunk_count(frames: int, frames_per_group: int, chunk_groups: int | None) -> int:
    return len(streaming.chunk_slices(frames, frames_per_group, chunk_groups))


# --------------------------------------------------------------------------------------------
# Model identity
# --------------------------------------------------------------------------------------------
def config_hash(model, **overrides: Any) -> str:
    """A short hash of the model's architecture and normalisation config (private keys excluded;
    ``overrides`` replace config values, e.g. other normalisation factors)."""
    config = {k: v for k, v in dict(model.config).items() if not k.startswith("_")} | overrides
    text = json.dumps(config, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def weights_hash(model, dtype: torch.dtype = torch.float32) -> str:
    """A short hash of the model's weights: names, shapes and values as ``dtype`` (float32 by
    default, so a model stored in float16 and loaded in float32 hashes the same each time)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu()
        data = (data.to(dtype) if data.is_floating_point() else data).contiguous()
        digest.update(f"{name}:{tuple(data.shape)}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


#: Half-precision dtypes whose roundings of the weights latents record: the same checkpoint loaded in
#: float32, float16 or bfloat16 rounds to the same values in the coarser of two dtypes.
_ROUNDINGS = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def weights_identity(model) -> dict[str, str]:
    """What latents record of the weights that made them: the float32 hash, the dtype the weights
    were loaded in and their hashes rounded to each half-precision dtype, so that the same
    checkpoint loaded in another precision still decodes them."""
    identity = {"weights_hash": weights_hash(model), "weights_dtype": _weights_dtype(model)}
    return identity | {f"weights_hash_{name}": weights_hash(model, dtype) for name, dtype in _ROUNDINGS.items()}


def _weights_dtype(model) -> str:
    dtypes = {str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else "mixed"


def _model_name(model) -> str:
    name = getattr(model, "name_or_path", None) or model.config.get("_name_or_path", "")
    if name and os.path.isdir(name):
        name = os.path.abspath(name)
    return str(name)


# --------------------------------------------------------------------------------------------
# Encode / decode / reconstruct
# --------------------------------------------------------------------------------------------
def _as_video(video: torch.Tensor) -> torch.Tensor:
    video = torch.as_tensor(video)
    if video.dtype != torch.uint8 or video.ndim != 4 or video.shape[-1] != 3 or 0 in video.shape:
        raise ValueError(f"expected uint8 frames of shape (T, H, W, 3), got {video.dtype} {tuple(video.shape)}{_video_hint(video)}")
    return video


def _video_hint(video: torch.Tensor) -> str:
    """The likely fix for frames that are not uint8 ``(T, H, W, 3)``."""
    shape = tuple(video.shape)
    if video.ndim == 3 and shape[-1] == 3:
        return "; for a single frame add a time axis: frame[None]"
    if video.ndim == 4 and shape[1] == 3 and shape[-1] != 3:
        return "; frames are channels-last: video.permute(0, 2, 3, 1)"
    if video.ndim == 5 and shape[0] == 1:
        return "; one video at a time: video[0] (encode_clips takes batches of float clips)"
    if 0 in shape:
        return "; the video is empty"
    if video.is_floating_point():
        return "; convert float frames in [0, 1] with (video * 255).round().to(torch.uint8), in [-1, 1] with ivvae.io.tensor_to_frames"
    if video.dtype != torch.uint8:
        return "; convert with video.clamp(0, 255).to(torch.uint8)"
    return ""


def encode_video(
    model,
    video: torch.Tensor,
    *,
    fps: float | None = None,
    chunk_groups: int | None = None,
    tile: Tile = None,
    dtype: str | torch.dtype = "fp32",
    normalize: bool = False,
    progress: bool = True,
) -> EncodedVideo:
    """Encode uint8 frames ``(T, H, W, 3)`` to the latent mean ``(1, Z, T', H', W')`` (float32, CPU).

    Args:
        model: an :class:`~ivvae.models.IVVAE` (or family member) in eval mode.
        fps: frame rate stored in the metadata (for decoding to a video file).
        chunk_groups: ``None`` for one pass, else frame groups (4 frames) per chunk.
        tile: ``(size, overlap)`` in pixels for spatial tiling, or ``None``.
        dtype: ``"fp32"`` or ``"bf16"`` (autocast + channels-last; this stores the model's conv
            weights channels-last in place, a layout change that later calls keep).
        normalize: store ``scaling_factor * (z - shift_factor)`` (what a diffusion model trains
            on) instead of the raw latents. Raw latents (the default) decode bit-exactly.
        progress: show a progress bar over chunks.
    """
    _check_model(model)
    video = _as_video(video)
    _check_fps(fps)
    chunk_groups, tile, compute = _check_chunk_groups(chunk_groups), check_tile(tile, model.spatial_compression), _dtype(dtype)
    frames, height, width = video.shape[:3]
    latents = encode_clips(model, frames_to_tensor(video).unsqueeze(0), chunk_groups=chunk_groups, tile=tile, dtype=compute,
                           normalize=normalize, progress=progress)
    metadata = _latent_metadata(model, fps, (frames, height, width), normalize=normalize, compute=compute, chunk_groups=chunk_groups,
                                tile=tile)
    return EncodedVideo(latents=latents, metadata=metadata)


def _latent_metadata(model, fps: float | None, size: tuple[int, int, int], *, normalize: bool, compute: torch.dtype,
                     chunk_groups: int | None, tile: Tile) -> dict[str, Any]:
    """What a latents file records: the video's size and rate, the model and how it ran."""
    frames, height, width = size
    return {
        "format": LATENT_FORMAT,
        "version": LATENT_FORMAT_VERSION,
        "fps": float(fps) if fps else 0.0,
        "num_frames": int(frames),
        "height": int(height),
        "width": int(width),
        "model": _model_name(model),
        "model_class": type(model).__name__,
        "config_hash": config_hash(model),
        **weights_identity(model),
        "normalized": bool(normalize),
        "scaling_factor": float(model.config.scaling_factor),
        "shift_factor": float(model.config.shift_factor),
        "dtype": _dtype_name(compute),
        "chunk_groups": chunk_groups,
        "tile": list(tile) if tile else None,
    }


def _check_fps(fps: object) -> None:
    """A frame rate is stored and later written to a video file: it must be a finite number >= 0 (0 or None: unknown)."""
    if fps is not None and (not isinstance(fps, numbers.Real) or isinstance(fps, bool) or not math.isfinite(fps) or fps < 0):
        raise ValueError(f"fps={fps!r}: expected a finite frame rate >= 0 (frames per second; None or 0 if unknown)")


def encode_clips(
    model,
    clips: torch.Tensor,
    *,
    chunk_groups: int | None = None,
    tile: Tile = None,
    dtype: str | torch.dtype = "fp32",
    normalize: bool = False,
    progress: bool = False,
) -> torch.Tensor:
    """Encode a batch of clips ``(B, 3, T, H, W)`` in ``[-1, 1]`` to latent means ``(B, Z, T', H', W')``
    (float32, CPU); the options are :func:`encode_video`'s."""
    from .models.ivvae import check_video

    _check_model(model)
    check_video(clips, model.spec.in_channels)
    chunk_groups, tile, compute = _execution_options(model, chunk_groups, tile, dtype)
    x = _memory_format(clips.to(_model_device(model), _input_dtype(model, compute)), compute)
    frames, height, width = x.shape[2:]
    padded_t = streaming.padded_length(frames, model.temporal_compression)
    s = model.spatial_compression
    total = _chunk_count(padded_t, model.temporal_compression, chunk_groups) * _tile_count(-(-height // s) * s, -(-width // s) * s, tile)
    bar = _ChunkProgress("encode", total, progress)
    try:
        with _execution(model, tile, compute):
            z = model.encode(x, chunk_groups=chunk_groups, callback=bar).latent_dist.mode()
            if normalize:
                z = model.normalize_latents(z.float())
    finally:
        bar.close()
    return _ordinary_tensor(z.detach().to("cpu", torch.float32).contiguous())


def _ordinary_tensor(x: torch.Tensor) -> torch.Tensor:
    """``x`` usable with autograd: a tensor made under ``torch.inference_mode`` (``.to`` and ``.contiguous``
    return it unchanged when there is nothing to convert) cannot be saved for backward, so latents used as a
    diffusion model's training targets would fail there, far from here."""
    return x.clone() if x.is_inference() else x


def _check_encoding_model(model, metadata: dict[str, Any]) -> None:
    """Latents decode only with the model that made them: same config and, where recorded, weights."""
    made_by = f"model '{metadata.get('model', '?')}'"
    if metadata.get("config_hash") and metadata["config_hash"] not in (config_hash(model), _config_hash_as_recorded(model, metadata)):
        raise ValueError(
            f"these latents were made by another model ({made_by}, config hash {metadata['config_hash']}); this model's "
            f"config hash is {config_hash(model)}: decode with the encoding model"
        )
    if metadata.get("weights_hash") and metadata["weights_hash"] != weights_hash(model):
        _check_same_weights_in_another_dtype(model, metadata, made_by)


def _check_same_weights_in_another_dtype(model, metadata: dict[str, Any], made_by: str) -> None:
    """The float32 hashes differ: accept the encoding weights loaded in another dtype (their bfloat16
    roundings agree), and otherwise say whether the dtype or the weights differ."""
    recorded, loaded = metadata.get("weights_dtype"), _weights_dtype(model)
    if recorded is not None and recorded != loaded:
        roundings = [name for name in (recorded, loaded) if name in _ROUNDINGS]
        if any(metadata.get(f"weights_hash_{name}") == weights_hash(model, _ROUNDINGS[name]) for name in roundings):
            return
        raise ValueError(
            f"these latents were made by {made_by} with its weights in {recorded}; this model's weights are {loaded} and "
            f"do not round to the same values: load the model in {recorded} (torch_dtype=torch.{recorded}) to decode them, or "
            "pass check_model=False if it is the same model")
    hint = ""
    if recorded is None and loaded != "float32":  # latents older than the dtype record
        hint = (f"; if it is the same model loaded in {loaded}, load it in float32 as these latents were made, or pass "
                "check_model=False")
    raise ValueError(
        f"these latents were made by the same architecture with other weights ({made_by}, weights hash "
        f"{metadata['weights_hash']}, this model's {weights_hash(model)}): decode with the encoding model's weights{hint}"
    )


def _config_hash_as_recorded(model, metadata: dict[str, Any]) -> str | None:
    """The model's config hash with the normalisation factors the latents recorded: latents made
    before ``latent-stats`` set new factors (same architecture and weights) still decode."""
    factors = {k: metadata[k] for k in ("scaling_factor", "shift_factor") if isinstance(metadata.get(k), (int, float))}
    return config_hash(model, **factors) if len(factors) == 2 else None


def _recorded_factors(model, metadata: dict[str, Any]) -> tuple[float, float]:
    """(scaling_factor, shift_factor) the latents were normalised with: the recorded ones (the
    model's may have changed since), else the model's."""
    scaling, shift = metadata.get("scaling_factor"), metadata.get("shift_factor")
    if isinstance(scaling, (int, float)) and isinstance(shift, (int, float)) and scaling:
        return float(scaling), float(shift)
    return float(model.config.scaling_factor), float(model.config.shift_factor)


def _one_video_latents(latents: torch.Tensor, where: str) -> torch.Tensor:
    """The latents of one video ``(1, Z, T', H', W')``, refusing what would decode to a wrong video silently."""
    if not isinstance(latents, torch.Tensor):
        raise ValueError(f"{where}: expected a latents tensor, got {type(latents).__name__}")
    if not latents.is_floating_point():
        raise ValueError(f"{where}: the latents are {latents.dtype}, not float (`ivvae encode` writes float32): "
                         "they are not latents of a video; re-encode the video")
    if latents.ndim == 4:
        latents = latents.unsqueeze(0)
    if latents.ndim != 5:
        raise ValueError(f"{where}: expected the latents of one video, (1, Z, latent_frames, latent_height, latent_width) or "
                         f"(Z, latent_frames, latent_height, latent_width), got shape {tuple(latents.shape)}")
    if latents.shape[0] != 1:
        raise ValueError(
            f"{where}: a batch of {latents.shape[0]} latents {tuple(latents.shape)}, but a video is decoded from one: decode the "
            "batch from Python with model.decode(latents), or save each as its own file (save_latents(path, latents[i:i + 1], metadata))"
        )
    bad = latents.numel() - int(torch.isfinite(latents).sum())
    if bad:  # they would decode to a blank (black) video without an error
        raise ValueError(f"{where}: {bad} of {latents.numel()} latent values are NaN or infinite: the latents are corrupt; "
                         "re-encode the video (with a model whose outputs are finite)")
    return latents


def _is_count(value: Any) -> bool:
    return is_whole_number(value) and value >= 1


def _encoded_range(model, name: str, latent_size: int) -> tuple[int, int]:
    """The ``num_frames`` / ``height`` / ``width`` of the videos whose latents have ``latent_size`` along that axis."""
    if name == "num_frames":
        t = model.temporal_compression
        largest = 1 + t * (latent_size - 1)
        return (largest - t + 1 if latent_size > 1 else 1), largest
    s = model.spatial_compression
    return s * (latent_size - 1) + 1, s * latent_size


def _check_recorded_size(model, shape: torch.Size, metadata: dict[str, Any], where: str) -> None:
    """The recorded frame count and size must be what the latents were encoded from: otherwise the
    metadata belongs to other latents (an edited or mixed-up file)."""
    if len(shape) != 5 or min(shape) < 1:
        return  # not latents at all: the model's own check names the expected layout
    for name, axis, unit, size in (("num_frames", "frames", "frames", shape[2]), ("height", "rows", "px", shape[3]),
                                   ("width", "columns", "px", shape[4])):
        value = metadata.get(name)
        if value is None:
            continue
        if not _is_count(value):
            raise ValueError(f"{where}: its metadata says {name} {value!r}, not a positive whole number: the file is damaged "
                             "(re-encode the video)")
        low, high = _encoded_range(model, name, size)
        if not low <= value <= high:
            encoded = f"{low} to {high}" if low < high else f"{high}"
            raise ValueError(
                f"{where}: its metadata says {name} {value}, but {size} latent {axis} decode to {high} {unit} (encoded from "
                f"{encoded} {unit}): metadata and latents disagree (re-encode the video)"
            )


def _check_decode_tile(model, tile: Tile, metadata: dict[str, Any], where: str) -> Tile:
    """A tile taken from the metadata (the CLI's default) is refused naming the file and the override."""
    try:
        return check_tile(tile, model.spatial_compression)
    except ValueError as error:
        recorded = metadata.get("tile")
        if tile is None or not isinstance(recorded, (list, tuple)) or list(tile) != list(recorded):
            raise
        raise ValueError(f"{where}: its metadata records tile {list(recorded)}, which cannot be used ({error}); override it with "
                         "--tile 0 (no tiles) or --tile SIZE (in Python: tile=None or tile=(size, overlap))") from None


def decode_latents(
    model,
    latents: torch.Tensor | EncodedVideo,
    metadata: dict[str, Any] | None = None,
    *,
    chunk_groups: int | None = None,
    tile: Tile = None,
    dtype: str | torch.dtype = "fp32",
    progress: bool = True,
    check_model: bool = True,
) -> torch.Tensor:
    """Decode latents to uint8 frames ``(T, H, W, 3)``, cropped to the original size in ``metadata``.

    ``metadata`` (from :func:`encode_video` / :func:`load_latents`) gives the original frame count
    and size and whether the latents are normalised (they are denormalised first). Without it the
    full decoded size ``(1 + 4(T'-1), 8H', 8W')`` is returned. With ``check_model`` a metadata
    config hash that differs from ``model``'s raises a ``ValueError``.

    Raises ``ValueError`` (before running the model) for latents that would decode to a wrong video
    without an error: not float, NaN or infinite values, a batch of several videos (decode those
    with ``model.decode``), or a recorded size or tile that does not fit the latents.
    """
    z, metadata, chunk_groups, tile, compute = _decoder_input(model, latents, metadata, chunk_groups, tile, dtype, check_model)
    s = model.spatial_compression
    total = _chunk_count(z.shape[2], 1, chunk_groups) * _tile_count(z.shape[3], z.shape[4], tile, s)
    bar = _ChunkProgress("decode", total, progress)
    try:
        with _execution(model, tile, compute):
            video = model.decode(
                z,
                chunk_groups=chunk_groups,
                num_frames=metadata.get("num_frames"),
                height=metadata.get("height"),
                width=metadata.get("width"),
                callback=bar,
            ).sample
    finally:
        bar.close()
    return tensor_to_frames(video[0].float().cpu())


def _decoder_input(model, latents, metadata, chunk_groups, tile, dtype, check_model):
    """:func:`decode_latents`' checks, then the latents as the model takes them (denormalised, on
    its device, in its input dtype): ``(z, metadata, chunk_groups, tile, compute dtype)``."""
    _check_model(model)
    source = ""
    if isinstance(latents, EncodedVideo):
        latents, metadata, source = latents.latents, (metadata or latents.metadata), latents.source
    metadata = metadata or {}
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict (EncodedVideo.metadata, or load_latents(path).metadata), got {type(metadata).__name__}")
    where = source or "the latents"
    chunk_groups, compute = _check_chunk_groups(chunk_groups), _dtype(dtype)
    tile = _check_decode_tile(model, tile, metadata, where)
    if check_model:
        _check_encoding_model(model, metadata)
    latents = _one_video_latents(latents, where)
    _check_recorded_size(model, latents.shape, metadata, where)
    _prepare_model(model, compute)
    z = latents.to(_model_device(model), torch.float32)
    if metadata.get("normalized"):  # with the factors they were normalised with
        scaling, shift = _recorded_factors(model, metadata)
        z = z / scaling + shift
    z = _memory_format(z.to(_input_dtype(model, compute)), compute)
    return z, metadata, chunk_groups, tile, compute


def reconstruct(
    model,
    video: torch.Tensor,
    chunk_groups: int | None = None,
    tile: Tile = None,
    dtype: str | torch.dtype = "fp32",
    progress: bool = True,
) -> torch.Tensor:
    """Encode (latent mean) and decode uint8 frames ``(T, H, W, 3)``; same shape out.

    Exactly ``decode_latents(model, encode_video(model, video, ...))`` with the same settings.
    """
    encoded = encode_video(model, video, chunk_groups=chunk_groups, tile=tile, dtype=dtype, progress=progress)
    return decode_latents(model, encoded, chunk_groups=chunk_groups, tile=tile, dtype=dtype, progress=progress)


# --------------------------------------------------------------------------------------------
# Videos in pieces: any length, memory set by the chunk
# --------------------------------------------------------------------------------------------
_END = object()


def _steps(model, tile: Tile, compute: torch.dtype, items: Iterator[Any]) -> Iterator[Any]:
    """``items``, each produced under the call's tiling and precision (not while the caller holds it)."""
    while True:
        with _execution(model, tile, compute):
            item = next(items, _END)
        if item is _END:
            return
        yield item


def _model_pieces(model, pieces: Iterable[torch.Tensor], compute: torch.dtype, keep: deque | None = None) -> Iterator[torch.Tensor]:
    """uint8 frame pieces ``(t, H, W, 3)`` as the model takes them (``keep`` collects the frames)."""
    device, input_dtype = _model_device(model), _input_dtype(model, compute)
    for frames in pieces:
        frames = _as_video(frames)
        if keep is not None:
            keep.append(frames)
        yield _memory_format(frames_to_tensor(frames).unsqueeze(0).to(device, input_dtype), compute)


def encode_pieces(
    model,
    pieces: Iterable[torch.Tensor],
    *,
    fps: float | None = None,
    chunk_groups: int | None = 1,
    tile: Tile = None,
    dtype: str | torch.dtype = "fp32",
    normalize: bool = False,
) -> EncodedVideo:
    """:func:`encode_video` of a video that arrives in pieces of uint8 frames ``(t, H, W, 3)``
    (e.g. :func:`ivvae.io.iter_video`): only one chunk of frames is ever held, and the result
    equals :func:`encode_video` of the whole video with the same options."""
    _check_fps(fps)
    chunk_groups, tile, compute = _execution_options(model, chunk_groups, tile, dtype)
    kept: deque = deque(maxlen=1)  # the last piece: the video's frame size
    frames = 0
    latents = []

    def counted() -> Iterator[torch.Tensor]:
        nonlocal frames
        for piece in _model_pieces(model, pieces, compute, kept):
            frames += piece.shape[2]
            yield piece

    for posterior in _steps(model, tile, compute, iter(model.encode_stream(counted(), chunk_groups))):
        z = posterior.mode()
        if normalize:
            z = model.normalize_latents(z.float())
        latents.append(z.detach().to("cpu", torch.float32))
    if not latents:
        raise ValueError("encode_pieces: the video has no frames (an empty iterable of pieces)")
    height, width = kept[0].shape[1:3]
    metadata = _latent_metadata(model, fps, (frames, height, width), normalize=normalize, compute=compute, chunk_groups=chunk_groups,
                                tile=tile)
    return EncodedVideo(latents=torch.cat(latents, dim=2).contiguous(), metadata=metadata)


def decode_pieces(
    model,
    latents: torch.Tensor | EncodedVideo,
    metadata: dict[str, Any] | None = None,
    *,
    chunk_groups: int | None = 1,
    tile: Tile = None,
    dtype: str | torch.dtype = "fp32",
    check_model: bool = True,
) -> Iterator[torch.Tensor]:
    """:func:`decode_latents` chunk by chunk: uint8 frame pieces ``(t, H, W, 3)``, which
    concatenated equal its result; only one chunk of frames is ever held (write them with
    :class:`ivvae.io.VideoWriter`). Every check runs before the first piece is made."""
    z, metadata, chunk_groups, tile, compute = _decoder_input(model, latents, metadata, chunk_groups, tile, dtype, check_model)
    videos = model.decode_stream(iter([z]), chunk_groups, num_frames=metadata.get("num_frames"), height=metadata.get("height"),
                                 width=metadata.get("width"))
    return (tensor_to_frames(video[0].float().cpu()) for video in _steps(model, tile, compute, iter(videos)))


def reconstruct_pieces(
    model,
    pieces: Iterable[torch.Tensor],
    *,
    chunk_groups: int | None = 1,
    tile: Tile = None,
    dtype: str | torch.dtype = "fp32",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`reconstruct` of a video that arrives in pieces of uint8 frames ``(t, H, W, 3)``:
    yields ``(input frames, reconstruction)`` pairs of equal length as each chunk's reconstruction
    is ready, so a video of any length is read, coded and written with the memory of a chunk.
    Concatenated, the reconstructions equal :func:`reconstruct` of the whole video."""
    chunk_groups, tile, compute = _execution_options(model, chunk_groups, tile, dtype)
    waiting: deque = deque()  # input frames whose reconstruction is not out yet
    input_dtype = _input_dtype(model, compute)
    latents = (_memory_format(p.mode().float().to(input_dtype), compute)
               for p in model.encode_stream(_model_pieces(model, pieces, compute, waiting), chunk_groups))
    for video in _steps(model, tile, compute, iter(model.decode_stream(latents, chunk_groups))):
        original = _take_frames(waiting, video.shape[2])  # fewer at the end: the last group's padding
        height, width = original.shape[1:3]
        yield original, tensor_to_frames(video[0, :, : original.shape[0], :height, :width].float().cpu())


def _take_frames(pieces: deque, count: int) -> torch.Tensor:
    """The first ``count`` frames (or all there are) of the pieces in ``pieces``, removed from it."""
    taken, have = [], 0
    while pieces and have < count:
        piece = pieces.popleft()
        if have + piece.shape[0] > count:
            pieces.appendleft(piece[count - have:])
            piece = piece[: count - have]
        taken.append(piece)
        have += piece.shape[0]
    return torch.cat(taken) if len(taken) > 1 else taken[0]


# --------------------------------------------------------------------------------------------
# Latent files
# --------------------------------------------------------------------------------------------
def save_latents(
    path: str | os.PathLike, latents: torch.Tensor | EncodedVideo, metadata: dict[str, Any] | None = None, *, overwrite: bool = False
) -> None:
    """Write latents and their metadata to a ``.safetensors`` file (tensor ``"latents"``).

    Metadata values are stored as JSON strings (safetensors metadata is ``str -> str``).
    """
    if isinstance(latents, EncodedVideo):
        latents, metadata = latents.latents, (metadata or latents.metadata)
    if not isinstance(latents, torch.Tensor) or not latents.is_floating_point():
        got = f"a {latents.dtype} tensor" if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise ValueError(f"save_latents: expected float latents (a tensor or an EncodedVideo from encode_video), got {got}")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"save_latents: metadata must be a dict, got {type(metadata).__name__}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"'{path}' is a folder: give the latents file's path, e.g. '{path / 'latents.safetensors'}'")
    if path.exists() and not overwrite:
        raise FileExistsError(f"refusing to overwrite existing file '{path}' (pass --overwrite)")
    meta = {"format": LATENT_FORMAT, "version": LATENT_FORMAT_VERSION, **(metadata or {})}
    text = {key: json.dumps(value) for key, value in meta.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name no other file has: a fixed one would replace a user's file of that name
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        try:
            save_file({"latents": latents.detach().cpu().contiguous()}, str(tmp), metadata=text)
            honour_umask(tmp)
            os.replace(tmp, path)
        except (OSError, SafetensorError) as error:  # a full disk: name the file, not safetensors' internals
            cause = getattr(error, "strerror", None) or " ".join(str(error).split())
            raise OSError(f"cannot write latents '{path}': {cause}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def load_latents(path: str | os.PathLike) -> EncodedVideo:
    """Read a file written by :func:`save_latents`.

    Raises:
        FileNotFoundError: no such file.
        LatentFileError: not a safetensors file, one without IV-VAE latents, another format version,
            or one whose recorded sizes or tile are not whole numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"latents file not found: '{path}'")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise LatentFileError(f"cannot read latents '{path}': not a safetensors file ({' '.join(str(error).split())})") from None
    if "latents" not in tensors or raw.get("format") != json.dumps(LATENT_FORMAT):
        raise LatentFileError(f"'{path}' holds no IV-VAE latents (write them with `ivvae encode`)")
    try:
        metadata = {key: json.loads(value) for key, value in raw.items()}
    except json.JSONDecodeError:
        raise LatentFileError(f"'{path}' has unreadable metadata") from None
    version = metadata.get("version", LATENT_FORMAT_VERSION)
    if not isinstance(version, str):
        raise LatentFileError(f"latents file '{path}': its metadata says version {json.dumps(version)}, not a version string: "
                              "the file is damaged (re-encode the video)")
    if version != LATENT_FORMAT_VERSION:  # its fields may mean other things
        raise LatentFileError(f"'{path}' is in latents format version {version}; this ivvae reads version "
                              f"{LATENT_FORMAT_VERSION}: decode it with the ivvae that wrote it")
    _check_metadata_types(path, metadata)
    return EncodedVideo(latents=tensors["latents"], metadata=metadata, source=f"latents file '{path}'")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_tile(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


#: What each metadata field must be (absent fields are allowed: older files), and how to say it.
_METADATA_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "num_frames": (lambda v: v is None or _is_count(v), "a positive whole number"),
    "height": (lambda v: v is None or _is_count(v), "a positive whole number"),
    "width": (lambda v: v is None or _is_count(v), "a positive whole number"),
    "tile": (lambda v: v is None or _is_tile(v), "[size, overlap] in pixels"),
    "model": (lambda v: isinstance(v, str), "a model name or folder"),
    "normalized": (lambda v: isinstance(v, bool), "true or false"),
    "fps": (lambda v: _is_number(v) and v >= 0, "a frame rate >= 0"),
    "scaling_factor": (lambda v: _is_number(v) and v != 0, "a non-zero number"),
    "shift_factor": (_is_number, "a number"),
    "chunk_groups": (lambda v: v is None or _is_count(v), "a positive whole number or null"),
    "dtype": (lambda v: isinstance(v, str) and v in DTYPES, f"one of {', '.join(DTYPES)}"),
    "sample_aspect_ratio": (lambda v: v is None or (isinstance(v, list) and len(v) == 2 and all(_is_count(x) for x in v)),
                            "[width, height] of one pixel, whole numbers"),
    # the model check compares these and looks the dtype up: another type would fail there unexplained
    **dict.fromkeys(("model_class", "config_hash", "weights_hash", "weights_dtype", *(f"weights_hash_{n}" for n in _ROUNDINGS)),
                    (lambda v: v is None or isinstance(v, str), "a string")),
}


def _check_metadata_types(path: Path, metadata: dict[str, Any]) -> None:
    """Decoding computes with these fields (memory check, defaults, de-normalisation, the output's
    rate): a value of the wrong type, e.g. ``"normalized": "false"``, is refused instead of misread."""
    for name, (valid, expected) in _METADATA_TYPES.items():
        if name in metadata and not valid(metadata[name]):
            raise LatentFileError(f"latents file '{path}': its metadata says {name} {json.dumps(metadata[name])}, not {expected}: "
                                  "the file is damaged (re-encode the video)")


# --------------------------------------------------------------------------------------------
# Metrics and frames helpers
# --------------------------------------------------------------------------------------------
def reconstruction_metrics(original: torch.Tensor, reconstruction: torch.Tensor) -> dict[str, float | None]:
    """PSNR (dB) and SSIM of uint8 frames ``(T, H, W, 3)``: per frame, averaged over frames.

    Uses :func:`ivvae.eval.metrics.psnr` / :func:`~ivvae.eval.metrics.ssim` (values in [-1, 1],
    ``data_range=2``; SSIM as scikit-image's Gaussian-window SSIM). SSIM is ``None`` for frames
    smaller than its 11x11 window.
    """
    metrics = FrameMetrics()
    metrics.update(original, reconstruction)
    return metrics.result()


class FrameMetrics:
    """:func:`reconstruction_metrics` over a video that comes in pieces: :meth:`update` with each
    piece's frames, :meth:`result` for the averages over every frame so far."""

    def __init__(self) -> None:
        self.frames = 0
        self._psnr = 0.0
        self._ssim: float | None = 0.0

    def update(self, original: torch.Tensor, reconstruction: torch.Tensor) -> None:
        from .eval.metrics import SSIM_WINDOW, psnr_per_frame, ssim_per_frame

        original, reconstruction = _as_video(original), _as_video(reconstruction)
        if original.shape != reconstruction.shape:
            raise ValueError(f"shapes differ: {tuple(original.shape)} vs {tuple(reconstruction.shape)}")
        x = frames_to_tensor(original).unsqueeze(0)
        y = frames_to_tensor(reconstruction).unsqueeze(0)
        self.frames += x.shape[2]
        self._psnr += float(psnr_per_frame(x, y, data_range=2.0).sum())
        small = min(x.shape[-2:]) < SSIM_WINDOW
        self._ssim = None if small or self._ssim is None else self._ssim + float(ssim_per_frame(x, y, data_range=2.0).sum())

    def result(self) -> dict[str, float | None]:
        """``{"psnr": dB, "ssim": value or None}``, means over the frames seen."""
        if not self.frames:
            raise ValueError("no frames were measured")
        return {"psnr": self._psnr / self.frames, "ssim": None if self._ssim is None else self._ssim / self.frames}


def side_by_side(a: torch.Tensor, b: torch.Tensor, gap: int = 0) -> torch.Tensor:
    """Frames ``(T, H, W, 3)`` of ``a`` and ``b`` next to each other (``a`` left), ``gap`` black pixels apart."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if not is_whole_number(gap) or gap < 0:
        raise ValueError(f"side_by_side: gap={gap!r}: expected a whole number of pixels >= 0")
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"side_by_side needs two (T, H, W, C) videos of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    parts = [a] + ([a.new_zeros(a.shape[0], a.shape[1], gap, a.shape[3])] if gap > 0 else []) + [b]
    return torch.cat(parts, dim=2)


def center_crop(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Central ``height x width`` region of frames ``(T, H, W, C)`` (sizes clipped to the frame)."""
    if not isinstance(video, torch.Tensor) or video.ndim != 4:
        shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"center_crop: expected frames (T, H, W, C), got {shape}; for a single frame use frame[None]")
    for name, value in (("height", height), ("width", width)):
        if not is_whole_number(value) or value < 1:
            raise ValueError(f"center_crop: {name}={value!r}: expected a whole number of pixels >= 1")
    h, w = video.shape[1:3]
    height, width = min(height, h), min(width, w)
    top, left = (h - height) // 2, (w - width) // 2
    return video[:, top : top + height, left : left + width].contiguous()


# --------------------------------------------------------------------------------------------
# Memory estimate
# --------------------------------------------------------------------------------------------
#: Live copies of the widest feature map at the peak (block input, norm and conv outputs, the
#: group-padded copies of the temporal convs, allocator slack), fitted to the peak RSS of fp32 CPU
#: runs of ivvae_z16_dim64 at 17x256x256 (benchmarks/bench_streaming.py: one pass 6.3 GiB,
#: chunks of one group 3.0 GiB).
_ACTIVATION_COPIES = 11.5
#: Extra full-resolution frames that streaming holds: each temporal conv's cached last frame
#: and the per-chunk allocations.
_STREAM_EXTRA_FRAMES = 4.5


def estimate_peak_memory_bytes(
    model,
    num_frames: int,
    height: int,
    width: int,
    chunk_groups: int | None = None,
    tile: Tile = None,
    dtype: str | torch.dtype = "fp32",
    *,
    streamed_io: bool = False,
) -> int:
    """A rough estimate of the peak memory of reconstructing a ``num_frames x height x width`` video.

    Weights, plus the widest feature map (full resolution, at the first encoder and last decoder
    stages: ``branches x base_channels`` channels) over the frames of one chunk and the pixels of
    one tile, times a calibrated number of live copies, plus the input/output buffers: of the
    whole video, or with ``streamed_io`` (frames read and written a chunk at a time:
    :func:`reconstruct_pieces`, with ``chunk_groups``) of one chunk. Fitted on CPU fp32 runs (see
    ``benchmarks/``); good to a factor of about 1.5, meant to catch runs that cannot fit, not to budget.
    """
    _check_model(model)
    for name, value in (("num_frames", num_frames), ("height", height), ("width", width)):
        if not is_whole_number(value) or value < 1:
            raise ValueError(f"{name}={value!r}: expected a whole number >= 1 (the video's size)")
    # the tile's sizes are checked where it is used (naming the latents file it came from): here only its form
    compute, chunk_groups, tile = _dtype(dtype), _check_chunk_groups(chunk_groups), None if tile is None else _tile_pair(tile)
    t_c, s = model.temporal_compression, model.spatial_compression
    frames = streaming.padded_length(num_frames, t_c)
    padded_h, padded_w = -(-height // s) * s, -(-width // s) * s
    if chunk_groups is None:
        live_frames = frames
    else:
        live_frames = min(frames, chunk_groups * t_c) + _STREAM_EXTRA_FRAMES
    tile_h, tile_w = (padded_h, padded_w) if tile is None else (min(padded_h, tile[0]), min(padded_w, tile[0]))
    spec = model.spec
    full_width = spec.base_channels * spec.num_branches
    element = 2 if compute == torch.bfloat16 else 4
    activations = _ACTIVATION_COPIES * full_width * live_frames * tile_h * tile_w * element
    parameters = sum(p.numel() for p in model.parameters())
    weights = parameters * 4 + (parameters * 2 if compute == torch.bfloat16 else 0)  # + autocast's bf16 copies
    # uint8 in + float input, padded input, decoded chunks + their concatenation, uint8 out;
    # tiles add the blended output accumulator.
    buffered_frames = live_frames if streamed_io and chunk_groups is not None else frames
    video_float = 3 * buffered_frames * padded_h * padded_w * 4
    buffers = video_float * (5 + (2 if tile is not None else 0))
    caches = 0.0
    if streamed_io and chunk_groups is not None:
        # encoder and decoder stream together, and every tile keeps its layer caches between chunks;
        # the fitted activation term already holds one coder's caches for one tile
        encoder_bytes, decoder_bytes = stream_state_bytes_per_pixel(model)
        covered = _tile_count(padded_h, padded_w, tile) * tile_h * tile_w
        caches = (encoder_bytes + decoder_bytes) * covered - max(encoder_bytes, decoder_bytes) * tile_h * tile_w
    return int(weights + activations + buffers + caches)


_state_bytes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def stream_state_bytes_per_pixel(model) -> tuple[float, float]:
    """Bytes the layer caches of a streamed encoder and decoder keep between chunks, per pixel of
    the frame (fp32), measured once per model on a tiny input (each cache is a frame or two of a
    layer's input, so the size scales with the frame's area)."""
    if model in _state_bytes:
        return _state_bytes[model]
    s, t_c = model.spatial_compression, model.temporal_compression
    weights = next(model.parameters())

    def held_bytes(module: torch.nn.Module, channels: int, side: int, group: int) -> int:
        """Caches after the first frame alone, then one group (of frames, or one latent frame)."""
        with torch.no_grad(), stream(module):
            for frames in (1, group):
                module(torch.zeros(1, channels, frames, side, side, device=weights.device, dtype=weights.dtype))
            return sum(t.numel() * 4 for state in stream_states(module) for t in state if isinstance(t, torch.Tensor))

    pixels = (2 * s) ** 2  # a 16x16 frame: 2x2 latent pixels
    sizes = (held_bytes(model.encoder, model.spec.in_channels, 2 * s, t_c) / pixels,
             held_bytes(model.decoder, model.spec.latent_channels, 2, 1) / pixels)
    _state_bytes[model] = sizes
    return _state_bytes[model]


def available_memory_bytes(device: str | torch.device = "cpu") -> int:
    """Free memory of ``device``: available RAM (psutil) on CPU, free GPU memory on CUDA."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_memory(
    model,
    num_frames: int,
    height: int,
    width: int,
    chunk_groups: int | None = None,
    tile: Tile = None,
    dtype: str | torch.dtype = "fp32",
    fraction: float = MEMORY_FRACTION,
    *,
    streamed_io: bool = False,
) -> int:
    """Raise :class:`MemoryRiskError` if the estimate exceeds ``fraction`` of the available memory
    (``streamed_io``: see :func:`estimate_peak_memory_bytes`).

    Returns the estimate (bytes). The message suggests ``--chunk-groups 1`` and/or ``--tile``.
    """
    if not isinstance(fraction, numbers.Real) or isinstance(fraction, bool) or not 0 < fraction < math.inf:
        raise ValueError(f"fraction={fraction!r}: expected a number > 0 (the share of the available memory a run may use, e.g. 0.7)")
    estimate = estimate_peak_memory_bytes(model, num_frames, height, width, chunk_groups, tile, dtype, streamed_io=streamed_io)
    available = available_memory_bytes(_model_device(model))
    if estimate > fraction * available:
        hints = []
        if chunk_groups is None or chunk_groups > 1:
            hints.append("--chunk-groups 1")
        if tile is None or tile[0] > 256:
            hints.append("--tile 256")
        if not hints:
            hints.append("fewer frames (--frames) or a smaller size (--resize)")
        raise MemoryRiskError(
            f"a {num_frames}x{height}x{width} video needs about {_gib(estimate)}, more than {fraction:.0%} of the "
            f"{_gib(available)} available; try {' and/or '.join(hints)} (or --force to run anyway)"
        )
    return estimate
