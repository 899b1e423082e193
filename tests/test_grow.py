"""Widening a trained model (image VAE, causal baseline, two-branch IV-VAE): same function at the start, every new weight learns."""

from __future__ import annotations

import json

import pytest
import torch
from cli_helpers import error_line, run
from conftest import tiny_ivvae

from ivvae.grow import REPORT_NAME, GrowthError, grow, max_reconstruction_difference
from ivvae.hub import load_model
from ivvae.inflate import inflate_image_vae
from ivvae.models import CausalVAE, ImageVAE


def trained_looking(model):
    """Random weights everywhere, gammas away from 1 and biases non-zero (as after training)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model.eval()


@pytest.fixture(scope="module")
def image_vae():
    torch.manual_seed(0)
    return trained_looking(ImageVAE(latent_channels=4, base_channels=8))


@pytest.mark.parametrize("widths", [
    {"channel_multipliers": [1, 2, 4, 6]},  # the deepest stage only (an encoder shortcut appears)
    {"base_channels": 12},                  # every stage
    {"channel_multipliers": [2, 3, 5, 6]},  # uneven growth, four new shortcuts
])
def test_grown_image_vae_reconstructs_as_before(image_vae, widths):
    grown, report = grow(image_vae, **widths)
    assert list(grown.config.channel_multipliers) == widths.get("channel_multipliers", [1, 2, 4, 4])
    assert sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in image_vae.parameters())
    assert report.grown and not set(report.grown) & set(report.copied)
    assert max_reconstruction_difference(image_vae, grown) < 1e-3
    images = torch.rand(2, 3, 24, 32) * 2 - 1  # images too, and another size
    with torch.no_grad():
        assert (image_vae(images).sample - grown(images).sample).abs().max() < 1e-3


def test_the_difference_is_second_order_in_the_new_weight_scale(image_vae):
    errors = [max_reconstruction_difference(image_vae, grow(image_vae, channel_multipliers=[1, 2, 4, 6], new_weight_scale=s)[0])
              for s in (0.1, 0.01)]
    assert errors[1] < errors[0] / 30  # ~100x for a 10x smaller scale; rounding keeps a floor
    nearly_exact, _ = grow(image_vae, channel_multipliers=[1, 2, 4, 6], new_weight_scale=1e-4)  # 0 is refused: dead channels
    assert max_reconstruction_difference(image_vae, nearly_exact) < 2e-5


@pytest.fixture(scope="module")
def ivvae():
    return trained_looking(tiny_ivvae())


@pytest.mark.parametrize("which, shape", [("image_vae", (1, 3, 128, 128)), ("ivvae", (1, 3, 5, 128, 128))])
def test_every_new_weight_learns(request, which, shape):
    """New channels are neither dead nor stuck: a few Adam steps move every new weight.

    (Most get a gradient on the first step; a norm gamma whose channel only the next layer's zero
    columns read gets one once those columns have moved.) 128 px: a 16x16 latent, which PAC's
    dilation-12 taps reach beyond the padding.
    """
    model = request.getfixturevalue(which)
    grown, report = grow(model, channel_multipliers=[1, 2, 5, 8])
    before = {k: v.detach().clone() for k, v in grown.named_parameters()}
    optimizer = torch.optim.Adam(grown.parameters(), lr=1e-3)
    torch.manual_seed(1)
    grown.train()
    for _ in range(3):
        x = torch.rand(*shape) * 2 - 1
        optimizer.zero_grad()
        (grown(x).sample - x).abs().mean().backward()
        optimizer.step()
    sources = dict(model.named_parameters())
    for key in report.grown:
        moved = (dict(grown.named_parameters())[key].detach() - before[key]).abs()
        old_part = tuple(slice(0, n) for n in sources[key].shape)
        moved[old_part] = 1.0  # look at the new positions only (branch and q/k/v blocks make this a superset)
        assert (moved > 0).all(), f"{key}: {(moved == 0).sum().item()} new entries did not move"
    assert report.identity


@pytest.mark.parametrize("architecture", [
    {},  # IV-VAE: 2-D keyframe + group-causal temporal branch, parallel atrous conv and attention
    {"branches": ["2d", "causal"], "parallel_atrous": False, "full_compression_attention": False},  # Table 4's KTC
    {"branches": ["group_causal", "group_causal"]},  # Table 5's 3-D + 3-D
])
@pytest.mark.parametrize("widths, identities", [
    ({"channel_multipliers": [1, 2, 5, 8]}, 2),  # deep stages; a decoder block gains a shortcut conv per branch
    ({"base_channels": 12}, 0),                 # every stage, the full-resolution branch convs included
])
def test_grown_two_branch_model_encodes_and_reconstructs_as_before(architecture, widths, identities):
    """Each branch's old channels keep their place inside its wider block, for every layer that reads both."""
    model = trained_looking(tiny_ivvae(**architecture))
    grown, report = grow(model, **widths)
    assert grown.spec.branches == model.spec.branches and type(grown) is type(model)
    assert sum(".shortcut.convs." in name for name in report.identity) == identities
    clip = torch.rand(1, 3, 9, 64, 48) * 2 - 1  # two groups after the first frame
    with torch.no_grad():
        latents = model.encode(clip).latent_dist.mean, grown.encode(clip).latent_dist.mean
        assert (latents[0] - latents[1]).abs().max() < 1e-3
        assert (model.decode(latents[0]).sample - grown.decode(latents[0]).sample).abs().max() < 1e-3
    assert max_reconstruction_difference(model, grown) < 1e-3


def test_the_shipped_width_grows_into_the_checkpoint_budget():
    """The bundled IV-VAE's architecture ([1, 2, 4, 6] at base 16) grows to [1, 2, 5, 8] under #6's 40 MB in fp16."""
    narrow = trained_looking(tiny_ivvae(latent_channels=16, base_channels=16, channel_multipliers=[1, 2, 4, 6]))
    grown, _ = grow(narrow, channel_multipliers=[1, 2, 5, 8])
    assert 2 * sum(p.numel() for p in grown.parameters()) < 40e6
    assert max_reconstruction_difference(narrow, grown, size=32) < 1e-3


def test_grown_causal_baseline_reconstructs_as_before():
    torch.manual_seed(0)
    causal = trained_looking(CausalVAE(latent_channels=4, base_channels=8))
    grown, report = grow(causal, channel_multipliers=[1, 2, 4, 6])
    assert any(".time_convs." in key for key in report.grown)  # time convs, upsampling's in two blocks
    assert max_reconstruction_difference(causal, grown) < 1e-3


def test_grown_image_vae_inflates(image_vae):
    """The way to a wider IV-VAE: grow the image VAE, then KTC-inflate it."""
    grown, _ = grow(image_vae, channel_multipliers=[1, 2, 4, 6])
    video_vae, report = inflate_image_vae(grown, "ktc")
    assert not report.unfilled and list(video_vae.config.channel_multipliers) == [1, 2, 4, 6]


@pytest.mark.parametrize("widths, message", [
    ({"channel_multipliers": [1, 2, 4, 8]}, "decoder.blocks.7 (16 -> 32 channels) would be 32 -> 32"),
    ({"channel_multipliers": [1, 2, 2, 6]}, "stage 2 would shrink from 32 to 16"),
    ({"channel_multipliers": [1, 2, 4]}, "must keep 4 stages"),
    ({"base_channels": 8}, "do not change"),
])
def test_refused_widths_say_why(image_vae, widths, message):
    with pytest.raises(GrowthError, match=message.replace("(", r"\(").replace(")", r"\)")):
        grow(image_vae, **widths)


def test_two_branch_widths_that_lose_a_shortcut_are_refused(ivvae):
    with pytest.raises(GrowthError, match=r"decoder.blocks.7 \(16 -> 32 channels\) would be 32 -> 32"):
        grow(ivvae, channel_multipliers=[1, 2, 4, 8])


def test_grow_command(capsys, tmp_path, image_vae):
    image_vae.save_pretrained(tmp_path / "image")
    code, out, _ = run(capsys, "grow", tmp_path / "image", tmp_path / "wide", "--channel-multipliers", 1, 2, 4, 6)
    assert code == 0 and "reconstructions differ by at most" in out
    wide = load_model(tmp_path / "wide")
    assert isinstance(wide, ImageVAE) and list(wide.config.channel_multipliers) == [1, 2, 4, 6]
    report = json.loads((tmp_path / "wide" / REPORT_NAME).read_text())
    assert report["target"]["channel_multipliers"] == [1, 2, 4, 6] and report["max_difference"] < 1e-3
    assert max_reconstruction_difference(image_vae, wide) < 1e-3

    weights = (tmp_path / "wide" / "diffusion_pytorch_model.safetensors").read_bytes()
    code, _, err = run(capsys, "grow", tmp_path / "image", tmp_path / "wide", "--base-channels", 12)
    assert code == 2 and "exists and is not empty" in error_line(err)
    assert (tmp_path / "wide" / "diffusion_pytorch_model.safetensors").read_bytes() == weights  # untouched
    code, _, err = run(capsys, "grow", tmp_path / "image", tmp_path / "other")
    assert code == 2 and "give the new widths" in error_line(err)
    code, _, err = run(capsys, "grow", tmp_path / "image", tmp_path / "other", "--channel-multipliers", 1, 2, 4, 8)
    assert code == 2 and "shortcut" in error_line(err) and not (tmp_path / "other").exists()


def test_grow_command_widens_an_ivvae_keeping_its_latent_normalisation(capsys, tmp_path):
    model = trained_looking(tiny_ivvae(scaling_factor=0.3, shift_factor=-0.45))
    model.save_pretrained(tmp_path / "ivvae")
    code, out, _ = run(capsys, "grow", tmp_path / "ivvae", tmp_path / "wide", "--channel-multipliers", 1, 2, 5, 8)
    assert code == 0 and "2 identity shortcuts" in out
    wide = load_model(tmp_path / "wide")
    assert list(wide.config.channel_multipliers) == [1, 2, 5, 8] and wide.spec.num_branches == 2
    assert (wide.config.scaling_factor, wide.config.shift_factor) == (0.3, -0.45)  # the same latents, so the same statistics
    assert max_reconstruction_difference(model, wide) < 1e-3
