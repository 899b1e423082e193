"""Motion scores and the MotionHD test set (paper Sec. 4.1).

The motion score of a video is the mean optical-flow magnitude, in pixels of frames resized to
768x432, between frames ``frame_interval`` (3) apart.  Frames are sampled every
``frame_interval`` frames (0, 3, 6, ...) and the flow is computed between consecutive samples,
i.e. for the pairs (0, 3), (3, 6), (6, 9), ...; the score is the mean over all pixels and pairs
of ``sqrt(u^2 + v^2)``.  Frames are stretched to 768x432 whatever the aspect ratio (the paper's
videos are 16:9), so the unit is "pixels at 768x432".

Flow methods:

* ``"farneback"`` (default): OpenCV's dense Farnebäck flow on the grey frames
  (``pyr_scale=0.5, levels=5, winsize=21, iterations=5, poly_n=7, poly_sigma=1.5``: a deeper
  pyramid than OpenCV's example so that the 10-40 px motions of real videos at 768x432 are
  tracked).  It is a cheap CPU stand-in: absolute values differ from RAFT's, so thresholds taken
  from the paper (which uses RAFT) should be re-derived from a reference set scored the same way.
* ``"raft"``: torchvision's RAFT-large (as in the paper).  It needs torchvision (not a dependency
  of this project) and a local weight file (``raft_large_C_T_SKHT_V2-ff5fadd5.pth``); both are
  checked with a clear error and nothing is downloaded.

MotionHD (:func:`build_motionhd`) picks ``n`` videos from a scored pool so that the histogram of
their scores over ``[low, high]`` is as uniform as possible (the paper: 2,000 1080p OpenVid
videos, uniform over the range that Kinetics-600 covers), or follows a reference set's histogram.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._files import write_atomically
from ..io import VideoReadError, iter_decoded_frames
from .lpips import WEIGHTS_DIR_ENV, find_weights, load_state_dict_file

__all__ = [
    "MOTION_SIZE",
    "RAFT_WEIGHTS_FILE",
    "iter_frames",
    "flow_magnitude",
    "motion_score",
    "motion_scores",
    "build_motionhd",
    "histogram_targets",
    "write_manifest",
    "read_manifest",
    "plot_motion_histogram",
    "check_plot_path",
    "MissingDependencyError",
]

#: (width, height) at which motion is measured
MOTION_SIZE: tuple[int, int] = (768, 432)
RAFT_WEIGHTS_FILE = "raft_large_C_T_SKHT_V2-ff5fadd5.pth"
RAFT_DESCRIPTION = (f"RAFT-large optical-flow weights {RAFT_WEIGHTS_FILE} "
                    "(torchvision.models.optical_flow.Raft_Large_Weights.C_T_SKHT_V2)")
# worded for both front-ends: the CLI option first, the Python argument in brackets
RAFT_HOW_TO_PASS = (f"Pass --raft-weights /path/to/{RAFT_WEIGHTS_FILE} (raft_weights= in Python), "
                    "or use --method farneback (method='farneback'; no weights needed).")

Warn = Callable[[str], None]


class MissingDependencyError(ImportError, ValueError):
    """An optional package a method needs is missing; also a ValueError, so the CLI reports it in one line."""


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)

FARNEBACK_PARAMS: dict[str, Any] = dict(pyr_scale=0.5, levels=5, winsize=21, iterations=5, poly_n=7, poly_sigma=1.5, flags=0)


def iter_frames(
    path: str | os.PathLike[str],
    size: tuple[int, int] = MOTION_SIZE,
    frame_interval: int = 1,
    max_frames: int | None = None,
) -> Iterator[np.ndarray]:
    """Decode every ``frame_interval``-th frame of a video with PyAV, resized to ``size``
    ``(width, height)``: yields ``uint8`` arrays ``(H, W, 3)`` (RGB).

    Raises:
        FileNotFoundError: no such file.
        VideoReadError: not a video, no video stream, corrupt data (worded as :mod:`ivvae.io` does
            for every other command).
    """
    if frame_interval < 1:
        raise ValueError(f"frame_interval must be >= 1, got {frame_interval}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"cannot read video '{path}': file not found")
    yield from _sampled_frames(iter_decoded_frames(path), size, frame_interval, max_frames)


def _sampled_frames(frames: Iterable[Any], size: tuple[int, int], frame_interval: int, max_frames: int | None) -> Iterator[np.ndarray]:
    w, h = size
    n = 0
    for i, frame in enumerate(frames):
        if i % frame_interval:
            continue
        yield frame.to_ndarray(width=w, height=h, format="rgb24")
        n += 1
        if max_frames is not None and n >= max_frames:
            return


def flow_magnitude(flow: np.ndarray) -> float:
    """Mean magnitude of a dense flow field ``(H, W, 2)``."""
    return float(np.sqrt((flow.astype(np.float64) ** 2).sum(axis=-1)).mean())


class _Farneback:
    def __init__(self) -> None:
        import cv2

        self.cv2 = cv2

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        cv2 = self.cv2
        ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
        flow = cv2.calcOpticalFlowFarneback(ga, gb, None, **FARNEBACK_PARAMS)
        return flow_magnitude(flow)


def _raft_candidates() -> list[Path]:
    import torch

    cands = []
    if os.environ.get(WEIGHTS_DIR_ENV):
        cands.append(Path(os.environ[WEIGHTS_DIR_ENV]) / RAFT_WEIGHTS_FILE)
    cands.append(Path(torch.hub.get_dir()) / "checkpoints" / RAFT_WEIGHTS_FILE)
    return cands


def _import_raft_large() -> Callable[..., Any]:
    """torchvision's RAFT-large builder, checked before the weights: nobody should fetch weights they cannot use."""
    try:
        from torchvision.models.optical_flow import raft_large
    except (ImportError, RuntimeError) as e:  # RuntimeError: a torchvision built for another torch
        raise MissingDependencyError(
            f"--method raft (method='raft' in Python) needs torchvision, which cannot be imported ({' '.join(str(e).split())}): "
            "install a torchvision matching your torch, or use --method farneback (method='farneback')"
        ) from None
    return raft_large


def _load_raft_state(model: Any, path: Path) -> None:
    """Load RAFT weights strictly; a wrong file is one line naming it, not torch's key listing."""
    sd = load_state_dict_file(path, RAFT_DESCRIPTION)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    bad_shape = [k for k in expected if k in sd and sd[k].shape != expected[k].shape]
    if missing or unexpected or bad_shape:
        raise ValueError(
            f"'{path}' is not the {RAFT_WEIGHTS_FILE} state dict: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}, {len(bad_shape)} shape mismatches {bad_shape[:3]}. {RAFT_HOW_TO_PASS}"
        )
    model.load_state_dict(sd, strict=True)


class _Raft:
    """torchvision RAFT-large, loaded from a local file (lazy import of torchvision)."""

    def __init__(self, weights: str | os.PathLike[str] | None, device: str) -> None:
        raft_large = _import_raft_large()
        path = find_weights(weights, description=RAFT_DESCRIPTION, how_to_pass=RAFT_HOW_TO_PASS, candidates=_raft_candidates())
        import torch

        self.torch = torch
        self.device = device
        model = raft_large(weights=None, progress=False)
        _load_raft_state(model, path)
        self.model = model.eval().to(device)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        torch = self.torch

        def prep(x: np.ndarray) -> Any:
            t = torch.from_numpy(x).permute(2, 0, 1)[None].float().to(self.device)
            return t / 127.5 - 1.0  # RAFT expects [-1, 1]

        h, w = a.shape[:2]
        if h % 8 or w % 8:
            raise ValueError(f"RAFT needs sizes divisible by 8, got {w}x{h}")
        with torch.no_grad():
            flow = self.model(prep(a), prep(b))[-1][0]  # (2, H, W), last refinement
        return float(flow.pow(2).sum(0).sqrt().mean())


def motion_score(
    path: str | os.PathLike[str],
    size: tuple[int, int] = MOTION_SIZE,
    frame_interval: int = 3,
    method: str = "farneback",
    max_pairs: int | None = None,
    *,
    raft_weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
) -> float:
    """Mean optical-flow magnitude (pixels at ``size``) over frame pairs ``(t, t + frame_interval)``
    for ``t = 0, frame_interval, 2 * frame_interval, ...`` (see the module docstring).

    Args:
        path: a video file (anything PyAV decodes).
        size: ``(width, height)`` the frames are resized to (768x432 in the paper).
        frame_interval: frames between the two frames of a pair (3).
        method: ``"farneback"`` (OpenCV) or ``"raft"`` (torchvision RAFT-large, needs
            ``raft_weights``).
        max_pairs: use at most the first ``max_pairs`` pairs (``None``: the whole video).
        raft_weights, device: for ``method="raft"``.

    Raises:
        ValueError: the video has fewer than ``frame_interval + 1`` frames, or an unknown method.
    """
    return _score_frames(path, _flow_function(method, raft_weights, device), size, frame_interval, max_pairs)


def _flow_function(method: str, raft_weights: str | os.PathLike[str] | None, device: str) -> Callable[[np.ndarray, np.ndarray], float]:
    if method == "farneback":
        return _Farneback()
    if method == "raft":
        return _Raft(raft_weights, device)
    raise ValueError(f"method must be 'farneback' or 'raft', got {method!r}")


def _score_frames(
    path: str | os.PathLike[str],
    flow_fn: Callable[[np.ndarray, np.ndarray], float],
    size: tuple[int, int] = MOTION_SIZE,
    frame_interval: int = 3,
    max_pairs: int | None = None,
) -> float:
    max_frames = None if max_pairs is None else max_pairs + 1
    prev = None
    total, pairs = 0.0, 0
    for frame in iter_frames(path, size, frame_interval, max_frames):
        if prev is not None:
            total += flow_fn(prev, frame)
            pairs += 1
        prev = frame
    if pairs == 0:
        raise ValueError(f"{str(path)!r} is too short for a motion score (needs > {frame_interval} frames)")
    return total / pairs


def motion_scores(
    paths: Iterable[str | os.PathLike[str]],
    *,
    progress: bool = False,
    skip_errors: bool = True,
    on_skip: Callable[[str, str], None] | None = None,
    method: str = "farneback",
    raft_weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    **kwargs: Any,
) -> dict[str, float]:
    """:func:`motion_score` of many videos -> ``{path: score}``; unreadable / too-short videos are
    skipped: ``on_skip(path, reason)`` is called, else a warning is issued (``skip_errors=False``
    re-raises).  The flow network is built once, before the first video: a missing package or
    weight file is one error, not a skipped video each."""
    flow_fn = _flow_function(method, raft_weights, device)
    paths = [str(p) for p in paths]
    it: Iterable[str] = paths
    if progress:
        from tqdm import tqdm

        it = tqdm(paths, desc="motion score")
    out: dict[str, float] = {}
    for p in it:
        try:
            out[p] = _score_frames(p, flow_fn, **kwargs)
        except (OSError, ValueError) as e:
            if not skip_errors:
                raise
            reason = " ".join((e.cause if isinstance(e, VideoReadError) else str(e)).split())  # the path is named once, by the caller
            if on_skip is not None:
                on_skip(p, reason)
            else:
                warnings.warn(f"skipping {p}: {reason}", stacklevel=2)
    return out


# --------------------------------------------------------------------------------------------
# MotionHD selection
# --------------------------------------------------------------------------------------------
def histogram_targets(capacity: Sequence[int], weights: Sequence[float], n: int) -> np.ndarray:
    """Integer counts per bin, ``<= capacity``, summing to ``min(n, sum(capacity))``, as close as
    possible to ``n * weights / sum(weights)``: bins that cannot reach their share are filled and
    the deficit is shared among the others in proportion to their weights (water filling), then
    the shares are rounded by largest remainder."""
    cap = np.asarray(capacity, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64).copy()
    if cap.shape != w.shape or (w < 0).any():
        raise ValueError("capacity and weights must have the same length and weights must be >= 0")
    total = int(min(n, cap.sum()))
    # a bin with zero weight gets nothing unless every weighted bin is exhausted
    w[cap == 0] = 0.0
    share = np.zeros(len(cap), dtype=np.float64)
    active = (w > 0) & (cap > 0)
    remaining = float(total)
    while remaining > 1e-9 and active.any():
        s = remaining * w * active / w[active].sum()
        full = active & (s >= cap - share)
        if not full.any():
            share += s
            remaining = 0.0
            break
        remaining -= float((cap[full] - share[full]).sum())
        share[full] = cap[full]
        active &= ~full
    if remaining > 1e-9:  # weighted bins exhausted: spread the rest uniformly over leftover capacity
        rest = cap - share
        share += np.minimum(rest, remaining * rest / max(rest.sum(), 1e-12))
    counts = np.floor(share + 1e-9).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        frac = share - counts
        frac[counts >= cap] = -1.0
        for i in np.argsort(-frac, kind="stable")[:short]:
            counts[i] += 1
    return counts


def build_motionhd(
    scores: Mapping[str, float],
    n: int,
    low: float,
    high: float,
    bins: int = 20,
    seed: int = 0,
    reference_scores: Iterable[float] | None = None,
    *,
    warn: Warn | None = None,
) -> list[str]:
    """Choose ``n`` videos whose motion-score histogram over ``[low, high]`` is as uniform as
    possible (paper Sec. 4.1), or, with ``reference_scores``, proportional to the reference set's
    histogram on the same ``bins`` bins.

    Videos outside ``[low, high]`` are never chosen.  Within a bin videos are drawn at random
    (``seed``).  A bin with too few videos contributes all of them and the deficit is shared among
    the other bins.  If the pool holds fewer than ``n`` videos in range, all of them are returned
    and ``warn(message)`` is called (default: :func:`warnings.warn`).  The result is sorted by score.
    """
    if not (high > low):
        raise ValueError(f"need low < high, got {low}, {high}")
    if n < 0 or bins < 1:
        raise ValueError("n must be >= 0 and bins >= 1")
    edges = np.linspace(low, high, bins + 1)
    items = [(p, float(s)) for p, s in scores.items() if math.isfinite(float(s)) and low <= float(s) <= high]
    vals = np.array([s for _, s in items], dtype=np.float64)
    # bin index with np.histogram's convention (last bin closed)
    idx = np.clip(np.searchsorted(edges, vals, side="right") - 1, 0, bins - 1) if len(vals) else np.zeros(0, np.int64)
    members: list[list[int]] = [[] for _ in range(bins)]
    for i, b in enumerate(idx):
        members[int(b)].append(i)
    if reference_scores is not None:
        ref = np.asarray([float(r) for r in reference_scores], dtype=np.float64)
        weights, _ = np.histogram(ref, bins=edges)
        if weights.sum() == 0:
            raise ValueError(f"no reference score falls in [{low}, {high}]")
        weights = weights.astype(np.float64)
    else:
        weights = np.ones(bins)
    counts = histogram_targets([len(m) for m in members], weights, n)
    if counts.sum() < n:
        (warn or _warn)(f"only {int(counts.sum())} videos have a motion score in [{low}, {high}]; asked for {n}, choosing all of them")
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for m, c in zip(members, counts, strict=True):
        if c:
            chosen.extend(int(i) for i in rng.choice(np.asarray(m), size=int(c), replace=False))
    chosen.sort(key=lambda i: (items[i][1], items[i][0]))
    return [items[i][0] for i in chosen]


def write_manifest(paths: Iterable[str], scores: Mapping[str, float], out_csv: str | os.PathLike[str]) -> Path:
    """Write ``path,motion_score`` rows (a header first) for ``paths``; returns the file path.

    The file is written whole or not at all: a failed write (``OSError`` "cannot write 'PATH': ...")
    leaves no partial manifest to be read as a shorter one.
    """
    out = Path(out_csv)
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(["path", "motion_score"])
    for p in paths:
        w.writerow([p, repr(float(scores[p]))])
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(out, lambda tmp: tmp.write_text(text.getvalue(), newline=""))


def _manifest_rows(path: str | os.PathLike[str]) -> list[tuple[int, str, float]]:
    """``(line, path, score)`` of each row of a motion manifest."""
    not_manifest = f"{str(path)!r} is not a motion manifest (a CSV with columns path,motion_score, as `ivvae motion-score` writes)"
    try:
        with Path(path).open(newline="") as f:
            r = csv.DictReader(f)
            if r.fieldnames is None or "path" not in r.fieldnames or "motion_score" not in r.fieldnames:
                raise ValueError(not_manifest)
            return [(r.line_num, row["path"], float(row["motion_score"])) for row in r]
    except (UnicodeDecodeError, csv.Error, TypeError) as error:
        raise ValueError(f"{not_manifest}: {' '.join(str(error).split())}") from None
    except ValueError as error:
        raise ValueError(not_manifest if str(error) == not_manifest else f"{not_manifest}: {error}") from None


def _checked_scores(path: str | os.PathLike[str], rows: Iterable[tuple[int, str, float]], warn: Warn) -> dict[str, float]:
    """``{path: score}`` of the usable rows: a negative score or a video listed with two scores is an
    error (which one is right?); NaN / infinite scores and exact repeats are left out with a warning."""
    scores: dict[str, float] = {}
    first_line: dict[str, int] = {}
    dropped = repeats = 0
    for line, video, score in rows:
        if score < 0:
            raise ValueError(f"'{path}' line {line}: motion score {score} of '{video}' is negative, but a flow magnitude is >= 0; "
                             "fix or remove that row (or score the video again with `ivvae motion-score`)")
        if not math.isfinite(score):
            dropped += 1
        elif video not in scores:
            scores[video], first_line[video] = score, line
        elif scores[video] == score:
            repeats += 1
        else:
            raise ValueError(f"'{path}' line {line}: '{video}' is listed again with another score ({score}; {scores[video]} on line "
                             f"{first_line[video]}); keep one row per video (were two scoring runs or methods merged?)")
    if dropped:
        warn(f"'{path}': left out {dropped} row(s) whose motion score is NaN or infinite")
    if repeats:
        warn(f"'{path}': left out {repeats} repeated row(s) (same video, same score)")
    return scores


def read_manifest(path: str | os.PathLike[str], *, warn: Warn | None = None) -> dict[str, float]:
    """Read a manifest written by :func:`write_manifest` -> ``{path: score}`` (file order).

    Raises ValueError naming the line for a negative score (a magnitude is >= 0) or a video listed
    twice with different scores.  Rows with a NaN / infinite score and exact repeats are left out
    and counted in a message to ``warn`` (default: :func:`warnings.warn`).
    """
    return _checked_scores(path, _manifest_rows(path), warn or _warn)


def check_plot_path(path: str | os.PathLike[str], what: str = "plot") -> None:
    """The plot file must end in an image format matplotlib writes: checked before the work, not after it."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in formats:
        reason = f"'.{ext}' is not an image format matplotlib writes" if ext else "no extension to tell the image format"
        raise ValueError(f"{what} '{os.fspath(path)}': {reason}; end the name in .png, .pdf or .svg "
                         f"(also possible: {', '.join(sorted(set(formats) - {'png', 'pdf', 'svg'}))})")


def plot_motion_histogram(
    scores: Mapping[str, float] | Iterable[float],
    out_png: str | os.PathLike[str],
    chosen: Iterable[str] | None = None,
    *,
    bins: int = 20,
    value_range: tuple[float, float] | None = None,
    title: str = "Motion score (mean flow magnitude at 768x432, interval 3)",
) -> Path:
    """Histogram of motion scores as an image (the format follows the file name: png, pdf, svg ...;
    matplotlib, Agg canvas; no display needed).

    ``scores`` is a ``{path: score}`` mapping (or plain values); ``chosen`` (paths, needs a mapping)
    is overlaid, e.g. the MotionHD selection over its candidate pool.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_plot_path(out_png)
    if isinstance(scores, Mapping):
        values = np.array([float(v) for v in scores.values()], dtype=np.float64)
    else:
        values = np.array([float(v) for v in scores], dtype=np.float64)
        if chosen is not None:
            raise ValueError("chosen needs scores as a {path: score} mapping")
    values = values[np.isfinite(values)]
    if value_range is None:
        value_range = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
        if value_range[0] == value_range[1]:
            value_range = (value_range[0] - 0.5, value_range[1] + 0.5)
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(values, bins=bins, range=value_range, color="0.7", label=f"all ({len(values)})")
    if chosen is not None:
        assert isinstance(scores, Mapping)
        sel = np.array([float(scores[p]) for p in chosen], dtype=np.float64)
        ax.hist(sel, bins=bins, range=value_range, color="tab:blue", alpha=0.8, label=f"chosen ({len(sel)})")
    ax.set_xlabel("motion score (px)")
    ax.set_ylabel("videos")
    ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(out, lambda tmp: fig.savefig(tmp, format=out.suffix[1:].lower()))  # no partial image
