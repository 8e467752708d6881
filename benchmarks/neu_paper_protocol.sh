#!/usr/bin/env bash
# The paper's full NEU-CLS protocol (Wu et al. 2025, section 4: native 200 x 200 px, 90 epochs,
# lr 1e-3 divided by 10 after 45, 8:2 split) for every model of its Table 4 and Table 1, each run in
# its own background process so that one GPU trains them side by side.
#
#   benchmarks/neu_paper_protocol.sh DATA_ROOT OUT_DIR [key=value ...]
#
# Extra key=value overrides go to every run (e.g. trainer.accelerator=gpu trainer.compile=true;
# data.val_fraction=0 trains on the whole 8:2 training part, as the paper does, with no validation).
# A run with metrics.json is finished and skipped; a run with checkpoints/last.ckpt is resumed
# (--resume), so the script can be started again after it was killed. Logs: OUT_DIR/NAME.log.
# Set CRACKSCOPE to the command that runs the CLI (default: crackscope). On a CPU, JOBS=1 trains the
# runs one after another instead of side by side, and ONLY="aoie_net ienet" restricts the script to
# the runs named (names as in the list below). SEEDS="0 1 2" trains every run once per training seed
# on the same test split (the configs fix split_seed: 0); seed 0 keeps the run's name, seed S > 0 is
# NAME_sS. neu_paper_protocol_report.py then gives each model's mean and spread over its seeds.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 DATA_ROOT OUT_DIR [key=value ...]" >&2
  exit 2
fi
data_root=$1; out_dir=$2; shift 2
read -r -a cli <<< "${CRACKSCOPE:-crackscope}"

runs=(
  "aoie_net configs/binary/aoie_net_neu.yaml model.name=aoie_net_resnet20"
  "resnet20 configs/binary/resnet20_neu.yaml model.name=resnet20"
  "ienet configs/binary/aoie_net_neu.yaml model.name=ienet_resnet20"
  "adabin configs/binary/aoie_net_neu.yaml model.name=adabin_resnet20"
  "fracbnn configs/binary/aoie_net_neu.yaml model.name=fracbnn_resnet20"
  "reactnet configs/binary/aoie_net_neu.yaml model.name=reactnet_resnet20"
  "fracbnn_aba_io configs/binary/aoie_net_neu.yaml model.name=aoie_ablation_resnet20 model.aba_io=true model.dbn_ieb=false model.pan=false"
  "fracbnn_dbn_ieb configs/binary/aoie_net_neu.yaml model.name=aoie_ablation_resnet20 model.aba_io=false model.dbn_ieb=true model.pan=false"
  "fracbnn_pan configs/binary/aoie_net_neu.yaml model.name=aoie_ablation_resnet20 model.aba_io=false model.dbn_ieb=false model.pan=true"
)

jobs=${JOBS:-0}  # runs trained at once; 0 = all
if ! [[ $jobs =~ ^[0-9]+$ ]]; then
  echo "JOBS=$jobs is not a whole number (0 = all runs at once)" >&2
  exit 2
fi
seeds=()
for seed in ${SEEDS:-0}; do  # training seeds; the split stays the configs' split_seed
  if ! [[ $seed =~ ^[0-9]+$ ]]; then
    echo "SEEDS: $seed is not a whole number" >&2
    exit 2
  fi
  seeds+=($((10#$seed)))
done
names=()
for spec in "${runs[@]}"; do names+=("${spec%% *}"); done
for want in ${ONLY:-}; do
  if [[ " ${names[*]} " != *" $want "* ]]; then
    echo "ONLY: no run named $want (runs: ${names[*]})" >&2
    exit 2
  fi
done
mkdir -p "$out_dir"

pids=()
status=0
for seed in "${seeds[@]}"; do
  for spec in "${runs[@]}"; do
    read -r base config overrides <<< "$spec"
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $base "* ]]; then
      continue
    fi
    name=$base
    [ "$seed" -gt 0 ] && name="${base}_s$seed"
    run_dir="$out_dir/$name"
    if [ -f "$run_dir/metrics.json" ]; then
      echo "$name: finished, skipped"; continue
    fi
    resume=()
    [ -f "$run_dir/checkpoints/last.ckpt" ] && resume=(--resume)
    # shellcheck disable=SC2086
    "${cli[@]}" train --config "$config" "${resume[@]}" name="$name" seed="$seed" out_dir="$out_dir" \
      data.root="$data_root" $overrides "$@" >>"$out_dir/$name.log" 2>&1 &
    pids+=($!)
    echo "$name: started (pid $!)${resume:+, resumed}"
    if [ "$jobs" -gt 0 ] && [ "${#pids[@]}" -ge "$jobs" ]; then  # wait for the oldest before the next
      wait "${pids[0]}" || status=1
      pids=("${pids[@]:1}")
    fi
  done
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
