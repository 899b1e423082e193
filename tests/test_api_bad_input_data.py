"""Bad input to the Python API of the data side (io, eval, latents, inflate, grow, convert): one-line
errors that name the problem, never a deep traceback, a silently wrong result or lost data."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from cli_helpers import write_sine_video

from ivvae.convert import CheckpointError, convert_official_checkpoint, from_official_state_dict, to_official_state_dict
from ivvae.eval.fvd import FVDAccumulator, I3DFeatureExtractor, frechet_distance, frechet_distance_torch, fvd_from_features
from ivvae.eval.i3d import InceptionI3d
from ivvae.eval.lpips import LPIPS, WeightsNotFoundError
from ivvae.eval.metrics import gaussian_window, psnr, ssim, ssim_by_group_position, ssim_images, ssim_per_frame
from ivvae.eval.runner import DatasetSpec, EvalSettings, evaluate
from ivvae.grow import GrowthError, grow, grow_pretrained
from ivvae.inflate import InflationError, infer_mode, inflate, inflate_image_vae, inflate_pretrained
from ivvae.io import VideoWriteError, probe_video, read_video, tensor_to_frames, write_video
from ivvae.latent_dataset import LatentDataset, LatentDatasetError, encode_dataset
from ivvae.latent_stats import LatentStatistics, estimate_latent_statistics, with_latent_statistics
from ivvae.models import IVVAE, CausalVAE, ImageVAE


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_sine_video(tmp_path_factory.mktemp("video") / "clip.mp4", 9, 32, 48)


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    return torch.randint(0, 256, (3, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _tiny_ivvae() -> IVVAE:
    torch.manual_seed(0)
    return IVVAE(latent_channels=8, base_channels=8, encoder_blocks=1, decoder_blocks=1).eval()


def _tiny_image_vae() -> ImageVAE:
    torch.manual_seed(0)
    return ImageVAE(latent_channels=4, base_channels=8, encoder_blocks=1, decoder_blocks=1).eval()


def _videos(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 5, 16, 16, generator=g) * 2 - 1
    return x, (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(-1, 1)


# -------------------------------------------------------------------------------------------- io: reading
@pytest.mark.parametrize("kwargs, name", [({"stride": 1.5}, "stride"), ({"num_frames": 2.5}, "num_frames"),
                                          ({"start": 1.5}, "start"), ({"num_frames": True}, "num_frames")])
def test_read_video_refuses_non_integer_frame_arguments(video, kwargs, name):
    # before: stride 1.5 returned frames 0, 3, 6; num_frames 2.5 the whole video; start 1.5 "need at least one array to stack"
    with pytest.raises(TypeError, match=f"^{name} must be an integer") as info:
        read_video(video, **kwargs)
    _one_line(info)


@pytest.mark.parametrize("resize", ["16", (16,), (16, 16, 3), 16.0, True, (15.5, 16)])
def test_read_video_resize_must_be_an_int_or_a_pair_of_ints(video, resize):
    # before: '16' read frames at 1x6, (16,) and 16.0 failed with unpacking / iteration errors
    with pytest.raises(TypeError, match="resize") as info:
        read_video(video, resize=resize)
    _one_line(info)
    assert read_video(video, resize=(16, 16)).frames.shape == (9, 16, 16, 3)  # still fine


def test_read_video_resize_beyond_the_scaler_blames_the_resize(video):
    # before: "corrupt or truncated video, decoding failed (Invalid argument)" about a sound file
    with pytest.raises(ValueError, match=r"resize=100000: FFmpeg cannot scale 48x32 frames to .*choose a smaller resize") as info:
        read_video(video, resize=100000)
    assert "corrupt" not in _one_line(info) and str(video) in str(info.value)


# -------------------------------------------------------------------------------------------- io: writing
def test_write_video_refuses_frames_of_zero_size(tmp_path):
    # before: IndexError from the encoder
    with pytest.raises(VideoWriteError, match=r"T, H, W >= 1, got \(2, 0, 16, 3\)"):
        write_video(tmp_path / "out.mp4", torch.zeros(2, 0, 16, 3, dtype=torch.uint8), 25)


def test_write_video_to_a_folder_says_it_is_a_folder(tmp_path, frames):
    # before: "refusing to overwrite existing file (pass overwrite=True)", and overwrite=True did not help
    for overwrite in (False, True):
        with pytest.raises(VideoWriteError, match="it is a folder; give a file name") as info:
            write_video(tmp_path, frames, 25, overwrite=overwrite)
        _one_line(info)
    (tmp_path / "note.txt").write_text("keep")
    with pytest.raises(VideoWriteError, match="note.txt' is a file, not a folder"):  # before: "File exists"
        write_video(tmp_path / "note.txt" / "out.mp4", frames, 25)
    assert (tmp_path / "note.txt").read_text() == "keep"


@pytest.mark.parametrize("fps, message", [(1e-9, "cannot be stored"), (5e-5, "cannot be stored"), (1e9, "at most 10000"),
                                          (True, "positive finite number")])
def test_write_video_refuses_a_frame_rate_it_would_store_as_another(tmp_path, frames, fps, message):
    # before: 1e-9 was written as 24 fps, 5e-5 as 1e-4, 1e9 gave an unreadable file, True 1 fps
    with pytest.raises(VideoWriteError, match=message):
        write_video(tmp_path / "out.mp4", frames, fps)
    assert not (tmp_path / "out.mp4").exists()
    write_video(tmp_path / "ok.mp4", frames, 1e-4)
    assert probe_video(tmp_path / "ok.mp4").fps == pytest.approx(1e-4)


@pytest.mark.parametrize("crf", ["a", 18.9])
def test_write_video_crf_must_be_an_integer(tmp_path, frames, crf):
    # before: 'a' raised int()'s "invalid literal", 18.9 was used as 18
    with pytest.raises(VideoWriteError, match="crf must be an integer"):
        write_video(tmp_path / "out.mp4", frames, 25, crf=crf)


def test_tensor_to_frames_refuses_nan_and_arrays():
    with pytest.raises(ValueError, match="NaN values .* black pixels"):  # before: NaN became 0 (black)
        tensor_to_frames(torch.full((3, 2, 4, 4), float("nan")))
    with pytest.raises(TypeError, match="torch.Tensor, got ndarray"):  # before: AttributeError 'detach'
        tensor_to_frames(np.zeros((3, 2, 4, 4)))


# -------------------------------------------------------------------------------------------- metrics
def test_metrics_refuse_inputs_in_another_value_range():
    x, y = _videos()
    xu, yu = ((x + 1) * 127.5).round().to(torch.uint8), ((y + 1) * 127.5).round().to(torch.uint8)
    expected = psnr(xu, yu, 255, low=0)
    assert float(psnr(x, y)) == pytest.approx(float(expected), abs=0.05)  # the right range still works
    # before: 23.09 dB instead of 26.2 (uint8 clamped to [-1, 1]); SSIM 0.46 instead of 0.99
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match=r"x \(uint8\) holds values in \[0, 255\], far outside the value range \[-1, 1\]") as info:
            metric(xu, yu)
        _one_line(info)
    with pytest.raises(ValueError, match="x is uint8 and y is float32"):  # before: 4.77 dB
        psnr(xu, y)
    with pytest.raises(ValueError, match="far outside"):  # before: 23.3 dB from 0..255 floats
        psnr((x + 1) * 127.5, (y + 1) * 127.5)
    psnr(x * 1.5, y)  # decoder overshoot is clamped, as documented


@pytest.mark.parametrize("shape", [(2, 3, 0, 16, 16), (0, 3, 5, 16, 16), (2, 3, 5, 0, 0)])
def test_metrics_refuse_empty_videos(shape):
    # before: PSNR NaN, SSIM "torch.cat(): expected a non-empty list of Tensors"
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match="is empty"):
            metric(torch.zeros(shape), torch.zeros(shape))


def test_metrics_refuse_nan_and_channels_last_frames():
    x, y = _videos()
    with pytest.raises(ValueError, match="NaN or infinite"):  # before: a NaN PSNR
        psnr(x * float("nan"), y)
    frames = torch.zeros(5, 16, 16, 3)  # (T, H, W, 3) would be read as (C=5, T=16, H=16, W=3)
    with pytest.raises(ValueError, match="channels last"):
        psnr(frames, frames)


def test_ssim_arguments_are_checked():
    x, y = _videos()
    with pytest.raises(ValueError, match="compute_dtype must be a float dtype"):  # before: 0.23 from integer statistics
        ssim(x, y, compute_dtype=torch.int32)
    with pytest.raises(ValueError, match="frame_chunk must be an integer >= 1"):  # before: "range() arg 3 must not be zero"
        ssim_per_frame(x, y, frame_chunk=0)
    u = ((x[:, :, 0] + 1) * 127.5).to(torch.uint8)
    with pytest.raises(ValueError, match="expected float images"):  # before: 1.0 for any two uint8 images
        ssim_images(u, u.flip(-1))
    with pytest.raises(ValueError, match="sigma must be a positive"):  # before: a NaN window
        gaussian_window(0)


def test_ssim_by_group_position_checks_precomputed_values():
    x, y = _videos()
    with pytest.raises(ValueError, match=r"per_frame must be ssim_per_frame\(x, y\), shape \(B, T\) = \(2, 5\), got \(2, 9\)"):
        ssim_by_group_position(x, y, per_frame=torch.rand(2, 9))  # before: averaged values of other clips
    with pytest.raises(ValueError, match="got \\(5,\\)"):  # before: IndexError
        ssim_by_group_position(x, y, per_frame=torch.rand(5))
    with pytest.raises(ValueError, match="group_size must be an integer >= 1"):
        ssim_by_group_position(x, y, group_size=0)


# -------------------------------------------------------------------------------------------- FVD
def test_frechet_distance_checks_the_gaussians():
    g = torch.Generator().manual_seed(0)
    f1, f2 = torch.randn(10, 4, generator=g).double(), torch.randn(12, 4, generator=g).double()
    mu1, s1, mu2, s2 = f1.mean(0), torch.cov(f1.T), f2.mean(0), torch.cov(f2.T)
    for distance in (frechet_distance, frechet_distance_torch):
        with pytest.raises(ValueError, match=r"mean \(3,\) and covariance \(4, 4\) do not fit"):  # before: a number
            distance(mu1[:3], s1, mu2[:3], s2)
        with pytest.raises(ValueError, match="NaN or infinite"):  # before: nan
            distance(mu1 * float("nan"), s1, mu2, s2)
    with pytest.raises(ValueError, match="features: NaN or infinite"):  # before: _LinAlgError from eigh
        fvd_from_features(f1 * float("nan"), f2)


def test_fvd_accumulator_refuses_features_of_another_size():
    acc = FVDAccumulator(extractor=I3DFeatureExtractor())
    acc.add_features(real=torch.randn(4, 4), fake=torch.randn(4, 4))
    with pytest.raises(ValueError, match="dimension 3 cannot join the 4-dimensional") as info:  # before: torch.cat error
        acc.add_features(real=torch.randn(4, 3))
    _one_line(info)
    assert acc.num_real == 4


def test_i3d_extractor_checks_its_input():
    extractor = I3DFeatureExtractor(InceptionI3d())
    with pytest.raises(ValueError, match="empty tensor"):  # before: "torch.cat(): expected a non-empty list"
        extractor(torch.zeros(0, 3, 9, 8, 8))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):  # before: AttributeError 'dim'
        extractor(np.zeros((1, 3, 9, 8, 8)))
    with pytest.raises(ValueError, match=r"expected videos \(B, 3, T, H, W\)"):  # before: "needs at least 9 frames, got 8"
        extractor(torch.zeros(3, 9, 8))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):  # before: accepted, then range() error
        I3DFeatureExtractor(batch_size=0)


# -------------------------------------------------------------------------------------------- LPIPS
def test_lpips_weight_files_are_checked(tmp_path):
    net = LPIPS(pretrained=False)
    heads = {f"lin{i}.model.1.weight": lin.model[1].weight.clone() for i, lin in enumerate(net.lins)}
    torch.save({k: v * float("nan") for k, v in heads.items()}, tmp_path / "nan.pth")
    with pytest.raises(ValueError, match="NaN or infinite values in 5 tensor"):  # before: loaded, every LPIPS NaN
        LPIPS(pretrained=False).load_heads(tmp_path / "nan.pth")
    torch.save({k: v.long() for k, v in heads.items()}, tmp_path / "int.pth")
    with pytest.raises(ValueError, match="lin0 holds torch.int64 values"):  # before: loaded as zeros
        LPIPS(pretrained=False).load_heads(tmp_path / "int.pth")
    trunk = net.net.features.state_dict()
    trunk["0.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(trunk, tmp_path / "trunk.pth")
    with pytest.raises(ValueError, match=r"1 shape mismatch\(es\): features.0.weight") as info:  # before: several lines
        LPIPS(pretrained=False).load_backbone(tmp_path / "trunk.pth")
    _one_line(info)
    with pytest.raises(WeightsNotFoundError, match="not found"):  # before: a bare [Errno 2]
        LPIPS(pretrained=False).load_heads(tmp_path / "missing.pth")


def test_lpips_inputs_are_checked():
    net = LPIPS(pretrained=False)
    x = torch.rand(1, 3, 2, 32, 32) * 2 - 1
    with pytest.raises(ValueError, match="float images"):  # before: 0.0 for any two uint8 images
        net(((x[:, :, 0] + 1) * 127).byte(), ((-x[:, :, 0] + 1) * 127).byte())
    with pytest.raises(ValueError, match="31x31 pixels"):  # before: a max-pool shape RuntimeError
        net.video(x[..., :8, :8], x[..., :8, :8])
    with pytest.raises(ValueError, match="at least one frame"):  # before: torch.cat on an empty list
        net.video(x[:, :, :0], x[:, :, :0])
    with pytest.raises(ValueError, match="frame_chunk must be an integer >= 1"):
        net.video(x, x, frame_chunk=0)
    with pytest.raises(TypeError, match="two torch.Tensors"):
        net.video(x.numpy(), x.numpy())


# -------------------------------------------------------------------------------------------- evaluation
@pytest.mark.parametrize("kwargs, error, message", [
    ({"frames": 1.5}, TypeError, "frames must be an integer"),
    ({"num_videos": 1.5}, TypeError, "num_videos must be an integer"),
    ({"seed": -1, "num_videos": 1}, ValueError, "seed must be >= 0"),
    ({"protocol": "custom", "crop": "16"}, TypeError, "crop must be an int N"),  # before: a 1x6 crop
    ({"protocol": "custom", "crop": True}, TypeError, "crop must be an int N"),  # before: a 1x1 crop
    ({"protocol": "custom", "crop": (16,)}, TypeError, "crop must be an int N"),
    ({"protocol": "custom", "size": 1.5}, TypeError, "size must be an integer"),
    ({"start_fraction": "0.5"}, ValueError, "start_fraction must be a number"),
])
def test_dataset_spec_checks_its_values(video, kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        DatasetSpec(video, **kwargs)
    _one_line(info)


@pytest.mark.parametrize("source, error", [(None, TypeError), (5, TypeError), ([], ValueError), ([b"x.mp4"], TypeError)])
def test_dataset_spec_checks_its_source(source, error):
    with pytest.raises(error, match="source"):  # before: "'NoneType' object is not iterable" when listing
        DatasetSpec(source)


def test_dataset_spec_reads_manifests_among_several_sources(tmp_path, video):
    manifest = tmp_path / "set.csv"
    manifest.write_text(f"path\n{video}\n")
    # before: the manifest itself was listed as a video, then skipped as unreadable
    assert DatasetSpec([manifest]).list_videos() == [str(video)]
    assert DatasetSpec([manifest, manifest]).list_videos() == [str(video)]  # a video listed twice is used once


def test_eval_settings_check_tile_and_device():
    with pytest.raises(TypeError, match=r"tile must be a \(size, overlap\) pair"):  # before: unpacking error
        EvalSettings(tile=(16,))
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got 'gpu'"):
        EvalSettings(device="gpu")


def _quiet() -> EvalSettings:
    return EvalSettings(lpips=False, fvd=False, progress=False)


class _ConstantVAE:
    """The encode/decode API with a fixed reconstruction ``value`` (NaN, or overshooting [-1, 1])."""

    temporal_compression, spatial_compression = 4, 8

    def __init__(self, value: float) -> None:
        self.value = value

    def encode(self, x, chunk_groups=None):
        return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: x))

    def decode(self, z, chunk_groups=None, num_frames=None, height=None, width=None):
        return SimpleNamespace(sample=torch.full_like(z, self.value))


def test_evaluate_checks_its_arguments(video):
    spec = DatasetSpec(video, frames=5)
    with pytest.raises(TypeError, match="models must be a dict"):  # before: AttributeError 'items'
        evaluate([_ConstantVAE(0.0)], spec, _quiet())
    with pytest.raises(TypeError, match="model 'x' is a Linear, not a video VAE"):  # before: AttributeError 'encode'
        evaluate({"x": torch.nn.Linear(2, 2)}, spec, _quiet())
    with pytest.raises(TypeError, match="dataset must be a DatasetSpec"):  # before: AttributeError 'list_videos'
        evaluate({"x": _ConstantVAE(0.0)}, str(video), _quiet())
    with pytest.raises(ValueError, match="crop 4 makes clips smaller than SSIM's 11x11 window"):  # before: after the model ran
        evaluate({"x": _ConstantVAE(0.0)}, DatasetSpec(video, frames=5, protocol="custom", crop=4), _quiet())


def test_evaluate_skips_videos_smaller_than_the_ssim_window(tmp_path, video):
    folder = tmp_path / "videos"
    write_sine_video(folder / "tiny.mp4", 9, 8, 8)
    write_sine_video(folder / "z.mp4", 9, 32, 48)
    results = evaluate({"x": _ConstantVAE(0.0)}, DatasetSpec(folder, frames=5, num_videos=1), _quiet())
    skipped = results.dataset["skipped"]  # before: the whole run stopped at the tiny video
    assert [s["path"] for s in skipped] == [str(folder / "tiny.mp4")] and "8x8 pixels" in skipped[0]["reason"]
    assert results.dataset["num_clips"] == 1


def test_evaluate_refuses_nan_reconstructions_and_clamps_overshoot(video):
    spec = DatasetSpec(video, frames=5)
    with pytest.raises(ValueError, match="model 'broken' reconstructed .* NaN or infinite values") as info:
        evaluate({"broken": _ConstantVAE(float("nan"))}, spec, _quiet())  # before: NaN metrics, reported as None
    _one_line(info)
    overshoot = evaluate({"o": _ConstantVAE(50.0)}, spec, _quiet())["o"].metrics  # clamped, as before
    same = evaluate({"o": _ConstantVAE(1.0)}, spec, _quiet())["o"].metrics
    assert overshoot["psnr"] == pytest.approx(same["psnr"]) and overshoot["ssim"] == pytest.approx(same["ssim"])


def test_evaluate_reports_fvd_unavailable_for_clips_too_short_for_i3d(video):
    settings = EvalSettings(lpips=False, fvd=InceptionI3d(), progress=False)
    results = evaluate({"x": _ConstantVAE(0.0)}, DatasetSpec(video, frames=5), settings)  # before: ValueError mid-run
    assert results["x"].metrics["fvd"] is None
    assert "at least 9 frames, these have 5" in results["x"].unavailable["fvd"]


# -------------------------------------------------------------------------------------------- latent statistics
def test_estimate_latent_statistics_checks_model_and_clips():
    model, clip = _tiny_ivvae(), torch.rand(3, 5, 16, 16) * 2 - 1
    with pytest.raises(TypeError, match="model must be a loaded VAE"):  # before: AttributeError 'parameters'
        estimate_latent_statistics("models/x", [clip])
    with pytest.raises(ValueError, match=r"clip 0: values up to .*far outside \[-1, 1\]"):  # before: statistics of other latents
        estimate_latent_statistics(model, [(clip + 1) * 127.5])
    with pytest.raises(TypeError, match=r"pass a list of clips, \[clip\]"):  # before: "clip 0 ... got (5, 16, 16)"
        estimate_latent_statistics(model, clip)
    with pytest.raises(TypeError, match="clips must be an iterable"):
        estimate_latent_statistics(model, None)


def test_with_latent_statistics_takes_the_json_dict_and_checks_types():
    stats = estimate_latent_statistics(_tiny_ivvae(), [torch.rand(3, 5, 16, 16) * 2 - 1])
    model = with_latent_statistics(_tiny_ivvae(), json.loads(json.dumps(stats.to_dict())))  # before: AttributeError
    assert model.config.scaling_factor == pytest.approx(stats.scaling_factor)
    with pytest.raises(TypeError, match="model must be a loaded VAE"):
        with_latent_statistics(torch.nn.Linear(2, 2), stats)
    with pytest.raises(TypeError, match="stats must be LatentStatistics"):
        with_latent_statistics(_tiny_ivvae(), None)
    with pytest.raises(ValueError, match="missing std, channel_mean, channel_std, num_values"):
        LatentStatistics.from_dict({"mean": 0.0})


# -------------------------------------------------------------------------------------------- latent data sets
@pytest.mark.parametrize("kwargs, error, message", [
    ({"model": "models/x"}, TypeError, "model must be a loaded VAE"),
    ({"spec": "videos/"}, TypeError, "spec must be an ivvae.eval.runner.DatasetSpec"),
    ({"part": (1,)}, TypeError, r"part must be a pair of ints"),
    ({"workers": -1}, ValueError, "workers must be an integer >= 0"),
    ({"batch_size": 1.5}, ValueError, "shard_size and batch_size must be integers"),
    ({"chunk_groups": 0}, ValueError, "chunk_groups must be an integer >= 1"),
])
def test_encode_dataset_checks_arguments_before_touching_the_folder(tmp_path, video, kwargs, error, message):
    arguments = {"model": _tiny_ivvae(), "spec": DatasetSpec(video, protocol="custom", frames=5), **kwargs}
    model, spec = arguments.pop("model"), arguments.pop("spec")
    with pytest.raises(error, match=message):
        encode_dataset(model, spec, tmp_path / "latents", progress=False, **arguments)
    assert not (tmp_path / "latents").exists()  # before: a dataset.json was left behind (workers, chunk_groups, batch_size)


def test_latent_dataset_index_dtype_and_folder(tmp_path, video):
    encode_dataset(_tiny_ivvae(), DatasetSpec(video, protocol="custom", frames=5), tmp_path / "latents", progress=False)
    data = LatentDataset(tmp_path / "latents")
    assert data[-1]["id"] == data[0]["id"] == 0  # negative indices count from the end, as for a list
    with pytest.raises(IndexError, match="clip index 5 is out of range: the data set has 1 clip") as info:
        data[5]  # before: "list index out of range"
    _one_line(info)
    with pytest.raises(TypeError, match="clip index must be an integer"):
        data[1.0]
    with pytest.raises(TypeError, match="dtype must be a float torch.dtype"):  # before: latents truncated to integers
        LatentDataset(tmp_path / "latents", dtype=torch.int32)
    with pytest.raises(TypeError, match="dtype must be a float torch.dtype"):  # before: "Invalid device string" at data[0]
        LatentDataset(tmp_path / "latents", dtype="float16")
    with pytest.raises(LatentDatasetError, match="is a file, not a latent data set folder"):  # before: [Errno 20]
        LatentDataset(video)
    with pytest.raises(TypeError, match="folders must be"):
        LatentDataset(None)


# -------------------------------------------------------------------------------------------- inflate, grow
def test_inflate_checks_models_and_temporal_frame():
    image = _tiny_image_vae()
    with pytest.raises(TypeError, match="the image VAE must be a model of the IV-VAE family"):  # before: AttributeError
        inflate_image_vae(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="the target must be a model of the IV-VAE family"):
        infer_mode(image, torch.nn.Linear(2, 2))
    for frame in (1.5, True, "2"):  # before: a TypeError from '>>', or True used as frame 1
        with pytest.raises(TypeError, match="temporal_frame must be an integer"):
            inflate_image_vae(image, temporal_frame=frame)
    target = IVVAE(latent_channels=8, base_channels=8, encoder_blocks=1, decoder_blocks=1)
    assert inflate(image, target, temporal_frame=np.int64(1)).temporal_frame == 1


def test_inflate_image_vae_overrides_cannot_change_the_mode():
    # before: mode "ktc" with latent_channels=4 silently made a "same" inflation
    with pytest.raises(InflationError, match="turn mode 'ktc' into mode 'same'") as info:
        inflate_image_vae(_tiny_image_vae(), "ktc", latent_channels=4)
    _one_line(info)
    model, report = inflate_image_vae(_tiny_image_vae(), "ktc", branches=("2d", "causal"))  # KTC without GCConv, as documented
    assert report.mode == "ktc"


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_inflate_and_grow_never_write_over_their_input(tmp_path, where):
    source = tmp_path / "image"
    _tiny_image_vae().save_pretrained(source)
    before = (source / "config.json").read_text()
    out = {"same": source, "inside": source / "wider", "around": tmp_path}[where]
    # before: overwrite=True replaced the input model's weights and config with the output's
    with pytest.raises(ValueError, match="would write over the input model folder"):
        grow_pretrained(source, out, channel_multipliers=[1, 2, 4, 6], overwrite=True)
    with pytest.raises(ValueError, match="would write over the input model folder"):
        inflate_pretrained(source, out, overwrite=True)
    assert (source / "config.json").read_text() == before
    assert sorted(p.name for p in source.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]


@pytest.mark.parametrize("kwargs", [{"channel_multipliers": "1246"}, {"channel_multipliers": [1, 2, 4, 5.5]},
                                    {"channel_multipliers": 6}, {"base_channels": "16"}, {"base_channels": 12.5}])
def test_grow_widths_must_be_integers(kwargs):
    # before: "1246" grew to [1, 2, 4, 6] digit by digit, 5.5 became 5, "16" failed on '<'
    with pytest.raises(GrowthError, match="must be a (list of )?positive integer"):
        grow(_tiny_image_vae(), **kwargs)


# -------------------------------------------------------------------------------------------- convert
@pytest.mark.parametrize("model", [_tiny_image_vae, lambda: CausalVAE(latent_channels=4, base_channels=8),
                                   lambda: IVVAE(latent_channels=8, base_channels=8, encoder_blocks=1)])
def test_to_official_state_dict_needs_the_released_architecture(model):
    # before: keys under the released names that the authors' code cannot load
    with pytest.raises(CheckpointError, match="released") as info:
        to_official_state_dict(model())
    _one_line(info)
    assert to_official_state_dict(IVVAE(latent_channels=4, base_channels=8))  # the released layout at any Z, C


def test_convert_checks_the_state_dict_and_the_output(tmp_path):
    with pytest.raises(CheckpointError, match=r"expected a state dict \{name: tensor\}"):  # before: TypeError / AttributeError
        from_official_state_dict({"conv1.conv_2d.weight": 1})
    checkpoint = tmp_path / "ivvae.pth"
    checkpoint.write_bytes(b"x")
    # before: the checkpoint was read, then saving failed deep in diffusers (NotADirectoryError)
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        convert_official_checkpoint(checkpoint, checkpoint, overwrite=True)
    assert checkpoint.read_bytes() == b"x"
