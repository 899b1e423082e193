"""The IV-VAE network: shapes, the two execution paths, padding, API, errors."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_ivvae
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput

from ivvae.layers import GroupCausalConv3d, stream
from ivvae.models import IVVAE, RELEASED, build_model
from ivvae.models.presets import RELEASED_PARAMETERS


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_presets_have_the_published_parameter_counts(name):
    with torch.device("meta"):
        model = build_model(name)
    assert sum(p.numel() for p in model.parameters()) == RELEASED_PARAMETERS[name]
    assert model.config.scaling_factor == RELEASED[name]["scaling_factor"]
    assert model.config.shift_factor == RELEASED[name]["shift_factor"]


@pytest.mark.parametrize("frames", [1, 2, 5, 9, 17, 33])
def test_streaming_equals_one_pass(tiny_model, frames):
    x = torch.randn(2, 3, frames, 16, 24)
    with torch.no_grad():
        mean = tiny_model.encode(x).latent_dist.mode()
        video = tiny_model.decode(mean).sample
        for chunk_groups in (1, 2, 3):
            streamed_mean = tiny_model.encode(x, chunk_groups=chunk_groups).latent_dist.mode()
            streamed_video = tiny_model.decode(mean, chunk_groups=chunk_groups).sample
            assert (streamed_mean - mean).abs().max() <= 1e-5
            assert (streamed_video - video).abs().max() <= 1e-5


def test_streaming_really_carries_the_cache(tiny_model):
    """Zeroing the caches between chunks must change the result: the cache is really used."""
    x = torch.randn(1, 3, 9, 16, 16)
    encoder = tiny_model.encoder
    with torch.no_grad():
        full = encoder(x)
        with stream(encoder):
            first = encoder(x[:, :, :5])
            for layer in encoder.modules():
                if isinstance(layer, GroupCausalConv3d) and layer._cache is not None:
                    layer._cache = torch.zeros_like(layer._cache)
            second = encoder(x[:, :, 5:])
    torch.testing.assert_close(first, full[:, :, :2])
    assert (second - full[:, :, 2:]).abs().max() > 1e-4


@pytest.mark.parametrize("chunk_groups", [None, 1, 3])
@pytest.mark.parametrize("tile", [None, (16, 8)])
def test_a_video_in_pieces_codes_exactly_as_a_whole(chunk_groups, tile):
    """encode_stream / decode_stream over pieces of any size give encode / decode of the whole
    video (bit for bit when chunked), tiles included, with the video's end padded and cropped."""
    torch.manual_seed(0)
    model = IVVAE(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1).eval()
    if tile:
        model.enable_tiling(*tile)
    video = torch.rand(2, 3, 15, 20, 36) * 2 - 1
    with torch.no_grad():
        whole = model.encode(video, chunk_groups=chunk_groups).latent_dist.mean
        decoded = model.decode(whole, chunk_groups=chunk_groups, num_frames=15, height=20, width=36).sample
        for sizes in ([15], [1, 14], [5, 2, 8], [3] * 5):
            posteriors = list(model.encode_stream(iter(video.split(sizes, dim=2)), chunk_groups=chunk_groups))
            torch.testing.assert_close(torch.cat([p.mean for p in posteriors], dim=2), whole, rtol=0, atol=0 if chunk_groups else 1e-6)
        latent_pieces = whole.split([1, whole.shape[2] - 1], dim=2)
        frames = list(model.decode_stream(iter(latent_pieces), chunk_groups=chunk_groups, num_frames=15, height=20, width=36))
        torch.testing.assert_close(torch.cat(frames, dim=2), decoded, rtol=0, atol=0 if chunk_groups else 1e-6)
    if chunk_groups:  # first frame alone, then chunk_groups latent frames a chunk
        assert [p.mean.shape[2] for p in posteriors] == [1] + [chunk_groups] * ((whole.shape[2] - 1) // chunk_groups) + \
            ([(whole.shape[2] - 1) % chunk_groups] if (whole.shape[2] - 1) % chunk_groups else [])


def test_streams_keep_no_state_in_the_model_between_chunks(tiny_model):
    """Two videos streamed in turn through one model (interleaved chunk by chunk) each equal their own encode."""
    a, b = (torch.rand(1, 3, 9, 16, 16) * 2 - 1 for _ in range(2))
    with torch.no_grad():
        stream_a = tiny_model.encode_stream(iter(a.split(1, dim=2)), chunk_groups=1)
        stream_b = tiny_model.encode_stream(iter(b.split(1, dim=2)), chunk_groups=1)
        got_a, got_b = [], []
        for pa, pb in zip(stream_a, stream_b, strict=True):
            got_a.append(pa.mean)
            got_b.append(pb.mean)
        assert torch.equal(torch.cat(got_a, dim=2), tiny_model.encode(a, chunk_groups=1).latent_dist.mean)
        assert torch.equal(torch.cat(got_b, dim=2), tiny_model.encode(b, chunk_groups=1).latent_dist.mean)


def test_a_piece_that_does_not_continue_the_video_is_refused(tiny_model):
    pieces = [torch.zeros(1, 3, 5, 16, 16), torch.zeros(1, 3, 4, 16, 24)]
    with pytest.raises(ValueError, match=r"does not continue the earlier pieces"):
        list(tiny_model.encode_stream(iter(pieces)))
    with pytest.raises(ValueError, match=r"values in \[255, 255\], but videos are in \[-1, 1\]"):
        list(tiny_model.encode_stream(iter([torch.full((1, 3, 1, 8, 8), 255.0)])))
    latents = torch.zeros(1, tiny_model.config.latent_channels, 3, 2, 2)  # decode to 9 frames
    with pytest.raises(ValueError, match="num_frames"):
        list(tiny_model.decode_stream(iter([latents]), num_frames=0))
    with pytest.raises(ValueError, match="num_frames=10: the latents decode to 9 frames"):
        list(tiny_model.decode_stream(iter([latents]), num_frames=10))


def test_group_causal_conv_padding_rule():
    """Each group sees [previous frame, group, zero]; the first frame [x, x, 0]."""
    torch.manual_seed(0)
    conv = GroupCausalConv3d(2, 3, kernel_size=1, temporal_kernel=3, group_size=2)
    x = torch.randn(1, 2, 5, 1, 1)
    out = conv(x)
    w, b = conv.weight[:, :, :, 0, 0], conv.bias

    def tap(prev, cur, nxt):
        return w[:, :, 0] @ prev + w[:, :, 1] @ cur + w[:, :, 2] @ nxt + b

    f = [x[0, :, t, 0, 0] for t in range(5)]
    zero = torch.zeros(2)
    expected = [tap(f[0], f[0], zero), tap(f[0], f[1], f[2]), tap(f[1], f[2], zero), tap(f[2], f[3], f[4]), tap(f[3], f[4], zero)]
    torch.testing.assert_close(out[0, :, :, 0, 0], torch.stack(expected, dim=1))
    # Streaming: chunk [f0], then [f1 f2], then [f3 f4] gives the same.
    with stream(conv):
        streamed = torch.cat([conv(x[:, :, :1]), conv(x[:, :, 1:3]), conv(x[:, :, 3:])], dim=2)
    torch.testing.assert_close(streamed, out)


@pytest.mark.parametrize("shape", [(1, 3, 1, 8, 8), (2, 3, 4, 13, 21), (1, 3, 6, 30, 17), (3, 3, 17, 24, 40)])
def test_any_input_size_reconstructs_to_the_input_shape(tiny_model, shape):
    x = torch.rand(shape) * 2 - 1
    with torch.no_grad():
        out = tiny_model(x).sample
        latent = tiny_model.encode(x).latent_dist.mode()
    assert out.shape == x.shape
    assert latent.shape == tiny_model.latent_shape(shape)


def test_latent_shape_and_compression(tiny_model):
    x = torch.zeros(1, 3, 17, 64, 48)
    z = tiny_model.encode(x).latent_dist.mode()
    assert z.shape == (1, 8, 5, 8, 6)
    assert tiny_model.temporal_compression == 4 and tiny_model.spatial_compression == 8


def test_padding_does_not_change_the_covered_part():
    """A video that already has a valid size is unchanged by the padding rule (T=1+4k, H,W % 8)."""
    model = tiny_ivvae()
    x = torch.randn(1, 3, 9, 16, 16)
    with torch.no_grad():
        padded_in_time = model(torch.cat([x, x[:, :, -1:].expand(-1, -1, 3, -1, -1)], dim=2)).sample[:, :, :9]
        direct = model(x).sample
    # Frames 0..4 belong to latent frames 0..1 only, which see nothing of the padding.
    torch.testing.assert_close(padded_in_time[:, :, :5], direct[:, :, :5])


def test_batch_elements_are_independent_and_slicing_is_exact(tiny_model):
    x = torch.randn(3, 3, 5, 16, 16)
    with torch.no_grad():
        batched = tiny_model(x).sample
        single = tiny_model(x[1:2]).sample
        tiny_model.enable_slicing()
        sliced = tiny_model(x).sample
        tiny_model.disable_slicing()
    torch.testing.assert_close(batched[1:2], single, atol=1e-5, rtol=0)
    torch.testing.assert_close(sliced, batched, atol=1e-5, rtol=0)


def test_api_outputs_and_sampling(tiny_model):
    x = torch.randn(1, 3, 5, 16, 16)
    encoded = tiny_model.encode(x)
    assert isinstance(encoded, AutoencoderKLOutput)
    dist = encoded.latent_dist
    assert torch.equal(dist.mode(), dist.mean)
    a = dist.sample(torch.Generator().manual_seed(1))
    b = dist.sample(torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, dist.mean)
    decoded = tiny_model.decode(dist.mode())
    assert isinstance(decoded, DecoderOutput) and decoded.sample.shape == x.shape
    assert isinstance(tiny_model.encode(x, return_dict=False), tuple)


def test_latent_normalisation_round_trip():
    model = tiny_ivvae(scaling_factor=0.9697, shift_factor=-0.1553)
    z = torch.randn(1, 8, 2, 2, 2)
    normalised = model.normalize_latents(z)
    torch.testing.assert_close(normalised, 0.9697 * (z + 0.1553))
    torch.testing.assert_close(model.denormalize_latents(normalised), z)


def test_tiling_with_a_whole_frame_tile_is_exact_and_small_tiles_are_close(tiny_model):
    x = torch.rand(1, 3, 5, 48, 64) * 2 - 1
    with torch.no_grad():
        reference = tiny_model(x).sample
        tiny_model.enable_tiling(tile_size=64, tile_overlap=16)
        whole = tiny_model(x).sample
        tiny_model.enable_tiling(tile_size=32, tile_overlap=16)
        tiled = tiny_model(x).sample
        tiny_model.disable_tiling()
    assert torch.equal(whole, reference)
    assert tiled.shape == reference.shape
    assert torch.isfinite(tiled).all()


def test_tiled_blending_is_a_convex_combination():
    """With an identity 'model', tiles blend back to the input exactly."""
    from ivvae.streaming import run_tiled

    x = torch.randn(1, 2, 3, 40, 56)
    torch.testing.assert_close(run_tiled(lambda t, _: t, x, tile=16, overlap=8, scale=1.0), x)


def test_save_and_load_pretrained_round_trip(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path / "model", safe_serialization=True)
    assert (tmp_path / "model" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = IVVAE.from_pretrained(tmp_path / "model").eval()
    x = torch.randn(1, 3, 5, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).sample, tiny_model(x).sample)
    assert list(loaded.config.branches) == list(tiny_model.config.branches)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.zeros(3, 5, 16, 16), "4-D"),
        (torch.zeros(1, 4, 5, 16, 16), "4 channels"),
        (torch.zeros(1, 5, 3, 16, 16), "channels second"),
        (torch.zeros(1, 3, 5, 16, 16, dtype=torch.uint8), "dtype"),
        (torch.zeros(1, 3, 0, 16, 16), "empty"),
    ],
)
def test_bad_input_raises_a_clear_value_error(tiny_model, bad, message):
    with pytest.raises(ValueError, match=r"\(batch, 3, frames, height, width\)") as info:
        tiny_model.encode(bad)
    assert message in str(info.value)


def test_bad_latents_raise(tiny_model):
    with pytest.raises(ValueError, match="latents of shape"):
        tiny_model.decode(torch.zeros(1, 5, 2, 2, 2))


def test_channels_last_bf16_matches_fp32_closely(tiny_model):
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        reference = tiny_model(x).sample
        tiny_model.to_channels_last()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = tiny_model(x.to(memory_format=torch.channels_last_3d)).sample.float()
    assert (fast - reference).abs().mean() < 0.05



def test_rms_norm_keeps_bf16_features_bf16_under_autocast():
    """Its fp32 gamma must not promote bf16 features to fp32 (the next conv would cast them back: a copy of every
    activation, forward and backward); fp32 features stay exact, and gamma still gets its gradient."""
    from ivvae.layers.norm import RMSNorm

    norm = RMSNorm(4, num_branches=2)
    with torch.no_grad():
        norm.gamma.uniform_(0.5, 1.5)
    x = torch.randn(1, 8, 3, 4, 4)
    expected = torch.cat([torch.nn.functional.normalize(h, dim=1) * 2 for h in x.chunk(2, dim=1)], dim=1) * norm.gamma
    assert torch.allclose(norm(x), expected, atol=1e-6) and norm(x).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = norm(x.bfloat16())
    assert out.dtype == torch.bfloat16 and torch.allclose(out.float(), expected, atol=0.05)
    out.float().sum().backward()
    assert norm.gamma.grad is not None and norm.gamma.grad.dtype == torch.float32 and norm.gamma.grad.abs().sum() > 0


@pytest.mark.parametrize("baseline", ["fp32-norm", "stacked-time-conv", "session16"])
def test_the_pre_session_17_layers_that_bench_train_step_times_compute_the_same(tiny_model, baseline):
    """The benchmark's speed-ups compare like with like: its baseline layers give the current ones' outputs (fp32),
    and the current layers are back after its context."""
    from bench_helpers import load_benchmark

    bench = load_benchmark("bench_train_step")
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        current = tiny_model(x).sample
        with bench.baseline_layers(baseline):
            old = tiny_model(x).sample
        again = tiny_model(x).sample
    assert torch.allclose(old, current, atol=1e-5) and torch.equal(again, current)


def test_bench_train_step_times_a_frozen_encoder_against_nothing_frozen(tmp_path):
    """bench_train_step applies the config's model.freeze (stage 3f's frozen encoder) and, with --vs-unfrozen, times the
    same rows with nothing frozen: the smoke run records both and the trainable share."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "frozen.json"
    subprocess.run([sys.executable, str(repo / "benchmarks" / "bench_train_step.py"), "configs/small_z16/3f_decoder_continue_cpu.yaml",
                    "--quick", "--vs-unfrozen", "--threads", "1", "--set", "model.config.channel_multipliers=[1, 1, 1, 1]",
                    "--out", str(out)], cwd=repo, check=True, capture_output=True, text=True)
    rows = json.loads(out.read_text())["rows"]
    assert [r["batch_size"] for r in rows] == [1, 2]
    for row in rows:
        assert row["frozen"] == ["encoder"] and row["speedup_vs_unfrozen"] > 0 and row["unfrozen"]["s_per_step"] > 0
        assert 0 < row["trainable_parameters"] < row["unfrozen"]["trainable_parameters"]


def test_gradient_checkpointing_gives_the_same_gradients():
    x = torch.randn(1, 3, 5, 16, 16)
    grads = []
    for checkpointing in (False, True):
        model = tiny_ivvae().train()
        if checkpointing:
            model.enable_gradient_checkpointing()
        model(x).sample.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


def test_decode_crop_sizes_and_input_dtypes_are_checked(tiny_model):
    """decode's num_frames/height/width must be sizes the latents decode to; inputs must match the
    weights' dtype (outside autocast), with a ValueError rather than a failure inside a conv."""
    z = torch.zeros(1, tiny_model.config.latent_channels, 3, 4, 4)
    with torch.no_grad():
        assert tiny_model.decode(z, num_frames=7, height=30, width=25).sample.shape == (1, 3, 7, 30, 25)
        for bad in ({"num_frames": 10}, {"num_frames": 0}, {"num_frames": -3}, {"height": 33}, {"width": 16.0}):
            with pytest.raises(ValueError, match=next(iter(bad))):
                tiny_model.decode(z, **bad)
        for dtype in (torch.float64, torch.bfloat16):
            with pytest.raises(ValueError, match="weights are torch.float32"):
                tiny_model.encode(torch.zeros(1, 3, 5, 16, 16, dtype=dtype))
            with pytest.raises(ValueError, match="weights are torch.float32"):
                tiny_model.decode(z.to(dtype))
