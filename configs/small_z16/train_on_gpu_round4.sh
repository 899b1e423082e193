#!/usr/bin/env bash
# Round 4 (prepared in session 8): stage 1f-wide (the shipped model's image VAE, stage 1e-wide,
# trained 4.8 min more), stage 2d-wide (its KTC inflation, video training 3.5 min), then 2d-wide
# resumed for IVVAE_RESUME_MINUTES (default 3.9). Device commands run 10 minutes at most, so run
# it with IVVAE_RESUME_MINUTES=0 and the resume as a second command on the warm machine:
#   IVVAE_RESUME_MINUTES=0 configs/small_z16/train_on_gpu_round4.sh $OUT
#   source configs/small_z16/_stage.sh $OUT && train_stage stage2d_wide_more \
#     configs/small_z16/2d_wide_ivvae_video_gpu.yaml runs/small_z16/2d_wide_ivvae_video_gpu --resume auto --set train.max_minutes=3.9
# (docs/default-model.md "Next" has the whole device commands.) Needs the stage-1e-wide export
# (runs/small_z16/1e_wide_image_vae_gpu/export); if stage 1f-wide fails, stage 2d-wide inflates
# that export instead.
#
#   configs/small_z16/train_on_gpu_round4.sh [RESULTS_DIR] [IVVAE_TRAIN_ARGS...]
source "$(dirname "$0")/_stage.sh"  # takes RESULTS_DIR off the arguments

run_round stage1f_wide configs/small_z16/1f_wide_image_vae_gpu.yaml runs/small_z16/1f_wide_image_vae_gpu \
  runs/small_z16/1e_wide_image_vae_gpu/export \
  stage2d_wide configs/small_z16/2d_wide_ivvae_video_gpu.yaml runs/small_z16/2d_wide_ivvae_video_gpu "${IVVAE_RESUME_MINUTES:-3.9}" "$@"
