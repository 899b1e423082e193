"""Evaluation: reconstruction metrics (PSNR, SSIM, LPIPS, FVD), the paper's diagnostics (SSIM by
position in the group, information preservation) and the MotionHD motion score.

Videos are float tensors ``(B, 3, T, H, W)`` in ``[-1, 1]`` (a single clip ``(3, T, H, W)`` is
accepted too).  Clip-level values are means over frames; data-set values are means over clips,
except information preservation and FVD, which pool all samples.  Networks (LPIPS, I3D, RAFT) read
local weight files only; a missing file raises :class:`WeightsNotFoundError`.
"""

from .fvd import (
    FVDAccumulator,
    I3DFeatureExtractor,
    compute_statistics,
    frechet_distance,
    frechet_distance_torch,
    fvd_from_features,
    preprocess_i3d,
)
from .i3d import InceptionI3d, load_i3d
from .lpips import LPIPS, WeightsNotFoundError
from .metrics import (
    InformationPreservation,
    MeanAccumulator,
    MetricAccumulator,
    information_preservation,
    psnr,
    psnr_per_frame,
    ssim,
    ssim_by_group_position,
    ssim_per_frame,
)
from .motion import (
    build_motionhd,
    motion_score,
    motion_scores,
    plot_motion_histogram,
    read_manifest,
    write_manifest,
)

__all__ = [
    "psnr",
    "psnr_per_frame",
    "ssim",
    "ssim_per_frame",
    "ssim_by_group_position",
    "information_preservation",
    "InformationPreservation",
    "MeanAccumulator",
    "MetricAccumulator",
    "LPIPS",
    "WeightsNotFoundError",
    "InceptionI3d",
    "load_i3d",
    "preprocess_i3d",
    "I3DFeatureExtractor",
    "compute_statistics",
    "frechet_distance",
    "frechet_distance_torch",
    "fvd_from_features",
    "FVDAccumulator",
    "motion_score",
    "motion_scores",
    "build_motionhd",
    "write_manifest",
    "read_manifest",
    "plot_motion_histogram",
]
