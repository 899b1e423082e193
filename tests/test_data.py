"""Tests for ivvae.train.data: clip/image/synthetic-motion datasets, skipping, bucketing."""

from __future__ import annotations

import itertools
import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ivvae.io import read_video, sample_video_path, write_video
from ivvae.train.data import (
    BucketBatchSampler,
    ImageDataset,
    MovingCropDataset,
    MultiBucketDataset,
    VideoClipDataset,
    clip_collate,
    list_videos,
)

NUM_FRAMES = 24  # frames per synthetic video
H, W = 64, 96


def coded_frames(num: int, phase: int) -> np.ndarray:
    """Frame t has a uniform red level 10 * t (decodable index); green/blue carry texture."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = np.empty((num, H, W, 3), np.uint8)
    for t in range(num):
        out[t, ..., 0] = 10 * t
        out[t, ..., 1] = np.clip(128 + 90 * np.sin((xx + 4 * t + phase) / 11.0), 0, 255)
        out[t, ..., 2] = np.clip(128 + 90 * np.cos((yy + xx / 2 + phase) / 9.0), 0, 255)
    return out


def frame_indices(video: torch.Tensor) -> list[int]:
    """Recover frame numbers from the red level of a (3, T, H, W) clip in [-1, 1]."""
    red = (video[0] + 1) * 127.5
    return [int(round(v / 10)) for v in red.mean(dim=(1, 2)).tolist()]


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    (root / "sub").mkdir()
    write_video(root / "a.mp4", coded_frames(NUM_FRAMES, 0), 25, crf=10)
    write_video(root / "sub" / "b.mp4", coded_frames(NUM_FRAMES, 17), 25, crf=10)
    (root / "notes.txt").write_text("ignored: not a video extension")
    return root


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory) -> Path:
    """One good, one corrupt, one too-short video."""
    root = tmp_path_factory.mktemp("mixed")
    write_video(root / "good.mp4", coded_frames(NUM_FRAMES, 0), 25, crf=10)
    write_video(root / "short.mp4", coded_frames(3, 0), 25, crf=10)
    (root / "corrupt.mp4").write_text("this is not a video" * 50)
    return root


def small_clips(source, **kwargs) -> VideoClipDataset:
    kwargs = {"num_frames": 5, "size": 48, "crop": 32, **kwargs}
    return VideoClipDataset(source, **kwargs)


# ---------------------------------------------------------------- listing

def test_list_videos_folder_and_manifests(video_dir, tmp_path):
    found = list_videos(video_dir)
    assert found == sorted([str(video_dir / "a.mp4"), str(video_dir / "sub" / "b.mp4")])

    csv_path = video_dir / "list.csv"
    csv_path.write_text("path,caption\na.mp4,first\nsub/b.mp4,second\n")
    assert list_videos(csv_path) == [str(video_dir / "a.mp4"), str(video_dir / "sub" / "b.mp4")]

    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text(json.dumps({"path": str(video_dir / "a.mp4")}) + "\n\n")
    assert list_videos(jsonl) == [str(video_dir / "a.mp4")]
    assert list_videos([video_dir / "a.mp4"]) == [str(video_dir / "a.mp4")]

    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("file\na.mp4\n")
    with pytest.raises(ValueError, match="path"):
        list_videos(bad_csv)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no video files"):
        list_videos(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        list_videos(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.jsonl", '{"path": "a.mp4"}\n\nnot json\n', r"bad.jsonl' line 3: not valid JSON \(Expecting value\)"),
        ("num.jsonl", '{"path": 5}\n', r"num.jsonl' line 1: \"path\" must be a string"),
        ("short.csv", "caption,path\nx,a.mp4\ny\n", r"short.csv' line 3: no value in the 'path' column"),
        ("binary.txt", b"\xff\xfe\x00\x80", r"binary.txt' is not a UTF-8 text"),
    ],
)
def test_malformed_manifest_names_the_file_and_line(tmp_path, name, content, message):
    manifest = tmp_path / name
    manifest.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=message):
        list_videos(manifest)


def test_manifest_dataset_reads(video_dir, tmp_path):
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("\n".join(json.dumps({"path": str(p)}) for p in list_videos(video_dir)))
    ds = small_clips(manifest)
    assert len(ds) == 2 and ds[1]["path"] == str(video_dir / "sub" / "b.mp4")


# ---------------------------------------------------------------- video clips

def test_clip_shapes_and_range(video_dir):
    ds = small_clips(video_dir)
    assert len(ds) == 2
    item = ds[1]
    video = item["video"]
    assert video.dtype == torch.float32 and tuple(video.shape) == (3, 5, 32, 32)
    assert video.min() >= -1 and video.max() <= 1
    assert item["path"] in list_videos(video_dir)
    assert 0 <= item["start"] <= NUM_FRAMES - 5
    assert frame_indices(video) == list(range(item["start"], item["start"] + 5))


def test_determinism_and_epochs(video_dir):
    a, b = small_clips(video_dir, seed=3), small_clips(video_dir, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert x["start"] == y["start"] and torch.equal(x["video"], y["video"])
    draws = set()
    for epoch in range(6):
        a.set_epoch(epoch)
        item = a[0]
        draws.add((item["start"], item["video"][1, 0, 0, 0].item()))
    assert len(draws) > 1  # epochs change the clip / crop / flip


def test_frame_interval_range(video_dir):
    ds = small_clips(video_dir, frame_interval=(2, 4), random_flip=False)
    seen = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            idx = frame_indices(item["video"])
            steps = set(np.diff(idx).tolist())
            assert len(steps) == 1 and 2 <= steps.pop() <= 4
            assert idx[0] == item["start"]
            seen.add(idx[1] - idx[0])
    assert len(seen) > 1


def test_time_reverse(video_dir):
    ds = small_clips(video_dir, random_time_reverse=True)
    orders = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        idx = frame_indices(ds[0]["video"])
        orders.add(idx[1] > idx[0])
    assert orders == {True, False}


def test_eval_mode_centre_crop(video_dir):
    ds = small_clips(video_dir, train=False, crop=(32, 40), time_range=(0.5, 1.0))
    item = ds[0]
    # Source 96x64 -> short side 48 -> 72x48; centre crop 32x40 at (8, 16).
    ref = read_video(item["path"], start=12, num_frames=5, resize=(72, 48)).frames[:, 8:40, 16:56]
    expected = ref.permute(3, 0, 1, 2).float() / 127.5 - 1
    assert item["start"] == 12
    assert torch.allclose(item["video"], expected)
    ds.set_epoch(5)
    assert torch.equal(ds[0]["video"], item["video"])  # eval clips do not change with the epoch


def test_time_range_split_is_disjoint(video_dir):
    train = small_clips(video_dir, num_frames=4, time_range=(0.0, 0.75))
    val = small_clips(video_dir, num_frames=4, time_range=(0.75, 1.0))
    train_frames, val_frames = set(), set()
    for epoch in range(5):
        train.set_epoch(epoch)
        val.set_epoch(epoch)
        for i in range(2):
            train_frames.update(frame_indices(train[i]["video"]))
            val_frames.update(frame_indices(val[i]["video"]))
    assert max(train_frames) < 18 <= min(val_frames)


def test_bad_files_are_skipped(mixed_dir, caplog):
    ds = small_clips(mixed_dir)
    assert len(ds) == 3
    with caplog.at_level(logging.WARNING, logger="ivvae.data"):
        for _ in range(2):
            for i in range(len(ds)):
                assert ds[i]["path"].endswith("good.mp4")
    assert ds.skipped == 2
    assert set(Path(p).name for p in ds.bad_files) == {"corrupt.mp4", "short.mp4"}
    assert "too short" in ds.bad_files[str(mixed_dir / "short.mp4")]
    assert ds.num_fallbacks >= 2
    warned = [r.getMessage() for r in caplog.records if r.name == "ivvae.data"]
    assert sum("corrupt.mp4" in m for m in warned) == 1 and sum("short.mp4" in m for m in warned) == 1


def test_skipping_is_deterministic(mixed_dir):
    a, b = small_clips(mixed_dir, seed=1), small_clips(mixed_dir, seed=1)
    b[2]  # warm b's bad-file memory in a different order
    for i in (0, 1, 2):
        assert torch.equal(a[i]["video"], b[i]["video"])


def test_all_bad_raises(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"")
    (tmp_path / "y.mp4").write_text("garbage")
    ds = small_clips(tmp_path)
    with pytest.raises(RuntimeError, match="no item could be loaded"):
        ds[0]


def test_header_overcount_is_tolerated(video_dir, monkeypatch):
    import ivvae.train.data as data

    real_probe = data.probe_video

    def lying_probe(path):
        info = real_probe(path)
        return type(info)(info.path, info.num_frames + 20, info.fps, info.width, info.height)

    monkeypatch.setattr(data, "probe_video", lying_probe)
    ds = small_clips(video_dir, num_frames=20)
    for epoch in range(3):
        ds.set_epoch(epoch)
        assert frame_indices(ds[0]["video"])[-1] < NUM_FRAMES
    assert ds.skipped == 0
    assert ds._info[ds.paths[0]].num_frames == NUM_FRAMES  # learned from the short read


def test_picklable(video_dir):
    ds = small_clips(video_dir, seed=5)
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[1]["video"], ds[1]["video"])


def test_spawned_worker_matches_main_process(video_dir):
    ds = small_clips(video_dir, seed=5)
    ds.set_epoch(2)
    loader = DataLoader(ds, batch_size=2, num_workers=1, multiprocessing_context="spawn")
    batch = next(iter(loader))
    assert torch.equal(batch["video"], torch.stack([ds[0]["video"], ds[1]["video"]]))


# ---------------------------------------------------------------- images

def test_image_dataset_skimage():
    ds = ImageDataset("skimage", size=64, crop=48, train=True, seed=0)
    names = {it.path for it in ds.items}
    assert {"astronaut", "chelsea", "coffee", "rocket"} <= names
    item = ds[0]
    assert tuple(item["video"].shape) == (3, 1, 48, 48)
    assert item["video"].min() >= -1 and item["video"].max() <= 1
    assert item["path"].startswith("skimage:")
    eval_ds = ImageDataset("skimage", size=64, crop=48, train=False)
    assert torch.equal(eval_ds[2]["video"], eval_ds[2]["video"])


def test_image_dataset_folder_and_video_frames(tmp_path, video_dir):
    rng = np.random.default_rng(0)
    for name in ("p.png", "q.jpg"):
        Image.fromarray(rng.integers(0, 255, (40, 70, 3), dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    ds = ImageDataset([tmp_path, video_dir], size=32, crop=32, video_frames_every=8,
                      time_range=(0.0, 0.5))
    kinds = [it.kind for it in ds.items]
    assert kinds.count("file") == 3 and kinds.count("video") == 2 * 2  # frames 0 and 8 of each video
    items = [ds[i] for i in range(len(ds))]
    assert all(tuple(it["video"].shape) == (3, 1, 32, 32) for it in items)
    assert ds.skipped == 1 and "broken.png" in next(iter(ds.bad_files))
    video_items = [it for it in items if "#" in it["path"]]
    for it in video_items:
        assert frame_indices(it["video"])[0] == int(it["path"].rsplit("#", 1)[1])


def test_video_clips_reuse_cached_frames(video_dir, monkeypatch):
    import ivvae.train.data as data

    reads = []
    real_read = data.read_video
    monkeypatch.setattr(data, "read_video", lambda *a, **k: reads.append(k["start"]) or real_read(*a, **k))
    ds = small_clips(video_dir / "a.mp4", num_frames=4, frame_interval=(1, 3), random_time_reverse=True, seed=3)
    clips = []
    for epoch in range(12):
        ds.set_epoch(epoch)
        clips.append(ds[0]["video"])
    for clip in clips:  # cached or decoded, every clip has the frames its plan asks for
        idx = frame_indices(clip)
        steps = {b - a for a, b in itertools.pairwise(idx)}
        assert len(steps) == 1 and abs(steps.pop()) in (1, 2, 3)
    assert len(reads) < len(clips)  # later clips come (at least partly) from frames already decoded
    uncached = small_clips(video_dir / "a.mp4", num_frames=4, frame_cache_mb=0)
    reads.clear()
    uncached[0], uncached[0]
    assert len(reads) == 2


def test_image_dataset_caches_decoded_video_frames(video_dir, monkeypatch):
    ds = ImageDataset(video_dir, size=32, crop=32, video_frames_every=8, time_range=(0.0, 0.5))
    decodes = []
    decode = ds._decode_frame
    monkeypatch.setattr(ds, "_decode_frame", lambda it, size: decodes.append(it.frame) or decode(it, size))
    first = [ds[i]["video"] for i in range(len(ds))]
    second = [ds[i]["video"] for i in range(len(ds))]
    assert len(decodes) == len(ds.items)  # each frame decoded once
    assert all(frame_indices(a)[0] == frame_indices(b)[0] for a, b in zip(first, second, strict=True))
    first[0].add_(1)  # items do not share memory with the cache
    assert frame_indices(ds[0]["video"])[0] == frame_indices(second[0])[0]

    uncached = ImageDataset(video_dir, size=32, crop=32, video_frames_every=8, time_range=(0.0, 0.5), frame_cache_mb=0)
    decodes.clear()
    monkeypatch.setattr(uncached, "_decode_frame", lambda it, size: decodes.append(it.frame) or decode(it, size))
    for _ in range(2):
        uncached[0]
    assert len(decodes) == 2


def test_image_dataset_caches_resized_stills(monkeypatch):
    """A still is read and resized once; later items crop the cached copy and equal uncached ones."""
    ds = ImageDataset("skimage", size=64, crop=48, train=False)
    reads = []
    read = ds._read_still
    monkeypatch.setattr(ds, "_read_still", lambda it: reads.append(it.path) or read(it))
    first = ds[0]["video"]
    first.add_(1)  # items do not share memory with the cache
    second = ds[0]["video"]
    assert reads == [ds.items[0].path]
    uncached = ImageDataset("skimage", size=64, crop=48, train=False, frame_cache_mb=0)
    assert torch.equal(second, uncached[0]["video"])


def test_preloaded_frame_caches_serve_every_item_without_decoding(video_dir, monkeypatch):
    """fill_frame_cache decodes each video once, sequentially; afterwards items need no decoder
    and are exactly what an uncached dataset gives."""
    import ivvae.train.data as data

    clips = small_clips(video_dir, num_frames=4, frame_interval=(1, 3), time_range=(0.0, 0.8), seed=5)
    stills = ImageDataset(video_dir, size=32, crop=32, video_frames_every=3, time_range=(0.0, 0.5), seed=5)
    both = MultiBucketDataset([(clips, 1.0), (stills, 1.0)])
    usable = int(NUM_FRAMES * 0.8)
    assert both.fill_frame_caches() == 2 * usable + len(stills.items)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache was filled")

    monkeypatch.setattr(data, "read_video", no_decoding)
    monkeypatch.setattr(stills, "_decode_frame", no_decoding)
    epochs = [0, 1, 2]
    cached = []
    for epoch in epochs:
        both.set_epoch(epoch)
        cached.append([both[i]["video"] for i in range(len(both))])
    monkeypatch.undo()
    fresh = MultiBucketDataset([(small_clips(video_dir, num_frames=4, frame_interval=(1, 3), time_range=(0.0, 0.8),
                                             seed=5, frame_cache_mb=0), 1.0),
                                (ImageDataset(video_dir, size=32, crop=32, video_frames_every=3, time_range=(0.0, 0.5),
                                              seed=5, frame_cache_mb=0), 1.0)])
    for epoch, items in zip(epochs, cached, strict=True):
        fresh.set_epoch(epoch)
        for i, video in enumerate(items):
            assert torch.equal(video, fresh[i]["video"]), (epoch, i)


def test_preload_stops_at_the_cache_budget(video_dir):
    one_frame = 72 * 48 * 3  # a test frame (96x64) resized to a 48-px short side
    clips = small_clips(video_dir, size=48, crop=32, frame_cache_mb=(NUM_FRAMES + 1) * one_frame / 2**20)
    assert clips.fill_frame_cache() == NUM_FRAMES  # the second video no longer fits: left to lazy decoding
    assert small_clips(video_dir, frame_cache_mb=0).fill_frame_cache() == 0


# ---------------------------------------------------------------- synthetic motion

def test_moving_crop_has_motion():
    ds = MovingCropDataset("skimage", num_frames=6, crop=32, max_speed_px=4, zoom_range=(1.0, 1.1), seed=0)
    clip = ds[0]["video"]
    assert tuple(clip.shape) == (3, 6, 32, 32)
    assert clip.min() >= -1 and clip.max() <= 1
    assert (clip[:, 0] - clip[:, -1]).abs().mean() > 0.02
    assert torch.equal(ds[0]["video"], clip)
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["video"], clip)


def test_moving_crop_translation_is_consistent():
    # Pure translation: each frame equals the previous one shifted by the same sub-pixel step,
    # so frame differences stay roughly constant along the clip.
    ds = MovingCropDataset("skimage", num_frames=5, crop=48, max_speed_px=3, zoom_range=(1.0, 1.0), seed=2,
                           random_flip=False)
    clip = ds[1]["video"]
    diffs = [(clip[:, t + 1] - clip[:, t]).abs().mean().item() for t in range(4)]
    assert min(diffs) > 0.005
    assert max(diffs) < 3 * min(diffs)


# ---------------------------------------------------------------- buckets

def test_bucket_sampler_groups_and_covers():
    bucket_of = [0] * 10 + [1] * 7
    sampler = BucketBatchSampler(bucket_of, batch_size=3, shuffle=True, seed=4)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4 + 3
    for batch in batches:
        assert len({bucket_of[i] for i in batch}) == 1
    assert sorted(i for b in batches for i in b) == list(range(17))
    assert batches == list(BucketBatchSampler(bucket_of, batch_size=3, shuffle=True, seed=4))
    sampler.set_epoch(1)
    assert list(sampler) != batches
    dropped = list(BucketBatchSampler(bucket_of, batch_size=3, drop_last=True))
    assert all(len(b) == 3 for b in dropped) and len(dropped) == 3 + 2


def test_bucket_sampler_resume():
    bucket_of = [0] * 11 + [1] * 9 + [2] * 5
    sampler = BucketBatchSampler(bucket_of, batch_size=2, shuffle=True, seed=7)
    sampler.set_epoch(3)
    full = list(sampler)
    it = iter(sampler)
    consumed = [next(it) for _ in range(4)]
    state = sampler.state_dict(batches_consumed=4)
    assert consumed == full[:4]

    resumed = BucketBatchSampler(bucket_of, batch_size=2, shuffle=True, seed=7)
    resumed.load_state_dict(state)
    resumed.set_epoch(3)  # the training loop re-announces the epoch; the position is kept
    assert len(resumed) == len(full) - 4
    assert list(resumed) == full[4:]
    assert list(resumed) == full  # the next pass starts the epoch from the beginning
    with pytest.raises(ValueError, match="seed"):
        BucketBatchSampler(bucket_of, 2, seed=8).load_state_dict(state)


def test_bucket_sampler_weights():
    bucket_of = [0] * 4 + [1] * 20
    sampler = BucketBatchSampler(bucket_of, batch_size=2, weights=[3.0, 1.0], num_samples=40)
    counts = np.bincount([bucket_of[i] for b in sampler for i in b])
    assert counts.tolist() == [30, 10]


def test_multi_bucket_loader(video_dir):
    clips = small_clips(video_dir, num_frames=5, crop=32)
    images = ImageDataset("skimage", size=48, crop=40)
    multi = MultiBucketDataset([(clips, 1.0), (images, 1.0)])
    assert len(multi) == 2 + len(images)
    sampler = multi.batch_sampler(2, seed=0, drop_last=False)
    multi.set_epoch(1)
    loader = DataLoader(multi, batch_sampler=sampler, collate_fn=clip_collate, num_workers=0)
    shapes = set()
    for batch in loader:
        assert len(set(batch["bucket"].tolist())) == 1
        shapes.add(tuple(batch["video"].shape[1:]))
    assert shapes == {(3, 5, 32, 32), (3, 1, 40, 40)}
    assert clips.epoch == images.epoch == 1
    with pytest.raises(ValueError, match="shapes"):
        clip_collate([clips[0], images[0]])


def test_real_sample_video_clip():
    ds = VideoClipDataset([sample_video_path("carphone")], num_frames=9, frame_interval=2, size=64, crop=(48, 64),
                          train=False)
    item = ds[0]
    assert tuple(item["video"].shape) == (3, 9, 48, 64)


@pytest.mark.parametrize("tag_epoch", [True, False])
def test_persistent_workers_draw_each_epoch_from_epoch_tagged_keys(tag_epoch):
    """A worker that outlives an epoch never sees set_epoch; (epoch, index) keys carry the epoch
    to it, so its items equal the in-process ones of that epoch (untagged, it repeats epoch 0)."""
    images = ImageDataset("skimage", size=64, crop=32, seed=1)
    dataset = MultiBucketDataset([(images, 1.0)])
    sampler = BucketBatchSampler(dataset.bucket_of, batch_size=2, seed=0, weights=[1.0], num_samples=4,
                                 tag_epoch=tag_epoch)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=1, persistent_workers=True, collate_fn=clip_collate)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)  # reaches this process only, not the worker
        for batch, keys in zip(loader, list(sampler), strict=True):
            indices = [k[1] if tag_epoch else k for k in keys]
            expected = torch.stack([dataset[i]["video"] for i in indices])
            if tag_epoch or epoch == 0:
                assert torch.equal(batch["video"], expected)
            else:
                assert not torch.equal(batch["video"], expected)  # the stale epoch the tags avoid
