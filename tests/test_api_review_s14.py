"""Review of the public encode/decode/streaming/tiling API as a user meets it (session 14)."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.autoencoders.vae import DecoderOutput

from ivvae import pipeline, streaming
from ivvae.models import IVVAE


@pytest.fixture(scope="module")
def model() -> IVVAE:
    torch.manual_seed(0)
    return IVVAE(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1).eval()


def _video(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0)) * 2 - 1


# --------------------------------------------------------------------------------------------
# progress callbacks
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["encode", "decode"])
def test_callback_counts_every_chunk_of_every_tile_and_slice_once(model, method):
    """callback(done, total) used to restart at 1 for every tile and batch slice, with a per-tile total."""
    x = _video(2, 3, 9, 32, 32)  # 3 chunks of one group, 3x3 tiles of 16 px (overlap 8), 2 slices
    calls = []
    model.enable_tiling(16, 8)
    model.enable_slicing()
    try:
        with torch.no_grad():
            z = model.encode(x).latent_dist.mode()
            arg = x if method == "encode" else z
            getattr(model, method)(arg, chunk_groups=1, callback=lambda done, total: calls.append((done, total)))
    finally:
        model.disable_tiling()
        model.disable_slicing()
    total = 3 * 9 * 2
    assert calls == [(done, total) for done in range(1, total + 1)]


def test_progress_bar_follows_the_models_count():
    """A batch encoded one sample at a time (slicing) reports more chunks than the pipeline's estimate: the bar takes the model's."""
    bar = pipeline._ChunkProgress("encode", 3, enabled=True)
    try:
        for done in range(1, 7):
            bar(done, 6)
        assert (bar.bar.n, bar.bar.total) == (6, 6)
    finally:
        bar.close()


# --------------------------------------------------------------------------------------------
# latents from the pipeline are ordinary tensors
# --------------------------------------------------------------------------------------------
def test_pipeline_latents_work_with_autograd(model):
    """encode_clips of one clip returned an inference-mode tensor: using the latents as a training
    target (saved for backward) failed with 'Inference tensors cannot be saved for backward'."""
    frames = torch.randint(0, 256, (5, 16, 16, 3), dtype=torch.uint8)
    for z in (pipeline.encode_clips(model, _video(1, 3, 5, 16, 16)), pipeline.encode_video(model, frames, progress=False).latents):
        assert not z.is_inference()
        weight = torch.ones(1, requires_grad=True)
        (z * weight).sum().backward()
        assert weight.grad is not None


# --------------------------------------------------------------------------------------------
# errors that name the fix
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad, fix",
    [
        (torch.zeros(3, 5, 16, 16), r"one video \(C, T, H, W\) add a batch axis: x.unsqueeze\(0\)"),
        (torch.zeros(2, 3, 16, 16), r"images \(B, C, H, W\) add a time axis: x.unsqueeze\(2\)"),
        (torch.zeros(5, 16, 16, 3), r"x.permute\(3, 0, 1, 2\).unsqueeze\(0\)"),
        (torch.zeros(1, 5, 3, 16, 16), r"channels second; for \(B, T, C, H, W\) tensors use x.permute\(0, 2, 1, 3, 4\)"),
        (torch.zeros(1, 5, 16, 16, 3), r"x.permute\(0, 4, 1, 2, 3\)"),
        (torch.zeros(1, 3, 5, 16, 16).numpy(), r"torch.from_numpy"),
        (DecoderOutput(sample=torch.zeros(1, 3, 5, 16, 16)), r"got DecoderOutput: pass the video, out.sample"),
    ],
)
def test_video_layout_errors_name_the_fix(model, bad, fix):
    with pytest.raises(ValueError, match=fix):
        model.encode(bad)


def test_latent_layout_errors_name_the_fix(model):
    with torch.no_grad():
        output = model.encode(_video(1, 3, 5, 16, 16))
    z = output.latent_dist.mode()
    for bad, fix in (
        (output, r"got AutoencoderKLOutput: pass the latents, out.latent_dist.mode\(\)"),
        (output.latent_dist, r"posterior.mode\(\)"),
        (z[0], r"add a batch axis: z.unsqueeze\(0\)"),
        (z.transpose(1, 2), r"z.permute\(0, 2, 1, 3, 4\)"),
        (torch.zeros(1, 8, 2, 2, 2), r"come from another model \(this one's have 4\)"),
        (torch.zeros(1, 3, 5, 16, 16), r"a video goes to encode\(\)"),
    ):
        with pytest.raises(ValueError, match=r"expected float latents of shape \(batch, 4, .*" + fix):
            model.decode(bad)


def test_streams_given_a_whole_tensor_say_so(model):
    """Iterating a tensor walks its batch: each sample then failed as a '4-D tensor' with an unrelated hint."""
    with pytest.raises(ValueError, match=r"encode_stream takes an iterable of pieces .*x.split\(4, dim=2\).*encode\(x\)"):
        list(model.encode_stream(_video(1, 3, 5, 16, 16)))
    with pytest.raises(ValueError, match=r"decode_stream takes an iterable of pieces .*decode\(z\)"):
        list(model.decode_stream(torch.zeros(1, 4, 2, 2, 2)))


def test_enable_tiling_with_a_switch_says_what_it_takes(model):
    """diffusers' old ``enable_tiling(use_tiling=True)`` took a flag; here the first argument is the tile size."""
    with pytest.raises(ValueError, match=r"tile size in pixels, not a switch; enable_tiling\(\) turns tiling on"):
        model.enable_tiling(True)
    assert not model.use_tiling


# --------------------------------------------------------------------------------------------
# exactness and memory guards
# --------------------------------------------------------------------------------------------
def test_a_length_that_is_not_one_plus_four_k_streams_exactly(model):
    """18 frames (padded to 21), odd frame size: chunks and pieces equal one pass; decode crops back."""
    x = _video(2, 3, 18, 20, 12)
    with torch.no_grad():
        z = model.encode(x).latent_dist.mode()
        video = model.decode(z, num_frames=18, height=20, width=12).sample
        streamed = torch.cat([p.mode() for p in model.encode_stream(iter(x.split(7, dim=2)), chunk_groups=2)], dim=2)
        pieces = model.decode_stream(iter(z.split(2, dim=2)), chunk_groups=3, num_frames=18, height=20, width=12)
        decoded = torch.cat(list(pieces), dim=2)
    assert z.shape == (2, 4, 6, 3, 2) and model.decode(z).sample.shape == (2, 3, 21, 24, 16)
    torch.testing.assert_close(streamed, z, rtol=0, atol=1e-5)
    torch.testing.assert_close(decoded, video, rtol=0, atol=1e-5)
    assert video.shape == x.shape


def test_streamed_tiles_keep_one_frame_or_two_per_layer_and_tile(model):
    """What a tiled stream holds between chunks is every tile's layer caches, each a frame or two of
    that tile (copies: a view would keep the whole chunk's activation alive)."""
    runner = streaming.ChunkedStream(model.encoder, model.temporal_compression, 1, (16, 8, 1 / 8))
    x = _video(1, 3, 9, 32, 32)
    with torch.no_grad():
        outputs = [out for piece in x.split(3, dim=2) for out in runner.push(piece)]
    assert len(outputs) == 3 and len(runner._states) == streaming.tile_count(32, 32, 16, 8) == 9
    caches = [t for states in runner._states.values() for state in states for t in state if isinstance(t, torch.Tensor)]
    assert caches and all(t.shape[2] <= 2 and t.shape[-1] <= 16 and t.untyped_storage().nbytes() == t.nbytes for t in caches)


def test_decode_takes_diffusers_generator_keyword(model):
    """diffusers pipelines call vae.decode(z, return_dict=False, generator=g): accepted, and decoding stays deterministic."""
    from ivvae.models import ImageVAE

    z = model.encode(torch.rand(1, 3, 5, 16, 16) * 2 - 1).latent_dist.mode()
    (video,) = model.decode(z, return_dict=False, generator=torch.Generator().manual_seed(1))
    assert torch.equal(video, model.decode(z).sample)
    image_vae = ImageVAE(base_channels=8, latent_channels=4, channel_multipliers=[1, 2, 2, 2]).eval()
    with torch.no_grad():
        zi = image_vae.encode(torch.rand(2, 3, 16, 16) * 2 - 1).latent_dist.mode()
        assert torch.equal(image_vae.decode(zi, generator=torch.Generator()).sample, image_vae.decode(zi).sample)


def test_enable_tiling_without_sizes_keeps_the_sizes_set_before():
    """diffusers' models keep their tile sizes across enable_tiling(); ours reset them to 256/64 (session 14 note)."""
    vae = IVVAE(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1)
    assert (vae.tile_size, vae.tile_overlap) == (256, 64)
    vae.enable_tiling(tile_size=128, tile_overlap=32)
    vae.disable_tiling()
    vae.enable_tiling()
    assert vae.use_tiling and (vae.tile_size, vae.tile_overlap) == (128, 32)
    vae.enable_tiling(tile_overlap=16)
    assert (vae.tile_size, vae.tile_overlap) == (128, 16)
    with pytest.raises(ValueError, match="multiples of the spatial compression"):
        vae.enable_tiling(tile_size=100)
    assert (vae.tile_size, vae.tile_overlap) == (128, 16)
