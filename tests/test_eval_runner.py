"""The evaluation runner (ivvae.eval.runner / report / commands) and the long-video benchmark, on
tiny random models and tiny synthetic videos."""

from __future__ import annotations

import argparse
import csv
import json
import math
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from bench_helpers import load_benchmark

from ivvae.eval import commands
from ivvae.eval.lpips import LPIPS
from ivvae.eval.report import REPORT_FILES, markdown_report, write_report
from ivvae.eval.runner import PROTOCOLS, DatasetSpec, EvalResults, EvalSettings, evaluate, fit_size
from ivvae.io import VideoReadError, write_video
from ivvae.models import IVVAE

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
def _moving_texture(frames: int, height: int, width: int, dx: int, seed: int) -> np.ndarray:
    """A smooth random texture translating by dx pixels per frame: uint8 (T, H, W, 3)."""
    rng = np.random.default_rng(seed)
    pad = abs(dx) * frames + 4
    small = rng.integers(0, 256, ((height + 2 * pad) // 4 + 2, (width + 2 * pad) // 4 + 2, 3)).astype(np.float32)
    canvas = np.kron(small, np.ones((4, 4, 1), np.float32))  # blocky but compressible
    out = []
    for t in range(frames):
        x0 = pad + dx * t
        out.append(canvas[pad : pad + height, x0 : x0 + width])
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def _no_weights(tmp_path_factory, monkeypatch):
    """No LPIPS / I3D weights anywhere, whatever the machine has."""
    empty = tmp_path_factory.mktemp("no_weights")
    monkeypatch.setenv("IVVAE_WEIGHTS_DIR", str(empty))
    monkeypatch.setenv("TORCH_HOME", str(empty / "torch"))
    monkeypatch.setenv("HOME", str(empty))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    write_video(d / "a.mp4", _moving_texture(17, 32, 48, 2, seed=0), 25)
    write_video(d / "sub" / "b.mp4", _moving_texture(17, 32, 48, -1, seed=1), 25)
    return d


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for name, z, seed in [("tiny_z8", 8, 0), ("tiny_z16", 16, 1)]:
        torch.manual_seed(seed)
        path = tmp_path_factory.mktemp(name)
        IVVAE(latent_channels=z, base_channels=8).eval().save_pretrained(path)
        out[name] = path
    return out


class IdentityVAE:
    """A stand-in with the IVVAE encode/decode API whose reconstruction is the input itself."""

    temporal_compression = 4
    spatial_compression = 8

    def encode(self, x, chunk_groups=None):
        return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: x.clone()))

    def decode(self, z, chunk_groups=None, num_frames=None, height=None, width=None):
        return SimpleNamespace(sample=z[:, :, :num_frames, :height, :width])


def _cheap_features(videos: torch.Tensor) -> torch.Tensor:
    """A stand-in for I3D features (B, 3*T): mean colour of each frame."""
    return videos.float().mean(dim=(3, 4)).flatten(1).double()


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


# --------------------------------------------------------------------------------------------
# evaluate + write_report
# --------------------------------------------------------------------------------------------
def test_two_models_report_without_weights(data_dir, model_dirs, tmp_path):
    models = {name: str(p) for name, p in model_dirs.items()}
    results = evaluate(models, DatasetSpec(data_dir), EvalSettings(progress=False))
    paths = write_report(results, tmp_path / "report")
    for name in REPORT_FILES:
        assert (tmp_path / "report" / name).is_file() and (tmp_path / "report" / name).stat().st_size > 0
    assert set(paths) == set(REPORT_FILES)

    data = json.loads((tmp_path / "report" / "results.json").read_text())  # strict JSON
    assert data["dataset"]["num_clips"] == 2 and data["dataset"]["skipped"] == []
    assert data["settings"]["chunk_groups"] == 1
    for name in models:
        r = data["models"][name]
        for metric in ("psnr", "ssim", "information_preservation"):
            assert _finite(r["metrics"][metric]), (name, metric)
        assert r["metrics"]["lpips"] is None and r["metrics"]["fvd"] is None
        assert "alexnet-owt-7be5be79.pth" in r["unavailable"]["lpips"] and "--lpips-backbone" in r["unavailable"]["lpips"]
        assert "i3d_pretrained_400.pt" in r["unavailable"]["fvd"]
        assert len(r["ssim_by_position"]) == 4 and all(_finite(v) for v in r["ssim_by_position"])
        assert len(r["psnr_per_frame"]) == 17 and all(_finite(v) for v in r["psnr_per_frame"])
        assert len(r["per_clip"]) == 2 and {c["path"] for c in r["per_clip"]} == {str(data_dir / "a.mp4"), str(data_dir / "sub" / "b.mp4")}
        assert r["info"]["params"] > 0
    assert data["models"]["tiny_z8"]["info"]["latent_channels"] == 8
    assert data["models"]["tiny_z16"]["info"]["latent_channels"] == 16
    # the clip mean of the per-frame PSNR is the reported PSNR
    r = results["tiny_z8"]
    assert np.mean(r.psnr_per_frame) == pytest.approx(r.metrics["psnr"], abs=1e-9)

    md = (tmp_path / "report" / "results.md").read_text()
    assert "| model | params | Z | PSNR | SSIM | LPIPS | FVD |" in md
    assert "| tiny_z8 | 1.73M | 8 |" in md and "| tiny_z16 |" in md
    assert "SSIM pos 3" in md and "info. preservation" in md
    assert "n/a [^1]" in md and "[^1]: LPIPS weights not found" in md

    again = EvalResults.load_json(tmp_path / "report" / "results.json")
    assert again["tiny_z16"].metrics == pytest.approx(results["tiny_z16"].metrics)
    assert markdown_report(again) == md


def test_perfect_reconstruction_aggregates_to_one(data_dir):
    lpips = LPIPS(pretrained=False)
    results = evaluate({"identity": IdentityVAE()}, DatasetSpec(data_dir),
                       EvalSettings(progress=False, lpips=lpips, fvd=_cheap_features))
    r = results["identity"]
    assert r.metrics["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert r.metrics["information_preservation"] == 1.0
    assert r.metrics["psnr"] == 100.0  # identical frames: the per-frame cap
    assert r.ssim_by_position == pytest.approx([1.0] * 4, abs=1e-6)
    assert r.metrics["lpips"] == pytest.approx(0.0, abs=1e-7)
    assert r.metrics["fvd"] == pytest.approx(0.0, abs=1e-6)
    assert r.info["params"] is None and r.info["latent_channels"] is None
    md = markdown_report(results)
    assert "| identity | n/a | n/a | 100.00 | 1.0000 |" in md


def test_clip_length_without_whole_groups(data_dir, tmp_path):
    results = evaluate({"identity": IdentityVAE()}, DatasetSpec(data_dir, frames=16), EvalSettings(progress=False, lpips=False, fvd=False))
    r = results["identity"]
    assert r.ssim_by_position is None and "1 + k*4" in r.unavailable["ssim_by_position"]
    assert len(r.psnr_per_frame) == 16
    write_report(results, tmp_path)
    assert "| identity | n/a [^" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "ssim_by_position.png").stat().st_size > 0


def test_lpips_and_fvd_filled_when_given(data_dir, model_dirs, tmp_path):
    torch.manual_seed(0)
    results = evaluate({"m": str(model_dirs["tiny_z8"])}, DatasetSpec(data_dir),
                       EvalSettings(progress=False, lpips=LPIPS(pretrained=False), fvd=_cheap_features, quantize=True))
    r = results["m"]
    assert _finite(r.metrics["lpips"]) and r.metrics["lpips"] > 0
    assert _finite(r.metrics["fvd"]) and r.metrics["fvd"] > 0
    assert "lpips" not in r.unavailable and "fvd" not in r.unavailable
    assert any("untrained" in n for n in r.notes) and any("FVD from 2 clips" in n for n in r.notes)
    assert all("lpips" in c for c in r.per_clip)
    write_report(results, tmp_path)
    md = (tmp_path / "results.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| m |"))
    assert "n/a" not in row


def test_too_short_and_broken_videos_are_skipped_and_replaced(data_dir, tmp_path):
    d = tmp_path / "mixed"
    write_video(d / "short.mp4", _moving_texture(9, 32, 48, 1, seed=3), 25)
    (d / "broken.mp4").write_bytes(b"not a video at all")
    write_video(d / "good.mp4", _moving_texture(17, 32, 48, 1, seed=4), 25)
    spec = DatasetSpec(d, num_videos=1, seed=0)
    items = list(spec.iter_clips())
    clips = [i for i in items if not isinstance(i, tuple)]
    skipped = [i for i in items if isinstance(i, tuple)]
    assert len(clips) == 1 and clips[0].path.endswith("good.mp4")
    reasons = {Path(p).name: why for p, why in skipped}
    assert set(reasons) <= {"short.mp4", "broken.mp4"}
    if "short.mp4" in reasons:
        assert "too short" in reasons["short.mp4"]
    results = evaluate({"id": IdentityVAE()}, DatasetSpec(d), EvalSettings(progress=False, lpips=False, fvd=False))
    assert results.dataset["num_clips"] == 1
    assert {Path(s["path"]).name for s in results.dataset["skipped"]} == {"short.mp4", "broken.mp4"}
    assert results["id"].unavailable["fvd"].startswith("disabled")


# --------------------------------------------------------------------------------------------
# protocols and clip selection
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "protocol, native, expected",
    [
        ("resized-480", (1920, 1080), (848, 480)),
        ("resized-720", (1920, 1080), (1280, 720)),
        ("resized-1080", (3840, 2160), (1920, 1080)),
        ("resized-480", (640, 480), (848, 480)),  # 4:3: enlarged until the crop fits
        ("resized-720", (720, 1280), (1280, 720)),  # portrait
        ("original", (176, 144), (176, 144)),
        ("original", (1001, 333), (1001, 333)),
    ],
)
def test_protocol_output_sizes(protocol, native, expected):
    spec = DatasetSpec("unused", protocol=protocol)
    assert spec.output_size(*native) == expected
    crop = spec.crop_size
    if crop is not None:
        w, h = fit_size(*native, spec.short_side, crop)
        assert w >= crop[0] and h >= crop[1]
        assert min(w, h) >= spec.short_side


def test_protocol_table_matches_the_paper_and_the_cli():
    assert {k: (p.short_side, p.crop) for k, p in PROTOCOLS.items() if k.startswith("resized")} == {
        "resized-480": (480, (848, 480)),
        "resized-720": (720, (1280, 720)),
        "resized-1080": (1080, (1920, 1080)),
    }
    assert commands.PROTOCOL_NAMES == tuple(PROTOCOLS)
    with pytest.raises(ValueError, match="custom"):
        DatasetSpec("x", protocol="resized-480", size=256)
    with pytest.raises(ValueError, match="unknown protocol"):
        DatasetSpec("x", protocol="480p")


def test_clips_are_read_at_the_documented_size(data_dir):
    path = str(data_dir / "a.mp4")
    clip = DatasetSpec(data_dir, protocol="resized-480").load_clip(path)
    assert tuple(clip.video.shape) == (3, 17, 480, 848) and clip.size == (848, 480) and clip.native_size == (48, 32)
    clip = DatasetSpec(data_dir, protocol="custom", size=24, crop=(20, 16), frames=9).load_clip(path)
    assert tuple(clip.video.shape) == (3, 9, 16, 20)
    clip = DatasetSpec(data_dir).load_clip(path)
    assert tuple(clip.video.shape) == (3, 17, 32, 48)
    assert float(clip.video.min()) >= -1 and float(clip.video.max()) <= 1


def test_seeded_video_choice_and_clip_start(tmp_path):
    d = tmp_path / "many"
    for i in range(5):
        write_video(d / f"v{i}.mp4", _moving_texture(21, 16, 16, 1, seed=i), 25)
    paths = DatasetSpec(d).list_videos()

    def pick(n, seed):
        return [c.path for c in DatasetSpec(d, num_videos=n, seed=seed, frames=5).iter_clips(paths)]

    assert pick(3, 0) == pick(3, 0)
    assert pick(3, 0) == pick(4, 0)[:3]  # nested sets
    assert len(set(pick(5, 0))) == 5 and sorted(pick(5, 0)) == paths
    assert len({tuple(pick(2, s)) for s in range(6)}) > 1
    starts = [DatasetSpec(d, frames=5, clip_start="random", seed=7).load_clip(p, i).start for i, p in enumerate(paths)]
    again = [DatasetSpec(d, frames=5, clip_start="random", seed=7).load_clip(p, i).start for i, p in enumerate(paths)]
    assert starts == again and all(0 <= s <= 21 - 5 for s in starts) and len(set(starts)) > 1
    assert all(DatasetSpec(d, frames=5).load_clip(p).start == 0 for p in paths)


def test_manifest_source(data_dir, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,motion_score\n{data_dir / 'a.mp4'},1.5\n")
    spec = DatasetSpec(manifest, frames=5)
    assert spec.list_videos() == [str(data_dir / "a.mp4")]


def test_held_out_tail_consecutive_clips_and_native_small_frames(tmp_path):
    d = tmp_path / "tail"
    write_video(d / "v.mp4", _moving_texture(50, 24, 40, 1, seed=3), 25)
    path = str(d / "v.mp4")
    spec = DatasetSpec(d, frames=5, start_fraction=0.8, clips_per_video=3)
    clips = list(spec.iter_clips())
    # frames 40..49 are the tail: two whole 5-frame clips fit, a third does not
    assert [c.start for c in clips] == [40, 45] and spec.clip_count(50) == 2
    whole = torch.from_numpy(_read_all(path)).float() / 127.5 - 1  # (T, H, W, 3)
    assert torch.allclose(clips[1].video, whole[45:50].permute(3, 0, 1, 2), atol=1e-6)
    starts = {DatasetSpec(d, frames=5, start_fraction=0.5, clip_start="random", seed=s).load_clip(path).start for s in range(8)}
    assert min(starts) >= 25 and max(starts) <= 45 and len(starts) > 1
    with pytest.raises(VideoReadError, match="too short"):
        DatasetSpec(d, frames=17, start_fraction=0.8).load_clip(path)
    # a crop larger than the frame: enlarged (default) or kept at the native size
    assert DatasetSpec(d, protocol="custom", crop=64, frames=5).load_clip(path).size == (64, 64)
    native = DatasetSpec(d, protocol="custom", crop=32, frames=5, small_frames="native").load_clip(path)
    assert native.size == (32, 24) and tuple(native.video.shape) == (3, 5, 24, 32)
    with pytest.raises(ValueError, match="start_fraction"):
        DatasetSpec(d, start_fraction=1.0)
    with pytest.raises(ValueError, match="small_frames"):
        DatasetSpec(d, small_frames="pad")


def _read_all(path: str) -> np.ndarray:
    from ivvae.io import read_video

    return read_video(path).frames.numpy()


def _overcounting_header(monkeypatch, extra: int) -> None:
    """Make every probe report ``extra`` more frames than the file holds (a container header that overcounts)."""
    import dataclasses

    from ivvae.eval import runner

    probe = runner.probe_video
    monkeypatch.setattr(runner, "probe_video", lambda p: dataclasses.replace(probe(p), num_frames=probe(p).num_frames + extra))


def test_held_out_boundary_comes_from_the_header_count(tmp_path, monkeypatch):
    path = tmp_path / "v.mp4"
    write_video(path, _moving_texture(40, 16, 16, 1, seed=5), 25)
    _overcounting_header(monkeypatch, 20)  # header 60: training with [0, F] may use frames below int(60 * F)
    # header boundary 48 is past the true end (40): the retry must not move it down to int(40 * 0.8) = 32
    with pytest.raises(VideoReadError, match="too short: 40 frames, clip 1 needs 5 frames from frame 48"):
        DatasetSpec(tmp_path, frames=5, start_fraction=0.8).load_clip(str(path))
    starts = {DatasetSpec(tmp_path, frames=5, start_fraction=0.5, clip_start="random", seed=s).load_clip(str(path)).start
              for s in range(8)}
    assert min(starts) >= 30 and max(starts) <= 35


def test_overcounting_header_keeps_the_clips_that_fit(tmp_path, monkeypatch):
    write_video(tmp_path / "v.mp4", _moving_texture(30, 16, 16, 1, seed=6), 25)
    _overcounting_header(monkeypatch, 10)  # header 40: 8 clips of 5 frames asked, 6 fit
    items = list(DatasetSpec(tmp_path, frames=5, clips_per_video=8).iter_clips())
    assert [getattr(c, "start", c) for c in items] == [0, 5, 10, 15, 20, 25]


class OvershootVAE(IdentityVAE):
    """Reconstructs 1.3 x the input: values beyond [-1, 1], as decoders give near saturated pixels."""

    def decode(self, z, chunk_groups=None, num_frames=None, height=None, width=None):
        return SimpleNamespace(sample=1.3 * super().decode(z, chunk_groups, num_frames, height, width).sample)


def test_lpips_scores_the_clamped_reconstruction(data_dir):
    torch.manual_seed(0)
    lpips = LPIPS(pretrained=False)
    spec = DatasetSpec(data_dir, frames=5)
    r = evaluate({"over": OvershootVAE()}, spec, EvalSettings(progress=False, lpips=lpips, fvd=False))["over"]
    for record in r.per_clip:
        x = spec.load_clip(record["path"]).video.unsqueeze(0)
        clamped = float(lpips.video(x, (1.3 * x).clamp(-1, 1))[0])
        assert clamped != pytest.approx(float(lpips.video(x, 1.3 * x)[0]), rel=1e-3)  # the check tells them apart
        assert record["lpips"] == pytest.approx(clamped, rel=1e-5, abs=1e-9)


def test_clips_smaller_than_lpips_needs_are_skipped(data_dir, tmp_path):
    from ivvae.eval.lpips import MIN_SIZE

    d = tmp_path / "sizes"
    write_video(d / "big.mp4", _moving_texture(5, 32, 48, 1, seed=7), 25)
    write_video(d / "small.mp4", _moving_texture(5, 24, 24, 1, seed=8), 25)
    settings = EvalSettings(progress=False, lpips=LPIPS(pretrained=False), fvd=False)
    results = evaluate({"id": IdentityVAE()}, DatasetSpec(d, frames=5), settings)
    assert results.dataset["num_clips"] == 1 and _finite(results["id"].metrics["lpips"])
    [skipped] = results.dataset["skipped"]
    assert skipped["path"].endswith("small.mp4") and f"{MIN_SIZE['alex']}x{MIN_SIZE['alex']}" in skipped["reason"]
    # without LPIPS the small clip is evaluated as before
    results = evaluate({"id": IdentityVAE()}, DatasetSpec(d, frames=5), EvalSettings(progress=False, lpips=False, fvd=False))
    assert results.dataset["num_clips"] == 2 and results.dataset["skipped"] == []


def test_psnr_plot_group_lines_follow_the_first_video_model(tmp_path, monkeypatch):
    import matplotlib.axes

    from ivvae.eval.report import plot_psnr_per_frame
    from ivvae.eval.runner import ModelResult

    def model(name: str, temporal_compression: int) -> ModelResult:
        return ModelResult(name, {"temporal_compression": temporal_compression}, {"psnr": 30.0}, 1, psnr_per_frame=[30.0] * 17)

    lines: list[float] = []
    draw = matplotlib.axes.Axes.axvline
    monkeypatch.setattr(matplotlib.axes.Axes, "axvline", lambda ax, x=0, *a, **k: (lines.append(x), draw(ax, x, *a, **k))[1])
    results = EvalResults({"bicubic-x4": model("bicubic-x4", 1), "vae": model("vae", 4)}, {"num_clips": 1, "frames": 17}, {})
    plot_psnr_per_frame(results, tmp_path / "psnr.png")
    assert lines == [0.5, 4.5, 8.5, 12.5]

def test_bicubic_reference_is_the_documented_resampling(data_dir):
    from ivvae.eval.reference import BicubicReference, reference_model

    assert reference_model("bicubic-x4").factor == 4 and reference_model("models/z16") is None
    torch.manual_seed(0)
    x = torch.rand(1, 3, 5, 32, 48) * 2 - 1
    ref = BicubicReference(4)
    low = ref.encode(x).latent_dist.mode()
    assert tuple(low.shape) == (1, 3, 5, 8, 12)
    frames = x[0].transpose(0, 1)
    expected_low = torch.nn.functional.interpolate(frames, size=(8, 12), mode="bicubic", antialias=True)
    assert torch.allclose(low[0].transpose(0, 1), expected_low, atol=1e-6)
    y = ref.decode(low, num_frames=5, height=32, width=48).sample
    assert y.shape == x.shape and float(y.abs().max()) <= 1
    # by name in evaluate(): smooth content is reconstructed well but not perfectly
    results = evaluate({"bicubic": "bicubic-x4"}, DatasetSpec(data_dir), EvalSettings(progress=False, lpips=False, fvd=False))
    r = results["bicubic"]
    assert r.info["params"] is None and r.info["spatial_compression"] == 4 and r.info["temporal_compression"] == 1
    assert 10 < r.metrics["psnr"] < 60 and r.ssim_by_position is not None and len(r.ssim_by_position) == 4


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------
def _random_lpips_files(tmp_path: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    net = LPIPS(pretrained=False)
    backbone = tmp_path / "alexnet_random.pth"
    heads = tmp_path / "alex_heads_random.pth"
    torch.save({f"features.{k}": v for k, v in net.net.features.state_dict().items()}, backbone)
    torch.save({f"lin{i}.model.1.weight": lin.model[1].weight.detach().clone() for i, lin in enumerate(net.lins)}, heads)
    return backbone, heads


def test_register_adds_the_three_commands():
    parser = argparse.ArgumentParser(prog="ivvae")
    subs = commands.register(parser.add_subparsers(dest="command"))
    assert set(subs) == {"eval", "motion-score", "build-motionhd"}
    args = parser.parse_args(["eval", "--model", "m", "--data", "d", "--protocol", "resized-720", "--chunk-groups", "0"])
    assert args.func is commands.run_eval and args._run is commands.run_eval
    assert args.protocol == "resized-720" and args.chunk_groups == 0 and args.frames == 17
    assert parser.parse_args(["build-motionhd", "--scores", "s.csv", "--n", "3", "--out", "o.csv"]).func is commands.run_build_motionhd
    help_text = subs["eval"].format_help()
    assert "examples:" in help_text and "resized-1080" in help_text and "--lpips-backbone" in help_text


def test_eval_command_is_quiet_about_metrics_it_was_told_to_skip(data_dir, model_dirs, tmp_path, capsys):
    argv = ["eval", "--model", f"z8={model_dirs['tiny_z8']}", "--data", str(data_dir), "--num-videos", "1", "--no-lpips",
            "--no-fvd", "--no-progress", "--threads", "1", "--out", str(tmp_path / "out")]
    assert commands.main(argv) == 0
    assert "unavailable" not in capsys.readouterr().err


def test_eval_command(data_dir, model_dirs, tmp_path, capsys):
    backbone, heads = _random_lpips_files(tmp_path)
    out = tmp_path / "out"
    argv = ["eval", "--model", f"z8={model_dirs['tiny_z8']}", "--data", str(data_dir), "--num-videos", "2", "--seed", "1",
            "--lpips-backbone", str(backbone), "--lpips-heads", str(heads), "--no-progress", "--threads", "1", "--out", str(out)]
    assert commands.main(argv) == 0
    captured = capsys.readouterr()
    assert "| z8 |" in captured.out and "FVD unavailable: I3D weights not found" in captured.err
    data = json.loads((out / "results.json").read_text())
    assert _finite(data["models"]["z8"]["metrics"]["lpips"])
    assert data["models"]["z8"]["metrics"]["fvd"] is None
    assert data["dataset"]["num_videos"] == 2 and data["dataset"]["seed"] == 1
    for name in REPORT_FILES:
        assert (out / name).is_file()
    # refused without --overwrite, before any work
    assert commands.main(argv) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--protocol", "custom"], "--protocol custom needs --size"),
        (["--size", "256"], "need --protocol custom"),
        (["--lpips-backbone", "/nonexistent/alex.pth"], "LPIPS backbone weights not found"),
        (["--i3d", "/nonexistent/i3d.pt"], "I3D weights not found"),
        (["--name", "a", "--name", "b"], "--name was given 2 time(s) for 1 --model"),
        # a mistyped second source is an error, not a video silently left out
        (["--data", "/nonexistent/videos"], "--data /nonexistent/videos: not found"),
    ],
)
def test_eval_command_errors(extra, message, data_dir, tmp_path, capsys):
    code = commands.main(["eval", "--model", "m", "--data", str(data_dir), "--out", str(tmp_path / "o"), *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("ivvae eval: error:") and message in err


def test_eval_checks_every_model_before_reading_any_video(data_dir, model_dirs, tmp_path, capsys, monkeypatch):
    """A missing or broken model folder is told before the first clip is read (and before the
    "evaluating ..." line), and without loading any weights; a reference name needs no folder."""
    from ivvae.eval import runner

    monkeypatch.setattr(runner, "evaluate", lambda *a, **k: pytest.fail("evaluation started"))
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((model_dirs["tiny_z8"] / "config.json").read_text())
    for model, message in [(tmp_path / "missing", "model folder"), (no_weights, "no weights file")]:
        argv = ["eval", "--model", "bicubic-x4", "--model", str(model), "--data", str(data_dir), "--no-lpips", "--no-fvd",
                "--out", str(tmp_path / "o")]
        assert commands.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("ivvae eval: error:") and message in err and str(model) in err and "evaluating" not in err
    runner.check_eval_model("bicubic-x4")
    runner.check_eval_model(model_dirs["tiny_z8"])


def test_model_names():
    assert commands._model_names(["models/z16/", "other/z16", "a=x/y"], None) == {"z16": "models/z16/", "z16-2": "other/z16", "a": "x/y"}
    assert commands._model_names(["p", "q"], ["one", "two"]) == {"one": "p", "two": "q"}
    with pytest.raises(ValueError, match="'a' is given twice"):
        commands._model_names(["a=x", "a=y"], None)


def test_motion_commands(tmp_path, capsys):
    d = tmp_path / "motion"
    for name, dx in [("still", 0), ("slow", 1), ("fast", 2)]:
        write_video(d / f"{name}.mp4", _moving_texture(7, 54, 96, dx, seed=len(name)), 25, crf=10)
    scores_csv = tmp_path / "scores.csv"
    code = commands.main(["motion-score", str(d / "still.mp4"), "--data", str(d), "--out", str(scores_csv), "--size", "192x108",
                          "--max-pairs", "1", "--no-progress", "--plot", str(tmp_path / "scores.png")])
    assert code == 0
    assert "scored 3 of 3 video(s)" in capsys.readouterr().out
    with scores_csv.open() as f:
        rows = {Path(r["path"]).name: float(r["motion_score"]) for r in csv.DictReader(f)}
    assert set(rows) == {"still.mp4", "slow.mp4", "fast.mp4"}
    assert rows["still.mp4"] < 0.5 < rows["slow.mp4"] < rows["fast.mp4"]
    assert (tmp_path / "scores.png").stat().st_size > 0

    manifest = tmp_path / "motionhd.csv"
    hi = max(rows.values()) + 1
    code = commands.main(["build-motionhd", "--scores", str(scores_csv), "--n", "2", "--low", "0", "--high", str(hi), "--bins", "2",
                          "--out", str(manifest), "--plot", str(tmp_path / "hd.png")])
    assert code == 0
    assert "chose 2 of 2 requested" in capsys.readouterr().out
    chosen = DatasetSpec(manifest).list_videos()  # the manifest is an eval data set
    assert len(chosen) == 2 and all(Path(p).is_absolute() and Path(p).is_file() for p in chosen)
    assert (tmp_path / "hd.png").stat().st_size > 0

    # range from a reference set; following its histogram
    ref = tmp_path / "ref.csv"
    ref.write_text("path,motion_score\nr1,0.0\nr2," + repr(hi) + "\n")
    code = commands.main(["build-motionhd", "--scores", str(scores_csv), "--reference", str(ref), "--shape", "reference", "--n", "3",
                          "--bins", "1", "--out", str(tmp_path / "m2.csv")])
    assert code == 0
    assert "chose 3 of 3" in capsys.readouterr().out
    # errors: no range, output exists
    assert commands.main(["build-motionhd", "--scores", str(scores_csv), "--n", "2", "--out", str(tmp_path / "m3.csv")]) == 2
    assert "--low and --high" in capsys.readouterr().err
    assert commands.main(["motion-score", str(d / "still.mp4"), "--out", str(scores_csv)]) == 2
    assert "exists" in capsys.readouterr().err


def _pool(path: Path, rows: str) -> Path:
    path.write_text("path,motion_score\n" + rows)
    return path


def test_motion_commands_never_write_over_their_inputs(tmp_path, capsys):
    video = tmp_path / "v.mp4"
    write_video(video, _moving_texture(7, 54, 96, 1, seed=0), 25)
    before = video.read_bytes()
    assert commands.main(["motion-score", str(video), "--out", str(video), "--overwrite", "--no-progress"]) == 2
    assert "is the input" in capsys.readouterr().err and video.read_bytes() == before
    listing = tmp_path / "list.txt"
    listing.write_text("v.mp4\n")
    assert commands.main(["motion-score", "--data", str(listing), "--out", str(listing), "--overwrite", "--no-progress"]) == 2
    assert "is the input" in capsys.readouterr().err and listing.read_text() == "v.mp4\n"
    pool = _pool(tmp_path / "pool.csv", "a,1.0\nb,2.0\n")
    for option in ("--scores", "--reference"):
        argv = ["build-motionhd", "--scores", str(pool), "--reference", str(pool), "--n", "1", "--out", str(pool), "--overwrite"]
        assert commands.main(argv) == 2, option
        assert "is the input" in capsys.readouterr().err and pool.read_text() == "path,motion_score\na,1.0\nb,2.0\n"


def test_bad_plot_extension_is_refused_before_any_work(tmp_path, capsys):
    video = tmp_path / "v.mp4"
    write_video(video, _moving_texture(7, 54, 96, 1, seed=0), 25)
    out = tmp_path / "scores.csv"
    assert commands.main(["motion-score", str(video), "--out", str(out), "--plot", str(tmp_path / "p.txt"), "--no-progress"]) == 2
    assert "--plot" in capsys.readouterr().err and not out.exists()
    pool = _pool(tmp_path / "pool.csv", "a,1.0\n")
    assert commands.main(["build-motionhd", "--scores", str(pool), "--n", "1", "--low", "0", "--high", "2", "--out", str(out),
                          "--plot", str(tmp_path / "x.txt")]) == 2
    assert "'.txt' is not an image format" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize(
    "rows, extra, message",
    [
        ("a,1.0\nb,2.0\n", ["--low", "100", "--high", "200"], "no video of --scores"),
        ("", ["--low", "0", "--high", "20"], "holds no usable scores"),
        ("a,nan\n", ["--low", "0", "--high", "20"], "holds no usable scores"),
        ("a,1.0\nb,-5\n", ["--low", "0", "--high", "20"], "line 3: motion score -5.0 of 'b' is negative"),
        ("a,1\na,2\n", ["--low", "0", "--high", "20"], "line 3: 'a' is listed again with another score"),
    ],
)
def test_build_motionhd_refuses_a_useless_selection(tmp_path, capsys, rows, extra, message):
    out = tmp_path / "o.csv"
    pool = _pool(tmp_path / "pool.csv", rows)
    assert commands.main(["build-motionhd", "--scores", str(pool), "--n", "5", *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("ivvae build-motionhd: error:") and message in err and not out.exists()


def test_build_motionhd_n_zero_and_warnings(tmp_path, capsys):
    pool = _pool(tmp_path / "pool.csv", "a,nan\nb,1.0\nb,1.0\nc,2.0\n")
    argv = ["build-motionhd", "--scores", str(pool), "--low", "0", "--high", "20"]
    assert commands.main([*argv, "--n", "0", "--out", str(tmp_path / "o0.csv")]) == 2
    assert "argument --n: must be >= 1" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw UserWarning may reach the user
        assert commands.main([*argv, "--n", "1000", "--out", str(tmp_path / "o.csv")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert f"ivvae build-motionhd: warning: '{pool}': left out 1 row(s) whose motion score is NaN or infinite" in err
    assert f"ivvae build-motionhd: warning: '{pool}': left out 1 repeated row(s) (same video, same score)" in err
    assert "ivvae build-motionhd: warning: only 2 videos have a motion score in [0.0, 20.0]; asked for 1000, choosing all of them" in err
    assert (tmp_path / "o.csv").read_text().splitlines()[1:] == ["b,1.0", "c,2.0"]


def test_eval_refuses_given_weight_files_that_do_not_load(data_dir, tmp_path, capsys):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    wrong = tmp_path / "wrong.pth"
    torch.save({"a": torch.zeros(3)}, wrong)
    base = ["eval", "--model", "bicubic-x4", "--data", str(data_dir), "--no-progress", "--out", str(tmp_path / "o")]
    cases = [(["--lpips-backbone", str(wrong), "--no-fvd"], "--lpips-backbone", "missing keys ['features.0.bias'"),
             (["--lpips-heads", str(empty), "--no-fvd"], "--lpips-heads", "empty.pth' is empty (0 bytes)"),
             (["--i3d", str(empty), "--no-lpips"], "--i3d", "empty.pth' is empty (0 bytes)"),
             (["--i3d", str(wrong), "--no-lpips"], "--i3d", "1 unexpected keys ['a']")]
    for extra, option, detail in cases:
        assert commands.main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"ivvae eval: error: {option} ") and "cannot be used" in err and detail in err, err
        assert not (tmp_path / "o" / "results.json").exists()


def test_evaluate_checks_given_weights_before_loading_models(data_dir, tmp_path, monkeypatch):
    wrong = tmp_path / "wrong.pt"
    torch.save({"a": torch.zeros(3)}, wrong)
    # the model does not exist: the weight file is reported first, before any model is loaded or run
    with pytest.raises(ValueError, match=r"--i3d .*wrong.pt \(i3d_path= in Python\) cannot be used as the I3D weights"):
        evaluate({"m": str(tmp_path / "no_model")}, DatasetSpec(data_dir), EvalSettings(lpips=False, i3d_path=wrong, progress=False))
    with pytest.raises(ValueError, match=r"--lpips-heads .*wrong.pt \(lpips_heads= in Python\)"):
        evaluate({"m": str(tmp_path / "no_model")}, DatasetSpec(data_dir), EvalSettings(fvd=False, lpips_heads=wrong, progress=False))
    # a bad file the user did not name (found in a default location) only makes the metric unavailable
    (tmp_path / "i3d_pretrained_400.pt").write_bytes(b"")
    monkeypatch.setenv("IVVAE_WEIGHTS_DIR", str(tmp_path))
    results = evaluate({"id": IdentityVAE()}, DatasetSpec(data_dir), EvalSettings(lpips=False, progress=False))
    assert "is empty (0 bytes)" in results["id"].unavailable["fvd"]


def test_eval_names_the_line_of_a_broken_jsonl_manifest(data_dir, tmp_path, capsys):
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(json.dumps({"path": str(data_dir / "a.mp4")}) + "\n{oops\n")
    argv = ["eval", "--model", "bicubic-x4", "--data", str(manifest), "--no-fvd", "--no-lpips", "--out", str(tmp_path / "o")]
    assert commands.main(argv) == 2
    assert f"ivvae eval: error: manifest '{manifest}' line 2: not valid JSON" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# long-video benchmark (paper Table 7): the library functions, no timing
# --------------------------------------------------------------------------------------------
def _bench():
    return load_benchmark("bench_long_video")


def test_long_video_cache_is_exact_and_overlap_is_not(tiny_model):
    bench = _bench()
    x = torch.rand(1, 3, 13, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ref = bench.one_pass(tiny_model, x)
    cached = bench.cache(tiny_model, x, chunk_groups=1)
    overlapped = bench.overlap(tiny_model, x, clip_frames=5, history=1)
    assert ref.shape == cached.shape == overlapped.shape == x.shape
    assert (cached - ref).abs().max() <= 1e-5
    assert (overlapped - ref).abs().max() > 1e-3
    # causality: the first clip of the overlap path is the start of the one-pass video
    assert (overlapped[:, :, :5] - ref[:, :, :5]).abs().max() <= 1e-5
    diffs = bench.compare({"one_pass": ref, "cache": cached, "overlap": overlapped})
    assert diffs["one_pass"]["max_abs_diff"] == 0 and diffs["cache"]["max_abs_diff"] <= 1e-5


def test_long_video_clip_layout():
    bench = _bench()
    clips = bench.overlap_clips(49, 5, 1)
    assert len(clips) == 12 and clips[0] == (0, 5) and clips[1] == (4, 9) and clips[-1] == (44, 49)
    assert bench.describe_clips("one_pass", 49) == "49 frames x 1"
    assert bench.describe_clips("overlap", 49) == "5 frames x 12"
    assert bench.describe_clips("cache", 49) == "1 frame + 4 frames x 12"
    assert bench.overlap_clips(7, 5, 1) == [(0, 5), (4, 7)]
    with pytest.raises(ValueError):
        bench.overlap_clips(10, 5, 5)


def test_wired_into_the_ivvae_cli(data_dir, tmp_path, capsys):
    from ivvae.cli import main

    assert main(["eval", "--model", "m", "--data", str(data_dir), "--protocol", "custom", "--out", str(tmp_path)]) == 2
    assert "ivvae eval: error: --protocol custom needs --size" in capsys.readouterr().err
    assert main(["build-motionhd", "--scores", str(tmp_path / "missing.csv"), "--n", "2", "--low", "0", "--high", "1",
                 "--out", str(tmp_path / "o.csv")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_tiles_that_are_not_whole_latent_pixels_are_refused_before_any_clip(data_dir, model_dirs, monkeypatch):
    from ivvae.eval import runner

    monkeypatch.setattr(runner, "_evaluate_clip", lambda *a, **k: pytest.fail("a clip ran"))
    with pytest.raises(ValueError, match=r"model m: .*multiples of the model's spatial compression \(8 px\).*size 16 or 24"):
        evaluate({"m": str(model_dirs["tiny_z8"])}, DatasetSpec(data_dir),
                 EvalSettings(progress=False, lpips=False, fvd=False, tile=(20, 4)))


# --------------------------------------------------------------------------------------------
# held-out curve of a training run (benchmarks/heldout_curve.py): its bookkeeping, no evaluation
# --------------------------------------------------------------------------------------------
def test_heldout_curve_places_a_continuing_run_after_its_start(tmp_path, monkeypatch):
    curve = load_benchmark("heldout_curve")
    run, start = tmp_path / "run", tmp_path / "start"
    for folder in (run / "exports" / "step_00000300", run / "export", start):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    (run / "summary.json").write_text(json.dumps({"steps": 450}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 10, "l1": 0.05}) + "\n")
    psnr = {"bicubic-x4": 27.0, str(start): 27.3, str(run / "exports" / "step_00000300"): 27.4, str(run / "export"): 27.5}

    def fake_evaluate(model, threads):
        return {"psnr": psnr[str(model)], "ssim": 0.8, "ssim_by_position": [0.8] * 4, "ssim_position_spread": 0.0,
                "per_clip": [], "seconds_per_clip": 1.0}

    monkeypatch.setattr(curve, "evaluate_folder", fake_evaluate)
    out = tmp_path / "out"
    argv = ["--run", str(run), "--start", str(start), "--step-offset", "582", "--label", "cont", "--loss-plot", "loss_b.png",
            "--out", str(out)]
    assert curve.main(argv) == 0
    entries = json.loads((out / "heldout_curve.json").read_text())["runs"]
    assert sorted((e["step"], e["psnr"]) for e in entries.values()) == [(582, 27.3), (882, 27.4), (1032, 27.5)]
    assert all(e["run"] == "cont" and not e["floor"]["psnr_at_least_bicubic_plus_1_db"] for e in entries.values())
    assert (out / "loss_b.png").is_file() and not (out / "loss_curve.png").exists() and (out / "heldout_curve.png").is_file()
    # a second run from the same start folder gets its own start point (its line begins there too); cached work is kept
    evaluated = []
    monkeypatch.setattr(curve, "evaluate_folder", lambda model, threads: evaluated.append(str(model)) or fake_evaluate(model, threads))
    (run / "exports" / "step_00000300" / "config.json").unlink()
    assert curve.main(["--run", str(run), "--start", str(start), "--step-offset", "582", "--label", "other", "--out", str(out)]) == 0
    entries = json.loads((out / "heldout_curve.json").read_text())["runs"]
    assert evaluated == [str(start)]
    assert sorted(e["run"] for e in entries.values() if e["step"] == 582) == ["cont", "other"]


# --------------------------------------------------------------------------------------------
# error by spatial scale (benchmarks/error_by_scale.py)
# --------------------------------------------------------------------------------------------
def _error_by_scale_module():
    return load_benchmark("error_by_scale")


def test_error_bands_put_each_scale_in_its_band_and_add_up_to_the_mse():
    scales = _error_by_scale_module()
    flat = torch.full((3, 2, 8, 8), 0.1)  # a colour cast: only the coarsest band
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]).remainder(2).float().mul(0.2).sub(0.1).expand(3, 2, 8, 8)
    blocks = checker.repeat_interleave(2, -1).repeat_interleave(2, -2)[..., :8, :8]  # 2-px squares: the 2-4 px band
    for error, band in [(flat, 3), (checker, 0), (blocks, 1)]:
        bands = scales.error_bands(error, levels=3)
        assert math.isclose(sum(bands), error.double().pow(2).mean().item(), rel_tol=1e-9)
        assert math.isclose(bands[band], sum(bands), rel_tol=1e-9) and all(abs(b) < 1e-12 for i, b in enumerate(bands) if i != band)
    noise = torch.randn(3, 5, 16, 16, generator=torch.Generator().manual_seed(0))
    bands = scales.error_bands(noise, levels=4)
    assert math.isclose(sum(bands), noise.double().pow(2).mean().item(), rel_tol=1e-9) and min(bands) >= 0
    with pytest.raises(ValueError, match="multiples of 16"):
        scales.error_bands(torch.zeros(3, 1, 20, 16), levels=4)
    assert scales.center_crop_to_multiple(torch.zeros(3, 1, 144, 176), 32).shape[-2:] == (128, 160)


def test_db_if_matched_counts_only_the_excess_over_the_reference_from_a_band_down():
    scales = _error_by_scale_module()
    gains = scales.db_if_matched([0.4, 0.3, 0.3], [0.5, 0.1, 0.0])  # band 0 below the reference: no gain there
    assert gains[2] == pytest.approx(10 * math.log10(1.0 / 0.7))
    assert gains[1] == pytest.approx(10 * math.log10(1.0 / 0.5)) and gains[0] == pytest.approx(gains[1])


def test_error_by_scale_writes_bands_of_a_model_and_the_bicubic_reference(tmp_path, monkeypatch, data_dir, model_dirs):
    scales = _error_by_scale_module()
    monkeypatch.setattr(scales, "held_out_set", lambda: DatasetSpec(data_dir, frames=5))
    out = tmp_path / "scales"
    assert scales.main(["--model", f"tiny={model_dirs['tiny_z8']}", "--levels", "2", "--out", str(out)]) == 0
    data = json.loads((out / "error_by_scale.json").read_text())
    assert set(data["models"]) == {"tiny", "bicubic-x4"} and data["bands"] == ["1-2 px", "2-4 px", ">= 4 px"]
    for result in data["models"].values():
        assert len(result["per_clip"]) == 2 and all(len(c["colour_cast"]) == 3 for c in result["per_clip"])
        for entry in [result["mean"], *result["per_clip"]]:
            assert math.isclose(sum(entry["bands"]), entry["mse"], rel_tol=1e-9) and math.isclose(sum(entry["share"]), 1.0)
    # an untrained model misses the colour of whole blocks that bicubic keeps: matching it there is worth something
    assert data["models"]["tiny"]["mean"]["db_if_matched"][-1] > 0
    assert "| tiny | mean |" in (out / "error_by_scale.md").read_text()


def test_error_by_scale_names_a_missing_model_or_too_many_levels(tmp_path, monkeypatch, capsys, data_dir, model_dirs):
    scales = _error_by_scale_module()
    monkeypatch.setattr(scales, "held_out_set", lambda: DatasetSpec(data_dir, frames=5))
    assert scales.main(["--model", f"x={tmp_path / 'nope'}", "--out", str(tmp_path / "a")]) == 2
    assert "model folder" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert scales.main(["--model", f"tiny={model_dirs['tiny_z8']}", "--levels", "6", "--out", str(tmp_path / "b")]) == 2
    assert "no whole 64x64 block" in capsys.readouterr().err and not (tmp_path / "b").exists()


# --------------------------------------------------------------------------------------------
# the encoder's latents against the best the decoder can render (benchmarks/latent_gap.py)
# --------------------------------------------------------------------------------------------
def test_latent_gap_optimises_the_latent_alone_and_beats_the_encoder(data_dir, model_dirs):
    gap = load_benchmark("latent_gap")
    model = IVVAE.from_pretrained(model_dirs["tiny_z8"]).eval().requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clip = next(iter(DatasetSpec(data_dir, frames=5).iter_clips()))
    real = gap.center_crop(clip.video, 24)[None]
    assert real.shape[-2:] == (24, 24)
    result = gap.optimise_latent(model, real, steps=6, lr=0.05, report_every=3, precision="fp32")
    assert [row[0] for row in result["curve"]] == [3, 6]
    assert result["curve"][-1][1] > result["start"] + 0.1 and result["curve"][-1][2] > 0  # better, and the latent moved
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no weight changed
    assert len(result["coarse_error"]) == 2 and min(result["coarse_error"]) >= 0
    # the coarse error of a colour cast is all of its MSE; of fine 1-px stripes, none of it
    inside = real * 0.5  # nothing clamped once shifted by 0.1
    assert gap.coarse_error(inside + 0.1, inside) == pytest.approx(0.01, rel=1e-4)
    stripes = (torch.arange(24) % 2).float().mul(0.2).sub(0.1).expand_as(real)
    assert gap.coarse_error(inside + stripes, inside) == pytest.approx(0.0, abs=1e-9)


def test_latent_gap_writes_its_report_and_refuses_a_missing_model_or_a_reference(tmp_path, monkeypatch, capsys, data_dir, model_dirs):
    gap = load_benchmark("latent_gap")
    monkeypatch.setattr(gap, "held_out_set", lambda: DatasetSpec(data_dir, frames=5))
    out = tmp_path / "gap"
    assert gap.main(["--model", str(model_dirs["tiny_z8"]), "--crop", "24", "--steps", "4", "--report-every", "2",
                     "--precision", "fp32", "--out", str(out)]) == 0
    data = json.loads((out / "latent_gap.json").read_text())
    assert len(data["per_clip"]) == 2 and [row[0] for row in data["mean"]["optimised"]] == [2, 4]
    assert data["mean"]["optimised"][-1][1] > data["mean"]["encoder"]
    assert all(math.isfinite(c["bicubic-x4"]) and c["size"] == [5, 24, 24] for c in data["per_clip"])
    assert set(data["mean"]["coarse_error"]) == {"bicubic-x4", "encoder", "optimised"}
    assert "| **mean**" in (out / "latent_gap.md").read_text()
    assert gap.main(["--model", str(tmp_path / "nope"), "--out", str(tmp_path / "a")]) == 2
    assert "model folder" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert gap.main(["--model", "bicubic-x4", "--out", str(tmp_path / "b")]) == 2
    assert "no decoder weights" in capsys.readouterr().err and not (tmp_path / "b").exists()
