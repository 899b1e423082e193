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
# summary, config, log). Extra arguments go to both `ivvae train` calls (e.g. --set ...).
set -u -o pipefail
results=${1:-runs/small_z16/gpu_results}
shift || true
mkdir -p "$results"
source "$(dirname "$0")/_stage.sh"

image_dir=runs/small_z16/1c_image_vae_gpu
train_stage stage1c configs/small_z16/1c_image_vae_gpu.yaml "$image_dir" "$@"
video_args=()
if [[ ! -f $image_dir/export/config.json ]]; then
  echo "stage 1c left no export: stage 2 inflates the stage-1b image VAE instead"
  video_args=(--set model.init.inflate_from=runs/small_z16/1b_image_vae_more/export)
fi
video_dir=runs/small_z16/2_ivvae_video_gpu
train_stage stage2 configs/small_z16/2_ivvae_video_gpu.yaml "$video_dir" "${video_args[@]}" "$@" || exit
# A resumed run plans a new horizon from its own budget: the lr rises again (a warm restart) and
# decays to the end of the extra time.
train_stage stage2_more configs/small_z16/2_ivvae_video_gpu.yaml "$video_dir" --resume auto --set train.max_minutes=3.4 \
  "${video_args[@]}" "$@"
