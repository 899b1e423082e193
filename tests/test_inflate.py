"""Initialisation from an image VAE: exact properties of each mode at initialisation, the report."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ivvae.hub import load_model
from ivvae.inflate import REPORT_NAME, InflationError, infer_mode, inflate, inflate_image_vae, inflate_pretrained
from ivvae.models import IVVAE, CausalVAE, ImageVAE

Z_IMAGE = 4
FRAMES = 9  # frame 0, then groups 1..4 and 5..8
TOL = 1e-4


def random_image_vae(latent_channels: int = Z_IMAGE, **config) -> ImageVAE:
    """A tiny image VAE with random weights everywhere (gammas too, so tiling is tested)."""
    torch.manual_seed(0)
    model = ImageVAE(latent_channels=latent_channels, base_channels=8, **config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("gamma"):
                param.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def image_vae():
    return random_image_vae()


@pytest.fixture(scope="module")
def video():
    torch.manual_seed(1)
    return torch.rand(1, 3, FRAMES, 16, 24) * 2 - 1


@pytest.fixture(scope="module")
def image_outputs(image_vae, video):
    """The image VAE's per-frame latents (means) and reconstructions."""
    with torch.no_grad():
        return image_vae.encode(video).latent_dist.mode(), image_vae(video).sample


def assert_frames(actual, expected, source_frames, tol=TOL):
    """Frame ``i`` of ``actual`` equals frame ``source_frames[i]`` of ``expected``."""
    assert actual.shape[2] == len(source_frames)
    for i, j in enumerate(source_frames):
        error = (actual[:, :, i] - expected[:, :, j]).abs().max().item()
        assert error <= tol, f"frame {i} differs from source frame {j} by {error}"


def group_sources(first_only: bool, frame: int | None) -> list[int]:
    """Source frame of every output frame: frame 0, then per group the keyframe and/or ``frame``."""
    sources = [0]
    for start in range(1, FRAMES, 4):
        sources += [start + (0 if (position == 0 and first_only) else frame) for position in range(4)]
    return sources


# ----------------------------------------------------------------------------------- ktc
@pytest.mark.parametrize(
    "branches", [("2d", "group_causal"), ("2d", "causal"), ("group_causal", "group_causal"), ("2d", "2d")], ids="+".join
)
@torch.no_grad()
def test_ktc_starts_as_the_image_vae(image_vae, video, image_outputs, branches):
    image_latents, image_recon = image_outputs
    model, report = inflate_image_vae(image_vae, "ktc", branches=branches)
    assert report.mode == "ktc" and report.temporal_frame == 2 and not report.unfilled and not report.unused
    assert model.spec.latent_channels == 2 * Z_IMAGE and model.spec.branches == branches
    latents = model.encode(video).latent_dist.mode()
    # latent channels 0..Z/2-1: the image latent of each keyframe; Z/2..Z-1: of frame 2 of the group
    assert_frames(latents[:, :Z_IMAGE], image_latents, [0, 1, 5])
    assert_frames(latents[:, Z_IMAGE:], image_latents, [0, 3, 7])
    # frame 0 and each group's first frame as the image VAE; the other frames copy frame 2 of the group
    recon = model(video).sample
    assert_frames(recon, image_recon, group_sources(first_only=True, frame=2))
    # both execution paths still agree
    assert (model.decode(latents, chunk_groups=1).sample - model.decode(latents).sample).abs().max() <= 1e-5
    assert (model.encode(video, chunk_groups=1).latent_dist.mode() - latents).abs().max() <= 1e-5


@pytest.mark.parametrize("frame", [1, 3])
@torch.no_grad()
def test_ktc_temporal_frame_is_selectable(image_vae, video, image_outputs, frame):
    _, image_recon = image_outputs
    model, report = inflate_image_vae(image_vae, "ktc", temporal_frame=frame)
    assert report.temporal_frame == frame
    assert_frames(model(video).sample, image_recon, group_sources(first_only=True, frame=frame))


@torch.no_grad()
def test_ktc_one_frame_video_is_the_image(image_vae, video):
    model, _ = inflate_image_vae(image_vae, "ktc")
    image = video[:, :, 0]
    assert (model(image.unsqueeze(2)).sample[:, :, 0] - image_vae(image).sample).abs().max() <= TOL


@torch.no_grad()
def test_ktc_weights_follow_the_rules(image_vae):
    model, report = inflate_image_vae(image_vae, "ktc")
    target, source = model.state_dict(), image_vae.state_dict()
    w = image_vae.encoder.blocks[0].conv1.convs["main"].weight  # (8, 8, 3, 3)
    keyframe = model.encoder.blocks[0].conv1.convs["keyframe"].weight  # (8, 16, 3, 3)
    temporal = model.encoder.blocks[0].conv1.convs["temporal"].weight  # (8, 16, 3, 3, 3)
    assert torch.equal(keyframe[:, :8], w) and not keyframe[:, 8:].any()
    assert torch.equal(temporal[:, 8:, 1], w) and not temporal[:, :8].any() and not temporal[:, :, [0, 2]].any()
    # dense 2-D convs are block-diagonal
    dense = target["encoder.middle.0.conv1.weight"]
    dense_source = source["encoder.middle.0.conv1.weight"]
    c = dense_source.shape[0]
    assert torch.equal(dense[:c, :c], dense_source) and torch.equal(dense[c:, c:], dense_source)
    assert not dense[:c, c:].any() and not dense[c:, :c].any()
    # gammas tiled, attention copied per half
    gamma = source["encoder.norm_out.gamma"]
    assert torch.equal(target["encoder.norm_out.gamma"], torch.cat([gamma, gamma]))
    for half in ("keyframe", "temporal"):
        assert torch.equal(target[f"encoder.middle.1.blocks.{half}.to_qkv.weight"], source["encoder.middle.1.blocks.main.to_qkv.weight"])
    # temporal downsampling selects frame 0 then 1 of each pair (frame 2 of the group); upsampling copies
    downs = [key for key in target if ".time_convs." in key and key.startswith("encoder") and key.endswith("weight")]
    assert len(downs) == 2
    for level, key in enumerate(downs):
        eye = torch.eye(target[key].shape[0])
        assert torch.equal(target[key][:, :, (2 >> level) & 1, 0, 0], eye) and not target[key][:, :, 1 - ((2 >> level) & 1)].any()
    ups = [key for key in target if ".time_convs." in key and key.startswith("decoder") and key.endswith("weight")]
    for key in ups:
        eye = torch.eye(target[key].shape[1])
        assert torch.equal(target[key][:, :, 0, 0, 0], torch.cat([eye, eye]))
    # the report covers every tensor and names the zeroed cross-half blocks
    assert set(report.filled) == set(target)
    assert any(entry.startswith("encoder.blocks.0.conv1.convs.keyframe.weight[") for entry in report.zeroed)
    assert "other half" in " ".join(report.zeroed)


# ----------------------------------------------------------------------------------- tail
@pytest.mark.parametrize("frame", [None, 1])
@torch.no_grad()
def test_tail_causal_vae_copies_a_definite_frame(image_vae, video, image_outputs, frame):
    image_latents, image_recon = image_outputs
    model, report = inflate_image_vae(image_vae, "tail", temporal_frame=frame)
    chosen = 2 if frame is None else frame
    assert type(model) is CausalVAE and report.mode == "tail" and report.temporal_frame == chosen
    assert model.spec.latent_channels == Z_IMAGE
    # tail rule: the current frame's tap holds the 2-D kernel
    temporal = model.encoder.blocks[0].conv1.convs["main"].weight
    assert torch.equal(temporal[:, :, 2], image_vae.encoder.blocks[0].conv1.convs["main"].weight)
    assert not temporal[:, :, :2].any()
    # latent frame t >= 1 is the image latent of frame `chosen` of group t; every frame of the group decodes as it
    assert_frames(model.encode(video).latent_dist.mode(), image_latents, [0, 1 + chosen, 5 + chosen])
    recon = model(video).sample
    assert_frames(recon, image_recon, group_sources(first_only=False, frame=chosen))
    assert (model(video[:, :, :1]).sample - image_recon[:, :, :1]).abs().max() <= TOL
    assert (model.encode(video, chunk_groups=1).latent_dist.mode() - model.encode(video).latent_dist.mode()).abs().max() <= 1e-5


@torch.no_grad()
def test_single_group_causal_branch_uses_the_centre_tap(image_vae, video, image_outputs):
    """Any single 3-D branch inflates too: group causal convs get the centre rule (mode 'single')."""
    target = IVVAE(latent_channels=Z_IMAGE, base_channels=8, branches=("group_causal",)).eval()
    report = inflate(image_vae, target)
    assert report.mode == "single" and report.temporal_frame == 2
    assert not target.encoder.blocks[0].conv1.convs["main"].weight[:, :, [0, 2]].any()
    assert_frames(target(video).sample, image_outputs[1], group_sources(first_only=False, frame=2))


# ----------------------------------------------------------------------------------- same width
@torch.no_grad()
def test_same_width_holds_the_keyframe_image_latent(image_vae, video, image_outputs):
    image_latents, image_recon = image_outputs
    model, report = inflate_image_vae(image_vae, "same")
    assert type(model) is IVVAE and model.spec.latent_channels == Z_IMAGE and report.mode == "same" and report.temporal_frame == 0
    # all Z latent channels: the image latent of the keyframe (keyframe half 0..Z/2-1, temporal half Z/2..Z-1)
    assert_frames(model.encode(video).latent_dist.mode(), image_latents, [0, 1, 5])
    # every frame of a group is the image VAE's reconstruction of the group's first frame
    assert_frames(model(video).sample, image_recon, group_sources(first_only=False, frame=0))
    with pytest.raises(InflationError, match="temporal_frame must be 0"):
        inflate_image_vae(image_vae, "same", temporal_frame=2)


@torch.no_grad()
def test_same_width_without_pac(video):
    image = random_image_vae(parallel_atrous=False, full_compression_attention=False)
    model, report = inflate_image_vae(image, "same")
    assert not model.spec.parallel_atrous and not report.unfilled
    assert_frames(model(video).sample, image(video).sample, group_sources(first_only=False, frame=0))


# ----------------------------------------------------------------------------------- refusals
def test_unfilled_tensors_are_refused_unless_allowed(image_vae, video):
    target = IVVAE(latent_channels=2 * Z_IMAGE, base_channels=8).eval()
    target.encoder.extra = nn.Parameter(torch.ones(3))  # a tensor no rule knows
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(InflationError, match=r"unfilled: encoder\.extra"):
        inflate(image_vae, target)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())  # untouched
    report = inflate(image_vae, target, allow_unfilled=True)
    assert report.unfilled == ["encoder.extra"] and torch.equal(target.encoder.extra, torch.ones(3))
    assert "encoder.extra" in report.summary()


def test_mismatched_models_are_refused(image_vae):
    with pytest.raises(InflationError, match="base_channels"):
        infer_mode(image_vae, IVVAE(latent_channels=8, base_channels=16))
    with pytest.raises(InflationError, match="Z=8"):
        infer_mode(image_vae, IVVAE(latent_channels=16, base_channels=8))
    with pytest.raises(InflationError, match="image VAE"):
        infer_mode(IVVAE(latent_channels=8, base_channels=8), IVVAE(latent_channels=8, base_channels=8))
    with pytest.raises(InflationError, match="parallel_atrous"):
        inflate_image_vae(image_vae, "ktc", parallel_atrous=False)
    with pytest.raises(InflationError, match="temporal_frame"):
        inflate_image_vae(image_vae, "ktc", temporal_frame=4)
    with pytest.raises(ValueError, match="unknown inflation mode"):
        inflate_image_vae(image_vae, "centre")


# ----------------------------------------------------------------------------------- library call for the CLI
@torch.no_grad()
def test_inflate_pretrained_writes_a_loadable_folder(image_vae, video, image_outputs, tmp_path):
    image_vae.save_pretrained(tmp_path / "image")
    model, report = inflate_pretrained(tmp_path / "image", tmp_path / "video", mode="ktc")
    saved = json.loads((tmp_path / "video" / REPORT_NAME).read_text())
    assert saved["mode"] == "ktc" and saved["unfilled"] == [] and len(saved["filled"]) == len(model.state_dict())
    loaded = load_model(tmp_path / "video")
    assert type(loaded) is IVVAE and loaded.spec.latent_channels == 2 * Z_IMAGE
    assert_frames(loaded(video).sample, image_outputs[1], group_sources(first_only=True, frame=2))
    with pytest.raises(FileExistsError, match="overwrite"):
        inflate_pretrained(tmp_path / "image", tmp_path / "video", mode="tail")
    causal, _ = inflate_pretrained(tmp_path / "image", tmp_path / "video", mode="tail", overwrite=True)
    assert type(load_model(tmp_path / "video")) is CausalVAE and type(causal) is CausalVAE
