"""XNOR/popcount 3x3 convolution on bit-packed binary activations and weights (numba kernels).

What is computed. A binary unit convolves binarised activations a_b (two levels per plane p,
``a_lo[p] < a_hi[p]``) with binarised weights w_b (two levels per output channel o) over a 3x3
window with zero padding of 1. Writing the levels as a = alpha_a s_a + beta_a and
w = alpha_w s_w + beta_w with s in {-1, +1}, the sum over the valid (in-image) window positions V
of one output pixel is, exactly::

    sum_V a w = alpha_a alpha_w S_aw + alpha_a beta_w S_a + beta_a alpha_w S_w + beta_a beta_w N_V
    S_aw = N_V - 2 popcount(bits_a XOR bits_w  over V)        (the XNOR/popcount term)
    S_a  = 2 popcount(bits_a over V) - N_V
    S_w  = 2 popcount(bits_w over V) - N_V,  N_V = |V| * C_in

The integer terms are exact; the affine combination is done in float64 and rounded once to
float32. Zero padding (what ``F.conv2d`` does to the binarised tensor) is handled by leaving the
activation bits of out-of-image positions at 0, so XOR there counts the weight's +1 bits, which a
table indexed by the window's validity pattern subtracts again (``cfg`` = 8 * row-validity-mask +
column-validity-mask, 64 patterns). Everything that depends only on ``cfg`` and o is folded into
one constant per (cfg, o), together with a BatchNorm (scale, shift) applied to the output.

Bit layout. Bit 1 means s = +1. The C_in channel bits of one window position form a *field* of
``field_bits`` = the next power of two >= C_in (a multiple of 64 above 64). The three fields of a
kernel row (dx = 0, 1, 2) are concatenated into ``row_words = ceil(3 * field_bits / 64)`` uint64
words (16 channels: one word per kernel row, three per 3x3 window). Activations are packed once per
layer into "row triples" ``(P, N, H + 2, W_out, row_words)``: for every input row and output column
the three fields under the kernel row, with zero rows above and below for the padding, so the
kernel reads a window as three aligned loads. Unused bits are 0 in both operands and never count.
Tensors are (N, C, H, W) float32 on both sides of the kernel, as in PyTorch.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

__all__ = ["field_layout", "pack_row_triples", "pack_weight_rows", "conv_constants", "binary_conv3x3"]

KERNEL = 3


@intrinsic
def _popcount64(typingctx, x):
    """LLVM's ctpop on a uint64 (POPCNT, or VPOPCNTQ when the loop is vectorised, on x86)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return sig, codegen


def field_layout(channels: int) -> tuple[int, int]:
    """(field_bits, row_words) for ``channels`` input channels."""
    field_bits = 1
    while field_bits < channels:
        field_bits *= 2
    if channels > 64:
        field_bits = 64 * -(-channels // 64)
    return field_bits, -(-KERNEL * field_bits // 64)


def _pack_rows(x, thresholds, direction, stride, w_out, field_bits, row_words):
    n, channels, h, w = x.shape
    planes = thresholds.shape[0]
    words_per_field = max(1, field_bits // 64)
    out = np.zeros((planes, n, h + 2, w_out, row_words), dtype=np.uint64)
    for row in prange(n * h):
        b, y = row // h, row % h
        fields = np.zeros((words_per_field, w), dtype=np.uint64)
        for p in range(planes):
            fields[:] = 0
            for c in range(channels):
                t, d = thresholds[p, c], direction[p, c]
                shift = np.uint64(c % 64)
                j = c // 64
                for xx in range(w):  # contiguous in x: vectorised compare, shift, or
                    # (x - t) has the sign of x - t exactly; d = -1 folds a negative BN scale
                    fields[j, xx] |= np.uint64((x[b, c, y, xx] - t) * d >= 0) << shift
            for dx in range(3):  # output columns whose tap dx lies inside the image: no branch in the loop
                first = max(0, -((dx - 1) // stride))          # smallest ox with ox * stride - 1 + dx >= 0
                last = min(w_out - 1, (w - dx) // stride)      # largest ox with ox * stride - 1 + dx <= w - 1
                for j in range(words_per_field):
                    bit0 = dx * field_bits + j * 64
                    word, shift = bit0 // 64, np.uint64(bit0 % 64)
                    for ox in range(first, last + 1):
                        out[p, b, y + 1, ox, word] |= fields[j, ox * stride - 1 + dx] << shift
    return out


def pack_row_triples(x: np.ndarray, thresholds: np.ndarray, below: np.ndarray, stride: int) -> np.ndarray:
    """Binarise and pack x (N, C, H, W) float32 into row triples (P, N, H + 2, W_out, row_words).

    Plane p, channel c has bit 1 (s = +1) where ``x >= thresholds[p, c]``, or ``x <= ...`` where
    ``below[p, c]`` (a BatchNorm with negative scale folded into the threshold).
    """
    field_bits, row_words = field_layout(x.shape[1])
    w_out = (x.shape[3] - 1) // stride + 1
    direction = np.where(np.asarray(below, dtype=bool), -1.0, 1.0).astype(np.float32)
    pack = _kernels(x.size * thresholds.shape[0])[0]
    return pack(np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(thresholds, np.float32),
                direction, stride, w_out, field_bits, row_words)


def pack_weight_rows(sign_bits: np.ndarray) -> np.ndarray:
    """Weight signs (C_out, C_in, 3, 3) bool (True = +1) -> (3 * row_words, C_out) uint64 window words."""
    c_out, c_in = sign_bits.shape[:2]
    field_bits, row_words = field_layout(c_in)
    out = np.zeros((KERNEL, row_words, c_out), dtype=np.uint64)
    for dy in range(KERNEL):
        for dx in range(KERNEL):
            for c in range(c_in):
                bit = dx * field_bits + c
                out[dy, bit // 64] |= sign_bits[:, c, dy, dx].astype(np.uint64) << np.uint64(bit % 64)
    return out.reshape(KERNEL * row_words, c_out)


def conv_constants(sign_bits: np.ndarray, a_lo: float, a_hi: float, w_lo: np.ndarray, w_hi: np.ndarray,
                   scale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-plane coefficients of the kernel: (acc_coef (C_out,), ones_coef (C_out,), const (64, C_out)).

    The plane's contribution to output o at a window with pattern cfg is
    ``acc_coef[o] * popcount(a XOR w) + ones_coef[o] * popcount(a) + const[cfg, o]``, already
    multiplied by ``scale`` (C_out,), a BatchNorm scale (default 1); its shift is added once by
    :func:`binary_conv3x3`. float64.
    """
    c_in = sign_bits.shape[1]
    alpha_a, beta_a = 0.5 * (a_hi - a_lo), 0.5 * (a_hi + a_lo)
    w_lo, w_hi = np.asarray(w_lo, np.float64), np.asarray(w_hi, np.float64)
    alpha_w, beta_w = 0.5 * (w_hi - w_lo), 0.5 * (w_hi + w_lo)
    ones_w = sign_bits.reshape(sign_bits.shape[0], c_in, KERNEL, KERNEL).sum(axis=1).astype(np.float64)
    const = np.zeros((64, sign_bits.shape[0]), dtype=np.float64)
    for cfg in range(64):
        rows = np.array([(cfg // 8 >> d) & 1 for d in range(KERNEL)], dtype=bool)
        cols = np.array([(cfg % 8 >> d) & 1 for d in range(KERNEL)], dtype=bool)
        valid = rows[:, None] & cols[None, :]
        n_valid = float(valid.sum() * c_in)
        invalid_ones = ones_w[:, ~valid].sum(axis=1)
        s_w_valid = 2 * ones_w[:, valid].sum(axis=1) - n_valid
        # S_aw = n_valid - 2 (acc - invalid_ones); S_a = 2 ones_a - n_valid
        const[cfg] = (alpha_a * alpha_w * (n_valid + 2 * invalid_ones) - alpha_a * beta_w * n_valid
                      + beta_a * alpha_w * s_w_valid + beta_a * beta_w * n_valid)
    scale = np.ones(sign_bits.shape[0]) if scale is None else np.asarray(scale, np.float64)
    return -2 * alpha_a * alpha_w * scale, 2 * alpha_a * beta_w * scale, const * scale


def binary_conv3x3(triples, weights, acc_coef, ones_coef, const, shift, stride: int, height: int, width: int,
                   residual=None, post=None):
    """Sum over planes of BN(conv3x3(a_b^p, w_b^p)) (padding 1, ``stride``) -> (N, C_out, H_out, W_out) float32.

    triples from :func:`pack_row_triples` (input height ``height``, width ``width``); weights
    (P, K, C_out) from :func:`pack_weight_rows`; acc_coef, ones_coef (P, C_out) and const (P, 64, C_out)
    from :func:`conv_constants`; shift (C_out,) the BatchNorm shift.

    Fused epilogue of a binary residual unit (optional): ``residual`` (N, C_out, H_out, W_out)
    float32 is added (in float32, as PyTorch does) and ``post`` = (pos, neg, pre_shift, shift),
    four (C_out,) float32 arrays, maps z to ``pos * relu(z - pre_shift) - neg * relu(pre_shift - z)
    + shift``. Without them the output is the convolution (pos = neg = 1, shifts 0).
    """
    h_out = (height - 1) // stride + 1
    col_valid = _col_patterns(width, stride, triples.shape[3])
    c_out = weights.shape[2]
    if post is None:
        one, zero = np.ones(c_out, np.float32), np.zeros(c_out, np.float32)
        post = (one, one, zero, zero)
    has_residual = residual is not None
    if not has_residual:
        residual = np.zeros((1, 1, 1, 1), np.float32)
    work = triples.shape[0] * triples.shape[1] * h_out * triples.shape[3] * c_out
    return _kernels(work)[1](triples, weights, acc_coef, ones_coef, const, shift, stride, height, h_out, col_valid,
                         residual, has_residual, *[np.ascontiguousarray(a, np.float32) for a in post])


@functools.lru_cache(maxsize=256)
def _col_patterns(width: int, stride: int, w_out: int) -> np.ndarray:
    """Column-validity mask (bits dx = 0, 1, 2) of every output column."""
    masks = np.zeros(w_out, dtype=np.int64)
    for ox in range(w_out):
        for dx in range(KERNEL):
            if 0 <= ox * stride - 1 + dx < width:
                masks[ox] |= 1 << dx
    return masks


def _conv_rows(triples, weights, acc_coef, ones_coef, const, shift, stride, h, h_out, col_valid,
               residual, has_residual, post_pos, post_neg, post_pre, post_shift):
    planes, n, _, w_out, row_words = triples.shape
    c_out = weights.shape[2]
    out = np.empty((n, c_out, h_out, w_out), dtype=np.float32)
    for row in prange(n * h_out):
        b, oy = row // h_out, row % h_out
        row_out = np.empty((w_out, c_out), dtype=np.float32)
        row_mask = 0
        for dy in range(3):
            if 0 <= oy * stride - 1 + dy < h:
                row_mask |= 1 << dy
        acc = np.zeros(c_out, dtype=np.int64)
        total = np.zeros(c_out, dtype=np.float64)
        for ox in range(w_out):
            cfg = row_mask * 8 + col_valid[ox]
            for o in range(c_out):
                total[o] = shift[o]
            for p in range(planes):
                acc[:] = 0
                ones_a = 0
                for dy in range(3):
                    for j in range(row_words):
                        word = triples[p, b, oy * stride + dy, ox, j]
                        ones_a += _popcount64(word)
                        k = dy * row_words + j
                        for o in range(c_out):
                            acc[o] += _popcount64(word ^ weights[p, k, o])
                for o in range(c_out):
                    total[o] += acc_coef[p, o] * acc[o] + ones_coef[p, o] * ones_a + const[p, cfg, o]
            for o in range(c_out):
                row_out[ox, o] = np.float32(total[o])
        for o in range(c_out):
            pos, neg, pre, post = post_pos[o], post_neg[o], post_pre[o], post_shift[o]
            for ox in range(w_out):
                z = row_out[ox, o]
                if has_residual:
                    z += residual[b, o, oy, ox]
                z -= pre
                out[b, o, oy, ox] = pos * max(z, np.float32(0)) - neg * max(-z, np.float32(0)) + post
    return out


_SERIAL = (njit(cache=True)(_pack_rows), njit(cache=True)(_conv_rows))
# Not cached: numba's on-disk cache keys a function by its name and line, not by its flags, so a
# cached parallel build was loaded for the serial dispatcher too (which then started numba's thread
# pool on every call: 2.8x slower at 64 x 64 px). The parallel build compiles once per process.
_PARALLEL = (njit(parallel=True)(_pack_rows), njit(parallel=True)(_conv_rows))


PARALLEL_MIN_WORK = 1 << 23  # outputs (or inputs) x planes below which one thread is faster


def _kernels(work: int = PARALLEL_MIN_WORK):
    """The kernels for ``work`` (values to produce) on PyTorch's thread count
    (``torch.get_num_threads()``: ``OMP_NUM_THREADS``, ``torch.set_num_threads``), since the packed
    layers run between PyTorch layers: row-parallel ones on min(that, NUMBA_NUM_THREADS) numba
    threads for large work, serial ones otherwise.

    Small work stays serial because handing rows to numba's threads costs more than it saves (on
    2 threads with the 'workqueue' layer a 64 x 64 AOIE-Net took 29 ms instead of 5 ms).
    Starting numba's threads can change the OpenMP thread count that PyTorch reads (the 'omp'
    layer sets it to numba's), so PyTorch's count is put back afterwards.
    """
    import torch

    torch_threads = torch.get_num_threads()
    threads = min(torch_threads, numba.config.NUMBA_NUM_THREADS)
    if threads <= 1 or work < PARALLEL_MIN_WORK:
        return _SERIAL
    if numba.get_num_threads() != threads:
        numba.set_num_threads(threads)
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    return _PARALLEL
