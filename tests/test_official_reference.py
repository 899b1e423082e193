"""Our model against an independent, literal reading of the spec (tests/official_reference.py).

The reference runs on an official-layout state dict (official key names) and processes time
exactly as the authors do (frame 0, then chunks of 4 frames / one latent frame at a time, with a
per-layer cache). Our model gets the same random weights through ``official_layout``.
"""

from __future__ import annotations

import copy
import functools
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import official_reference as ref  # noqa: E402

from ivvae.convert import official_layout  # noqa: E402
from ivvae.models import IVVAE  # noqa: E402

LAYOUT_DIR = Path(__file__).resolve().parents[2] / "shared/spec/official-layout"

C, Z = 8, 8  # tiny widths: the network's structure is the same at any width
BATCH = 2
SIZES = [(16, 24), (32, 32)]
FRAMES = [1, 5, 9, 17]
ATOL32 = 1e-5
RTOL32 = 1e-5

# the spec's table of released variants: (C, Z) -> parameter count
RELEASED_PARAMS = {(64, 4): 107_170_842, (64, 8): 107_379_150, (64, 16): 107_798_550, (96, 16): 241_854_742}


# --------------------------------------------------------------------------------------------------
# The official layout, regenerated from the spec.
# --------------------------------------------------------------------------------------------------


def _read_layout(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape = line.split(" ", 1)
        rows.append((key, tuple(int(v) for v in shape.strip().strip("()").split(",") if v.strip())))
    return rows


@pytest.mark.parametrize("c,z", [(64, 16), (64, 4), (64, 8), (96, 16)])
def test_official_shapes_reproduce_layout_files(c, z):
    path = LAYOUT_DIR / f"keys_z{z}_dim{c}.txt"
    if not LAYOUT_DIR.is_dir():
        pytest.skip(f"official layout folder not present: {LAYOUT_DIR}")
    if not path.is_file():
        pytest.skip(f"layout file not present: {path}")
    expected = _read_layout(path)
    got = list(ref.official_shapes(c, z).items())
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g == e, f"row {i}: generated {g}, layout file {e}"


@pytest.mark.parametrize("cz,count", sorted(RELEASED_PARAMS.items()))
def test_official_shapes_parameter_counts(cz, count):
    assert sum(math.prod(s) for s in ref.official_shapes(*cz).values()) == count


@pytest.mark.parametrize("c,z", [(8, 8), (8, 4), (16, 2)])
def test_our_model_has_the_official_tensors(c, z):
    model = IVVAE(latent_channels=z, base_channels=c)
    layout = official_layout(model)
    shapes = ref.official_shapes(c, z)
    assert set(layout) == set(shapes)
    ours = model.state_dict()
    assert sorted(layout.values()) == sorted(ours)
    for k, s in shapes.items():
        assert tuple(ours[layout[k]].shape) == s, k


# --------------------------------------------------------------------------------------------------
# Numbers: our model vs the reference.
# --------------------------------------------------------------------------------------------------


@functools.cache
def _weights():
    state32 = ref.random_official_state(C, Z, seed=0, dtype=torch.float32)
    state64 = {k: v.double() for k, v in state32.items()}
    model = IVVAE(latent_channels=Z, base_channels=C).eval()
    layout = official_layout(model)
    model.load_state_dict({layout[k]: v for k, v in state32.items()})
    return state32, state64, model


@functools.cache
def _model64():
    return copy.deepcopy(_weights()[2]).double().eval()


@functools.cache
def _case(T: int, H: int, W: int):
    """Inputs and fp64 reference outputs for one video size (computed once, shared by the tests)."""
    _, state64, _ = _weights()
    g = torch.Generator().manual_seed(1000 * T + 10 * H + W)
    x = (torch.rand(BATCH, 3, T, H, W, generator=g, dtype=torch.float64) * 2 - 1)
    z = torch.randn(BATCH, Z, 1 + (T - 1) // 4, H // 8, W // 8, generator=g, dtype=torch.float64)
    with torch.no_grad():
        mean, logvar = ref.reference_encode_moments(state64, x)
        video = ref.reference_decode(state64, z)
    assert mean.shape == z.shape and video.shape == x.shape
    # sanity: random weights keep activations O(1) (neither blown up nor vanished)
    assert 0.05 < mean.std() < 10 and 0.05 < video.std() < 10
    return x, z, mean, logvar, video


def _close(ours: torch.Tensor, expected: torch.Tensor, what: str, atol=ATOL32, rtol=RTOL32):
    assert ours.shape == expected.shape, (what, ours.shape, expected.shape)
    diff = (ours.double() - expected).abs().max().item()
    torch.testing.assert_close(ours.double(), expected, atol=atol, rtol=rtol, msg=lambda m: f"{what}: max |diff| {diff:.3e}\n{m}")


@pytest.mark.parametrize("hw", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("T", FRAMES)
def test_encode_mean_matches_reference(T, hw):
    x, _, mean, logvar, _ = _case(T, *hw)
    _, _, model = _weights()
    with torch.no_grad():
        dist = model.encode(x.float()).latent_dist
    _close(dist.mode(), mean, f"encode mean T={T} {hw}")
    _close(dist.logvar, logvar, f"encode logvar T={T} {hw}")


@pytest.mark.parametrize("hw", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("T", FRAMES)
def test_decode_matches_reference(T, hw):
    _, z, _, _, video = _case(T, *hw)
    _, _, model = _weights()
    with torch.no_grad():
        out = model.decode(z.float()).sample
    _close(out, video, f"decode T={T} {hw}")


@pytest.mark.parametrize("chunk_groups", [1, 2])
@pytest.mark.parametrize("T", [9, 17])
def test_streaming_matches_reference(T, chunk_groups):
    x, z, mean, _, video = _case(T, *SIZES[0])
    _, _, model = _weights()
    with torch.no_grad():
        enc = model.encode(x.float(), chunk_groups=chunk_groups).latent_dist.mode()
        dec = model.decode(z.float(), chunk_groups=chunk_groups).sample
    _close(enc, mean, f"streamed encode T={T} chunk_groups={chunk_groups}")
    _close(dec, video, f"streamed decode T={T} chunk_groups={chunk_groups}")


def test_fp64_matches_reference_to_rounding():
    """In float64 the two implementations agree to ~1e-15: any gap in fp32 is rounding only."""
    x, z, mean, _, video = _case(5, *SIZES[0])
    model = _model64()
    with torch.no_grad():
        _close(model.encode(x).latent_dist.mode(), mean, "fp64 encode", atol=1e-12, rtol=1e-12)
        _close(model.decode(z).sample, video, "fp64 decode", atol=1e-12, rtol=1e-12)
        _close(model.encode(x, chunk_groups=1).latent_dist.mode(), mean, "fp64 streamed encode", atol=1e-12, rtol=1e-12)
        _close(model.decode(z, chunk_groups=1).sample, video, "fp64 streamed decode", atol=1e-12, rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# The comparison is not vacuous: plausible misreadings of the spec change the numbers by O(1).
# --------------------------------------------------------------------------------------------------


def _mutant_no_cache(monkeypatch):
    original = ref.group_causal_conv

    def no_cache(x, weight, bias, cache, key, t_c):
        if weight.shape[2] == 3 and key in cache:
            cache[key] = torch.zeros_like(cache[key])  # zero padding before a chunk instead of the cache
        return original(x, weight, bias, cache, key, t_c)

    monkeypatch.setattr(ref, "group_causal_conv", no_cache)


def _mutant_pair_order(monkeypatch):
    original = ref.upsample

    def swapped(state, p, x, temporal):
        state = dict(state)
        w, b = state[f"{p}.time_conv.weight"], state[f"{p}.time_conv.bias"]
        h = w.shape[0] // 2
        state[f"{p}.time_conv.weight"] = torch.cat([w[h:], w[:h]])  # later frame first
        state[f"{p}.time_conv.bias"] = torch.cat([b[h:], b[:h]])
        return original(state, p, x, temporal)

    monkeypatch.setattr(ref, "upsample", lambda s, p, x, temporal: swapped(s, p, x, temporal) if temporal else original(s, p, x, temporal))


def _mutant_norm_whole(monkeypatch):
    def whole(x, gamma):  # RMSNorm over both halves together
        w = x.shape[1] // 2
        return torch.nn.functional.normalize(x, dim=1) * math.sqrt(w) * gamma.reshape(1, -1, *([1] * (x.dim() - 2)))

    monkeypatch.setattr(ref, "rms_norm_halves", whole)


@pytest.mark.parametrize("mutant", [_mutant_no_cache, _mutant_pair_order, _mutant_norm_whole], ids=lambda f: f.__name__[8:])
def test_comparison_detects_misreadings(mutant, monkeypatch):
    x, z, mean, _, video = _case(5, *SIZES[0])
    _, state64, _ = _weights()
    mutant(monkeypatch)
    with torch.no_grad():
        bad_mean = ref.reference_encode_mean(state64, x)
        bad_video = ref.reference_decode(state64, z)
    gap = max((bad_mean - mean).abs().max().item(), (bad_video - video).abs().max().item())
    assert gap > 1e-2, f"mutant {mutant.__name__} changes nothing: the test data does not exercise it"
