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

#: Image VAEs (single 2-D branch, per frame) with Z/2 latent channels: the starting points from
#: which the released IV-VAEs are inflated (KTC, :mod:`ivvae.inflate`), e.g. z4_dim64 -> ivvae_z8_dim64.
IMAGE_VAES: dict[str, dict[str, Any]] = {
    "image_vae_z2_dim64": dict(latent_channels=2, base_channels=64),
    "image_vae_z4_dim64": dict(latent_channels=4, base_channels=64),
    "image_vae_z8_dim64": dict(latent_channels=8, base_channels=64),
    "image_vae_z8_dim96": dict(latent_channels=8, base_channels=96),
}

_TMPE_OFF = dict(full_compression_attention=False, parallel_atrous=False)

#: The paper's ablations (Table 4 at Z=8; Table 5's branch kinds), all configurations of the one
#: network: base width 96 for the single-branch variants, 64 per branch for the dual ones. "TMPE"
#: is PAC + the attention after full compression (``parallel_atrous``, ``full_compression_attention``).
#: ``ablation_2d2d``: both branches per-frame 2-D; the temporal branch still mixes time, but only
#: through its learned temporal resampling convs (pairs of frames in the encoder, one frame into
#: two in the decoder) -- the "no 3-D conv" point of Table 5.
ABLATIONS: dict[str, dict[str, Any]] = {
    "ablation_baseline": dict(latent_channels=8, base_channels=96),  # CausalVAE's defaults: TMPE off
    "ablation_gcconv": dict(branches=("group_causal",), latent_channels=8, base_channels=96, **_TMPE_OFF),
    "ablation_ktc": dict(branches=("2d", "causal"), latent_channels=8, base_channels=64, **_TMPE_OFF),
    "ablation_ktc_gcconv": dict(branches=("2d", "group_causal"), latent_channels=8, base_channels=64, **_TMPE_OFF),
    "ablation_ktc_gcconv_tmpe": dict(branches=("2d", "group_causal"), latent_channels=8, base_channels=64),
    "ablation_3d3d": dict(branches=("group_causal", "group_causal"), latent_channels=8, base_channels=64),
    "ablation_2d2d": dict(branches=("2d", "2d"), latent_channels=8, base_channels=64),
}

PRESETS: dict[str, dict[str, Any]] = {**RELEASED, **IMAGE_VAES, **ABLATIONS}

#: The class that builds a preset, where it is not :class:`IVVAE` (``_class_name`` of its config).
PRESET_CLASSES: dict[str, str] = {**{name: "ImageVAE" for name in IMAGE_VAES}, "ablation_baseline": "CausalVAE"}

#: One line per preset, for ``ivvae info`` / :func:`ivvae.models.family.list_presets`.
PRESET_DESCRIPTIONS: dict[str, str] = {
    **{
        name: f"released IV-VAE, Z={cfg['latent_channels']}, width {cfg['base_channels']} per branch "
        "(2-D keyframe + group-causal temporal, PAC + attention)"
        for name, cfg in RELEASED.items()
    },
    **{
        name: f"image VAE (one per-frame 2-D branch), Z={cfg['latent_channels']}, width {cfg['base_channels']}: "
        f"inflates into an IV-VAE with Z={2 * cfg['latent_channels']}"
        for name, cfg in IMAGE_VAES.items()
    },
    "ablation_baseline": "Table 4 baseline: causal 3-D VAE (CausalVAE), single branch, width 96, Z=8, no TMPE",
    "ablation_gcconv": "Table 4 baseline + GCConv: single group-causal 3-D branch, width 96, Z=8, no TMPE",
    "ablation_ktc": "Table 4 KTC without GCConv: 2-D keyframe + plain causal 3-D temporal branch, width 64 each, Z=8, no TMPE",
    "ablation_ktc_gcconv": "Table 4 KTC + GCConv: 2-D keyframe + group-causal temporal branch, width 64 each, Z=8, no TMPE",
    "ablation_ktc_gcconv_tmpe": "Table 4 KTC + GCConv + TMPE (PAC + attention): the IV-VAE architecture at Z=8 "
    "(= ivvae_z8_dim64, untrained normalisation)",
    "ablation_3d3d": "Table 5 3-D + 3-D: group-causal keyframe and temporal branches, width 64 each, Z=8, TMPE",
    "ablation_2d2d": "Table 5 2-D + 2-D: per-frame keyframe and temporal branches "
    "(time mixed only by the temporal resampling convs), width 64 each, Z=8, TMPE",
}


def preset_class(name: str):
    """The model class of preset ``name`` (:class:`IVVAE`, :class:`ImageVAE` or :class:`CausalVAE`)."""
    from . import causal_vae, image_vae, ivvae

    classes = {"IVVAE": ivvae.IVVAE, "ImageVAE": image_vae.ImageVAE, "CausalVAE": causal_vae.CausalVAE}
    return classes[PRESET_CLASSES.get(name, "IVVAE")]


def preset_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The constructor arguments of preset ``name``, with ``overrides`` applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    return {**PRESETS[name], **overrides}


def build_model(name: str, **overrides: Any):
    """A randomly initialised model of preset ``name`` (``overrides`` change config fields)."""
    config = preset_config(name, **overrides)
    return preset_class(name)(**config)
