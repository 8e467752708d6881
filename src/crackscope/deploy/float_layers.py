"""The float classifier of a packed network in compiled code: global average pool, then Linear.

PyTorch ran it for the packed network before: two calls, 15 µs for a 64-px image on one thread in a
loop of its own and 20-60 µs inside a pass, mostly PyTorch's dispatch (``docs/binary.md``);
:func:`pool_linear` takes 2 µs in a loop of its own. Each logit is ``bias + sum over channels of
weight * mean``, the means and that sum in float64, each channel summed in the vector lanes the
compiler chooses (PyTorch's pool and Linear sum in float32: the logits agree within its rounding).
One compiled function serves every pass mode, so every mode gives the same logits bit for bit.

The stem's convolution stays in PyTorch: compiled loops over whole rows, one output channel and
kernel tap at a time, took 73 µs for the 3 x 3 stem of a 64-px image against PyTorch's 38 µs (one
thread, 2026-12-07); PyTorch's convolution keeps each input value in a register for all 16 output
channels.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["pool_linear"]


@njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})
def _pool_linear(z, weight, bias, out):
    # reassociation lets the compiler sum each channel in vector lanes; one compiled function, so
    # every pass mode's logits still come from the same sequence of operations
    n, c, pixels = z.shape
    means = np.empty(c, np.float64)
    for b in range(n):
        for ch in range(c):
            row = z[b, ch]
            total = 0.0
            for i in range(pixels):
                total += np.float64(row[i])
            means[ch] = total / pixels
        for k in range(weight.shape[0]):
            logit = np.float64(bias[k])
            for ch in range(c):
                logit += np.float64(weight[k, ch]) * means[ch]
            out[b, k] = logit


def pool_linear(z: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Global average pool, then Linear: ``z`` (N, C, pixels) float32 -> logits (N, K) float32,
    ``weight`` (K, C), ``bias`` (K,)."""
    out = np.empty((z.shape[0], weight.shape[0]), np.float32)
    _pool_linear(z, weight, bias, out)
    return out
