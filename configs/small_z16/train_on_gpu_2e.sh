#!/usr/bin/env bash
# Stage 2e-wide on one GPU (prepared in session 8, first run in session 15): the shipped IV-VAE
# trained on with stage 2c-wide's video recipe (batch 16, lr 3e-4 warm restart, cosine). With
# IVVAE_TAIL_MINUTES > 0 it is then resumed for that many minutes at a low peak lr
# (IVVAE_TAIL_LR, default 6e-5), a short anneal rather than a second warm restart at 3e-4.
# Device commands run 10 minutes at most, so run the tail as a second command on the warm machine
# (session 15's two commands; docs/default-model.md "Next" has them whole):
#   IVVAE_TAIL_MINUTES=0 timeout 578 configs/small_z16/train_on_gpu_2e.sh $OUT --set train.max_minutes=8.8
#   IVVAE_SKIP_MAIN=1 IVVAE_TAIL_MINUTES=2.4 timeout 205 configs/small_z16/train_on_gpu_2e.sh $OUT
# Needs nothing but the tracked tree and the packages (docs/default-model.md "Next").
# IVVAE_STAGE picks the stage config configs/small_z16/${IVVAE_STAGE}_continue_gpu.yaml (default 2e_wide, which ran
# from the session-14 model and needs it restored, docs/default-model.md;
# 2f_grown: the session-15 model widened to [1, 2, 5, 8] first, run in session 17; 2g_grown: the shipped model as it
# is, at half the peak lr, the next lease's; the same two commands).
#
#   configs/small_z16/train_on_gpu_2e.sh [RESULTS_DIR] [IVVAE_TRAIN_ARGS...]
source "$(dirname "$0")/_stage.sh"  # takes RESULTS_DIR off the arguments

stage=${IVVAE_STAGE:-2e_wide}
config=configs/small_z16/${stage}_continue_gpu.yaml
run_dir=runs/small_z16/${stage}_continue_gpu
[[ -f $(dirname "$0")/${stage}_continue_gpu.yaml ]] || { echo "IVVAE_STAGE=$stage: there is no $config" >&2; exit 2; }
if [[ -z ${IVVAE_SKIP_MAIN-} ]]; then
  train_stage "stage$stage" "$config" "$run_dir" "$@" || exit
  [[ -z $stop_signal ]] || exit 143
fi
tail_minutes=${IVVAE_TAIL_MINUTES:-0}
[[ $tail_minutes == 0 ]] && exit 0
train_stage "stage${stage}_tail" "$config" "$run_dir" --resume auto --set "train.max_minutes=$tail_minutes" \
  --set "optimizer.lr=${IVVAE_TAIL_LR:-6e-5}" --set schedule.warmup_steps=10 "$@"
