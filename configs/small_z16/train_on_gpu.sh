#!/usr/bin/env bash
# Stages 1c and 2 of ivvae-small-z16 on one GPU, each for a fixed time (train.max_minutes in
# their configs), then stage 2 resumed for 3.4 more minutes: ~11 minutes of an H200 in all, which
# is how the shipped model was made (session 4; the resume used the time left on the lease).
# Needs the stage-1b export (runs/small_z16/1b_image_vae_more/export, from configs 1 and 1b). If
# stage 1c fails, stage 2 inflates the 1b export instead, so the run still yields a video model.
#
#   configs/small_z16/train_on_gpu.sh [RESULTS_DIR] [IVVAE_TRAIN_ARGS...]
#
# RESULTS_DIR (default runs/small_z16/gpu_results) receives one tar per stage (export, metrics,
# summary, config, log). Extra arguments go to every `ivvae train` call (e.g. --set ...).
source "$(dirname "$0")/_stage.sh"  # takes RESULTS_DIR off the arguments

run_round stage1c configs/small_z16/1c_image_vae_gpu.yaml runs/small_z16/1c_image_vae_gpu \
  runs/small_z16/1b_image_vae_more/export \
  stage2 configs/small_z16/2_ivvae_video_gpu.yaml runs/small_z16/2_ivvae_video_gpu 3.4 "$@"
