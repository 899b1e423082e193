#!/usr/bin/env bash
# Round 3 with a wider deepest stage: grow the stage-1d image VAE to channel multipliers
# [1, 2, 4, 6] (`ivvae grow`: same function, seconds), then stages 1e-wide (4.5 min) and 2c-wide
# (3.5 min), then 2c-wide resumed for IVVAE_RESUME_MINUTES (default 3.4), as
# train_on_gpu_round3.sh does for the current width. Prepared in session 7, run in session 8 (the
# shipped model; the resume ran 3.9 min);
# commands there may run 10 minutes at most, so run it with IVVAE_RESUME_MINUTES=0 and the resume
# as a second command on the warm machine:
#   IVVAE_RESUME_MINUTES=0 configs/small_z16/train_on_gpu_round3_wide.sh $OUT
#   source configs/small_z16/_stage.sh $OUT && train_stage stage2c_wide_more \
#     configs/small_z16/2c_wide_ivvae_video_gpu.yaml runs/small_z16/2c_wide_ivvae_video_gpu --resume auto --set train.max_minutes=3.4
# (docs/default-model.md "Next" has the whole device commands, wheels included.)
# Needs the stage-1d export (runs/small_z16/1d_image_vae_gpu/export). If stage 1e-wide fails,
# stage 2c-wide inflates the grown, untrained-further image VAE instead.
#
#   configs/small_z16/train_on_gpu_round3_wide.sh [RESULTS_DIR] [IVVAE_TRAIN_ARGS...]
source "$(dirname "$0")/_stage.sh"  # takes RESULTS_DIR off the arguments

# Stage 1e-wide grows the 1d export itself (model.init.grow); the same grown model is also written
# as a folder, for stage 2c-wide to inflate should stage 1e-wide leave no export.
grown=runs/small_z16/1d_wide
if [[ ! -f $grown/config.json ]]; then
  "${ivvae_cmd[@]}" grow runs/small_z16/1d_image_vae_gpu/export "$grown" --channel-multipliers 1 2 4 6 || exit
fi
run_round stage1e_wide configs/small_z16/1e_wide_image_vae_gpu.yaml runs/small_z16/1e_wide_image_vae_gpu "$grown" \
  stage2c_wide configs/small_z16/2c_wide_ivvae_video_gpu.yaml runs/small_z16/2c_wide_ivvae_video_gpu "${IVVAE_RESUME_MINUTES:-3.4}" "$@"
