"""Every benchmark script (benchmarks/*.py and benchmarks/device/*.py; helpers named _*.py aside)
answers ``--help`` with its usage and measures nothing, so a broken import fails here; and no script
reaches another through ``sys.path`` or imports another script: what they share lives in the library
(crackscope.provenance, crackscope.deploy.operating_point, ...)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
ALL = sorted([*BENCHMARKS.glob("*.py"), *(BENCHMARKS / "device").glob("*.py")])
SCRIPTS = [p for p in ALL if not p.name.startswith("_")]
# this checkout's library first, whatever the working folder (a relative PYTHONPATH would not follow it)
PYTHONPATH = os.pathsep.join([str(BENCHMARKS.parent / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(BENCHMARKS)))
def test_script_answers_help_without_measuring(script, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in (BENCHMARKS / "results").rglob("*")}
    done = subprocess.run(
        [sys.executable, str(script), "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # anything written relative to the working folder would land here
        env={**os.environ, "PYTHONPATH": PYTHONPATH, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "COLUMNS": "120"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: "), done.stdout[:500]
    assert list(tmp_path.iterdir()) == []
    assert {p: p.stat().st_mtime_ns for p in (BENCHMARKS / "results").rglob("*")} == before


@pytest.mark.parametrize("script", ALL, ids=lambda p: str(p.relative_to(BENCHMARKS)))
def test_no_script_edits_sys_path_or_imports_another_script(script):
    tree = ast.parse(script.read_text())
    siblings = {p.stem for p in script.parent.glob("*.py")} | {p.stem for p in BENCHMARKS.glob("*.py")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
            raise AssertionError(f"{script.name}:{node.lineno}: sys.path")
        names = []
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module.split(".")[0]]
        for name in names:
            assert name not in siblings, f"{script.name}:{node.lineno}: imports the benchmark script {name}"
