"""Regressions found by running README.md's commands one by one (session 14 walk-through)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from cli_helpers import error_line, run, write_sine_video

from ivvae.io import probe_video
from ivvae.models import IVVAE

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 9-frame 24x40 MP4 at 25 fps."""
    return write_sine_video(tmp_path_factory.mktemp("video") / "clip.mp4", 9, 24, 40)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A tiny IV-VAE (1 encoder and 1 decoder block: fast, not the released layout)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny"
    IVVAE(latent_channels=8, base_channels=8, encoder_blocks=1, decoder_blocks=1).save_pretrained(path)
    return path


def test_convert_export_names_the_written_pth_by_its_path(capsys, tmp_path):
    # the hint was `ivvae convert x.pth DIR` for an OUT of sub/x.pth: a command that fails where it is run
    torch.manual_seed(0)
    IVVAE(latent_channels=8, base_channels=8).save_pretrained(tmp_path / "released_layout")
    out = tmp_path / "sub" / "x.pth"
    code, stdout, err = run(capsys, "convert", tmp_path / "released_layout", out)
    assert code == 0, err
    assert f"`ivvae convert {out} DIR` reads back" in stdout, (
        f"the export should name the .pth to convert back by the path it wrote ({out}), not its bare file name:\n{stdout}")


def test_decoding_a_shard_of_a_latent_data_set_points_to_the_folder_and_clip(capsys, small_model, clip, tmp_path):
    data = tmp_path / "latents"
    code, _, err = run(capsys, "encode-dataset", data, "--model", small_model, "--data", clip, "--frames", "5",
                       "--no-progress", "--threads", "1")
    assert code == 0, err
    shard = next(data.glob("shard-*.safetensors"))
    code, _, err = run(capsys, "decode", shard, tmp_path / "out.mp4", "--no-progress")
    line = error_line(err)
    assert code == 2
    assert f"ivvae decode {data} OUT --clip ID" in line, (
        f"decoding a shard file should name the data set folder and --clip (the shard holds no metadata): {line}")
    assert not (tmp_path / "out.mp4").exists()


def test_side_by_side_keeps_the_output_extension_as_help_says(capsys, small_model, clip, tmp_path):
    code, _, err = run(capsys, "reconstruct", clip, tmp_path / "r.mkv", "--model", small_model, "--frames", "5",
                       "--side-by-side", "--no-progress", "--threads", "1")
    assert code == 0, err
    assert (tmp_path / "r_side_by_side.mkv").is_file(), sorted(p.name for p in tmp_path.iterdir())
    code, out, _ = run(capsys, "reconstruct", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "--side-by-side" in text
    assert "OUT_side_by_side.mp4 (next to OUT)" not in text, (
        "`ivvae reconstruct --help` says --side-by-side writes OUT_side_by_side.mp4, but it keeps OUT's extension")


def test_odd_sizes_are_written_exactly_as_readme_says(capsys, small_model, clip, tmp_path):
    out = tmp_path / "odd.mp4"
    code, _, err = run(capsys, "reconstruct", clip, out, "--model", small_model, "--frames", "5", "--crop", "39x23",
                       "--no-progress", "--threads", "1")
    assert code == 0, err
    info = probe_video(out)
    assert (info.width, info.height) == (39, 23), f"odd-sized output written as {info.width}x{info.height}, not 39x23"
    text = " ".join(README.read_text().split())
    assert "written at its exact size as 4:4:4 H.264" in text, "README should say odd sizes are written exactly (4:4:4)"
    assert "padded by one replicated row/column" not in text, "README still claims odd sizes are padded to even"


def test_readme_eval_example_says_where_the_earlier_model_goes():
    """The held-out eval example compares with an earlier shipped model out of git: README says where its files go."""
    text = README.read_text()
    folders = set(re.findall(r"session-\d+-model=(\S+)", text))
    assert folders, "README's held-out eval example no longer names an earlier model's folder"
    for folder in folders:
        assert f"> {folder}/FILE" in text, (
            f"README's eval example reads {folder} but does not say to write the `git show` files there")


def test_one_line_runs_a_heading_into_its_first_item():
    """convert's layout report printed 'expected layout: | shape mismatch ...' (a stray separator after the colon)."""
    from ivvae.cli.support import one_line

    error = ValueError("checkpoint does not match the expected layout:\n  missing (1): a\n  shape mismatch (2): b; c")
    assert one_line(error) == "checkpoint does not match the expected layout: missing (1): a | shape mismatch (2): b; c"
    assert one_line(ValueError("one\ntwo")) == "one | two"
