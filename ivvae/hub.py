"""Finding and loading models: a ``from_pretrained`` folder, or a model bundled with the package.

A model is named either by a folder written by ``save_pretrained`` (``config.json`` +
``diffusion_pytorch_model.safetensors``; ``ivvae convert`` and training write such folders) or by
the short name of a model shipped inside the package at ``ivvae/pretrained/<name>/``.

Every failure is a one-line :class:`ModelNotFoundError` (a ``FileNotFoundError``) or
:class:`ModelLoadError` (a ``ValueError``) naming the path that was looked at and the fix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a model is loaded, so `ivvae --help` stays instant
    import torch

__all__ = [
    "DEFAULT_MODEL",
    "HELD_OUT_SOURCES",
    "HELD_OUT_START_FRACTION",
    "PRETRAINED_DIR",
    "ModelLoadError",
    "ModelNotFoundError",
    "bundled_model_folder",
    "bundled_models",
    "load_model",
    "model_class",
    "resolve_model_path",
]

#: The model used when none is given (bundled inside the package once trained).
DEFAULT_MODEL = "ivvae-small-z16"

#: The default model's held-out data, never trained on (configs/small_z16/ train on frames
#: before ``HELD_OUT_START_FRACTION`` of bikes and bigbuckbunny only): carphone entirely, and
#: the tail of the other two sample videos from this fraction of their frames on.
HELD_OUT_SOURCES = ("sample:carphone", "sample:bikes", "sample:bigbuckbunny")
HELD_OUT_START_FRACTION = 0.8

#: Where bundled models live: ``ivvae/pretrained/<name>/config.json`` + weights.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"

CONFIG_NAME = "config.json"
WEIGHTS_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")

#: Model classes a config's ``_class_name`` may name (those present in :mod:`ivvae.models`).
MODEL_CLASSES = ("IVVAE", "ImageVAE", "CausalVAE")

_FIX = (
    "pass --model DIR with a folder made by `ivvae convert CHECKPOINT.pth DIR` or by training "
    "(config.json + diffusion_pytorch_model.safetensors)"
)


class ModelNotFoundError(FileNotFoundError):
    """No model folder or bundled model of that name."""


class ModelLoadError(ValueError):
    """A model folder exists but cannot be loaded (wrong config, missing or mismatched weights)."""


def bundled_models() -> list[str]:
    """Names of the models shipped inside the package (folders of ``ivvae/pretrained/``)."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / CONFIG_NAME).is_file())


def bundled_model_folder(name: object) -> Path | None:
    """The folder of the bundled model called ``name``, if ``name`` is such a short name and not
    also an existing path; else None (so a folder of the same name in the working directory wins)."""
    if not isinstance(name, str) or not _looks_like_name(name) or Path(name).exists():
        return None
    folder = PRETRAINED_DIR / name
    return folder if (folder / CONFIG_NAME).is_file() else None


def _looks_like_name(text: str) -> bool:
    return bool(text) and os.sep not in text and "/" not in text and not text.startswith((".", "~"))


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """The folder of a model: ``name_or_path`` itself if it is a folder, else a bundled model.

    Raises:
        ModelNotFoundError: neither a folder nor a bundled model of that name.
        ModelLoadError: a file instead of a folder, or a folder without ``config.json``.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        return _check_folder(path)
    if _looks_like_name(text):
        bundled = PRETRAINED_DIR / text
        if bundled.is_dir():
            return _check_folder(bundled)
        available = ", ".join(bundled_models()) or "none installed"
        if text == DEFAULT_MODEL:
            raise ModelNotFoundError(
                f"the default model '{text}' is not installed (looked for '{bundled}'); {_FIX}"
            )
        from .models.presets import PRESETS, RELEASED

        if text in PRESETS:
            how = (f"convert the authors' {text}.pth with `ivvae convert {text}.pth DIR --variant {text}`"
                   if text in RELEASED else "train one (`ivvae train`)")
            raise ModelNotFoundError(f"'{text}' is a preset, an architecture without weights; {how} and pass --model DIR")
        raise ModelNotFoundError(
            f"model '{text}' not found: no folder '{path}' and no bundled model '{bundled}' (bundled: {available}); {_FIX}"
        )
    raise ModelNotFoundError(f"model folder '{path}' not found; {_FIX}")


def _check_folder(path: Path) -> Path:
    if path.is_file():
        hint = " (a released checkpoint: convert it first with `ivvae convert`)" if path.suffix in (".pth", ".pt", ".ckpt") else ""
        raise ModelLoadError(f"'{path}' is a file, not a model folder{hint}; {_FIX}")
    if not (path / CONFIG_NAME).is_file():
        raise ModelLoadError(f"'{path}' has no {CONFIG_NAME}, so it is not a model folder; {_FIX}")
    return path


def read_config(folder: str | os.PathLike) -> dict:
    """The ``config.json`` of a model folder, as a dict."""
    config_path = Path(folder) / CONFIG_NAME
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"cannot read '{config_path}': {' '.join(str(error).split())}; {_FIX}") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"'{config_path}' does not hold a JSON object; {_FIX}")
    return config


def model_class(config: dict, where: str = "config"):
    """The model class a config's ``_class_name`` names (IVVAE if that class is not available)."""
    from . import models

    name = config.get("_class_name")
    if name is None:
        return models.IVVAE  # hand-written config: assume the default family member
    if name not in MODEL_CLASSES:
        raise ModelLoadError(f"{where} is for class '{name}', not an IV-VAE model ({', '.join(MODEL_CLASSES)}); {_FIX}")
    return getattr(models, name, models.IVVAE)


def load_model(name_or_path: str | os.PathLike = DEFAULT_MODEL, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
    """Load a model folder or bundled model, in eval mode, on ``device`` (and ``dtype`` if given).

    Raises:
        ModelNotFoundError, ModelLoadError: see :func:`resolve_model_path`; also a config for
            another class, a missing weights file, weights that do not fit the config.
    """
    folder = resolve_model_path(name_or_path)
    config = read_config(folder)
    cls = model_class(config, f"'{folder / CONFIG_NAME}'")
    if not any((folder / name).is_file() for name in WEIGHTS_NAMES):
        raise ModelLoadError(f"'{folder}' has a config but no weights file ({WEIGHTS_NAMES[0]}); {_FIX}")
    try:
        model = cls.from_pretrained(folder, torch_dtype=dtype) if dtype is not None else cls.from_pretrained(folder)
    except (OSError, ValueError, RuntimeError, TypeError, KeyError) as error:
        first = " ".join(str(error).split()).split(" If you want to instead overwrite")[0]  # not diffusers' kwargs advice
        if "expected shape" in first:
            first += " (the weights are for another config.json: another width or latent size?)"
        if len(first) > 300:
            first = first[:300] + "..."
        raise ModelLoadError(f"cannot load model from '{folder}': {type(error).__name__}: {first}") from None
    model.name_or_path = os.fspath(name_or_path)
    return model.to(device).eval()
