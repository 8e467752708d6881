"""crackscope.provenance: the CPU named as /proc/cpuinfo names it (for training's metrics.json too),
the commit of a git work tree with its dirty-src mark, and result files written whole; and
crackscope.data.splits.read_split_stems, the stems a split.json records."""

from __future__ import annotations

import csv
import json
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from crackscope.data.splits import read_split_stems, write_split
from crackscope.errors import InputError
from crackscope.provenance import available_cpus, cpu_name, git_commit, hardware, measured_on, write_results


def _cpuinfo_name() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    found = re.search(r"^model name\s*:\s*(.+?)\s*$", text, flags=re.M)
    return found.group(1) if found else None


def test_the_cpu_is_named_as_the_kernel_names_it():
    assert cpu_name() == (_cpuinfo_name() or platform.processor() or platform.machine())
    assert available_cpus() == (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())


def test_training_records_the_same_cpu_name():
    from crackscope.engine.train import _hardware

    cfg = SimpleNamespace(trainer=SimpleNamespace(accelerator="cpu"))
    assert _hardware(cfg) == f"{cpu_name()} CPU, {torch.get_num_threads()} threads"


def test_hardware_and_measured_on_name_the_machine(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4294967296")
    monkeypatch.setenv("MALLOCX", "not glibc's")
    hw = hardware()
    assert hw["allocator_env"].get("MALLOC_TRIM_THRESHOLD_") == "4294967296" and "MALLOCX" not in hw["allocator_env"]
    assert (hw["cpu"], hw["cpus"], hw["torch"], hw["torch_threads"]) == (
        cpu_name(),
        available_cpus(),
        torch.__version__,
        torch.get_num_threads(),
    )
    assert hw["gpu"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    on = measured_on()
    assert on["hardware"] == f"{cpu_name()}, {torch.get_num_threads()} threads"
    assert on["python"] == platform.python_version() and re.match(r"\d{4}-\d\d-\d\dT", on["date"])


def _git(where: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
        cwd=where,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_the_commit_of_a_work_tree_and_its_dirty_src(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("no git")
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "benchmarks").mkdir()
    (repo / "src" / "a.py").write_text("x = 1\n")
    (repo / "README.md").write_text("hi\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    sha = _git(repo, "rev-parse", "HEAD")
    assert re.fullmatch(r"[0-9a-f]{40}", sha)
    assert git_commit(repo) == git_commit(repo / "benchmarks") == git_commit(repo / "src" / "a.py") == sha
    (repo / "README.md").write_text("changed outside src\n")
    assert git_commit(repo / "benchmarks") == sha
    (repo / "src" / "a.py").write_text("x = 2\n")
    assert git_commit(repo / "benchmarks") == sha + "+dirty-src"  # src/ of the work tree, from any folder in it
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    if subprocess.run(["git", "rev-parse"], cwd=outside, capture_output=True).returncode != 0:
        assert git_commit(outside) is None


def test_results_are_written_whole_and_only_those_given(tmp_path):
    record = {"a": 1, "b": [1.5, None], "c": "µm"}
    rows = [{"model": "x", "f1": 0.5}, {"model": "y", "f1": 0.25}]
    written = write_results(tmp_path / "out" / "study", record, "# Study\n\n| a |\n", rows)
    assert [p.name for p in written] == ["study.json", "study.md", "study.csv"]
    assert json.loads((tmp_path / "out" / "study.json").read_text()) == record
    assert (tmp_path / "out" / "study.md").read_text() == "# Study\n\n| a |\n"
    with open(tmp_path / "out" / "study.csv") as f:
        assert list(csv.DictReader(f)) == [{"model": "x", "f1": "0.5"}, {"model": "y", "f1": "0.25"}]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["study.csv", "study.json", "study.md"]
    write_results(tmp_path / "only" / "r", markdown="text")
    assert [p.name for p in (tmp_path / "only").iterdir()] == ["r.md"]
    write_results(tmp_path / "only" / "v1.5", {"x": 1}, indent=1)  # a dot in the name is kept
    assert (tmp_path / "only" / "v1.5.json").read_text() == '{\n "x": 1\n}\n'


def test_split_stems_read_back_what_write_split_recorded(tmp_path):
    path = write_split(tmp_path / "split.json", {"train": [2, 0], "val": [1], "test": []}, ["a", "b", "c"], seed=3)
    assert read_split_stems(path) == read_split_stems(tmp_path) == {"train": ["c", "a"], "val": ["b"], "test": []}
    with pytest.raises(InputError, match=f"{tmp_path / 'nope'}/split.json: no such file"):
        read_split_stems(tmp_path / "nope")
    (tmp_path / "indices.json").write_text(json.dumps({"indices": {"train": [0]}}))
    with pytest.raises(InputError, match="indices.json: no readable image stems"):
        read_split_stems(tmp_path / "indices.json")


def test_shown_path_is_relative_inside_the_root_and_absolute_outside(tmp_path):
    from crackscope.provenance import shown_path

    root = tmp_path / "project"
    assert shown_path(root / "benchmarks" / "results" / "x.md", root) == "benchmarks/results/x.md"
    assert shown_path(root / "a" / ".." / "b.json", root) == "b.json"
    assert shown_path(tmp_path / "elsewhere" / "c.md", root) == str((tmp_path / "elsewhere" / "c.md").resolve())
