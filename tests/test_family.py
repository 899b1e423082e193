"""The model family: image VAE, causal baseline, ablation presets, describe_model / list_presets."""

from __future__ import annotations

import pytest
import torch

from ivvae.hub import load_model
from ivvae.layers import CausalConv3d, GroupCausalConv3d, stream
from ivvae.layers.temporal import _TemporalConv3d
from ivvae.models import IVVAE, PRESETS, CausalVAE, ImageVAE, build_model, describe_model, list_presets, preset_class
from ivvae.models.presets import ABLATIONS, IMAGE_VAES, PRESET_DESCRIPTIONS, RELEASED_PARAMETERS

TINY = dict(base_channels=8)


def tiny(cls, **config):
    torch.manual_seed(0)
    return cls(**{**TINY, **config}).eval()


def tiny_preset(name, **overrides):
    torch.manual_seed(0)
    return build_model(name, **TINY, **overrides).eval()


def assert_close(a, b, tol=1e-5):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert (a - b).abs().max().item() <= tol


# ----------------------------------------------------------------------------------- image VAE
@pytest.fixture(scope="module")
def image_vae():
    return tiny(ImageVAE, latent_channels=4)


@torch.no_grad()
def test_image_vae_codes_images_as_4d(image_vae):
    images = torch.rand(2, 3, 16, 24) * 2 - 1
    posterior = image_vae.encode(images).latent_dist
    mean = posterior.mode()
    assert mean.shape == (2, 4, 2, 3) == image_vae.latent_shape(images.shape)
    assert posterior.sample(torch.Generator().manual_seed(0)).shape == mean.shape
    assert image_vae.decode(mean).sample.shape == images.shape
    assert image_vae(images).sample.shape == images.shape
    assert image_vae.decode(mean, return_dict=False)[0].shape == images.shape
    odd = torch.rand(1, 3, 17, 20) * 2 - 1  # padded to multiples of 8, cropped back
    assert image_vae(odd).sample.shape == odd.shape


@torch.no_grad()
def test_image_vae_codes_videos_frame_by_frame(image_vae):
    video = torch.rand(1, 3, 3, 16, 16) * 2 - 1
    mean = image_vae.encode(video).latent_dist.mode()
    assert mean.shape == (1, 4, 3, 2, 2) == image_vae.latent_shape(video.shape)
    assert image_vae.temporal_compression == 1 and image_vae.spatial_compression == 8
    per_frame = torch.stack([image_vae.encode(video[:, :, t]).latent_dist.mode() for t in range(3)], dim=2)
    assert_close(mean, per_frame)
    decoded = image_vae.decode(mean).sample
    assert_close(decoded, torch.stack([image_vae.decode(mean[:, :, t]).sample for t in range(3)], dim=2))
    assert_close(image_vae.decode(mean, chunk_groups=1).sample, decoded)
    assert_close(image_vae(video).sample, decoded)


def test_image_vae_rejects_bad_images(image_vae):
    with pytest.raises(ValueError, match="channels second"):
        image_vae.encode(torch.zeros(1, 16, 16, 3))
    with pytest.raises(ValueError, match="uint8"):
        image_vae(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))


@torch.no_grad()
def test_image_vae_round_trips_through_save_and_load(image_vae, tmp_path):
    assert "branches" not in image_vae.config and "temporal_downsample" not in image_vae.config
    image_vae.save_pretrained(tmp_path / "image")
    loaded = ImageVAE.from_pretrained(tmp_path / "image").eval()
    assert type(loaded) is ImageVAE and loaded.spec == image_vae.spec
    by_hub = load_model(tmp_path / "image")  # dispatches on the config's _class_name
    assert type(by_hub) is ImageVAE
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(loaded(images).sample, image_vae(images).sample)
    assert torch.equal(by_hub(images).sample, image_vae(images).sample)


# ----------------------------------------------------------------------------------- causal VAE
def test_causal_vae_defaults_are_the_paper_baseline():
    with torch.device("meta"):
        model = CausalVAE()
    assert model.spec.branches == ("causal",) and model.spec.base_channels == 96
    assert (model.temporal_compression, model.spatial_compression) == (4, 8)
    assert not model.spec.parallel_atrous and not model.spec.full_compression_attention
    temporal = [m for m in model.modules() if isinstance(m, _TemporalConv3d)]
    assert temporal and all(isinstance(m, CausalConv3d) for m in temporal)


@pytest.fixture(scope="module")
def causal_vae():
    return tiny(CausalVAE, latent_channels=8)


@pytest.mark.parametrize("frames", [1, 5, 9, 11])
@torch.no_grad()
def test_causal_vae_streaming_equals_one_pass(causal_vae, frames):
    video = torch.rand(1, 3, frames, 16, 16) * 2 - 1
    mean = causal_vae.encode(video).latent_dist.mode()
    assert mean.shape == causal_vae.latent_shape(video.shape)
    decoded = causal_vae.decode(mean).sample
    for chunk_groups in (1, 2):
        assert_close(causal_vae.encode(video, chunk_groups=chunk_groups).latent_dist.mode(), mean)
        assert_close(causal_vae.decode(mean, chunk_groups=chunk_groups).sample, decoded)


@torch.no_grad()
def test_causal_vae_cache_holds_two_frames_and_the_past_ignores_the_future(causal_vae):
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    with stream(causal_vae.encoder):
        causal_vae.encoder(video[:, :, :1])
        caches = [m._cache for m in causal_vae.encoder.modules() if isinstance(m, CausalConv3d) and m.temporal_kernel == 3]
    assert caches and all(cache.shape[2] == 2 for cache in caches)
    changed = video.clone()
    changed[:, :, 8] = -changed[:, :, 8]
    out, out_changed = causal_vae(video).sample, causal_vae(changed).sample
    assert_close(out_changed[:, :, :5], out[:, :, :5], 1e-6)  # frames before the last group
    assert (out_changed[:, :, 5:] - out[:, :, 5:]).abs().max() > 1e-4


@torch.no_grad()
def test_causal_vae_round_trips_through_save_and_load(causal_vae, tmp_path):
    causal_vae.save_pretrained(tmp_path / "causal")
    loaded = load_model(tmp_path / "causal")
    assert type(loaded) is CausalVAE and loaded.spec == causal_vae.spec
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    assert torch.equal(loaded(video).sample, causal_vae(video).sample)


# ----------------------------------------------------------------------------------- ablations
@pytest.mark.parametrize("name", sorted(ABLATIONS))
@torch.no_grad()
def test_ablation_variant_runs_both_paths_exactly(name):
    model = tiny_preset(name)
    assert describe_model(model)["parameters"]["total"] > 0
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    mean = model.encode(video).latent_dist.mode()
    assert mean.shape == (1, 8, 3, 2, 2)
    decoded = model.decode(mean).sample
    assert decoded.shape == video.shape
    for chunk_groups in (1, 2):
        assert_close(model.encode(video, chunk_groups=chunk_groups).latent_dist.mode(), mean)
        assert_close(model.decode(mean, chunk_groups=chunk_groups).sample, decoded)


def _temporal_kinds(model):
    return {type(m) for m in model.modules() if isinstance(m, _TemporalConv3d) and m.temporal_kernel == 3}


def test_ablation_switches_change_only_what_they_name():
    with torch.device("meta"):
        models = {name: build_model(name) for name in ABLATIONS}
    assert type(models["ablation_baseline"]) is CausalVAE
    assert _temporal_kinds(models["ablation_baseline"]) == {CausalConv3d}
    assert _temporal_kinds(models["ablation_gcconv"]) == {GroupCausalConv3d}
    assert _temporal_kinds(models["ablation_ktc"]) == {CausalConv3d}
    assert _temporal_kinds(models["ablation_ktc_gcconv"]) == {GroupCausalConv3d}
    assert _temporal_kinds(models["ablation_2d2d"]) == set()
    ktc = models["ablation_ktc_gcconv"].encoder.conv_in.convs
    assert type(ktc["keyframe"]).__name__ == "FrameConv2d" and isinstance(ktc["temporal"], GroupCausalConv3d)
    assert all(isinstance(c, GroupCausalConv3d) for c in models["ablation_3d3d"].encoder.conv_in.convs.values())
    # KTC + GCConv + TMPE is the released IV-VAE at Z=8
    with torch.device("meta"):
        released = build_model("ivvae_z8_dim64")
    assert models["ablation_ktc_gcconv_tmpe"].spec == released.spec


#: Full-size parameter counts (checked on the meta device).
ABLATION_PARAMETERS = {
    "ablation_baseline": 77_337_099,
    "ablation_gcconv": 77_337_099,
    "ablation_ktc": 103_913_326,
    "ablation_ktc_gcconv": 103_913_326,
    "ablation_ktc_gcconv_tmpe": 107_379_150,
    "ablation_3d3d": 135_701_070,
    "ablation_2d2d": 79_057_230,
}


def test_preset_parameter_counts_and_tmpe_size():
    counts = {name: description_and_count[1] for name, *description_and_count in list_presets()}
    assert list(counts) == list(PRESETS)
    for name, expected in {**RELEASED_PARAMETERS, **ABLATION_PARAMETERS}.items():
        assert counts[name] == expected, name
    assert counts["ablation_ktc_gcconv_tmpe"] == RELEASED_PARAMETERS["ivvae_z8_dim64"]
    # paper: TMPE adds ~3M parameters (104M -> 107M at Z=8); ours: 103.9M -> 107.4M
    tmpe = counts["ablation_ktc_gcconv_tmpe"] - counts["ablation_ktc_gcconv"]
    assert 3_000_000 <= tmpe <= 4_000_000
    assert round(counts["ablation_ktc_gcconv"] / 1e6) == 104 and round(counts["ablation_ktc_gcconv_tmpe"] / 1e6) == 107
    assert all(PRESET_DESCRIPTIONS[name] for name in PRESETS)


@torch.no_grad()
def test_2d2d_temporal_branch_still_mixes_time():
    """2-D + 2-D: no 3-D conv, yet the temporal branch fuses frame pairs (its resampling convs)."""
    model = tiny_preset("ablation_2d2d")
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    changed = video.clone()
    changed[:, :, 2] = -changed[:, :, 2]  # second frame of the first group (frames 1..4)
    out, out_changed = model(video).sample, model(changed).sample
    assert (out_changed[:, :, 4] - out[:, :, 4]).abs().max() > 1e-4  # another frame of the group moves
    assert_close(out_changed[:, :, 0], out[:, :, 0], 1e-6)  # frame 0 is coded alone
    assert_close(out_changed[:, :, 5:], out[:, :, 5:], 1e-6)  # no 3-D conv: no memory across groups


# ----------------------------------------------------------------------------------- describe
def test_build_model_picks_the_preset_class():
    for name in IMAGE_VAES:
        assert preset_class(name) is ImageVAE
    assert preset_class("ablation_baseline") is CausalVAE and preset_class("ivvae_z8_dim64") is IVVAE
    with torch.device("meta"):
        image = build_model("image_vae_z4_dim64")
    assert type(image) is ImageVAE and image.spec.latent_channels == 4 and image.spec.branches == ("2d",)


def test_describe_model():
    with torch.device("meta"):
        model = build_model("ivvae_z8_dim64")
        image = build_model("image_vae_z4_dim64")
    info = describe_model(model)
    assert info["class"] == "IVVAE" and info["branches"] == ["2d", "group_causal"]
    assert info["parameters"] == {"total": 107_379_150, "encoder": info["parameters"]["encoder"], "decoder": info["parameters"]["decoder"]}
    assert info["parameters"]["encoder"] + info["parameters"]["decoder"] == info["parameters"]["total"]
    assert info["compression"] == {"temporal": 4, "spatial": 8}
    assert info["example"] == {"input_shape": [1, 3, 17, 256, 256], "latent_shape": [1, 8, 5, 32, 32]}
    assert info["config"]["latent_channels"] == 8 and info["config"]["scaling_factor"] == 1.0940
    assert not any(key.startswith("_") for key in info["config"])
    image_info = describe_model(image)
    assert image_info["class"] == "ImageVAE" and image_info["compression"] == {"temporal": 1, "spatial": 8}
    assert image_info["example"]["latent_shape"] == [1, 4, 17, 32, 32]
