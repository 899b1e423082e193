# Sourced by the train_on_gpu*.sh scripts: train_stage NAME CONFIG RUN_DIR [ARGS...] trains one
# stage with `ivvae train`, then packs what a later session needs into $results/NAME.tar
# (export, metrics, summary, config, log).
ivvae_cmd=(python3 -m ivvae.cli)

train_stage() {
  local name=$1 config=$2 run_dir=$3
  shift 3
  echo "=== stage $name: $config ($(date -u +%T))"
  "${ivvae_cmd[@]}" train "$config" --set logging.progress_bar=false "$@" 2>&1 | tee "$results/$name.log"
  local status=$?
  echo "=== stage $name ended with status $status ($(date -u +%T))"
  if [[ -f $run_dir/export/config.json ]]; then
    cp "$results/$name.log" "$run_dir/$name.log"
    tar -cf "$results/$name.tar" -C "$run_dir" export metrics.jsonl summary.json config.yaml "$name.log"
  fi
  return $status
}
