"""The ``ivvae`` command line, run in-process through ``ivvae.cli.main`` on a tiny random model."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from cli_helpers import error_line, run, write_sine_video

from ivvae import cli, hub, pipeline
from ivvae.convert import to_official_state_dict
from ivvae.io import probe_video, read_video, write_video
from ivvae.models import IVVAE


def tiny_model(latent_channels: int = 8) -> IVVAE:
    torch.manual_seed(0)
    return IVVAE(latent_channels=latent_channels, base_channels=8, encoder_blocks=1, decoder_blocks=1).eval()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny"
    tiny_model().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 9-frame 24x40 MP4 at 25 fps."""
    return write_sine_video(tmp_path_factory.mktemp("video") / "clip.mp4", 9, 24, 40)


# --------------------------------------------------------------------------------------------
# help
# --------------------------------------------------------------------------------------------
def test_console_script_help_subprocess():
    exe = shutil.which("ivvae")
    cmd = [exe, "--help"] if exe else [sys.executable, "-m", "ivvae.cli", "--help"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    for name in ("reconstruct", "encode", "decode", "convert", "info", "demo", "examples"):
        assert name in result.stdout


OWN_COMMANDS = ["reconstruct", "encode", "decode", "convert", "info", "demo", "inflate", "grow"]
LAZY_COMMANDS = [name for name, command in cli.COMMANDS.items() if command.load is not None]


@pytest.mark.parametrize("command", OWN_COMMANDS)
def test_every_command_has_help_with_examples(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert "examples:" in out and f"ivvae {command}" in out


def test_top_level_help_lists_every_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in cli.COMMANDS:
        assert name in out


@pytest.mark.parametrize("command", LAZY_COMMANDS)
def test_lazily_loaded_commands_have_help(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and f"ivvae {command}" in out


def test_register_adds_a_command(capsys, monkeypatch):
    monkeypatch.setattr(cli.registry, "COMMANDS", dict(cli.registry.COMMANDS))
    seen = {}

    def add(parser):
        parser.add_argument("--value", type=int, default=1)

    def run_hello(args):
        seen["value"] = args.value
        return 0

    cli.register("hello", "say hello", add, run_hello, epilog="examples:\n  ivvae hello --value 3")
    assert run(capsys, "hello", "--value", "3")[0] == 0 and seen == {"value": 3}


def test_no_command_prints_usage(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "COMMAND" in err


def test_bad_argument_exits_2(capsys):
    code, _, err = run(capsys, "reconstruct", "a.mp4", "b.mp4", "--dtype", "fp8")
    assert code == 2 and "invalid choice" in err
    for argv in (["reconstruct", "a.mp4", "b.mp4", "--frames", "0"], ["decode", "z.safetensors", "o.mp4", "--fps", "0"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and "--help" in error_line(err), err  # one line, no usage block


def test_preset_name_as_model_says_it_has_no_weights(capsys, clip, tmp_path):
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / "out.mp4", "--model", "ivvae_z16_dim64")
    line = error_line(err)
    assert code == 2 and "is a preset" in line and "ivvae convert" in line


# --------------------------------------------------------------------------------------------
# reconstruct / encode / decode
# --------------------------------------------------------------------------------------------
def test_reconstruct_writes_video_and_prints_metrics(capsys, model_dir, clip, tmp_path):
    out = tmp_path / "recon.mp4"
    code, stdout, err = run(capsys, "reconstruct", clip, out, "--model", model_dir, "--side-by-side", "--no-progress")
    assert code == 0, err
    info = probe_video(out)
    assert (info.num_frames, info.height, info.width, info.fps) == (9, 24, 40, 25.0)
    side = probe_video(tmp_path / "recon_side_by_side.mp4")
    assert (side.num_frames, side.height, side.width) == (9, 24, 80)
    assert "PSNR" in stdout and "dB" in stdout and "SSIM" in stdout


def test_encode_decode_round_trip_equals_reconstruct(capsys, model_dir, clip, tmp_path):
    common = ["--chunk-groups", "1", "--frames", "5", "--no-progress"]
    assert run(capsys, "reconstruct", clip, tmp_path / "recon.mp4", "--model", model_dir, *common)[0] == 0
    assert run(capsys, "encode", clip, tmp_path / "z.safetensors", "--model", model_dir, *common)[0] == 0
    # decode takes the model, chunking and dtype from the latents file
    code, _, err = run(capsys, "decode", tmp_path / "z.safetensors", tmp_path / "decoded.mp4", "--no-progress")
    assert code == 0, err
    decoded, recon = read_video(tmp_path / "decoded.mp4"), read_video(tmp_path / "recon.mp4")
    assert decoded.frames.shape == (5, 24, 40, 3) and decoded.fps == 25.0
    assert torch.equal(decoded.frames, recon.frames)
    latents = pipeline.load_latents(tmp_path / "z.safetensors")
    assert latents.latents.shape == (1, 8, 2, 3, 5) and latents.metadata["chunk_groups"] == 1


def test_long_videos_are_read_coded_and_written_a_chunk_at_a_time(capsys, model_dir, tmp_path, monkeypatch):
    """With --chunk-groups the frames stream from the input file to the output file: a video whose
    whole frames would not fit the memory budget is reconstructed (one pass is refused), and the
    result is the whole-video reconstruction's; encode + decode stream the same way."""
    long = write_sine_video(tmp_path / "long.mp4", 41, 24, 40)
    model = hub.load_model(model_dir)
    whole = pipeline.estimate_peak_memory_bytes(model, 41, 24, 40, chunk_groups=1)
    streamed = pipeline.estimate_peak_memory_bytes(model, 41, 24, 40, chunk_groups=1, streamed_io=True)
    budget = (whole + streamed) / 2 / pipeline.MEMORY_FRACTION
    monkeypatch.setattr(pipeline, "available_memory_bytes", lambda device="cpu": int(budget))
    code, _, err = run(capsys, "reconstruct", long, tmp_path / "one_pass.mp4", "--model", model_dir, "--chunk-groups", "0")
    assert code == 2 and "--chunk-groups 1" in error_line(err)
    out = tmp_path / "out.mp4"
    code, stdout, err = run(capsys, "reconstruct", long, out, "--model", model_dir, "--chunk-groups", "1", "--crf", "0", "--no-progress")
    assert code == 0, err
    expected = pipeline.reconstruct(model, read_video(long).frames, chunk_groups=1, progress=False)
    write_video(tmp_path / "expected.mp4", expected, 25, crf=0)  # lossless H.264: equal frames decode equal
    assert torch.equal(read_video(out).frames, read_video(tmp_path / "expected.mp4").frames) and "PSNR" in stdout
    args = ["--model", model_dir, "--chunk-groups", "1", "--no-progress"]
    assert run(capsys, "encode", long, tmp_path / "z.safetensors", *args)[0] == 0
    assert run(capsys, "decode", tmp_path / "z.safetensors", tmp_path / "decoded.mp4", "--crf", "0", "--no-progress")[0] == 0
    assert torch.equal(read_video(tmp_path / "decoded.mp4").frames, read_video(tmp_path / "expected.mp4").frames)


def test_more_frames_than_the_video_has_are_refused_before_any_work(capsys, model_dir, clip, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "reconstruct_pieces", lambda *a, **k: pytest.fail("the model ran"))
    monkeypatch.setattr(pipeline, "encode_pieces", lambda *a, **k: pytest.fail("the model ran"))
    for command, out in (("reconstruct", "out.mp4"), ("encode", "z.safetensors")):
        code, _, err = run(capsys, command, clip, tmp_path / out, "--model", model_dir, "--frames", "20")
        assert code == 2 and "--frames 20: " in error_line(err) and "has 9 frames from frame 0; ask for at most 9" in error_line(err)
        code, _, err = run(capsys, command, clip, tmp_path / out, "--model", model_dir, "--start", "9")
        assert code == 2 and "--start 9 is beyond the end" in error_line(err)
    assert not list(tmp_path.iterdir())


def test_sigterm_mid_run_leaves_no_partial_output(capsys, model_dir, clip, tmp_path, monkeypatch):
    """SIGTERM (timeout, a scheduler) unwinds like Ctrl-C: the outputs being written are removed."""
    import os
    import signal

    real = pipeline.reconstruct_pieces

    def terminated_after_one_chunk(*args, **kwargs):
        pairs = real(*args, **kwargs)
        yield next(pairs)
        os.kill(os.getpid(), signal.SIGTERM)
        yield next(pairs)

    monkeypatch.setattr(pipeline, "reconstruct_pieces", terminated_after_one_chunk)
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / "out.mp4", "--model", model_dir, "--chunk-groups", "1",
                       "--side-by-side", "--no-progress")
    assert code == 143 and "ivvae reconstruct: terminated" in err
    assert list(tmp_path.iterdir()) == [] and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_outputs_inside_the_model_folder_or_over_data_are_refused(capsys, model_dir, clip, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    code, _, err = run(capsys, "encode", clip, model / "diffusion_pytorch_model.safetensors", "--model", model, "--overwrite")
    assert code == 2 and "would write over the input model folder" in error_line(err)
    video = tmp_path / "video.mp4"
    shutil.copy(clip, video)
    for target, message in ((video, "name the file *.json"), (model / "config.json", "would write over the input model folder")):
        code, _, err = run(capsys, "latent-stats", "--model", model, "--data", video, "--frames", "5", "--json", target, "--overwrite")
        assert code == 2 and message in error_line(err)
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before and video.read_bytes() == clip.read_bytes()


def test_a_small_tile_gets_a_fitting_default_overlap(capsys, model_dir, clip, tmp_path):
    from ivvae.cli.options import default_tile_overlap

    assert [default_tile_overlap(size) for size in (16, 32, 64, 256, 512)] == [0, 8, 16, 64, 64]
    code, stdout, err = run(capsys, "reconstruct", clip, tmp_path / "out.mp4", "--model", model_dir, "--tile", "32", "--no-progress")
    assert code == 0, err
    assert "tiles 32px (overlap 8)" in stdout
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / "o.mp4", "--model", model_dir, "--tile", "32", "--tile-overlap", "32")
    assert code == 2 and "the overlap must be smaller than the tile (e.g. --tile-overlap 8)" in error_line(err)


def test_decode_names_a_moved_encoding_model_and_a_missing_data_set_folder(capsys, clip, tmp_path):
    import shutil

    model = tmp_path / "model"
    tiny_model().save_pretrained(model)
    assert run(capsys, "encode", clip, tmp_path / "z.safetensors", "--model", model, "--frames", "1", "--no-progress")[0] == 0
    shutil.move(model, tmp_path / "moved")
    code, _, err = run(capsys, "decode", tmp_path / "z.safetensors", tmp_path / "out.mp4")
    assert code == 2 and f"made by model '{model}' (recorded in the file), which is not found here; pass" in error_line(err)
    assert run(capsys, "decode", tmp_path / "z.safetensors", tmp_path / "out.mp4", "--model", tmp_path / "moved",
               "--no-progress")[0] == 0
    code, _, err = run(capsys, "decode", tmp_path / "no_such_folder", tmp_path / "o.mp4", "--clip", "0")
    assert code == 2 and "'" + str(tmp_path / "no_such_folder") + "' does not exist" in error_line(err)
    code, _, err = run(capsys, "reconstruct", "http://example.com/a.mp4", tmp_path / "o.mp4")
    assert code == 2 and "URLs are not read" in error_line(err)


def test_demo_refuses_more_frames_than_the_sample_has(capsys, model_dir, tmp_path):
    code, _, err = run(capsys, "demo", "--model", model_dir, "--frames", "100000", "--out-dir", tmp_path / "demo")
    assert code == 2 and "--frames 100000: the sample 'bikes' has 250 frames" in error_line(err)


def test_refuses_to_overwrite(capsys, model_dir, clip, tmp_path):
    out = tmp_path / "exists.mp4"
    out.write_bytes(b"keep me")
    code, _, err = run(capsys, "reconstruct", clip, out, "--model", model_dir)
    assert code == 2 and "--overwrite" in error_line(err) and str(out) in err
    assert out.read_bytes() == b"keep me"
    (tmp_path / "z.safetensors").write_bytes(b"keep me")
    code, _, err = run(capsys, "encode", clip, tmp_path / "z.safetensors", "--model", model_dir)
    assert code == 2 and "--overwrite" in error_line(err)


def test_outputs_never_replace_inputs_or_land_under_files(capsys, model_dir, clip, tmp_path):
    """Checked before any work, even with --overwrite: an output that is the input, an output
    under a regular file, a file output that is a folder."""
    video = tmp_path / "in.mp4"
    shutil.copy(clip, video)
    code, _, err = run(capsys, "encode", video, video, "--model", model_dir, "--overwrite")
    assert code == 2 and error_line(err) and video.read_bytes() == clip.read_bytes()
    assert run(capsys, "encode", video, tmp_path / "z.safetensors", "--model", model_dir, "--no-progress")[0] == 0
    latents = (tmp_path / "z.safetensors").read_bytes()
    code, _, err = run(capsys, "decode", tmp_path / "z.safetensors", tmp_path / "z.safetensors", "--overwrite")
    assert code == 2 and error_line(err) and (tmp_path / "z.safetensors").read_bytes() == latents
    code, _, err = run(capsys, "reconstruct", video, video, "--model", model_dir, "--overwrite")
    assert code == 2 and "is the input" in error_line(err)
    (tmp_path / "notes.txt").write_text("mine")
    for argv in (["reconstruct", video, tmp_path / "notes.txt" / "out.mp4", "--model", model_dir],
                 ["encode", video, tmp_path / "notes.txt" / "z.safetensors", "--model", model_dir],
                 ["demo", "--model", model_dir, "--out-dir", tmp_path / "notes.txt"],
                 ["encode-dataset", tmp_path / "notes.txt" / "lat", "--model", model_dir, "--data", video],
                 ["latent-stats", "--model", model_dir, "--data", video, "--json", tmp_path / "notes.txt" / "s.json"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "notes.txt' is a file" in error_line(err), argv
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "folder").mkdir()
    code, _, err = run(capsys, "encode", video, tmp_path / "folder", "--model", model_dir, "--overwrite")
    assert code == 2 and "is a folder" in error_line(err) and (tmp_path / "folder").is_dir()


def test_swapped_latents_and_video_names_are_refused(capsys, model_dir, clip, tmp_path):
    code, _, err = run(capsys, "encode", clip, tmp_path / "latents.mp4", "--model", model_dir)
    assert code == 2 and "named like a video" in error_line(err) and not (tmp_path / "latents.mp4").exists()
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / "out.safetensors", "--model", model_dir)
    assert code == 2 and "named like a latents file" in error_line(err)


@pytest.mark.parametrize("device", ["foo", "cuda:7", "mps"])
def test_bad_device_is_one_line(capsys, model_dir, clip, tmp_path, device):
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / "out.mp4", "--model", model_dir, "--device", device)
    line = error_line(err)
    assert code == 2 and f"--device {device}" in line and not (tmp_path / "out.mp4").exists()


def test_missing_model_dir(capsys, clip, tmp_path):
    missing = tmp_path / "no_model"
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / "out.mp4", "--model", missing)
    line = error_line(err)
    assert code == 2 and str(missing) in line and "give a model folder" in line
    assert not (tmp_path / "out.mp4").exists()


def test_missing_default_model(capsys, clip, tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "PRETRAINED_DIR", tmp_path / "pretrained")
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / "out.mp4")
    assert code == 2 and hub.DEFAULT_MODEL in error_line(err)
    code, _, err = run(capsys, "demo", "--out-dir", tmp_path / "demo")
    assert code == 2 and "not installed" in error_line(err)


def test_corrupt_input(capsys, model_dir, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("this is not a video\n")
    code, _, err = run(capsys, "reconstruct", bad, tmp_path / "out.mp4", "--model", model_dir)
    line = error_line(err)
    assert code == 2 and "cannot read video" in line and str(bad) in line


def test_debug_shows_traceback(model_dir, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("this is not a video\n")
    with pytest.raises(ValueError, match="cannot read video"):
        cli.main(["--debug", "reconstruct", str(bad), str(tmp_path / "out.mp4"), "--model", str(model_dir)])


def test_decode_with_another_model_is_refused(capsys, model_dir, clip, tmp_path):
    assert run(capsys, "encode", clip, tmp_path / "z.safetensors", "--model", model_dir, "--frames", "1", "--no-progress")[0] == 0
    other = tmp_path / "other"  # another architecture (new normalisation factors alone would be the same model)
    IVVAE(latent_channels=8, base_channels=8, encoder_blocks=1, decoder_blocks=2).save_pretrained(other)
    code, _, err = run(capsys, "decode", tmp_path / "z.safetensors", tmp_path / "out.mp4", "--model", other)
    assert code == 2 and "another model" in error_line(err)
    retrained = tmp_path / "retrained"  # same config, other weights (another checkpoint of one run)
    model = tiny_model()
    with torch.no_grad():
        next(model.decoder.parameters()).add_(0.01)
    model.save_pretrained(retrained)
    code, _, err = run(capsys, "decode", tmp_path / "z.safetensors", tmp_path / "out.mp4", "--model", retrained)
    assert code == 2 and "other weights" in error_line(err) and not (tmp_path / "out.mp4").exists()


def test_memory_risk_is_refused(capsys, model_dir, clip, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "available_memory_bytes", lambda device="cpu": 2**20)
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / "out.mp4", "--model", model_dir)
    line = error_line(err)
    assert code == 2 and "--chunk-groups 1" in line and "--force" in line


# --------------------------------------------------------------------------------------------
# convert
# --------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_release(monkeypatch):
    """Pretend a tiny variant was released: the converter's plumbing on a 1.7M-parameter model."""
    import ivvae.convert

    monkeypatch.setattr(ivvae.convert, "RELEASED", {"ivvae_z4_dim8": {"latent_channels": 4, "base_channels": 8}})
    torch.manual_seed(1)
    return IVVAE(latent_channels=4, base_channels=8)


def test_convert_official_layout(capsys, tiny_release, tmp_path):
    checkpoint = tmp_path / "ivvae_z4_dim8.pth"
    torch.save(to_official_state_dict(tiny_release), checkpoint)
    out_dir = tmp_path / "converted"
    code, stdout, err = run(capsys, "convert", checkpoint, out_dir)
    assert code == 0, err
    assert str(out_dir) in stdout and "--model" in stdout
    loaded = hub.load_model(out_dir)
    for (name, a), (_, b) in zip(tiny_release.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    code, _, err = run(capsys, "convert", checkpoint, out_dir)
    assert code == 2 and "--overwrite" in error_line(err)
    assert run(capsys, "convert", checkpoint, out_dir, "--overwrite")[0] == 0


def test_convert_exports_a_model_folder_back_to_the_released_layout(capsys, tiny_release, tmp_path):
    """``ivvae convert DIR OUT.pth`` writes the released names (what the authors' code loads):
    released .pth -> folder -> .pth gives the same tensors; other architectures are refused."""
    checkpoint = tmp_path / "ivvae_z4_dim8.pth"
    original = to_official_state_dict(tiny_release)
    torch.save(original, checkpoint)
    assert run(capsys, "convert", checkpoint, tmp_path / "folder")[0] == 0
    code, stdout, err = run(capsys, "convert", tmp_path / "folder", tmp_path / "back" / "exported.pth")
    assert code == 0, err
    exported = torch.load(tmp_path / "back" / "exported.pth", weights_only=True)
    assert exported.keys() == original.keys() and all(torch.equal(exported[k], original[k]) for k in original)
    assert "exported" in stdout and sorted(p.name for p in (tmp_path / "back").iterdir()) == ["exported.pth", "exported.pth.json"]
    code, _, err = run(capsys, "convert", tmp_path / "folder", tmp_path / "back" / "exported.pth")
    assert code == 2 and "--overwrite" in error_line(err)
    code, _, err = run(capsys, "convert", tmp_path / "folder", tmp_path / "other_folder")
    assert code == 2 and "name it *.pth" in error_line(err)
    IVVAE(latent_channels=4, base_channels=8, channel_multipliers=(1, 2, 4, 6)).save_pretrained(tmp_path / "wide")
    code, _, err = run(capsys, "convert", tmp_path / "wide", tmp_path / "wide.pth")
    assert code == 2 and "not of the released architecture (channel_multipliers" in error_line(err)
    assert not (tmp_path / "wide.pth").exists()


def test_convert_wrong_checkpoint(capsys, tiny_release, tmp_path):
    checkpoint = tmp_path / "random.pth"
    torch.save({"foo.weight": torch.randn(3, 3), "bar.bias": torch.randn(3)}, checkpoint)
    code, _, err = run(capsys, "convert", checkpoint, tmp_path / "out")
    line = error_line(err)
    assert code == 2 and "not an IV-VAE checkpoint" in line
    # with --variant the layout report (missing/unexpected tensors) is squeezed onto one line
    code, _, err = run(capsys, "convert", checkpoint, tmp_path / "out", "--variant", "ivvae_z4_dim8")
    line = error_line(err)
    assert code == 2 and "missing" in line and "unexpected" in line
    code, _, err = run(capsys, "convert", tmp_path / "nothing.pth", tmp_path / "out")
    assert code == 2 and "no such checkpoint" in error_line(err)
    (tmp_path / "empty.pth").write_bytes(b"")
    code, _, err = run(capsys, "convert", tmp_path / "empty.pth", tmp_path / "out")
    assert code == 2 and "empty" in error_line(err)
    (tmp_path / "video.pth").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)))
    code, _, err = run(capsys, "convert", tmp_path / "video.pth", tmp_path / "out")
    line = error_line(err)
    assert code == 2 and "not a PyTorch state dict" in line and "weights_only" not in line


def test_inflate_image_vae(capsys, tmp_path):
    from ivvae.models import ImageVAE

    torch.manual_seed(0)
    ImageVAE(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1).save_pretrained(tmp_path / "image")
    code, _, err = run(capsys, "inflate", tmp_path / "image", tmp_path / "video")
    assert code == 0, err
    model = hub.load_model(tmp_path / "video")
    assert type(model) is IVVAE and model.config.latent_channels == 8
    assert (tmp_path / "video" / "inflation_report.json").is_file()
    code, _, err = run(capsys, "inflate", tmp_path / "image", tmp_path / "video")
    assert code == 2 and "--overwrite" in error_line(err)


# --------------------------------------------------------------------------------------------
# info / demo
# --------------------------------------------------------------------------------------------
def test_info_model_dir(capsys, model_dir):
    code, out, err = run(capsys, "info", model_dir)
    assert code == 0, err
    params = sum(p.numel() for p in tiny_model().parameters())
    assert f"{params:,}" in out
    assert "(1, 8, 5, 32, 32)" in out  # latents of a 17x256x256 clip
    assert "4x in time" in out and "8x8 in space" in out and "base_channels: 8" in out


def test_info_presets_and_preset_name(capsys):
    code, out, _ = run(capsys, "info", "--presets")
    assert code == 0 and "ivvae_z16_dim96" in out and "241,854,742" in out and "107,798,550" in out
    code, out, _ = run(capsys, "info", "ivvae_z4_dim64")
    assert code == 0 and "107,170,842" in out and "(1, 4, 5, 32, 32)" in out


def test_demo_with_model(capsys, model_dir, tmp_path):
    out_dir = tmp_path / "demo"
    code, out, err = run(capsys, "demo", "--out-dir", out_dir, "--model", model_dir, "--frames", "5", "--size", "64", "--crop", "64",
                         "--no-progress")
    assert code == 0, err
    assert "frames 200-204" in out  # bikes has 250 frames: the held-out part starts at frame 200
    assert probe_video(out_dir / "reconstruction.mp4").num_frames == 5
    side = probe_video(out_dir / "side_by_side.mp4")
    assert (side.width, side.height) == (128, 64)
    assert "PSNR" in out and "SSIM" in out
    assert re.search(r"^time +[0-9.]+ s to encode and decode \(\d+ CPU threads?\)$", out, re.MULTILINE)


# --------------------------------------------------------------------------------------------
# outputs a command would write wrongly or over its input
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["out.avi", "out.txt", "out", "frame.png"])
def test_video_output_needs_a_container_it_is_written_in(capsys, model_dir, clip, tmp_path, name):
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / name, "--model", model_dir)
    assert code == 2 and ".mp4" in error_line(err) and not (tmp_path / name).exists()


def test_an_image_reconstructs_to_a_lossless_png(capsys, model_dir, tmp_path):
    """An image is coded as a one-frame video; a .png OUT holds the reconstruction's exact pixels
    (and encode + decode to .png gives the same)."""
    photo = tmp_path / "photo.png"
    pixels = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (1, 21, 35, 3), dtype=np.uint8))
    write_video(photo, pixels, 25)
    code, stdout, err = run(capsys, "reconstruct", photo, tmp_path / "recon.png", "--model", model_dir, "--side-by-side",
                            "--no-progress")
    assert code == 0, err
    expected = pipeline.reconstruct(hub.load_model(model_dir), pixels)
    assert torch.equal(read_video(tmp_path / "recon.png").frames, expected) and "PSNR" in stdout
    assert read_video(tmp_path / "recon_side_by_side.png").frames.shape == (1, 21, 70, 3)
    assert run(capsys, "encode", photo, tmp_path / "z.safetensors", "--model", model_dir, "--no-progress")[0] == 0
    assert run(capsys, "decode", tmp_path / "z.safetensors", tmp_path / "decoded.png", "--no-progress")[0] == 0
    assert torch.equal(read_video(tmp_path / "decoded.png").frames, expected)


def test_an_image_name_for_several_frames_is_refused_before_any_work(capsys, model_dir, clip, tmp_path, monkeypatch):
    assert run(capsys, "encode", clip, tmp_path / "z.safetensors", "--model", model_dir, "--frames", "5", "--no-progress")[0] == 0
    monkeypatch.setattr(cli.video, "_prepare_video_job", lambda args: pytest.fail("the job started"))
    monkeypatch.setattr(pipeline, "decode_latents", lambda *a, **k: pytest.fail("decoding started"))
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / "out.png", "--model", model_dir)
    assert code == 2 and "a .png image holds one frame, this video has 9" in error_line(err)
    code, _, err = run(capsys, "decode", tmp_path / "z.safetensors", tmp_path / "out.png")
    assert code == 2 and "a .png image holds one frame, this video has 5" in error_line(err)
    assert not (tmp_path / "out.png").exists()


def test_latents_output_must_be_safetensors(capsys, model_dir, clip, tmp_path):
    code, _, err = run(capsys, "encode", clip, tmp_path / "latents.pt", "--model", model_dir)
    assert code == 2 and "*.safetensors" in error_line(err) and not (tmp_path / "latents.pt").exists()


def _tiny_image_vae(folder):
    from ivvae.models import ImageVAE

    torch.manual_seed(0)
    ImageVAE(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1).save_pretrained(folder)
    return folder


def _folder_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("command", [["inflate"], ["grow", "--base-channels", "12"]])
@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_model_commands_never_write_over_their_input_model(capsys, tmp_path, command, where):
    source = _tiny_image_vae(tmp_path / "models" / "image")
    before = _folder_bytes(source)
    out = {"same": source, "inside": source / "sub", "parent": source.parent}[where]
    code, _, err = run(capsys, command[0], source, out, *command[1:], "--overwrite")
    assert code == 2 and "would write over the input model folder" in error_line(err)
    assert _folder_bytes(source) == before and not (source / "sub").exists()


def test_crf_must_be_an_integer(capsys, model_dir, clip, tmp_path):
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / "out.mp4", "--model", model_dir, "--crf", "1.5")
    assert code == 2 and "expected an integer" in error_line(err) and "_crf" not in err


def test_out_of_memory_advice_names_only_options_the_command_has():
    from argparse import Namespace

    from ivvae.cli.support import _memory_advice

    assert "--chunk-groups 1" in _memory_advice(Namespace(chunk_groups=None, tile=None))
    assert "--chunk-groups" not in _memory_advice(Namespace(base_channels=12))


def test_crop_larger_than_the_frames_is_noted(capsys, model_dir, clip, tmp_path):
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / "out.mp4", "--model", model_dir, "--crop", "64", "--no-progress")
    assert code == 0, err
    assert "--crop 64x64 is larger than the 40x24 frames; kept 40x24" in err
    assert probe_video(tmp_path / "out.mp4").width == 40


def test_tile_that_is_not_whole_latent_pixels_is_refused_before_reading(capsys, model_dir, clip, tmp_path, monkeypatch):
    monkeypatch.setattr(cli.video, "_input_pieces", lambda *a: pytest.fail("the video was read"))
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / "out.mp4", "--model", model_dir, "--tile", "20", "--tile-overlap", "4")
    assert code == 2 and "nearest valid: size 16 or 24, overlap 0 or 8" in error_line(err)
    assert not (tmp_path / "out.mp4").exists()


def test_an_output_that_cannot_be_written_is_refused_before_any_work(capsys, model_dir, clip, monkeypatch):
    monkeypatch.setattr(cli.video, "_prepare_video_job", lambda args: pytest.fail("the job started"))
    code, _, err = run(capsys, "reconstruct", clip, "/proc/ivvae_no_such_dir/out.mp4", "--model", model_dir)
    assert code == 2 and "no file can be created in '/proc'" in error_line(err)
    code, _, err = run(capsys, "inflate", model_dir, "/proc/ivvae_no_such_dir/video")
    assert code == 2 and "no file can be created in '/proc'" in error_line(err)


def test_fps_sets_the_output_rate_of_reconstruct_and_encode(model_dir, clip, tmp_path, capsys):
    """A header with the wrong rate (or a variable one) had no override but in `decode`; --fps is the rate written, as there."""
    code, out, err = run(capsys, "reconstruct", clip, tmp_path / "r.mp4", "--model", model_dir, "--fps", 30, "--stride", 2,
                         "--no-progress")
    assert code == 0, err
    assert "30 fps" in out and probe_video(tmp_path / "r.mp4").fps == pytest.approx(30.0)
    assert run(capsys, "reconstruct", clip, tmp_path / "h.mp4", "--model", model_dir, "--stride", 2, "--no-progress")[0] == 0
    assert probe_video(tmp_path / "h.mp4").fps == pytest.approx(12.5)  # without --fps: the input's 25 divided by --stride
    code, _, err = run(capsys, "encode", clip, tmp_path / "z.safetensors", "--model", model_dir, "--fps", 12.5, "--no-progress")
    assert code == 0, err
    assert pipeline.load_latents(tmp_path / "z.safetensors").metadata["fps"] == 12.5
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / "bad.mp4", "--model", model_dir, "--fps", 0)
    assert code != 0 and "--fps" in err


def test_decode_names_swapped_arguments(model_dir, clip, tmp_path, capsys):
    code, _, err = run(capsys, "decode", clip, tmp_path / "out.mp4", "--model", model_dir)
    assert code != 0 and "named like a video" in error_line(err) and "swapped arguments" in err  # was "header too large"


def test_reconstruct_keeps_non_square_pixels(model_dir, tmp_path, capsys):
    """Anamorphic input (DVD/HDV: sample aspect ratio 2:1 here) was written with square pixels: shown at half the width."""
    import av

    source = tmp_path / "anamorphic.mp4"
    with av.open(str(source), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        stream.codec_context.sample_aspect_ratio = 2
        for _ in range(5):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((24, 32, 3), np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    assert probe_video(source).sample_aspect_ratio == 2
    assert run(capsys, "reconstruct", source, tmp_path / "r.mp4", "--model", model_dir, "--side-by-side", "--no-progress")[0] == 0
    assert probe_video(tmp_path / "r.mp4").sample_aspect_ratio == probe_video(tmp_path / "r_side_by_side.mp4").sample_aspect_ratio == 2
    assert run(capsys, "reconstruct", source, tmp_path / "s.mp4", "--model", model_dir, "--resize", "64x24", "--no-progress")[0] == 0
    assert probe_video(tmp_path / "s.mp4").sample_aspect_ratio is None  # an exact size sets the shape: square pixels
    assert run(capsys, "encode", source, tmp_path / "z.safetensors", "--model", model_dir, "--no-progress")[0] == 0
    assert pipeline.load_latents(tmp_path / "z.safetensors").metadata["sample_aspect_ratio"] == [2, 1]
    assert run(capsys, "decode", tmp_path / "z.safetensors", tmp_path / "d.mp4", "--no-progress")[0] == 0
    assert probe_video(tmp_path / "d.mp4").sample_aspect_ratio == 2  # decode used to write square pixels
