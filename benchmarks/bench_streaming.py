"""One pass vs streaming (chunk by chunk): encode+decode time and peak memory, on CPU.

Cases (all on a randomly initialised ``ivvae_z16_dim64``, fp32, batch 1, no grad):

* ``one_pass``   : the whole clip at once (``chunk_groups=None``), T frames;
* ``stream_n1``  : chunks of one frame group (4 frames, 1 latent frame) after the first frame,
  the authors' schedule (``chunk_groups=1``), T frames;
* ``stream_n1_long``: the same on a clip of T_long frames, to check that streaming memory does not
  grow with the video's length.

Method. Each case runs in a fresh Python subprocess (so no case inherits another's allocator
state or high-water mark). The child builds the model and the random input clip, then resets the
kernel's peak-RSS counter (``echo 5 > /proc/self/clear_refs`` resets ``VmHWM`` to the current
RSS; where that is not allowed it falls back to ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
as the baseline), runs encode (latent mean) + decode once, and reads ``VmHWM``. Peak memory =
peak RSS during the run minus the RSS after loading the model and input: the run's working
memory (activations, padded copies, the decoded output). The first run is timed (it includes
oneDNN's one-off primitive creation, negligible at these sizes); with ``--repeats R`` the timing
is the median of R runs. Ratios are taken against the one-pass case of the same invocation.

Usage::

    python benchmarks/bench_streaming.py --out benchmarks/results/streaming.json   # full, minutes
    python benchmarks/bench_streaming.py --quick                                   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SPEEDUP = 1.5  # one pass at least this much faster than N=1 streaming
TARGET_MEMORY_GROWTH = 1.2  # streaming peak at T_long within this factor of T


# --------------------------------------------------------------------------------------------
# child: one case
# --------------------------------------------------------------------------------------------
def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def run_case(case: dict) -> dict:
    import gc

    import torch

    from ivvae.models import build_model

    if case.get("tune_malloc", True):
        from ivvae.runtime import tune_cpu_allocator

        tune_cpu_allocator()
    torch.set_num_threads(case["threads"])
    torch.manual_seed(0)
    device = torch.device(case.get("device", "cpu"))
    cuda = device.type == "cuda"
    model = build_model(case["preset"]).eval().to(device)
    frames, size, chunk_groups = case["frames"], case["size"], case["chunk_groups"]
    x = (torch.rand(1, 3, frames, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)
    gc.collect()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    def once() -> tuple[float, float]:
        with torch.inference_mode():
            sync()
            t0 = time.perf_counter()
            z = model.encode(x, chunk_groups=chunk_groups).latent_dist.mode()
            sync()
            t1 = time.perf_counter()
            y = model.decode(z, chunk_groups=chunk_groups, num_frames=frames).sample
            sync()
            t2 = time.perf_counter()
        assert y.shape == x.shape, (y.shape, x.shape)
        return t1 - t0, t2 - t1

    if cuda:  # GPU memory: the allocator's peak above what model and input hold
        torch.cuda.reset_peak_memory_stats(device)
        reset, baseline = False, torch.cuda.memory_allocated(device)
        times = [once()]
        peak = torch.cuda.max_memory_allocated(device)
        method = "torch.cuda.max_memory_allocated minus memory_allocated after loading"
    else:
        reset = _reset_peak()
        baseline = _status_kib("VmRSS") * 1024 if reset else _maxrss_bytes()
        times = [once()]
        peak = _status_kib("VmHWM") * 1024 if reset else _maxrss_bytes()
        method = "VmHWM after clear_refs reset" if reset else "ru_maxrss minus ru_maxrss after loading"
    for _ in range(case["repeats"] - 1):
        times.append(once())
    encode = statistics.median(t[0] for t in times)
    decode = statistics.median(t[1] for t in times)
    return {
        **case,
        "encode_s": round(encode, 3),
        "decode_s": round(decode, 3),
        "total_s": round(encode + decode, 3),
        "baseline_rss_mib": round(baseline / 2**20, 1),
        "peak_rss_mib": round(peak / 2**20, 1),
        "peak_memory_mib": round((peak - baseline) / 2**20, 1),
        "memory_method": method,
    }


def _spawn(case: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(case)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"case {case['name']} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------------
def summarize(args: argparse.Namespace, results: dict[str, dict]) -> dict:
    """The JSON report: config, environment, method, per-case results, ratios vs targets."""
    import torch

    ratios: dict[str, float] = {}
    targets: dict[str, object] = {
        "one_pass_speedup_vs_stream_n1": f">= {TARGET_SPEEDUP}",
        "stream_n1_memory_long_vs_short": f"<= {TARGET_MEMORY_GROWTH}",
    }
    one, stream, long = (results.get(k) for k in ("one_pass", "stream_n1", "stream_n1_long"))
    if one and stream:
        ratios["one_pass_speedup_vs_stream_n1"] = round(stream["total_s"] / one["total_s"], 3)
        ratios["stream_n1_memory_vs_one_pass"] = round(stream["peak_memory_mib"] / one["peak_memory_mib"], 3)
        targets["speedup_met"] = ratios["one_pass_speedup_vs_stream_n1"] >= TARGET_SPEEDUP
    if stream and long:
        ratios["stream_n1_memory_long_vs_short"] = round(long["peak_memory_mib"] / stream["peak_memory_mib"], 3)
        targets["memory_growth_met"] = ratios["stream_n1_memory_long_vs_short"] <= TARGET_MEMORY_GROWTH
    return {
        "config": {"preset": args.preset, "dtype": "fp32", "device": args.device, "frames": args.frames, "long_frames": args.long_frames,
                   "size": args.size, "threads": args.threads, "repeats": args.repeats, "quick": args.quick,
                   "malloc_tuning": not args.no_malloc_tuning},
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
                        "cpu_count": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
        "method": "each case in a fresh subprocess; peak memory = peak RSS during encode+decode minus RSS after loading model and input "
                  "(VmHWM reset via /proc/self/clear_refs, else ru_maxrss); time = median over repeats, first run included",
        "complete": len(results) == 3,
        "cases": results,
        "ratios": ratios,
        "targets": targets,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("Usage::")[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="ivvae_z16_dim64", help="architecture (random weights); default %(default)s")
    parser.add_argument("--frames", type=int, default=17, help="clip length T (default %(default)s)")
    parser.add_argument("--long-frames", type=int, default=65, help="long clip T_long for the streaming memory check (default %(default)s)")
    parser.add_argument("--size", type=int, default=256, help="frame height = width (default %(default)s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores, %(default)s)")
    parser.add_argument(
        "--device", default="cpu", help="cpu (default) or cuda: on CUDA, time is synchronised and memory is the allocator's peak"
    )
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per case, median reported (default %(default)s)")
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="leave glibc malloc as is (default: ivvae.runtime.tune_cpu_allocator(), as the ivvae command does)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 32x32 frames, T=5 and T_long=9")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here (e.g. benchmarks/results/streaming.json)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(run_case(json.loads(args.child))))
        return 0
    if args.quick:
        args.size, args.frames, args.long_frames = 32, 5, 9

    common = {"preset": args.preset, "device": args.device, "size": args.size, "threads": args.threads, "repeats": args.repeats,
              "tune_malloc": not args.no_malloc_tuning}
    cases = [
        dict(name="one_pass", frames=args.frames, chunk_groups=None, **common),
        dict(name="stream_n1", frames=args.frames, chunk_groups=1, **common),
        dict(name="stream_n1_long", frames=args.long_frames, chunk_groups=1, **common),
    ]
    results: dict[str, dict] = {}
    for case in cases:
        print(
            f"running {case['name']}: {case['frames']}x{case['size']}x{case['size']}, chunk_groups={case['chunk_groups']} ...",
            file=sys.stderr,
            flush=True,
        )
        results[case["name"]] = r = _spawn(case)
        print(
            f"  encode {r['encode_s']:.2f}s, decode {r['decode_s']:.2f}s, peak memory {r['peak_memory_mib']:.0f} MiB",
            file=sys.stderr,
            flush=True,
        )
        text = json.dumps(summarize(args, results), indent=2)
        if args.out:  # after every case, so a long run leaves partial results
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
    print(text)
    if args.out:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
