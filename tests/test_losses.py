"""Tests for the training losses and the patch discriminators (tiny shapes, CPU, fast)."""

from __future__ import annotations

import logging
import math
import sys
import types

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ivvae.train.discriminator import (
    PatchDiscriminator2D,
    PatchDiscriminator3D,
    build_discriminator,
)
from ivvae.train.losses import (
    VAELoss,
    adaptive_gan_weight,
    block_mse,
    build_lpips_loss,
    hinge_d_loss,
    hinge_g_loss,
    kl_loss,
    vanilla_d_loss,
    vanilla_g_loss,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convs gain nothing from threads, and on a shared machine they oversubscribe."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _posterior(mean: torch.Tensor, logvar: torch.Tensor) -> DiagonalGaussianDistribution:
    return DiagonalGaussianDistribution(torch.cat([mean, logvar], dim=1))


class ToyVAE(nn.Module):
    """A 1x1-conv encoder to a posterior and a 3x3x3-conv decoder ("last layer")."""

    def __init__(self, z: int = 2) -> None:
        super().__init__()
        self.enc = nn.Conv3d(3, 2 * z, 1)
        self.dec = nn.Conv3d(z, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, DiagonalGaussianDistribution]:
        posterior = DiagonalGaussianDistribution(self.enc(x))
        return self.dec(posterior.sample()), posterior


class CountingDiscriminator(nn.Module):
    """Wraps a discriminator and counts its forward calls."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def _tiny_disc(kind: str = "3d") -> nn.Module:
    return build_discriminator(kind, base_channels=4, n_layers=2)


def _mse_lpips(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A differentiable stand-in for LPIPS: per-image mean squared error, shape (B,)."""
    assert a.ndim == 4 and a.shape == b.shape
    return (a - b).pow(2).flatten(1).mean(1)


def _video(b: int = 1, t: int = 5, s: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, s, s, generator=g) * 2 - 1


def _grads(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


# ---------------------------------------------------------------------------------- KL


def test_kl_matches_closed_form_over_all_dims():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(2, 3, 2, 4, 5, generator=g)
    logvar = torch.randn(2, 3, 2, 4, 5, generator=g) * 0.5
    post = _posterior(mean, logvar)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, (0.5 * logvar).exp()), torch.distributions.Normal(0.0, 1.0)
    )
    torch.testing.assert_close(kl_loss(post), ref.flatten(1).sum(1).mean())
    torch.testing.assert_close(kl_loss(post, "mean"), ref.mean())


def test_kl_hand_values_and_zero_at_prior():
    shape = (2, 4, 3, 2, 2)  # 48 latent elements per sample
    one = _posterior(torch.ones(shape), torch.zeros(shape))  # KL = 0.5 per element
    assert kl_loss(one).item() == pytest.approx(0.5 * 48)
    assert kl_loss(one, "mean").item() == pytest.approx(0.5)
    prior = _posterior(torch.zeros(shape), torch.zeros(shape))
    assert kl_loss(prior).item() == 0.0 and kl_loss(prior, "mean").item() == 0.0
    with pytest.raises(ValueError):
        kl_loss(prior, "median")


# ------------------------------------------------------------------------------- GAN terms


def test_hinge_and_vanilla_losses_on_known_logits():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 1.0])
    # relu(1 - real) = [0, .5, 2], relu(1 + fake) = [0, 1, 2]
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (2.5 / 3 + 1.0))
    assert hinge_g_loss(fake).item() == pytest.approx(1 / 3)
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    expected_d = 0.5 * (sum(map(sp, (-real).tolist())) + sum(map(sp, fake.tolist()))) / 3
    assert vanilla_d_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert vanilla_g_loss(fake).item() == pytest.approx(sum(map(sp, (-fake).tolist())) / 3)
    # A confident, correct discriminator has zero hinge loss.
    assert hinge_d_loss(torch.full((4,), 3.0), torch.full((4,), -3.0)).item() == 0.0


def test_adaptive_weight_is_ratio_of_gradient_norms():
    torch.manual_seed(0)
    hidden, last = nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(8, 3, 3, padding=1)
    disc = build_discriminator("2d", base_channels=4, n_layers=2)
    z, x = torch.randn(2, 4, 32, 32), torch.rand(2, 3, 32, 32) * 2 - 1

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        x_rec = last(F.relu(hidden(z)))
        return (x_rec - x).abs().mean(), hinge_g_loss(disc(x_rec))

    rec, g = losses()
    weight = adaptive_gan_weight(rec, g, last.weight)
    assert not weight.requires_grad

    # Independently: two separate backward passes through fresh graphs.
    norms = []
    for pick in (0, 1):
        last.weight.grad = None
        losses()[pick].backward()
        norms.append(last.weight.grad.norm().item())
    assert weight.item() == pytest.approx(norms[0] / (norms[1] + 1e-4), rel=1e-5)
    assert adaptive_gan_weight(rec, g, last.weight, max_weight=1e-3).item() == pytest.approx(1e-3)


def test_adaptive_weight_is_zero_without_a_path_to_the_layer():
    layer = nn.Linear(3, 3)
    other = nn.Parameter(torch.ones(3))
    rec = layer(torch.ones(1, 3)).sum()
    assert adaptive_gan_weight(rec, (other * 2).sum(), layer.weight).item() == 0.0
    with torch.no_grad():
        rec_ng = layer(torch.ones(1, 3)).sum()
    assert adaptive_gan_weight(rec_ng, rec_ng, layer.weight).item() == 0.0


# --------------------------------------------------------------------------- discriminator


@pytest.mark.parametrize("frames", [1, 5, 17])
@pytest.mark.parametrize("size", [32, 64])
def test_discriminator_output_shapes(frames: int, size: int):
    x = torch.zeros(2, 3, frames, size, size)
    side = {32: 2, 64: 6}[size]  # n_layers=3: size / 8 - 2
    d3 = build_discriminator("3d", base_channels=4)
    assert isinstance(d3, PatchDiscriminator3D)
    expected_t = {1: 1, 5: 2, 17: 5}[frames]  # two time-strided layers, (T - 1) // 2 + 1 each
    assert d3(x).shape == (2, 1, expected_t, side, side)
    assert d3.output_frames(frames) == expected_t and d3.output_spatial_size(size) == side
    d2 = build_discriminator("2d", base_channels=4)
    assert isinstance(d2, PatchDiscriminator2D)
    assert d2(x).shape == (2, 1, frames, side, side)


def test_discriminator_images_init_and_size_errors():
    d3, d2 = build_discriminator("3d", base_channels=8), build_discriminator("2d", base_channels=8)
    image = torch.zeros(2, 3, 32, 48)
    assert d3(image).shape == (2, 1, 2, 4) and d2(image).shape == (2, 1, 2, 4)
    # Frames folded into the batch give the same per-frame logits as image calls.
    video = _video(1, 3, 32)
    torch.testing.assert_close(d2(video)[:, :, 1], d2(video[:, :, 1]))
    weights = torch.cat([m.weight.flatten() for m in d3.modules() if isinstance(m, nn.Conv3d)])
    assert abs(weights.std().item() - 0.02) < 2e-3
    assert any(isinstance(m, nn.GroupNorm) for m in d3.modules())
    with pytest.raises(ValueError, match="too small"):
        d3(torch.zeros(1, 3, 1, 16, 16))
    with pytest.raises(ValueError):
        build_discriminator("4d")


def test_discriminator_learns_pattern_vs_noise():
    torch.manual_seed(0)
    disc = build_discriminator("3d", base_channels=8, n_layers=2)
    opt = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.5, 0.9))
    grid = torch.linspace(0, 2 * math.pi, 32)
    t = torch.arange(5.0).view(5, 1, 1)
    losses = []
    for _ in range(30):
        phase = torch.rand(2, 3, 1, 1, 1) * 2 * math.pi
        real = torch.sin(grid.view(1, 32) + grid.view(32, 1) + 0.3 * t + phase)
        fake = torch.rand(2, 3, 5, 32, 32) * 2 - 1
        loss = hinge_d_loss(disc(real), disc(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]


# ---------------------------------------------------------------------------------- VAELoss


def test_vae_loss_terms_before_gan_start():
    torch.manual_seed(0)
    vae, disc = ToyVAE(), CountingDiscriminator(_tiny_disc())
    crit = VAELoss(kl_weight=1e-3, gan_start_step=10)
    x = _video()
    x_rec, post = vae(x)
    loss, logs = crit(x, x_rec, post, step=9, last_layer_weight=vae.dec.weight, discriminator=disc)
    assert disc.calls == 0
    assert set(logs) == {"l1", "kl", "total"}
    expected = (x_rec - x).abs().mean() + 1e-3 * kl_loss(post, "mean")
    torch.testing.assert_close(loss, expected)
    assert logs["total"] == pytest.approx(loss.item())
    d_loss, d_logs = crit.discriminator_loss(disc, x, x_rec, step=9)
    assert d_loss is None and d_logs == {} and disc.calls == 0


def test_vae_loss_mse_term():
    torch.manual_seed(0)
    vae = ToyVAE()
    x = _video()
    x_rec, post = vae(x)
    loss, logs = VAELoss(l1_weight=0.5, mse_weight=4.0, kl_weight=1e-3)(x, x_rec, post, step=0)
    assert set(logs) == {"l1", "mse", "kl", "total"}
    expected = 0.5 * (x_rec - x).abs().mean() + 4.0 * (x_rec - x).square().mean() + 1e-3 * kl_loss(post, "mean")
    torch.testing.assert_close(loss, expected)
    assert logs["mse"] == pytest.approx(torch.nn.functional.mse_loss(x_rec, x).item())


def test_block_mse_sees_only_the_block_means():
    """A colour cast is all block error; detail inside each block (a checkerboard) none; the term stays out of the logs
    and the total unless weighted, and adds its weight times itself when it is."""
    cast = torch.full((2, 3, 5, 8, 8), 0.1)
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]).remainder(2).float().mul(0.2).sub(0.1)
    zeros = torch.zeros_like(cast)
    assert block_mse(zeros, cast, 4).item() == pytest.approx(0.01, rel=1e-5)
    assert block_mse(zeros, checker.expand_as(cast), 4).item() == pytest.approx(0.0, abs=1e-12)
    assert block_mse(zeros[:, :, 0], cast[:, :, 0], 8).item() == pytest.approx(0.01, rel=1e-5)  # images too
    with pytest.raises(ValueError, match="no 16x16 block"):
        block_mse(zeros, cast, 16)
    torch.manual_seed(0)
    vae = ToyVAE()
    x = _video()
    x_rec, post = vae(x)
    plain, logs = VAELoss(l1_weight=0.5, mse_weight=4.0, kl_weight=1e-3)(x, x_rec, post, step=0)
    assert "block_mse" not in logs
    weighted, logs = VAELoss(l1_weight=0.5, mse_weight=4.0, kl_weight=1e-3, block_mse_weight=20.0, block_mse_size=2)(
        x, x_rec, post, step=0)
    torch.testing.assert_close(weighted, plain + 20.0 * block_mse(x, x_rec, 2))
    assert 0 < logs["block_mse"] < logs["mse"]
    with pytest.raises(ValueError, match="block_mse_size must be >= 2"):
        VAELoss(block_mse_weight=1.0, block_mse_size=1)


def test_vae_loss_gan_after_start_freezes_discriminator():
    torch.manual_seed(0)
    vae, disc = ToyVAE(), CountingDiscriminator(_tiny_disc())
    crit = VAELoss(gan_start_step=10, gan_weight=0.5)
    x = _video()
    x_rec, post = vae(x)
    loss, logs = crit(x, x_rec, post, step=10, last_layer_weight=vae.dec.weight, discriminator=disc)
    assert disc.calls == 1
    assert {"g_loss", "d_weight"} <= set(logs)
    rec = (x_rec - x).abs().mean()
    g = hinge_g_loss(disc(x_rec))
    expected_w = 0.5 * adaptive_gan_weight(rec, g, vae.dec.weight)
    assert logs["d_weight"] == pytest.approx(expected_w.item(), rel=1e-5)
    # A per-call (per-resolution) weight overrides the default; 0 skips the discriminator.
    _, logs2 = crit(x, x_rec, post, 10, vae.dec.weight, disc, gan_weight=1.0)
    assert logs2["d_weight"] == pytest.approx(2 * logs["d_weight"], rel=1e-5)
    calls = disc.calls
    _, logs0 = crit(x, x_rec, post, 10, vae.dec.weight, disc, gan_weight=0.0)
    assert disc.calls == calls and "g_loss" not in logs0

    loss.backward()
    assert all(p.grad is None for p in disc.parameters())  # frozen during the generator step
    assert all(p.requires_grad for p in disc.parameters())  # and restored afterwards
    assert vae.dec.weight.grad is not None

    d_loss, d_logs = crit.discriminator_loss(disc, x, x_rec, step=10)
    assert set(d_logs) == {"d_loss", "logits_real", "logits_fake"}
    d_loss.backward()
    assert all(p.grad is not None for p in disc.parameters())
    assert vae.enc.weight.grad is not None and vae.dec.weight.grad is not None
    with pytest.raises(ValueError, match="last_layer_weight"):
        crit(x, x_rec, post, 10, None, disc)


def test_every_active_term_sends_gradient_to_the_generator():
    torch.manual_seed(0)
    vae, disc = ToyVAE(), _tiny_disc()
    params = list(vae.parameters())
    x = _video()
    x_rec, post = vae(x)

    def grads(crit: VAELoss, step: int = 0) -> list[torch.Tensor]:
        loss, _ = crit(x, x_rec, post, step, vae.dec.weight, disc)
        return _grads(loss, params)

    off = dict(l1_weight=0.0, lpips_weight=0.0, kl_weight=0.0, gan_start_step=100)
    for term in ("l1_weight", "lpips_weight", "kl_weight"):
        g = grads(VAELoss(lpips=_mse_lpips, **{**off, term: 1.0}))
        assert g[0].abs().sum() > 0, term  # encoder weight: every term reaches it
    assert grads(VAELoss(**{**off, "l1_weight": 1.0}))[2].abs().sum() > 0  # decoder weight
    # GAN: the gradient with the term on differs from the one with it off.
    crit = VAELoss(lpips=_mse_lpips, gan_start_step=5, gan_weight=1.0)
    diff = [(a - b).abs().sum() for a, b in zip(grads(crit, 5), grads(crit, 4), strict=True)]
    assert all(d > 0 for d in diff)


def test_lpips_term_present_absent_and_frame_subset():
    x = _video(b=2, t=5)
    x_rec = (x + 0.1 * torch.randn_like(x)).requires_grad_()
    post = _posterior(torch.zeros(2, 2, 2, 4, 4), torch.zeros(2, 2, 2, 4, 4))
    seen = []

    def lpips(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        seen.append(a.shape)
        return _mse_lpips(a, b).view(-1, 1, 1, 1)  # the `lpips` package's (B, 1, 1, 1) form

    _, logs = VAELoss(lpips=lpips)(x, x_rec, post, 0)
    assert seen[-1] == (10, 3, 32, 32)
    assert logs["lpips"] == pytest.approx((x_rec - x).pow(2).mean().item(), rel=1e-5)
    assert logs["total"] == pytest.approx(logs["l1"] + logs["lpips"], rel=1e-5)

    # A frame subset: 2 of 5 frames per clip, the same frames taken from x and x_rec.
    crit = VAELoss(lpips=lpips, lpips_frames=2)
    _, logs = crit(x, x.clone(), post, 0)
    assert seen[-1] == (4, 3, 32, 32) and logs["lpips"] == 0.0
    _, logs = crit(x[:, :, 0], x_rec[:, :, 0], post, 0)  # images pass through unfolded
    assert seen[-1] == (2, 3, 32, 32)

    _, logs = VAELoss(lpips=None)(x, x_rec, post, 0)
    assert "lpips" not in logs
    assert logs["total"] == pytest.approx(logs["l1"])


# ------------------------------------------------------------------------ build_lpips_loss


@pytest.fixture
def fake_lpips_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Stand in for `ivvae.eval.lpips` so the test does not depend on the real network."""

    class WeightsNotFoundError(FileNotFoundError):
        pass

    class LPIPS(nn.Module):
        def __init__(self, net="alex", backbone_weights=None, head_weights=None):
            super().__init__()
            self.net, self.paths = net, (backbone_weights, head_weights)
            self.lin = nn.Linear(1, 1)
            self.train()

        def forward(self, x, y):
            return _mse_lpips(x, y)

    module = types.ModuleType("ivvae.eval.lpips")
    module.LPIPS, module.WeightsNotFoundError = LPIPS, WeightsNotFoundError
    monkeypatch.setitem(sys.modules, "ivvae.eval.lpips", module)
    return module


def test_build_lpips_loss_stop_skip_and_success(fake_lpips_module, tmp_path, caplog):
    backbone = tmp_path / "alexnet.pth"
    backbone.write_bytes(b"x")
    missing = str(tmp_path / "no.pth")
    config = {"net": "alex", "backbone_weights": str(backbone), "head_weights": missing}
    with pytest.raises(FileNotFoundError, match=r"no\.pth.*config field loss\.lpips\.head_weights"):
        build_lpips_loss(config)
    with caplog.at_level(logging.WARNING):
        assert build_lpips_loss(config, on_missing="skip") is None
    assert "no.pth" in caplog.text

    head = tmp_path / "head.pth"
    head.write_bytes(b"x")
    lpips = build_lpips_loss({**config, "head_weights": str(head)})
    assert isinstance(lpips, fake_lpips_module.LPIPS) and lpips.paths == (str(backbone), str(head))
    assert not lpips.training and not any(p.requires_grad for p in lpips.parameters())
    VAELoss(lpips=lpips).train()
    assert not lpips.training  # VAELoss keeps the LPIPS network in eval mode
    assert build_lpips_loss(None) is None and build_lpips_loss({"enabled": False}) is None


def test_build_lpips_loss_maps_errors_raised_inside_lpips(fake_lpips_module):
    def raising(**_):
        raise fake_lpips_module.WeightsNotFoundError("/cache/default_alex.pth")

    fake_lpips_module.LPIPS = raising
    with pytest.raises(FileNotFoundError, match=r"default_alex.pth.*config fields loss\.lpips\.backbone_weights"):
        build_lpips_loss({"net": "alex"})
    assert build_lpips_loss({"net": "alex"}, on_missing="skip") is None


def test_build_lpips_loss_with_the_real_module_untrained():
    pytest.importorskip("ivvae.eval.lpips")
    lpips = build_lpips_loss({"net": "alex", "pretrained": False})
    x = _video(t=2, s=64)
    x_rec = (x + 0.2 * torch.randn_like(x)).requires_grad_()
    post = _posterior(torch.zeros(1, 2, 1, 8, 8), torch.zeros(1, 2, 1, 8, 8))
    loss, logs = VAELoss(lpips=lpips, l1_weight=0.0)(x, x_rec, post, 0)
    assert logs["lpips"] > 0
    loss.backward()
    assert x_rec.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------- DDP


def test_generator_and_discriminator_steps_under_ddp(tmp_path):
    """Two GAN iterations with both models DDP-wrapped (world size 1, gloo)."""
    if not dist.is_available():
        pytest.skip("torch.distributed unavailable")
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        vae, disc = DistributedDataParallel(ToyVAE()), DistributedDataParallel(_tiny_disc())
        opt_g = torch.optim.Adam(vae.parameters(), lr=1e-3)
        opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3)
        crit = VAELoss(lpips=_mse_lpips, gan_start_step=0)
        x = _video()
        for step in range(2):
            x_rec, post = vae(x)
            loss, logs = crit(x, x_rec, post, step, vae.module.dec.weight, disc)
            opt_g.zero_grad()
            loss.backward()
            opt_g.step()
            d_loss, _ = crit.discriminator_loss(disc, x, x_rec, step)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            assert logs["d_weight"] > 0
    finally:
        dist.destroy_process_group()
