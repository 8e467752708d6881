#!/usr/bin/env bash
# MicroCrackAttentionNeXt on paper-preset plates simulated on a lent GPU machine, within one device call.
# Run there from the repository root, after the wheels of benchmarks/device/prepare.py were made here, as
#
#   run(command="bash benchmarks/device/wavefield_paper.sh", carry=[".device"], timeout_s=600)
#
# Nothing large travels: the data is simulated there. The script installs the carried wheels (the
# packages the device image lacks) into /tmp/site, then
#   1. simulates SAMPLES (default 6000) plates of PRESET (default paper) with seed SEED (default 0) on
#      DEVICE (default cuda: the torch path) in batches of SIM_BATCH (default 256) into a store in
#      RUNS_DIR (default runs/device-wavefield), stopped after SIM_DEADLINE s (default 150; the store
#      resumes, and training uses the plates finished by then), and writes the simulator's
#      throughput to $OUT/simulate.json and the store's settings to $OUT/simulate.yaml;
#   2. trains CONFIG (default configs/wavefield/mcan.yaml) as RUN_NAME (default: the preset) on it,
#      with trainer.accelerator=gpu (cpu when DEVICE is cpu) trainer.choose_threshold=true and the
#      extra key=value arguments, always with --resume (a fresh run starts, a run of an earlier call
#      on the warm machine continues), stopped after DEADLINE s (default 330);
#   3. if the training finished, evaluates the run on its test split into RUN/evaluate, within
#      BUDGET s (default 560) from the script's start;
#   4. packs the run, finished or not, into $OUT/run.tar.gz (config, split, weights, operating
#      point, metrics, figures, logs, checkpoints/last.ckpt; not the per-epoch checkpoints), the
#      phase logs into $OUT/logs.tar.gz, and writes $OUT/summary.txt (each phase's time and status,
#      and the command that resumes the run here, on the CPU).
# $OUT also gets machine.txt (nvidia-smi). Exit 0 when the run was packed, even if the training hit
# DEADLINE; 2 with one line for a bad setting; else the status of the phase that failed.
# PYTHON (default python3) runs the CLI; WHEELS (default .device/wheels, empty to skip) are installed.
# Relative paths (CONFIG, RUNS_DIR, WHEELS) are taken from the repository root.
set -uo pipefail
[ -n "${OUT:-}" ] || { echo "OUT must name the folder whose files come back" >&2; exit 2; }
out=$(realpath -m -- "$OUT")
cd "$(dirname "$0")/../.."

whole() {  # NAME VALUE SMALLEST: exit 2 unless VALUE is a whole number >= SMALLEST
  if ! [[ $2 =~ ^[0-9]+$ ]] || (( 10#$2 < $3 )); then
    echo "$1=$2 is not a whole number$([ "$3" -gt 0 ] && echo " of at least $3")" >&2
    exit 2
  fi
}
deadline=${DEADLINE:-330}; whole DEADLINE "$deadline" 1
sim_deadline=${SIM_DEADLINE:-150}; whole SIM_DEADLINE "$sim_deadline" 1
budget=${BUDGET:-560}; whole BUDGET "$budget" 1
samples=${SAMPLES:-6000}; whole SAMPLES "$samples" 3
sim_batch=${SIM_BATCH:-256}; whole SIM_BATCH "$sim_batch" 1
seed=${SEED:-0}; whole SEED "$seed" 0
deadline=$((10#$deadline)) sim_deadline=$((10#$sim_deadline)) budget=$((10#$budget))
samples=$((10#$samples)) sim_batch=$((10#$sim_batch)) seed=$((10#$seed))
preset=${PRESET:-paper}
case $preset in
  paper|small|tiny) ;;
  *) echo "PRESET=$preset is not paper, small or tiny" >&2; exit 2 ;;
esac
device=${DEVICE:-cuda}
case $device in
  cpu) accelerator=cpu ;;
  cuda|cuda:[0-9]*) accelerator=gpu ;;
  *) echo "DEVICE=$device is not cpu or cuda" >&2; exit 2 ;;
esac
config=${CONFIG:-configs/wavefield/mcan.yaml}
[ -f "$config" ] || { echo "CONFIG=$config is not a file" >&2; exit 2; }
runs_dir=${RUNS_DIR:-runs/device-wavefield}
name=${RUN_NAME:-$preset}
store=$runs_dir/$preset-n$samples-s$seed.zarr
run=$runs_dir/$name

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
start=$(now)

source benchmarks/device/python_env.sh  # $py, the carried wheels, PYTHONPATH
mkdir -p "$out" "$runs_dir"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
if command -v nvidia-smi >/dev/null; then
  nvidia-smi > "$out/machine.txt" 2>&1
  "$py" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.is_available())" \
    >> "$out/machine.txt" 2>&1
fi
setup_s=$(since "$start")

summary=$out/summary.txt
{
  echo "wavefield_paper.sh: preset $preset, $samples plates (seed $seed), simulated on $device in batches of $sim_batch"
  echo "setup     ${setup_s} s (wheels, import check)"
} > "$summary"
tail_of() {  # the end of a failed phase's log, indented
  tail -n 5 "$logs/$1.log" 2>/dev/null | sed 's/^/            /'
}

# ---- 1. simulate ------------------------------------------------------------------------------
# How many plates of the store are finished (0 when there is no store yet).
DONE_PY=$(cat <<'EOF'
import sys
from pathlib import Path
if not (Path(sys.argv[1]) / "zarr.json").exists():
    print(0)
    raise SystemExit
import numpy, zarr
print(int(numpy.asarray(zarr.open_group(sys.argv[1], mode="r")["done"][:]).sum()))
EOF
)
# $OUT/simulate.json (throughput) and $OUT/simulate.yaml (the store's settings) from the store.
REPORT_PY=$(cat <<'EOF'
import json, sys
from pathlib import Path
import numpy, yaml, zarr
store, out, done_before, seconds, status, t0 = sys.argv[1:7]
info = dict(a.split("=", 1) for a in sys.argv[7:])
done_before, seconds, status, t0 = int(done_before), float(seconds), int(status), float(t0)
have = (Path(store) / "zarr.json").exists()
group = zarr.open_group(store, mode="r") if have else None
done = numpy.asarray(group["done"][:]).astype(bool) if have else numpy.zeros(0, bool)
made = int(done.sum()) - done_before
batch = int(group.attrs["batch"]) if have else int(info["batch"])
# steady rate: the batches of this call after its first, timed by when their done flags were written
# (so without the start-up, the intact reference plate and the first batch)
times = sorted(t for t in (p.stat().st_mtime for p in (Path(store) / "done" / "c").glob("*")) if t >= t0) \
    if have else []
steady = None
if len(times) >= 2 and times[-1] > times[0] and made > batch:
    steady = {"samples": made - batch, "seconds": round(times[-1] - times[0], 3),
              "plates_per_s": round((made - batch) / (times[-1] - times[0]), 2)}
result = {"preset": info["preset"], "device": info["device"], "seed": int(info["seed"]), "batch": batch,
          "samples": made, "seconds": round(seconds, 3),
          "plates_per_s": round(made / seconds, 2) if made > 0 and seconds > 0 else None,
          "steady": steady, "store_samples": int(done.size), "store_done": int(done.sum()), "store": store,
          "exit_status": status, "stopped_at_deadline": status in (124, 137),
          "sim_deadline_s": int(info["sim_deadline"]), "target_plates_per_s": 500,
          "note": "samples: plates simulated by this call; seconds: the whole simulate command (start-up, the "
                  "intact reference plate, simulation, compressed store writes); steady: the batches after the "
                  "first, timed by their done flags. target_plates_per_s (paper preset, one H200) is not asserted."}
(Path(out) / "simulate.json").write_text(json.dumps(result, indent=2) + "\n")
if have:
    a = group.attrs
    n, seed = a["n_samples"], a["seed"]
    head = [f"# The simulator settings of the store {store} ({n} plates, seed {seed}, batch {a['batch']};",
            f"# simulator {a['simulator']!r}, crackscope {a.get('crackscope_version')}). The same plates:",
            f"#   crackscope simulate wavefield --config simulate.yaml --samples {n} --seed {seed} --out STORE.zarr",
            "# (the cracks of plate i depend only on (seed, i); the signals are the store's up to the float",
            "# rounding of the device). Fresh plates: another --seed. --batch only sets the resume granularity.",
            f"# Simulated on {info['device']} in {seconds:.1f} s (exit {status})."]
    body = yaml.safe_dump({"preset": info["preset"], **dict(a["config"])}, sort_keys=False)
    (Path(out) / "simulate.yaml").write_text("\n".join(head) + "\n" + body)
print(int(done.sum()))  # the finished plates, for the script
EOF
)

done_before=$("$py" -c "$DONE_PY" "$store" 2>/dev/null || echo 0)
t=$(now)
t_epoch=$(date +%s)
timeout -s TERM -k 20 "$sim_deadline" "$py" -m crackscope.cli simulate wavefield --preset "$preset" \
  --samples "$samples" --batch "$sim_batch" --device "$device" --seed "$seed" --out "$store" > "$logs/simulate.log" 2>&1
sim_status=$?
sim_s=$(since "$t")
done_after=$("$py" -c "$REPORT_PY" "$store" "$out" "$done_before" "$sim_s" "$sim_status" "$((t_epoch - 1))" \
  preset="$preset" device="$device" seed="$seed" batch="$sim_batch" sim_deadline="$sim_deadline" 2>> "$logs/simulate.log")
[[ $done_after =~ ^[0-9]+$ ]] || done_after=0
rate=$(awk -v n=$((done_after - done_before)) -v s="$sim_s" 'BEGIN { if (n > 0 && s > 0) printf "%.1f plates/s", n / s; else print "no new plates" }')
case $sim_status in
  0) sim_note="finished" ;;
  124|137) sim_note="stopped at SIM_DEADLINE=$sim_deadline s" ;;
  *) sim_note="failed" ;;
esac
echo "simulate  ${sim_s} s, exit $sim_status ($sim_note): $done_after of $samples plates in the store, $((done_after - done_before)) new, $rate (simulate.json)" >> "$summary"
[ "$sim_note" = failed ] && tail_of simulate >> "$summary"

# ---- 2. train ---------------------------------------------------------------------------------
train_args=(name="$name" out_dir="$runs_dir" data.store="$store" trainer.accelerator="$accelerator"
            trainer.choose_threshold=true "$@")
train_status=-1
if [ "$sim_note" = failed ] || [ "$done_after" -lt 3 ]; then
  echo "train     skipped: the store has $done_after finished plates" >> "$summary"
else
  t=$(now)
  touch "$logs/train.start"
  timeout -s TERM -k 20 "$deadline" "$py" -m crackscope.cli train --config "$config" --resume "${train_args[@]}" \
    > "$logs/train.log" 2>&1
  train_status=$?
  train_s=$(since "$t")
  case $train_status in
    0) train_note="finished" ;;
    124|137)
      if [ "$run/metrics.json" -nt "$logs/train.start" ]; then  # stopped while exiting: counted as finished
        train_note="finished: DEADLINE=$deadline s stopped the process after it had written metrics.json"
      else
        train_note="stopped at DEADLINE=$deadline s: checkpoints/last.ckpt (the last whole epoch) is packed"
      fi ;;
    *) train_note="failed" ;;
  esac
  rm -f "$logs/train.start"
  echo "train     ${train_s} s, exit $train_status ($train_note)" >> "$summary"
  [[ $train_note == finished* ]] && train_status=0
  [ "$train_note" = failed ] && tail_of train >> "$summary"
fi

# ---- 3. evaluate ------------------------------------------------------------------------------
eval_status=0
if [ "$train_status" = 0 ] && [ -f "$run/model.safetensors" ]; then
  left=$(awk -v a="$start" -v b="$(now)" -v budget="$budget" 'BEGIN { printf "%d", budget - (b - a) - 15 }')
  if [ "$left" -ge 10 ]; then
    t=$(now)
    timeout -s TERM -k 10 "$left" "$py" -m crackscope.cli evaluate "$run" --data "$store" --out "$run/evaluate" \
      > "$logs/evaluate.log" 2>&1
    eval_status=$?
    case $eval_status in
      0) eval_note="RUN/evaluate: metrics.json, size_table.md, figures/masks.png" ;;
      124|137) eval_note="stopped at the BUDGET=$budget s" ;;
      *) eval_note="failed" ;;
    esac
    echo "evaluate  $(since "$t") s, exit $eval_status ($eval_note)" >> "$summary"
    [ "$eval_note" = failed ] && tail_of evaluate >> "$summary"
  else
    echo "evaluate  skipped: $left s left of BUDGET=$budget s (train wrote metrics.json itself)" >> "$summary"
  fi
else
  echo "evaluate  skipped: the training did not finish" >> "$summary"
fi

# ---- 4. pack ----------------------------------------------------------------------------------
t=$(now)
packed=no
if [ -f "$run/config.yaml" ]; then
  # every file of the run except the checkpoints other than last.ckpt (per-epoch and best)
  if (cd "$runs_dir" && find "$name" \( -path "$name/checkpoints/*" ! -name last.ckpt \) -prune -o -type f -print0 \
        | tar czf - --null -T -) > "$out/run.tar.gz"; then
    packed=yes
  else
    rm -f "$out/run.tar.gz"
  fi
fi
tar czf "$out/logs.tar.gz" -C "$logs" . 2>/dev/null
if [ $packed = yes ]; then
  echo "pack      $(since "$t") s: run.tar.gz ($(du -k "$out/run.tar.gz" | cut -f1) KiB), logs.tar.gz" >> "$summary"
else
  echo "pack      $(since "$t") s: no run to pack ($run/config.yaml missing); logs.tar.gz" >> "$summary"
fi
echo "total     $(since "$start") s" >> "$summary"
if [ $packed = yes ] && [ ! -f "$run/metrics.json" ]; then
  resume_args=(name="$name" out_dir="$runs_dir" data.store="$store" trainer.accelerator=cpu
               trainer.choose_threshold=true "$@")
  {
    echo "The training did not finish. To resume it here, on the CPU, unpack run.tar.gz into $runs_dir, remake"
    echo "the store with simulate.yaml (its first lines give the command; --out $store), then:"
    printf '  crackscope train --config %q --resume' "$config"
    printf ' %q' "${resume_args[@]}"
    echo
  } >> "$summary"
fi
cat "$summary"

[ $packed = yes ] || exit $(( train_status > 0 ? train_status : (sim_status > 0 ? sim_status : 1) ))
case $train_status in
  0|124|137) ;;
  *) exit "$train_status" ;;
esac
case $eval_status in
  0|124|137) exit 0 ;;
  *) exit "$eval_status" ;;
esac
