"""Commands for a diffusion model's latents: ``latent-stats`` (normalisation) and ``encode-dataset``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._files import refuse_nonempty_folder
from .argtypes import nonnegative_int, part, positive_int, size
from .options import add_model_option, chunk_groups_or_none, execution_text, tile_option
from .registry import register
from .support import (
    check_data_sources,
    check_output_folder,
    describe_loaded,
    refuse_existing,
    refuse_writing_over_model,
    resolve_device,
)


def _add_clip_selection(parser: argparse.ArgumentParser, title: str, data_help: str, crop_default, clips_default: int) -> None:
    """The options choosing clips from videos, as `ivvae eval --protocol custom --small-frames native`."""
    data = parser.add_argument_group(title)
    data.add_argument("--data", required=True, action="append", metavar="SRC",
                      help=data_help + "a folder of videos (recursive), a manifest (.csv with a 'path' column, .jsonl, .txt), "
                      "a video file, or sample:NAME (bundled sample: bikes, bigbuckbunny, carphone); repeat to combine several")
    data.add_argument("--frames", type=positive_int, default=17, metavar="T",
                      help="frames per clip (default %(default)s; 1 also takes the images of folders, as one-frame videos)")
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
    from ..eval.runner import DatasetSpec

    return DatasetSpec(args.data[0] if len(args.data) == 1 else list(args.data), protocol="custom", num_videos=args.num_videos,
                       seed=args.seed, frames=args.frames, size=args.size, crop=args.crop, start_fraction=args.start_fraction,
                       clips_per_video=args.clips_per_video, small_frames="native")


def _stored_dtype(folder: Path) -> str:
    """``float32``, ``float16`` or ``bfloat16``: the dtype of a model folder's floating-point weights
    (``float32`` when they are mixed, of another type or not in safetensors)."""
    from ..hub import WEIGHTS_NAMES

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
    refuse_writing_over_model(target, model_folder, "--write-model")
    check_output_folder(target)
    refuse_nonempty_folder(target, overwrite)


# --------------------------------------------------------------------------------------------
# latent-stats
# --------------------------------------------------------------------------------------------
def _latent_stats_arguments(parser: argparse.ArgumentParser) -> None:
    from ..hub import DEFAULT_MODEL

    add_model_option(parser, DEFAULT_MODEL)
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


def _latent_stats_run(args: argparse.Namespace) -> int:
    import itertools

    from ..hub import load_model, resolve_model_path
    from ..io import resolve_source

    prog = "ivvae latent-stats"
    if args.json is not None:
        if args.json.suffix.lower() != ".json":  # a swapped or mistyped argument would replace a video or a config
            raise ValueError(f"--json '{args.json}': the statistics are written as JSON; name the file *.json")
        refuse_writing_over_model(args.json, args.model, "--json")
        refuse_existing([args.json], args.overwrite, inputs=[Path(resolve_source(source)) for source in args.data])
    model_folder = resolve_model_path(args.model)
    if args.write_model is not None:
        _check_write_model(args.write_model, model_folder, args.overwrite)
    check_data_sources(args.data)

    from ..latent_stats import estimate_latent_statistics, with_latent_statistics, write_statistics_json

    spec = _clip_spec(args)
    chunk_groups = chunk_groups_or_none(args.chunk_groups)
    model = load_model(args.model, device=resolve_device(args.device))
    before = {"scaling_factor": float(model.config.scaling_factor), "shift_factor": float(model.config.shift_factor)}
    crop = spec.crop_size
    print(f"model   {describe_loaded(model)}: {execution_text(chunk_groups, None, 'fp32')}")
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
        write_statistics_json(report, args.json)  # whole or not at all
        print(f"wrote   {args.json}")
    if args.write_model is not None:
        from ..train.checkpoint import export_model

        dtype = _stored_dtype(model_folder)
        export_model(with_latent_statistics(model, stats), args.write_model, dtype)
        write_statistics_json(report, args.write_model / "latent_stats.json")
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
    from ..hub import DEFAULT_MODEL
    from ..latent_dataset import STORAGE_DTYPES

    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR",
                        help="folder to write (shards, clips.jsonl, dataset.json); a folder made with the same settings is "
                        "resumed")
    add_model_option(parser, DEFAULT_MODEL)
    _add_clip_selection(parser, "data", "the videos to encode: ", crop_default=None, clips_default=1)
    output = parser.add_argument_group("output")
    output.add_argument("--normalize", action="store_true",
                        help="store scaling_factor * (z - shift_factor), the latents a diffusion model trains on "
                        "(default: raw latents; LatentDataset(..., normalize=True) can normalise them when read); a fresh "
                        "training export has factors 1 and 0 until `ivvae latent-stats --write-model` sets them")
    output.add_argument("--storage-dtype", choices=list(STORAGE_DTYPES), default="float32",
                        help="dtype of the stored latents: float32 keeps them bit for bit, float16/bfloat16 halve the size "
                        "(default %(default)s)")
    output.add_argument("--shard-size", type=positive_int, default=256, metavar="N",
                        help="clips per shard file (a video's clips always share one; default %(default)s)")
    output.add_argument("--overwrite", action="store_true",
                        help="replace the latent data set in OUT_DIR (default: resume it if its settings match, else refuse); "
                        "a non-empty folder holding no latent data set is refused even so")
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
                           help="overlap of neighbouring tiles in pixels (default 64, or a quarter of a tile smaller than 256)")
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
    tile = tile_option(args)

    from ..hub import load_model
    from ..latent_dataset import encode_dataset
    from ..latent_stats import has_identity_normalization, identity_normalization_warning

    spec = _clip_spec(args)
    model = load_model(args.model, device=resolve_device(args.device))
    chunk_groups = chunk_groups_or_none(args.chunk_groups)
    crop = spec.crop_size
    print(f"model   {describe_loaded(model)}: {execution_text(chunk_groups, tile, args.dtype)}, batches of {args.batch_size}")
    identity = args.normalize and has_identity_normalization(model)
    if identity:
        print(f"{prog}: warning: {identity_normalization_warning(args.model)}", file=sys.stderr)
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
    if report["smaller_than_crop"]:
        print(f"note    {report['smaller_than_crop']} video(s) smaller than the crop kept their size: batch with "
              "LatentDataset.same_shape_batches, or encode with --size")
    kind = "raw (identity normalisation)" if identity else "normalised" if args.normalize else "raw"
    print(f"wrote   {args.out_dir}: {report['total_clips']} clip(s) from {report['total_videos']} video(s) in all, "
          f"{kind} latents, {args.storage_dtype}")
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
