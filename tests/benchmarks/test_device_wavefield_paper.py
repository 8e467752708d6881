"""benchmarks/device/wavefield_paper.sh with a stand-in Python whose ``-m crackscope.cli`` simulate /
train / evaluate write what the real ones write (the store's metadata and done flags; a run folder):
the commands it runs, what it packs into $OUT (last.ckpt but no per-epoch checkpoints; simulate.json
and simulate.yaml), that DEADLINE and SIM_DEADLINE stop a slow phase and the run is still packed, and
the exit-2 checks. The last test runs the real script end to end on the CPU on a few tiny plates."""

import json
import os
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from crackscope.physics.config import PlateConfig, load_plate_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "device" / "wavefield_paper.sh"

# -m pip and -m crackscope.cli are faked; anything else (the script's -c snippets) runs in the real Python.
FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1" = -m ] && [ "$2" = pip ]; then echo "pip ${*:3}" >> "$CALLS"; exit 0; fi
if [ "$1" != -m ] || [ "$2" != crackscope.cli ]; then exec "$REAL_PYTHON" "$@"; fi
shift 2
echo "$*" >> "$CALLS"
echo $$ >> "$CALLS.pids"
opt() { local key=$1; shift; while [ $# -gt 1 ]; do [ "$1" = "$key" ] && { echo "$2"; return; }; shift; done; }
kv() { local key=$1; shift; for a in "$@"; do case $a in "$key"=*) echo "${a#*=}";; esac; done | tail -n 1; }
pause() { sleep "$1" & echo $! >> "$CALLS.pids"; wait $!; }
case $1 in
  simulate)
    "$REAL_PYTHON" "$MAKE_STORE" "$(opt --out "$@")" "$(opt --samples "$@")" "$(opt --seed "$@")" \
      "$(opt --batch "$@")" "$(opt --preset "$@")" || exit 1
    pause "${SIM_SECONDS:-0}";;
  train)
    run="$(kv out_dir "$@")/$(kv name "$@")"
    mkdir -p "$run/checkpoints" "$run/logs" "$run/figures"
    echo cfg > "$run/config.yaml"; echo '{}' > "$run/split.json"; echo epoch > "$run/logs/metrics.csv"
    echo last > "$run/checkpoints/last.ckpt"; echo e > "$run/checkpoints/epoch000.ckpt"
    echo b > "$run/checkpoints/best.ckpt"
    pause "${TRAIN_SECONDS:-0}"
    echo w > "$run/model.safetensors"; echo '{"threshold": 0.4}' > "$run/operating_point.json"
    echo '{}' > "$run/metrics.json"; echo '| dsc |' > "$run/size_table.md"; echo png > "$run/figures/masks.png"
    pause "${EXIT_SECONDS:-0}";;
  evaluate)
    d=$(opt --out "$@"); mkdir -p "$d/figures"
    echo '{}' > "$d/metrics.json"; echo t > "$d/size_table.md"; echo png > "$d/figures/masks.png";;
esac
"""

# What the fake simulate writes: a real store's metadata (no signals) with every plate's done flag set.
MAKE_STORE = """import sys
from pathlib import Path
from crackscope.data.wavefield_store import StoreRequest, open_or_create_store
from crackscope.physics.config import PlateConfig
out, n, seed, batch, preset = sys.argv[1:6]
req = StoreRequest(PlateConfig.preset(preset), int(n), int(seed), int(batch))
group = open_or_create_store(Path(out), req)
for a, b in req.batches():
    group["done"][a:b] = 1
"""

FINISHED_RUN = {
    "paper/config.yaml",
    "paper/split.json",
    "paper/logs/metrics.csv",
    "paper/checkpoints/last.ckpt",
    "paper/model.safetensors",
    "paper/operating_point.json",
    "paper/metrics.json",
    "paper/size_table.md",
    "paper/figures/masks.png",
    "paper/evaluate/metrics.json",
    "paper/evaluate/size_table.md",
    "paper/evaluate/figures/masks.png",
}


def _run(tmp_path: Path, *args: str, **env: str | None) -> tuple[subprocess.CompletedProcess, Path, list[str]]:
    fake, make_store = tmp_path / "python", tmp_path / "make_store.py"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    make_store.write_text(MAKE_STORE)
    out, calls = tmp_path / "out", tmp_path / "calls.txt"
    full_env = {
        **os.environ,
        "PYTHON": str(fake),
        "REAL_PYTHON": sys.executable,
        "MAKE_STORE": str(make_store),
        "CALLS": str(calls),
        "OUT": str(out),
        "WHEELS": "",
        "RUNS_DIR": str(tmp_path / "runs"),
        "SAMPLES": "12",
        "SIM_BATCH": "4",
        **env,
    }
    full_env = {k: v for k, v in full_env.items() if v is not None}
    done = subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=full_env, capture_output=True, text=True)
    return done, out, calls.read_text().splitlines() if calls.exists() else []


def _running(pid: int) -> bool:
    """Whether process ``pid`` still runs (a killed one not yet reaped by its new parent is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _members(archive: Path) -> set[str]:
    with tarfile.open(archive) as tar:
        return {m.name for m in tar.getmembers() if m.isfile()}


def test_simulates_trains_evaluates_and_packs_the_run_without_epoch_checkpoints(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "pydantic-2-py3-none-any.whl").write_text("")
    done, out, calls = _run(tmp_path, "trainer.max_epochs=3", WHEELS=str(wheels))
    assert done.returncode == 0, done.stderr
    store = tmp_path / "runs" / "paper-n12-s0.zarr"
    pip, simulate, train, evaluate = calls
    assert pip.startswith("pip install") and "--target /tmp/site" in pip and str(wheels) in pip
    assert simulate == f"simulate wavefield --preset paper --samples 12 --batch 4 --device cuda --seed 0 --out {store}"
    assert train.split() == [
        "train",
        "--config",
        "configs/wavefield/mcan.yaml",
        "--resume",
        "name=paper",
        f"out_dir={tmp_path / 'runs'}",
        f"data.store={store}",
        "trainer.accelerator=gpu",
        "trainer.choose_threshold=true",
        "trainer.max_epochs=3",
    ]
    run = tmp_path / "runs" / "paper"
    assert evaluate == f"evaluate {run} --data {store} --out {run / 'evaluate'}"

    assert {p.name for p in out.iterdir()} - {"machine.txt"} == {
        "run.tar.gz",
        "logs.tar.gz",
        "simulate.json",
        "simulate.yaml",
        "summary.txt",
    }
    assert _members(out / "run.tar.gz") == FINISHED_RUN  # last.ckpt, not epoch000.ckpt nor best.ckpt
    assert _members(out / "logs.tar.gz") == {"./simulate.log", "./train.log", "./evaluate.log"}
    sim = json.loads((out / "simulate.json").read_text())
    assert {"plates_per_s", "samples", "seconds", "batch", "steady", "stopped_at_deadline"} <= set(sim)
    assert (sim["samples"], sim["batch"], sim["store_done"], sim["preset"], sim["device"]) == (
        12,
        4,
        12,
        "paper",
        "cuda",
    )
    assert sim["seconds"] > 0 and sim["plates_per_s"] > 0 and not sim["stopped_at_deadline"]
    # simulate.yaml: the store's settings, read back by the simulate command its header gives
    text = (out / "simulate.yaml").read_text()
    assert "crackscope simulate wavefield --config simulate.yaml --samples 12 --seed 0 --out STORE.zarr" in text
    assert yaml.safe_load(text)["preset"] == "paper"
    assert load_plate_config(None, out / "simulate.yaml") == PlateConfig.preset("paper")
    summary = (out / "summary.txt").read_text()
    assert "train" in summary and "(finished)" in summary and "resume" not in summary
    assert [line.split()[0] for line in summary.splitlines()[1:]] == [
        "setup",
        "simulate",
        "train",
        "evaluate",
        "pack",
        "total",
    ]


def test_deadline_stops_the_training_and_still_packs_its_last_checkpoint(tmp_path):
    start = time.monotonic()
    done, out, calls = _run(tmp_path, "trainer.compile=true", DEADLINE="2", TRAIN_SECONDS="60")
    assert done.returncode == 0, done.stderr  # packed: the deadline is no failure
    assert time.monotonic() - start < 45  # the 60-s training was killed, not waited for
    pids = [int(p) for p in (tmp_path / "calls.txt.pids").read_text().split()]
    assert len(pids) == 4 and not any(_running(p) for p in pids)  # simulate, train and their sleeps: none left
    assert [c.split()[0] for c in calls] == ["simulate", "train"]  # not evaluated
    assert "trainer.accelerator=gpu" in calls[1] and calls[1].endswith("trainer.compile=true")
    assert _members(out / "run.tar.gz") == {
        "paper/config.yaml",
        "paper/split.json",
        "paper/logs/metrics.csv",
        "paper/checkpoints/last.ckpt",
    }
    summary = (out / "summary.txt").read_text()
    assert "stopped at DEADLINE=2 s" in summary and "evaluate  skipped: the training did not finish" in summary
    # the command that resumes it here, on the CPU
    resume = next(line for line in summary.splitlines() if line.strip().startswith("crackscope train"))
    assert shlex.split(resume)[4:] == [
        "--resume",
        "name=paper",
        f"out_dir={tmp_path / 'runs'}",
        f"data.store={tmp_path / 'runs' / 'paper-n12-s0.zarr'}",
        "trainer.accelerator=cpu",
        "trainer.choose_threshold=true",
        "trainer.compile=true",
    ]


def test_a_training_stopped_after_it_wrote_its_metrics_counts_as_finished(tmp_path):
    done, out, calls = _run(tmp_path, DEADLINE="3", EXIT_SECONDS="60")
    assert done.returncode == 0, done.stderr
    assert [c.split()[0] for c in calls] == ["simulate", "train", "evaluate"]
    summary = (out / "summary.txt").read_text()
    assert "exit 124 (finished: DEADLINE=3 s stopped the process after it had written metrics.json)" in summary
    assert "resume" not in summary
    assert _members(out / "run.tar.gz") == FINISHED_RUN


def test_sim_deadline_stops_the_simulator_and_the_finished_plates_are_trained_on(tmp_path):
    done, out, calls = _run(tmp_path, SIM_DEADLINE="8", SIM_SECONDS="60", PRESET="tiny", SEED="3", DEVICE="cpu")
    assert done.returncode == 0, done.stderr
    assert [c.split()[0] for c in calls] == ["simulate", "train", "evaluate"]
    sim = json.loads((out / "simulate.json").read_text())
    assert sim["stopped_at_deadline"] and sim["exit_status"] == 124 and sim["store_done"] == 12
    assert "stopped at SIM_DEADLINE=8 s" in (out / "summary.txt").read_text()
    assert "--preset tiny" in calls[0] and "--seed 3" in calls[0] and "--device cpu" in calls[0]
    assert f"data.store={tmp_path / 'runs' / 'tiny-n12-s3.zarr'}" in calls[1] and "name=tiny" in calls[1]
    assert "trainer.accelerator=cpu" in calls[1]
    assert "--seed 3 --out STORE.zarr" in (out / "simulate.yaml").read_text()
    assert _members(out / "run.tar.gz") == {m.replace("paper/", "tiny/") for m in FINISHED_RUN}


@pytest.mark.parametrize(
    "env, message",
    [
        ({"DEADLINE": "soon"}, "DEADLINE=soon is not a whole number"),
        ({"SAMPLES": "6k"}, "SAMPLES=6k is not a whole number"),
        ({"SIM_BATCH": "0"}, "SIM_BATCH=0 is not a whole number of at least 1"),
        ({"OUT": None}, "OUT must name the folder whose files come back"),
        ({"PRESET": "huge"}, "PRESET=huge is not paper, small or tiny"),
    ],
)
def test_bad_settings_exit_2_in_one_line_before_anything_runs(tmp_path, env, message):
    done, out, calls = _run(tmp_path, **env)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert calls == [] and not (tmp_path / "runs").exists() and not out.exists()


def test_the_real_script_runs_end_to_end_on_the_cpu(tmp_path):
    """The real CLI on 24 tiny plates, one epoch: what comes back, and that simulate.yaml remakes the plates."""
    demo = yaml.safe_load((ROOT / "configs" / "wavefield" / "demo.yaml").read_text())
    demo["trainer"]["max_epochs"] = 1
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(demo))
    out, runs = tmp_path / "out", tmp_path / "runs"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "OUT": str(out),
        "RUNS_DIR": str(runs),
        "WHEELS": "",
        "DEVICE": "cpu",
        "PRESET": "tiny",
        "SAMPLES": "24",
        "SIM_BATCH": "8",
        "CONFIG": str(config),
        "NUMBA_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }  # one thread: the cores may be shared
    done = subprocess.run(
        ["bash", str(SCRIPT), "data.batch_size=8"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout + done.stderr
    members = _members(out / "run.tar.gz")
    assert {
        "tiny/config.yaml",
        "tiny/split.json",
        "tiny/model.safetensors",
        "tiny/operating_point.json",
        "tiny/metrics.json",
        "tiny/size_table.md",
        "tiny/figures/masks.png",
        "tiny/checkpoints/last.ckpt",
        "tiny/evaluate/metrics.json",
    } <= members
    assert not any("epoch" in m or "best.ckpt" in m for m in members)
    assert (runs / "tiny" / "checkpoints" / "epoch000.ckpt").exists()  # made, but not packed
    sim = json.loads((out / "simulate.json").read_text())
    assert (sim["samples"], sim["store_done"], sim["batch"], sim["exit_status"]) == (24, 24, 8, 0)
    assert sim["plates_per_s"] > 0 and sim["steady"]["samples"] == 16
    summary = (out / "summary.txt").read_text()
    assert "train" in summary and "(finished)" in summary and "evaluate" in summary

    # the command simulate.yaml's header gives remakes the store's plates
    store = runs / "tiny-n24-s0.zarr"
    header = next(line for line in (out / "simulate.yaml").read_text().splitlines() if "--config simulate.yaml" in line)
    argv = shlex.split(header.lstrip("# "))[1:]
    argv[argv.index("simulate.yaml")] = str(out / "simulate.yaml")
    argv[argv.index("--samples") + 1] = "4"
    argv[argv.index("STORE.zarr")] = str(tmp_path / "again.zarr")
    again = subprocess.run(
        [sys.executable, "-m", "crackscope.cli", *argv], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    a, b = zarr.open_group(str(store), mode="r"), zarr.open_group(str(tmp_path / "again.zarr"), mode="r")
    assert a.attrs["config"] == b.attrs["config"]
    assert np.array_equal(np.asarray(a["masks"][:4]), np.asarray(b["masks"][:]))
    np.testing.assert_allclose(np.asarray(b["signals"][:]), np.asarray(a["signals"][:4]), rtol=1e-5, atol=1e-12)
