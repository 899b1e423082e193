"""Truncated Matroska files are refused like truncated MP4s: Matroska states the duration as a tag
(or the segment's duration), not on the stream, and a cut file still decodes cleanly up to the cut."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from ivvae.io import VideoReadError, _duration_tag, iter_video, read_video, write_video


def _frames(t: int = 40, h: int = 48, w: int = 64) -> torch.Tensor:
    """Moving gradients (every frame a different picture, so the bytes spread over the file)."""
    k, y, x = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
    rgb = np.stack([128 + 100 * np.sin((x + 3 * k) / 9), 128 + 100 * np.cos((y - 2 * k) / 7), 128 + 60 * np.sin((x + y + 5 * k) / 11)], -1)
    return torch.from_numpy(np.clip(rgb, 0, 255).astype(np.uint8))


def _cut(path, fraction: float = 0.5):
    """The first ``fraction`` of the file's bytes, beside it."""
    data = path.read_bytes()
    cut = path.with_name(f"cut_{path.name}")
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


@pytest.fixture
def mkv(tmp_path):
    path = tmp_path / "clip.mkv"
    write_video(path, _frames(), 25)
    return path


def test_intact_mkv_reads_fully(mkv):
    assert tuple(read_video(mkv).frames.shape) == (40, 48, 64, 3)
    assert sum(len(piece) for piece in iter_video(mkv, piece_frames=16)) == 40


def test_half_mkv_is_refused_as_truncated(mkv):
    cut = _cut(mkv)
    with pytest.raises(VideoReadError, match="truncated") as err:
        read_video(cut)
    message = str(err.value)
    assert "\n" not in message and str(cut) in message and "lasts 1.60s" in message
    decodable = err.value.total_frames
    assert f"{decodable} frames decode: read them with --frames {decodable} (num_frames={decodable})" in message
    assert read_video(cut, num_frames=decodable).frames.shape[0] == decodable  # the hint works
    with pytest.raises(VideoReadError, match="truncated"):
        list(iter_video(cut))
    assert tuple(read_video(cut, num_frames=5).frames.shape) == (5, 48, 64, 3)  # the intact part still reads


def test_mkv_starting_late_is_not_called_truncated(tmp_path):
    # The DURATION tag is the end time from 0: a stream starting at 1 s lasts 1.6 s, not 2.6 s.
    path = tmp_path / "late.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i, array in enumerate(_frames().numpy()):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = 25 + i, Fraction(1, 25)
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    assert len(read_video(path).frames) == 40
    with pytest.raises(VideoReadError, match="truncated"):
        read_video(_cut(path))


@pytest.mark.parametrize("tags, seconds", [
    ({"DURATION": "00:00:01.600000000"}, 1.6),
    ({"ENCODER": "x", "DURATION-eng": "01:02:03.5"}, 3723.5),
    ({"DURATION": "soon"}, None),
    ({}, None),
])
def test_duration_tag(tags, seconds):
    assert _duration_tag(tags) == (pytest.approx(seconds) if seconds is not None else None)
