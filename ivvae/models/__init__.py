"""The IV-VAE model family."""

from .causal_vae import CausalVAE
from .family import describe_model, list_presets
from .image_vae import ImageVAE
from .ivvae import IVVAE
from .network import NetworkSpec
from .presets import PRESETS, RELEASED, build_model, preset_class, preset_config

__all__ = [
    "CausalVAE",
    "IVVAE",
    "ImageVAE",
    "NetworkSpec",
    "PRESETS",
    "RELEASED",
    "build_model",
    "describe_model",
    "list_presets",
    "preset_class",
    "preset_config",
]
