"""Bad input to the public Python API (models, streaming/tiling switches, loading, pipeline): one clear
one-line exception naming the problem and the fix, never a deep torch traceback or a silently wrong result."""

from __future__ import annotations

import pytest
import torch

from ivvae import hub, pipeline
from ivvae.models import IVVAE, ImageVAE


def tiny(cls=IVVAE, **overrides):
    torch.manual_seed(0)
    config = dict(latent_channels=8, base_channels=8, encoder_blocks=1, decoder_blocks=1, **overrides)
    return cls(**config).eval()


@pytest.fixture(scope="module")
def model():
    return tiny()


@pytest.fixture(scope="module")
def video():
    torch.manual_seed(0)
    return torch.randint(0, 256, (5, 16, 16, 3), dtype=torch.uint8)


def one_line_error(kind, call, match):
    with pytest.raises(kind, match=match) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


# -------------------------------------------------------------------------------------------- model API
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@torch.no_grad()
def test_non_finite_values_are_refused_before_they_become_nan(model, value):
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    x[0, 1, 2, 3, 4] = value
    one_line_error(ValueError, lambda: model.encode(x), r"input holds NaN or infinite values.*nan_to_num")
    one_line_error(ValueError, lambda: model(x), r"input holds NaN or infinite values")
    z = model.encode(torch.zeros(1, 3, 5, 16, 16)).latent_dist.mode()
    z[0, 0, 0, 0, 0] = value
    one_line_error(ValueError, lambda: model.decode(z), r"latents hold NaN or infinite values")


@torch.no_grad()
def test_frames_in_0_255_are_refused_with_the_conversion(model):
    """The common slip: uint8-range frames as floats encode to garbage; [-1, 1] is the convention."""
    frames = torch.randint(0, 256, (1, 3, 5, 16, 16)).float()
    one_line_error(ValueError, lambda: model.encode(frames), r"values in \[0, 255\].*videos are in \[-1, 1\].*x / 127.5 - 1")
    one_line_error(ValueError, lambda: model(frames), r"videos are in \[-1, 1\]")
    model.encode(torch.randn(1, 3, 5, 16, 16) * 3)  # test signals beyond [-1, 1] still run
    assert tiny().train()(frames).sample.shape == frames.shape  # not checked while training (no sync per step)


@torch.no_grad()
def test_the_finiteness_check_leaves_training_and_the_models_own_latents_alone():
    """Training checks its loss (no sync per step); forward hands a broken model's NaN to its caller (grow checks it)."""
    model = tiny().train()
    x = torch.full((1, 3, 5, 16, 16), float("nan"))
    assert model(x).sample.isnan().all()
    broken = tiny()
    broken.decoder.post_quant_conv.convs["keyframe"].weight.data.fill_(float("nan"))
    assert broken(torch.zeros(1, 3, 5, 16, 16)).sample.isnan().any()


@pytest.mark.parametrize("value", [0, -1, 1.5, 2.0, "2", True])
def test_chunk_groups_must_be_a_whole_number(model, value):
    x = torch.zeros(1, 3, 5, 16, 16)
    z = torch.zeros(1, 8, 2, 2, 2)
    for call in (lambda: model.encode(x, chunk_groups=value), lambda: model.decode(z, chunk_groups=value),
                 lambda: tiny().enable_streaming(value)):
        one_line_error(ValueError, call, r"chunk_groups must be >= 1 \(a whole number of frame groups")


def test_enable_streaming_none_points_to_disable_streaming(model):
    one_line_error(ValueError, lambda: tiny().enable_streaming(None), r"disable_streaming\(\)")


# None keeps a size; (True, ...) is in test_api_review_s14
@pytest.mark.parametrize("args", [(16.0, 8), (16, 8.0), ("16", 8), (16, "8"), (16, 15.9)])
def test_enable_tiling_refuses_sizes_that_are_not_whole_numbers(args):
    model = tiny()
    one_line_error(ValueError, lambda: model.enable_tiling(*args), r"expected a whole number of pixels, a multiple of .*8 px")
    assert not model.use_tiling


def test_an_input_on_another_device_is_named(model):
    x = torch.zeros(1, 3, 5, 16, 16, device="meta")
    one_line_error(ValueError, lambda: model.encode(x), r"the input is on meta but the model is on cpu; move one of them")
    z = torch.zeros(1, 8, 2, 2, 2, device="meta")
    one_line_error(ValueError, lambda: model.decode(z), r"the latents are on meta but the model is on cpu")


@torch.no_grad()
def test_posterior_sample_takes_a_generator_not_a_seed(model):
    posterior = model.encode(torch.zeros(1, 3, 5, 16, 16)).latent_dist
    first = posterior.sample(torch.Generator().manual_seed(1))
    assert torch.equal(first, posterior.sample(torch.Generator().manual_seed(1)))
    one_line_error(TypeError, lambda: posterior.sample(1), r"expected a torch.Generator or None, got int.*manual_seed")
    image_posterior = tiny(ImageVAE).encode(torch.zeros(1, 3, 16, 16)).latent_dist
    one_line_error(TypeError, lambda: image_posterior.sample(0), r"expected a torch.Generator")


def test_normalize_latents_refuses_what_is_not_this_models_latents(model):
    z = torch.randn(1, 8, 2, 2, 2)
    torch.testing.assert_close(model.denormalize_latents(model.normalize_latents(z)), z)
    for name in ("normalize_latents", "denormalize_latents"):
        method = getattr(model, name)
        for bad, match in ((torch.zeros(1, 3, 5, 16, 16), "expected latents with 8 channels"), (z.long(), "expected float latents .*int64"),
                           ([1.0], "expected float latents .*list")):
            one_line_error(ValueError, lambda method=method, bad=bad: method(bad), rf"{name}: {match}")


@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (1, 3, 0, 16, 16), (1, 3, 5, -16, 16)])
def test_latent_shape_refuses_what_is_not_a_video_shape(model, shape):
    one_line_error(ValueError, lambda: model.latent_shape(shape), r"latent_shape: expected a video shape \(batch, 3, frames")


@torch.no_grad()
def test_image_vae_names_image_mistakes():
    image_vae = tiny(ImageVAE)
    z = image_vae.encode(torch.zeros(2, 3, 16, 16)).latent_dist.mode()
    one_line_error(ValueError, lambda: image_vae.decode(z, num_frames=3), r"num_frames=3 does not apply to image latents")
    assert image_vae.decode(z, num_frames=1).sample.shape == (2, 3, 16, 16)
    one_line_error(ValueError, lambda: image_vae.decode(z[:, :3]), r"expected float image latents of shape \(batch, 8, latent_height")
    one_line_error(ValueError, lambda: image_vae.encode(torch.zeros(3, 16, 16)), r"add a batch axis: x.unsqueeze\(0\)")
    one_line_error(ValueError, lambda: image_vae(torch.zeros(3, 16, 16)), r"add a batch axis")
    one_line_error(ValueError, lambda: ImageVAE(channel_multipliers=None), r"channel_multipliers=None: expected a list")


# -------------------------------------------------------------------------------------------- loading
def test_load_model_checks_device_and_dtype_before_loading(tmp_path):
    folder = tmp_path / "m"
    tiny().save_pretrained(folder)
    if not torch.cuda.is_available():
        one_line_error(ValueError, lambda: hub.load_model(folder, device="cuda"), r"CUDA is not available.*device='cpu'")
    one_line_error(ValueError, lambda: hub.load_model(folder, device="gpu"), r"device='gpu' is not a device: use 'cpu', 'cuda'")
    one_line_error(ValueError, lambda: hub.load_model(folder, dtype=torch.int8), r"dtype=torch.int8: expected a floating-point")
    one_line_error(ValueError, lambda: hub.load_model(folder, dtype="float8"), r"one of the names bf16")
    # diffusers takes a dtype name silently as float32
    assert hub.load_model(folder, dtype="float16").dtype == torch.float16
    assert hub.load_model(folder, dtype="bf16").dtype == torch.bfloat16
    assert IVVAE.from_pretrained(folder, torch_dtype="float16").dtype == torch.float16
    one_line_error(ValueError, lambda: IVVAE.from_pretrained(folder, torch_dtype=float), r"torch_dtype=<class 'float'>")


def test_from_pretrained_names_a_file_or_a_missing_folder(tmp_path):
    folder = tmp_path / "m"
    tiny().save_pretrained(folder)
    one_line_error(hub.ModelLoadError, lambda: IVVAE.from_pretrained(folder / "config.json"), r"is a file, not a model folder")
    one_line_error(hub.ModelNotFoundError, lambda: IVVAE.from_pretrained(tmp_path / "missing"), r"model folder '.*missing' not found")
    one_line_error(hub.ModelNotFoundError, lambda: IVVAE.from_pretrained(str(tmp_path / "missing")), r"not found")


# -------------------------------------------------------------------------------------------- pipeline
@pytest.mark.parametrize(("frames", "match"), [
    (lambda v: v.float() / 255, r"got torch.float32 .*convert float frames in \[0, 1\]"),
    (lambda v: v.permute(0, 3, 1, 2), r"channels-last: video.permute\(0, 2, 3, 1\)"),
    (lambda v: v[0], r"for a single frame add a time axis: frame\[None\]"),
    (lambda v: v[None], r"one video at a time: video\[0\]"),
    (lambda v: v[:, :0], r"the video is empty"),
])
def test_frames_that_are_not_uint8_thwc_name_the_fix(model, video, frames, match):
    one_line_error(ValueError, lambda: pipeline.reconstruct(model, frames(video), progress=False), rf"expected uint8 frames .*{match}")


@pytest.mark.parametrize("chunk_groups", [1.5, "2", True])
def test_pipeline_chunk_groups_are_not_rounded(model, video, chunk_groups):
    one_line_error(ValueError, lambda: pipeline.encode_video(model, video, chunk_groups=chunk_groups, progress=False),
                   r"chunk_groups must be >= 1")


@pytest.mark.parametrize("tile", [16, (16,), (16, 8, 1), (16.5, 8), ("a", 8)])
def test_pipeline_tiles_are_a_pair_of_whole_numbers(model, video, tile):
    one_line_error(ValueError, lambda: pipeline.encode_video(model, video, tile=tile, progress=False), r"pair \(size, overlap\)")
    one_line_error(ValueError, lambda: pipeline.check_memory(model, 5, 16, 16, tile=tile), r"pair \(size, overlap\)")


def test_encode_clips_names_what_is_not_a_clip_batch(model):
    one_line_error(ValueError, lambda: pipeline.encode_clips(model, torch.zeros(3, 5, 16, 16)), r"got a 4-D tensor")
    one_line_error(ValueError, lambda: pipeline.encode_clips(model, [[0.0]]), r"expected a float video tensor .*got list")


@pytest.mark.parametrize("weights", [torch.float16, torch.bfloat16])
def test_the_pipeline_feeds_a_half_precision_model_its_dtype(video, weights):
    half = tiny().to(weights)
    for dtype in ("fp32", "bf16"):
        assert pipeline.reconstruct(half, video, dtype=dtype, progress=False).shape == video.shape
    clips = torch.zeros(1, 3, 5, 16, 16, dtype=torch.float16)
    assert pipeline.encode_clips(tiny(), clips, dtype="bf16").shape == (1, 8, 2, 2, 2)


def test_decode_latents_names_bad_latents_and_metadata(model, video):
    encoded = pipeline.encode_video(model, video, progress=False)
    one_line_error(ValueError, lambda: pipeline.decode_latents(model, encoded.latents[0, :, 0], progress=False),
                   r"expected the latents of one video, \(1, Z, latent_frames")
    one_line_error(ValueError, lambda: pipeline.decode_latents(model, encoded.latents, [1], progress=False), r"metadata must be a dict")


def test_pipeline_functions_name_a_missing_model(video):
    for call in (lambda: pipeline.encode_video(None, video, progress=False), lambda: pipeline.reconstruct(IVVAE, video, progress=False),
                 lambda: pipeline.check_memory("ivvae-small-z16", 5, 16, 16)):
        one_line_error(ValueError, call, r"expected an IV-VAE model .*ivvae.load_model")


@pytest.mark.parametrize("fps", [-1, float("nan"), float("inf"), "25"])
def test_encode_video_refuses_a_frame_rate_it_cannot_store(model, video, fps):
    one_line_error(ValueError, lambda: pipeline.encode_video(model, video, fps=fps, progress=False), r"expected a finite frame rate >= 0")


def test_memory_estimate_refuses_sizes_that_are_not_a_video(model):
    for args in ((0, 16, 16), (5, -16, 16), (5.5, 16, 16)):
        one_line_error(ValueError, lambda args=args: pipeline.check_memory(model, *args), r"expected a whole number >= 1")
    one_line_error(ValueError, lambda: pipeline.check_memory(model, 5, 16, 16, chunk_groups=0), r"chunk_groups must be >= 1")
    one_line_error(ValueError, lambda: pipeline.check_memory(model, 5, 16, 16, fraction=0), r"fraction=0: expected a number > 0")


def test_frame_helpers_refuse_what_they_would_mangle(video, tmp_path):
    one_line_error(ValueError, lambda: pipeline.center_crop(video[0], 4, 4), r"expected frames \(T, H, W, C\)")
    one_line_error(ValueError, lambda: pipeline.center_crop(video, 0, 4), r"height=0")
    one_line_error(ValueError, lambda: pipeline.side_by_side(video, video, gap=-2), r"gap=-2")
    one_line_error(ValueError, lambda: pipeline.save_latents(tmp_path / "z.safetensors", video.numpy()), r"expected float latents")
    (tmp_path / "folder").mkdir()
    one_line_error(IsADirectoryError, lambda: pipeline.save_latents(tmp_path / "folder", torch.zeros(1, 8, 2, 2, 2), overwrite=True),
                   r"is a folder: give the latents file's path")
