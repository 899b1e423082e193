"""The library behind the CLI: reconstruct, encode/decode + latent files, metrics, memory, hub."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from ivvae import hub, pipeline
from ivvae.models import IVVAE, ImageVAE


def small_model(latent_channels: int = 8) -> IVVAE:
    """A tiny IV-VAE (one residual block per stage) so every call takes well under a second."""
    torch.manual_seed(0)
    return IVVAE(latent_channels=latent_channels, base_channels=8, encoder_blocks=1, decoder_blocks=1).eval()


@pytest.fixture(scope="module")
def model() -> IVVAE:
    return small_model()


@pytest.fixture(scope="module")
def video() -> torch.Tensor:
    """9 frames of 20x36 (neither a multiple of 8): exercises padding and cropping."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(9).view(9, 1, 1, 1)
    y = torch.arange(20).view(1, 20, 1, 1)
    x = torch.arange(36).view(1, 1, 36, 1)
    c = torch.arange(3).view(1, 1, 1, 3)
    smooth = 127 + 90 * torch.sin(0.3 * x + 0.2 * y + 0.4 * t + c)
    return (smooth + torch.randint(-10, 10, (9, 20, 36, 3), generator=g)).clamp(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------------------------
# reconstruct / encode / decode
# --------------------------------------------------------------------------------------------
def test_reconstruct_keeps_shape(model, video):
    out = pipeline.reconstruct(model, video, progress=False)
    assert out.dtype == torch.uint8 and out.shape == video.shape


@pytest.mark.parametrize("chunk_groups", [None, 1])
def test_encode_save_load_decode_equals_reconstruct(model, video, tmp_path, chunk_groups):
    expected = pipeline.reconstruct(model, video, chunk_groups=chunk_groups, progress=False)
    encoded = pipeline.encode_video(model, video, fps=25, chunk_groups=chunk_groups, progress=False)
    path = tmp_path / "latents.safetensors"
    pipeline.save_latents(path, encoded)
    loaded = pipeline.load_latents(path)
    assert torch.equal(loaded.latents, encoded.latents)
    decoded = pipeline.decode_latents(model, loaded, chunk_groups=chunk_groups, progress=False)
    assert torch.equal(decoded, expected)


@pytest.mark.parametrize("chunk_groups", [None, 1, 2])
@pytest.mark.parametrize("tile", [None, (16, 8)])
def test_videos_in_pieces_equal_the_whole_video_workflows(model, video, chunk_groups, tile):
    """reconstruct_pieces / encode_pieces / decode_pieces give reconstruct / encode_video /
    decode_latents exactly, whatever the pieces, and pair each reconstruction with its input."""
    options = {"chunk_groups": chunk_groups, "tile": tile}
    expected = pipeline.reconstruct(model, video, progress=False, **options)
    pairs = list(pipeline.reconstruct_pieces(model, iter(video.split([2, 4, 3])), **options))
    assert torch.equal(torch.cat([a for a, _ in pairs]), video) and torch.equal(torch.cat([b for _, b in pairs]), expected)
    assert all(a.shape == b.shape for a, b in pairs)
    encoded = pipeline.encode_video(model, video, fps=25, progress=False, **options)
    in_pieces = pipeline.encode_pieces(model, iter(video.split(4)), fps=25, **options)
    assert torch.equal(in_pieces.latents, encoded.latents) and in_pieces.metadata == encoded.metadata
    decoded = list(pipeline.decode_pieces(model, encoded, **options))
    assert torch.equal(torch.cat(decoded), pipeline.decode_latents(model, encoded, progress=False, **options))


def test_decode_pieces_decodes_a_chunk_at_a_time(model, video):
    """The first piece comes out before the decoder has run the later chunks (memory of one chunk)."""
    encoded = pipeline.encode_video(model, video, progress=False)
    runs = []
    hook = model.decoder.register_forward_hook(lambda module, inputs, output: runs.append(output.shape[2]))
    try:
        pieces = pipeline.decode_pieces(model, encoded, chunk_groups=1)
        first = next(pieces)
        assert first.shape[0] == 1 and runs == [1]
        assert sum(p.shape[0] for p in pieces) == video.shape[0] - 1 and len(runs) == 3
    finally:
        hook.remove()


def test_memory_estimate_with_streamed_io_does_not_grow_with_the_video(model):
    short, long = (pipeline.estimate_peak_memory_bytes(model, t, 256, 256, chunk_groups=1, streamed_io=True) for t in (17, 100_001))
    assert short == long
    assert pipeline.estimate_peak_memory_bytes(model, 100_001, 256, 256, chunk_groups=1) > 100 * short
    assert pipeline.estimate_peak_memory_bytes(model, 101, 256, 256, streamed_io=True) == \
        pipeline.estimate_peak_memory_bytes(model, 101, 256, 256)  # one pass holds the whole video anyway


def test_the_streamed_estimate_counts_every_tiles_layer_caches(model):
    """Streamed chunk by chunk, every spatial tile keeps its caches between chunks: their size is
    measured per pixel (it scales with the frame's area) and counted for the whole frame."""
    from ivvae.layers import stream, stream_states

    encoder_bytes, decoder_bytes = pipeline.stream_state_bytes_per_pixel(model)
    with torch.no_grad(), stream(model.encoder):
        for frames in (1, 4):
            model.encoder(torch.zeros(1, 3, frames, 48, 32))
        held = sum(t.numel() * 4 for state in stream_states(model.encoder) for t in state if isinstance(t, torch.Tensor))
    assert encoder_bytes > 0 and decoder_bytes > 0 and held == encoder_bytes * 48 * 32
    tiled = {side: pipeline.estimate_peak_memory_bytes(model, 33, side, side, chunk_groups=1, tile=(64, 16), streamed_io=True)
             for side in (64, 512)}
    assert tiled[512] - tiled[64] >= (encoder_bytes + decoder_bytes) * (512 * 512 - 64 * 64)


def test_bf16_round_trip_equals_reconstruct(video, tmp_path):
    model = small_model()
    expected = pipeline.reconstruct(model, video, dtype="bf16", progress=False)
    assert expected.shape == video.shape
    encoded = pipeline.encode_video(model, video, dtype="bf16", progress=False)
    pipeline.save_latents(tmp_path / "z.safetensors", encoded)
    decoded = pipeline.decode_latents(model, pipeline.load_latents(tmp_path / "z.safetensors"), dtype="bf16", progress=False)
    assert torch.equal(decoded, expected)


def test_chunked_matches_one_pass(model, video):
    one = pipeline.reconstruct(model, video, progress=False).int()
    chunked = pipeline.reconstruct(model, video, chunk_groups=1, progress=False).int()
    assert (one - chunked).abs().max() <= 1  # equal up to float rounding of the last bit


def test_tiling_keeps_shape_and_restores_model_settings(model, video):
    out = pipeline.reconstruct(model, video, tile=(16, 8), progress=False)
    assert out.shape == video.shape
    assert not model.use_tiling


def test_latent_metadata(model, video):
    encoded = pipeline.encode_video(model, video, fps=29.97, chunk_groups=2, progress=False)
    meta = encoded.metadata
    assert encoded.latents.shape == (1, 8, 3, 3, 5) and encoded.latents.dtype == torch.float32
    assert (meta["num_frames"], meta["height"], meta["width"], meta["fps"]) == (9, 20, 36, 29.97)
    assert meta["config_hash"] == pipeline.config_hash(model) and meta["normalized"] is False
    assert meta["chunk_groups"] == 2 and meta["dtype"] == "fp32"


def test_normalized_latents(model, video):
    raw = pipeline.encode_video(model, video, progress=False)
    norm = pipeline.encode_video(model, video, normalize=True, progress=False)
    assert norm.metadata["normalized"] is True
    torch.testing.assert_close(norm.latents, model.normalize_latents(raw.latents))
    a = pipeline.decode_latents(model, raw, progress=False).int()
    b = pipeline.decode_latents(model, norm, progress=False).int()
    assert (a - b).abs().max() <= 1


def test_decode_refuses_latents_of_another_model(model, video):
    encoded = pipeline.encode_video(model, video, progress=False)
    torch.manual_seed(0)
    other = IVVAE(latent_channels=8, base_channels=8, encoder_blocks=1, decoder_blocks=2).eval()
    with pytest.raises(ValueError, match="another model"):
        pipeline.decode_latents(other, encoded, progress=False)


def test_latents_still_decode_after_the_model_gets_new_normalisation_factors(video):
    """``latent-stats --write-model`` changes only the factors: raw latents made before still decode,
    and normalised ones are denormalised with the factors they were made with."""
    before = small_model()
    raw = pipeline.encode_video(before, video, progress=False)
    normalised = pipeline.encode_video(before, video, normalize=True, progress=False)
    expected = pipeline.decode_latents(before, raw, progress=False)
    after = small_model()
    after.register_to_config(scaling_factor=0.5, shift_factor=0.3)
    assert torch.equal(pipeline.decode_latents(after, raw, progress=False), expected)
    assert (pipeline.decode_latents(after, normalised, progress=False).int() - expected.int()).abs().max() <= 1


def test_load_latents_errors(tmp_path, model, video):
    with pytest.raises(FileNotFoundError):
        pipeline.load_latents(tmp_path / "missing.safetensors")
    (tmp_path / "text.safetensors").write_text("not safetensors")
    with pytest.raises(pipeline.LatentFileError, match="not a safetensors file"):
        pipeline.load_latents(tmp_path / "text.safetensors")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(pipeline.LatentFileError, match="no IV-VAE latents"):
        pipeline.load_latents(tmp_path / "other.safetensors")
    encoded = pipeline.encode_video(model, video, progress=False)
    (tmp_path / ".z.safetensors.tmp").write_text("a file of the user's")  # the writer's temporary name must not take it
    pipeline.save_latents(tmp_path / "z.safetensors", encoded)
    assert (tmp_path / ".z.safetensors.tmp").read_text() == "a file of the user's"
    assert sorted(p.name for p in tmp_path.glob(".z.safetensors*")) == [".z.safetensors.tmp"]
    with pytest.raises(FileExistsError):
        pipeline.save_latents(tmp_path / "z.safetensors", encoded)


def test_invalid_arguments(model, video):
    with pytest.raises(ValueError, match="uint8"):
        pipeline.reconstruct(model, video.float(), progress=False)
    with pytest.raises(ValueError, match="dtype"):
        pipeline.reconstruct(model, video, dtype="fp16", progress=False)
    with pytest.raises(ValueError, match="chunk_groups"):
        pipeline.reconstruct(model, video, chunk_groups=0, progress=False)


def test_image_vae_through_the_pipeline(video):
    torch.manual_seed(0)
    image_vae = ImageVAE(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1).eval()
    out = pipeline.reconstruct(image_vae, video[:3], chunk_groups=1, progress=False)
    assert out.shape == video[:3].shape


def test_tiles_must_be_whole_latent_pixels(model, video):
    # (20, 4) used to run as (16, 0), no blending, while (20, 4) was recorded
    for call in (lambda: pipeline.encode_video(model, video, tile=(20, 4), progress=False),
                 lambda: pipeline.encode_clips(model, torch.zeros(1, 3, 9, 24, 24), tile=(16, 4)),
                 lambda: pipeline.reconstruct(model, video, tile=(20, 8), progress=False)):
        with pytest.raises(ValueError, match=r"multiples of the model's spatial compression \(8 px\); nearest valid: size"):
            call()
    with pytest.raises(ValueError, match="size 16 or 24, overlap 0 or 8"):
        pipeline.encode_video(model, video, tile=(20, 4), progress=False)
    encoded = pipeline.encode_video(model, video, tile=(24, 8), progress=False)
    assert encoded.metadata["tile"] == [24, 8]


def test_decode_refuses_latents_that_decode_to_a_wrong_video(model, video, tmp_path):
    encoded = pipeline.encode_video(model, video, progress=False)
    z, meta = encoded.latents.clone(), encoded.metadata
    for value in (float("nan"), float("inf")):  # used to give an all-black video
        latents = z.clone()
        latents[0, 0, 0, 0, 0] = value
        with pytest.raises(ValueError, match="1 of 360 latent values are NaN or infinite"):
            pipeline.decode_latents(model, latents, meta, progress=False)
    with pytest.raises(ValueError, match="int64, not float"):
        pipeline.decode_latents(model, z.long(), meta, progress=False)
    pipeline.save_latents(tmp_path / "batch.safetensors", torch.cat([z, z]), meta)
    with pytest.raises(ValueError, match=r"batch.safetensors'.*batch of 2 .*model.decode"):  # used to drop the second video
        pipeline.decode_latents(model, pipeline.load_latents(tmp_path / "batch.safetensors"), progress=False)
    z[0, 0, 0, 0, 0] = 1e30  # finite: decoded
    assert pipeline.decode_latents(model, z, meta, progress=False).shape == video.shape


def test_decode_refuses_metadata_that_disagrees_with_the_latents(model, video, tmp_path):
    encoded = pipeline.encode_video(model, video, progress=False)  # latents (1, 8, 3, 3, 5) of 9x20x36
    for key, value, message in (("height", 64, "height 64, but 3 latent rows decode to 24 px"),
                                ("width", 8, "width 8, but 5 latent columns decode to 40 px"),  # used to crop silently
                                ("num_frames", 4, "num_frames 4, but 3 latent frames decode to 9 frames")):
        path = tmp_path / f"{key}.safetensors"
        pipeline.save_latents(path, encoded.latents, {**encoded.metadata, key: value})
        with pytest.raises(ValueError, match=rf"latents file '.*{key}.safetensors': its metadata says {message}"):
            pipeline.decode_latents(model, pipeline.load_latents(path), progress=False)
    pipeline.save_latents(tmp_path / "negative.safetensors", encoded.latents, {**encoded.metadata, "num_frames": -5})
    with pytest.raises(pipeline.LatentFileError, match="num_frames -5, not a positive whole number"):
        pipeline.load_latents(tmp_path / "negative.safetensors")
    pipeline.save_latents(tmp_path / "tile.safetensors", encoded.latents, {**encoded.metadata, "tile": [3, 1]})
    loaded = pipeline.load_latents(tmp_path / "tile.safetensors")
    with pytest.raises(ValueError, match=r"tile.safetensors': its metadata records tile \[3, 1\].*--tile 0"):
        pipeline.decode_latents(model, loaded, tile=tuple(loaded.metadata["tile"]), progress=False)
    pipeline.save_latents(tmp_path / "tile_text.safetensors", encoded.latents, {**encoded.metadata, "tile": "big"})
    with pytest.raises(pipeline.LatentFileError, match=r'tile "big", not \[size, overlap\]'):
        pipeline.load_latents(tmp_path / "tile_text.safetensors")


def test_cli_decode_names_the_file_and_the_override(model, video, tmp_path, capsys):
    from cli_helpers import error_line, run

    model.save_pretrained(tmp_path / "model")
    encoded = pipeline.encode_video(model, video, fps=25, progress=False)
    pipeline.save_latents(tmp_path / "z.safetensors", encoded.latents, {**encoded.metadata, "tile": [3, 1]})
    args = ["decode", tmp_path / "z.safetensors", tmp_path / "out.mp4", "--model", tmp_path / "model", "--no-progress"]
    code, _, err = run(capsys, *args)
    assert code == 2 and "z.safetensors': its metadata records tile [3, 1]" in error_line(err) and "--tile 0" in error_line(err)
    code, _, err = run(capsys, *args, "--tile", "0")
    assert code == 0, err


# --------------------------------------------------------------------------------------------
# metrics and frame helpers
# --------------------------------------------------------------------------------------------
def test_reconstruction_metrics(video):
    same = pipeline.reconstruction_metrics(video, video)
    assert same["psnr"] == pytest.approx(100.0) and same["ssim"] == pytest.approx(1.0)
    noisy = (video.int() + 8).clamp(0, 255).to(torch.uint8)
    metrics = pipeline.reconstruction_metrics(video, noisy)
    assert 25 < metrics["psnr"] < 40 and 0 < metrics["ssim"] < 1
    tiny = video[:, :10, :12]  # smaller than SSIM's 11x11 window: PSNR only
    assert pipeline.reconstruction_metrics(tiny, tiny) == {"psnr": pytest.approx(100.0), "ssim": None}


def test_side_by_side_and_center_crop(video):
    both = pipeline.side_by_side(video, video.flip(2), gap=2)
    assert both.shape == (9, 20, 74, 3)
    assert torch.equal(both[:, :, :36], video) and torch.equal(both[:, :, 38:], video.flip(2))
    assert pipeline.side_by_side(video, video).shape == (9, 20, 72, 3)
    crop = pipeline.center_crop(video, 16, 16)
    assert torch.equal(crop, video[:, 2:18, 10:26])
    with pytest.raises(ValueError):
        pipeline.side_by_side(video, video[:2])


# --------------------------------------------------------------------------------------------
# memory estimate
# --------------------------------------------------------------------------------------------
def test_memory_estimate_follows_chunks_and_tiles():
    with torch.device("meta"):
        model = IVVAE(latent_channels=16, base_channels=64)
    est = pipeline.estimate_peak_memory_bytes
    one_pass_short, one_pass_long = est(model, 17, 256, 256), est(model, 65, 256, 256)
    stream_short, stream_long = est(model, 17, 256, 256, chunk_groups=1), est(model, 65, 256, 256, chunk_groups=1)
    assert one_pass_long > 3 * (one_pass_short - stream_short)  # one pass grows with T
    assert stream_short < one_pass_short and stream_long < 1.2 * stream_short
    assert est(model, 17, 1024, 1024, chunk_groups=1, tile=(256, 64)) < est(model, 17, 1024, 1024, chunk_groups=1)
    assert est(model, 17, 256, 256, dtype="bf16") < one_pass_short + 300 * 2**20


def test_check_memory_refuses_with_suggestions(model, monkeypatch):
    monkeypatch.setattr(pipeline, "available_memory_bytes", lambda device="cpu": 2**20)
    with pytest.raises(pipeline.MemoryRiskError, match="--chunk-groups 1") as info:
        pipeline.check_memory(model, 17, 256, 256)
    assert "--tile 256" in str(info.value) and "\n" not in str(info.value)
    monkeypatch.setattr(pipeline, "available_memory_bytes", lambda device="cpu": 2**40)
    assert pipeline.check_memory(model, 17, 256, 256) > 0


# --------------------------------------------------------------------------------------------
# hub
# --------------------------------------------------------------------------------------------
def test_load_model_from_folder(model, tmp_path):
    model.save_pretrained(tmp_path / "m")
    loaded = hub.load_model(tmp_path / "m")
    assert type(loaded) is IVVAE and not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_bundled_model_by_name(model, tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "PRETRAINED_DIR", tmp_path)
    model.save_pretrained(tmp_path / hub.DEFAULT_MODEL)
    assert hub.resolve_model_path(hub.DEFAULT_MODEL) == tmp_path / hub.DEFAULT_MODEL
    assert hub.bundled_models() == [hub.DEFAULT_MODEL]
    assert isinstance(hub.load_model(hub.DEFAULT_MODEL), IVVAE)


def test_from_pretrained_takes_a_bundled_short_name(model, tmp_path, monkeypatch):
    """``IVVAE.from_pretrained("ivvae-small-z16")`` loads the bundled folder (no Hub request);
    a folder of that name in the working directory wins over it."""
    monkeypatch.setattr(hub, "PRETRAINED_DIR", tmp_path / "pretrained")
    model.save_pretrained(tmp_path / "pretrained" / "tiny-bundled")
    monkeypatch.chdir(tmp_path)
    loaded = IVVAE.from_pretrained("tiny-bundled")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True))
    assert hub.bundled_model_folder("tiny-bundled") == tmp_path / "pretrained" / "tiny-bundled"
    (tmp_path / "tiny-bundled").mkdir()  # a local folder of the same name is what the user means
    assert hub.bundled_model_folder("tiny-bundled") is None
    assert hub.bundled_model_folder("org/tiny-bundled") is None and hub.bundled_model_folder(tmp_path) is None


def test_from_pretrained_reads_the_hub_cache_but_never_downloads_unasked(model, tmp_path, monkeypatch):
    """A name that is no folder and no bundled model is a Hub repo id looked up in the local cache
    only: a cached repo loads offline; a mistyped folder fails at once with the fix named."""
    monkeypatch.chdir(tmp_path)
    revision = "0" * 40
    repo = tmp_path / "hf-cache" / "models--someone--tiny-ivvae"
    model.save_pretrained(repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    loaded = IVVAE.from_pretrained("someone/tiny-ivvae", cache_dir=tmp_path / "hf-cache")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True))

    for typo in ("models/ivvae_z16_dim46", "ivvae-smal-z16"):
        with pytest.raises(hub.ModelNotFoundError, match="local_files_only=False") as info:
            IVVAE.from_pretrained(typo, cache_dir=tmp_path / "hf-cache")
        assert f"no folder '{typo}'" in str(info.value) and "ivvae convert" in str(info.value)
    with pytest.raises(hub.ModelNotFoundError, match="is a preset"):
        IVVAE.from_pretrained("ivvae_z16_dim64")


def test_missing_default_model_message(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "PRETRAINED_DIR", tmp_path / "pretrained")
    with pytest.raises(hub.ModelNotFoundError) as info:
        hub.resolve_model_path(hub.DEFAULT_MODEL)
    message = str(info.value)
    assert hub.DEFAULT_MODEL in message and str(tmp_path / "pretrained") in message and "--model DIR" in message
    with pytest.raises(FileNotFoundError, match="not found"):
        hub.resolve_model_path(tmp_path / "no" / "such" / "dir")


def test_broken_model_folders(model, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(hub.ModelLoadError, match="no config.json"):
        hub.load_model(tmp_path / "empty")
    model.save_pretrained(tmp_path / "noweights")
    (tmp_path / "noweights" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(hub.ModelLoadError, match="no weights file"):
        hub.load_model(tmp_path / "noweights")
    model.save_pretrained(tmp_path / "other")
    config = json.loads((tmp_path / "other" / "config.json").read_text())
    (tmp_path / "other" / "config.json").write_text(json.dumps({**config, "_class_name": "AutoencoderKL"}))
    with pytest.raises(hub.ModelLoadError, match="AutoencoderKL"):
        hub.load_model(tmp_path / "other")
    model.save_pretrained(tmp_path / "mismatch")
    (tmp_path / "mismatch" / "config.json").write_text(json.dumps({**config, "base_channels": 16}))
    with pytest.raises(hub.ModelLoadError, match="cannot load model"):
        hub.load_model(tmp_path / "mismatch")
    (tmp_path / "file.pth").write_bytes(b"x")
    with pytest.raises(hub.ModelLoadError, match="ivvae convert"):
        hub.load_model(tmp_path / "file.pth")


def test_model_class_from_config():
    from ivvae import models

    assert hub.model_class({"_class_name": "IVVAE"}) is models.IVVAE
    assert hub.model_class({"_class_name": "ImageVAE"}) is models.ImageVAE
    assert hub.model_class({}) is models.IVVAE


def test_written_latents_and_models_follow_the_umask(model, tmp_path):
    """safetensors writes mode 0600 whatever the umask; our outputs get the usual 0644 (umask 022)."""
    import os
    import stat

    from ivvae.train.checkpoint import export_model

    old = os.umask(0o022)
    try:
        pipeline.save_latents(tmp_path / "z.safetensors", torch.zeros(1, 8, 1, 2, 2))
        export_model(model, tmp_path / "export", "float32")
    finally:
        os.umask(old)
    for path in (tmp_path / "z.safetensors", tmp_path / "export" / "diffusion_pytorch_model.safetensors"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_a_failed_latents_write_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    def full_disk(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(pipeline, "save_file", full_disk)
    with pytest.raises(OSError, match=r"cannot write latents '.*x.safetensors': Error while serializing"):
        pipeline.save_latents(tmp_path / "x.safetensors", torch.zeros(1, 4, 1, 2, 2), {"num_frames": 1})
    assert list(tmp_path.iterdir()) == []


def test_latents_of_another_format_version_are_refused(tmp_path, model, video):
    encoded = pipeline.encode_video(model, video, progress=False)
    pipeline.save_latents(tmp_path / "z.safetensors", encoded.latents, {**encoded.metadata, "version": "9"})
    with pytest.raises(pipeline.LatentFileError, match="latents format version 9; this ivvae reads version 1:"):
        pipeline.load_latents(tmp_path / "z.safetensors")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_latents_decode_with_the_same_weights_loaded_in_another_dtype(model, video, tmp_path, dtype):
    """A diffusion pipeline loads the VAE in half precision: the encoding model's latents must still
    decode, both ways round; other weights in that dtype are still refused, naming the dtypes."""
    model.save_pretrained(tmp_path / "vae")
    half = IVVAE.from_pretrained(tmp_path / "vae", torch_dtype=dtype).eval()
    encoded = pipeline.encode_video(model, video[:5], progress=False)
    assert encoded.metadata["weights_dtype"] == "float32"
    assert pipeline.decode_latents(half, encoded, progress=False).shape == video[:5].shape  # used to be refused
    assert pipeline.decode_latents(model, pipeline.encode_video(half, video[:5], progress=False), progress=False).shape == video[:5].shape
    other = small_model()
    with torch.no_grad():
        next(other.parameters()).add_(0.5)
    other = other.to(dtype)
    with pytest.raises(ValueError, match=rf"weights in float32; this model's weights are {str(dtype)[6:]} and do not round"):
        pipeline.decode_latents(other, encoded, progress=False)
    older = {k: v for k, v in encoded.metadata.items() if not k.startswith("weights_") or k == "weights_hash"}
    with pytest.raises(ValueError, match="other weights .*load it in float32 as these latents were made, or pass check_model=False"):
        pipeline.decode_latents(half, pipeline.EncodedVideo(encoded.latents, older), progress=False)


def test_load_latents_refuses_metadata_of_the_wrong_type(model, video, tmp_path):
    """A damaged or hand-edited file: "normalized": "false" used to count as true (a silently wrong
    decode), "model": 123 gave a TypeError, a numeric version a self-contradicting message."""
    encoded = pipeline.encode_video(model, video[:5], progress=False)
    for key, value, message in (("normalized", "false", 'normalized "false", not true or false'),
                                ("model", 123, "model 123, not a model name"),
                                ("fps", "25", 'fps "25", not a frame rate'),
                                ("scaling_factor", 0, "scaling_factor 0, not a non-zero number"),
                                ("chunk_groups", 1.5, "chunk_groups 1.5, not a positive whole number or null"),
                                ("dtype", "fp8", 'dtype "fp8", not one of fp32, bf16'),
                                ("dtype", ["fp32"], r'dtype \["fp32"\], not one of fp32, bf16'),
                                ("weights_dtype", ["float32"], r'weights_dtype \["float32"\], not a string'),
                                ("version", 1, "version 1, not a version string"),
                                ("sample_aspect_ratio", [2, 0], r"sample_aspect_ratio \[2, 0\], not \[width, height\]")):
        path = tmp_path / f"{key}-{type(value).__name__}.safetensors"
        pipeline.save_latents(path, encoded.latents, {**encoded.metadata, key: value})
        with pytest.raises(pipeline.LatentFileError, match=rf"{path.name}': its metadata says {message}"):
            pipeline.load_latents(path)
    pipeline.save_latents(tmp_path / "v2.safetensors", encoded.latents, {**encoded.metadata, "version": "2"})
    with pytest.raises(pipeline.LatentFileError, match="format version 2; this ivvae reads version 1:"):
        pipeline.load_latents(tmp_path / "v2.safetensors")
