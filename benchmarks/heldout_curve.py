"""Held-out quality of a training run against its steps, and its loss curve.

Evaluates every step export of a run (``export.every`` in the config writes
``<run>/exports/step_N``; the final export is ``<run>/export``) on the held-out set of the bundled
model -- the same clips as ``ivvae eval ... --start-fraction 0.8 --clips-per-video 2 --crop 256
--small-frames native`` in docs/default-model.md -- next to the bicubic x4 reference, then plots

* ``heldout_curve.png``: held-out PSNR and SSIM against training steps, with the bicubic x4 reference
  and the floor of issue #6 (>= 26 dB, >= bicubic + 1 dB, SSIM >= 0.75);
* ``loss_curve.png``: the training L1 loss (per bucket) and the in-run validation PSNR of each run.

Results are cached in ``heldout_curve.json`` (one entry per evaluated folder), so rerunning after
more steps only evaluates the new exports; runs evaluated into the same ``--out`` are plotted as
separate lines (``--label``).

    python benchmarks/heldout_curve.py --run runs/small_z16/2_ivvae_video \\
        --start runs/small_z16/1_image_vae=KTC init --loss-run runs/small_z16/1_image_vae \\
        --out docs/default-model
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import torch

from ivvae.eval.runner import DatasetSpec, EvalSettings, evaluate
from ivvae.hub import HELD_OUT_SOURCES, HELD_OUT_START_FRACTION

FLOOR_PSNR, FLOOR_SSIM, FLOOR_MARGIN_DB, FLOOR_POSITION_SPREAD = 26.0, 0.75, 1.0, 0.02


def held_out_set() -> DatasetSpec:
    """carphone (never trained on) and the last 20% of bikes and bigbuckbunny; 17-frame clips,
    256x256 centre crops (native size when smaller), up to 2 consecutive clips per video."""
    return DatasetSpec(list(HELD_OUT_SOURCES), protocol="custom", crop=256, small_frames="native", frames=17,
                       start_fraction=HELD_OUT_START_FRACTION, clips_per_video=2)


def step_exports(run: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of ``<run>/exports/step_N`` and of the final export (its step from summary.json)."""
    found = []
    for folder in sorted((run / "exports").glob("step_*")):
        match = re.fullmatch(r"step_(\d+)", folder.name)
        if match and (folder / "config.json").is_file():
            found.append((int(match.group(1)), folder))
    final = run / "export"
    summary = run / "summary.json"
    if (final / "config.json").is_file() and summary.is_file():
        step = int(json.loads(summary.read_text()).get("steps", 0))
        if step not in {s for s, _ in found}:
            found.append((step, final))
    return sorted(found)


def evaluate_folder(model: str | Path, threads: int) -> dict:
    torch.set_num_threads(threads)
    settings = EvalSettings(chunk_groups=1, lpips=False, fvd=False, progress=False)
    result = evaluate({"m": str(model)}, held_out_set(), settings)["m"]
    return {
        "psnr": result.metrics["psnr"],
        "ssim": result.metrics["ssim"],
        "ssim_by_position": result.ssim_by_position,
        "ssim_position_spread": result.ssim_position_spread,
        "per_clip": [{k: c[k] for k in ("path", "start", "psnr", "ssim")} for c in result.per_clip],
        "seconds_per_clip": result.timing["seconds_per_clip"],
    }


def floor_check(entry: dict, reference: dict) -> dict:
    """Issue #6's quality floor for one evaluated model: each condition and whether it holds."""
    spread = entry.get("ssim_position_spread")
    checks = {
        "psnr_at_least_26_db": entry["psnr"] >= FLOOR_PSNR,
        "psnr_at_least_bicubic_plus_1_db": entry["psnr"] >= reference["psnr"] + FLOOR_MARGIN_DB,
        "ssim_at_least_0.75": entry["ssim"] >= FLOOR_SSIM,
        "ssim_by_position_spread_at_most_0.02": spread is not None and spread <= FLOOR_POSITION_SPREAD,
    }
    return {**checks, "met": all(checks.values())}


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def plot_curve(data: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_run: dict[str, list[dict]] = {}
    for entry in data["runs"].values():
        by_run.setdefault(entry.get("run", "ivvae-small-z16"), []).append(entry)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 6.5))
    run_lines = []
    for run, entries in by_run.items():
        entries = sorted(entries, key=lambda e: e["step"])
        steps = [e["step"] for e in entries]
        run_lines += ax1.plot(steps, [e["psnr"] for e in entries], "o-", label=run)
        ax2.plot(steps, [e["ssim"] for e in entries], "o-", label=run)
    ref = data.get("bicubic-x4")
    if ref:
        ax1.axhline(ref["psnr"], color="gray", ls="--", label=f"bicubic x4 ({ref['psnr']:.2f} dB)")
        floor = max(FLOOR_PSNR, ref["psnr"] + FLOOR_MARGIN_DB)
        ax1.axhline(floor, color="red", ls=":", label=f"floor ({floor:.2f} dB = max(26, bicubic + 1))")
        ax2.axhline(ref["ssim"], color="gray", ls="--", label=f"bicubic x4 ({ref['ssim']:.3f})")
    ax2.axhline(FLOOR_SSIM, color="red", ls=":", label=f"floor ({FLOOR_SSIM})")
    for ax, name in ((ax1, "PSNR (dB)"), (ax2, "SSIM")):
        ax.set_xlabel("video-training steps (0 = KTC inflation; a continuing run starts at its start's step)", fontsize=8)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(handles=ax.get_lines()[len(run_lines):], fontsize=7, loc="lower right")  # the references, per axis
    # one legend of the runs for both axes, below them (the curves fill the axes; long labels need the full width)
    fig.legend(handles=run_lines, fontsize=7, loc="lower center", ncol=2)
    fig.suptitle("held-out set: carphone + last 20% of bikes and bigbuckbunny, 17x256x256 (native when smaller)", fontsize=9)
    fig.tight_layout(rect=(0, 0.04 + 0.022 * math.ceil(len(run_lines) / 2), 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_losses(runs: list[Path], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4), squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        rows = _read_jsonl(run / "metrics.jsonl")
        keys = sorted({k for r in rows for k in r if k.startswith("l1/")}) or ["l1"]
        for key in keys:
            pts = [(r["step"], r[key]) for r in rows if key in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=f"train {key}")
        ax.set_xlabel("step")
        ax.set_ylabel("L1 (pixels in [-1, 1])")
        ax.set_title(run.name, fontsize=9)
        ax.grid(alpha=0.3)
        summary = run / "summary.json"
        val = json.loads(summary.read_text()).get("val_psnr", []) if summary.is_file() else []
        if val:
            twin = ax.twinx()
            twin.plot([v["step"] for v in val], [v.get("psnr_ema", v.get("psnr")) for v in val], "k.--", label="in-run val PSNR (EMA)")
            twin.set_ylabel("dB")
            twin.legend(fontsize=8, loc="center right")
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="training run folder with exports/step_N folders")
    parser.add_argument("--start", default=None, metavar="FOLDER",
                        help="model evaluated as step 0 (e.g. the KTC inflation the run started from)")
    parser.add_argument("--loss-run", action="append", type=Path, default=[],
                        help="earlier runs whose loss curves are plotted before --run's (repeatable)")
    parser.add_argument("--label", default=None,
                        help="the run's name in the plot legend (default: the run folder's name); each run is its own line")
    parser.add_argument("--step-offset", type=int, default=0, metavar="N",
                        help="plot the run's step k at N + k: a run that continues another from its step N (default 0)")
    parser.add_argument("--loss-plot", default="loss_curve.png", metavar="NAME",
                        help="file name of the loss plot in --out (default %(default)s; another name keeps an earlier plot)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    cache_path = args.out / "heldout_curve.json"
    data = json.loads(cache_path.read_text()) if cache_path.is_file() else {"runs": {}}
    data["held_out_set"] = held_out_set().to_dict()
    todo = step_exports(args.run)
    if args.start:
        todo = [(0, Path(args.start))] + todo
    if "bicubic-x4" not in data:
        data["bicubic-x4"] = evaluate_folder("bicubic-x4", args.threads)
    label = args.label or args.run.name
    for step, folder in todo:
        # a start folder is evaluated for each run that starts from it, so each run's line begins at its start
        key = f"{folder}@{step}" if step else f"{folder}@0 [{label}]"
        if key in data["runs"]:
            continue
        entry = evaluate_folder(folder, args.threads)
        entry["step"] = args.step_offset + step
        entry["run"] = label
        entry["floor"] = floor_check(entry, data["bicubic-x4"])
        data["runs"][key] = entry
        print(f"step {entry['step']}: held-out PSNR {entry['psnr']:.2f} dB, SSIM {entry['ssim']:.3f}, SSIM-by-position spread "
              f"{entry['ssim_position_spread']:.4f}, floor met: {entry['floor']['met']} ({folder})", file=sys.stderr)
        cache_path.write_text(json.dumps(data, indent=2) + "\n")  # after each folder: an interrupted run keeps its work
    cache_path.write_text(json.dumps(data, indent=2) + "\n")
    plot_curve(data, args.out / "heldout_curve.png")
    plot_losses(args.loss_run + [args.run], args.out / args.loss_plot)
    print(f"wrote {cache_path}, {args.out / 'heldout_curve.png'}, {args.out / args.loss_plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
