"""Latent normalisation statistics (``ivvae.latent_stats``) and ``ivvae latent-stats``, on tiny models."""

from __future__ import annotations

import json

import pytest
import torch
from cli_helpers import error_line, run, write_sine_video
from safetensors import safe_open

from ivvae import hub
from ivvae.io import frames_to_tensor, read_video
from ivvae.latent_stats import (
    LatentStatistics,
    estimate_latent_statistics,
    with_latent_statistics,
)
from ivvae.models import IVVAE, ImageVAE


def tiny_model(cls=IVVAE, latent_channels: int = 4) -> IVVAE:
    torch.manual_seed(0)
    return cls(latent_channels=latent_channels, base_channels=8, encoder_blocks=1, decoder_blocks=1).eval()


def make_clips() -> list[torch.Tensor]:
    """Clips in [-1, 1] of two sizes, with and without the batch dimension."""
    g = torch.Generator().manual_seed(1)
    return [
        torch.rand(3, 5, 32, 32, generator=g) * 2 - 1,
        torch.rand(1, 3, 5, 32, 32, generator=g) * 2 - 1,
        torch.rand(3, 9, 24, 40, generator=g) * 1.6 - 0.5,
    ]


def direct_latents(model, clips) -> torch.Tensor:
    """(Z, values): every clip's posterior mode, flattened per channel."""
    with torch.no_grad():
        zs = [model.encode(c if c.dim() == 5 else c.unsqueeze(0)).latent_dist.mode() for c in clips]
    return torch.cat([z.double().transpose(0, 1).reshape(z.shape[1], -1) for z in zs], dim=1)


# --------------------------------------------------------------------------------------------
# library
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [IVVAE, ImageVAE])
def test_statistics_equal_direct_computation(cls):
    model, clips = tiny_model(cls), make_clips()
    stats = estimate_latent_statistics(model, clips)  # chunk_groups=1: streamed, exactly the one-pass latents
    z = direct_latents(model, clips)  # one pass
    assert stats.num_values == z.numel() and len(stats.clips) == 3
    assert stats.mean == pytest.approx(z.mean().item(), abs=1e-5)
    assert stats.std == pytest.approx(z.std(unbiased=False).item(), rel=1e-5)
    assert stats.channel_mean == pytest.approx(z.mean(dim=1).tolist(), abs=1e-5)
    assert stats.channel_std == pytest.approx(z.std(dim=1, unbiased=False).tolist(), rel=1e-5)
    assert stats.shift_factor == stats.mean and stats.scaling_factor == pytest.approx(1 / stats.std)
    assert stats.clips[2] == {"index": 2, "frames": 9, "size": [40, 24]}
    data = stats.to_dict()
    assert data["shift_factor"] == stats.shift_factor and data["scaling_factor"] == stats.scaling_factor
    assert LatentStatistics.from_dict(json.loads(json.dumps(data))) == stats
    one_pass = estimate_latent_statistics(model, iter(clips), chunk_groups=None)  # any iterable
    assert one_pass.mean == pytest.approx(stats.mean, abs=1e-5) and one_pass.std == pytest.approx(stats.std, rel=1e-5)


def test_normalised_latents_have_zero_mean_and_unit_std():
    model, clips = tiny_model(), make_clips()
    model.train()
    stats = estimate_latent_statistics(model, clips)
    assert model.training  # the mode is restored
    assert with_latent_statistics(model.eval(), stats) is model
    assert model.config.scaling_factor == stats.scaling_factor and model.config.shift_factor == stats.shift_factor
    z = direct_latents(model, clips)
    normalised = model.normalize_latents(z)
    assert normalised.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert normalised.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(model.denormalize_latents(normalised), z)


def test_no_clips_raises():
    with pytest.raises(ValueError, match="no clips"):
        estimate_latent_statistics(tiny_model(), [])


def test_constant_latents_raise():
    model = tiny_model()
    for p in model.parameters():
        p.data.zero_()  # every latent is 0
    with pytest.raises(ValueError, match="std is 0.*constant"):
        estimate_latent_statistics(model, make_clips()[:1])


def test_non_finite_latents_raise():
    model = tiny_model()
    next(model.encoder.parameters()).data.fill_(float("nan"))
    with pytest.raises(ValueError, match="not finite"):
        estimate_latent_statistics(model, make_clips()[:1])


def test_bad_clips_raise():
    model = tiny_model()
    with pytest.raises(ValueError, match="float tensor"):
        estimate_latent_statistics(model, [torch.zeros(3, 5, 32, 32, dtype=torch.uint8)])
    with pytest.raises(ValueError, match=r"\(3, T, H, W\)"):
        estimate_latent_statistics(model, [torch.zeros(2, 3, 5, 32, 32)])
    with pytest.raises(ValueError, match="scaling_factor"):
        with_latent_statistics(model, LatentStatistics(0.0, 0.0, [], [], 0))  # 1/0


# --------------------------------------------------------------------------------------------
# ivvae latent-stats
# --------------------------------------------------------------------------------------------


def folder_bytes(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 10-frame 32x32 MP4: two 5-frame clips."""
    return write_sine_video(tmp_path_factory.mktemp("video") / "clip.mp4", 10, 32, 32)


@pytest.fixture
def model_dir(tmp_path):
    path = tmp_path / "tiny"
    tiny_model().save_pretrained(path)
    return path


ARGS = ["--frames", "5", "--crop", "32", "--clips-per-video", "2", "--threads", "1", "--no-progress"]


def test_cli_writes_statistics_and_model(capsys, model_dir, video, tmp_path):
    before = folder_bytes(model_dir)
    out_json, out_model = tmp_path / "stats.json", tmp_path / "normalised"
    argv = ["latent-stats", "--model", model_dir, "--data", video, *ARGS, "--json", out_json, "--write-model", out_model]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    report = json.loads(out_json.read_text())
    # the same clips through the library give the same numbers
    clips = [frames_to_tensor(read_video(video, start=s, num_frames=5).frames) for s in (0, 5)]
    expected = estimate_latent_statistics(hub.load_model(model_dir), clips)
    assert report["shift_factor"] == pytest.approx(expected.shift_factor, abs=1e-6)
    assert report["scaling_factor"] == pytest.approx(expected.scaling_factor, rel=1e-6)
    assert report["num_values"] == expected.num_values == 2 * 4 * 2 * 4 * 4
    assert [(c["path"], c["start"], c["size"]) for c in report["clips"]] == [(str(video), 0, [32, 32]), (str(video), 5, [32, 32])]
    assert report["model_factors_before"] == {"scaling_factor": 1.0, "shift_factor": 0.0}
    for text in (
        "clips   2 from 1 video(s), 5 frames, 32x32",
        "shift_factor",
        "scaling_factor",
        f"{report['scaling_factor']:.6f}",
        "--model",
    ):
        assert text in out
    # the written model carries the factors (not the local path it was read from); the input folder is untouched
    assert "_name_or_path" not in json.loads((out_model / "config.json").read_text())
    written = hub.load_model(out_model)
    assert written.config.scaling_factor == pytest.approx(report["scaling_factor"])
    assert written.config.shift_factor == pytest.approx(report["shift_factor"])
    for (name, a), (_, b) in zip(hub.load_model(model_dir).state_dict().items(), written.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert folder_bytes(model_dir) == before
    # outputs that exist are refused, and kept
    stats_text = out_json.read_text()
    code, _, err = run(capsys, *argv)
    assert code == 2 and "--overwrite" in error_line(err) and str(out_json) in err
    code, _, err = run(capsys, *[a for a in argv if a not in ("--json", out_json)])
    assert code == 2 and "--overwrite" in error_line(err) and str(out_model) in err
    assert out_json.read_text() == stats_text
    assert run(capsys, *argv, "--overwrite")[0] == 0
    # never over the input model folder, even with --overwrite
    code, _, err = run(capsys, "latent-stats", "--model", model_dir, "--data", video, *ARGS, "--write-model", model_dir, "--overwrite")
    assert code == 2 and "input model folder" in error_line(err)
    assert folder_bytes(model_dir) == before


def test_cli_write_model_keeps_the_stored_dtype(capsys, video, tmp_path):
    half = tmp_path / "half"
    tiny_model().to(torch.float16).save_pretrained(half)
    code, out, err = run(capsys, "latent-stats", "--model", half, "--data", video, *ARGS, "--write-model", tmp_path / "out")
    assert code == 0, err
    assert "float16 weights" in out
    with safe_open(tmp_path / "out" / "diffusion_pytorch_model.safetensors", "pt") as f:
        assert {f.get_slice(key).get_dtype() for key in f.keys()} == {"F16"}  # noqa: SIM118


def test_cli_skips_unreadable_videos_and_fails_without_clips(capsys, model_dir, video, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("this is not a video\n")
    code, out, err = run(capsys, "latent-stats", "--model", model_dir, "--data", video, "--data", bad, *ARGS,
                         "--json", tmp_path / "stats.json")
    assert code == 0, err
    assert "warning" in err and str(bad) in err and "(1 video(s) skipped)" in out
    report = json.loads((tmp_path / "stats.json").read_text())
    assert len(report["clips"]) == 2 and [s["path"] for s in report["skipped"]] == [str(bad)]
    code, _, err = run(capsys, "latent-stats", "--model", model_dir, "--data", bad, *ARGS)
    assert code == 2 and "no clip could be read" in error_line(err)


def test_cli_missing_data(capsys, model_dir, tmp_path):
    missing = tmp_path / "no_videos"
    code, _, err = run(capsys, "latent-stats", "--model", model_dir, "--data", missing, *ARGS)
    line = error_line(err)
    assert code == 2 and str(missing) in line and "--data" in line


def test_cli_help(capsys):
    code, out, _ = run(capsys, "latent-stats", "--help")
    assert code == 0 and "examples:" in out and "ivvae latent-stats" in out and "training" in out.lower()
