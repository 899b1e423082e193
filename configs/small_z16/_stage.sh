# Sourced by the train_on_gpu*.sh scripts: train_stage NAME CONFIG RUN_DIR [ARGS...] trains one
# stage with `ivvae train`, then packs what a later session needs into $results/NAME.tar
# (export, metrics, summary, config, log). Sourcing it takes the script's first argument,
# RESULTS_DIR (default runs/small_z16/gpu_results), off the script's arguments.
set -u -o pipefail
results=${1:-runs/small_z16/gpu_results}
shift || true
mkdir -p "$results"
# IVVAE_CMD replaces the command (the tests run the scripts with a stub that logs its arguments)
read -ra ivvae_cmd <<< "${IVVAE_CMD:-python3 -m ivvae.cli}"
# `timeout` (or the end of a lease) sends SIGTERM to the whole process group: `ivvae train` then
# stops after its step with a checkpoint and an export, which train_stage still packs (tee ignores
# the signal, so the log stays whole); the round ends after that stage.
stop_signal=""
trap 'stop_signal=TERM' TERM
# The device tool brings back files of at most 16 MiB: a larger tar (the 21 MB fp16 export of the
# wide IV-VAE) is split into NAME.tar.partNN of this many bytes; `cat NAME.tar.part* > NAME.tar`.
part_bytes=${IVVAE_PART_BYTES:-15000000}

train_stage() {
  local name=$1 config=$2 run_dir=$3
  shift 3
  echo "=== stage $name: $config ($(date -u +%T))"
  "${ivvae_cmd[@]}" train "$config" --set logging.progress_bar=false "$@" 2>&1 | (trap '' TERM; exec tee "$results/$name.log")
  local status=$?
  echo "=== stage $name ended with status $status ($(date -u +%T))"
  if [[ -f $run_dir/export/config.json ]]; then
    cp "$results/$name.log" "$run_dir/$name.log"
    tar -cf "$results/$name.tar" -C "$run_dir" export metrics.jsonl summary.json config.yaml "$name.log"
    if (( $(stat -c %s "$results/$name.tar") > part_bytes )); then
      split -b "$part_bytes" -d -a 2 "$results/$name.tar" "$results/$name.tar.part" && rm "$results/$name.tar"
    fi
  fi
  return $status
}

# run_round IMAGE_NAME IMAGE_CONFIG IMAGE_DIR FALLBACK_EXPORT VIDEO_NAME VIDEO_CONFIG VIDEO_DIR RESUME_MINUTES [ARGS...]:
# an image stage; then the video stage, which KTC-inflates the image stage's export (or
# FALLBACK_EXPORT if that stage left none, so the round still yields a video model); then the
# video stage resumed for RESUME_MINUTES more (0: not resumed, e.g. to leave the resume to a
# second command on a lease with a per-command limit). ARGS go to every `ivvae train` call;
# $IVVAE_IMAGE_ARGS (e.g. "--set train.compile.enabled=true") to the image stage only.
run_round() {
  local image_name=$1 image_config=$2 image_dir=$3 fallback=$4 video_name=$5 video_config=$6 video_dir=$7 resume_minutes=$8
  shift 8
  # shellcheck disable=SC2086  # IVVAE_IMAGE_ARGS: extra arguments for the image stage only, word-split
  train_stage "$image_name" "$image_config" "$image_dir" ${IVVAE_IMAGE_ARGS-} "$@"
  [[ -z $stop_signal ]] || return 143
  local video_args=()
  if [[ ! -f $image_dir/export/config.json ]]; then
    echo "$image_name left no export: $video_name inflates $fallback instead"
    video_args=(--set "model.init.inflate_from=$fallback")
  fi
  train_stage "$video_name" "$video_config" "$video_dir" "${video_args[@]}" "$@" || return
  [[ $resume_minutes == 0 ]] && return
  # A resumed run plans a new horizon from its own budget: the lr rises again (a warm restart) and
  # decays to the end of the extra time.
  train_stage "${video_name}_more" "$video_config" "$video_dir" --resume auto --set "train.max_minutes=$resume_minutes" \
    "${video_args[@]}" "$@"
}
