"""Keep large freed blocks in the C heap between inference calls (glibc only).

Each layer of an inference pass allocates its output anew: the bit-packed kernels (``numba``) and
PyTorch both ask the C allocator for blocks of one to tens of megabytes per layer and free them a
layer later. glibc serves blocks above its mmap threshold with fresh ``mmap`` pages and returns them
on ``free``, so every call faults in and zeroes those pages again: on a 2-vCPU AMD EPYC, the packed
AOIE-Net at 200 x 200 px, batch 32, spent 1.1 of 4.5 CPU seconds in the kernel over 7 calls (500,000
page faults), and segmenting every window of 1024-px survey images took 18.0 s instead of 9.6 s
(docs/binary.md, docs/survey.md). ONNX Runtime avoids this with its own arena.

:func:`keep_large_blocks` raises glibc's mmap threshold to its largest value (32 MiB) and its trim
threshold, so that freed blocks stay in the heap and the next call reuses pages already mapped.
The price is memory: up to :data:`TRIM_THRESHOLD_BYTES` of freed heap is kept instead of handed back.
crackscope's inference entry points call it once per process (the CLI, ``inspect_image`` and the
packed runtime). It does nothing

* where the C library is not glibc (macOS, Windows, musl),
* where the user chose their own allocator settings (any ``MALLOC_*`` variable, or an ``LD_PRELOAD``
  such as jemalloc or tcmalloc), or
* when ``CRACKSCOPE_MALLOC=system`` is set.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = [
    "keep_large_blocks",
    "allocator_state",
    "user_allocator_env",
    "MMAP_THRESHOLD_BYTES",
    "TRIM_THRESHOLD_BYTES",
    "TOP_PAD_BYTES",
]

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD_BYTES = 512 << 20  # freed heap kept before it is returned to the system
TOP_PAD_BYTES = 64 << 20  # extra heap asked for at each growth
SWITCH = "CRACKSCOPE_MALLOC"  # "system": leave the allocator as it is

_state: dict = {}


def user_allocator_env() -> dict[str, str]:
    """The environment variables by which a user chose the C allocator's behaviour: glibc's
    ``MALLOC_*`` and a non-empty ``LD_PRELOAD`` (jemalloc, tcmalloc), sorted by name."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_") or (k == "LD_PRELOAD" and v)}


def _why_not() -> str | None:
    """Why the settings are not applied here, or None when they may be."""
    if os.environ.get(SWITCH, "").lower() == "system":
        return f"{SWITCH}=system"
    chosen = user_allocator_env()
    if chosen:
        return "the user's own allocator settings: " + ", ".join(chosen)
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "not glibc"
    return None


def keep_large_blocks() -> dict:
    """Apply the settings once per process (see the module's docstring); returns
    :func:`allocator_state`."""
    if _state:
        return allocator_state()
    reason = _why_not()
    if reason is None:
        try:
            libc = ctypes.CDLL("libc.so.6")
            done = [
                libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
                libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
                libc.mallopt(_M_TOP_PAD, TOP_PAD_BYTES),
            ]
            reason = None if all(v == 1 for v in done) else f"mallopt refused: {done}"
        except (OSError, AttributeError) as err:
            reason = f"no mallopt ({err})"
    _state.update(
        applied=reason is None,
        reason=reason,
        settings=None
        if reason is not None
        else {
            "mmap_threshold_bytes": MMAP_THRESHOLD_BYTES,
            "trim_threshold_bytes": TRIM_THRESHOLD_BYTES,
            "top_pad_bytes": TOP_PAD_BYTES,
        },
    )
    return allocator_state()


def allocator_state() -> dict:
    """``{"applied": bool, "reason": why not or None, "settings": the values or None}``; before
    :func:`keep_large_blocks` ran: ``{"applied": False, "reason": "not requested", ...}``."""
    if not _state:
        return {"applied": False, "reason": "not requested", "settings": None}
    return dict(_state)
