"""Review fixes (session 13): stills come from the user's own data unless asked otherwise, a run resumes
without its init folder, warnings about bucket shapes.

Tiny data (a 20-frame 48 px clip, two 40 px stills) and tiny models, on the CPU with one thread.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ivvae.io import write_video
from ivvae.train.build import build_model_from_config, build_train_data, build_validation
from ivvae.train.config import ConfigError, config_from_dict, load_config
from ivvae.train.trainer import run_training

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY_MODEL = {"latent_channels": 8, "base_channels": 8, "encoder_blocks": 1, "decoder_blocks": 1}


@pytest.fixture(scope="module")
def user_data(tmp_path_factory) -> Path:
    """A user's data folder: one short video and two stills."""
    root = tmp_path_factory.mktemp("mydata")
    rng = np.random.default_rng(0)
    write_video(root / "clip.mp4", rng.integers(0, 255, (20, 48, 48, 3), dtype=np.uint8), fps=10)
    for k in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / f"still{k}.png")
    return root


def _config(sources: list[str], buckets: list[dict], **data) -> dict:
    return {
        "model": {"class": "ivvae.models.IVVAE", "config": dict(TINY_MODEL)},
        "data": {"sources": sources, "num_workers": 0, "buckets": buckets,
                 "validation": {"num_clips": 1, "num_frames": 5, "size": 32, "crop": 32}, **data},
        "loss": {"lpips": {"enabled": False}},
        "train": {"max_steps": 2, "num_threads": 1},
        "logging": {"every": 1, "val_every": 0, "val_at_start": False, "progress_bar": False, "tensorboard": False},
        "checkpoint": {"every": 2, "keep_last": 2},
        "export": {"at_end": False},
    }


def _names(ds) -> list[str]:
    return [it.name for it in ds.items]


IMAGE = {"kind": "image", "size": 32, "crop": 32, "batch_size": 1}
VIDEO = {"kind": "video", "num_frames": 5, "size": 32, "crop": 32, "batch_size": 1}


# ---------------------------------------------------------------------------------------------- stills


def test_image_bucket_without_image_sources_trains_on_the_users_data(user_data):
    """configs/ivvae_mixed_gan.yaml's shape: data.sources only, an image bucket with video_frames_every: the
    stills are the source's images and every 4th frame of its videos' training part, never demo photos."""
    cfg = config_from_dict(_config([str(user_data)], [VIDEO, {**IMAGE, "video_frames_every": 4}]))
    dataset, _, _, _ = build_train_data(cfg)
    names = _names(dataset.datasets[1])
    assert not any(n.startswith("skimage:") for n in names)
    assert sorted(n for n in names if n.endswith(".png")) == [str(user_data / "still0.png"), str(user_data / "still1.png")]
    assert [n for n in names if "#" in n] == [f"{user_data / 'clip.mp4'}#{k}" for k in (0, 4, 8, 12, 16)]  # frames 0..17 (0.9)


def test_stills_from_training_data_take_every_frame_by_default(user_data):
    cfg = config_from_dict(_config([str(user_data)], [IMAGE]))
    names = _names(build_train_data(cfg)[0].datasets[0])
    assert len([n for n in names if "#" in n]) == 18 and len(names) == 20


def test_skimage_photos_only_when_named(user_data):
    cfg = config_from_dict(_config([str(user_data)], [{**IMAGE, "video_frames_every": 4}], image_sources=["skimage"]))
    names = _names(build_train_data(cfg)[0].datasets[0])
    assert names and all(n.startswith("skimage:") for n in names)


def test_moving_crop_without_image_sources_moves_over_the_users_frames(user_data):
    cfg = config_from_dict(_config([str(user_data)], [{"kind": "moving_crop", "num_frames": 5, "crop": 24, "batch_size": 1,
                                                       "video_frames_every": 6, "max_speed_px": 2.0}]))
    crops = build_train_data(cfg)[0].datasets[0]
    names = _names(crops.images)
    assert not any(n.startswith("skimage:") for n in names) and f"{user_data / 'clip.mp4'}#6" in names
    assert crops[0]["video"].shape == (3, 5, 24, 24)


def test_each_bucket_logs_what_it_found(user_data, caplog):
    cfg = config_from_dict(_config([str(user_data)], [VIDEO, {**IMAGE, "video_frames_every": 4}]))
    with caplog.at_level(logging.INFO, logger="ivvae.train"):
        build_train_data(cfg)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data.buckets.")]
    assert lines == ["data.buckets.0 (video_5x32): 1 videos from data.sources",
                     "data.buckets.1 (image_1x32): 2 images + 5 frames of 1 videos from data.sources"]


def test_stills_need_a_source():
    with pytest.raises(ConfigError, match=r"'data.image_sources' is not set and data.sources is empty but data.buckets.0 is an image"):
        config_from_dict(_config([], [IMAGE]))
    with pytest.raises(ConfigError, match=r"'data.buckets.0.video_frames_every' must be >= 1"):
        config_from_dict(_config(["x"], [{**IMAGE, "video_frames_every": 0}]))


def test_image_validation_without_image_sources_holds_out_the_users_frames(user_data):
    """No bucket trains on stills, image validation, no image_sources: frames of the held-out part of data.sources."""
    cfg = _config([str(user_data)], [VIDEO])
    cfg["data"]["validation"] = {"kind": "image", "num_clips": 2, "size": 32, "crop": 32}
    clips, held_out = build_validation(config_from_dict(cfg))
    assert held_out is True and len(clips) == 2 and all(c.shape == (1, 3, 1, 32, 32) for c in clips)


def test_shipped_configs_keep_their_stills():
    """Every shipped config loads; the small-z16 stages that train on stills name scikit-image explicitly (the
    data they trained on), the in-progress 3b run included (through its base chain)."""
    for path in sorted(CONFIGS.rglob("*.yaml")):
        cfg = load_config(path)
        reads_stills = any(b.kind in ("image", "moving_crop") and not b.sources for b in cfg.data.buckets)
        if path.parent.name == "small_z16" and reads_stills:
            assert cfg.data.image_sources == ["skimage"], path
    assert load_config(CONFIGS / "small_z16/3b_wide_continue_cpu.yaml").data.image_sources == ["skimage"]
    assert "image_sources" not in yaml.safe_load((CONFIGS / "small_z16/3b_wide_continue_cpu.yaml").read_text())["data"]
    mixed = load_config(CONFIGS / "ivvae_mixed_gan.yaml").data
    assert mixed.image_sources is None and mixed.still_sources() == mixed.sources  # its image bucket: frames of its videos


# ---------------------------------------------------------------------------------------------- warnings


def test_bucket_shape_warnings(user_data, caplog):
    buckets = [{**VIDEO, "num_frames": 8, "size": 24, "crop": 32}, {**IMAGE, "video_frames_every": 4}]
    with caplog.at_level(logging.WARNING, logger="ivvae.train"):
        build_train_data(config_from_dict(_config([str(user_data)], buckets)))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "data.buckets" in r.getMessage()]
    assert len(warnings) == 2
    assert "data.buckets.0: size 24 is smaller than its crop 32" in warnings[0]
    assert "data.buckets.0: num_frames 8 is not 1 + 4k" in warnings[1] and "use num_frames 9" in warnings[1]


def test_no_frame_count_warning_for_the_image_vae(user_data, caplog):
    cfg = _config([str(user_data)], [{**VIDEO, "num_frames": 3}])
    cfg["model"] = {"class": "ImageVAE", "config": {"latent_channels": 4, "base_channels": 8}}
    with caplog.at_level(logging.WARNING, logger="ivvae.train"):
        build_train_data(config_from_dict(cfg))
    assert not [r for r in caplog.records if "num_frames" in r.getMessage()]


def test_frame_count_warning_follows_the_models_own_group(user_data, caplog):
    """A model with 2x temporal compression takes 1 + 2k frames: 9 is fine, 8 is not (was: always 1 + 4k)."""
    def warnings(num_frames: int) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ivvae.train"):
            build_train_data(config_from_dict(_config([str(user_data)], [{**VIDEO, "num_frames": num_frames}])), frame_group=2)
        return [r.getMessage() for r in caplog.records if "num_frames" in r.getMessage()]

    assert warnings(7) == []  # 1 + 2*3, though not 1 + 4k
    assert len(warnings(8)) == 1 and "is not 1 + 2k" in warnings(8)[0] and "use num_frames" in warnings(8)[0]


# ---------------------------------------------------------------------------------------------- resume


def _init_run(tmp_path: Path, user_data: Path, model: dict) -> Path:
    cfg = _config([str(user_data)], [VIDEO])
    cfg["model"] = model
    cfg["data"]["validation"] = {"enabled": False}
    cfg["output_dir"] = str(tmp_path / "run")
    return _write(tmp_path / "cfg.yaml", cfg)


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.mark.parametrize("arch_in_config", [False, True])
def test_resume_after_the_init_folder_is_gone(tmp_path, user_data, arch_in_config):
    """The checkpoint holds every weight: --resume auto must not need model.init.from_pretrained's folder, whether
    the architecture comes from model.class/config or only from that folder (then: the checkpoint's config.json)."""
    from ivvae.models import IVVAE

    torch.manual_seed(0)
    IVVAE(**TINY_MODEL).save_pretrained(tmp_path / "init")
    model = {"init": {"from_pretrained": str(tmp_path / "init")}}
    if arch_in_config:
        model.update({"class": "IVVAE", "config": dict(TINY_MODEL)})
    path = _init_run(tmp_path, user_data, model)
    run_training(path)
    shutil.rmtree(tmp_path / "init")
    summary = run_training(path, ["train.max_steps=3"], resume="auto")
    assert summary["steps"] == 3 and summary["resumed_from"].endswith("step_00000002")
    summary = run_training(tmp_path / "run/config.yaml", ["train.max_steps=4"], resume="auto")  # the run's own record
    assert summary["steps"] == 4


def test_a_new_run_resumed_from_another_runs_checkpoint_after_the_init_folder_is_gone(tmp_path, user_data):
    """--resume PATH into a new output dir (a branch of run A): A's checkpoint holds every weight, so the
    init folder both runs name is not needed (was: FileNotFoundError 'model.init.from_pretrained')."""
    from ivvae.models import IVVAE

    torch.manual_seed(0)
    IVVAE(**TINY_MODEL).save_pretrained(tmp_path / "init")
    path = _init_run(tmp_path, user_data, {"init": {"from_pretrained": str(tmp_path / "init")}})
    run_training(path)
    shutil.rmtree(tmp_path / "init")
    summary = run_training(path, ["train.max_steps=3"], resume=str(tmp_path / "run"), output_dir=tmp_path / "branch")
    assert summary["steps"] == 3 and summary["resumed_from"].endswith("step_00000002")
    assert (tmp_path / "branch/checkpoints/step_00000003").is_dir()


def test_resume_builds_the_checkpoints_architecture_without_loading_init(tmp_path, user_data):
    """build_model_from_config(resume_from=...): init folder gone and the architecture only defined by it -> the
    checkpoint's config.json (here a grown model, which the init folder alone would not even describe)."""
    from ivvae.models import IVVAE

    checkpoint = tmp_path / "step_00000002"
    IVVAE(**{**TINY_MODEL, "channel_multipliers": [1, 2, 4, 6]}).save_pretrained(checkpoint)
    mcfg = config_from_dict(_config(["x"], [VIDEO]) | {"model": {"init": {"from_pretrained": str(tmp_path / "gone"),
                                                                           "grow": {"channel_multipliers": [1, 2, 4, 6]}}}}).model
    with pytest.raises(FileNotFoundError, match="model.init.from_pretrained"):
        build_model_from_config(mcfg)
    model = build_model_from_config(mcfg, resume_from=checkpoint)
    assert list(model.config.channel_multipliers) == [1, 2, 4, 6] and model.training
