"""crackscope.allocator: freed large blocks stay mapped, by glibc's documented mallopt rules, and the
user's own allocator choices are left alone. Each case runs in a fresh interpreter: the settings are
process-wide."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Fault in a 16 MiB block, free it, and count the minor page faults of touching a second one.
# glibc's defaults serve the first block with mmap and return it on free (then raise the mmap
# threshold to 16 MiB), so the second comes from newly grown heap and faults every page in again.
# With the mmap threshold at 32 MiB and a trim threshold above 16 MiB, the second block is the freed
# heap of the first: no page to fault in.
_PROBE = """
import json, resource, sys
import numpy as np
from crackscope.allocator import keep_large_blocks
state = keep_large_blocks() if sys.argv[1] == "tuned" else None
block = 16 << 20
a = np.ones(block, dtype=np.uint8); del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
b = np.ones(block, dtype=np.uint8)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"faults": faults, "pages": block // resource.getpagesize(), "state": state}))
"""


def _probe(mode: str, **env) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in ("LD_PRELOAD",)}
    base.pop("CRACKSCOPE_MALLOC", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, env={**base, **env}, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(not GLIBC, reason="mallopt settings are glibc's")
def test_a_freed_large_block_is_reused_without_faulting_its_pages_in_again():
    tuned, default = _probe("tuned"), _probe("default")
    assert tuned["state"]["applied"] and tuned["state"]["settings"]["mmap_threshold_bytes"] == 32 << 20
    assert tuned["faults"] < 0.05 * tuned["pages"]  # the freed block's pages, still mapped
    assert default["faults"] > tuned["faults"]  # glibc's defaults map fresh pages for it (fewer faults with huge pages)


@pytest.mark.parametrize(
    "env, reason",
    [
        ({"CRACKSCOPE_MALLOC": "system"}, "CRACKSCOPE_MALLOC=system"),
        ({"MALLOC_ARENA_MAX": "2"}, "the user's own allocator settings: MALLOC_ARENA_MAX"),
        ({"LD_PRELOAD": ""}, None),  # an empty LD_PRELOAD preloads nothing
    ],
)
def test_the_users_own_choices_are_left_alone(env, reason):
    state = _probe("tuned", **env)["state"]
    if reason is None:
        assert state["applied"] == GLIBC
    else:
        assert state == {"applied": False, "reason": reason, "settings": None}


def test_before_anything_asks_for_it_nothing_is_applied():
    code = "from crackscope.allocator import allocator_state; print(allocator_state()['reason'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "not requested"
