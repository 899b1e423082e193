"""A write that fails half way (a full disk) leaves no 0-byte or partial output, no temporary file or
folder, and a one-line error naming the output path and the cause."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from types import SimpleNamespace

import matplotlib.figure
import pytest
import safetensors.torch
import torch
from cli_helpers import error_line, run
from safetensors import SafetensorError

from ivvae._files import save_model_folder, write_atomically
from ivvae.eval.motion import plot_motion_histogram, read_manifest, write_manifest
from ivvae.eval.report import REPORT_FILES, write_report
from ivvae.eval.runner import EvalResults, ModelResult
from ivvae.inflate import REPORT_NAME, inflate_pretrained
from ivvae.latent_dataset import DATASET_FILE, _open_folder, _ShardWriter
from ivvae.latent_stats import write_statistics_json
from ivvae.models import ImageVAE
from ivvae.train.checkpoint import export_model

FULL = "No space left on device"


def _full_disk(write, only: str | None = None, path_arg: int = 1):
    """``write`` that writes some bytes to its path (argument ``path_arg``), then fails as a full disk
    does (only for file names containing ``only``, when given)."""
    def failing(*args, **kwargs):
        path = Path(args[path_arg])
        if only is not None and only not in path.name:
            return write(*args, **kwargs)
        path.write_bytes(b"half")
        raise OSError(errno.ENOSPC, FULL)
    return failing


@pytest.fixture
def full_text_disk(monkeypatch):
    """Path.write_text writes a few bytes, then fails with ENOSPC."""
    def write_text(self, data, *args, **kwargs):
        self.write_bytes(b"half")
        raise OSError(errno.ENOSPC, FULL)
    monkeypatch.setattr(Path, "write_text", write_text)


def _assert_clean_error(err, path) -> None:
    message = str(err.value)
    assert isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC
    assert message == f"cannot write '{path}': {FULL}", message


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*"))


# ------------------------------------------------------------------------------------------ the helper
def test_write_atomically_keeps_the_old_file_and_removes_the_temporary_one(tmp_path, full_text_disk):
    target = tmp_path / "out.json"
    target.write_bytes(b"old")
    with pytest.raises(OSError) as err:
        write_atomically(target, lambda tmp: tmp.write_text("new"))
    _assert_clean_error(err, target)
    assert _leftovers(tmp_path) == ["out.json"] and target.read_bytes() == b"old"


def test_write_atomically_words_safetensors_io_errors(tmp_path):
    def save(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise SafetensorError(f"Error while serializing: I/O error: {FULL} (os error 28)")
    with pytest.raises(OSError) as err:
        write_atomically(tmp_path / "x.safetensors", save)
    _assert_clean_error(err, tmp_path / "x.safetensors")
    assert _leftovers(tmp_path) == []


def test_write_atomically_passes_other_errors_and_gives_umask_modes(tmp_path):
    with pytest.raises(KeyError):
        write_atomically(tmp_path / "x.txt", lambda tmp: {}["missing"])
    assert _leftovers(tmp_path) == []
    path = write_atomically(tmp_path / "x.txt", lambda tmp: tmp.write_text("ok"))
    assert path.read_text() == "ok" and _leftovers(tmp_path) == ["x.txt"]
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


# ------------------------------------------------------------------------------------------ text outputs
def _results() -> EvalResults:
    model = ModelResult("vae", {"temporal_compression": 4}, {"psnr": 30.0}, 1, psnr_per_frame=[30.0] * 5)
    return EvalResults({"vae": model}, {"source": "videos/", "num_clips": 1, "frames": 5}, {})


def test_eval_report_json_and_markdown(tmp_path, full_text_disk):
    with pytest.raises(OSError) as err:
        write_report(_results(), tmp_path / "ev")
    _assert_clean_error(err, tmp_path / "ev" / "results.json")
    assert _leftovers(tmp_path / "ev") == []


def test_eval_report_plots(tmp_path, monkeypatch):
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", _full_disk(matplotlib.figure.Figure.savefig))
    with pytest.raises(OSError) as err:
        write_report(_results(), tmp_path / "ev")
    _assert_clean_error(err, tmp_path / "ev" / "ssim_by_position.png")
    assert _leftovers(tmp_path / "ev") == ["results.json", "results.md"]  # each whole
    monkeypatch.undo()
    assert sorted(write_report(_results(), tmp_path / "ev")) == sorted(REPORT_FILES)
    assert _leftovers(tmp_path / "ev") == sorted(REPORT_FILES)


def test_motion_manifest_and_plot(tmp_path, monkeypatch, full_text_disk):
    scores = {"a.mp4": 1.5, "b.mp4": 2.0}
    with pytest.raises(OSError) as err:
        write_manifest(scores, scores, tmp_path / "m.csv")
    _assert_clean_error(err, tmp_path / "m.csv")
    monkeypatch.undo()
    assert read_manifest(write_manifest(scores, scores, tmp_path / "m.csv")) == scores
    assert (tmp_path / "m.csv").read_bytes() == b"path,motion_score\r\na.mp4,1.5\r\nb.mp4,2.0\r\n"  # as csv writes it
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", _full_disk(matplotlib.figure.Figure.savefig))
    with pytest.raises(OSError) as err:
        plot_motion_histogram(scores, tmp_path / "h.svg")
    _assert_clean_error(err, tmp_path / "h.svg")
    assert _leftovers(tmp_path) == ["m.csv"]


def test_latent_stats_json(tmp_path, full_text_disk, monkeypatch):
    report = {"shift_factor": 0.1, "scaling_factor": 2.0}
    with pytest.raises(OSError) as err:
        write_statistics_json(report, tmp_path / "stats.json")
    _assert_clean_error(err, tmp_path / "stats.json")
    assert _leftovers(tmp_path) == []
    monkeypatch.undo()
    assert json.loads(write_statistics_json(report, tmp_path / "stats.json").read_text()) == report


def test_latent_dataset_index_and_shard(tmp_path, monkeypatch, full_text_disk):
    folder = tmp_path / "ds"
    with pytest.raises(OSError) as err:
        _open_folder(folder, {"format": "x"}, overwrite=False)
    _assert_clean_error(err, folder / DATASET_FILE)
    assert _leftovers(folder) == []  # no .dataset.json.tmp
    monkeypatch.undo()
    state = _open_folder(folder, {"format": "x"}, overwrite=False)

    def failing_save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise SafetensorError(f"Error while serializing: I/O error: {FULL} (os error 28)")
    monkeypatch.setattr(safetensors.torch, "save_file", failing_save)
    writer = _ShardWriter(folder, state, shard_size=1, storage_dtype=torch.float32)
    clip = SimpleNamespace(start=0, video=torch.zeros(3, 5, 8, 8), size=(8, 8), native_size=(8, 8))
    video = SimpleNamespace(path="v.mp4", fps=25.0, clips=[clip], latents=[torch.zeros(4, 2, 1, 1)])
    with pytest.raises(OSError) as err:
        writer.add([video])
    _assert_clean_error(err, folder / "shard-00000.safetensors")
    assert _leftovers(folder) == [DATASET_FILE, "skipped.jsonl"]  # no shard, no temporary file, nothing listed


# ------------------------------------------------------------------------------------------ model folders
@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("image") / "vae"
    torch.manual_seed(0)
    ImageVAE(latent_channels=4, base_channels=8).save_pretrained(folder)
    return folder


@pytest.fixture
def full_weights_disk(monkeypatch):
    monkeypatch.setattr(safetensors.torch, "save_file", _full_disk(safetensors.torch.save_file))


def test_inflate_leaves_no_folder(tmp_path, image_folder, full_weights_disk):
    out = tmp_path / "new" / "deeper" / "video"
    with pytest.raises(OSError) as err:
        inflate_pretrained(image_folder, out, mode="ktc")
    _assert_clean_error(err, out)
    assert _leftovers(tmp_path) == []  # no out folder, no .tmp-* folder, no parents made for it


def test_overwrite_keeps_the_old_model_on_failure(tmp_path, image_folder, monkeypatch):
    out = tmp_path / "video"
    inflate_pretrained(image_folder, out, mode="ktc")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(safetensors.torch, "save_file", _full_disk(safetensors.torch.save_file))
    with pytest.raises(OSError) as err:
        inflate_pretrained(image_folder, out, mode="tail", overwrite=True)
    _assert_clean_error(err, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and _leftovers(tmp_path) == sorted(["video", *before])
    monkeypatch.undo()
    inflate_pretrained(image_folder, out, mode="tail", overwrite=True)
    assert json.loads((out / REPORT_NAME).read_text())["mode"] == "tail" and _leftovers(tmp_path) == sorted(["video", *before])


def test_failed_report_leaves_no_model(tmp_path, image_folder, monkeypatch):
    out = tmp_path / "video"
    out.mkdir()  # an existing empty folder: written through a temporary folder inside it
    monkeypatch.setattr(Path, "write_text", _full_disk(Path.write_text, only=REPORT_NAME, path_arg=0))
    with pytest.raises(OSError) as err:
        inflate_pretrained(image_folder, out, mode="ktc")
    _assert_clean_error(err, out / REPORT_NAME)
    assert _leftovers(tmp_path) == ["video"] and not any(out.iterdir())


def test_save_model_folder_into_an_empty_folder(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    save_model_folder(ImageVAE(latent_channels=4, base_channels=8), out, "r.json", {"a": 1})
    assert _leftovers(out) == ["config.json", "diffusion_pytorch_model.safetensors", "r.json"]


def test_export_model_leaves_no_temporary_folder(tmp_path, full_weights_disk):
    with pytest.raises(OSError, match=FULL):
        export_model(ImageVAE(latent_channels=4, base_channels=8), tmp_path / "out")
    assert _leftovers(tmp_path) == []


def test_grow_command_reports_one_line(capsys, tmp_path, image_folder, full_weights_disk):
    code, _, err = run(capsys, "grow", image_folder, tmp_path / "wide", "--channel-multipliers", 1, 2, 4, 6)
    assert code == 2 and error_line(err).endswith(f"cannot write '{tmp_path / 'wide'}': {FULL}")
    assert _leftovers(tmp_path) == []
