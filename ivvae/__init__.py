"""IV-VAE: the improved video VAE for latent video diffusion models."""

__version__ = "0.1.0"
