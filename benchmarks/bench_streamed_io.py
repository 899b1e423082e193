"""End to end: does `ivvae reconstruct` hold a long video in memory?

`ivvae reconstruct IN OUT` with ``--chunk-groups N`` reads the input a chunk at a time
(``ivvae.io.iter_video``), codes it chunk by chunk (``IVVAE.encode_stream`` / ``decode_stream``)
and writes each chunk's frames as they come (``ivvae.io.VideoWriter``), so its peak memory should
not grow with the video's length. One pass (``--chunk-groups 0``) holds the whole video and its
activations, for contrast.

Method. A synthetic moving-sine video is written at two lengths (``--frames`` short and long, same
size); each (length, mode) runs the real command in a fresh interpreter, and the parent reads the
child's peak resident set size with ``os.wait4`` (per child, so runs cannot see each other's
peaks). Time is the child's wall time (imports, model load, reading, coding, writing). The result is
the ratio long / short of peak memory for each mode: about 1 for the streamed path, growing with
the length for one pass. CPU RSS, the bundled model by default (``--model DIR`` for another).

Usage::

    python benchmarks/bench_streamed_io.py                       # 33 vs 129 frames at 128x128 (~2 minutes on 2 cores)
    python benchmarks/bench_streamed_io.py --quick               # 9 vs 17 frames at 64x64 (seconds)
    python benchmarks/bench_streamed_io.py --frames 33 257 --size 256 --out benchmarks/results/streamed_io_256.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402

from ivvae.io import write_video  # noqa: E402

MODES = {"streamed": "1", "one_pass": "0"}  # --chunk-groups


def sine_video(frames: int, size: int) -> torch.Tensor:
    """uint8 (T, H, W, 3): a colour sine pattern moving a little every frame."""
    t = torch.arange(frames).view(frames, 1, 1, 1)
    y = torch.arange(size).view(1, size, 1, 1)
    x = torch.arange(size).view(1, 1, size, 1)
    c = torch.arange(3).view(1, 1, 1, 3)
    return (127 + 100 * torch.sin(0.11 * x + 0.07 * y + 0.3 * t + c)).to(torch.uint8)


def run_reconstruct(video: Path, out: Path, model: str, chunk_groups: str, threads: int) -> dict:
    """One `ivvae reconstruct` in a fresh interpreter: its wall time and peak RSS."""
    cmd = [sys.executable, "-m", "ivvae.cli", "reconstruct", str(video), str(out), "--model", model,
           "--chunk-groups", chunk_groups, "--threads", str(threads), "--no-progress", "--force", "--overwrite"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    error = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {error.strip().splitlines()[-1] if error.strip() else status}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}  # ru_maxrss is KiB on Linux


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs=2, default=[33, 129], metavar=("SHORT", "LONG"), help="the two lengths")
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels (default 128)")
    parser.add_argument("--model", default="ivvae-small-z16", help="model folder or bundled name (default ivvae-small-z16)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES), help="which paths to run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/streamed_io.json"))
    parser.add_argument("--quick", action="store_true", help="smoke run: 9 vs 17 frames at 64x64, no JSON unless --out is given")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.size = [9, 17], 64
        args.out = None if "--out" not in (argv if argv is not None else sys.argv[1:]) else args.out

    runs: dict[str, dict[int, dict]] = {mode: {} for mode in args.modes}
    with tempfile.TemporaryDirectory() as tmp:
        for frames in args.frames:
            video = Path(tmp) / f"sine_{frames}.mp4"
            write_video(video, sine_video(frames, args.size), 25, crf=10)
            for mode in args.modes:
                runs[mode][frames] = run_reconstruct(video, Path(tmp) / f"out_{mode}_{frames}.mp4", args.model, MODES[mode], args.threads)
                print(f"{mode:9s} {frames:4d} frames: {runs[mode][frames]}")
    short, long = args.frames
    result = {
        "benchmark": "streamed_io",
        "what": "peak RSS and wall time of `ivvae reconstruct` (fresh interpreter each) at two video lengths",
        "model": args.model,
        "size": args.size,
        "frames": args.frames,
        "threads": args.threads,
        "runs": {mode: {str(f): r for f, r in by_length.items()} for mode, by_length in runs.items()},
        "memory_ratio_long_over_short": {mode: round(r[long]["peak_rss_mib"] / r[short]["peak_rss_mib"], 3) for mode, r in runs.items()},
        "seconds_per_frame": {mode: {str(f): round(r[f]["seconds"] / f, 3) for f in r} for mode, r in runs.items()},
    }
    print("memory long/short:", result["memory_ratio_long_over_short"])
    write_results(args.out, result)
    return result


if __name__ == "__main__":
    main()
