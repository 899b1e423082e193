"""Reconstruction metrics for videos: PSNR, SSIM, SSIM by position in the group, information
preservation, and running accumulators for an evaluation loop.

Conventions
-----------
* A batch of videos is a float tensor ``(B, 3, T, H, W)``; a single clip ``(3, T, H, W)`` is
  treated as a batch of one.  Values are in ``[low, low + data_range]``; the project default is
  ``[-1, 1]`` (``data_range=2.0``, ``low=-1.0``).
* Every metric is computed **per frame** and a clip's value is the **mean over its frames** (the
  usual convention of video-VAE papers, e.g. OD-VAE, CV-VAE, Open-Sora-Plan).  A set's value is the
  mean over clips.
* By default both inputs are clamped to the value range first (``clamp=True``): decoders can
  overshoot and a video written to disk would be clipped the same way.
* Colour: every metric uses the frames' channels as given (RGB), with no conversion to luma (Y):
  PSNR's MSE is over all channels of a frame, SSIM is averaged over channels.
* PSNR: ``10 * log10(data_range**2 / MSE)`` per frame, which equals PSNR on frames mapped to
  ``[0, 1]`` with peak 1 or to ``[0, 255]`` with peak 255.  Identical frames (MSE = 0) give
  ``inf``; every frame's PSNR is capped at ``max_db`` (default 100 dB) so that means stay finite.
* SSIM: frames are mapped to ``[0, 1]`` (``(x - low) / data_range``) and SSIM is computed with
  data range 1 exactly as ``skimage.metrics.structural_similarity(a, b, channel_axis=-1,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)``: an 11x11
  Gaussian window (sigma 1.5, truncated at 3.5 sigma like ``scipy.ndimage``), K1 = 0.01,
  K2 = 0.03, population covariances, the SSIM map averaged over the pixels at least 5 pixels away
  from the border (skimage crops ``(win - 1) / 2`` pixels), per RGB channel, then averaged over
  channels.  Because SSIM is invariant to a common scaling of images and constants, this also
  equals skimage on ``uint8`` frames with ``data_range=255``.  The local statistics are computed
  in float32 by default (within ~2e-6 of skimage's float64 result on real frames, and fast on
  CPU); pass ``compute_dtype=torch.float64`` for agreement to ~1e-12 on exact inputs (uint8 frames;
  float32 frames in [-1, 1] carry their own rounding, ~1e-8 in SSIM).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = [
    "psnr",
    "psnr_per_frame",
    "ssim",
    "ssim_per_frame",
    "ssim_images",
    "gaussian_window",
    "SSIM_WINDOW",
    "ssim_by_group_position",
    "information_preservation",
    "InformationPreservation",
    "MeanAccumulator",
    "MetricAccumulator",
]

Reduction = Literal["mean", "none", "sum"]

SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scipy.ndimage / skimage truncation: radius = int(3.5 * 1.5 + 0.5) = 5
#: Side of the SSIM window in pixels (11 for sigma 1.5): frames must be at least this large.
SSIM_WINDOW = 2 * int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5) + 1


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
#: Float inputs further than this many value ranges outside ``[low, low + data_range]`` follow
#: another convention (e.g. 0..255 frames with the default [-1, 1]): decoders overshoot far less.
FAR_OUTSIDE_RANGES = 4


def _as_batch(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Return ``x`` as ``(B, C, T, H, W)``; a single clip ``(C, T, H, W)`` becomes a batch of 1."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 4:
        x = x.unsqueeze(0)
    if x.dim() != 5:
        raise ValueError(
            f"{name} must be a video (B, C, T, H, W) or a single clip (C, T, H, W); "
            f"got shape {tuple(x.shape)}"
        )
    if x.shape[-1] == 3 and x.shape[1] != 3:  # per-frame metrics of (T, H, W, 3) frames would mix rows and frames
        raise ValueError(f"{name} has shape {tuple(x.shape)}, channels last: videos are (B, 3, T, H, W) in [-1, 1] "
                         "(convert uint8 (T, H, W, 3) frames with ivvae.io.frames_to_tensor)")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): metrics need at least one frame of one pixel")
    return x


def _pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _as_batch(x, "x"), _as_batch(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return x, y


def _finite_number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError):
        return None
    return number if math.isfinite(number) else None


def _check_range(data_range: float, low: float) -> tuple[float, float]:
    """``(data_range, low)`` as floats, validated."""
    width, start = _finite_number(data_range), _finite_number(low)
    if width is None or width <= 0:
        raise ValueError(f"data_range must be a positive finite number, got {data_range!r}")
    if start is None:
        raise ValueError(f"low must be a finite number, got {low!r}")
    return width, start


def _check_values(name: str, x: torch.Tensor, data_range: float, low: float) -> None:
    """Values in another convention than ``[low, low + data_range]`` (0..255 frames with the default
    [-1, 1], say) give a plausible but wrong number after clamping: refuse them, and NaN/inf."""
    if x.is_floating_point():
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} holds NaN or infinite values")
        lowest, highest = low - FAR_OUTSIDE_RANGES * data_range, low + (1 + FAR_OUTSIDE_RANGES) * data_range
    else:  # integer frames do not overshoot: every value must lie in the range
        lowest, highest = low, low + data_range
    found = (float(x.min()), float(x.max()))
    if found[0] < lowest or found[1] > highest:
        raise ValueError(f"{name} ({str(x.dtype).removeprefix('torch.')}) holds values in [{found[0]:g}, {found[1]:g}], far outside "
                         f"the value range [{low:g}, {low + data_range:g}] (data_range={data_range:g}, low={low:g}); pass the "
                         "range of the data (data_range=255, low=0 for 0..255 frames) or map it to [-1, 1]")


def _inputs(x: torch.Tensor, y: torch.Tensor, data_range: float, low: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` and ``y`` as batches of the same shape, in the same value convention."""
    x, y = _pair(x, y)
    data_range, low = _check_range(data_range, low)
    if x.is_floating_point() != y.is_floating_point():
        raise ValueError(f"x is {str(x.dtype).removeprefix('torch.')} and y is {str(y.dtype).removeprefix('torch.')}: "
                         "integer frames and float videos use different value ranges; convert both alike "
                         "(ivvae.io.frames_to_tensor maps uint8 frames to [-1, 1])")
    _check_values("x", x, data_range, low)
    _check_values("y", y, data_range, low)
    return x, y


def _reduce(values: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean(dim=0)
    if reduction == "sum":
        return values.sum(dim=0)
    raise ValueError(f"reduction must be 'mean', 'none' or 'sum', got {reduction!r}")


def _to_unit(x: torch.Tensor, data_range: float, low: float, clamp: bool, dtype: torch.dtype) -> torch.Tensor:
    """Map values in ``[low, low + data_range]`` to ``[0, 1]`` (optionally clamping)."""
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    x = (x.to(dtype) - low) / data_range
    if clamp:
        x = x.clamp(0.0, 1.0)
    return x


# --------------------------------------------------------------------------------------------
# PSNR
# --------------------------------------------------------------------------------------------
def psnr_per_frame(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 2.0,
    *,
    low: float = -1.0,
    clamp: bool = True,
    max_db: float = 100.0,
) -> torch.Tensor:
    """PSNR (dB) of every frame: ``(B, T)`` (float64).

    Args:
        x, y: videos ``(B, 3, T, H, W)`` or a clip ``(3, T, H, W)`` with values in
            ``[low, low + data_range]``.
        data_range: width of the value range (2.0 for ``[-1, 1]``, 1.0 for ``[0, 1]``, 255 for
            ``[0, 255]``).
        low: lower end of the value range (only used for clamping).
        clamp: clamp both inputs to the value range first.
        max_db: cap applied to every frame's PSNR; identical frames (MSE 0) give exactly ``max_db``.
    """
    x, y = _inputs(x, y, data_range, low)
    xu = _to_unit(x, data_range, low, clamp, torch.float64)
    yu = _to_unit(y, data_range, low, clamp, torch.float64)
    mse = (xu - yu).pow(2).mean(dim=(1, 3, 4))  # (B, T), on [0, 1] values -> peak 1
    out = 10.0 * torch.log10(1.0 / mse)  # inf where mse == 0
    return out.clamp(max=max_db)


def psnr(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 2.0,
    reduction: Reduction = "mean",
    *,
    low: float = -1.0,
    clamp: bool = True,
    max_db: float = 100.0,
) -> torch.Tensor:
    """PSNR of videos: the mean over frames of the per-frame PSNR (see :func:`psnr_per_frame`).

    Returns ``(B,)`` for ``reduction="none"``, else a scalar (mean or sum over clips).
    """
    return _reduce(psnr_per_frame(x, y, data_range, low=low, clamp=clamp, max_db=max_db).mean(dim=1), reduction)


# --------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------
def gaussian_window(
    sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The normalised 1-D Gaussian of ``scipy.ndimage.gaussian_filter1d``: radius
    ``int(truncate * sigma + 0.5)`` (11 taps for sigma 1.5)."""
    if not (math.isfinite(float(sigma)) and float(sigma) > 0):
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
    radius = int(truncate * float(sigma) + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return (w / w.sum()).to(dtype)


def _band_matrix(n: int, win: torch.Tensor) -> torch.Tensor:
    """``(n - k + 1, n)`` matrix whose rows are the window shifted by one: ``G @ v`` is the
    'valid' correlation of ``v`` with ``win``."""
    k = win.numel()
    m = n - k + 1
    g = torch.zeros(m, n, dtype=win.dtype, device=win.device)
    rows = torch.arange(m, device=win.device)
    for i in range(k):
        g[rows, rows + i] = win[i]
    return g


def _filter_valid(img: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter, 'valid' region only: ``(N, C, H, W) -> (N, C, H-2r, W-2r)``.

    The valid region is exactly what skimage keeps after cropping ``r = (win - 1) / 2`` pixels,
    so no border mode is needed.  float64 uses two banded matrix products (CPU depthwise
    convolutions are very slow in float64), other dtypes a depthwise convolution.
    """
    if img.dtype == torch.float64:
        gh = _band_matrix(img.shape[-2], win)
        gw = _band_matrix(img.shape[-1], win)
        return gh @ img @ gw.T
    c = img.shape[1]
    k = win.numel()
    wh = win.view(1, 1, k, 1).expand(c, 1, k, 1)
    ww = win.view(1, 1, 1, k).expand(c, 1, 1, k)
    return F.conv2d(F.conv2d(img, wh, groups=c), ww, groups=c)


def ssim_images(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    *,
    sigma: float = SSIM_SIGMA,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
) -> torch.Tensor:
    """Mean SSIM of images ``(N, C, H, W)`` -> ``(N,)`` (channel-averaged, skimage-exact).

    No clamping or range mapping is done here; the statistics are computed in the dtype of ``x``.
    """
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise TypeError(f"expected two torch.Tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"expected two (N, C, H, W) tensors of the same shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    if not (x.is_floating_point() and y.is_floating_point()):  # integer local means would be truncated
        raise ValueError(f"expected float images, got {x.dtype} and {y.dtype} (for uint8 frames use ssim(x, y, data_range=255, low=0))")
    win = gaussian_window(sigma, dtype=x.dtype).to(x.device)
    k = win.numel()
    if x.shape[-1] < k or x.shape[-2] < k:
        raise ValueError(f"frames must be at least {k}x{k} pixels for SSIM, got {x.shape[-1]}x{x.shape[-2]} (width x height)")
    n, c = x.shape[:2]
    # filter the five maps in one call: (N, 5C, H, W)
    stacked = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    mu_x, mu_y, e_xx, e_yy, e_xy = _filter_valid(stacked, win).split(c, dim=1)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov_xy = e_xy - mu_x * mu_y
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    smap = num / den
    return smap.mean(dim=(2, 3)).mean(dim=1)


def ssim_per_frame(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 2.0,
    *,
    low: float = -1.0,
    clamp: bool = True,
    compute_dtype: torch.dtype = torch.float32,
    frame_chunk: int = 8,
) -> torch.Tensor:
    """SSIM of every frame ``(B, T)`` (float64; frames mapped to ``[0, 1]``; see the module docstring).

    Args:
        x, y: videos ``(B, 3, T, H, W)`` or a clip ``(3, T, H, W)`` in ``[low, low + data_range]``.
        data_range, low: the value range of the inputs.
        clamp: clamp both inputs to the value range first.
        compute_dtype: dtype of the local statistics: float32 (default) is within ~2e-6 of
            skimage, float64 matches it to ~1e-12 but is several times slower on CPU.
        frame_chunk: frames processed per call to bound memory.
    """
    x, y = _inputs(x, y, data_range, low)
    if not (isinstance(compute_dtype, torch.dtype) and compute_dtype.is_floating_point):
        raise ValueError(f"compute_dtype must be a float dtype (torch.float32 or torch.float64), got {compute_dtype!r}")
    if isinstance(frame_chunk, bool) or not isinstance(frame_chunk, int) or frame_chunk < 1:
        raise ValueError(f"frame_chunk must be an integer >= 1, got {frame_chunk!r}")
    b, c, t, h, w = x.shape
    xf = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    yf = y.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    out = []
    for i in range(0, b * t, frame_chunk):
        xu = _to_unit(xf[i : i + frame_chunk], data_range, low, clamp, compute_dtype)
        yu = _to_unit(yf[i : i + frame_chunk], data_range, low, clamp, compute_dtype)
        out.append(ssim_images(xu, yu, 1.0))
    return torch.cat(out).view(b, t).to(torch.float64)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 2.0,
    reduction: Reduction = "mean",
    *,
    low: float = -1.0,
    clamp: bool = True,
    compute_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """SSIM of videos: mean over frames of the per-frame SSIM (see :func:`ssim_per_frame`).

    Returns ``(B,)`` for ``reduction="none"``, else a scalar.
    """
    per_frame = ssim_per_frame(x, y, data_range, low=low, clamp=clamp, compute_dtype=compute_dtype)
    return _reduce(per_frame.mean(dim=1), reduction)


def ssim_by_group_position(
    x: torch.Tensor,
    y: torch.Tensor,
    group_size: int = 4,
    data_range: float = 2.0,
    reduction: Reduction = "mean",
    *,
    low: float = -1.0,
    clamp: bool = True,
    per_frame: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean SSIM for each position inside a temporal group (paper Appendix A.2).

    On clips of ``1 + k * group_size`` frames, frame 0 (encoded alone) is dropped and the rest
    form ``k`` groups of ``group_size`` consecutive frames (the frames decoded from one latent
    frame).  For each position ``0 .. group_size-1`` the SSIM is averaged over the ``k`` groups.
    A flat profile means every frame of a group is reconstructed equally well.

    Args:
        x, y: videos ``(B, 3, T, H, W)`` with ``T = 1 + k * group_size``.
        group_size: temporal compression factor (4).
        per_frame: optionally, precomputed :func:`ssim_per_frame` ``(B, T)`` to avoid recomputing.

    Returns:
        ``(B, group_size)`` for ``reduction="none"``, else ``(group_size,)`` (mean/sum over clips).
    """
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be an integer >= 1 (frames per latent frame), got {group_size!r}")
    if per_frame is None:
        per_frame = ssim_per_frame(x, y, data_range, low=low, clamp=clamp)
    else:  # values of other clips than x and y would be averaged without a word
        expected = tuple(_pair(x, y)[0].shape[:3:2]) if x is not None or y is not None else None  # (B, T)
        got = tuple(per_frame.shape) if isinstance(per_frame, torch.Tensor) else type(per_frame).__name__
        if not isinstance(per_frame, torch.Tensor) or per_frame.dim() != 2 or (expected is not None and got != expected):
            raise ValueError(f"per_frame must be ssim_per_frame(x, y), shape (B, T){f' = {expected}' if expected else ''}, got {got}")
    t = per_frame.shape[1]
    if t < 1 + group_size or (t - 1) % group_size != 0:
        raise ValueError(f"clips must have 1 + k*{group_size} frames (k >= 1), got {t}")
    groups = per_frame[:, 1:].reshape(per_frame.shape[0], (t - 1) // group_size, group_size)
    return _reduce(groups.mean(dim=1), reduction)


# --------------------------------------------------------------------------------------------
# Information preservation (Appendix A.1)
# --------------------------------------------------------------------------------------------
def _ip_sums(
    x: torch.Tensor, x_rec: torch.Tensor, data_range: float, low: float, clamp: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    x, x_rec = _inputs(x, x_rec, data_range, low)
    xu = _to_unit(x, data_range, low, clamp, torch.float64)
    ru = _to_unit(x_rec, data_range, low, clamp, torch.float64)
    err = (xu - ru).abs().sum(dim=(1, 2, 3, 4))
    ref = xu.abs().sum(dim=(1, 2, 3, 4))
    return err, ref


def information_preservation(
    x: torch.Tensor,
    x_rec: torch.Tensor,
    data_range: float = 2.0,
    reduction: Literal["none", "total"] = "none",
    *,
    low: float = -1.0,
    clamp: bool = True,
) -> torch.Tensor:
    """Information preservation ``1 - sum|x - x'| / sum|x|`` (paper Appendix A.1).

    Values are first mapped to ``[0, 1]`` (``(v - low) / data_range``): on ``[-1, 1]`` values
    ``sum|x|`` has no meaning as "amount of signal".  ``x`` is the original, ``x_rec`` the
    reconstruction.

    Args:
        reduction: ``"none"`` -> one value per clip ``(B,)``; ``"total"`` -> one value for the whole
            batch with sums over all samples (not the mean of per-clip ratios).  For a data set use
            :class:`InformationPreservation`, which keeps the sums across batches.
    """
    err, ref = _ip_sums(x, x_rec, data_range, low, clamp)
    if reduction == "none":
        return 1.0 - err / ref
    if reduction == "total":
        return 1.0 - err.sum() / ref.sum()
    raise ValueError(f"reduction must be 'none' or 'total', got {reduction!r}")


class InformationPreservation:
    """Accumulates information preservation over a data set: ``1 - sum|x - x'| / sum|x|`` with
    both sums taken over every sample seen (values mapped to ``[0, 1]``).

    Example::

        ip = InformationPreservation()
        for x, x_rec in batches:
            ip.update(x, x_rec)
        value = ip.compute()
    """

    def __init__(self, data_range: float = 2.0, *, low: float = -1.0, clamp: bool = True) -> None:
        self.data_range = data_range
        self.low = low
        self.clamp = clamp
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        self.abs_error = 0.0
        self.abs_signal = 0.0
        self.count = 0

    @torch.no_grad()
    def update(self, x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
        """Add a batch; returns the per-clip values ``(B,)`` of this batch."""
        err, ref = _ip_sums(x, x_rec, self.data_range, self.low, self.clamp)
        self.abs_error += float(err.sum())
        self.abs_signal += float(ref.sum())
        self.count += int(err.numel())
        return 1.0 - err / ref

    def merge(self, other: InformationPreservation) -> None:
        """Add the sums of another accumulator (e.g. from another process)."""
        self.abs_error += other.abs_error
        self.abs_signal += other.abs_signal
        self.count += other.count

    def compute(self) -> float:
        """``1 - sum|x - x'| / sum|x|`` over all samples seen."""
        if self.count == 0 or self.abs_signal == 0.0:
            raise RuntimeError("InformationPreservation.compute() called before any (non-black) sample")
        return 1.0 - self.abs_error / self.abs_signal


# --------------------------------------------------------------------------------------------
# Running means
# --------------------------------------------------------------------------------------------
class MeanAccumulator:
    """Running mean of a per-sample quantity (scalar or fixed-shape tensor per sample).

    ``update(values)`` takes a tensor whose first dimension indexes samples (e.g. ``(B,)`` PSNRs or
    ``(B, 4)`` SSIM-by-position values); sums are kept in float64.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        self.total: torch.Tensor | None = None
        self.count = 0

    @torch.no_grad()
    def update(self, values: torch.Tensor | float) -> None:
        """Add samples: a tensor ``(N, ...)``, or a python/0-d value counted as one sample."""
        v = torch.as_tensor(values).detach().to("cpu", torch.float64)
        if v.dim() == 0:
            v = v.unsqueeze(0)
        if v.shape[0] == 0:
            return
        s = v.sum(dim=0)
        if self.total is None:
            self.total = s
        else:
            if s.shape != self.total.shape:
                raise ValueError(f"per-sample shape changed from {tuple(self.total.shape)} to {tuple(s.shape)}")
            self.total = self.total + s
        self.count += v.shape[0]

    def merge(self, other: MeanAccumulator) -> None:
        """Add another accumulator's sums."""
        if other.total is None:
            return
        self.total = other.total.clone() if self.total is None else self.total + other.total
        self.count += other.count

    def compute(self) -> torch.Tensor:
        """The mean over all samples (0-d tensor for scalar samples)."""
        if self.total is None or self.count == 0:
            raise RuntimeError("MeanAccumulator.compute() called before any update")
        return self.total / self.count


class MetricAccumulator:
    """Running means of several named metrics for an evaluation loop.

    Example::

        acc = MetricAccumulator()
        for x, x_rec in loader:
            acc.update(psnr=psnr(x, x_rec, reduction="none"), ssim=ssim(x, x_rec, reduction="none"))
        acc.compute()   # {"psnr": 34.1, "ssim": 0.93}

    Scalar-per-sample metrics are returned as floats, vector ones (e.g. SSIM by group position)
    as lists of floats.
    """

    def __init__(self) -> None:
        self._acc: dict[str, MeanAccumulator] = {}

    def reset(self) -> None:
        """Forget everything seen so far."""
        self._acc.clear()

    def update(self, values: Mapping[str, torch.Tensor | float] | None = None, **kwargs: torch.Tensor | float) -> None:
        """Add per-sample values for one or more metrics (``update(psnr=t, ssim=t)`` or a dict)."""
        items = dict(values or {})
        items.update(kwargs)
        for name, v in items.items():
            self._acc.setdefault(name, MeanAccumulator()).update(v)

    def merge(self, other: MetricAccumulator) -> None:
        """Add another accumulator's sums."""
        for name, acc in other._acc.items():
            self._acc.setdefault(name, MeanAccumulator()).merge(acc)

    def count(self, name: str) -> int:
        """Number of samples seen for ``name``."""
        return self._acc[name].count if name in self._acc else 0

    def compute(self) -> dict[str, float | list[float]]:
        """Means of every metric seen: floats for scalar metrics, lists for vector ones."""
        out: dict[str, float | list[float]] = {}
        for name, acc in self._acc.items():
            m = acc.compute()
            out[name] = float(m) if m.dim() == 0 else [float(v) for v in m.flatten()]
        return out

    def __contains__(self, name: object) -> bool:
        return name in self._acc

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v}" for k, v in self.compute().items()) if self._acc else ""
        return f"MetricAccumulator({parts})"
