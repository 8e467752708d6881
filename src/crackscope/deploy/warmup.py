"""Compile the bit-packed kernels ahead of the first image: ``crackscope compile-kernels``.

numba compiles :mod:`crackscope.deploy.bitconv`'s kernels the first time a packed network runs on a
machine and keeps the machine code in its on-disk cache (beside the package, or in
``NUMBA_CACHE_DIR``). Without this step the first packed call of a machine's first process pays
that compilation: 15 s on one thread, 37 s on two on this project's 2-vCPU Xeon (docs/binary.md).
:func:`compile_kernels` runs every shipped packed network once per thread count, on a small input
and a large one: on one thread the serial kernels, on two or more the team's
(:mod:`crackscope.deploy.team`) and the block-parallel ones (from ``bitconv.PARALLEL_MIN_WORK``
values per layer), so that every kernel and every type
specialisation they use is in the cache. ``make install`` runs it; a process started
afterwards loads the cached code (0.2-0.4 s on its first call) instead of compiling.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from crackscope.errors import InputError

SMALL_SIDE = 64  # px: small maps (blocks of whole images)
LARGE_SIDE = 256  # px: large maps (blocks of rows), above PARALLEL_MIN_WORK on two or more threads


def shipped_packed_files() -> list[Path]:
    """Every shipped bit-packed network (``weights/**/model.packed.safetensors``)."""
    from crackscope.shipped import weights_root

    return sorted(Path(weights_root()).glob("**/model.packed.safetensors"))


def compile_kernels(threads: tuple[int, ...] = (1, 2), files: list[Path] | None = None) -> dict:
    """Run each packed network in ``files`` (default: the shipped ones) at each thread count on a
    small and a large input, which compiles (or loads from the cache) every kernel they use.
    PyTorch's thread count is restored afterwards. Returns what ran, the instruction-set path and
    the seconds it took."""
    from crackscope.deploy import bitconv
    from crackscope.deploy.packed import load_packed

    bad = [t for t in threads if isinstance(t, bool) or not isinstance(t, int) or t < 1]
    if bad or not threads:
        raise InputError(f"threads={list(threads)!r} must be whole numbers >= 1")
    files = shipped_packed_files() if files is None else [Path(f) for f in files]
    before = torch.get_num_threads()
    start = time.perf_counter()
    try:
        for path in files:
            packed = load_packed(path)
            stride = int(packed.stem_stride)
            for n in threads:
                torch.set_num_threads(n)
                # on two or more threads, both ways of splitting a pass (team and numba's parallel
                # kernels); "auto" would run only the first mode it learns
                for mode in ("team", "parallel") if n > 1 else ("auto",):
                    packed.pass_mode = mode
                    for side in (SMALL_SIDE * stride, LARGE_SIDE * stride):
                        packed(torch.rand(1, packed.in_channels, side, side))
    finally:
        torch.set_num_threads(before)
    return {
        "models": [str(p) for p in files],
        "threads": list(threads),
        "instruction_set": bitconv.instruction_set(),
        "seconds": time.perf_counter() - start,
    }


def dispatchers() -> dict:
    """``{name: numba dispatcher}`` of every cached kernel in :mod:`crackscope.deploy.bitconv` and
    :mod:`crackscope.deploy.team` (for
    checking what a process loaded from the cache: ``dispatcher.stats``)."""
    from crackscope.deploy import bitconv, team

    found = {}
    for module in (bitconv, team):
        for name in dir(module):
            obj = getattr(module, name)
            if hasattr(obj, "stats") and hasattr(obj, "py_func"):
                found[name] = obj
    for group in (bitconv._SERIAL, bitconv._PARALLEL, tuple(bitconv._CHAINS.values())):
        for fn in group:
            found[fn.py_func.__name__] = fn
    return found
