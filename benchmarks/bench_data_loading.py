"""Training-data throughput: preloaded frame caches (``data.preload_frames``), persistent workers.

Builds a config's training data exactly as ``ivvae train`` does and draws batches three ways:
a fresh DataLoader (hence fresh workers) every epoch without preloading (each worker decodes what
its items need, again every epoch), the same with the frame caches filled in the main process
before the first epoch (workers inherit them), and -- what the trainer does since session 5 --
preloaded caches and one DataLoader whose workers persist across epochs (the sampler's
``(epoch, index)`` keys carry the epoch to them). Reports batches per second over all epochs,
the preload time included, and the ratios.

    python benchmarks/bench_data_loading.py configs/small_z16/1c_image_vae_gpu.yaml \\
        --workers 2 --epochs 2 --batches 30 --out benchmarks/results/data_loading.json
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from _results import write_results
from torch.utils.data import DataLoader

from ivvae.train.build import build_train_data
from ivvae.train.config import load_config
from ivvae.train.data import clip_collate


def draw(config: str, overrides: list[str], preload: bool, workers: int, epochs: int, batches: int,
         persistent: bool = False) -> dict:
    cfg = load_config(config, overrides + [f"data.num_workers={workers}"])
    dataset, sampler, _, _ = build_train_data(cfg)
    started = time.perf_counter()
    preloaded = dataset.fill_frame_caches() if preload else 0
    preload_s = time.perf_counter() - started
    def make_loader() -> DataLoader:
        return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=clip_collate,
                          persistent_workers=persistent and workers > 0, **({"prefetch_factor": 2} if workers else {}))

    drawn, per_epoch = 0, []
    loader = make_loader() if persistent else None
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        epoch_start = time.perf_counter()
        epoch_loader = loader or make_loader()
        for i, _batch in enumerate(epoch_loader):
            drawn += 1
            if i + 1 >= batches:
                break
        del epoch_loader
        per_epoch.append(round(time.perf_counter() - epoch_start, 3))
    del loader
    total = time.perf_counter() - started
    return {
        "preload": preload,
        "persistent_workers": persistent,
        "frames_preloaded": preloaded,
        "preload_s": round(preload_s, 3),
        "batches": drawn,
        "epoch_s": per_epoch,
        "total_s": round(total, 3),
        "batches_per_s": round(drawn / total, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="training config (its data section is used)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--workers", type=int, default=2, help="data workers (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs (default %(default)s)")
    parser.add_argument("--batches", type=int, default=30, help="batches drawn per epoch (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 epoch of 2 batches")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.batches = 1, 2

    torch.set_num_threads(1)
    cases = [draw(args.config, args.overrides, preload, args.workers, args.epochs, args.batches, persistent)
             for preload, persistent in ((False, False), (True, False), (True, True))]
    result = {
        "config": args.config, "overrides": args.overrides, "workers": args.workers, "epochs": args.epochs,
        "batches_per_epoch": args.batches,
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": __import__("os").cpu_count()},
        "cases": cases,
        "speedup_preload": round(cases[1]["batches_per_s"] / cases[0]["batches_per_s"], 3),
        "speedup_persistent_over_preload": round(cases[2]["batches_per_s"] / cases[1]["batches_per_s"], 3),
    }
    for case in cases:
        print(f"preload {case['preload']!s:5} persistent {case['persistent_workers']!s:5}: {case['batches_per_s']:.2f} batches/s "
              f"(preload {case['preload_s']:.1f} s, {case['frames_preloaded']} frames; epochs {case['epoch_s']} s)")
    print(f"speed-up from preloading: {result['speedup_preload']:.2f}x; "
          f"from persistent workers on top: {result['speedup_persistent_over_preload']:.2f}x")
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
