"""benchmarks/operating_point_transfer.py refuses a margin no threshold can meet: 98 % + margin is a
share of the correct crack pixels, and a share above 1 would make every threshold fail and the
benchmark report "flag every window" as if it were a choice."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("margin", ["0.025", "-0.01"])
def test_a_margin_outside_what_a_share_allows_gets_one_line_and_exit_2(margin, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "operating_point_transfer.py"),
            "--classifier",
            "a=cracks/tile_classifier",
            "--margins",
            "0.01",
            margin,
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--margins {float(margin):g}" in lines[0], done.stderr
    assert not (tmp_path / "out").exists()
