"""The bundled default model loads offline and reconstructs a held-out real clip.

The bound below is a regression guard for the shipped model (see docs/default-model.md), not
issue #6's quality floor, which this model does not reach yet.
"""

from __future__ import annotations

import torch

from ivvae.eval.metrics import psnr
from ivvae.hub import DEFAULT_MODEL, load_model
from ivvae.io import frames_to_tensor, read_video, sample_video_path


def test_bundled_model_reconstructs_a_held_out_clip():
    model = load_model(DEFAULT_MODEL).float().eval()
    frames = read_video(sample_video_path("carphone"), num_frames=5).frames[:, 40:104, 56:120]  # held out
    video = frames_to_tensor(frames).unsqueeze(0)
    with torch.no_grad():
        recon = model(video).sample.clamp(-1, 1)
    assert recon.shape == video.shape
    assert float(psnr(video, recon)) > 18.0  # measured 19.15 dB


def test_default_model_training_configs_load():
    from pathlib import Path

    from ivvae.train.config import load_config

    repo = Path(__file__).resolve().parents[1]
    configs = sorted((repo / "configs" / "small_z16").glob("*.yaml"))
    assert [p.name for p in configs] == ["1_image_vae.yaml", "2_ivvae_video.yaml", "3_continue.yaml"]
    stages = [load_config(p) for p in configs]
    assert stages[1].model.init.inflate_from == stages[0].output_dir + "/export" and stages[1].model.init.mode == "ktc"
    # stage 3 continues from the shipped weights, which a fresh clone has
    assert (repo / stages[2].model.init.from_pretrained / "config.json").is_file()
    # every stage holds out the same part of the sample clips
    assert all(s.data.train_time_range == [0.0, 0.8] for s in stages)
    assert all("sample:carphone" not in s.data.sources for s in stages)
