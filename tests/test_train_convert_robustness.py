"""Training and conversion against hostile or unlucky input: a config naming any Python callable as
the model, an --export-only that would replace a later export, the released layout at another Z or
width, and a disk that fills up while a converted model is written."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
import torch
import yaml
from cli_helpers import error_line, run

from ivvae import hub
from ivvae.models import IVVAE, CausalVAE, ImageVAE
from ivvae.train import checkpoint as ckpt
from ivvae.train.build import build_model_from_config
from ivvae.train.config import ConfigError, ModelConfig, load_config
from ivvae.train.trainer import run_training

TINY = {"latent_channels": 4, "base_channels": 8, "encoder_blocks": 1, "decoder_blocks": 1}


def tiny_run_config(path: Path, **model) -> Path:
    """A two-step run of a tiny IV-VAE with a checkpoint after each step and an export at the end."""
    cfg = {
        "seed": 0,
        "model": model or {"class": "ivvae.models.IVVAE", "config": dict(TINY)},
        "data": {"sources": ["sample:carphone"], "num_workers": 0,
                 "buckets": [{"num_frames": 5, "size": 32, "crop": 32, "batch_size": 1}], "validation": {"enabled": False}},
        "loss": {"lpips": {"enabled": False}},
        "train": {"max_steps": 2, "num_threads": 1},
        "logging": {"every": 1, "val_every": 0, "progress_bar": False, "tensorboard": False},
        "checkpoint": {"every": 1, "keep_last": 0},
        "export": {"at_end": True},
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def state_of(folder: Path) -> dict[str, torch.Tensor]:
    return hub.load_model(folder).state_dict()


# ============================================================================ model.class: the family only


@pytest.mark.parametrize("spelling, config", [
    ("subprocess.run", {"args": "touch PWNED", "shell": True}),
    ("os.system", {"command": "touch PWNED"}),
    ("torch.nn.Linear", {"in_features": 3, "out_features": 3}),
    ("ivvae.models.ivvae.LatentDistribution", {}),
    ("builtins.eval", {}),
])
def test_a_model_class_outside_the_family_is_refused_before_anything_is_called(tmp_path, monkeypatch, capsys, spelling, config):
    # before: `class: subprocess.run` ran the shell command, `torch.nn.Linear` ended in a traceback
    monkeypatch.chdir(tmp_path)
    path = tiny_run_config(tmp_path / "evil.yaml", **{"class": spelling, "config": config})
    with pytest.raises(ConfigError, match=rf"model\.class: unknown class '{spelling}'; give one of the IV-VAE family: "
                                          r"ivvae\.models\.IVVAE, ivvae\.models\.ImageVAE, ivvae\.models\.CausalVAE"):
        load_config(path)
    code, _, err = run(capsys, "train", path, "--output-dir", tmp_path / "run")
    assert code == 2 and "model.class" in error_line(err) and spelling in err
    # a config built in Python skips load_config's validation: the builder refuses it too
    with pytest.raises(ConfigError, match="unknown class"):
        build_model_from_config(ModelConfig(class_name=spelling, config=config))
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("spelling, cls", [
    ("IVVAE", IVVAE), ("ivvae.models.IVVAE", IVVAE), ("ivvae.models.ivvae.IVVAE", IVVAE),
    ("ImageVAE", ImageVAE), ("ivvae.models.ImageVAE", ImageVAE), ("ivvae.models.image_vae.ImageVAE", ImageVAE),
    ("CausalVAE", CausalVAE), ("ivvae.models.causal_vae.CausalVAE", CausalVAE),
])
def test_the_model_family_is_accepted_by_short_name_or_dotted_path(tmp_path, spelling, cls):
    cfg = load_config(tiny_run_config(tmp_path / "ok.yaml", **{"class": spelling, "config": dict(TINY)}))
    assert type(build_model_from_config(cfg.model)) is cls


def test_every_shipped_config_names_a_family_class():
    for path in sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml")):
        load_config(path)  # raises on a class outside the family


# ============================================================================ --export-only keeps a later export


def test_export_only_of_an_older_checkpoint_never_silently_replaces_a_later_export(tmp_path, capsys):
    # before: the run's export (step 2) was replaced by step 1's weights without a word
    path, run_dir = tiny_run_config(tmp_path / "tiny.yaml"), tmp_path / "run"
    assert run_training(path, output_dir=run_dir)["steps"] == 2
    export, older = run_dir / "export", run_dir / "checkpoints" / "step_00000001"
    assert ckpt.exported_step(export) == 2
    final = state_of(export)
    base = ["train", path, "--output-dir", run_dir, "--export-only"]

    code, _, err = run(capsys, *base, "--resume", older)
    line = error_line(err)
    assert code == 2 and f"'{export}' holds the export of step 2" in line and "(step 1)" in line
    assert "--set export.dir=NAME" in line and "--overwrite" in line
    assert all(torch.equal(final[k], v) for k, v in state_of(export).items())
    # an export written before the step was recorded: the run's summary.json tells its step
    (export / ckpt.EXPORT_RECORD).unlink()
    assert run(capsys, *base, "--resume", older)[0] == 2 and ckpt.exported_step(export) is None

    # elsewhere, or over it when asked; a later checkpoint may always replace an earlier export
    assert run(capsys, *base, "--resume", older, "--set", "export.dir=step1")[0] == 0
    assert ckpt.exported_step(run_dir / "step1") == 1
    assert run(capsys, *base, "--resume", older, "--overwrite")[0] == 0 and ckpt.exported_step(export) == 1
    assert run(capsys, *base)[0] == 0 and ckpt.exported_step(export) == 2
    assert all(torch.equal(final[k], v) for k, v in state_of(export).items())


# ============================================================================ convert: any Z and width


def test_a_model_folder_exported_at_any_z_and_width_converts_back_to_identical_tensors(tmp_path, capsys):
    # before: `ivvae convert x.pth DIR` refused what `ivvae convert DIR x.pth` wrote: "no released variant has Z=16, C=8"
    for latent in (4, 16):
        torch.manual_seed(latent)
        folder, pth, back = tmp_path / f"z{latent}", tmp_path / f"z{latent}.pth", tmp_path / f"z{latent}_back"
        IVVAE(latent_channels=latent, base_channels=8).save_pretrained(folder)
        assert run(capsys, "convert", folder, pth)[0] == 0
        code, out, err = run(capsys, "convert", pth, back)
        assert code == 0, err
        assert f"latent channels {latent}, base width 8)" in out and f"(from {pth}.json)" in out
        (tmp_path / f"z{latent}.pth.json").unlink()  # without the normalisation file: nobody measured it
        code, out, err = run(capsys, "convert", pth, tmp_path / f"z{latent}_bare")
        assert code == 0 and "scaling_factor 1, shift_factor 0 (not a released variant, none recorded" in out
        model = hub.load_model(back)
        assert (model.config.scaling_factor, model.config.shift_factor) == (1.0, 0.0)
        original = state_of(folder)
        assert original.keys() == model.state_dict().keys()
        assert all(torch.equal(original[k], v) for k, v in model.state_dict().items())


def test_a_released_variant_keeps_its_latent_normalisation(tmp_path, capsys, monkeypatch):
    import ivvae.convert

    monkeypatch.setattr(ivvae.convert, "RELEASED", {"ivvae_z4_dim8": dict(latent_channels=4, base_channels=8, scaling_factor=0.5,
                                                                          shift_factor=0.25)})
    torch.save(ivvae.convert.to_official_state_dict(IVVAE(latent_channels=4, base_channels=8)), tmp_path / "x.pth")
    code, out, _ = run(capsys, "convert", tmp_path / "x.pth", tmp_path / "out")
    assert code == 0 and "not a released variant" not in out
    assert (hub.load_model(tmp_path / "out").config.scaling_factor, hub.load_model(tmp_path / "out").config.shift_factor) == (0.5, 0.25)


def test_the_layout_is_still_checked_tensor_by_tensor_at_any_z_and_width(tmp_path, capsys):
    from ivvae.convert import to_official_state_dict

    state = to_official_state_dict(IVVAE(latent_channels=16, base_channels=8))
    broken = {
        "missing": {k: v for k, v in state.items() if k != "decoder.head.2.conv_2d.weight"},
        "unexpected": {**state, "extra.weight": torch.zeros(1)},
        "shape mismatch": {**state, "decoder.head.2.conv_2d.bias": torch.zeros(5)},
        "odd Z": {**state, "conv1.conv_2d.weight": torch.zeros(3, 32, 1, 1)},
    }
    for label, tensors in broken.items():
        torch.save(tensors, tmp_path / "bad.pth")
        code, _, err = run(capsys, "convert", tmp_path / "bad.pth", tmp_path / "out")
        line = error_line(err)
        assert code == 2 and "Z=" in line and (label in line or "not a valid IV-VAE" in line), line
        assert not (tmp_path / "out").exists()


# ============================================================================ convert: a full disk


def _no_space(*args, **kwargs):
    raise OSError(28, "No space left on device")


def test_a_full_disk_while_exporting_a_pth_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    IVVAE(latent_channels=4, base_channels=8).save_pretrained(tmp_path / "model")
    target = tmp_path / "out" / "x.pth"
    monkeypatch.setattr(torch, "save", _no_space)
    code, _, err = run(capsys, "convert", tmp_path / "model", target)
    assert code == 2 and error_line(err) == f"ivvae convert: error: cannot write '{target}': No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no x.pth, no temporary file, no new folder


def test_torchs_own_write_failure_names_the_cause(tmp_path, capsys):
    """torch.save reports a failed write as RuntimeError('[enforce fail at inline_container.cc...]'); a file size
    limit makes the operating system refuse the write as a full disk would."""
    IVVAE(latent_channels=4, base_channels=8).save_pretrained(tmp_path / "model")
    (tmp_path / "out").mkdir()
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, limits[1]))  # Python ignores SIGXFSZ: writes fail with EFBIG
    try:
        code, _, err = run(capsys, "convert", tmp_path / "model", tmp_path / "out" / "x.pth")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
    assert code == 2 and error_line(err).endswith(f"cannot write '{tmp_path / 'out' / 'x.pth'}': File too large")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("failure", ["oserror", "safetensors"])
def test_a_full_disk_while_converting_to_a_folder_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch, failure):
    import safetensors.torch
    from safetensors import SafetensorError

    from ivvae.convert import to_official_state_dict

    torch.save(to_official_state_dict(IVVAE(latent_channels=4, base_channels=8)), tmp_path / "x.pth")

    def safetensors_full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", _no_space if failure == "oserror" else safetensors_full)
    target = tmp_path / "models" / "converted"
    code, _, err = run(capsys, "convert", tmp_path / "x.pth", target)
    assert code == 2 and error_line(err) == f"ivvae convert: error: cannot write '{target}': No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pth"]
    # an existing folder keeps its files as they were
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "convert", tmp_path / "x.pth", tmp_path / "mine", "--overwrite")
    assert code == 2 and "No space left on device" in error_line(err)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
