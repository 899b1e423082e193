#!/usr/bin/env bash
# A CPU-sized proxy of the stage-1e image training (session 7), to compare initialisations before a
# GPU lease spends minutes on one: stage 1e's config and data at batch 8 of 128x128 crops, fp32,
# one thread, no data workers, validation (the held-out tails of bikes and bigbuckbunny, 256x256)
# every VAL_EVERY steps. ~2 s a step on one core of the 2-core CPU; run two at once.
# Stage 1e's loss includes its MSE term (loss.mse_weight 10, session 7); the session-7 runs
# without it (docs/default-model/proxy_*_session7.json) are repeated with --set loss.mse_weight=0.
#
#   configs/small_z16/cpu_proxy_image_stage.sh RUN_DIR INIT_MODEL [STEPS] [LR] [VAL_EVERY] [IVVAE_TRAIN_ARGS...]
#
# e.g. the same-width vs grown comparison of docs/default-model.md:
#   ivvae grow runs/small_z16/1d_image_vae_gpu/export runs/small_z16/1d_wide --channel-multipliers 1 2 4 6
#   configs/small_z16/cpu_proxy_image_stage.sh runs/proxy/same runs/small_z16/1d_image_vae_gpu/export 720 3e-4 180 --set loss.mse_weight=0 &
#   configs/small_z16/cpu_proxy_image_stage.sh runs/proxy/wide runs/small_z16/1d_wide 720 3e-4 180 --set loss.mse_weight=0
set -u -o pipefail
run_dir=$1 init=$2 steps=${3:-240} lr=${4:-5e-4} val_every=${5:-80}
args=(--output-dir "$run_dir" --set "model.init.from_pretrained=$init" --set optimizer.lr="$lr"
  --set train.max_minutes=null --set train.max_steps="$steps" --set train.precision=no --set train.num_threads=1
  --set data.num_workers=0 --set data.frame_cache_mb=700 --set schedule.warmup_steps=20
  --set logging.val_every="$val_every" --set logging.every=20 --set checkpoint.every=1000
  --set logging.images=false --set logging.tensorboard=false --set model.channels_last=false)
for bucket in 0 1 2; do
  args+=(--set "data.buckets.$bucket.crop=128" --set "data.buckets.$bucket.batch_size=8")
done
ivvae train "$(dirname "$0")/1e_image_vae_gpu.yaml" "${args[@]}" "${@:6}"
