"""Named configurations: the four released IV-VAE variants, and the family the paper compares.

``build_model("ivvae_z16_dim64")`` gives a randomly initialised network of that shape; weights come
from :meth:`IVVAE.from_pretrained` (a folder) or :func:`ivvae.convert.convert_official_checkpoint`.
"""

from __future__ import annotations

from typing import Any

#: The released variants (architecture.md): base width, latent channels and latent normalisation.
RELEASED: dict[str, dict[str, Any]] = {
    "ivvae_z4_dim64": dict(latent_channels=4, base_channels=64, scaling_factor=1.3196, shift_factor=0.1250),
    "ivvae_z8_dim64": dict(latent_channels=8, base_channels=64, scaling_factor=1.0940, shift_factor=-0.0322),
    "ivvae_z16_dim64": dict(latent_channels=16, base_channels=64, scaling_factor=0.9697, shift_factor=-0.1553),
    "ivvae_z16_dim96": dict(latent_channels=16, base_channels=96, scaling_factor=0.7619, shift_factor=-0.0483),
}

#: Parameter counts of the released checkpoints (architecture.md), checked by the tests.
RELEASED_PARAMETERS = {
    "ivvae_z4_dim64": 107_170_842,
    "ivvae_z8_dim64": 107_379_150,
    "ivvae_z16_dim64": 107_798_550,
    "ivvae_z16_dim96": 241_854_742,
}

PRESETS: dict[str, dict[str, Any]] = dict(RELEASED)


def preset_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The constructor arguments of preset ``name``, with ``overrides`` applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    return {**PRESETS[name], **overrides}


def build_model(name: str, **overrides: Any):
    """A randomly initialised model of preset ``name`` (``overrides`` change config fields)."""
    from .ivvae import IVVAE

    return IVVAE(**preset_config(name, **overrides))
