"""The IV-VAE model family."""

from .ivvae import IVVAE
from .network import NetworkSpec
from .presets import PRESETS, RELEASED, build_model, preset_config

__all__ = ["IVVAE", "NetworkSpec", "PRESETS", "RELEASED", "build_model", "preset_config"]
