"""The float layers of a packed network in compiled code: the stem convolution, and the classifier
(global average pool, then Linear).

PyTorch ran both for the packed network before (``docs/binary.md``):

* the classifier: two calls, 15 µs for a 64-px image on one thread in a loop of its own and
  20-60 µs inside a pass, mostly PyTorch's dispatch; :func:`pool_linear` takes 2 µs. Each logit is
  ``bias + sum over channels of weight * mean``, the means and that sum in float64, each channel
  summed in the vector lanes the compiler chooses (PyTorch's pool and Linear sum in float32: the
  logits agree within its rounding).
* the stem: one convolution with its BatchNorm folded in, 53-57 µs in PyTorch for the 3 x 3 stem of
  a 64-px image (1 -> 16 channels, one thread, 2026-12-07), on the caller's thread alone before
  the binary units could start. :func:`stem_rows` computes any rows of it, so the threads of a
  team pass share it (:mod:`crackscope.deploy.team`): 27-28 µs for the whole 64-px stem on one
  thread. It is the 3 x 3, stride-1 stem of the NEU-CLS networks: each output's nine taps in one
  expression, vectorised along the row; each output is ``bias`` plus the taps in the order (input
  channel, kernel row, kernel column), products and sums in float32 (the compiler may fuse a
  product and its sum), the same as PyTorch's within float32 rounding. Other stems stay in PyTorch:
  for the cascade's 4 x 4 patches at stride 4 (one channel in, 8 out, 128-px tiles) compiled loops
  took 55 µs a tile against PyTorch's 13 µs a tile in a batch of 24 (one thread, 2026-12-07).

One compiled function of each serves every pass mode, so every mode gives the same logits bit for
bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["pool_linear", "stem_rows", "padded_input"]


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


@njit(cache=True, nogil=True, fastmath={"contract"})
def stem_rows(padded, weight, bias, b, y0, rows, out):
    """Rows ``y0 .. y0 + rows - 1`` of image ``b`` of a 3 x 3, stride-1 convolution into ``out``
    (N, C_out, H_out, W_out) float32: ``padded`` (N, C_in, H + 2p, W + 2p) the input with its zero
    padding p on every side (:func:`padded_input`), ``weight`` (C_out, C_in, 3, 3), ``bias``
    (C_out,). Any thread may compute any rows."""
    c_out, c_in = weight.shape[:2]
    w_out = out.shape[3]
    for y in range(y0, y0 + rows):
        for o in range(c_out):
            d = out[b, o, y]
            bo = bias[o]
            for j in range(w_out):
                d[j] = bo
            for i in range(c_in):  # the nine taps of an output in one expression
                r0, r1, r2 = padded[b, i, y], padded[b, i, y + 1], padded[b, i, y + 2]
                w0, w1, w2 = weight[o, i, 0, 0], weight[o, i, 0, 1], weight[o, i, 0, 2]
                w3, w4, w5 = weight[o, i, 1, 0], weight[o, i, 1, 1], weight[o, i, 1, 2]
                w6, w7, w8 = weight[o, i, 2, 0], weight[o, i, 2, 1], weight[o, i, 2, 2]
                # (slices, not r0[j + 1]: numba's wrap-around of a possibly negative index kept the
                # loop from vectorising along the row: 450 against 28 µs)
                a0, a1, a2 = r0[1 : w_out + 1], r1[1 : w_out + 1], r2[1 : w_out + 1]
                c0, c1, c2 = r0[2 : w_out + 2], r1[2 : w_out + 2], r2[2 : w_out + 2]
                for j in range(w_out):
                    d[j] = (
                        d[j] + w0 * r0[j] + w1 * a0[j] + w2 * c0[j]
                        + w3 * r1[j] + w4 * a1[j] + w5 * c1[j]
                        + w6 * r2[j] + w7 * a2[j] + w8 * c2[j]
                    )  # fmt: skip


def padded_input(x: np.ndarray, pad: int) -> np.ndarray:
    """``x`` (N, C, H, W) as float32 with ``pad`` zeros around each image."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, h + 2 * pad, w + 2 * pad), np.float32)
    out[:, :, pad : pad + h, pad : pad + w] = x
    return out
