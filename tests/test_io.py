"""Tests for ivvae.io: round trips, frame-exact reading, resizing, and clean errors."""

from __future__ import annotations

import fractions
import os
import stat

import av
import numpy as np
import pytest
import torch

import ivvae.io as vio
from ivvae.io import (
    SAMPLE_VIDEOS,
    VideoReadError,
    VideoWriteError,
    VideoWriter,
    frames_to_tensor,
    iter_video,
    probe_video,
    read_video,
    sample_video_path,
    tensor_to_frames,
    write_video,
)


def smooth_frames(t: int, h: int, w: int) -> np.ndarray:
    """Moving smooth gradients: compress well, so round-trip errors stay small."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for k in range(t):
        r = 128 + 100 * np.sin((xx + 3 * k) / 20.0)
        g = 128 + 100 * np.cos((yy - 2 * k) / 16.0)
        b = 128 + 60 * np.sin((xx + yy + 5 * k) / 24.0)
        frames.append(np.stack([r, g, b], -1))
    return np.clip(np.stack(frames), 0, 255).round().astype(np.uint8)


def mae(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


@pytest.fixture(scope="module")
def bikes() -> str:
    return sample_video_path("bikes")


@pytest.fixture(scope="module")
def bikes_full(bikes) -> torch.Tensor:
    return read_video(bikes).frames


# ---------------------------------------------------------------- writing / round trips

@pytest.mark.parametrize("crf,tol", [(0, 2.5), (18, 3.5)])  # yuv420p chroma loss ~1.5
def test_round_trip(tmp_path, crf, tol):
    frames = smooth_frames(8, 48, 64)
    path = tmp_path / "rt.mp4"
    write_video(path, torch.from_numpy(frames), 25, crf=crf)
    video = read_video(path)
    assert video.frames.dtype == torch.uint8
    assert tuple(video.frames.shape) == (8, 48, 64, 3)
    assert video.fps == pytest.approx(25.0)
    assert mae(video.frames, frames) < tol
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height) == (8, 64, 48)
    assert info.fps == pytest.approx(25.0)


def test_odd_size_is_written_exactly(tmp_path, caplog):
    """An odd size used to be padded to even (66x48 for 65x47) against `--help`'s promise."""
    frames = smooth_frames(4, 33, 47)
    path = tmp_path / "odd.mp4"
    write_video(path, frames, 24, crf=0)
    out = read_video(path).frames
    assert tuple(out.shape) == (4, 33, 47, 3)
    assert mae(out, frames) < 1.0  # 4:4:4: no chroma subsampling
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv444p"
    assert "4:4:4 H.264 to keep their size exact" in caplog.text
    write_video(tmp_path / "even.mp4", smooth_frames(2, 32, 48), 24)
    with av.open(str(tmp_path / "even.mp4")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"


@pytest.mark.parametrize("height,width", [(48, 64), (33, 47)])  # yuv420p and yuv444p
def test_written_video_is_tagged_with_its_colour_matrix_and_reads_back(tmp_path, height, width):
    """Output was converted with swscale's BT.601 and left untagged: players that assume BT.709 for HD shifted its colours."""
    frames = np.zeros((3, height, width, 3), np.uint8)
    frames[:] = (200, 40, 90)
    path = tmp_path / "flat.mp4"
    write_video(path, frames, 25, crf=0)
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range) == (6, 6, 6, 1)  # SMPTE 170M, limited range
        first = next(c.decode(video=0))
        assert abs(int(bytes(first.planes[0])[0]) - 96) <= 1  # luma of (200, 40, 90) by the BT.601 matrix it is tagged with
    assert np.abs(read_video(path).frames.numpy().astype(int) - frames).max() <= 2


def test_a_frame_size_change_mid_stream_is_named(tmp_path):
    """Joined recordings (e.g. concatenated MPEG-TS): numpy's "all input arrays must have the same shape" before."""
    path = tmp_path / "joined.ts"
    with open(path, "wb") as joined:
        for i, (h, w) in enumerate([(32, 32), (24, 48)]):
            part = tmp_path / f"part{i}.ts"
            with av.open(str(part), "w", format="mpegts") as out:
                stream = out.add_stream("libx264", rate=25)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                for frame in smooth_frames(5, h, w):
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                out.mux(stream.encode(None))
            joined.write(part.read_bytes())
    for read in (lambda **kw: read_video(path, **kw).frames, lambda **kw: torch.cat(list(iter_video(path, **kw)))):
        with pytest.raises(VideoReadError, match=r"frame size changes from 32x32 to 48x24 at frame 5: .*--resize 32x32"):
            read()
        assert read(resize=(32, 32)).shape == (10, 32, 32, 3)


def test_a_raw_h264_stream_is_read_at_its_own_rate(tmp_path):
    """A bare .h264 stream has no container timing: FFmpeg's default 25 fps used to be taken for its rate."""
    path = tmp_path / "raw.h264"
    with av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for frame in smooth_frames(6, 32, 32):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    assert probe_video(path).fps == pytest.approx(30.0) and read_video(path).fps == pytest.approx(30.0)


def test_video_files_follow_the_umask_and_failed_writes_remove_the_folders_they_made(tmp_path):
    old = os.umask(0o077)
    try:
        write_video(tmp_path / "a.mp4", smooth_frames(2, 16, 16), 25)
        write_video(tmp_path / "a.png", smooth_frames(1, 16, 16), 25)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.mp4").st_mode) == stat.S_IMODE(os.stat(tmp_path / "a.png").st_mode) == 0o600
    (tmp_path / "kept").mkdir()
    writer = VideoWriter(tmp_path / "kept" / "new" / "dir" / "v.mp4", 25)
    writer.write(smooth_frames(1, 16, 16))
    writer.abort()
    assert list((tmp_path / "kept").iterdir()) == []  # new/dir used to stay behind


def test_fractional_fps(tmp_path):
    path = tmp_path / "ntsc.mp4"
    write_video(path, smooth_frames(6, 32, 32), 30000 / 1001)
    with av.open(str(path)) as c:
        assert c.streams.video[0].average_rate == fractions.Fraction(30000, 1001)
    assert probe_video(path).fps == pytest.approx(30000 / 1001, abs=1e-9)
    assert read_video(path).fps == pytest.approx(30000 / 1001, abs=1e-9)


def test_overwrite_refused_and_allowed(tmp_path):
    path = tmp_path / "out.mp4"
    write_video(path, smooth_frames(3, 32, 32), 25)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="out.mp4"):
        write_video(path, smooth_frames(5, 32, 32), 25)
    assert path.read_bytes() == before
    write_video(path, smooth_frames(5, 32, 32), 25, overwrite=True)
    assert probe_video(path).num_frames == 5
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]  # no temporary files left behind


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def broken_encode(writer, frames):
        with open(writer._tmp, "wb") as f:
            f.write(b"half a video")
        raise av.error.ExternalError(1, "simulated encoder crash")

    monkeypatch.setattr(vio.VideoWriter, "_encode", broken_encode)
    with pytest.raises(VideoWriteError, match="crash.mp4"):
        write_video(tmp_path / "crash.mp4", smooth_frames(2, 16, 16), 25)
    assert os.listdir(tmp_path) == []


def test_one_frame_writes_a_lossless_png_of_any_size(tmp_path):
    """A ``.png`` name writes one frame losslessly at its own (odd) size; the name is taken
    literally (no image2 ``%d`` pattern); several frames are refused and nothing is written."""
    frame = np.random.default_rng(0).integers(0, 256, (1, 21, 35, 3), dtype=np.uint8)
    path = tmp_path / "frame %d.png"
    write_video(path, torch.from_numpy(frame), 25)
    assert np.array_equal(read_video(path).frames.numpy(), frame)
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left behind
    with pytest.raises(VideoWriteError, match=r"a \.png image holds one frame, this video has 2"):
        write_video(tmp_path / "two.png", np.concatenate([frame, frame]), 25)
    assert not (tmp_path / "two.png").exists()


@pytest.mark.parametrize("bad", [np.zeros((2, 16, 16, 3), np.float32), np.zeros((16, 16, 3), np.uint8),
                                 np.zeros((0, 16, 16, 3), np.uint8)])
def test_write_rejects_bad_frames(tmp_path, bad):
    with pytest.raises(VideoWriteError):
        write_video(tmp_path / "bad.mp4", bad, 25)
    assert os.listdir(tmp_path) == []


def test_tensor_conversions():
    frames = torch.from_numpy(smooth_frames(3, 8, 10))
    video = frames_to_tensor(frames)
    assert video.dtype == torch.float32 and tuple(video.shape) == (3, 3, 8, 10)
    assert video.min() >= -1 and video.max() <= 1
    assert torch.equal(tensor_to_frames(video), frames)
    assert torch.equal(tensor_to_frames(video + 0.003), frames)  # rounds to nearest
    extreme = torch.tensor([-5.0, 5.0]).view(1, 1, 1, 2).expand(3, 1, 1, 2)
    assert tensor_to_frames(extreme).flatten().tolist() == [0, 0, 0, 255, 255, 255]


# ---------------------------------------------------------------- frame-exact reading

def test_probe_samples():
    assert set(SAMPLE_VIDEOS) == {"bigbuckbunny", "bikes", "carphone"}
    info = probe_video(sample_video_path("bikes"))
    assert (info.num_frames, info.width, info.height, info.fps) == (250, 640, 272, 25.0)
    info = probe_video(sample_video_path("carphone"))
    assert (info.width, info.height) == (176, 144)
    with pytest.raises(ValueError, match="bikes"):
        sample_video_path("nope")


@pytest.mark.parametrize("start", [0, 1, 29, 30, 31, 76, 130, 137, 186, 187, 241, 247])
def test_start_is_frame_exact(bikes, bikes_full, start):
    # 130+ goes through the keyframe-seek path (SEEK_MIN_FRAMES); bikes has keyframes at
    # 0, 30, 76, 137, 187, 242 and B-frames.
    out = read_video(bikes, start=start, num_frames=3).frames
    assert torch.equal(out, bikes_full[start:start + 3])


def test_seek_path_matches_sequential(bikes, bikes_full, monkeypatch):
    monkeypatch.setattr(vio, "SEEK_MIN_FRAMES", 1)
    for start in (1, 29, 31, 75, 77, 136, 138, 200, 243):
        out = read_video(bikes, start=start, num_frames=2, stride=3).frames
        assert torch.equal(out, bikes_full[start:start + 6:3]), start


def test_stride_and_read_to_end(bikes, bikes_full):
    assert torch.equal(read_video(bikes, start=10, num_frames=5, stride=3).frames, bikes_full[10:25:3])
    assert torch.equal(read_video(bikes, start=240).frames, bikes_full[240:])
    assert torch.equal(read_video(bikes, start=200, stride=7).frames, bikes_full[200::7])


def test_resize(bikes):
    out = read_video(bikes, num_frames=2, resize=128).frames
    assert tuple(out.shape) == (2, 128, 302, 3)  # 640 * 128 / 272 = 301.2 -> even 302
    out = read_video(bikes, num_frames=1, resize=(100, 60)).frames
    assert tuple(out.shape) == (1, 60, 100, 3)
    out = read_video(sample_video_path("carphone"), num_frames=1, resize=72).frames
    assert tuple(out.shape) == (1, 72, 88, 3)


def test_invalid_arguments(bikes):
    for kwargs in ({"start": -1}, {"stride": 0}, {"num_frames": 0}, {"resize": 0}, {"resize": (0, 10)}):
        with pytest.raises(ValueError) as err:
            read_video(bikes, **kwargs)
        assert type(err.value) is ValueError  # a usage error, not a "bad file" VideoReadError


# ---------------------------------------------------------------- errors

def _assert_clean(err: pytest.ExceptionInfo, name: str) -> None:
    assert type(err.value) is VideoReadError
    assert not isinstance(err.value, av.FFmpegError)
    assert name in str(err.value) and "\n" not in str(err.value)


def test_missing_and_empty(tmp_path):
    with pytest.raises(VideoReadError, match="not found") as err:
        read_video(tmp_path / "missing.mp4")
    _assert_clean(err, "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoReadError, match="empty") as err:
        read_video(tmp_path / "empty.mp4")
    _assert_clean(err, "empty.mp4")
    with pytest.raises(VideoReadError, match="empty"):
        probe_video(tmp_path / "empty.mp4")


def test_text_file_renamed(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 20)
    with pytest.raises(VideoReadError, match="not a video") as err:
        read_video(path)
    _assert_clean(err, "notes.mp4")


def test_truncated_real_file(tmp_path, bikes):
    data = open(bikes, "rb").read()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.3)])
    with pytest.raises(VideoReadError, match="truncated") as err:
        read_video(path)
    _assert_clean(err, "cut.mp4")
    with pytest.raises(VideoReadError):
        probe_video(path)


def test_truncated_faststart_file(tmp_path):
    # Index (moov) first: the container opens, decoding then runs out of data.
    full = tmp_path / "fast.mp4"
    with av.open(str(full), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for arr in smooth_frames(40, 48, 64):
            c.mux(s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")))
        c.mux(s.encode(None))
    data = full.read_bytes()
    path = tmp_path / "fastcut.mp4"
    path.write_bytes(data[: int(len(data) * 0.5)])  # cut inside a packet: decoding error
    with pytest.raises(VideoReadError, match="truncated") as err:
        read_video(path)
    _assert_clean(err, "fastcut.mp4")
    path.write_bytes(data[: int(len(data) * 0.8)])  # decodes cleanly, ends early
    with pytest.raises(VideoReadError, match="truncated") as err:
        read_video(path)
    _assert_clean(err, "fastcut.mp4")
    with pytest.raises(VideoReadError, match="available") as err:
        read_video(path, num_frames=40)
    _assert_clean(err, "fastcut.mp4")
    assert 0 < err.value.total_frames < 40
    assert tuple(read_video(path, num_frames=5).frames.shape) == (5, 48, 64, 3)  # the intact part reads


def test_no_video_stream(tmp_path):
    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        c.mux(s.encode(frame))
        c.mux(s.encode(None))
    with pytest.raises(VideoReadError, match="no video stream") as err:
        read_video(path)
    _assert_clean(err, "audio.mp4")


def test_start_beyond_end_and_too_few(bikes):
    with pytest.raises(VideoReadError, match="beyond the end") as err:
        read_video(bikes, start=250)
    _assert_clean(err, "bikes.mp4")
    assert err.value.total_frames == 250
    with pytest.raises(VideoReadError, match=r"250 decodable frames \(10 available") as err:
        read_video(bikes, start=240, num_frames=20)
    _assert_clean(err, "bikes.mp4")


def test_edit_list_file(tmp_path, bikes, bikes_full, monkeypatch):
    # Like `ffmpeg -ss 1.4 -c copy`: the cut starts at keyframe 30, but frame 35 is time zero,
    # so the mp4 gets an edit list and frames 30-34 are decoded yet never shown.
    path = tmp_path / "cut_copy.mp4"
    with av.open(bikes) as inp, av.open(str(path), "w") as out:
        src = inp.streams.video[0]
        dst = out.add_stream_from_template(src)
        tick = int(1 / (src.average_rate * src.time_base))  # pts per frame
        for packet in inp.demux(src):
            if packet.size and packet.dts is not None and packet.dts >= 30 * tick - 2 * tick:
                packet.pts -= 35 * tick
                packet.dts -= 35 * tick
                packet.stream = dst
                out.mux(packet)
    assert probe_video(path).num_frames == 215  # not the 220 samples the header counts
    full = read_video(path).frames  # no false "truncated" error
    assert torch.equal(full, bikes_full[35:250])
    monkeypatch.setattr(vio, "SEEK_MIN_FRAMES", 1)
    for start in (3, 40, 41, 42, 100, 150, 206):
        assert torch.equal(read_video(path, start=start, num_frames=2).frames, full[start:start + 2]), start


def test_iter_decoded_frames_streams_what_read_video_reads(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, torch.from_numpy(smooth_frames(8, 48, 64)), 25)
    streamed = np.stack([frame.to_ndarray(format="rgb24") for frame in vio.iter_decoded_frames(path)])
    assert np.array_equal(streamed, read_video(path).frames.numpy())
    (tmp_path / "bytes.mp4").write_bytes(bytes(range(256)) * 16)
    with pytest.raises(VideoReadError, match="not a video file"):
        next(vio.iter_decoded_frames(tmp_path / "bytes.mp4"))


def _write_rotated(path, degrees: int, frames: np.ndarray) -> None:
    """An MP4 whose display matrix turns its stored frames by ``degrees`` counter-clockwise, as
    phone cameras store portrait video (landscape pictures, a 90 or 270 degree matrix)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "0"}
        stream.set_display_rotation(degrees)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


@pytest.mark.parametrize(("degrees", "corner"), [(90, (1, 0)), (-90, (0, 1)), (180, (1, 1)), (0, (0, 0))])
def test_rotated_videos_are_read_upright(tmp_path, degrees, corner):
    """Frames come out as players show them (FFmpeg's autorotate): a bright block stored at the
    top-left ends in the corner the rotation takes it to; probe and resize use the upright size."""
    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write a display matrix (VideoStream.set_display_rotation)")
    stored = np.full((3, 32, 48, 3), 16, np.uint8)
    stored[:, :8, :8] = 235
    path = tmp_path / f"rotated_{degrees}.mp4"
    _write_rotated(path, degrees, stored)
    upright = (48, 32) if degrees in (90, -90) else (32, 48)
    frames = read_video(path).frames.numpy()
    assert frames.shape == (3, *upright, 3)
    rows, cols = np.nonzero(frames[0, :, :, 1] > 128)
    bottom, right = corner
    assert (rows.min() >= upright[0] - 8 if bottom else rows.max() < 8) and (cols.min() >= upright[1] - 8 if right else cols.max() < 8)
    info = probe_video(path)
    assert (info.height, info.width) == upright
    assert read_video(path, resize=16).frames.shape[1:3] == ((24, 16) if degrees in (90, -90) else (16, 24))
    assert read_video(path, resize=(8, 12)).frames.shape[1:3] == (12, 8)  # (width, height) of the upright picture


# ---------------------------------------------------------------- videos in pieces

@pytest.mark.parametrize("selection", [{}, {"start": 130, "num_frames": 21, "stride": 2}, {"num_frames": 9, "resize": 64}])
def test_iter_video_gives_read_videos_frames_in_pieces(bikes, selection):
    whole = read_video(bikes, **selection).frames
    pieces = list(iter_video(bikes, piece_frames=8, **selection))
    assert all(p.shape[0] == 8 for p in pieces[:-1]) and 1 <= pieces[-1].shape[0] <= 8
    assert torch.equal(torch.cat(pieces), whole)


def test_iter_video_says_when_the_video_ends_early(tmp_path):
    path = tmp_path / "short.mp4"
    write_video(path, smooth_frames(10, 16, 16), 25)
    pieces = iter_video(path, num_frames=12, piece_frames=4)
    assert [p.shape[0] for p in (next(pieces), next(pieces))] == [4, 4]
    with pytest.raises(VideoReadError, match="requested 12 frames from frame 0 with stride 1, but the video has 10"):
        next(pieces)  # before the last (short) piece: the caller never mistakes it for the end
    with pytest.raises(ValueError, match="piece_frames"):
        next(iter_video(path, piece_frames=0))


def test_video_writer_writes_pieces_as_one_video(tmp_path):
    frames = smooth_frames(9, 30, 40)
    write_video(tmp_path / "whole.mp4", frames, 25, crf=0)  # lossless: the decoded frames cannot depend on encoder choices
    with VideoWriter(tmp_path / "pieces.mp4", 25, crf=0) as writer:
        for piece in (frames[:1], frames[1:5], frames[5:]):
            writer.write(torch.from_numpy(piece))
    assert writer.frames_written == 9
    assert torch.equal(read_video(tmp_path / "pieces.mp4").frames, read_video(tmp_path / "whole.mp4").frames)


def test_video_writer_leaves_nothing_when_the_block_fails(tmp_path):
    frames = smooth_frames(4, 16, 16)
    with pytest.raises(RuntimeError, match="interrupted"):
        with VideoWriter(tmp_path / "out.mp4", 25) as writer:
            writer.write(frames)
            raise RuntimeError("interrupted")
    with pytest.raises(VideoWriteError, match="frames of 24x16 after frames of 16x16"):
        with VideoWriter(tmp_path / "out.mp4", 25) as writer:
            writer.write(frames)
            writer.write(smooth_frames(2, 16, 24))
    with pytest.raises(VideoWriteError, match="no frames were written"):
        with VideoWriter(tmp_path / "out.mp4", 25):
            pass
    assert os.listdir(tmp_path) == []
