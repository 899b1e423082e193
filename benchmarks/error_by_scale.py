"""Where a model's reconstruction error lies: its energy by spatial scale, next to bicubic x4.

PSNR says how much error a model makes, not what kind. This splits each held-out clip's error
``e = reconstruction - real`` (both 8-bit quantised, as ``ivvae eval`` scores them) into octave
bands with block means: with ``P_k`` the mean square of ``e`` averaged over ``2^k x 2^k`` blocks
(``P_0`` is the MSE), band ``k`` holds ``P_k - P_(k+1)`` -- detail between ``2^k`` and ``2^(k+1)``
pixels -- and the last band ``P_K`` everything coarser. Block averages are a Haar decomposition, so
the bands are orthogonal and add up to the MSE exactly (each clip is cropped to a multiple of
``2^K`` pixels about its centre first; 176x144 carphone becomes 160x128).

For each model, per clip and over the held-out set (the clips of ``heldout_curve.py``):

* ``bands``: the MSE in each band; ``share``: its fraction of the model's MSE;
* ``colour_cast``: the mean error per channel (R, G, B) in 8-bit levels, part of the coarsest band;
* ``db_if_matched``: the PSNR gained were the model's error in that band and every coarser one no
  greater than the reference's (bicubic x4 keeps every 4x4 block mean, so its coarse bands are
  nearly empty): what getting the local colour right would be worth, against getting detail right.

    python benchmarks/error_by_scale.py --out benchmarks/results/error_by_scale            # the bundled model
    python benchmarks/error_by_scale.py --model s18=runs/small_z16/shipped_session18 --out /tmp/scales

Writes ``error_by_scale.json`` and ``error_by_scale.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heldout_curve import held_out_set  # noqa: E402  (the same clips as the curve)

from ivvae.eval.runner import _quantize, check_eval_model, load_eval_model, reconstruct_clip  # noqa: E402

REFERENCE = "bicubic-x4"
DEFAULT_LEVELS = 5  # blocks of 1, 2, ..., 32 pixels: 32 is 4 latent pixels of an 8x model


def center_crop_to_multiple(video: torch.Tensor, multiple: int) -> torch.Tensor:
    """``(..., H, W)`` cropped about its centre to the largest multiple of ``multiple`` on each side."""
    h, w = video.shape[-2:]
    nh, nw = h - h % multiple, w - w % multiple
    if nh == 0 or nw == 0:
        raise ValueError(f"a {w}x{h} clip has no whole {multiple}x{multiple} block")
    top, left = (h - nh) // 2, (w - nw) // 2
    return video[..., top:top + nh, left:left + nw]


def error_bands(error: torch.Tensor, levels: int = DEFAULT_LEVELS) -> list[float]:
    """Mean-square energy of ``error`` ``(C, T, H, W)`` per octave band, finest first; ``levels + 1``
    values that sum to the MSE (H and W must be multiples of ``2 ** levels``).

    Band ``k < levels`` is the energy between ``2^k``- and ``2^(k+1)``-pixel block means; band
    ``levels`` is the energy of the ``2^levels``-pixel block means themselves.
    """
    h, w = error.shape[-2:]
    if h % 2 ** levels or w % 2 ** levels:
        raise ValueError(f"error of {w}x{h} pixels: crop it to multiples of {2 ** levels} first")
    frames = error.reshape(-1, 1, h, w).double()
    pooled = [frames.pow(2).mean().item()]
    for k in range(1, levels + 1):
        pooled.append(F.avg_pool2d(frames, 2 ** k).pow(2).mean().item())
    return [pooled[k] - pooled[k + 1] for k in range(levels)] + [pooled[levels]]


def band_labels(levels: int = DEFAULT_LEVELS) -> list[str]:
    return [f"{2 ** k}-{2 ** (k + 1)} px" for k in range(levels)] + [f">= {2 ** levels} px"]


def db_if_matched(bands: list[float], reference: list[float]) -> list[float]:
    """PSNR gain (dB) if the error of band k and every coarser band were no more than the reference's."""
    mse = sum(bands)
    gains = []
    for k in range(len(bands)):
        excess = sum(max(0.0, b - r) for b, r in zip(bands[k:], reference[k:], strict=True))
        gains.append(10 * math.log10(mse / (mse - excess)) if excess < mse else math.inf)
    return gains


def summarize(bands: list[float]) -> dict:
    mse = sum(bands)
    return {"mse": mse, "psnr": 10 * math.log10(4.0 / mse), "bands": bands, "share": [b / mse for b in bands]}


def measure(models: dict[str, str], levels: int) -> dict:
    """Per clip and mean bands of each model and the reference on the held-out set."""
    loaded = {name: load_eval_model(source) for name, source in {**models, REFERENCE: REFERENCE}.items()}
    per_clip: dict[str, list[dict]] = {name: [] for name in loaded}
    for clip in held_out_set().iter_clips():
        if isinstance(clip, tuple):
            raise SystemExit(f"error: held-out video {clip[0]} could not be read: {clip[1]}")
        real = center_crop_to_multiple(clip.video, 2 ** levels)
        for name, model in loaded.items():
            recon = _quantize(reconstruct_clip(model, real[None])[0])
            error = recon - _quantize(real)
            entry = summarize(error_bands(error, levels))
            entry["colour_cast"] = [round(v * 127.5, 3) for v in error.double().mean(dim=(1, 2, 3)).tolist()]
            per_clip[name].append({"path": Path(clip.path).name, "start": clip.start, **entry})
    results = {}
    for name, clips in per_clip.items():
        mean_bands = [sum(c["bands"][k] for c in clips) / len(clips) for k in range(levels + 1)]
        results[name] = {"mean": summarize(mean_bands), "per_clip": clips}
    ref = results[REFERENCE]
    for result in results.values():
        result["mean"]["db_if_matched"] = db_if_matched(result["mean"]["bands"], ref["mean"]["bands"])
        for clip, ref_clip in zip(result["per_clip"], ref["per_clip"], strict=True):
            clip["db_if_matched"] = db_if_matched(clip["bands"], ref_clip["bands"])
    return results


def markdown(results: dict, levels: int) -> str:
    labels = band_labels(levels)
    lines = ["# Reconstruction error by spatial scale (held-out set)", "",
             "Share of each model's MSE per octave band, and (for each band) the PSNR gained were the error in",
             "that band and all coarser ones no more than bicubic x4's. `mse` is over the pooled clips (cropped",
             "to whole 32-pixel blocks), so its PSNR differs slightly from the mean per-clip PSNR of `ivvae eval`.", ""]
    lines.append("| model | clip | PSNR | " + " | ".join(labels) + " | colour cast (R, G, B levels) |")
    lines.append("|---" * (len(labels) + 4) + "|")
    for name, result in results.items():
        rows = [("mean", result["mean"])] + [(f"{c['path']}@{c['start']}", c) for c in result["per_clip"]]
        for clip_name, entry in rows:
            cells = []
            for k in range(levels + 1):
                cell = f"{100 * entry['share'][k]:.1f}%"
                if name != REFERENCE:
                    cell += f" (+{entry['db_if_matched'][k]:.2f} dB)"
                cells.append(cell)
            cast = ", ".join(f"{v:+.2f}" for v in entry["colour_cast"]) if "colour_cast" in entry else ""
            lines.append(f"| {name} | {clip_name} | {entry['psnr']:.2f} | " + " | ".join(cells) + f" | {cast} |")
    return "\n".join(lines) + "\n"


def parse_models(specs: list[str]) -> dict[str, str]:
    if not specs:
        return {"ivvae-small-z16": "ivvae-small-z16"}
    models = {}
    for spec in specs:
        name, sep, source = spec.partition("=")
        models[name if sep else spec] = source if sep else spec
    return models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="[NAME=]MODEL",
                        help="model folder or bundled name (repeatable; default: the bundled ivvae-small-z16)")
    parser.add_argument("--levels", type=int, default=DEFAULT_LEVELS, help="octave bands below the coarsest (default %(default)s)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", required=True, type=Path, help="folder for error_by_scale.json and .md")
    args = parser.parse_args(argv)
    if args.levels < 1:
        parser.error("--levels must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    models = parse_models(args.model)
    try:
        for source in models.values():
            check_eval_model(source)  # a wrong folder fails here, before any clip is read
        results = measure(models, args.levels)
    except (ValueError, OSError) as err:  # a model that does not load, clips too small for --levels
        print(f"error_by_scale: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"levels": args.levels, "bands": band_labels(args.levels), "reference": REFERENCE, "models": results}
    (args.out / "error_by_scale.json").write_text(json.dumps(payload, indent=1))
    text = markdown(results, args.levels)
    (args.out / "error_by_scale.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
