"""Shared fixtures: tiny models keep the suite fast on 2 CPU cores."""

from __future__ import annotations

import pytest
import torch

from ivvae.models import IVVAE


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """One thread per test: on a shared 2-core machine two threads mostly contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_ivvae(latent_channels: int = 8, base_channels: int = 8, **overrides) -> IVVAE:
    """A randomly initialised IV-VAE at a tiny width, in eval mode, seeded."""
    torch.manual_seed(0)
    return IVVAE(latent_channels=latent_channels, base_channels=base_channels, **overrides).eval()


@pytest.fixture
def tiny_model() -> IVVAE:
    return tiny_ivvae()
