#!/usr/bin/env bash
# Stages 1e and 2c of ivvae-small-z16 on one GPU, each for a fixed time (train.max_minutes in
# their configs): the stage-1d image VAE trained on (4.5 min), then inflated into an IV-VAE and
# trained on video (3.5 min), then stage 2c resumed for IVVAE_RESUME_MINUTES (default 3.4) more.
# Prepared in session 6 for the next GPU lease, whose commands may run 10 minutes at most: the
# first two stages take ~9 minutes, so run them with IVVAE_RESUME_MINUTES=0 and the resume as a
# second command on the warm machine:
#   IVVAE_RESUME_MINUTES=0 configs/small_z16/train_on_gpu_round3.sh $OUT
#   source configs/small_z16/_stage.sh $OUT && train_stage stage2c_more \
#     configs/small_z16/2c_ivvae_video_gpu.yaml runs/small_z16/2c_ivvae_video_gpu --resume auto --set train.max_minutes=3.4
# (docs/default-model.md "Next" has the whole device commands, wheels included.)
# Needs the stage-1d export (runs/small_z16/1d_image_vae_gpu/export, from train_on_gpu_more.sh).
# If stage 1e fails, stage 2c inflates the stage-1d export instead.
#
#   configs/small_z16/train_on_gpu_round3.sh [RESULTS_DIR] [IVVAE_TRAIN_ARGS...]
#
# RESULTS_DIR (default runs/small_z16/gpu_results) receives one tar per stage. Extra arguments go
# to every `ivvae train` call (e.g. --set train.compile.enabled=true).
source "$(dirname "$0")/_stage.sh"  # takes RESULTS_DIR off the arguments

run_round stage1e configs/small_z16/1e_image_vae_gpu.yaml runs/small_z16/1e_image_vae_gpu \
  runs/small_z16/1d_image_vae_gpu/export \
  stage2c configs/small_z16/2c_ivvae_video_gpu.yaml runs/small_z16/2c_ivvae_video_gpu "${IVVAE_RESUME_MINUTES:-3.4}" "$@"
