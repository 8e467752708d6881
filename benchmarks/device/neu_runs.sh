#!/usr/bin/env bash
# NEU-CLS runs of benchmarks/neu_paper_protocol.sh on a lent GPU machine, within one device call.
# Run there from the repository root, after benchmarks/device/prepare.py here, as
#
#   run(command="bash benchmarks/device/neu_runs.sh trainer.accelerator=gpu trainer.compile=true", carry=[".device"], timeout_s=600)
#
# It installs the carried wheels (the packages the device image lacks) into /tmp/site, trains the
# runs named by ONLY and SEEDS (default: AOIE-Net with training seeds 1-3, the seed study of the
# README) side by side on the GPU in runs/device/, and stops them after DEADLINE seconds (default
# 420, which leaves a 600-s call time to pack). Then, whether they finished or not, it packs each
# run into $OUT/NAME.tar.gz (config, split, metrics, weights, logs, checkpoints/last.ckpt; not the
# per-epoch checkpoints), at most 7 runs: the device returns 8 files. A second call on the warm
# machine resumes the unfinished runs (runs/device is ignored by git and stays there); a run packed
# unfinished also resumes here, on the CPU: the same train command with --resume and
# data.root=.device/NEU-CLS (the root its config.yaml holds). Back here:
#   for f in /work/.device/.../*.tar.gz; do tar xzf "$f" -C runs/npp; done
#   .venv/bin/python benchmarks/neu_paper_protocol_report.py runs/npp --data ../shared/datasets/NEU-CLS --out ...
# Extra key=value arguments go to every run. PYTHON (default python3) runs the CLI; WHEELS (default
# .device/wheels, empty to skip), DATA (default .device/NEU-CLS) and RUNS_DIR (default runs/device) can be set.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:?OUT must name the folder whose files come back}
deadline=${DEADLINE:-420}
if ! [[ $deadline =~ ^[0-9]+$ ]]; then
  echo "DEADLINE=$deadline is not a whole number of seconds" >&2
  exit 2
fi
data=${DATA:-.device/NEU-CLS}
if [ ! -d "$data" ]; then
  echo "DATA=$data is not a folder (run benchmarks/device/prepare.py here and carry .device)" >&2
  exit 2
fi
source benchmarks/device/python_env.sh  # $py, the carried wheels, PYTHONPATH
runs_dir=${RUNS_DIR:-runs/device}
mkdir -p "$runs_dir" "$out"
command -v nvidia-smi >/dev/null && nvidia-smi > "$out/machine.txt" 2>&1
start=$(date +%s)
ONLY=${ONLY-aoie_net} SEEDS=${SEEDS-1 2 3} CRACKSCOPE="$py -m crackscope.cli" \
  timeout -s TERM -k 30 "$deadline" bash benchmarks/neu_paper_protocol.sh "$data" "$runs_dir" "$@"
status=$?
echo "protocol exit $status after $(( $(date +%s) - start )) s (124: stopped at DEADLINE=$deadline)" | tee -a "$out/machine.txt"
packed=0
for run in "$runs_dir"/*/; do
  name=$(basename "$run")
  [ -f "$run/config.yaml" ] || continue
  if [ $packed -ge 7 ]; then
    echo "$name: not packed (the device returns 8 files)" | tee -a "$out/machine.txt"
    continue
  fi
  members=$(cd "$runs_dir" && find "$name" -path "$name/checkpoints/*" ! -name last.ckpt -prune -o -type f -print)
  (cd "$runs_dir" && tar czf - $members "$name.log" 2>/dev/null) > "$out/$name.tar.gz"
  echo "$name: $(ls "$run" | tr '\n' ' ')" >> "$out/machine.txt"
  packed=$((packed + 1))
done
exit $status
