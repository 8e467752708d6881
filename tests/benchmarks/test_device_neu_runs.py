"""benchmarks/device/neu_runs.sh with a stand-in Python whose ``-m crackscope.cli train`` writes a
run folder: which runs it starts, what it packs into $OUT (last.ckpt but no per-epoch checkpoints),
that DEADLINE stops every run and still packs them, and the exit-2 checks."""

import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "device" / "neu_runs.sh"

FAKE_PYTHON = """#!/usr/bin/env bash
[ "$1" = -c ] && exit 0
name=; out=
for a in "$@"; do case $a in name=*) name=${a#name=};; out_dir=*) out=${a#out_dir=};; esac; done
echo "start $name $*" >> "$CALLS"
echo $$ >> "$CALLS.pids"
mkdir -p "$out/$name/checkpoints"
echo cfg > "$out/$name/config.yaml"
echo last > "$out/$name/checkpoints/last.ckpt"
echo epoch > "$out/$name/checkpoints/epoch=0.ckpt"
sleep "${TRAIN_SECONDS:-0}"
echo '{}' > "$out/$name/metrics.json"
"""


def _run(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, Path, list[str]]:
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    out, calls = tmp_path / "out", tmp_path / "calls.txt"
    full_env = {
        **os.environ,
        "PYTHON": str(fake),
        "CALLS": str(calls),
        "OUT": str(out),
        "DATA": str(data),
        "WHEELS": "",
        "RUNS_DIR": str(tmp_path / "runs"),
        **env,
    }
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
        return set(tar.getnames())


def test_seeds_train_side_by_side_and_each_run_is_packed_without_epoch_checkpoints(tmp_path):
    done, out, calls = _run(tmp_path, "trainer.compile=true", SEEDS="1 2")
    assert done.returncode == 0, done.stderr
    assert sorted(c.split()[1] for c in calls) == ["aoie_net_s1", "aoie_net_s2"]
    assert all("trainer.compile=true" in c and "seed=" in c for c in calls)
    assert sorted(p.name for p in out.glob("*.tar.gz")) == ["aoie_net_s1.tar.gz", "aoie_net_s2.tar.gz"]
    assert _members(out / "aoie_net_s1.tar.gz") == {
        "aoie_net_s1/config.yaml",
        "aoie_net_s1/metrics.json",
        "aoie_net_s1/checkpoints/last.ckpt",
        "aoie_net_s1.log",
    }


def test_deadline_stops_every_run_and_still_packs_them(tmp_path):
    start = time.monotonic()
    done, out, calls = _run(tmp_path, SEEDS="1 2", DEADLINE="2", TRAIN_SECONDS="60")
    assert done.returncode == 124, done.stderr
    assert time.monotonic() - start < 45  # the 60-s trainings were killed, not waited for
    assert "stopped at DEADLINE=2" in (out / "machine.txt").read_text()
    pids = [int(p) for p in (tmp_path / "calls.txt.pids").read_text().split()]
    assert len(pids) == 2 and not any(_running(p) for p in pids)  # no training left behind
    for name in ("aoie_net_s1", "aoie_net_s2"):  # unfinished: no metrics.json, but last.ckpt to resume from
        assert _members(out / f"{name}.tar.gz") == {
            f"{name}/config.yaml",
            f"{name}/checkpoints/last.ckpt",
            f"{name}.log",
        }
    # a second call resumes them
    done, out, calls = _run(tmp_path, SEEDS="1 2")
    assert done.returncode == 0, done.stderr
    assert all("--resume" in c for c in calls[2:]) and len(calls) == 4


@pytest.mark.parametrize(
    "env, message",
    [
        ({"DEADLINE": "soon"}, "DEADLINE=soon is not a whole number"),
        ({"DATA": "/nonexistent"}, "DATA=/nonexistent is not a folder"),
    ],
)
def test_bad_settings_exit_2_in_one_line_before_anything_runs(tmp_path, env, message):
    done, out, calls = _run(tmp_path, **env)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert calls == [] and not (tmp_path / "runs").exists()
