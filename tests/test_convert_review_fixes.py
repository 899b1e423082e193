"""`ivvae convert` and model folders after review: the latent normalisation survives a round trip
through the authors' .pth, import or export is told from the source, training checkpoints in the wild
are read or named, weights are read by their format rather than their name, and the public
save_pretrained writes what the CLI writers write."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from cli_helpers import error_line, run
from safetensors.torch import save_file

import ivvae.convert
from ivvae import hub
from ivvae.convert import CheckpointError, convert_official_checkpoint, load_official_state_dict, to_official_state_dict
from ivvae.grow import GrowthError, grow
from ivvae.models import IVVAE, ImageVAE


@pytest.fixture(scope="module")
def released_state() -> dict[str, torch.Tensor]:
    """A tiny state dict of the released layout (Z=4, C=8)."""
    torch.manual_seed(0)
    return to_official_state_dict(IVVAE(latent_channels=4, base_channels=8))


# ============================================================================ 1: the latent normalisation


def test_export_and_reconvert_keep_a_fine_tuned_models_normalisation(tmp_path, capsys):
    """The .pth holds weights only: a re-measured scaling/shift used to be replaced by the released variant's."""
    torch.manual_seed(0)
    model = IVVAE(latent_channels=4, base_channels=8)
    model.register_to_config(scaling_factor=0.8123, shift_factor=0.05)
    model.save_pretrained(tmp_path / "ft")
    code, out, _ = run(capsys, "convert", tmp_path / "ft", tmp_path / "ft.pth")
    assert code == 0 and "scaling_factor 0.8123, shift_factor 0.05): not in the .pth" in out and "ft.pth.json" in out
    assert json.loads((tmp_path / "ft.pth.json").read_text())["scaling_factor"] == 0.8123
    code, out, _ = run(capsys, "convert", tmp_path / "ft.pth", tmp_path / "back")
    config = json.loads((tmp_path / "back" / "config.json").read_text())
    assert code == 0 and (config["scaling_factor"], config["shift_factor"]) == (0.8123, 0.05)
    assert f"scaling_factor 0.8123, shift_factor 0.05 (from {tmp_path / 'ft.pth.json'})" in out
    code, out, _ = run(capsys, "convert", tmp_path / "ft.pth", tmp_path / "given", "--scaling-factor", 2, "--shift-factor", -1)
    config = json.loads((tmp_path / "given" / "config.json").read_text())
    assert code == 0 and (config["scaling_factor"], config["shift_factor"]) == (2.0, -1.0) and "(as given)" in out
    code, out, _ = run(capsys, "convert", tmp_path / "ft.pth", tmp_path / "half", "--scaling-factor", 2)
    config = json.loads((tmp_path / "half" / "config.json").read_text())
    assert code == 0 and (config["scaling_factor"], config["shift_factor"]) == (2.0, 0.05)
    assert "(scaling_factor as given, the other from" in out
    code, _, err = run(capsys, "convert", tmp_path / "ft", tmp_path / "ft.pth", "--overwrite", "--scaling-factor", 2)
    assert code == 2 and "for reading a checkpoint" in err


def test_an_existing_normalisation_file_is_not_overwritten_without_overwrite(tmp_path, capsys):
    IVVAE(latent_channels=4, base_channels=8).save_pretrained(tmp_path / "ft")
    (tmp_path / "other.pth.json").write_text("{}")
    code, _, err = run(capsys, "convert", tmp_path / "ft", tmp_path / "other.pth")
    assert code != 0 and "other.pth.json" in error_line(err) and "--overwrite" in err
    assert not (tmp_path / "other.pth").exists() and (tmp_path / "other.pth.json").read_text() == "{}"  # nothing half-written
    assert run(capsys, "convert", tmp_path / "ft", tmp_path / "other.pth", "--overwrite")[0] == 0
    assert json.loads((tmp_path / "other.pth.json").read_text())["scaling_factor"] == 1.0


def test_a_normalisation_file_of_another_export_is_refused(tmp_path, capsys, released_state):
    torch.save(released_state, tmp_path / "x.pth")
    (tmp_path / "x.pth.json").write_text(json.dumps({"scaling_factor": 0.7, "shift_factor": 0.1, "latent_channels": 16,
                                                     "base_channels": 8}))
    code, _, err = run(capsys, "convert", tmp_path / "x.pth", tmp_path / "out")
    assert code == 2 and "records latent_channels 16 but the checkpoint has 4" in error_line(err)
    code, out, _ = run(capsys, "convert", tmp_path / "x.pth", tmp_path / "out", "--scaling-factor", 0.5, "--shift-factor", 0)
    assert code == 0 and "(as given)" in out  # both given: the file is not needed


def test_the_normalisation_written_is_printed_at_released_sizes_too(tmp_path, capsys, monkeypatch, released_state):
    monkeypatch.setattr(ivvae.convert, "RELEASED", {"ivvae_z4_dim8": dict(latent_channels=4, base_channels=8, scaling_factor=0.5,
                                                                          shift_factor=0.25)})
    torch.save(released_state, tmp_path / "x.pth")
    code, out, _ = run(capsys, "convert", tmp_path / "x.pth", tmp_path / "out")
    assert code == 0 and "latent normalisation: scaling_factor 0.5, shift_factor 0.25 (the released variant's)" in out


def test_the_library_checks_the_normalisation_it_is_given(tmp_path, released_state):
    torch.save(released_state, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="scaling_factor=0"):
        convert_official_checkpoint(tmp_path / "x.pth", tmp_path / "out", scaling_factor=0)
    assert not (tmp_path / "out").exists()


# ============================================================================ 2: import or export, by the source


def test_convert_tells_import_from_export_by_the_source(tmp_path, capsys, released_state):
    torch.save(released_state, tmp_path / "z4.pth")
    code, _, err = run(capsys, "convert", tmp_path / "z4.pth", tmp_path / "out.pth")  # was: "a file, not a model folder"
    assert code == 2 and "named like a weights file" in err and "give a folder name" in err
    code, _, err = run(capsys, "convert", tmp_path / "typo.pth", tmp_path / "out")  # was: "model ... not found: no folder"
    assert code != 0 and f"no such checkpoint or model folder: '{tmp_path / 'typo.pth'}'" in error_line(err)
    (tmp_path / "downloads").mkdir()
    torch.save(released_state, tmp_path / "downloads" / "ivvae_z4.pth")
    code, _, err = run(capsys, "convert", tmp_path / "downloads", tmp_path / "out")  # was: blamed on OUT's name
    assert code == 2 and "is a folder, not a checkpoint" in err and "ivvae_z4.pth" in err


# ============================================================================ 3, 4: checkpoints in the wild


@pytest.mark.parametrize("name, content", [
    ("ema.pth", lambda sd: {"ema": sd, "epoch": 3, "step": torch.tensor(5)}),
    ("train.pth", lambda sd: {"state_dict": sd, "optimizer": {"state": {0: {"exp_avg": torch.ones(3)}}, "param_groups": []}}),
    ("step.pth", lambda sd: {**sd, "step": 5}),
    ("prefixed.pth", lambda sd: {f"first_stage_model.{k}": v for k, v in sd.items()}),
    ("wrapped_and_prefixed.pth", lambda sd: {"model": {f"module.autoencoder.{k}": v for k, v in sd.items()}}),
])
def test_checkpoints_in_the_wild_are_read(tmp_path, released_state, name, content):
    torch.save(content(released_state), tmp_path / name)
    assert load_official_state_dict(tmp_path / name).keys() == released_state.keys()


def test_how_a_checkpoint_was_unwrapped_is_said(tmp_path, capsys, caplog, released_state):
    torch.save({"ema": {f"vae.{k}": v for k, v in released_state.items()}, "step": 5}, tmp_path / "x.pth")
    assert run(capsys, "convert", tmp_path / "x.pth", tmp_path / "out")[0] == 0
    assert "reading the weights under 'ema'" in caplog.text and "starts with 'vae.'" in caplog.text


def test_several_dicts_of_weights_are_named_and_one_is_chosen_by_key(tmp_path, capsys, released_state):
    ema = {k: v + 1 for k, v in released_state.items()}
    torch.save({"model": released_state, "ema": ema, "epoch": 3}, tmp_path / "train.pth")
    code, _, err = run(capsys, "convert", tmp_path / "train.pth", tmp_path / "out")
    assert code == 2 and "several dicts of weights: 'model', 'ema'; pass --key NAME" in error_line(err)
    assert run(capsys, "convert", tmp_path / "train.pth", tmp_path / "out", "--key", "ema")[0] == 0
    loaded = to_official_state_dict(hub.load_model(tmp_path / "out"))
    assert all(torch.equal(loaded[k], v) for k, v in ema.items())
    code, _, err = run(capsys, "convert", tmp_path / "train.pth", tmp_path / "out2", "--key", "emma")
    assert code == 2 and "no dict of tensors under 'emma'; it has: model, ema" in error_line(err)


def test_a_checkpoint_without_weights_names_its_entries(tmp_path):
    torch.save({"optimizer": {"lr": 1.0}, "epoch": 3}, tmp_path / "no_weights.pth")
    with pytest.raises(CheckpointError, match=r"top-level entries are: 'optimizer' \(dict\), 'epoch' \(int\)"):
        load_official_state_dict(tmp_path / "no_weights.pth")


def test_safetensors_are_read_by_their_header_never_by_torch_load(tmp_path, monkeypatch, released_state):
    for name in ("named_like.pth", "x.safetensors", "no_suffix"):
        save_file({k: v.contiguous() for k, v in released_state.items()}, tmp_path / name)
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("torch.load read a safetensors file"))
    for name in ("named_like.pth", "x.safetensors", "no_suffix"):
        assert load_official_state_dict(tmp_path / name).keys() == released_state.keys(), name


def test_a_file_named_safetensors_without_the_header_says_so(tmp_path, released_state):
    torch.save(released_state, tmp_path / "x.safetensors")  # a torch.save zip, misnamed
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_official_state_dict(tmp_path / "x.safetensors")


def test_a_file_that_no_torch_save_wrote_is_named_without_the_unpicklers_internals(tmp_path, capsys):
    (tmp_path / "page.pth").write_text("<html>404 Not Found</html>\n")  # a failed download saved under the name
    code, _, err = run(capsys, "convert", tmp_path / "page.pth", tmp_path / "out")
    assert code == 2 and "not a PyTorch state dict (neither a torch.save zip archive, a pickle nor safetensors)" in error_line(err)


# ============================================================================ 5: legacy and junk .bin weights


def test_a_model_folder_with_legacy_format_bin_weights_loads(tmp_path):
    """torch.save(..., _use_new_zipfile_serialization=False) files were refused as "truncated" (mmap needs the zip format)."""
    torch.manual_seed(0)
    model = IVVAE(latent_channels=4, base_channels=8)
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "m" / "diffusion_pytorch_model.bin", _use_new_zipfile_serialization=False)
    loaded = hub.load_model(tmp_path / "m")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True))
    (tmp_path / "m" / "diffusion_pytorch_model.bin").write_bytes(b"not a torch file at all")
    with pytest.raises(hub.ModelLoadError, match="is not a torch weights file") as error:
        hub.load_model(tmp_path / "m")
    assert "weights_only" not in str(error.value) and "torch.save your checkpoint" not in str(error.value)  # torch's advice


# ============================================================================ 6: the public save_pretrained


def test_save_pretrained_follows_the_umask_and_records_no_local_path(tmp_path):
    """The public save_pretrained (used by with_latent_statistics(...).save_pretrained and the EMA export)
    wrote 0600 weights and the writer's folder as _name_or_path."""
    torch.manual_seed(0)
    ImageVAE(latent_channels=4, base_channels=8).save_pretrained(tmp_path / "a")
    loaded = ImageVAE.from_pretrained(tmp_path / "a")
    old = os.umask(0o022)
    try:
        loaded.save_pretrained(tmp_path / "b")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "b" / "diffusion_pytorch_model.safetensors").st_mode) == 0o644
    assert "_name_or_path" not in json.loads((tmp_path / "b" / "config.json").read_text())


# ============================================================================ 7: grow's new_weight_scale


@pytest.mark.parametrize("scale", [0, 0.0, -1e-2])
def test_grow_refuses_a_scale_that_is_not_positive(scale):
    """At 0 the new channels get no gradient and never learn (the docstring said > 0; 0 was accepted)."""
    with torch.device("meta"):
        model = ImageVAE(latent_channels=4, base_channels=8)
    with pytest.raises(GrowthError, match=r"new_weight_scale must be a finite number > 0, got"):
        grow(model, base_channels=12, new_weight_scale=scale)


# ============================================================================ overwriting a model folder


def test_overwriting_a_model_folder_removes_the_old_models_files(tmp_path, capsys, released_state):
    torch.manual_seed(0)
    folder = tmp_path / "model"
    IVVAE(latent_channels=4, base_channels=8).save_pretrained(folder)
    for stale in ("diffusion_pytorch_model.bin", "inflation_report.json", "latent_stats.json"):
        (folder / stale).write_text("{}")
    (folder / "notes.txt").write_text("mine")
    torch.save(released_state, tmp_path / "z4.pth")
    assert run(capsys, "convert", tmp_path / "z4.pth", folder, "--overwrite")[0] == 0
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors", "notes.txt"]

