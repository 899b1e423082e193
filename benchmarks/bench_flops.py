"""Where a reconstruction's arithmetic goes: FLOPs of encode + decode per block, and the time.

Counts floating-point operations with ``torch.utils.flop_counter`` (a multiply-add is 2 FLOPs) for
one clip through a model (a folder, a bundled name or a preset at random weights), per encoder and
decoder block, then times the same reconstruction (fp32, with the CPU allocator tuned as the CLI
does) and reports the achieved GFLOP/s, which against the machine's peak says whether a faster
kernel or less arithmetic is the way to a faster model.

    python benchmarks/bench_flops.py --model ivvae-small-z16 --shape 1 3 17 256 256 --threads 2 \\
        --out benchmarks/results/flops_small_z16.json
    python benchmarks/bench_flops.py --model image-vae=runs/small_z16/1d_image_vae_gpu/export --shape 1 3 1 256 256
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from _results import write_results
from torch.utils.flop_counter import FlopCounterMode

from ivvae.hub import load_model
from ivvae.models import PRESETS, build_model
from ivvae.runtime import tune_cpu_allocator


def reconstruct(model, x: torch.Tensor) -> torch.Tensor:
    return model.decode(model.encode(x).latent_dist.mode()).sample


def flops_by_block(model, x: torch.Tensor) -> tuple[int, dict[str, int]]:
    """Total FLOPs, and FLOPs of each encoder/decoder block (``Encoder.blocks.3``, ...)."""
    with torch.no_grad(), FlopCounterMode(display=False, depth=3) as counter:
        reconstruct(model, x)
    counts = counter.get_flop_counts()
    blocks = {name: sum(ops.values()) for name, ops in counts.items() if name.count(".") == 2 and ".blocks." in name}
    return counter.get_total_flops(), blocks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ivvae-small-z16", help="model folder, bundled name or preset (default %(default)s)")
    parser.add_argument("--shape", type=int, nargs=5, default=[1, 3, 17, 256, 256], metavar=("B", "C", "T", "H", "W"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="build the model's architecture with a config change, at random weights, e.g. "
                        "--set 'channel_multipliers=[1,2,4,8]' (what would a wider deep stage cost?)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2, help="timed reconstructions after one warm-up (default %(default)s)")
    parser.add_argument("--top", type=int, default=10, help="blocks to print, largest first (default %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    tune_cpu_allocator()
    label, _, source = args.model.rpartition("=")
    source = source or args.model
    if source in PRESETS and not Path(source).exists():
        torch.manual_seed(0)
        model = build_model(source).eval()
    else:
        model = load_model(source).float()
    if args.set:
        config = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
        for item in args.set:
            key, _, value = item.partition("=")
            config[key] = json.loads(value)
        torch.manual_seed(0)
        model = type(model).from_config(config).eval()
        label = label or f"{source} with {', '.join(args.set)}"
    x = torch.rand(args.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    total, blocks = flops_by_block(model, x)
    with torch.no_grad():
        reconstruct(model, x)  # warm-up: allocator, kernel selection
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            reconstruct(model, x)
            times.append(time.perf_counter() - started)
    seconds = min(times)
    top = sorted(blocks.items(), key=lambda item: -item[1])[: args.top]
    result = {
        "model": label or source,
        "shape": args.shape,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config_changes": args.set,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "gflop": round(total / 1e9, 2),
        "seconds": round(seconds, 3),
        "gflop_per_s": round(total / 1e9 / seconds, 1),
        "blocks_gflop": {name: round(f / 1e9, 2) for name, f in sorted(blocks.items())},
    }
    print(f"{result['model']} on {tuple(args.shape)}: {result['gflop']:.1f} GFLOP (encode + decode), {seconds:.2f} s "
          f"on {result['threads']} thread(s) = {result['gflop_per_s']:.0f} GFLOP/s")
    for name, f in top:
        print(f"  {name:<22} {f / 1e9:8.1f} GFLOP ({100 * f / total:4.1f}%)")
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
