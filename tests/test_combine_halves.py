"""configs/small_z16/combine_halves.py: joining one model's encoder with another's decoder (session 26's
shipped model was made this way), on tiny models it saves itself."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_ivvae

from ivvae import IVVAE

SCRIPT = Path(__file__).resolve().parents[1] / "configs" / "small_z16" / "combine_halves.py"
spec = importlib.util.spec_from_file_location("combine_halves", SCRIPT)
combine_halves = importlib.util.module_from_spec(spec)
spec.loader.exec_module(combine_halves)


def saved(tmp_path: Path, name: str, seed: int, **overrides) -> Path:
    """A tiny IV-VAE saved to ``tmp_path / name``, its weights moved by a ``seed``-dependent amount."""
    model = tiny_ivvae(**overrides)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01 * torch.randn(param.shape, generator=generator))
    folder = tmp_path / name
    model.save_pretrained(folder)
    return folder


def test_takes_each_half_from_its_folder(tmp_path):
    a, b = saved(tmp_path, "a", 0), saved(tmp_path, "b", 1)
    out = tmp_path / "joined"
    assert combine_halves.main(["--encoder-from", str(a), "--decoder-from", str(b), "--out", str(out)]) == 0
    joined, from_a, from_b = (IVVAE.from_pretrained(f).state_dict() for f in (out, a, b))
    assert joined.keys() == from_a.keys()
    for key, tensor in joined.items():
        source = from_a if key.startswith("encoder.") else from_b
        assert torch.equal(tensor, source[key]), key
    # the two folders really differ in both halves, so the checks above can fail
    for key in ("encoder.conv_in.convs.keyframe.weight", "decoder.conv_out.convs.keyframe.weight"):
        assert not torch.equal(from_a[key], from_b[key])
    assert json.loads((out / "config.json").read_text()) == json.loads((a / "config.json").read_text())


def test_refuses_different_architectures_and_existing_output(tmp_path, capsys):
    a, wide = saved(tmp_path, "a", 0), saved(tmp_path, "wide", 1, base_channels=16)
    out = tmp_path / "joined"
    assert combine_halves.main(["--encoder-from", str(a), "--decoder-from", str(wide), "--out", str(out)]) == 2
    assert "different architectures" in capsys.readouterr().err and not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert combine_halves.main(["--encoder-from", str(a), "--decoder-from", str(a), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"


def test_refuses_different_dtypes(tmp_path):
    a = saved(tmp_path, "a", 0)
    half = tmp_path / "half"
    tiny_ivvae().half().save_pretrained(half)
    with pytest.raises(combine_halves.CombineError, match="different dtypes"):
        combine_halves.combine_halves(a, half, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_names_a_missing_weights_file(tmp_path):
    a = saved(tmp_path, "a", 0)
    config_only = tmp_path / "config_only"
    config_only.mkdir()
    (config_only / "config.json").write_text((a / "config.json").read_text())
    with pytest.raises(combine_halves.CombineError, match="has no diffusion_pytorch_model.safetensors"):
        combine_halves.combine_halves(a, config_only, tmp_path / "out")
    assert not (tmp_path / "out").exists()
