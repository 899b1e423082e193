"""Regressions from the video I/O review: streams whose header lacks a frame size, and the hint a
truncated file's error gives (the other fixes are tested in test_io.py and test_cli.py)."""

from __future__ import annotations

import av
import numpy as np
import pytest

from ivvae.io import VideoReadError, probe_video, read_video


def _animated_webp(path, width: int = 24, height: int = 16, frames: int = 3):
    """An animated WebP as Pillow writes it: FFmpeg's webp_pipe demuxer finds no frame size in its header."""
    image = pytest.importorskip("PIL.Image")
    pictures = [image.fromarray(np.full((height, width, 3), 60 * k, np.uint8)) for k in range(frames)]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=40, loop=0)
    return path


def test_a_stream_without_a_header_size_is_sized_by_its_frames_or_refused(tmp_path):
    """probe_video reported 0x0 here, and the CLI then failed with an unrelated message (from the memory estimate)."""
    path = _animated_webp(tmp_path / "anim.webp")
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.width == 0  # the case under test
    try:
        info = probe_video(path)
    except VideoReadError as error:  # FFmpeg builds without an animated-WebP decoder
        assert "FFmpeg cannot decode this stream (codec webp)" in str(error) and "anim.webp" in str(error)
    else:  # a decoder that reads it: the size is the decoded frames'
        assert (info.width, info.height) == (24, 16)


def _truncated_mp4(tmp_path):
    """40 frames of 32x32 at 25 fps, index first, cut where decoding still ends cleanly."""
    full = tmp_path / "full.mp4"
    with av.open(str(full), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(40):  # noise: every frame costs bytes, so a cut loses frames
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rng.integers(0, 256, (32, 32, 3), np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.8)])
    return cut


def test_a_truncated_file_says_how_many_frames_decode_and_how_to_read_them(tmp_path):
    """The message gave only the times ("decodable frames end at 0.92s but the header says 1.60s")."""
    path = _truncated_mp4(tmp_path)
    with pytest.raises(VideoReadError, match="truncated") as error:
        read_video(path)
    decodable = error.value.total_frames
    assert 0 < decodable < 40
    assert f"{decodable} frames decode: read them with --frames {decodable}" in str(error.value)
    assert read_video(path, num_frames=decodable).frames.shape[0] == decodable
