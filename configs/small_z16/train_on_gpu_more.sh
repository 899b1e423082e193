#!/usr/bin/env bash
# Stages 1d and 2b of ivvae-small-z16 on one GPU, each for a fixed time (train.max_minutes in
# their configs): the stage-1c image VAE trained on with larger batches (4 min), then inflated
# into an IV-VAE and trained on video (3.5 min), then stage 2b resumed for 3.6 more minutes:
# ~13 minutes of one GPU in all, which is how the session-5 model was made (the resume was a
# second call, on the time left on the lease).
# Needs the stage-1c export (runs/small_z16/1c_image_vae_gpu/export, from train_on_gpu.sh). If
# stage 1d fails, stage 2b inflates the stage-1c export instead.
#
#   configs/small_z16/train_on_gpu_more.sh [RESULTS_DIR] [IVVAE_TRAIN_ARGS...]
#
# RESULTS_DIR (default runs/small_z16/gpu_results) receives one tar per stage. Extra arguments go
# to every `ivvae train` call (e.g. --set ...).
source "$(dirname "$0")/_stage.sh"  # takes RESULTS_DIR off the arguments

run_round stage1d configs/small_z16/1d_image_vae_gpu.yaml runs/small_z16/1d_image_vae_gpu \
  runs/small_z16/1c_image_vae_gpu/export \
  stage2b configs/small_z16/2b_ivvae_video_gpu.yaml runs/small_z16/2b_ivvae_video_gpu 3.6 "$@"
