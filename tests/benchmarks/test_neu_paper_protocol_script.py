"""benchmarks/neu_paper_protocol.sh with a stand-in CLI that records its calls: which runs start,
with which arguments, whether JOBS=1 runs them one after another, and the exit-2 checks."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "neu_paper_protocol.sh"
ALL_RUNS = [
    "aoie_net",
    "resnet20",
    "ienet",
    "adabin",
    "fracbnn",
    "reactnet",
    "fracbnn_aba_io",
    "fracbnn_dbn_ieb",
    "fracbnn_pan",
]

FAKE_CLI = """#!/usr/bin/env bash
name=
for a in "$@"; do case $a in name=*) name=${a#name=};; esac; done
echo "start $name $*" >> "$CALLS"
sleep 0.3
echo "end $name" >> "$CALLS"
"""


def _run(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    cli = tmp_path / "fake_cli"
    cli.write_text(FAKE_CLI)
    cli.chmod(0o755)
    calls = tmp_path / "calls.txt"
    full_env = {**os.environ, "CRACKSCOPE": str(cli), "CALLS": str(calls), **env}
    done = subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=full_env, capture_output=True, text=True)
    return done, calls.read_text().splitlines() if calls.exists() else []


def test_jobs_1_trains_the_named_runs_one_after_another(tmp_path):
    out = tmp_path / "out"
    done, calls = _run(tmp_path, "DATA", str(out), "trainer.compile=true", JOBS="1", ONLY="ienet aoie_net fracbnn_pan")
    assert done.returncode == 0, done.stderr
    # the list's order, each run ending before the next starts
    assert [c.split()[:2] for c in calls] == [
        ["start", "aoie_net"],
        ["end", "aoie_net"],
        ["start", "ienet"],
        ["end", "ienet"],
        ["start", "fracbnn_pan"],
        ["end", "fracbnn_pan"],
    ]
    ienet = next(c for c in calls if c.startswith("start ienet"))
    for arg in (
        "train",
        "--config configs/binary/aoie_net_neu.yaml",
        f"out_dir={out}",
        "data.root=DATA",
        "model.name=ienet_resnet20",
        "trainer.compile=true",
    ):
        assert arg in ienet
    assert "--resume" not in ienet


def test_all_runs_by_default_and_finished_or_started_runs_are_skipped_or_resumed(tmp_path):
    out = tmp_path / "out"
    (out / "resnet20").mkdir(parents=True)
    (out / "resnet20" / "metrics.json").write_text("{}")
    (out / "ienet" / "checkpoints").mkdir(parents=True)
    (out / "ienet" / "checkpoints" / "last.ckpt").write_bytes(b"")
    done, calls = _run(tmp_path, "DATA", str(out))
    assert done.returncode == 0, done.stderr
    started = {c.split()[1]: c for c in calls if c.startswith("start")}
    assert sorted(started) == sorted(set(ALL_RUNS) - {"resnet20"})
    assert "resnet20: finished, skipped" in done.stdout
    assert "--resume" in started["ienet"] and "--resume" not in started["aoie_net"]


@pytest.mark.parametrize(
    "env, message",
    [({"ONLY": "aoie_net ienett"}, "ONLY: no run named ienett"), ({"JOBS": "two"}, "JOBS=two is not a whole number")],
)
def test_bad_settings_exit_2_naming_the_value_before_anything_runs(tmp_path, env, message):
    out = tmp_path / "out"
    done, calls = _run(tmp_path, "DATA", str(out), **env)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert calls == [] and not out.exists()


def test_seeds_train_each_run_once_per_seed_under_its_own_name(tmp_path):
    out = tmp_path / "out"
    (out / "aoie_net_s2").mkdir(parents=True)
    (out / "aoie_net_s2" / "metrics.json").write_text("{}")
    done, calls = _run(tmp_path, "DATA", str(out), JOBS="1", ONLY="aoie_net ienet", SEEDS="0 02 5")
    assert done.returncode == 0, done.stderr
    started = [c.split() for c in calls if c.startswith("start")]
    # seed 0 keeps the plain name; 02 is seed 2, already finished, so skipped
    assert [c[1] for c in started] == ["aoie_net", "ienet", "ienet_s2", "aoie_net_s5", "ienet_s5"]
    assert [next(a for a in c if a.startswith("seed=")) for c in started] == [
        "seed=0",
        "seed=0",
        "seed=2",
        "seed=5",
        "seed=5",
    ]
    assert "aoie_net_s2: finished, skipped" in done.stdout


def test_a_bad_seed_exits_2_naming_it(tmp_path):
    done, calls = _run(tmp_path, "DATA", str(tmp_path / "out"), SEEDS="0 one")
    assert done.returncode == 2 and done.stderr.strip() == "SEEDS: one is not a whole number"
    assert calls == [] and not (tmp_path / "out").exists()
