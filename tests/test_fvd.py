"""FVD: Fréchet distance (torch vs the scipy reference), I3D network, weight loading."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ivvae.eval.fvd import (
    FVDAccumulator,
    I3DFeatureExtractor,
    compute_statistics,
    frechet_distance,
    frechet_distance_torch,
    fvd_from_features,
    preprocess_i3d,
)
from ivvae.eval.i3d import InceptionI3d, _same_pad, load_i3d
from ivvae.eval.lpips import WeightsNotFoundError


def _features(n: int, d: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / math.sqrt(d)
    return (rng.normal(size=(n, d)) @ mix) * scale + shift


def test_torch_frechet_matches_scipy_reference():
    f1 = _features(500, 64, seed=0)
    f2 = _features(400, 64, seed=1, scale=1.3, shift=0.2)
    mu1, s1 = compute_statistics(f1)
    mu2, s2 = compute_statistics(f2)
    ref = frechet_distance(mu1, s1, mu2, s2)
    got = frechet_distance_torch(mu1, s1, mu2, s2)
    assert ref > 1.0
    assert got == pytest.approx(ref, rel=1e-9)
    assert fvd_from_features(f1, f2) == pytest.approx(ref, rel=1e-9)
    assert fvd_from_features(f1, f2, method="scipy") == pytest.approx(ref, rel=1e-12)
    # inputs as torch tensors too
    assert frechet_distance_torch(*(torch.from_numpy(a) for a in (mu1, s1, mu2, s2))) == pytest.approx(ref, rel=1e-9)
    # closed form in 1-D: (m1 - m2)^2 + (sd1 - sd2)^2
    assert frechet_distance_torch(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == pytest.approx(5.0)
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == pytest.approx(5.0)


def test_fvd_of_identical_sets_is_zero():
    f = _features(300, 128, seed=2, scale=5.0, shift=3.0)
    assert abs(fvd_from_features(f, f)) < 1e-6
    assert abs(fvd_from_features(f, f, method="scipy")) < 1e-6
    # fewer clips than dimensions (singular covariances): the sample-space path is exact
    few = f[:50]
    assert abs(fvd_from_features(few, few)) < 1e-6
    other = _features(60, 128, seed=3, scale=5.0, shift=3.0)
    # and agrees with the reference formula on a singular pair
    assert fvd_from_features(few, other) == pytest.approx(fvd_from_features(few, other, method="scipy"), rel=1e-5)
    with pytest.raises(ValueError):
        compute_statistics(f[:1])


def test_same_padding_is_tensorflow_same():
    for size in range(1, 40):
        for k in (1, 2, 3, 7):
            for s in (1, 2):
                out = math.ceil(size / s)  # TF "SAME": output size ceil(in / stride)
                total = max((out - 1) * s + k - size, 0)
                assert _same_pad(size, k, s) == (total // 2, total - total // 2)


def _random_i3d_state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = InceptionI3d().state_dict()
    for k, v in sd.items():
        if k.endswith("running_mean") or k.endswith("bn.bias"):
            sd[k] = 0.1 * torch.randn(v.shape, generator=g)
        elif k.endswith("running_var") or k.endswith("bn.weight"):
            sd[k] = 0.75 + 0.5 * torch.rand(v.shape, generator=g)
        elif k.endswith("conv3d.weight"):
            sd[k] = torch.randn(v.shape, generator=g) * math.sqrt(2.0 / v[0].numel())
        elif k.endswith("conv3d.bias"):
            sd[k] = 0.1 * torch.randn(v.shape, generator=g)
    return sd


def test_i3d_loads_strictly_and_gives_features(tmp_path):
    sd = _random_i3d_state(0)
    assert "Conv3d_1a_7x7.conv3d.weight" in sd and "Mixed_3b.b0.conv3d.weight" in sd
    assert "Mixed_5c.b2b.bn.running_var" in sd and "logits.conv3d.bias" in sd
    assert sd["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    # a file as saved by old PyTorch: no num_batches_tracked entries
    path = tmp_path / "i3d_pretrained_400.pt"
    torch.save({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, path)
    model = load_i3d(path)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, sd[k]), k
    assert model.Conv3d_1a_7x7.bn.eps == 1e-5

    torch.manual_seed(0)
    videos = torch.rand(2, 3, 9, 48, 64) * 2 - 1  # small, non-square, resized + cropped to 224
    trunk_out = []
    hook = model.avg_pool.register_forward_hook(lambda mod, inp, out: trunk_out.append(out))
    acc = FVDAccumulator(i3d=model, batch_size=2)
    acc.update(real=videos)  # the only (costly) I3D forward of this file
    hook.remove()
    feats = acc.real_features
    assert feats.shape == (2, 400) and feats.dtype == torch.float64
    assert torch.isfinite(feats).all() and feats.std() > 0
    acc.add_features(fake=feats)
    assert abs(acc.compute()) < 1e-6
    # 224x224 input, 9 frames: 5 -> 3 -> 2 time steps, pooled map (B, 1024, 1, 1, 1); logits = mean over time of the
    # linear head, which equals the head applied to the time-averaged 1024-d features
    (pooled_map,) = trunk_out
    assert pooled_map.shape == (2, 1024, 1, 1, 1)
    pooled = pooled_map.mean(dim=(2, 3, 4)).double()
    w = sd["logits.conv3d.weight"].flatten(1).double()
    torch.testing.assert_close(pooled @ w.T + sd["logits.conv3d.bias"].double(), feats, rtol=1e-4, atol=1e-4)
    # features="pool" returns those 1024-d features (trunk stubbed out to keep the test fast)
    model.trunk = lambda x: pooled_map  # type: ignore[method-assign]
    torch.testing.assert_close(I3DFeatureExtractor(model, features="pool")(videos), pooled)
    # longer clips (17 frames -> 2 pooled time steps): the logits are averaged over time
    long_map = torch.randn(2, 1024, 2, 1, 1)
    model.trunk = lambda x: long_map  # type: ignore[method-assign]
    manual = torch.einsum("oc,bct->bot", sd["logits.conv3d.weight"].flatten(1), long_map[:, :, :, 0, 0])
    manual = (manual + sd["logits.conv3d.bias"][None, :, None]).mean(dim=2)
    torch.testing.assert_close(model(torch.zeros(2, 3, 17, 224, 224)), manual, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="at least 9 frames"):
        acc.update(real=videos[:, :, :8])


def test_load_i3d_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("IVVAE_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsNotFoundError) as ei:
        load_i3d(tmp_path / "missing.pt")
    assert "i3d_pretrained_400.pt" in str(ei.value) and "missing.pt" in str(ei.value)
    assert isinstance(ei.value, FileNotFoundError)
    with pytest.raises(WeightsNotFoundError, match="I3D Kinetics-400"):
        load_i3d()  # default locations: nothing there
    # the FVD helpers only need the file once videos are passed
    acc = FVDAccumulator(i3d_path=tmp_path / "missing.pt")
    acc.add_features(real=np.zeros((3, 4)), fake=np.ones((3, 4)))
    with pytest.raises(WeightsNotFoundError):
        acc.update(real=torch.zeros(1, 3, 9, 32, 32))
    # a wrong state dict
    sd = _random_i3d_state(1)
    del sd["Mixed_4c.b1b.conv3d.weight"]
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="Mixed_4c.b1b.conv3d.weight") as ei:
        load_i3d(tmp_path / "wrong.pt")
    assert "extra.weight" in str(ei.value)
    # an empty file and a file torch.load cannot read: one complete line each (the cause was cut off before)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.pt' is empty \(0 bytes\), not the I3D Kinetics-400 weights i3d_pretrained_400.pt;"):
        load_i3d(tmp_path / "empty.pt")
    (tmp_path / "text.pt").write_text("hello\n")
    with pytest.raises(ValueError, match=r"text.pt' is not a PyTorch weight file torch.load reads \(\w+Error[^)]*\), not the I3D"):
        load_i3d(tmp_path / "text.pt")
    # a TorchScript archive (StyleGAN-V's i3d_torchscript.pt format)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "i3d_torchscript.pt")
    with pytest.raises(ValueError, match="TorchScript"):
        load_i3d(tmp_path / "i3d_torchscript.pt")
    # found through $IVVAE_WEIGHTS_DIR
    torch.save(_random_i3d_state(2), tmp_path / "i3d_pretrained_400.pt")
    monkeypatch.setenv("IVVAE_WEIGHTS_DIR", str(tmp_path))
    assert isinstance(load_i3d(), InceptionI3d)


def test_preprocess_i3d():
    g = torch.Generator().manual_seed(0)
    v = torch.rand(1, 3, 2, 60, 80, generator=g) * 2 - 1
    out = preprocess_i3d(v)
    assert out.shape == (1, 3, 2, 224, 224) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1
    # short side -> 224, long side ceil(80 * 224 / 60) = 299, centre crop of 224 columns
    full = F.interpolate((v[0].permute(1, 0, 2, 3) + 1) / 2, size=(224, 299), mode="bilinear", align_corners=False)
    left = (299 - 224) // 2
    expected = (full[..., left : left + 224] - 0.5) * 2
    torch.testing.assert_close(out[0].permute(1, 0, 2, 3), expected)
    # a constant video stays constant; [0, 255] input; quantisation by truncation
    c = torch.full((3, 1, 30, 30), 0.5)
    assert torch.allclose(preprocess_i3d(c), torch.full((1, 3, 1, 224, 224), 0.5))
    assert torch.allclose(preprocess_i3d(c * 0 + 191.25, data_range=255.0, low=0.0), torch.full((1, 3, 1, 224, 224), 0.5))
    q = preprocess_i3d(torch.full((3, 1, 224, 224), 0.999), quantize=True)
    assert torch.allclose(q, torch.full_like(q, (math.floor(0.9995 * 255) / 255 - 0.5) * 2))


def test_fvd_accumulator_features_and_merge():
    f1 = _features(300, 16, seed=4)
    f2 = _features(300, 16, seed=5, scale=2.0, shift=1.0)
    a = FVDAccumulator(i3d_path="/nonexistent/i3d.pt")
    a.add_features(real=f1[:100], fake=f2[:150])
    b = FVDAccumulator(i3d_path="/nonexistent/i3d.pt")
    b.add_features(real=torch.from_numpy(f1[100:]), fake=f2[150:])
    a.merge(b)
    assert a.num_real == 300 and a.num_fake == 300
    assert a.compute() == pytest.approx(fvd_from_features(f1, f2), rel=1e-12)
    assert a.compute(method="scipy") == pytest.approx(a.compute(), rel=1e-8)
    a.reset()
    with pytest.raises(RuntimeError, match="at least 2"):
        a.compute()
    with pytest.raises(ValueError):
        FVDAccumulator(I3DFeatureExtractor(), batch_size=2)
