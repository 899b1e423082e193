"""Motion score (MotionHD, paper Sec. 4.1) on synthetic videos, and the MotionHD selection."""

from __future__ import annotations

import math
import sys
import types

import av
import cv2
import numpy as np
import pytest
import torch

from ivvae.eval.lpips import WeightsNotFoundError
from ivvae.eval.motion import (
    MissingDependencyError,
    build_motionhd,
    check_plot_path,
    histogram_targets,
    iter_frames,
    motion_score,
    motion_scores,
    plot_motion_histogram,
    read_manifest,
    write_manifest,
)


def _write_translating_video(path, width: int, height: int, frames: int, dx: int, dy: int, seed: int = 0) -> None:
    """A textured pattern moving by (dx, dy) pixels per frame, encoded with libx264 (near lossless)."""
    rng = np.random.default_rng(seed)
    pad = (abs(dx) + abs(dy)) * frames + 8
    canvas = rng.integers(0, 256, (height + 2 * pad, width + 2 * pad, 3)).astype(np.float32)
    canvas = cv2.GaussianBlur(canvas, (0, 0), 2.0)
    canvas = np.clip((canvas - canvas.mean()) / canvas.std() * 50 + 128, 0, 255).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast"}
        for t in range(frames):
            x0, y0 = pad + dx * t, pad + dy * t
            img = np.ascontiguousarray(canvas[y0 : y0 + height, x0 : x0 + width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("motion")
    out = {}
    # 384x216 is half of 768x432: a shift of s px/frame becomes 2*s px at 768x432, 6*s per pair
    for name, dx, dy in [("right2", 2, 0), ("diag", -3, 2), ("static", 0, 0)]:
        p = d / f"{name}.mp4"
        _write_translating_video(p, 384, 216, 13, dx, dy, seed=len(name))
        out[name] = p
    return out


def test_decoding_resizes_and_subsamples(videos):
    frames = list(iter_frames(videos["right2"], frame_interval=3))
    assert len(frames) == 5  # frames 0, 3, 6, 9, 12
    assert frames[0].shape == (432, 768, 3) and frames[0].dtype == np.uint8
    assert len(list(iter_frames(videos["right2"], size=(64, 32), max_frames=2))) == 2


@pytest.mark.parametrize("name, dx, dy", [("right2", 2, 0), ("diag", -3, 2)])
def test_translation_score_matches_true_shift(videos, name, dx, dy):
    true = 2 * 3 * math.hypot(dx, dy)  # scale 2 to 768x432, interval 3
    score = motion_score(videos[name])
    assert score == pytest.approx(true, rel=0.05)
    # fewer pairs, same motion
    assert motion_score(videos[name], max_pairs=1) == pytest.approx(true, rel=0.05)
    # at the native size the shift is half as large
    assert motion_score(videos[name], size=(384, 216), max_pairs=2) == pytest.approx(true / 2, rel=0.08)


def test_static_video_scores_zero(videos):
    assert motion_score(videos["static"]) < 0.1


def test_errors(videos, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError):
        motion_score(tmp_path / "nope.mp4")
    with pytest.raises(ValueError, match="too short"):
        motion_score(videos["static"], frame_interval=20)
    with pytest.raises(ValueError, match="method"):
        motion_score(videos["static"], method="lk")
    scores = motion_scores([videos["static"], tmp_path / "nope.mp4"], max_pairs=1)
    assert list(scores) == [str(videos["static"])]


def test_unreadable_video_is_worded_like_every_other_command(tmp_path):
    junk = tmp_path / "rand.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=r"cannot read video '.*rand.mp4': not a video file or unknown format \(Invalid data"):
        motion_score(junk)
    reasons = []
    assert motion_scores([junk], on_skip=lambda p, r: reasons.append(r)) == {}
    assert reasons[0].startswith("not a video file or unknown format") and "Errno" not in reasons[0]


@pytest.fixture
def fake_torchvision(monkeypatch):
    """A stand-in torchvision whose raft_large is a tiny network: the RAFT file checks without torchvision."""
    optical_flow = types.ModuleType("torchvision.models.optical_flow")
    optical_flow.raft_large = lambda weights=None, progress=False: torch.nn.Linear(2, 2)
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.models", types.ModuleType("torchvision.models"))
    monkeypatch.setitem(sys.modules, "torchvision.models.optical_flow", optical_flow)


def test_raft_needs_torchvision_before_weights(videos, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if not installed
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("IVVAE_WEIGHTS_DIR", raising=False)
    # no weights either: the package is named first, so nobody fetches weights they cannot use
    with pytest.raises(MissingDependencyError, match="--method raft .* needs torchvision") as ei:
        motion_score(videos["static"], method="raft")
    assert isinstance(ei.value, ValueError) and isinstance(ei.value, ImportError)  # a one-line CLI error; still an ImportError
    # checked once, before any video: an error, not every video skipped
    with pytest.raises(MissingDependencyError):
        motion_scores([videos["static"]], method="raft")


def test_raft_weight_errors_name_the_file_and_both_options(videos, tmp_path, monkeypatch, fake_torchvision):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("IVVAE_WEIGHTS_DIR", raising=False)
    with pytest.raises(WeightsNotFoundError, match=r"--raft-weights .*raft_weights= in Python"):
        motion_score(videos["static"], method="raft")
    wrong = tmp_path / "wrong.pth"
    torch.save({"a": torch.zeros(3)}, wrong)
    with pytest.raises(ValueError, match=r"wrong.pth' is not the raft_large_C_T_SKHT_V2-ff5fadd5.pth state dict: 2 missing keys"):
        motion_score(videos["static"], method="raft", raft_weights=wrong)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.pth' is empty \(0 bytes\)"):
        motion_score(videos["static"], method="raft", raft_weights=empty)


def test_build_motionhd_flattens_a_skewed_pool():
    rng = np.random.default_rng(0)
    # a pool dominated by slow videos (exponential), plus some out-of-range ones
    vals = np.concatenate([rng.exponential(4.0, 5000), [-1.0, 100.0, float("nan")]])
    scores = {f"v{i:05d}.mp4": float(s) for i, s in enumerate(vals)}
    low, high, bins, n = 0.0, 16.0, 8, 400
    chosen = build_motionhd(scores, n=n, low=low, high=high, bins=bins, seed=0)
    assert len(chosen) == n and len(set(chosen)) == n
    sel = np.array([scores[p] for p in chosen])
    assert sel.min() >= low and sel.max() <= high
    hist, _ = np.histogram(sel, bins=bins, range=(low, high))
    pool_hist, _ = np.histogram(vals[np.isfinite(vals)], bins=bins, range=(low, high))
    assert pool_hist[0] > 10 * pool_hist[-1]  # the pool is skewed ...
    # ... the selection is as flat as the pool allows: bins with enough videos get the same count,
    # the sparse tail bins contribute everything they have
    assert np.all((hist == pool_hist) | (hist >= hist.max() - 1))
    full = hist[pool_hist >= hist.max()]
    assert full.max() - full.min() <= 1
    in_range = vals[(vals >= low) & (vals <= high)]
    random_hist, _ = np.histogram(rng.choice(in_range, n, replace=False), bins=bins, range=(low, high))
    assert hist.std() < 0.5 * random_hist.std()  # much flatter than a random draw
    # deterministic for a seed, different for another
    assert chosen == build_motionhd(scores, n=n, low=low, high=high, bins=bins, seed=0)
    assert chosen != build_motionhd(scores, n=n, low=low, high=high, bins=bins, seed=1)
    assert sel.tolist() == sorted(sel.tolist())


def test_build_motionhd_follows_a_reference_and_small_pools():
    rng = np.random.default_rng(1)
    scores = {f"p{i}": float(s) for i, s in enumerate(rng.uniform(0, 10, 3000))}
    reference = np.concatenate([rng.uniform(0, 5, 300), rng.uniform(5, 10, 100)])  # 3:1
    chosen = build_motionhd(scores, n=200, low=0, high=10, bins=2, reference_scores=reference)
    hist, _ = np.histogram([scores[p] for p in chosen], bins=2, range=(0, 10))
    assert hist.tolist() == [150, 50]
    with pytest.warns(UserWarning, match="only 3"):
        few = build_motionhd({"a": 1.0, "b": 2.0, "c": 3.0, "d": 50.0}, n=10, low=0, high=10)
    assert few == ["a", "b", "c"]
    messages = []  # a front-end takes the message instead of a Python warning
    assert build_motionhd({"a": 1.0}, n=2, low=0, high=10, warn=messages.append) == ["a"]
    assert messages == ["only 1 videos have a motion score in [0, 10]; asked for 2, choosing all of them"]
    # water filling: capacity-limited bins, remainder shared by the others
    assert histogram_targets([1, 100, 100], [1, 1, 1], 31).tolist() == [1, 15, 15]
    assert histogram_targets([0, 5, 5], [1, 1, 1], 20).tolist() == [0, 5, 5]
    assert histogram_targets([10, 10], [3, 1], 8).tolist() == [6, 2]


def test_manifest_and_plot(tmp_path):
    rng = np.random.default_rng(2)
    scores = {f"/data/v{i}.mp4": float(s) for i, s in enumerate(rng.gamma(2.0, 3.0, 300))}
    chosen = build_motionhd(scores, n=60, low=0, high=20, bins=10)
    csv_path = write_manifest(chosen, scores, tmp_path / "out" / "motionhd.csv")
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "path,motion_score" and len(lines) == 61
    back = read_manifest(csv_path)
    assert list(back) == chosen and all(back[p] == scores[p] for p in chosen)
    png = plot_motion_histogram(scores, tmp_path / "hist.png", chosen=chosen)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    img = cv2.imread(str(png))
    assert img.shape[:2] == (400, 700)
    plot_motion_histogram(list(scores.values()), tmp_path / "plain.png")
    assert (tmp_path / "plain.png").stat().st_size > 5000


def test_read_manifest_names_a_file_that_is_not_one(tmp_path):
    from ivvae.eval import motion

    (tmp_path / "video.mp4").write_bytes(bytes(range(200, 256)) * 4)
    with pytest.raises(ValueError, match="video.mp4' is not a motion manifest"):
        motion.read_manifest(tmp_path / "video.mp4")
    (tmp_path / "bad.csv").write_text("path,motion_score\na.mp4,fast\n")
    with pytest.raises(ValueError, match="bad.csv' is not a motion manifest"):
        motion.read_manifest(tmp_path / "bad.csv")


def test_read_manifest_checks_scores(tmp_path):
    from ivvae.eval import motion

    def manifest(name: str, rows: str):
        path = tmp_path / name
        path.write_text("path,motion_score\n" + rows)
        return path

    messages = []
    pool = manifest("pool.csv", "a,nan\nb,1.0\nb,1.0\nc,inf\nd,2.5\n")
    assert motion.read_manifest(pool, warn=messages.append) == {"b": 1.0, "d": 2.5}
    assert messages == [f"'{pool}': left out 2 row(s) whose motion score is NaN or infinite",
                        f"'{pool}': left out 1 repeated row(s) (same video, same score)"]
    with pytest.warns(UserWarning) as record:
        motion.read_manifest(pool)
    assert [str(w.message) for w in record] == messages
    with pytest.raises(ValueError, match=r"neg.csv' line 3: motion score -5.0 of 'c' is negative"):
        motion.read_manifest(manifest("neg.csv", "b,1\nc,-5\n"))
    with pytest.raises(ValueError, match=r"dup.csv' line 3: 'a' is listed again with another score \(2.0; 1.0 on line 2\)"):
        motion.read_manifest(manifest("dup.csv", "a,1\na,2\n"))


@pytest.mark.parametrize("name, ok", [("h.png", True), ("h.PDF", True), ("h.svg", True), ("h.txt", False), ("hist", False)])
def test_plot_path_is_checked_before_any_work(tmp_path, name, ok):
    if ok:
        check_plot_path(tmp_path / name)
        return
    with pytest.raises(ValueError, match=r"--plot '.*': ('.txt' is not an image format matplotlib writes|no extension to tell the image "
                       r"format); end the name in .png, .pdf or .svg \(also possible: .*jpg"):
        check_plot_path(tmp_path / name, "--plot")
    with pytest.raises(ValueError, match="image format"):
        plot_motion_histogram([1.0, 2.0], tmp_path / name)
    assert not (tmp_path / name).exists()


def test_motion_score_command_takes_sample_names(tmp_path, capsys):
    """`ivvae motion-score sample:carphone` (as eval and encode-dataset take it; was 'video not found')."""
    from ivvae.eval import commands
    from ivvae.io import sample_video_path

    out = tmp_path / "scores.csv"
    argv = ["motion-score", "sample:carphone", "--max-pairs", "1", "--size", "96x64", "--no-progress", "--out", str(out)]
    assert commands.main(argv) == 0
    assert out.read_text().splitlines()[1].startswith(sample_video_path("carphone") + ",")
    assert commands.main(["motion-score", "sample:nope", "--out", str(tmp_path / "x.csv")]) != 0
    assert "unknown sample video 'nope'" in capsys.readouterr().err
