"""Ahead-of-time compilation of the packed kernels (crackscope.deploy.warmup, `crackscope
compile-kernels`): after it, a new process loads every kernel it runs from numba's on-disk cache
and compiles none."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from crackscope.deploy.warmup import compile_kernels, shipped_packed_files
from crackscope.errors import InputError

_RUN_AND_REPORT = """
import json, sys, torch
torch.set_num_threads(1)
from crackscope.deploy.packed import load_packed
from crackscope.deploy.warmup import dispatchers
packed = load_packed(sys.argv[1])
s = packed.stem_stride
packed(torch.rand(2, packed.in_channels, 80 * s, 72 * s))  # a shape the warm-up did not run
hits = sum(sum(d.stats.cache_hits.values()) for d in dispatchers().values())
misses = sum(sum(d.stats.cache_misses.values()) for d in dispatchers().values())
print(json.dumps({"hits": hits, "misses": misses}))
"""


def _fresh(code: str, *args: str, cache) -> str:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_a_process_after_the_warm_up_compiles_nothing(tmp_path):
    """Into an empty cache, `compile_kernels` (for the cascade's shipped tile classifier) compiles
    its kernels: cache misses, no hits. A process started after it loads every kernel it runs from
    the cache (hits) and compiles none (no misses), at a batch and shape of its own."""
    classifier = next(f for f in shipped_packed_files() if f.parent.parent.name == "cracks")
    warm_up = (
        "import json; from crackscope.deploy.warmup import compile_kernels, dispatchers; "
        f"compile_kernels((1,), [{str(classifier)!r}]); "
        "print(json.dumps({k: sum(sum(getattr(d.stats, 'cache_' + k).values()) for d in dispatchers().values()) "
        "for k in ('hits', 'misses')}))"
    )
    during = json.loads(_fresh(warm_up, cache=tmp_path))
    assert during["misses"] > 0 and during["hits"] == 0
    after = json.loads(_fresh(_RUN_AND_REPORT, str(classifier), cache=tmp_path))
    assert after["misses"] == 0 and after["hits"] > 0


@pytest.mark.parametrize("threads", [(), (0,), (1, -2), (True,)])
def test_bad_thread_counts_are_named(threads):
    with pytest.raises(InputError, match="threads="):
        compile_kernels(threads, files=[])


def test_cli_names_a_bad_thread_list(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "crackscope.cli", "compile-kernels", "--threads", "1,two"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "--threads '1,two'" in out.stderr and "Traceback" not in out.stderr
