"""Latent data sets (``ivvae.latent_dataset``, ``ivvae encode-dataset``): exact latents, resume after
an interruption, refusal of mixed settings, skipped videos, reading back with ``LatentDataset``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from cli_helpers import error_line, run, write_sine_video
from safetensors import safe_open

from ivvae.eval.runner import DatasetSpec
from ivvae.latent_dataset import CLIPS_FILE, SKIPPED_FILE, LatentDataset, LatentDatasetError, _complete, encode_dataset
from ivvae.models import IVVAE


def tiny_model() -> IVVAE:
    torch.manual_seed(0)
    return IVVAE(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1).eval()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Three short clips of different lengths and sizes, and one corrupt file, in one folder."""
    folder = tmp_path_factory.mktemp("videos")
    write_sine_video(folder / "a.mp4", 20, 40, 48)
    write_sine_video(folder / "b.mp4", 11, 32, 32)
    write_sine_video(folder / "c.mp4", 9, 48, 40)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    return folder


def spec_for(folder, **overrides) -> DatasetSpec:
    settings = {"protocol": "custom", "frames": 9, "crop": 32, "clips_per_video": 2, "small_frames": "native"}
    return DatasetSpec(folder, **{**settings, **overrides})


def by_clip(dataset: LatentDataset) -> dict[tuple[str, int], torch.Tensor]:
    return {(item["path"].rsplit("/", 1)[-1], item["start"]): item["latents"] for item in dataset}


def test_latents_equal_the_models_and_skipped_videos_are_listed(videos, tmp_path):
    model, spec, warnings = tiny_model(), spec_for(videos), []
    report = encode_dataset(model, spec, tmp_path / "lat", shard_size=2, progress=False, warn=warnings.append)
    # a.mp4 gives two 9-frame clips, b and c one each; broken.mp4 is skipped with its reason
    assert (report["videos"], report["clips"], report["skipped"]) == (3, 4, 1)
    skipped = [json.loads(line) for line in (tmp_path / "lat" / SKIPPED_FILE).read_text().splitlines()]
    assert [s["path"].rsplit("/", 1)[-1] for s in skipped] == ["broken.mp4"] and skipped[0]["reason"]
    assert len(warnings) == 1 and "broken.mp4" in warnings[0]
    dataset = LatentDataset(tmp_path / "lat")
    assert len(dataset) == 4 and dataset.info["latent_channels"] == 4 and not dataset.info["normalized"]
    assert report["shards"] >= 2  # shard_size 2: a.mp4's two clips fill the first one
    expected = {}
    for clip in spec.iter_clips():
        if isinstance(clip, tuple):
            continue
        with torch.no_grad():
            expected[(clip.path.rsplit("/", 1)[-1], clip.start)] = model.encode(clip.video[None].contiguous()).latent_dist.mode()[0]
    got = by_clip(dataset)
    assert sorted(got) == sorted(expected) == [("a.mp4", 0), ("a.mp4", 9), ("b.mp4", 0), ("c.mp4", 0)]
    for key, latents in expected.items():
        assert torch.equal(got[key], latents), key  # float32 storage: bit for bit
    first = dataset[0]
    assert first["frames"] == 9 and first["size"] == [32, 32] and first["fps"] == 25.0 and first["shape"] == [4, 3, 4, 4]


def test_one_frame_clips_take_the_images_of_a_folder_too(videos, tmp_path):
    """Image latents for joint image-video training: with 1-frame clips a folder's images are read
    as one-frame videos beside the videos' first frames; longer clips list videos only."""
    import numpy as np

    from ivvae.io import read_video, write_video

    folder = tmp_path / "media"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (folder / name).write_bytes((videos / name).read_bytes())
    photo = np.random.default_rng(0).integers(0, 256, (1, 40, 36, 3), dtype=np.uint8)
    write_video(folder / "photo.png", photo, 25)
    spec = spec_for(folder, frames=1, clips_per_video=1)
    assert sorted(Path(p).name for p in spec.list_videos()) == ["a.mp4", "b.mp4", "photo.png"]
    assert sorted(Path(p).name for p in spec_for(folder).list_videos()) == ["a.mp4", "b.mp4"]
    model = tiny_model()
    encode_dataset(model, spec, tmp_path / "lat", progress=False)
    got = by_clip(LatentDataset(tmp_path / "lat"))
    assert sorted(got) == [("a.mp4", 0), ("b.mp4", 0), ("photo.png", 0)]
    image = spec.load_clip(str(folder / "photo.png")).video
    assert torch.equal(image, read_video(folder / "photo.png").frames.permute(3, 0, 1, 2).float()[:, :, 4:36, 2:34].div(127.5).sub(1))
    with torch.no_grad():
        assert torch.equal(got[("photo.png", 0)], model.encode(image[None].contiguous()).latent_dist.mode()[0])
    only_images = tmp_path / "photos"
    only_images.mkdir()
    (only_images / "photo.png").write_bytes((folder / "photo.png").read_bytes())
    with pytest.raises(ValueError, match="no video files"):
        spec_for(only_images).list_videos()


def test_batches_storage_dtype_and_normalisation(videos, tmp_path):
    model = tiny_model()
    model.register_to_config(scaling_factor=0.5, shift_factor=0.25)
    encode_dataset(model, spec_for(videos), tmp_path / "one", progress=False)
    encode_dataset(model, spec_for(videos), tmp_path / "batched", batch_size=3, storage_dtype="float16", progress=False)
    reference = by_clip(LatentDataset(tmp_path / "one"))
    encode_dataset(model, spec_for(videos), tmp_path / "workers", workers=2, progress=False)
    workers = LatentDataset(tmp_path / "workers")
    assert by_clip(workers).keys() == reference.keys()
    assert all(torch.equal(latents, reference[key]) for key, latents in by_clip(workers).items())
    assert [r["path"] for r in workers.records] == [r["path"] for r in LatentDataset(tmp_path / "one").records]
    batched = LatentDataset(tmp_path / "batched", dtype=None)
    with safe_open(str(tmp_path / "batched" / batched.records[0]["shard"]), "pt") as f:
        assert f.get_tensor(batched.records[0]["key"]).dtype == torch.float16
    for key, latents in by_clip(batched).items():
        assert torch.allclose(latents.float(), reference[key], atol=2e-3, rtol=2e-3), key
    normalised = by_clip(LatentDataset(tmp_path / "one", normalize=True))
    for key, latents in normalised.items():
        assert torch.allclose(latents, 0.5 * (reference[key] - 0.25))
    encode_dataset(model, spec_for(videos), tmp_path / "stored_normalised", normalize=True, progress=False)
    stored = LatentDataset(tmp_path / "stored_normalised", normalize=True)  # already normalised: returned as stored
    for key, latents in by_clip(stored).items():
        assert torch.allclose(latents, normalised[key], atol=1e-6), key


def test_an_interrupted_run_resumes_where_it_stopped(videos, tmp_path, monkeypatch):
    from ivvae import latent_dataset

    model, spec = tiny_model(), spec_for(videos)
    encode_dataset(model, spec, tmp_path / "whole", shard_size=1, progress=False)
    real = latent_dataset._encode_videos
    calls = {"n": 0}

    def dies_on_second_group(group, encode, batch_size):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real(group, encode, batch_size)

    monkeypatch.setattr(latent_dataset, "_encode_videos", dies_on_second_group)
    with pytest.raises(KeyboardInterrupt):
        encode_dataset(model, spec, tmp_path / "resumed", shard_size=1, progress=False)
    monkeypatch.setattr(latent_dataset, "_encode_videos", real)
    assert len(LatentDataset(tmp_path / "resumed")) == 2  # a.mp4's two clips were written
    with (tmp_path / "resumed" / CLIPS_FILE).open("a") as f:
        f.write('{"id": 99, "shard": "shard-')  # and a line cut short by the interruption
    report = encode_dataset(model, spec, tmp_path / "resumed", shard_size=1, progress=False)
    assert (report["already_done"], report["videos"], report["skipped"]) == (1, 2, 1)  # a.mp4 was done
    whole, resumed = by_clip(LatentDataset(tmp_path / "whole")), by_clip(LatentDataset(tmp_path / "resumed"))
    assert sorted(whole) == sorted(resumed)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    ids = [r["id"] for r in LatentDataset(tmp_path / "resumed").records]
    assert len(set(ids)) == len(ids)


def test_other_settings_foreign_folders_and_missing_shards_are_refused(videos, tmp_path):
    model = tiny_model()
    encode_dataset(model, spec_for(videos), tmp_path / "lat", progress=False)
    with pytest.raises(LatentDatasetError, match=r"clips.frames: 9 -> 5"):
        encode_dataset(model, spec_for(videos, frames=5), tmp_path / "lat", progress=False)
    other = tiny_model()
    with torch.no_grad():
        other.decoder.conv_out.convs["keyframe"].weight.add_(1.0)  # same config, other weights
    with pytest.raises(LatentDatasetError, match="weights_hash"):
        encode_dataset(other, spec_for(videos), tmp_path / "lat", progress=False)
    report = encode_dataset(model, spec_for(videos, frames=5), tmp_path / "lat", overwrite=True, progress=False)
    assert report["already_done"] == 0 and LatentDataset(tmp_path / "lat").records[0]["frames"] == 5
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(LatentDatasetError, match="not empty"):
        encode_dataset(model, spec_for(videos), tmp_path / "foreign", progress=False)
    assert (tmp_path / "foreign" / "notes.txt").read_text() == "mine"
    with pytest.raises(LatentDatasetError, match="no dataset.json"):
        LatentDataset(tmp_path / "foreign")
    dataset = LatentDataset(tmp_path / "lat")
    (tmp_path / "lat" / dataset.records[0]["shard"]).unlink()
    with pytest.raises(LatentDatasetError, match="missing"):
        dataset[0]


def test_a_corrupt_shard_is_named(videos, tmp_path, capsys):
    model_dir = tmp_path / "model"
    tiny_model().save_pretrained(model_dir)
    encode_dataset(tiny_model(), spec_for(videos), tmp_path / "lat", shard_size=2, progress=False)
    records = LatentDataset(tmp_path / "lat").records
    (tmp_path / "lat" / records[0]["shard"]).write_text("garbage\n")  # used to raise SafetensorError (a traceback in the CLI)
    with pytest.raises(LatentDatasetError, match=r"shard-00000.safetensors' is corrupt or not a safetensors file.*--overwrite"):
        LatentDataset(tmp_path / "lat")[0]
    code, _, err = run(capsys, "decode", tmp_path / "lat", tmp_path / "a.mp4", "--clip", records[0]["id"], "--model", model_dir)
    assert code == 2 and "is corrupt or not a safetensors file" in error_line(err)
    other = next(r for r in records if r["shard"] != records[0]["shard"])
    clips = (tmp_path / "lat" / CLIPS_FILE).read_text().replace(f'"key": "{other["key"]}"', '"key": "nope"')
    (tmp_path / "lat" / CLIPS_FILE).write_text(clips)
    dataset = LatentDataset(tmp_path / "lat")
    with pytest.raises(LatentDatasetError, match=f"has no tensor 'nope' that clips.jsonl lists for clip {other['id']}"):
        dataset[records.index(other)]


def test_a_damaged_clip_index_is_named_with_its_line(videos, tmp_path):
    encode_dataset(tiny_model(), spec_for(videos), tmp_path / "lat", progress=False)
    path = tmp_path / "lat" / CLIPS_FILE
    good = path.read_text()
    lines = len(good.splitlines())
    path.write_text(good + "nonsense\n")  # a trailing garbage line used to be ignored
    with pytest.raises(LatentDatasetError, match=rf"clips.jsonl' line {lines + 1} is not a JSON record"):
        LatentDataset(tmp_path / "lat")
    with pytest.raises(LatentDatasetError, match=rf"line {lines + 1} .*--overwrite"):  # resuming does not drop it either
        encode_dataset(tiny_model(), spec_for(videos), tmp_path / "lat", progress=False)
    path.write_text("garbage\n")  # used to read as a data set without clips
    with pytest.raises(LatentDatasetError, match="clips.jsonl' line 1 is not a JSON record"):
        LatentDataset(tmp_path / "lat")
    path.write_text(good.replace('"video_clips"', '"clips"', 1))  # JSON, but not a clip record
    with pytest.raises(LatentDatasetError, match="line 1 is not a JSON record with id, shard, key, path, video_clips"):
        LatentDataset(tmp_path / "lat")
    path.write_text(good + '{"id": 99, "shard": "sha')  # an interrupted append (unterminated): whole records are kept
    assert len(LatentDataset(tmp_path / "lat")) == lines


def test_tiles_that_are_not_whole_latent_pixels_are_refused_before_writing(videos, tmp_path):
    with pytest.raises(ValueError, match="size 16 or 24, overlap 0 or 8"):
        encode_dataset(tiny_model(), spec_for(videos), tmp_path / "lat", tile=(20, 4), progress=False)
    assert not (tmp_path / "lat").exists()


def test_dataset_loads_in_dataloader_workers(videos, tmp_path):
    encode_dataset(tiny_model(), spec_for(videos, clips_per_video=1, crop=24), tmp_path / "lat", progress=False)
    dataset = LatentDataset(tmp_path / "lat")
    dataset[0]  # an open shard handle must not stop the dataset from reaching the workers
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=1,
                                         collate_fn=lambda items: torch.stack([i["latents"] for i in items]))
    (batch,) = list(loader)
    assert batch.shape == (3, 4, 3, 3, 3)


def test_cli_encode_dataset_resumes_and_refuses_other_settings(videos, tmp_path, capsys):
    model_dir = tmp_path / "model"
    tiny_model().save_pretrained(model_dir)
    args = ["encode-dataset", tmp_path / "lat", "--model", model_dir, "--data", videos, "--frames", "9", "--crop", "32",
            "--no-progress"]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert "encoded 3 clip(s) from 3 video(s)" in out and "1 video(s) skipped" in out and "broken.mp4" in err
    code, out, _ = run(capsys, *args)
    assert code == 0 and "4 video(s) already done" in out and "encoded 0 clip(s)" in out
    code, _, err = run(capsys, *args[:-1], "--frames", "5", "--no-progress")
    assert code == 2 and "clips.frames: 9 -> 5" in error_line(err) and "--overwrite" in error_line(err)
    code, _, err = run(capsys, "encode-dataset", tmp_path / "none", "--model", model_dir, "--data", tmp_path / "missing")
    assert code == 2 and "missing" in error_line(err)
    # a clip of the data set decodes back to a video, with the encoding model only
    data = LatentDataset(tmp_path / "lat")
    clip = next(r for r in data.records if r["path"].endswith("a.mp4"))
    code, out, err = run(capsys, "decode", tmp_path / "lat", tmp_path / "a.mp4", "--clip", clip["id"], "--no-progress")
    assert code == 0, err
    from ivvae.io import read_video, tensor_to_frames
    from ivvae.pipeline import decode_latents

    model, index = tiny_model(), data.records.index(clip)
    with torch.no_grad():
        expected = tensor_to_frames(model.decode(data[index]["latents"][None]).sample[0])
    assert torch.equal(decode_latents(model, data.encoded(index), progress=False), expected)
    decoded = read_video(tmp_path / "a.mp4")
    assert decoded.frames.shape == expected.shape == (9, 32, 32, 3) and decoded.fps == 25.0
    code, _, err = run(capsys, "decode", tmp_path / "lat", tmp_path / "b.mp4")
    assert code == 2 and "--clip ID" in error_line(err)
    code, _, err = run(capsys, *args[:2], "--data", videos, "--part", "2/2")
    assert code == 2 and "0 <= I < K" in error_line(err)
    other = tmp_path / "other"
    retrained = tiny_model()
    with torch.no_grad():
        next(retrained.decoder.parameters()).add_(0.01)
    retrained.save_pretrained(other)
    code, _, err = run(capsys, "decode", tmp_path / "lat", tmp_path / "b.mp4", "--clip", "0", "--model", other)
    assert code == 2 and "other weights" in error_line(err)


def test_nothing_readable_leaves_nothing_behind(videos, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.mp4").write_bytes((videos / "broken.mp4").read_bytes())
    with pytest.raises(LatentDatasetError, match="no clip could be read: 1 video"):
        encode_dataset(tiny_model(), spec_for(broken), tmp_path / "lat", progress=False)
    assert not (tmp_path / "lat").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(LatentDatasetError, match="no clip"):
        encode_dataset(tiny_model(), spec_for(broken), tmp_path / "kept", progress=False)
    assert (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())


def test_parts_split_the_videos_and_read_back_as_one(videos, tmp_path):
    model, spec = tiny_model(), spec_for(videos)
    encode_dataset(model, spec, tmp_path / "whole", progress=False)
    reports = [encode_dataset(model, spec, tmp_path / f"part{i}", part=(i, 2), progress=False) for i in range(2)]
    assert sum(r["videos"] + r["skipped"] for r in reports) == 4 and all(r["videos"] for r in reports)
    parts = LatentDataset([tmp_path / "part0", tmp_path / "part1"])
    assert parts.info["parts"] == [[0, 2], [1, 2]] and len({r["folder"] for r in parts.records}) == 2
    whole = by_clip(LatentDataset(tmp_path / "whole"))
    assert by_clip(parts).keys() == whole.keys()
    assert all(torch.equal(latents, whole[key]) for key, latents in by_clip(parts).items())
    with pytest.raises(LatentDatasetError, match="given twice"):
        LatentDataset([tmp_path / "part0", tmp_path / "part0"])
    encode_dataset(model, spec, tmp_path / "third0", part=(0, 3), progress=False)
    for mixed in ("third0", "whole"):  # another split, or the whole run, shares videos with part 0/2
        with pytest.raises(LatentDatasetError, match="split the videos differently"):
            LatentDataset([tmp_path / "part0", tmp_path / mixed])
    encode_dataset(model, spec_for(videos, frames=5), tmp_path / "other", part=(1, 2), progress=False)
    with pytest.raises(LatentDatasetError, match="other settings.*clips.frames"):
        LatentDataset([tmp_path / "part0", tmp_path / "other"])
    with pytest.raises(LatentDatasetError, match="part: \\[0, 2\\] -> \\[1, 2\\]"):  # resuming part 0 as part 1
        encode_dataset(model, spec, tmp_path / "part0", part=(1, 2), progress=False)
    with pytest.raises(ValueError, match="do not combine"):
        encode_dataset(model, spec_for(videos, num_videos=2), tmp_path / "x", part=(0, 2), progress=False)
    with pytest.raises(ValueError, match="part 4/5 holds no video: the data has 4 video.*at most 4 part"):
        encode_dataset(model, spec, tmp_path / "empty_part", part=(4, 5), progress=False)
    assert not (tmp_path / "empty_part").exists()


def test_a_video_listed_twice_is_encoded_once_and_kept(videos, tmp_path):
    """A folder plus a file inside it: the file used to be encoded twice, then taken for an
    incomplete video and hidden, and every resume repeated the loss."""
    spec = spec_for([videos, videos / "b.mp4"])
    report = encode_dataset(tiny_model(), spec, tmp_path / "lat", progress=False, warn=lambda _: None)
    assert (report["videos"], report["clips"]) == (3, 4)
    assert sorted(by_clip(LatentDataset(tmp_path / "lat"))) == [("a.mp4", 0), ("a.mp4", 9), ("b.mp4", 0), ("c.mp4", 0)]
    # a folder written by an older ivvae, with b.mp4's record twice, still reads b.mp4 (once)
    clips = tmp_path / "lat" / CLIPS_FILE
    lines = clips.read_text().splitlines()
    b = next(line for line in lines if '"b.mp4"' in line or "/b.mp4" in line)
    duplicate = json.loads(b) | {"id": 99}
    clips.write_text("\n".join([*lines, json.dumps(duplicate)]) + "\n")
    assert sorted(by_clip(LatentDataset(tmp_path / "lat")))[2] == ("b.mp4", 0) and len(LatentDataset(tmp_path / "lat")) == 4


def test_list_videos_lists_each_video_once_and_warns_once(videos, tmp_path, caplog):
    """A repeated manifest row, or a folder plus a file inside it (here by a link), is used once, the first."""
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path\n{videos / 'a.mp4'}\n{videos / 'b.mp4'}\n{videos / 'a.mp4'}\n")
    (tmp_path / "link.mp4").symlink_to(videos / "b.mp4")
    with caplog.at_level(logging.WARNING, logger="ivvae.eval.runner"):
        assert [Path(p).name for p in spec_for(manifest).list_videos()] == ["a.mp4", "b.mp4"]
        listed = spec_for([videos, tmp_path / "link.mp4", manifest]).list_videos()
    assert sorted(Path(p).name for p in listed) == ["a.mp4", "b.mp4", "broken.mp4", "c.mp4"]  # the folder's, listed first
    assert [r.getMessage() for r in caplog.records] == [f"{n} video(s) listed more than once in the data: each is used once"
                                                        for n in (1, 4)]


def test_a_video_encoded_twice_by_an_older_ivvae_keeps_its_first_clips():
    """Older folders may hold a video's clips twice, from other random starts, or after a cut-short encoding."""
    def clips(path: str, starts: list[int], first_id: int, shard: int, video_clips: int = 2) -> list[dict]:
        return [{"id": first_id + k, "shard": f"shard-{shard:05d}.safetensors", "path": path, "start": s,
                 "video_clips": video_clips} for k, s in enumerate(starts)]

    records = [*clips("a", [3], 0, shard=0), *clips("a", [7, 12], 1, shard=1), *clips("b", [0, 9], 3, shard=1),
               *clips("a", [1, 6], 5, shard=1), *clips("a", [7, 12], 7, shard=2), *clips("c", [0], 9, shard=2, video_clips=1)]
    assert [r["id"] for r in _complete(records)] == [1, 2, 3, 4, 9]
    assert [r["id"] for r in _complete(clips("a", [0, 9, 0, 9], 0, shard=0))] == [0, 1]  # two encodings in one run
    assert _complete(clips("a", [0, 0], 0, shard=0)) == []  # one clip twice is not a whole video


def test_data_set_latents_decode_with_the_model_loaded_in_another_dtype(videos, tmp_path):
    """``LatentDataset.encoded`` goes through the same model check as a latents file."""
    from ivvae.pipeline import decode_latents

    tiny_model().save_pretrained(tmp_path / "vae")
    encode_dataset(IVVAE.from_pretrained(tmp_path / "vae").eval(), spec_for(videos / "b.mp4"), tmp_path / "lat", progress=False)
    data = LatentDataset(tmp_path / "lat")
    assert data.info["weights_dtype"] == "float32"
    half = IVVAE.from_pretrained(tmp_path / "vae", torch_dtype=torch.bfloat16).eval()
    assert decode_latents(half, data.encoded(0), progress=False).shape == (9, 32, 32, 3)
    with torch.no_grad():
        next(half.parameters()).add_(0.5)
    with pytest.raises(ValueError, match="weights in float32; this model's weights are bfloat16 and do not round"):
        decode_latents(half, data.encoded(0), progress=False)


def test_a_data_set_of_another_format_version_is_refused_and_never_rewritten(videos, tmp_path):
    encode_dataset(tiny_model(), spec_for(videos / "b.mp4"), tmp_path / "lat", progress=False)
    info_path = tmp_path / "lat" / "dataset.json"
    info_path.write_text(json.dumps(json.loads(info_path.read_text()) | {"version": 2}))
    with pytest.raises(LatentDatasetError, match="format version 2; this ivvae reads version 1: encode it again"):
        LatentDataset(tmp_path / "lat")
    with pytest.raises(LatentDatasetError, match="format version 2"):  # a resume used to stamp version 1 over it
        encode_dataset(tiny_model(), spec_for(videos / "b.mp4"), tmp_path / "lat", progress=False)
    assert json.loads(info_path.read_text())["version"] == 2
    for version, shown in (("1", '"1"'), (True, "true"), (None, r"\(none\)")):  # not read as version 1, nor shown as it
        info_path.write_text(json.dumps(json.loads(info_path.read_text()) | {"version": version}))
        with pytest.raises(LatentDatasetError, match=f"format version {shown}; this ivvae reads version 1"):
            LatentDataset(tmp_path / "lat")


def test_same_shape_batches_stack_clips_of_several_sizes(videos, tmp_path):
    encode_dataset(tiny_model(), spec_for(videos, crop=None), tmp_path / "lat", progress=False, warn=lambda _: None)
    data = LatentDataset(tmp_path / "lat")
    shapes = {data.shape(i) for i in range(len(data))}
    assert len(shapes) == 3 and all(data.shape(i) == tuple(data[i]["latents"].shape) for i in range(len(data)))
    sampler = data.same_shape_batches(2, seed=3)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, collate_fn=lambda items: torch.stack([i["latents"] for i in items]))
    epoch_1, epoch_2 = [[tuple(b.shape) for b in loader] for _ in range(2)]
    assert sorted(epoch_1) == sorted(epoch_2) and len(epoch_1) == len(sampler) == 3  # a.mp4's 2 clips, b's, c's
    assert sorted(sum(list(sampler), [])) == list(range(len(data)))
    assert len(data.same_shape_batches(2, drop_last=True)) == 1
    with pytest.raises(ValueError, match="batch_size=0"):
        data.same_shape_batches(0)
