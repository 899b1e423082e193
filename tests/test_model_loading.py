"""Broken model folders and checkpoints: one clear error naming the file, the field or the tensors, never a traceback
and never a model that loads and then decodes garbage."""

from __future__ import annotations

import json
import math

import pytest
import torch
from cli_helpers import error_line, run
from conftest import tiny_ivvae
from safetensors.torch import load_file, save_file

from ivvae import hub
from ivvae.convert import CheckpointError, convert_official_checkpoint, to_official_state_dict
from ivvae.grow import GrowthError, grow, grow_pretrained
from ivvae.models import IVVAE, ImageVAE

WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A good tiny model folder; tests copy it before breaking it."""
    folder = tmp_path_factory.mktemp("models") / "good"
    tiny_ivvae(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1).save_pretrained(folder)
    return folder


def copy_folder(source, target, edit_weights=None, edit_config=None):
    """A copy of a model folder, with its weights and/or config changed by the given functions."""
    target.mkdir()
    weights = load_file(source / WEIGHTS)
    save_file(edit_weights(weights) if edit_weights else weights, target / WEIGHTS, metadata={"format": "pt"})
    config = json.loads((source / "config.json").read_text())
    (target / "config.json").write_text(json.dumps(edit_config(config) if edit_config else config))
    return target


def load_error(folder) -> str:
    with pytest.raises(hub.ModelLoadError) as info:
        hub.load_model(folder)
    message = str(info.value)
    assert "\n" not in message
    return message


def without(key):
    return lambda weights: {k: v for k, v in weights.items() if k != key}


def with_value(key, value):
    def edit(weights):
        weights[key] = weights[key].clone()
        weights[key].view(-1)[0] = value
        return weights
    return edit


def test_a_training_checkpoint_names_its_ema_folder_and_the_export(tiny_folder, tmp_path):
    """A trainer checkpoint (config.json, model.safetensors, ema/, trainer_state.json) is not a model folder."""
    checkpoint = tmp_path / "step_00000004"
    checkpoint.mkdir()
    copy_folder(tiny_folder, checkpoint / "ema")
    (checkpoint / "config.json").write_text((tiny_folder / "config.json").read_text())
    (checkpoint / "trainer_state.json").write_text("{}")
    message = load_error(checkpoint)
    assert "is a training checkpoint" in message and f"'{checkpoint / 'ema'}'" in message and "--export-only" in message
    assert isinstance(hub.load_model(checkpoint / "ema"), IVVAE)


# -------------------------------------------------------------------------------------------- 1: tensor names and shapes
def test_a_missing_tensor_is_named_not_left_on_the_meta_device(tiny_folder, tmp_path, capsys):
    key = next(iter(load_file(tiny_folder / WEIGHTS)))
    folder = copy_folder(tiny_folder, tmp_path / "m", without(key))
    message = load_error(folder)
    assert f"lacks 1 tensor(s): {key}" in message and "incomplete or for another model version" in message
    code, _, err = run(capsys, "info", folder)
    assert code == 2 and key in error_line(err) and "Some weights" not in err


def test_many_missing_tensors_show_the_first_few_and_the_count(tiny_folder, tmp_path):
    keys = list(load_file(tiny_folder / WEIGHTS))
    folder = copy_folder(tiny_folder, tmp_path / "m", lambda weights: {k: weights[k] for k in keys[10:]})
    message = load_error(folder)
    assert "lacks 10 tensor(s)" in message and "(10 in all)" in message and keys[0] in message and keys[9] not in message


def test_unexpected_and_wrongly_shaped_tensors_are_errors(tiny_folder, tmp_path):
    extra = copy_folder(tiny_folder, tmp_path / "extra", lambda weights: {**weights, "foo.bar": torch.zeros(2)})
    assert "1 unexpected tensor(s): foo.bar" in load_error(extra)
    key = next(iter(load_file(tiny_folder / WEIGHTS)))
    reshaped = copy_folder(tiny_folder, tmp_path / "shape", lambda weights: {**weights, key: torch.zeros(3, 3)})
    message = load_error(reshaped)
    assert f"1 wrongly shaped tensor(s): {key} (3, 3)" in message and "another config.json" in message


def test_pickled_weights_are_checked_too(tmp_path):
    model = tiny_ivvae(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1)
    model.save_pretrained(tmp_path / "bin", safe_serialization=False)
    weights = tmp_path / "bin" / "diffusion_pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    key = next(iter(state))
    torch.save({k: v for k, v in state.items() if k != key}, weights)
    assert f"lacks 1 tensor(s): {key}" in load_error(tmp_path / "bin")


# -------------------------------------------------------------------------------------------- 2: values
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_weights_are_refused(tiny_folder, tmp_path, value):
    key = list(load_file(tiny_folder / WEIGHTS))[3]
    message = load_error(copy_folder(tiny_folder, tmp_path / "m", with_value(key, value)))
    assert "NaN or infinite" in message and key in message


def test_integer_weights_are_refused(tiny_folder, tmp_path):
    folder = copy_folder(tiny_folder, tmp_path / "m", lambda weights: {k: v.to(torch.int32) for k, v in weights.items()})
    message = load_error(folder)
    assert "not floating point" in message and "(I32)" in message and "in all)" in message


def test_nonfinite_tensors_names_only_the_broken_ones():
    tensors = {"a": torch.ones(3), "b": torch.tensor([1.0, math.nan]), "c": torch.tensor([math.inf]).half(),
               "d": torch.full((70_000,), 60_000.0).half(), "e": torch.arange(3)}  # d: its fp16 sum would overflow
    assert hub.nonfinite_tensors(tensors) == ["b", "c"]


@pytest.fixture
def tiny_release(monkeypatch):
    """Pretend a tiny variant was released (as in test_cli)."""
    import ivvae.convert

    monkeypatch.setattr(ivvae.convert, "RELEASED", {"ivvae_z4_dim8": {"latent_channels": 4, "base_channels": 8}})
    torch.manual_seed(1)
    return IVVAE(latent_channels=4, base_channels=8)


@pytest.mark.parametrize("broken, message", [("nan", "NaN or infinite"), ("int", "not floating point")])
def test_convert_refuses_non_finite_and_integer_tensors(tiny_release, tmp_path, broken, message):
    state = to_official_state_dict(tiny_release)
    key = next(iter(state))
    state[key] = state[key].clone().fill_(math.nan) if broken == "nan" else state[key].to(torch.int32)
    torch.save(state, tmp_path / "ivvae_z4_dim8.pth")
    with pytest.raises(CheckpointError, match=message) as info:
        convert_official_checkpoint(tmp_path / "ivvae_z4_dim8.pth", tmp_path / "out")
    assert key in str(info.value) and not (tmp_path / "out").exists()


# -------------------------------------------------------------------------------------------- 3: config values
@pytest.mark.parametrize("field, value", [
    ("base_channels", "sixteen"), ("latent_channels", -4), ("in_channels", 0), ("encoder_blocks", 1.5),
    ("decoder_blocks", True), ("channel_multipliers", [1, 0, 2, 2]), ("channel_multipliers", 4), ("branches", ["2d", "3d"]),
    ("branches", "2d"), ("temporal_downsample", [False, True]), ("temporal_downsample", [False, "yes", True]),
    ("atrous_dilations", [1, -3]), ("dropout", 1.0), ("dropout", "0.1"), ("parallel_atrous", "true"),
    ("scaling_factor", 0), ("scaling_factor", math.nan), ("scaling_factor", math.inf), ("shift_factor", math.nan),
])
def test_invalid_arguments_name_the_field(field, value):
    with pytest.raises(ValueError) as info, torch.device("meta"):
        IVVAE(**{field: value})
    assert str(info.value).startswith(f"{field}=")


def test_invalid_image_vae_arguments_are_refused_too():
    with pytest.raises(ValueError, match="base_channels=-8"), torch.device("meta"):
        ImageVAE(base_channels=-8)


@pytest.mark.parametrize("field, value", [("base_channels", "sixteen"), ("latent_channels", -4), ("scaling_factor", 0)])
def test_a_bad_config_value_names_config_json(tiny_folder, tmp_path, capsys, field, value):
    folder = copy_folder(tiny_folder, tmp_path / "m", edit_config=lambda config: {**config, field: value})
    message = load_error(folder)
    assert str(folder / "config.json") in message and f"{field}={value!r}" in message
    code, _, err = run(capsys, "info", folder)
    assert code == 2 and field in error_line(err)


# -------------------------------------------------------------------------------------------- 4: unreadable weights
def test_empty_and_truncated_weights_say_so(tiny_folder, tmp_path):
    empty = copy_folder(tiny_folder, tmp_path / "empty")
    (empty / WEIGHTS).write_bytes(b"")
    assert "is empty (0 bytes)" in load_error(empty) and "re-download or re-export" in load_error(empty)
    truncated = copy_folder(tiny_folder, tmp_path / "truncated")
    data = (truncated / WEIGHTS).read_bytes()
    (truncated / WEIGHTS).write_bytes(data[: len(data) // 2])
    message = load_error(truncated)
    assert "is truncated or not a safetensors weights file" in message and "re-download or re-export" in message


# -------------------------------------------------------------------------------------------- 5: grow overflow
def test_grow_refuses_an_overflowing_scale_before_writing(tmp_path, capsys):
    torch.manual_seed(0)
    ImageVAE(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1).save_pretrained(tmp_path / "image")
    with pytest.raises(GrowthError, match="overflow"):
        grow_pretrained(tmp_path / "image", tmp_path / "wide", base_channels=12, new_weight_scale=1e9)
    assert not (tmp_path / "wide").exists()
    code, _, err = run(capsys, "grow", tmp_path / "image", tmp_path / "wide", "--base-channels", 12, "--new-weight-scale", 1e9)
    assert code == 2 and "not finite" in error_line(err) and not (tmp_path / "wide").exists()


@pytest.mark.parametrize("scale", [math.nan, math.inf])
def test_grow_refuses_a_non_finite_scale(scale):
    with torch.device("meta"):
        model = ImageVAE(latent_channels=4, base_channels=8)
    with pytest.raises(GrowthError, match="finite"):
        grow(model, base_channels=12, new_weight_scale=scale)


# -------------------------------------------------------------------------------------------- 6: hints fit every command
def test_hints_do_not_assume_a_model_option(tmp_path):
    """inflate, grow and info take the model as an argument, and train --export-only takes none."""
    with pytest.raises(hub.ModelNotFoundError) as info:
        hub.resolve_model_path(tmp_path / "nothing")
    assert "--model" not in str(info.value) and "give a model folder made by `ivvae convert" in str(info.value)
    (tmp_path / "model.pth").write_bytes(b"x")
    with pytest.raises(hub.ModelLoadError) as info:
        hub.resolve_model_path(tmp_path / "model.pth")
    assert "--model" not in str(info.value)


# -------------------------------------------------------------------------------------------- 7: pickled objects
def test_convert_of_a_pickled_module_drops_torchs_allowlisting_advice(tmp_path, capsys):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")
    with pytest.raises(CheckpointError) as info:
        convert_official_checkpoint(tmp_path / "module.pth", tmp_path / "out")
    message = str(info.value)
    assert "not a plain state dict" in message and "state_dict()" in message and "torch.nn.modules.linear.Linear" in message
    assert "safe_globals" not in message and "weights_only" not in message


def test_from_pretrained_checks_a_local_folder_as_load_model_does(tiny_folder, tmp_path):
    broken = copy_folder(tiny_folder, tmp_path / "broken", edit_weights=without(sorted(load_file(tiny_folder / WEIGHTS))[3]))
    with pytest.raises(hub.ModelLoadError, match="lacks|missing"):
        IVVAE.from_pretrained(broken)
    with pytest.raises(hub.ModelLoadError, match="is for IVVAE, not ImageVAE"):
        ImageVAE.from_pretrained(tiny_folder)
    assert isinstance(IVVAE.from_pretrained(tiny_folder), IVVAE)


def test_enable_tiling_refuses_sizes_that_are_not_whole_latent_pixels():
    model = tiny_ivvae()
    with pytest.raises(ValueError, match=r"multiples of the spatial compression \(8 px\), got 20, 4; e.g. 16, 0"):
        model.enable_tiling(20, 4)
    model.enable_tiling(24, 8)
    assert (model.tile_size, model.tile_overlap) == (24, 8)


def test_a_misspelt_config_field_is_named_not_ignored(tmp_path, capsys):
    """diffusers ignores unknown config keys: a misspelt scaling_factor would load as 1.0."""
    tiny_ivvae().save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "scalling_factor": 0.5}))
    with pytest.raises(hub.ModelLoadError, match="has field.s. IVVAE does not take: scalling_factor .misspelt"):
        hub.load_model(tmp_path / "m")
    code, _, err = run(capsys, "info", tmp_path / "m")
    assert code == 2 and "scalling_factor" in error_line(err)
