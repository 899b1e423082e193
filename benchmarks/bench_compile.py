"""Is ``torch.compile`` worth it for a training step? Compile time, speed-up, and gradients vs eager.

For a small model of the family it runs one training step (encode, posterior mode, decode, L1
loss, backward) eagerly and compiled on the same clip, and reports the compile time (the first
compiled step), seconds per step of both, the largest relative difference of any parameter's
gradient, and how many gradients the compiled step zeroed where eager ones are not zero (with
bf16 autocast on CPU, compiled nearest-neighbour upsampling once returned zero gradients). A
time-limited run only gains if the compile time is small against its budget.

    python benchmarks/bench_compile.py --model image --threads 2 --out benchmarks/results/compile_cpu.json
    python benchmarks/bench_compile.py --model ivvae --device cuda --precision bf16 --base-channels 16 \\
        --shape 8 3 17 128 128 --out benchmarks/results/compile_cuda.json
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time
from pathlib import Path

import torch
from _results import write_results

from ivvae.models import IVVAE, ImageVAE
from ivvae.train.trainer import _Autoencoder

MODELS = {"image": ImageVAE, "ivvae": IVVAE}


def build(kind: str, base_channels: int, multipliers: list[int]) -> torch.nn.Module:
    latent = 8 if kind == "image" else 16
    return MODELS[kind](base_channels=base_channels, channel_multipliers=tuple(multipliers), latent_channels=latent)


def train_step(module, model, x, autocast) -> tuple[float, list[torch.Tensor]]:
    """One step's loss and the parameters' gradients (the optimiser step is left out: it is not compiled)."""
    model.zero_grad(set_to_none=True)
    with autocast:
        rec, _, _ = module(x, sample_posterior=False)
        loss = (rec.float() - x).abs().mean()
    loss.backward()
    return loss.item(), [p.grad.detach().float().clone() for p in model.parameters() if p.grad is not None]


def seconds_per_step(module, model, x, autocast, steps: int, sync) -> float:
    sync()
    started = time.perf_counter()
    for _ in range(steps):
        train_step(module, model, x, autocast)
    sync()
    return (time.perf_counter() - started) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="image")
    parser.add_argument("--base-channels", type=int, default=8)
    parser.add_argument("--multipliers", type=int, nargs="+", default=[1, 2, 2, 2])
    parser.add_argument("--shape", type=int, nargs=5, default=None, metavar=("B", "C", "T", "H", "W"),
                        help="clip shape (default: 2x3x1x32x32 for image, 1x3x5x32x32 for ivvae)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--steps", type=int, default=3, help="timed steps of each (default %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    shape = args.shape or ([2, 3, 1, 32, 32] if args.model == "image" else [1, 3, 5, 32, 32])
    torch.manual_seed(0)
    model = build(args.model, args.base_channels, args.multipliers).to(device)
    x = (torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16" else contextlib.nullcontext()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    eager = _Autoencoder(model)
    eager_loss, eager_grads = train_step(eager, model, x, autocast)
    compiled = torch.compile(eager)
    sync()
    started = time.perf_counter()
    compiled_loss, compiled_grads = train_step(compiled, model, x, autocast)
    sync()
    compile_s = time.perf_counter() - started
    rel_err = max(((a - b).abs().max() / a.abs().max().clamp_min(1e-12)).item() for a, b in zip(eager_grads, compiled_grads, strict=True))
    zeroed = sum(int(b.abs().max() == 0 < a.abs().max()) for a, b in zip(eager_grads, compiled_grads, strict=True))
    eager_s = seconds_per_step(eager, model, x, autocast, args.steps, sync)
    compiled_s = seconds_per_step(compiled, model, x, autocast, args.steps, sync)
    result = {
        "model": args.model, "base_channels": args.base_channels, "multipliers": args.multipliers, "shape": shape,
        "parameters": sum(p.numel() for p in model.parameters()), "precision": args.precision, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "steps": args.steps,
        "compile_and_first_step_s": round(compile_s, 2), "eager_s_per_step": round(eager_s, 4),
        "compiled_s_per_step": round(compiled_s, 4), "speedup": round(eager_s / compiled_s, 3),
        "loss_eager": eager_loss, "loss_compiled": compiled_loss,
        "max_relative_gradient_difference": rel_err, "gradients_zeroed_by_compile": zeroed, "gradients": len(eager_grads),
        "steps_to_repay_compile": round(compile_s / max(eager_s - compiled_s, 1e-9)) if eager_s > compiled_s else None,
    }
    print(f"{args.model} ({result['parameters']:,} parameters, {args.precision}, {device}): compile + first step "
          f"{compile_s:.1f} s; eager {eager_s:.3f} s/step, compiled {compiled_s:.3f} s/step (x{result['speedup']:.2f}); "
          f"gradients: max relative difference {rel_err:.2e}, {zeroed} of {len(eager_grads)} zeroed")
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
