"""How much better the decoder can render a clip than the encoder's latents let it: the amortisation gap.

For each held-out clip (the clips of ``heldout_curve.py``, centre-cropped to ``--crop``), the latent
the encoder gives (the posterior mean) is taken as a start and optimised against the frozen
decoder -- Adam on the latent tensor alone, MSE to the real clip, no weight changes -- and the PSNR
of the decoded clip is recorded every ``--report-every`` steps, next to bicubic x4 on the same
crop, with the error's coarse part (scales of 4 px and up, ``error_by_scale.py``'s bands; MSE on
the [-1, 1] scale) before and after. A large rise says the decoder can render much more than the encoder hands it: training the
encoder (``model.freeze: [decoder]``) is then the lever, not a larger latent. ``latent_shift`` is how
far the latent moved, as a fraction of the latent's standard deviation.

The search runs in bf16 autocast on the CPU (``--precision fp32`` for exact arithmetic); every
PSNR is of an fp32 decode, on the [-1, 1] scale, of the whole cropped clip (not per frame).

    python benchmarks/latent_gap.py --out benchmarks/results/latent_gap                 # the bundled model
    python benchmarks/latent_gap.py --model runs/small_z16/3j_encoder_cpu/export --steps 20 --out /tmp/gap

Writes ``latent_gap.json`` and ``latent_gap.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from error_by_scale import center_crop_to_multiple, error_bands  # noqa: E402
from heldout_curve import held_out_set  # noqa: E402  (the same clips as the curve)

from ivvae.eval.runner import check_eval_model, load_eval_model  # noqa: E402

REFERENCE = "bicubic-x4"
COARSE_FROM = 2  # error_bands' band 2 on: detail of 4 px and coarser, what bicubic x4 keeps (block means)


def psnr(reconstruction: torch.Tensor, real: torch.Tensor) -> float:
    """PSNR in dB of a whole clip on the [-1, 1] scale (the reconstruction clamped first)."""
    mse = (reconstruction.float().clamp(-1, 1) - real).square().mean().item()
    return 10 * math.log10(4.0 / max(mse, 1e-12))


def coarse_error(reconstruction: torch.Tensor, real: torch.Tensor) -> float:
    """The part of the MSE at scales of 4 px and more (``error_by_scale.py``'s bands), of a ``(1, 3, T, H, W)`` clip."""
    return sum(error_bands(reconstruction[0].float().clamp(-1, 1) - real[0], levels=COARSE_FROM)[COARSE_FROM:])


def center_crop(video: torch.Tensor, size: int) -> torch.Tensor:
    """``(..., H, W)`` cropped about its centre to at most ``size x size``, in whole 4x4 blocks."""
    h, w = video.shape[-2:]
    th, tw = min(h, size), min(w, size)
    top, left = (h - th) // 2, (w - tw) // 2
    return center_crop_to_multiple(video[..., top:top + th, left:left + tw], 2 ** COARSE_FROM).contiguous()


def _autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def optimise_latent(model, real: torch.Tensor, steps: int, lr: float, report_every: int, precision: str = "bf16") -> dict:
    """Adam on the latent of ``real`` ``(1, 3, T, H, W)`` against ``model``'s frozen decoder.

    Returns ``{"start": psnr, "curve": [[step, psnr, latent_shift], ...], "coarse_error": [at the start, at the end]}``
    (:func:`coarse_error`); the model's weights are untouched.
    """
    size = dict(num_frames=real.shape[2], height=real.shape[3], width=real.shape[4])
    with torch.no_grad():
        start = model.encode(real).latent_dist.mode()
        first = model.decode(start, **size).sample
        start_psnr, start_coarse = psnr(first, real), coarse_error(first, real)
    latent = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=lr)
    spread = start.std().item()
    curve = []
    for step in range(1, steps + 1):
        with _autocast(precision):
            rendered = model.decode(latent, **size).sample
        loss = (rendered.float() - real).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % report_every == 0 or step == steps:
            with torch.no_grad():
                shift = ((latent - start).std().item()) / spread
                rendered = model.decode(latent, **size).sample
                curve.append([step, psnr(rendered, real), shift])
    return {"start": start_psnr, "curve": curve, "coarse_error": [start_coarse, coarse_error(rendered, real)]}


def measure(model, crop: int, steps: int, lr: float, report_every: int, precision: str) -> dict:
    """Per clip and mean: the encoder's PSNR, the optimised latents' PSNR by step and bicubic x4's, with each one's
    coarse error (:func:`coarse_error`)."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    reference = load_eval_model(REFERENCE)
    clips = []
    for clip in held_out_set().iter_clips():
        if isinstance(clip, tuple):
            raise SystemExit(f"error: held-out video {clip[0]} could not be read: {clip[1]}")
        real = center_crop(clip.video, crop)[None]
        with torch.no_grad():
            upsampled = reference.decode(reference.encode(real).latent_dist.mode(), height=real.shape[3], width=real.shape[4]).sample
        result = optimise_latent(model, real, steps, lr, report_every, precision)
        clips.append({"path": Path(clip.path).name, "start": clip.start, "size": list(real.shape[2:]),
                      REFERENCE: psnr(upsampled, real), "encoder": result["start"], "optimised": result["curve"],
                      "coarse_error": {REFERENCE: coarse_error(upsampled, real), "encoder": result["coarse_error"][0],
                                       "optimised": result["coarse_error"][1]}})
        last = result["curve"][-1]
        print(f"{clips[-1]['path']} {clip.start}: bicubic {clips[-1][REFERENCE]:.3f}, encoder {result['start']:.3f}, "
              f"optimised {last[1]:.3f} dB after {last[0]} steps", flush=True)
    def mean_of(value) -> float:
        return sum(value(c) for c in clips) / len(clips)

    mean_curve = [[step, mean_of(lambda c, i=i: c["optimised"][i][1]), mean_of(lambda c, i=i: c["optimised"][i][2])]
                  for i, (step, _, _) in enumerate(clips[0]["optimised"])]
    mean = {REFERENCE: mean_of(lambda c: c[REFERENCE]), "encoder": mean_of(lambda c: c["encoder"]), "optimised": mean_curve,
            "coarse_error": {k: mean_of(lambda c, k=k: c["coarse_error"][k]) for k in (REFERENCE, "encoder", "optimised")}}
    return {"mean": mean, "per_clip": clips}


def markdown(results: dict, settings: dict) -> str:
    steps = [row[0] for row in results["mean"]["optimised"]]
    head = "| clip | bicubic x4 | encoder | " + " | ".join(f"step {s}" for s in steps) + " | coarse error: bicubic / encoder / optimised |"
    lines = [f"# Latent gap: {settings['model']}", "",
             f"Held-out clips centre-cropped to {settings['crop']} px; Adam lr {settings['lr']} on the latent, "
             f"{settings['precision']}; PSNR (dB) of the whole clip, latent shift in units of the latent's std.", "",
             head, "|" + "---|" * (4 + len(steps))]
    for clip in [*results["per_clip"], {"path": "**mean**", "start": "", **results["mean"]}]:
        cells = " | ".join(f"{p:.2f} ({shift:.2f})" for _, p, shift in clip["optimised"])
        coarse = " / ".join(f"{clip['coarse_error'][k]:.5f}" for k in (REFERENCE, "encoder", "optimised"))
        lines.append(f"| {clip['path']} {clip['start']} | {clip[REFERENCE]:.2f} | {clip['encoder']:.2f} | {cells} | {coarse} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ivvae-small-z16", help="model folder or bundled name (default %(default)s)")
    parser.add_argument("--crop", type=int, default=128, help="centre crop of each clip, px (default %(default)s)")
    parser.add_argument("--steps", type=int, default=100, help="Adam steps on each latent (default %(default)s)")
    parser.add_argument("--lr", type=float, default=0.02, help="Adam learning rate on the latent (default %(default)s)")
    parser.add_argument("--report-every", type=int, default=20, help="PSNR every N steps (default %(default)s)")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", required=True, type=Path, help="folder for latent_gap.json and .md")
    args = parser.parse_args(argv)
    for name in ("crop", "steps", "report_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if not args.lr > 0:
        parser.error("--lr must be > 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        check_eval_model(args.model)  # a wrong folder fails here, before any clip is read
        model = load_eval_model(args.model)
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"{args.model} has no decoder weights to optimise a latent against (a plain reference?)")
        results = measure(model, args.crop, args.steps, args.lr, args.report_every, args.precision)
    except (ValueError, OSError) as err:
        print(f"latent_gap: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    settings = {"model": args.model, "crop": args.crop, "steps": args.steps, "lr": args.lr, "precision": args.precision}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latent_gap.json").write_text(json.dumps({"settings": settings, **results}, indent=1))
    text = markdown(results, settings)
    (args.out / "latent_gap.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
