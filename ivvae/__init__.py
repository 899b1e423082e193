"""IV-VAE: the improved video VAE for latent video diffusion models.

The main names are imported lazily, so ``ivvae --help`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "IVVAE": "ivvae.models",
    "ImageVAE": "ivvae.models",
    "CausalVAE": "ivvae.models",
    "build_model": "ivvae.models",
    "load_model": "ivvae.hub",
    "convert_official_checkpoint": "ivvae.convert",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ivvae' has no attribute {name!r}")
