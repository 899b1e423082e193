"""Describing family members and presets (what ``ivvae info`` prints).

:func:`describe_model` summarises any model of the family (IVVAE, ImageVAE, CausalVAE, the
ablations); :func:`list_presets` lists every named preset with its parameter count, computed on
the ``meta`` device (no memory, no random init), so it is instant even for the full-size models.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .presets import PRESET_DESCRIPTIONS, PRESETS, build_model

#: The example input of :func:`describe_model`: the paper's 17-frame 256x256 clips.
EXAMPLE_VIDEO_SHAPE = (1, 3, 17, 256, 256)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _plain(value: Any) -> Any:
    """Config values as JSON-friendly Python (tuples -> lists)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def describe_model(model: nn.Module) -> dict[str, Any]:
    """A JSON-friendly summary of a family member.

    Keys: ``class``, ``config`` (constructor arguments, as saved by ``save_pretrained``),
    ``branches``, ``latent_channels``, ``parameters`` (``total``, ``encoder``, ``decoder``),
    ``compression`` (``temporal``: frames per latent frame after the first; ``spatial``),
    ``example`` (``input_shape`` (1, 3, 17, 256, 256) and its ``latent_shape``).
    """
    config = {k: _plain(v) for k, v in dict(model.config).items() if not k.startswith("_")}
    spec = model.spec
    return {
        "class": type(model).__name__,
        "config": config,
        "branches": list(spec.branches),
        "latent_channels": spec.latent_channels,
        "parameters": {
            "total": count_parameters(model),
            "encoder": count_parameters(model.encoder),
            "decoder": count_parameters(model.decoder),
        },
        "compression": {"temporal": model.temporal_compression, "spatial": model.spatial_compression},
        "example": {"input_shape": list(EXAMPLE_VIDEO_SHAPE), "latent_shape": list(model.latent_shape(EXAMPLE_VIDEO_SHAPE))},
    }


def preset_parameters(name: str, **overrides: Any) -> int:
    """Parameter count of preset ``name``, built on the meta device (instant, no memory)."""
    with torch.device("meta"):
        return count_parameters(build_model(name, **overrides))


def list_presets() -> list[tuple[str, str, int]]:
    """``(name, description, parameters)`` for every preset, in definition order."""
    return [(name, PRESET_DESCRIPTIONS.get(name, ""), preset_parameters(name)) for name in PRESETS]
