"""Options several commands share (model, execution, input selection, output) and how their values
are read."""

from __future__ import annotations

import argparse

from .argtypes import nonnegative_int, positive_float, positive_int, size


def _crf(text: str) -> int:
    value = nonnegative_int(text)
    if value > 51:
        raise argparse.ArgumentTypeError(f"must be in [0, 51], got {value}")
    return value


def add_model_option(parser: argparse.ArgumentParser, default: str | None) -> None:
    """``--model``: a model folder or bundled name (``default=None``: the one recorded in a latents file)."""
    from ..hub import DEFAULT_MODEL

    shown = default if default is not None else "the model recorded in the latents file, else " + DEFAULT_MODEL
    parser.add_argument(
        "--model",
        default=default,
        metavar="DIR_OR_NAME",
        help=f"a model folder (config.json + diffusion_pytorch_model.safetensors, from `ivvae convert` or training) "
        f"or the name of a bundled model (default: {shown})",
    )


def add_execution_options(parser: argparse.ArgumentParser, from_metadata: bool = False) -> None:
    """How the model runs: streaming, tiling, precision, device, threads, the memory check, progress."""
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
                       help="overlap of neighbouring tiles in pixels, blended linearly (default 64, or a quarter of a tile smaller "
                       "than 256); SIZE and PX are multiples of 8")
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


def add_input_selection(parser: argparse.ArgumentParser) -> None:
    """Which frames of the input video, at which size."""
    group = parser.add_argument_group("input selection")
    group.add_argument("--start", type=nonnegative_int, default=0, metavar="S", help="first frame to read (default 0)")
    group.add_argument("--frames", type=positive_int, default=None, metavar="N", help="number of frames to read (default: to the end)")
    group.add_argument(
        "--stride", type=positive_int, default=1, metavar="K", help="read every K-th frame; the output fps is divided by K (default 1)"
    )
    group.add_argument("--resize", type=size, default=None, metavar="N|WxH",
                       help="resize frames: N = short side to N pixels keeping the aspect ratio, WxH = exact size")
    group.add_argument("--crop", type=size, default=None, metavar="N|WxH", help="centre crop after resizing: N = NxN, WxH = that size")


def add_fps_option(parser: argparse.ArgumentParser, output: str, default: str) -> None:
    """``--fps F``: the frame rate of what a command writes (``output`` names it), where the source's is wrong or varies."""
    parser.add_argument("--fps", type=positive_float, default=None, metavar="F",
                        help=f"frame rate of {output}, a positive number (default: {default})")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--overwrite`` and the H.264 quality of written videos."""
    group = parser.add_argument_group("output")
    group.add_argument("--overwrite", action="store_true", help="replace output files that exist (refused otherwise)")
    group.add_argument("--crf", type=_crf, default=18, metavar="Q",
                       help="H.264 quality of written videos: 0 (lossless) to 51, lower is better (default %(default)s)")


def chunk_groups_or_none(value: int | None) -> int | None:
    """``--chunk-groups`` as the pipeline takes it: 0 (or absent) means one pass, ``None``."""
    return None if not value else value


def tile_option(args: argparse.Namespace, default: list | None = None) -> tuple[int, int] | None:
    """``(size, overlap)`` from ``--tile`` / ``--tile-overlap`` (``default``: the tiling recorded in a latents file);
    ``None`` for no tiling."""
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
    if size < 16:
        raise ValueError(f"--tile {size}: tiles of at least 16 pixels (multiples of 8)")
    overlap = default_tile_overlap(size) if args.tile_overlap is None else args.tile_overlap
    if overlap >= size:
        raise ValueError(f"--tile {size} --tile-overlap {overlap}: the overlap must be smaller than the tile "
                         f"(e.g. --tile-overlap {default_tile_overlap(size)})")
    return (size, overlap)


def default_tile_overlap(size: int) -> int:
    """64 pixels, or a quarter of a smaller tile (in whole latent pixels: multiples of 8)."""
    return min(64, size // 4 // 8 * 8)


def execution_text(chunk_groups: int | None, tile, dtype: str) -> str:
    """How the model runs, for the ``model`` line a command prints."""
    parts = ["one pass" if chunk_groups is None else f"chunks of {chunk_groups} group{'s' if chunk_groups > 1 else ''}"]
    if tile:
        parts.append(f"tiles {tile[0]}px (overlap {tile[1]})")
    parts.append(dtype)
    return ", ".join(parts)
