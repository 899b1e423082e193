"""Training-step throughput of a config's model against batch size (no data loading).

Answers, in a minute of a lent GPU, the question a time-limited run needs first: does a larger
batch cost proportionally more time (the device is busy: keep the batch), or almost nothing (the
step is bound by kernel launches and Python: raise the batch)? For each batch size it runs
forward (encode, posterior sample, decode), L1 + KL loss, backward and an AdamW step on random
clips of one bucket's shape, with the config's precision and memory format, and reports seconds
per step, samples and megapixels per second, and peak device memory. Ratios are against the
smallest batch of the same run.

    python benchmarks/bench_train_step.py configs/small_z16/2_ivvae_video_gpu.yaml --bucket 0 \\
        --batch-sizes 8 16 32 --random-init --device cuda --out benchmarks/results/train_step_h200.json
    python benchmarks/bench_train_step.py configs/small_z16/1d_image_vae_gpu.yaml --random-init --device cuda \\
        --batch-sizes 16 48 --memory-format both --profile 15 --out benchmarks/results/train_step_image_h200.json
    python benchmarks/bench_train_step.py configs/small_z16/2_ivvae_video_gpu.yaml --quick   # CPU smoke test

``--baseline`` also times each row with layers as they were before session 17 and records the speed-up
of the current ones: ``fp32-norm`` (RMSNorm's fp32 gamma promoted bf16 features to fp32, so every conv
cast its input back, forward and backward), ``stacked-time-conv`` (3-D convs ran as one 2-D conv over
the time taps stacked on channels), ``session16`` (both).

The config's ``model.freeze`` applies (e.g. stage 3f-decoder's frozen encoder); ``--vs-unfrozen`` also times
each row with nothing frozen and records what freezing saves:

    python benchmarks/bench_train_step.py configs/small_z16/3f_decoder_continue_cpu.yaml --random-init \
        --batch-sizes 1 --warmup 2 --steps 5 --vs-unfrozen --threads 2 --out benchmarks/results/train_step_frozen_encoder_cpu.json
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time
from pathlib import Path

import torch
from _results import write_results

from ivvae.layers.conv import TimeConv3d, batch_to_frames
from ivvae.layers.norm import RMSNorm
from ivvae.runtime import tune_cpu_allocator
from ivvae.train.build import build_model_from_config, freeze_submodules
from ivvae.train.config import InitConfig, load_config
from ivvae.train.trainer import _Autoencoder


def top_ops(step, device: torch.device, top: int) -> list[dict]:
    """The ``top`` operators of one profiled step by self time on the device (CPU time on a CPU)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, attr), reverse=True)
    total = sum(getattr(e, attr) for e in events) or 1.0
    return [{"op": e.key, "calls": e.count, "self_ms": round(getattr(e, attr) / 1e3, 3),
             "share": round(getattr(e, attr) / total, 4)} for e in events[:top]]


def _fp32_promoting_norm(self: RMSNorm, x: torch.Tensor) -> torch.Tensor:
    """RMSNorm as before session 17: features times the fp32 gamma, so bf16 features come out fp32."""
    branches = x.unflatten(1, (self.num_branches, self.width))
    inv_norm = branches.square().sum(2, keepdim=True).clamp_min(1e-24).rsqrt()
    return (branches * (inv_norm * self.scale)).flatten(1, 2) * self.gamma


def _stacked_time_conv(self: TimeConv3d, x: torch.Tensor) -> torch.Tensor:
    """TimeConv3d as before session 17: the time taps stacked on channels, one 2-D conv."""
    out_channels, in_channels, taps, kh, kw = self.weight.shape
    stacked = x.unfold(2, taps, self.stride[0]).permute(0, 2, 5, 1, 3, 4).flatten(0, 1).flatten(1, 2)  # (B T') (taps C) H W
    weight = self.weight.transpose(1, 2).reshape(out_channels, taps * in_channels, kh, kw)
    out = torch.nn.functional.conv2d(stacked, weight, self.bias, stride=self.stride[1:], padding=self.padding[1:])
    return batch_to_frames(out, x.shape[0])


BASELINES = {"fp32-norm": [(RMSNorm, _fp32_promoting_norm)], "stacked-time-conv": [(TimeConv3d, _stacked_time_conv)]}
BASELINES["session16"] = BASELINES["fp32-norm"] + BASELINES["stacked-time-conv"]


@contextlib.contextmanager
def baseline_layers(name: str):
    """The layers of baseline ``name`` in place of the current ones (their classes patched) while inside."""
    saved = [(cls, cls.forward) for cls, _ in BASELINES[name]]
    for cls, forward in BASELINES[name]:
        cls.forward = forward
    try:
        yield
    finally:
        for cls, forward in saved:
            cls.forward = forward


def time_steps(model: torch.nn.Module, shape: tuple[int, ...], device: torch.device, precision: str, channels_last: bool,
               warmup: int, steps: int, profile_top: int = 0) -> dict:
    ae = _Autoencoder(model).to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)).mul_(2).sub_(1).to(device)
    if channels_last and x.dim() == 5:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step() -> None:
        with autocast:
            rec, mean, logvar = ae(x)
            kl = 0.5 * (mean.float().pow(2) + logvar.float().exp() - 1 - logvar.float()).mean()
            loss = (rec.float() - x).abs().mean() + 1e-6 * kl
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = (time.perf_counter() - started) / steps
    batch, _, frames, height, width = shape
    row = {"batch_size": batch, "shape": list(shape), "channels_last": channels_last, "s_per_step": round(seconds, 5),
           "samples_per_s": round(batch / seconds, 3), "mpix_per_s": round(batch * frames * height * width / seconds / 1e6, 3),
           "peak_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None}
    if profile_top:
        row["top_ops"] = top_ops(step, device, profile_top)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="training config: its model, precision, memory format and buckets are used")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--bucket", type=int, default=0, help="which data.buckets entry gives the clip shape (default %(default)s)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default: the bucket's, x2 and x4")
    parser.add_argument(
        "--random-init", action="store_true", help="skip model.init (no run folders needed; needs model.class/config or a preset)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per batch size (default %(default)s)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per batch size (default %(default)s)")
    parser.add_argument("--memory-format", choices=["config", "channels_last", "contiguous", "both"], default="config",
                        help="the config's (model.channels_last), one of the two, or both in turn (default %(default)s)")
    parser.add_argument("--profile", type=int, default=0, metavar="K",
                        help="also profile one step per row and record its K most expensive operators")
    parser.add_argument("--baseline", choices=sorted(BASELINES), default=None,
                        help="also time each row with these pre-session-17 layers and record the current ones' speed-up")
    parser.add_argument("--vs-unfrozen", action="store_true",
                        help="also time each row with nothing frozen (the config's model.freeze off) and record the ratio")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="leave glibc malloc as is (default: ivvae.runtime.tune_cpu_allocator(), as ivvae train does)")
    parser.add_argument("--quick", action="store_true", help="smoke test: random init, 32 px, 5 frames, batch 1 and 2, 1+1 steps")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    malloc_tuned = False if args.no_malloc_tuning else tune_cpu_allocator()

    overrides = list(args.overrides)
    if args.quick:
        args.random_init, args.warmup, args.steps, args.batch_sizes = True, 1, 1, [1, 2]
        overrides += [f"data.buckets.{args.bucket}.crop=32", f"data.buckets.{args.bucket}.num_frames=5"]
    cfg = load_config(args.config, overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not 0 <= args.bucket < len(cfg.data.buckets):
        raise SystemExit(f"--bucket {args.bucket}: the config has {len(cfg.data.buckets)} bucket(s)")
    bucket = cfg.data.buckets[args.bucket]
    if bucket.crop is None:
        raise SystemExit(f"data.buckets.{args.bucket} has no crop: give it one with --set data.buckets.{args.bucket}.crop=N")
    height, width = (bucket.crop, bucket.crop) if isinstance(bucket.crop, int) else bucket.crop
    frames = 1 if bucket.kind == "image" else bucket.num_frames
    if args.random_init:
        if not (cfg.model.preset or cfg.model.class_name or cfg.model.config):
            raise SystemExit("--random-init needs a config whose model section names a preset or class/config")
        cfg.model.init = InitConfig()
    device = torch.device(args.device)
    precision = cfg.train.precision
    formats = {"config": [cfg.model.channels_last], "channels_last": [True], "contiguous": [False],
               "both": [False, True]}[args.memory_format]
    if args.vs_unfrozen and not cfg.model.freeze:
        raise SystemExit("--vs-unfrozen compares against the config's model.freeze, which is empty: "
                         "set one (--set 'model.freeze=[encoder]')")
    rows = []
    for batch in args.batch_sizes or [bucket.batch_size, 2 * bucket.batch_size, 4 * bucket.batch_size]:
        for channels_last in formats:
            model = build_model_from_config(cfg.model)
            if channels_last:
                model.to_channels_last()
            shape = (batch, 3, frames, height, width)
            if args.vs_unfrozen:
                unfrozen = time_steps(model, shape, device, precision, channels_last, args.warmup, args.steps, args.profile)
                unfrozen["trainable_parameters"] = sum(p.numel() for p in model.parameters())
            trainable = freeze_submodules(model, cfg.model.freeze)
            if args.baseline:
                with baseline_layers(args.baseline):
                    baseline = time_steps(model, shape, device, precision, channels_last, args.warmup, args.steps, args.profile)
            row = time_steps(model, shape, device, precision, channels_last, args.warmup, args.steps, args.profile)
            row["frozen"], row["trainable_parameters"] = list(cfg.model.freeze), trainable
            if args.vs_unfrozen:
                row["unfrozen"] = unfrozen
                row["speedup_vs_unfrozen"] = round(unfrozen["s_per_step"] / row["s_per_step"], 3)
                print(f"batch {batch:4d}: with nothing frozen {unfrozen['s_per_step']:.4f} s/step; "
                      f"frozen {', '.join(cfg.model.freeze)}: {row['speedup_vs_unfrozen']:.2f}x faster")
            if args.baseline:
                row["baseline"] = {"layers": args.baseline, **baseline}
                row["speedup_vs_baseline"] = round(baseline["s_per_step"] / row["s_per_step"], 3)
                print(f"batch {batch:4d}: baseline {args.baseline} took {baseline['s_per_step']:.4f} s/step; "
                      f"now {row['speedup_vs_baseline']:.2f}x faster")
            rows.append(row)
            print(f"batch {batch:4d} {'channels-last' if channels_last else 'contiguous':13s}: {row['s_per_step']:.4f} s/step, "
                  f"{row['samples_per_s']:.1f} samples/s, {row['mpix_per_s']:.2f} Mpix/s"
                  + (f", peak {row['peak_memory_mib']:.0f} MiB" if row["peak_memory_mib"] else ""))
            for op in row.get("top_ops", []):
                print(f"    {op['share']:6.1%} {op['self_ms']:10.2f} ms {op['calls']:6d}x  {op['op']}")
            del model
    for row in rows:  # ratios against the smallest batch in the same memory format
        base = next(r for r in rows if r["channels_last"] == row["channels_last"])
        row["throughput_vs_smallest"] = round(row["samples_per_s"] / base["samples_per_s"], 3)
        row["batch_vs_smallest"] = round(row["batch_size"] / base["batch_size"], 3)
    result = {"config": args.config, "overrides": overrides, "bucket": args.bucket, "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
              "precision": precision, "memory_format": args.memory_format, "torch": torch.__version__,
              "malloc_tuned": malloc_tuned, "threads": torch.get_num_threads(),
              "warmup": args.warmup, "steps": args.steps, "rows": rows}
    print("throughput vs the smallest batch: " + ", ".join(f"x{r['batch_vs_smallest']:g} batch -> x{r['throughput_vs_smallest']:.2f}"
                                                          for r in rows if r["batch_vs_smallest"] != 1))
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
