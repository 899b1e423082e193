"""The bundled default model loads offline and reconstructs a held-out real clip.

The bound below is a regression guard for the shipped model (see docs/default-model.md), not
issue #6's quality floor, which this model does not reach yet.
"""

from __future__ import annotations

import json

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
    # measured 22.83 dB (session 28; 27: 22.82, 26: 22.80, 25 and 21: 22.77, 20: 22.69, 18: 22.68, 17: 22.64,
    # 15: 22.51, 14: 22.37, 13: 22.31, 8: 22.18, 5: 21.64)
    assert float(psnr(video, recon)) > 22.0


def test_default_model_training_configs_load():
    from dataclasses import replace
    from pathlib import Path

    from ivvae.hub import HELD_OUT_SOURCES, HELD_OUT_START_FRACTION
    from ivvae.train.config import load_config

    repo = Path(__file__).resolve().parents[1]
    configs = sorted((repo / "configs" / "small_z16").glob("*.yaml"))
    assert [p.name for p in configs] == ["1_image_vae.yaml", "1b_image_vae_more.yaml", "1c_image_vae_gpu.yaml",
                                         "1d_image_vae_gpu.yaml", "1e_image_vae_gpu.yaml", "1e_wide_image_vae_gpu.yaml",
                                         "1f_wide_image_vae_gpu.yaml", "2_ivvae_video_gpu.yaml", "2b_ivvae_video_gpu.yaml",
                                         "2c_ivvae_video_gpu.yaml", "2c_wide_ivvae_video_gpu.yaml", "2d_wide_ivvae_video_gpu.yaml",
                                         "2e_wide_continue_gpu.yaml", "2f_grown_continue_gpu.yaml", "2g_grown_continue_gpu.yaml",
                                         "3_continue.yaml",
                                         "3b_wide_continue_cpu.yaml", "3c_wide_continue_cpu.yaml", "3d_wide_continue_cpu.yaml",
                                         "3e_grown_continue_cpu.yaml", "3f_decoder_continue_cpu.yaml",
                                         "3g_decoder_256_cpu.yaml", "3h_decoder_block_mse_cpu.yaml",
                                         "3i_block_mse_cpu.yaml", "3j_encoder_cpu.yaml", "3k_decoder_cpu.yaml",
                                         "3l_encoder_cpu.yaml", "3m_decoder_cpu.yaml", "3n_encoder_cpu.yaml",
                                         "3o_decoder_cpu.yaml", "3p_encoder_cpu.yaml",
                                         "3q_decoder_cpu.yaml"]
    (image, image_1b, image_1c, image_1d, image_1e, image_1e_wide, image_1f_wide,
     video, video_2b, video_2c, video_2c_wide, video_2d_wide, video_continue, grown_gpu, grown_gpu_2g, more, cpu_continue, cpu_continue_3c,
     cpu_continue_3d, grown_cpu, decoder_cpu, decoder_cpu_256, decoder_block_mse,
     block_mse_cpu, encoder_cpu, decoder_cpu_3k, encoder_cpu_3l, decoder_cpu_3m, encoder_cpu_3n, decoder_cpu_3o,
     encoder_cpu_3p, decoder_cpu_3q) = (
        load_config(p) for p in configs)
    stages = (image, image_1b, image_1c, image_1d, image_1e, image_1e_wide, image_1f_wide,
              video, video_2b, video_2c, video_2c_wide, video_2d_wide)
    # each stage starts from the previous one's export
    assert image_1b.model.init.from_pretrained == image.output_dir + "/export"
    assert image_1c.model.init.from_pretrained == image_1b.output_dir + "/export"
    assert image_1d.model.init.from_pretrained == image_1c.output_dir + "/export"
    assert image_1e.model.init.from_pretrained == image_1d.output_dir + "/export"
    assert image_1e_wide.model.init.from_pretrained == image_1d.output_dir + "/export" and image_1e_wide.model.init.grow
    assert image_1f_wide.model.init.from_pretrained == image_1e_wide.output_dir + "/export" and not image_1f_wide.model.init.grow
    for video_stage, image_stage in ((video, image_1c), (video_2b, image_1d), (video_2c, image_1e), (video_2c_wide, image_1e_wide),
                                     (video_2d_wide, image_1f_wide)):
        assert video_stage.model.init.inflate_from == image_stage.output_dir + "/export"
        assert video_stage.model.init.mode == "ktc"
    assert len({stage.output_dir for stage in stages}) == len(stages)
    # the GPU stages run for a fixed time, their horizon fitted to it
    assert all(stage.train.max_minutes for stage in stages[2:])
    # stages 2e, 2f, 2g, 3, 3b, 3c, 3d and 3e continue from the shipped weights, which a fresh clone has
    for continued in (video_continue, grown_gpu, grown_gpu_2g, more, cpu_continue, cpu_continue_3c, cpu_continue_3d, grown_cpu):
        assert (repo / continued.model.init.from_pretrained / "config.json").is_file()
        assert continued.model.init.inflate_from is None
    assert video_continue.train.max_minutes and video_continue.loss.mse_weight == video_2c_wide.loss.mse_weight
    # 3b is 2e's recipe (data mix, loss) at CPU batch sizes
    assert cpu_continue.loss == video_continue.loss and cpu_continue.data.image_sources == video_continue.data.image_sources
    assert [b.kind for b in cpu_continue.data.buckets] == [b.kind for b in video_continue.data.buckets]
    # 3c is 3b again with its own run folder and seed, a higher peak lr and a longer budget
    assert cpu_continue_3c.data == cpu_continue.data and cpu_continue_3c.loss == cpu_continue.loss
    assert cpu_continue_3c.output_dir != cpu_continue.output_dir and cpu_continue_3c.seed != cpu_continue.seed
    assert cpu_continue_3c.optimizer.lr == 5e-5 and cpu_continue_3c.train.max_minutes == 120.0
    # 3d is 3b again from the GPU-trained model, with a lower peak lr
    assert cpu_continue_3d.data == cpu_continue.data and cpu_continue_3d.loss == cpu_continue.loss
    assert len({c.output_dir for c in (cpu_continue, cpu_continue_3c, cpu_continue_3d)}) == 3
    assert len({c.seed for c in (cpu_continue, cpu_continue_3c, cpu_continue_3d)}) == 3
    assert cpu_continue_3d.optimizer.lr == 3e-5 and cpu_continue_3d.train.max_minutes == 100.0
    # 2f and 3e widen the shipped model first ([1, 2, 4, 6] -> [1, 2, 5, 8]), then follow 2e's and 3b's recipes
    for grown, recipe in ((grown_gpu, video_continue), (grown_cpu, cpu_continue)):
        assert grown.model.init.grow.channel_multipliers == grown.model.config["channel_multipliers"] == [1, 2, 5, 8]
        assert grown.data == recipe.data and grown.loss == recipe.loss and grown.output_dir != recipe.output_dir
    assert grown_gpu.optimizer.lr == video_continue.optimizer.lr and grown_gpu.train.max_minutes == video_continue.train.max_minutes
    # 2g, the next GPU stage, continues the bundled model as it is (it ships at 2f's width): 2f's recipe, half its peak lr
    bundled = json.loads((repo / grown_gpu_2g.model.init.from_pretrained / "config.json").read_text())
    assert grown_gpu_2g.model.init.grow is None
    assert {k: bundled[k] for k in grown_gpu_2g.model.config} == grown_gpu_2g.model.config
    assert grown_gpu_2g.data == grown_gpu.data and grown_gpu_2g.loss == grown_gpu.loss and grown_gpu_2g.schedule == grown_gpu.schedule
    assert grown_gpu_2g.optimizer.lr == grown_gpu.optimizer.lr / 2 and grown_gpu_2g.seed != grown_gpu.seed
    assert grown_gpu_2g.output_dir not in {grown_gpu.output_dir, video_continue.output_dir}
    # 3f fine-tunes the bundled model's decoder alone (its latents stay), on 3b's CPU data with the MSE loss alone
    assert decoder_cpu.model.freeze == ["encoder"] and decoder_cpu.model.init.grow is None
    assert decoder_cpu.model.init.from_pretrained == grown_gpu_2g.model.init.from_pretrained
    assert {k: bundled[k] for k in decoder_cpu.model.config} == decoder_cpu.model.config
    assert decoder_cpu.data == cpu_continue.data and decoder_cpu.loss.l1_weight == 0 and decoder_cpu.loss.mse_weight > 0
    assert decoder_cpu.output_dir not in {c.output_dir for c in (cpu_continue, cpu_continue_3c, cpu_continue_3d, grown_cpu)}
    # 3g is 3f from the bundled model on 9x256x256 crops: the size the held-out set is scored at
    assert decoder_cpu_256.model == decoder_cpu.model and decoder_cpu_256.loss == decoder_cpu.loss
    assert decoder_cpu_256.optimizer == decoder_cpu.optimizer and decoder_cpu_256.seed != decoder_cpu.seed
    assert [b.kind for b in decoder_cpu_256.data.buckets] == [b.kind for b in decoder_cpu.data.buckets]
    assert all(b.crop == 256 and b.num_frames == 9 for b in decoder_cpu_256.data.buckets if b.kind != "image")
    assert decoder_cpu_256.output_dir != decoder_cpu.output_dir
    # 3h is 3f from the bundled model with the block-MSE term added: one change
    assert decoder_block_mse.model == decoder_cpu.model and decoder_block_mse.data == decoder_cpu.data
    assert decoder_block_mse.optimizer == decoder_cpu.optimizer and decoder_block_mse.seed not in {decoder_cpu.seed, decoder_cpu_256.seed}
    assert decoder_block_mse.loss.block_mse_weight > 0 and decoder_cpu.loss.block_mse_weight == 0
    assert {**vars(decoder_block_mse.loss), "block_mse_weight": 0} == vars(decoder_cpu.loss)
    assert decoder_block_mse.output_dir not in {decoder_cpu.output_dir, decoder_cpu_256.output_dir}
    # 3i is 3h with the encoder trained too
    assert block_mse_cpu.model.freeze == [] and block_mse_cpu.loss == decoder_block_mse.loss
    assert block_mse_cpu.data == decoder_block_mse.data and block_mse_cpu.optimizer == decoder_block_mse.optimizer
    assert block_mse_cpu.output_dir != decoder_block_mse.output_dir and block_mse_cpu.seed != decoder_block_mse.seed
    # 3j is 3f with the roles swapped: the encoder trained, the decoder frozen, at a higher lr
    assert encoder_cpu.model.freeze == ["decoder"] and encoder_cpu.model.init == decoder_cpu.model.init
    assert encoder_cpu.data == decoder_cpu.data and encoder_cpu.loss == decoder_cpu.loss
    assert encoder_cpu.optimizer.lr > decoder_cpu.optimizer.lr and encoder_cpu.schedule == decoder_cpu.schedule
    assert encoder_cpu.seed not in {decoder_cpu.seed, decoder_block_mse.seed, block_mse_cpu.seed}
    assert encoder_cpu.output_dir not in {decoder_cpu.output_dir, decoder_block_mse.output_dir, block_mse_cpu.output_dir}
    # 3k is 3f again, from the bundled model (session 20's: 3j's encoder): the halves alternate
    assert decoder_cpu_3k.model == decoder_cpu.model and decoder_cpu_3k.data == decoder_cpu.data
    assert decoder_cpu_3k.loss == decoder_cpu.loss and decoder_cpu_3k.optimizer == decoder_cpu.optimizer
    assert decoder_cpu_3k.schedule == decoder_cpu.schedule
    earlier = (decoder_cpu, decoder_cpu_256, decoder_block_mse, block_mse_cpu, encoder_cpu)
    assert decoder_cpu_3k.output_dir not in {c.output_dir for c in earlier}
    assert decoder_cpu_3k.seed not in {c.seed for c in earlier}
    # 3l is 3j at a lower peak lr (a smaller warm-restart dip), from the bundled model (session 21's: 3k's decoder)
    assert encoder_cpu_3l.model == encoder_cpu.model and encoder_cpu_3l.data == encoder_cpu.data
    assert encoder_cpu_3l.loss == encoder_cpu.loss and encoder_cpu_3l.schedule == encoder_cpu.schedule
    assert encoder_cpu_3l.optimizer == replace(encoder_cpu.optimizer, lr=encoder_cpu_3l.optimizer.lr)
    assert encoder_cpu_3l.optimizer.lr < encoder_cpu.optimizer.lr
    assert encoder_cpu_3l.output_dir not in {c.output_dir for c in (*earlier, decoder_cpu_3k)}
    assert encoder_cpu_3l.seed not in {c.seed for c in (*earlier, decoder_cpu_3k)}
    # 3m is 3k at half its peak lr, from the bundled model (session 25's: 3l's encoder)
    assert decoder_cpu_3m.model == decoder_cpu_3k.model and decoder_cpu_3m.data == decoder_cpu_3k.data
    assert decoder_cpu_3m.loss == decoder_cpu_3k.loss and decoder_cpu_3m.schedule == decoder_cpu_3k.schedule
    assert decoder_cpu_3m.optimizer == replace(decoder_cpu_3k.optimizer, lr=decoder_cpu_3k.optimizer.lr / 2)
    assert decoder_cpu_3m.output_dir not in {c.output_dir for c in (*earlier, decoder_cpu_3k, encoder_cpu_3l)}
    assert decoder_cpu_3m.seed not in {c.seed for c in (*earlier, decoder_cpu_3k, encoder_cpu_3l)}
    # 3n is 3j unchanged (its peak lr again), from the bundled model (session 25's: 3l's encoder, 3k's decoder)
    assert encoder_cpu_3n.model == encoder_cpu.model and encoder_cpu_3n.data == encoder_cpu.data
    assert encoder_cpu_3n.loss == encoder_cpu.loss and encoder_cpu_3n.schedule == encoder_cpu.schedule
    assert encoder_cpu_3n.optimizer == encoder_cpu.optimizer
    later = (*earlier, decoder_cpu_3k, encoder_cpu_3l, decoder_cpu_3m)
    assert encoder_cpu_3n.output_dir not in {c.output_dir for c in later}
    assert encoder_cpu_3n.seed not in {c.seed for c in later}
    # 3o is 3k unchanged, from the bundled model (session 26's: 3n's encoder joined with 3m's decoder)
    assert decoder_cpu_3o.model == decoder_cpu_3k.model and decoder_cpu_3o.data == decoder_cpu_3k.data
    assert decoder_cpu_3o.loss == decoder_cpu_3k.loss and decoder_cpu_3o.schedule == decoder_cpu_3k.schedule
    assert decoder_cpu_3o.optimizer == decoder_cpu_3k.optimizer
    assert decoder_cpu_3o.output_dir not in {c.output_dir for c in (*later, encoder_cpu_3n)}
    assert decoder_cpu_3o.seed not in {c.seed for c in (*later, encoder_cpu_3n)}
    # 3p is 3j's recipe on a fixed step horizon (it spans sessions), from the bundled model (session 27's: 3o's decoder)
    assert encoder_cpu_3p.model == encoder_cpu.model and encoder_cpu_3p.data == encoder_cpu.data
    assert encoder_cpu_3p.loss == encoder_cpu.loss and encoder_cpu_3p.schedule == encoder_cpu.schedule
    assert encoder_cpu_3p.optimizer == encoder_cpu.optimizer
    assert encoder_cpu_3p.train.max_minutes is None and encoder_cpu_3p.train.max_steps == 1600
    assert encoder_cpu_3p.output_dir not in {c.output_dir for c in (*later, encoder_cpu_3n, decoder_cpu_3o)}
    assert encoder_cpu_3p.seed not in {c.seed for c in (*later, encoder_cpu_3n, decoder_cpu_3o)}
    # 3q is 3k's recipe on a fixed step horizon, from the bundled model (session 28's: 3p's encoder)
    assert decoder_cpu_3q.model == decoder_cpu_3k.model and decoder_cpu_3q.data == decoder_cpu_3k.data
    assert decoder_cpu_3q.loss == decoder_cpu_3k.loss and decoder_cpu_3q.schedule == decoder_cpu_3k.schedule
    assert decoder_cpu_3q.optimizer == decoder_cpu_3k.optimizer
    assert decoder_cpu_3q.train.max_minutes is None and decoder_cpu_3q.train.max_steps == 1700
    half_stages = (*later, encoder_cpu_3n, decoder_cpu_3o, encoder_cpu_3p)
    assert decoder_cpu_3q.output_dir not in {c.output_dir for c in half_stages}
    assert decoder_cpu_3q.seed not in {c.seed for c in half_stages}
    # every stage holds out the same part of the sample clips
    for stage in (*stages, video_continue, grown_gpu, grown_gpu_2g, more, cpu_continue, cpu_continue_3c, cpu_continue_3d, grown_cpu,
                  decoder_cpu, decoder_cpu_256, decoder_block_mse, block_mse_cpu, encoder_cpu, decoder_cpu_3k,
                  encoder_cpu_3l, decoder_cpu_3m, encoder_cpu_3n, decoder_cpu_3o, encoder_cpu_3p,
                  decoder_cpu_3q):
        assert stage.data.train_time_range == [0.0, HELD_OUT_START_FRACTION]
        assert HELD_OUT_SOURCES[0] not in stage.data.sources
