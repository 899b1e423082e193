"""Review fixes (session 13) to latent data sets and the commands around them: absolute clip paths and
resume by resolved source, --overwrite never mixing into a foreign folder, clips smaller than the crop,
--normalize with identity factors, combining folders of different sources, eval labels, cosmetics."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import error_line, run, write_sine_video

from ivvae.eval import commands
from ivvae.eval.runner import DatasetSpec
from ivvae.io import VideoReadError
from ivvae.latent_dataset import CLIPS_FILE, DATASET_FILE, LatentDataset, LatentDatasetError, encode_dataset
from ivvae.models import IVVAE


def tiny_model(**config) -> IVVAE:
    torch.manual_seed(0)
    return IVVAE(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1, **config).eval()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Two folders of short videos: ``a/mydata/one.mp4`` (40x40) and ``b/mydata/two.mp4`` (32x32)."""
    root = tmp_path_factory.mktemp("clips")
    for run_dir, name, side in (("a", "one.mp4", 40), ("b", "two.mp4", 32)):
        (root / run_dir / "mydata").mkdir(parents=True)
        write_sine_video(root / run_dir / "mydata" / name, 9, side, side)
    return root


def spec(source, **overrides) -> DatasetSpec:
    return DatasetSpec(source, **{"protocol": "custom", "frames": 9, "small_frames": "native", **overrides})


def encode(source, out, **options) -> dict:
    return encode_dataset(tiny_model(), spec(source), out, progress=False, **options)


# -- 1. clip paths and sources are absolute; resume compares them by resolved path
def test_clip_paths_are_absolute_and_readable_from_any_directory(clips, tmp_path, monkeypatch):
    monkeypatch.chdir(clips / "a")
    encode("mydata", tmp_path / "lat")
    monkeypatch.chdir("/")
    data = LatentDataset(tmp_path / "lat")
    assert data[0]["path"] == str(clips / "a" / "mydata" / "one.mp4") and os.path.exists(data[0]["path"])
    assert data.info["clips"]["source"] == str(clips / "a" / "mydata")


def test_the_same_folder_spelled_otherwise_resumes(clips, tmp_path, monkeypatch):
    monkeypatch.chdir(clips / "a")
    encode("mydata", tmp_path / "lat")
    for spelling in ("mydata/", str(clips / "a" / "mydata"), "./mydata"):
        report = encode(spelling, tmp_path / "lat")
        assert (report["already_done"], report["clips"], report["total_clips"]) == (1, 0, 1), spelling


def test_another_directorys_folder_of_the_same_name_is_refused(clips, tmp_path, monkeypatch):
    monkeypatch.chdir(clips / "a")
    encode("mydata", tmp_path / "lat")
    monkeypatch.chdir(clips / "b")
    with pytest.raises(LatentDatasetError) as error:
        encode("mydata", tmp_path / "lat")
    message = str(error.value)
    assert "\n" not in message and str(clips / "a" / "mydata") in message and str(clips / "b" / "mydata") in message
    assert len(LatentDataset(tmp_path / "lat")) == 1  # nothing appended


def test_a_data_set_of_an_older_ivvae_with_relative_paths_loads_and_resumes(clips, tmp_path, monkeypatch):
    monkeypatch.chdir(clips / "a")
    encode("mydata", tmp_path / "lat")
    # as an earlier version wrote it: --data and the clip paths as typed
    info_path, clips_path = tmp_path / "lat" / DATASET_FILE, tmp_path / "lat" / CLIPS_FILE
    info = json.loads(info_path.read_text())
    info["clips"]["source"] = "mydata"
    info_path.write_text(json.dumps(info))
    records = [json.loads(line) | {"path": "mydata/one.mp4"} for line in clips_path.read_text().splitlines()]
    clips_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert LatentDataset(tmp_path / "lat")[0]["path"] == "mydata/one.mp4"
    report = encode("mydata", tmp_path / "lat")
    assert (report["already_done"], report["clips"], report["total_clips"]) == (1, 0, 1)


# -- 4. --overwrite replaces a latent data set only
def test_overwrite_never_writes_into_a_folder_that_is_not_a_latent_data_set(clips, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(LatentDatasetError, match="holds no latent data set.*new or empty folder"):
            encode(clips / "a" / "mydata", folder, overwrite=overwrite)
    (folder / DATASET_FILE).write_text(json.dumps({"format": "someone-elses"}))
    with pytest.raises(LatentDatasetError, match="holds no latent data set"):
        encode(clips / "a" / "mydata", folder, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == [DATASET_FILE, "notes.txt"]
    assert json.loads((folder / DATASET_FILE).read_text()) == {"format": "someone-elses"}
    encode(clips / "a" / "mydata", tmp_path / "lat")
    encode(clips / "b" / "mydata", tmp_path / "lat", overwrite=True)  # a latent data set is still replaced
    assert [Path(r["path"]).name for r in LatentDataset(tmp_path / "lat").records] == ["two.mp4"]


# -- 2. a video smaller than --crop keeps its size: warned once, counted
def test_videos_smaller_than_the_crop_are_warned_about(clips, tmp_path):
    both = [clips / "a" / "mydata", clips / "b" / "mydata"]
    warnings: list[str] = []
    report = encode_dataset(tiny_model(), spec(both, crop=40), tmp_path / "lat", progress=False, warn=warnings.append)
    assert report["smaller_than_crop"] == 1 and len(warnings) == 1
    assert "two.mp4" in warnings[0] and "32x32" in warnings[0] and "40x40 crop" in warnings[0] and "--size 40" in warnings[0]
    same = encode_dataset(tiny_model(), spec(both, crop=40, size=40), tmp_path / "sized", progress=False, warn=warnings.append)
    assert same["smaller_than_crop"] == 0 and len(warnings) == 1
    data = LatentDataset(tmp_path / "sized")
    assert len({data.shape(i) for i in range(len(data))}) == 1  # what README's plain DataLoader needs


# -- 3. --normalize with identity factors
@pytest.mark.parametrize("factors", [{}, {"scaling_factor": 0.5, "shift_factor": 0.1}])
def test_normalize_with_identity_factors_warns_with_the_fix(clips, tmp_path, capsys, factors):
    model_dir = tmp_path / "model"
    tiny_model(**factors).save_pretrained(model_dir)
    video = clips / "a" / "mydata" / "one.mp4"
    for argv in (["encode-dataset", tmp_path / "lat", "--data", video, "--frames", "9"],
                 ["encode", video, tmp_path / "z.safetensors"]):
        code, out, err = run(capsys, *argv, "--model", model_dir, "--normalize", "--no-progress")
        assert code == 0, err
        warned = [line for line in err.splitlines() if "warning: --normalize" in line]
        if factors:
            assert not warned and "normalised latents" in out
        else:
            assert len(warned) == 1 and f"ivvae latent-stats --model {model_dir} --data" in warned[0] and "--write-model" in warned[0]
            assert "raw (identity normalisation)" in out


# -- 6. folders of different sources combine; incomplete parts warn
def test_folders_of_different_sources_read_as_one(clips, tmp_path):
    encode(clips / "a" / "mydata", tmp_path / "a")
    encode(clips / "b" / "mydata", tmp_path / "b")
    data = LatentDataset([tmp_path / "a", tmp_path / "b"])
    assert sorted(Path(r["path"]).name for r in data.records) == ["one.mp4", "two.mp4"]
    assert data.info["sources"] == [str(clips / "a" / "mydata"), str(clips / "b" / "mydata")]
    assert data.info["clips"]["source"] == data.info["sources"]
    encode(clips / "a" / "mydata" / "one.mp4", tmp_path / "again")  # the same video, from another --data
    with pytest.raises(LatentDatasetError, match="one.mp4' is encoded in both"):
        LatentDataset([tmp_path / "a", tmp_path / "again"])
    encode_dataset(tiny_model(), spec(clips / "b" / "mydata", frames=5), tmp_path / "five", progress=False)
    with pytest.raises(LatentDatasetError, match="other settings.*clips.frames"):
        LatentDataset([tmp_path / "a", tmp_path / "five"])


def test_an_incomplete_set_of_parts_warns(clips, tmp_path):
    both = tmp_path / "both"
    shutil.copytree(clips / "a" / "mydata", both)
    shutil.copy(clips / "b" / "mydata" / "two.mp4", both)
    for i in range(2):
        encode(both, tmp_path / f"p{i}", part=(i, 2))
    with pytest.warns(UserWarning, match="reading 1 of the 2 parts.*part\\(s\\) 1 missing"):
        LatentDataset(tmp_path / "p0")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(LatentDataset([tmp_path / "p0", tmp_path / "p1"])) == 2


# -- 5. eval labels and cosmetics
def test_eval_labels_a_runs_export_by_its_run():
    names = commands._model_names(["A/run1/export", "B/run2/export/", "B/run2/exports/step_00000100", "models/z16"], None)
    assert list(names) == ["run1", "run2", "run2@step_00000100", "z16"]


def test_a_one_frame_image_input_says_1_frame_and_no_rate(clips, tmp_path, capsys):
    from ivvae.io import write_video

    image = tmp_path / "img.png"
    write_video(image, torch.full((1, 32, 32, 3), 100, dtype=torch.uint8), 25)
    model_dir = tmp_path / "model"
    tiny_model().save_pretrained(model_dir)
    code, out, err = run(capsys, "encode", image, tmp_path / "z.safetensors", "--model", model_dir, "--no-progress")
    assert code == 0, err
    assert f"input   {image}: 1 frame, 32x32\n" in out
    code, out, err = run(capsys, "decode", tmp_path / "z.safetensors", tmp_path / "z.png", "--no-progress")
    assert code == 0, err
    assert "-> 1 frame, 32x32" in out


def test_a_too_short_video_says_how_many_frames_a_clip_needs(clips):
    with pytest.raises(VideoReadError, match="too short: 9 frames, clip 1 needs 17 frames$"):
        spec(clips / "a" / "mydata", frames=17).load_clip(str(clips / "a" / "mydata" / "one.mp4"))


def test_cli_refuses_another_folders_data_in_one_line(clips, tmp_path, capsys, monkeypatch):
    model_dir = tmp_path / "model"
    tiny_model().save_pretrained(model_dir)
    argv = ["encode-dataset", tmp_path / "lat", "--model", model_dir, "--data", "mydata", "--frames", "9", "--no-progress"]
    monkeypatch.chdir(clips / "a")
    assert run(capsys, *argv)[0] == 0
    monkeypatch.chdir(clips / "b")
    code, _, err = run(capsys, *argv)
    assert code == 2 and str(clips / "b" / "mydata") in error_line(err) and str(clips / "a" / "mydata") in error_line(err)
