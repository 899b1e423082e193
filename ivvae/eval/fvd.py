"""Fréchet Video Distance with the I3D network (:mod:`ivvae.eval.i3d`).

Pipeline (the one of the common PyTorch FVD code built on ``i3d_pretrained_400.pt``: VideoGPT,
``common_metrics_on_video_quality`` "videogpt" variant, Open-Sora-Plan):

1. :func:`preprocess_i3d`: videos ``(B, 3, T, H, W)`` in ``[-1, 1]`` are mapped to ``[0, 1]``,
   the short side is resized to 224 (bilinear, ``align_corners=False``, no antialiasing; the long
   side becomes ``ceil(long * 224 / short)``), centre-cropped to 224x224 and mapped back to
   ``[-1, 1]``.  Square clips are simply resized to 224x224.  The reference scripts first quantise
   the clips to ``uint8`` by truncation (``(x * 255).astype(uint8)``); ``quantize=True`` does the
   same, the default keeps the float values.
2. :class:`I3DFeatureExtractor`: the 400-d I3D logits averaged over time (``features="pool"`` for
   the 1024-d pooled features instead).  Clips need at least 9 frames (17-frame clips are fine).
3. Fréchet distance between Gaussians fitted to the two feature sets (mean, unbiased covariance):
   ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``.

:func:`frechet_distance` is the reference formula with ``scipy.linalg.sqrtm`` (pytorch-fid's
handling: if the square root is not finite, ``eps * I`` is added to both covariances; a complex
result whose diagonal has an imaginary part above 1e-3 is an error, otherwise the real part is
used).  :func:`frechet_distance_torch` computes ``tr((S1 S2)^(1/2))`` as
``sum sqrt(eig(S1^(1/2) S2 S1^(1/2)))`` with symmetric eigendecompositions in float64, which is
faster and avoids complex arithmetic (the eigenvalues of ``S1 S2`` equal those of the symmetric
PSD matrix ``S1^(1/2) S2 S1^(1/2)``).  With fewer samples than feature dimensions the covariances
are singular and FVD is poorly defined; use sets of several hundred clips or more (the paper uses
2,400 for reconstruction and 2,048 for generation).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .i3d import MIN_FRAMES, InceptionI3d, load_i3d
from .metrics import _check_range, _check_values

__all__ = [
    "preprocess_i3d",
    "I3DFeatureExtractor",
    "compute_statistics",
    "frechet_distance",
    "frechet_distance_torch",
    "fvd_from_features",
    "FVDAccumulator",
]

ArrayLike = Any  # np.ndarray | torch.Tensor


def preprocess_i3d(
    videos: torch.Tensor,
    resolution: int = 224,
    *,
    data_range: float = 2.0,
    low: float = -1.0,
    quantize: bool = False,
) -> torch.Tensor:
    """Resize / centre-crop videos for I3D: ``(B, 3, T, H, W)`` (or ``(3, T, H, W)``) in
    ``[low, low + data_range]`` -> ``(B, 3, T, resolution, resolution)`` float32 in ``[-1, 1]``.

    Values far outside that range (uint8 or 0..255 clips with the default ``[-1, 1]``), NaN and
    infinities raise ``ValueError``; for 0..255 clips pass ``data_range=255, low=0``."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer (224 for I3D), got {resolution!r}")
    videos = _video_batch(videos)
    data_range, low = _check_range(data_range, low)
    # uint8 or 0..255 clips with the default [-1, 1] would be clamped to white frames: a plausible but meaningless FVD
    _check_values("videos", videos, data_range, low)
    x = ((videos.float() - low) / data_range).clamp(0.0, 1.0)
    if quantize:
        x = torch.floor(x * 255.0) / 255.0
    b, c, t, h, w = x.shape
    if (h, w) != (resolution, resolution):
        scale = resolution / min(h, w)
        size = (resolution, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), resolution)
        if h == w:
            size = (resolution, resolution)
        x = F.interpolate(x.reshape(b, c * t, h, w), size=size, mode="bilinear", align_corners=False)
        hh, ww = x.shape[-2:]
        top, left = (hh - resolution) // 2, (ww - resolution) // 2
        x = x[:, :, top : top + resolution, left : left + resolution].reshape(b, c, t, resolution, resolution)
    return (x - 0.5) * 2.0


def _video_batch(videos: torch.Tensor) -> torch.Tensor:
    """``(B, 3, T, H, W)`` (a clip ``(3, T, H, W)`` becomes a batch of one), not empty."""
    if not isinstance(videos, torch.Tensor):
        raise TypeError(f"videos must be a torch.Tensor (B, 3, T, H, W) in [-1, 1], got {type(videos).__name__}")
    if videos.dim() == 4:
        videos = videos.unsqueeze(0)
    if videos.dim() != 5 or videos.shape[1] != 3:
        raise ValueError(f"expected videos (B, 3, T, H, W), got shape {tuple(videos.shape)}")
    if videos.numel() == 0:
        raise ValueError(f"expected at least one video of one frame, got an empty tensor of shape {tuple(videos.shape)}")
    return videos


class I3DFeatureExtractor:
    """Computes I3D embeddings of videos for FVD.

    Args:
        i3d: a loaded :class:`InceptionI3d`, or ``None`` to load ``i3d_path`` lazily on first use.
        i3d_path: path of ``i3d_pretrained_400.pt`` (``None``: default locations, see
            :func:`ivvae.eval.i3d.load_i3d`).
        device: where the network is loaded when built from ``i3d_path`` (a given ``i3d`` runs where
            its parameters are) and where videos are resized.
        batch_size: clips per I3D forward.
        features: ``"logits"`` (400-d, default) or ``"pool"`` (1024-d).
        resolution, quantize: see :func:`preprocess_i3d`.
        data_range, low: value range of the input videos (default ``[-1, 1]``).
    """

    def __init__(
        self,
        i3d: InceptionI3d | None = None,
        *,
        i3d_path: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
        features: str = "logits",
        resolution: int = 224,
        quantize: bool = False,
        data_range: float = 2.0,
        low: float = -1.0,
    ) -> None:
        if features not in ("logits", "pool"):
            raise ValueError(f"features must be 'logits' or 'pool', got {features!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self._i3d = i3d
        self.i3d_path = i3d_path
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.features = features
        self.resolution = resolution
        self.quantize = quantize
        self.data_range = data_range
        self.low = low

    @property
    def i3d(self) -> InceptionI3d:
        """The network (loaded from ``i3d_path`` on first access when not given)."""
        if self._i3d is None:
            self._i3d = load_i3d(self.i3d_path, device=self.device)
        return self._i3d

    @torch.no_grad()
    def __call__(self, videos: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, 400)`` (or ``(B, 1024)``), float64 on CPU."""
        videos = _video_batch(videos)
        if videos.shape[2] < MIN_FRAMES:
            raise ValueError(f"FVD's I3D needs clips of at least {MIN_FRAMES} frames, got {videos.shape[2]}")
        net = self.i3d
        net.eval()
        param = next(net.parameters())
        out = []
        for i in range(0, videos.shape[0], self.batch_size):
            x = preprocess_i3d(
                videos[i : i + self.batch_size].to(self.device),
                self.resolution,
                data_range=self.data_range,
                low=self.low,
                quantize=self.quantize,
            )
            out.append(net(x.to(param.device, param.dtype), features=self.features).to("cpu", torch.float64))
        return torch.cat(out)


# --------------------------------------------------------------------------------------------
# Fréchet distance
# --------------------------------------------------------------------------------------------
def _np64(a: ArrayLike) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def compute_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of features ``(N, D)`` (float64), as
    ``np.mean(f, 0)`` and ``np.cov(f, rowvar=False)``."""
    f = _np64(features)
    if f.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {f.shape}")
    if f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {f.shape[0]}")
    _check_finite(f, "features")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _check_finite(a: np.ndarray, what: str) -> None:
    """NaN/inf features make a NaN FVD or a failed eigendecomposition: refuse them with the reason."""
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: NaN or infinite values (NaN videos, or a broken I3D file?)")


def _gaussians(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> tuple[np.ndarray, ...]:
    """Means ``(D,)`` and covariances ``(D, D)`` of the two distributions, float64, checked to fit together."""
    mu1, mu2 = np.atleast_1d(_np64(mu1)), np.atleast_1d(_np64(mu2))
    sigma1, sigma2 = np.atleast_2d(_np64(sigma1)), np.atleast_2d(_np64(sigma2))
    for name, mu, sigma in (("1", mu1, sigma1), ("2", mu2, sigma2)):
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ValueError(f"distribution {name}: mean {mu.shape} and covariance {sigma.shape} do not fit: "
                             "expected (D,) and (D, D) (compute_statistics gives both)")
    if mu1.shape != mu2.shape:
        raise ValueError(f"the two distributions have different dimensions: {mu1.shape[0]} and {mu2.shape[0]}")
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        _check_finite(a, name)
    return mu1, sigma1, mu2, sigma2


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike, eps: float = 1e-6) -> float:
    """Reference Fréchet distance with ``scipy.linalg.sqrtm`` (pytorch-fid's formula and checks)."""
    from scipy import linalg

    mu1, sigma1, mu2, sigma2 = _gaussians(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        warnings.warn(f"fid calculation produces singular product; adding {eps} to diagonal of cov estimates", stacklevel=2)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise ValueError(f"Imaginary component {m}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(s)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance_torch(
    mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike, device: str | torch.device = "cpu"
) -> float:
    """Fréchet distance in torch (float64): ``tr((S1 S2)^(1/2)) = sum sqrt(eig(S1^½ S2 S1^½))``."""

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float64, device=device)

    m1, s1, m2, s2 = (t(a) for a in _gaussians(mu1, sigma1, mu2, sigma2))
    s1 = (s1 + s1.T) / 2
    s2 = (s2 + s2.T) / 2
    r = _sqrtm_psd(s1)
    m = r @ s2 @ r
    ev = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0)
    tr_covmean = ev.sqrt().sum()
    diff = m1 - m2
    return float(diff.dot(diff) + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean)


def _fd_sample_space(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance from the features themselves, for few samples (``min(N1, N2) <= D``).

    With centred features ``A (N1, D)``, ``B (N2, D)``, ``S1 = A^T A / (N1 - 1)`` and
    ``S2 = B^T B / (N2 - 1)``, ``tr((S1 S2)^(1/2))`` is the nuclear norm of ``A B^T`` divided by
    ``sqrt((N1 - 1)(N2 - 1))``: one SVD of an ``N1 x N2`` matrix, and no square roots of the
    (singular) covariance eigenvalues, so identical sets give 0 to rounding.
    """
    a = torch.as_tensor(real, dtype=torch.float64)
    b = torch.as_tensor(fake, dtype=torch.float64)
    n1, n2 = a.shape[0], b.shape[0]
    mu1, mu2 = a.mean(0), b.mean(0)
    a = a - mu1
    b = b - mu2
    tr1 = a.pow(2).sum() / (n1 - 1)
    tr2 = b.pow(2).sum() / (n2 - 1)
    nuc = torch.linalg.svdvals(a @ b.T).sum() / math.sqrt((n1 - 1) * (n2 - 1))
    diff = mu1 - mu2
    return float(diff.dot(diff) + tr1 + tr2 - 2 * nuc)


def fvd_from_features(real: ArrayLike, fake: ArrayLike, method: str = "torch") -> float:
    """FVD between two feature sets ``(N1, D)`` and ``(N2, D)``.

    ``method="torch"`` (default): :func:`frechet_distance_torch` on the fitted statistics, or, when
    a set has no more samples than dimensions (singular covariances), the exact sample-space form
    of the same formula (:func:`_fd_sample_space`).  ``"scipy"``: the reference
    :func:`frechet_distance`.
    """
    if method not in ("torch", "scipy"):
        raise ValueError(f"method must be 'torch' or 'scipy', got {method!r}")
    f1, f2 = _np64(real), _np64(fake)
    mu1, s1 = compute_statistics(f1)
    mu2, s2 = compute_statistics(f2)
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature dimensions differ: {f1.shape[1]} and {f2.shape[1]}")
    if method == "torch":
        if min(f1.shape[0], f2.shape[0]) <= f1.shape[1]:
            return _fd_sample_space(f1, f2)
        return frechet_distance_torch(mu1, s1, mu2, s2)
    if method == "scipy":
        return frechet_distance(mu1, s1, mu2, s2)
    raise ValueError(f"method must be 'torch' or 'scipy', got {method!r}")


class FVDAccumulator:
    """Collects I3D features of real and reconstructed/generated clips and returns their FVD.

    Example::

        fvd = FVDAccumulator(i3d_path="weights/i3d_pretrained_400.pt", device="cuda")
        for x, x_rec in batches:          # (B, 3, 17, H, W) in [-1, 1]
            fvd.update(real=x, fake=x_rec)
        value = fvd.compute()

    ``add_features`` accepts precomputed features (e.g. cached real-set statistics); ``merge``
    combines accumulators of several processes.  The I3D network is only loaded when videos are
    passed.

    Args:
        extractor: an :class:`I3DFeatureExtractor`; by default one is built from the keyword
            arguments (``i3d``, ``i3d_path``, ``device``, ``batch_size``, ``features``, ...).
    """

    def __init__(self, extractor: I3DFeatureExtractor | None = None, **extractor_kwargs: Any) -> None:
        if extractor is not None and extractor_kwargs:
            raise ValueError("pass either an extractor or its keyword arguments, not both")
        self.extractor = extractor if extractor is not None else I3DFeatureExtractor(**extractor_kwargs)
        self.reset()

    def reset(self) -> None:
        """Forget all features."""
        self._real: list[torch.Tensor] = []
        self._fake: list[torch.Tensor] = []

    def _feats(self, f: ArrayLike) -> torch.Tensor:
        """Features ``(N, D)`` as float64, with the ``D`` of those already collected (in either set)."""
        f = torch.as_tensor(_np64(f), dtype=torch.float64)
        if f.dim() != 2:
            raise ValueError(f"features must be (N, D), got shape {tuple(f.shape)}")
        seen = next((g.shape[1] for g in self._real + self._fake), None)
        if seen is not None and f.shape[1] != seen:
            raise ValueError(f"features of dimension {f.shape[1]} cannot join the {seen}-dimensional ones collected so far "
                             "(another feature network or features='pool'/'logits'?); use one extractor for both sets")
        return f

    def add_features(self, real: ArrayLike | None = None, fake: ArrayLike | None = None) -> None:
        """Add precomputed features ``(N, D)`` to either set."""
        if real is not None:
            self._real.append(self._feats(real))
        if fake is not None:
            self._fake.append(self._feats(fake))

    def update(self, real: torch.Tensor | None = None, fake: torch.Tensor | None = None) -> None:
        """Add videos ``(B, 3, T, H, W)`` in ``[-1, 1]`` (T >= 9) to either set."""
        if real is not None:
            self._real.append(self._feats(self.extractor(real)))
        if fake is not None:
            self._fake.append(self._feats(self.extractor(fake)))

    def merge(self, other: FVDAccumulator) -> None:
        """Add the features of another accumulator."""
        for f in other._real + other._fake:
            self._feats(f)  # same feature dimension
        self._real.extend(other._real)
        self._fake.extend(other._fake)

    @property
    def real_features(self) -> torch.Tensor:
        """All real features ``(N, D)`` (float64)."""
        return torch.cat(self._real) if self._real else torch.empty(0, 0, dtype=torch.float64)

    @property
    def fake_features(self) -> torch.Tensor:
        """All reconstructed/generated features ``(N, D)`` (float64)."""
        return torch.cat(self._fake) if self._fake else torch.empty(0, 0, dtype=torch.float64)

    @property
    def num_real(self) -> int:
        return sum(f.shape[0] for f in self._real)

    @property
    def num_fake(self) -> int:
        return sum(f.shape[0] for f in self._fake)

    def compute(self, method: str = "torch") -> float:
        """FVD between the two sets (see :func:`fvd_from_features`)."""
        if self.num_real < 2 or self.num_fake < 2:
            raise RuntimeError(f"FVD needs at least 2 clips per set, got {self.num_real} real and {self.num_fake} fake")
        return fvd_from_features(self.real_features, self.fake_features, method=method)
