"""Reports of an evaluation (:func:`ivvae.eval.runner.evaluate`): JSON, Markdown and plots.

:func:`write_report` writes into one folder:

* ``results.json`` -- everything: per model the aggregates, per-clip values, SSIM by position,
  PSNR/SSIM per frame, unavailable metrics with their reasons, notes and timing; the data set
  (clips evaluated, videos skipped and why), the settings and the environment;
* ``results.md`` -- the paper's Table 1 layout (model | params | Z | PSNR | SSIM | LPIPS | FVD) and a
  second table with the SSIM by position in the group (0..3) and information preservation;
* ``ssim_by_position.png`` -- SSIM against position in the group, one line per model (paper
  Fig. 1b / Appendix A.2: flat is good);
* ``psnr_per_frame.png`` -- PSNR against frame index, one line per model, group boundaries marked.

``results.json`` can be read back with :meth:`EvalResults.load_json` and re-rendered.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._files import write_atomically
from .runner import EvalResults, ModelResult

__all__ = [
    "REPORT_FILES",
    "format_params",
    "markdown_report",
    "plot_psnr_per_frame",
    "plot_ssim_by_position",
    "write_report",
]

REPORT_FILES = ("results.json", "results.md", "ssim_by_position.png", "psnr_per_frame.png")

NA = "n/a"


def format_params(n: int | None) -> str:
    """``107_798_550`` -> ``"107.8M"``; ``1_734_030`` -> ``"1.73M"``; ``None`` -> ``"n/a"``."""
    if n is None:
        return NA
    if n >= 1e8:
        return f"{n / 1e6:.0f}M"
    if n >= 1e7:
        return f"{n / 1e6:.1f}M"
    if n >= 1e5:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)


def _fmt(value: float | None, digits: int) -> str:
    return NA if value is None else f"{value:.{digits}f}"


def _cell(r: ModelResult, metric: str, digits: int, marks: dict[str, int]) -> str:
    value = r.metrics.get(metric)
    if value is not None:
        return f"{value:.{digits}f}"
    reason = r.unavailable.get(metric)
    if reason is None:
        return NA
    return f"{NA} [^{marks.setdefault(reason, len(marks) + 1)}]"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_report(results: EvalResults) -> str:
    """The Markdown report (see the module docstring)."""
    ds, st = results.dataset, results.settings
    models = list(results.models.values())
    lines: list[str] = ["# Reconstruction evaluation", ""]
    parts = []
    if ds.get("short_side"):
        parts.append(f"short side {ds['short_side']}")
    if ds.get("crop"):
        parts.append(f"centre crop {ds['crop'][0]}x{ds['crop'][1]}")
    size = ", ".join(parts) or "native resolution"
    counts: dict[str, int] = {}
    for clip in ds.get("clips", []):
        key = f"{clip['size'][0]}x{clip['size'][1]}"
        counts[key] = counts.get(key, 0) + 1
    common = sorted(counts.items(), key=lambda kv: -kv[1])
    sizes = ", ".join(f"{k} ({v})" for k, v in common[:6]) + (f", ... ({len(common)} sizes)" if len(common) > 6 else "")
    source = ds.get("source")
    source_text = source if isinstance(source, str) else f"{len(source)} files"
    choice = f"{ds['num_videos']} random videos (seed {ds['seed']})" if ds.get("num_videos") else "all videos"
    lines += [
        f"- data: `{_escape(str(source_text))}` ({ds.get('videos_listed', '?')} videos listed; {choice})",
        f"- protocol: **{ds.get('protocol')}** ({_escape(ds.get('protocol_description', ''))})"
        + (f": {size}" if ds.get("protocol") == "custom" else ""),
        f"- clips: {ds.get('num_clips')} clips of {ds.get('frames')} frames, start: {ds.get('clip_start')}"
        + (f" from {ds['start_fraction']:g} of each video" if ds.get("start_fraction") else "")
        + (f", up to {ds['clips_per_video']} consecutive clips per video" if (ds.get("clips_per_video") or 1) > 1 else "")
        + (", frames smaller than the crop kept at native size" if ds.get("small_frames") == "native" else "")
        + (f"; {len(ds['skipped'])} video(s) skipped (see results.json)" if ds.get("skipped") else ""),
        f"- frame sizes evaluated (width x height, clips): {sizes or NA}",
        f"- execution: {st.get('execution')}, {st.get('dtype')}, device {st.get('device')}"
        + (f", tiles {st['tile'][0]}px" if st.get("tile") else "")
        + (", reconstructions rounded to 8 bits" if st.get("quantize") else ""),
        f"- created: {results.environment.get('created', '?')}",
        "",
        "## Reconstruction (paper Table 1 layout)",
        "",
        "| model | params | Z | PSNR | SSIM | LPIPS | FVD |",
        "|---|---|---|---|---|---|---|",
    ]
    marks: dict[str, int] = {}
    for r in models:
        z = r.info.get("latent_channels")
        lines.append(
            f"| {_escape(r.name)} | {format_params(r.info.get('params'))} | {z if z is not None else NA} "
            f"| {_cell(r, 'psnr', 2, marks)} | {_cell(r, 'ssim', 4, marks)} | {_cell(r, 'lpips', 4, marks)} "
            f"| {_cell(r, 'fvd', 2, marks)} |"
        )
    lines += [
        "",
        (
            "PSNR (dB), SSIM and LPIPS: per RGB frame (no luma conversion), averaged over frames, then over clips. "
            "FVD: I3D features of all original vs all reconstructed clips."
        ),
        "",
        "## SSIM by position in the group and information preservation",
        "",
    ]
    group = max((len(r.ssim_by_position or []) for r in models), default=4) or 4
    header = "| model | " + " | ".join(f"SSIM pos {i}" for i in range(group)) + " | spread (max-min) | info. preservation |"
    lines += [header, "|" + "---|" * (group + 3)]
    for r in models:
        if r.ssim_by_position:
            pos = " | ".join(f"{v:.4f}" for v in r.ssim_by_position)
            spread = f"{r.ssim_position_spread:.4f}"
        else:
            reason = r.unavailable.get("ssim_by_position", "not computed")
            pos = " | ".join([f"{NA} [^{marks.setdefault(reason, len(marks) + 1)}]"] + [NA] * (group - 1))
            spread = NA
        lines.append(f"| {_escape(r.name)} | {pos} | {spread} | {_cell(r, 'information_preservation', 4, marks)} |")
    lines += [
        "",
        (
            f"SSIM by position (paper Appendix A.2): frame 0 dropped, the other frames form groups of {group} "
            "(the frames decoded from one latent frame); each position's SSIM is averaged over groups and clips. "
            "A flat profile means every frame of a group is reconstructed equally well. "
            "Information preservation (Appendix A.1): `1 - sum|x - x'| / sum|x|` over all clips, values mapped to [0, 1]."
        ),
        "",
        "## Timing",
        "",
        "| model | reconstruction s/clip | total s |",
        "|---|---|---|",
    ]
    for r in models:
        lines.append(f"| {_escape(r.name)} | {r.timing.get('seconds_per_clip', 0):.3f} | {r.timing.get('reconstruction_seconds', 0):.1f} |")
    notes = sorted({n for r in models for n in r.notes})
    if notes:
        lines += ["", "## Notes", ""] + [f"- {_escape(n)}" for n in notes]
    if marks:
        lines.append("")
        for reason, i in marks.items():
            lines.append(f"[^{i}]: {_escape(reason)}")
    lines += ["", "Plots: `ssim_by_position.png`, `psnr_per_frame.png`. All values: `results.json`.", ""]
    return "\n".join(lines)


def _figure(figsize=(7, 4)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig, out_png: str | os.PathLike[str]) -> Path:
    """Save ``fig`` as ``out_png`` (the format follows the suffix); a failed write leaves no partial image."""
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(out, lambda tmp: fig.savefig(tmp, format=out.suffix[1:].lower() or "png"))


def _subtitle(results: EvalResults) -> str:
    ds = results.dataset
    return f"{ds.get('num_clips')} clips x {ds.get('frames')} frames, protocol {ds.get('protocol')}"


def plot_ssim_by_position(results: EvalResults, out_png: str | os.PathLike[str]) -> Path:
    """SSIM against position in the group, one line per model (models without it are left out)."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    plotted = 0
    for r in results.models.values():
        if r.ssim_by_position:
            ax.plot(range(len(r.ssim_by_position)), r.ssim_by_position, marker="o", label=r.name)
            plotted += 1
    if plotted:
        n = max(len(r.ssim_by_position or []) for r in results.models.values())
        ax.set_xticks(range(n))
        ax.legend(fontsize=8)
    else:
        reason = next(iter(r.unavailable.get("ssim_by_position", "") for r in results.models.values()), "")
        ax.text(0.5, 0.5, f"SSIM by position unavailable\n{reason}", ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_xlabel("position in the frame group (frame 0 dropped)")
    ax.set_ylabel("SSIM")
    ax.set_title(f"SSIM by position in the group ({_subtitle(results)})", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save_figure(fig, out_png)


def _frame_group(results: EvalResults) -> int:
    """Frames per group for the guide lines: the first video model's temporal compression (frame-wise
    models, e.g. bicubic or an image VAE, have 1 and would hide the lines for every model), else 4."""
    compressions = (r.info.get("temporal_compression") or 1 for r in results.models.values())
    return next((int(c) for c in compressions if c > 1), 4)


def plot_psnr_per_frame(results: EvalResults, out_png: str | os.PathLike[str]) -> Path:
    """PSNR against frame index (mean over clips), one line per model; dotted lines mark the start
    of each frame group (frames 1, 5, 9, ... for a temporal compression of 4)."""
    fig = _figure((8, 4))
    ax = fig.add_subplot(1, 1, 1)
    length = 0
    for r in results.models.values():
        ax.plot(range(len(r.psnr_per_frame)), r.psnr_per_frame, marker=".", label=r.name)
        length = max(length, len(r.psnr_per_frame))
    group = _frame_group(results)
    if length <= 33:
        ax.set_xticks(range(length))
    if group > 1:
        for start in range(1, length, group):
            ax.axvline(start - 0.5, color="0.8", linestyle=":", linewidth=1)
    ax.set_xlabel("frame index")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"PSNR per frame ({_subtitle(results)})", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save_figure(fig, out_png)


def write_report(results: EvalResults, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``results.json``, ``results.md``, ``ssim_by_position.png`` and ``psnr_per_frame.png``
    into ``out_dir`` (created; existing files are replaced).  Returns ``{file name: path}``.

    Each file is written whole or not at all; a failed write raises ``OSError`` ("cannot write 'PATH': ...").
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Any] = {}
    # Each file whole or not at all: a full disk must not leave a 0-byte results.json that reads as a result.
    paths["results.json"] = write_atomically(out / "results.json", results.save_json)
    text = markdown_report(results)
    paths["results.md"] = write_atomically(out / "results.md", lambda tmp: tmp.write_text(text))
    paths["ssim_by_position.png"] = plot_ssim_by_position(results, out / "ssim_by_position.png")
    paths["psnr_per_frame.png"] = plot_psnr_per_frame(results, out / "psnr_per_frame.png")
    return paths
