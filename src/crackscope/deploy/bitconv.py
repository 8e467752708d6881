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
layer into "row triples" ``(P, N, row_words, H + 2, W_out)``: for every input row and output column
the three fields under the kernel row, with zero rows above and below for the padding, so the
kernel reads a window as three aligned loads. Unused bits are 0 in both operands and never count.
Output columns are the last, contiguous axis. The kernel works on blocks of whole output rows
(about ``BLOCK_PIXELS`` pixels, one work item each): it XORs one weight word against the whole
block and counts bits with vector popcounts (VPOPCNTQ with AVX-512), then forms the block of one
output channel in float64 -- long, branch-free loops the compiler vectorises; only the border
pixels, whose windows reach into the padding, are summed again one by one.
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
    """LLVM's ctpop on a uint64 (POPCNT, or VPOPCNTQ when the loop is vectorised, on x86), as an
    int64: sums of counts stay signed integers, which convert to float64 in one vector instruction."""
    sig = types.int64(types.uint64)

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


def _pack_rows(x, thresholds, below, stride, w_out, field_bits, row_words, unit):
    n, channels, h, w = x.shape
    planes = thresholds.shape[0]
    unit_bits = unit.itemsize * 8  # a field is gathered in the narrowest unsigned type that holds it
    units_per_field = max(1, field_bits // unit_bits)
    out = np.zeros((planes, n, row_words, h + 2, w_out), dtype=np.uint64)
    bits = np.zeros(unit_bits, dtype=unit.dtype)  # bits[k] = 1 << k in the unit's type
    for k in range(unit_bits):
        bits[k] = unit[0] << k
    for row in prange(n * h):
        b, y = row // h, row % h
        fields = np.zeros((units_per_field, w), dtype=unit.dtype)
        for p in range(planes):
            fields[:] = 0
            for c in range(channels):
                t, bit, sh = thresholds[p, c], bits[c % unit_bits], np.uint64(c % 64)
                f, xr = fields[c // unit_bits], x[b, c, y]
                # contiguous in x, one comparison per value: vectorised (8-bit to 32-bit units give
                # 4 to 1 times the lanes of uint64; for uint64 the shift form compiles better)
                if unit_bits == 64:
                    if below[p, c]:
                        for xx in range(w):
                            f[xx] |= np.uint64(xr[xx] <= t) << sh
                    else:
                        for xx in range(w):
                            f[xx] |= np.uint64(xr[xx] >= t) << sh
                elif below[p, c]:
                    for xx in range(w):
                        f[xx] |= bit * (xr[xx] <= t)
                else:
                    for xx in range(w):
                        f[xx] |= bit * (xr[xx] >= t)
            for dx in range(3):  # output columns whose tap dx lies inside the image: no branch in the loop
                first = max(0, -((dx - 1) // stride))  # smallest ox with ox * stride - 1 + dx >= 0
                last = min(w_out - 1, (w - dx) // stride)  # largest ox with ox * stride - 1 + dx <= w - 1
                for j in range(units_per_field):
                    bit0 = dx * field_bits + j * unit_bits
                    word, shift = bit0 // 64, np.uint64(bit0 % 64)
                    dst = out[p, b, word, y + 1, first : last + 1]
                    src = fields[j, first * stride - 1 + dx :]
                    for i in range(dst.shape[0]):  # 0-based over slices: vectorised (contiguous at stride 1)
                        dst[i] |= np.uint64(src[i * stride]) << shift
    return out


def _field_unit(field_bits: int):
    """The narrowest unsigned type that holds one field (uint64 for fields of 64 bits and more)."""
    for t in (np.uint8, np.uint16, np.uint32):
        if field_bits <= 8 * np.dtype(t).itemsize:
            return t
    return np.uint64


def pack_row_triples(x: np.ndarray, thresholds: np.ndarray, below: np.ndarray, stride: int) -> np.ndarray:
    """Binarise and pack x (N, C, H, W) float32 into row triples (P, N, row_words, H + 2, W_out).

    Plane p, channel c has bit 1 (s = +1) where ``x >= thresholds[p, c]``, or ``x <= ...`` where
    ``below[p, c]`` (a BatchNorm with negative scale folded into the threshold).
    """
    field_bits, row_words = field_layout(x.shape[1])
    w_out = (x.shape[3] - 1) // stride + 1
    unit = np.ones(1, dtype=_field_unit(field_bits))
    pack = _kernels(x.size * thresholds.shape[0])[0]
    return pack(
        np.ascontiguousarray(x, dtype=np.float32),
        np.ascontiguousarray(thresholds, np.float32),
        np.ascontiguousarray(below, dtype=np.bool_),
        stride,
        w_out,
        field_bits,
        row_words,
        unit,
    )


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


def conv_constants(
    sign_bits: np.ndarray, a_lo: float, a_hi: float, w_lo: np.ndarray, w_hi: np.ndarray, scale: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        const[cfg] = (
            alpha_a * alpha_w * (n_valid + 2 * invalid_ones)
            - alpha_a * beta_w * n_valid
            + beta_a * alpha_w * s_w_valid
            + beta_a * beta_w * n_valid
        )
    scale = np.ones(sign_bits.shape[0]) if scale is None else np.asarray(scale, np.float64)
    return -2 * alpha_a * alpha_w * scale, 2 * alpha_a * beta_w * scale, const * scale


BLOCK_PIXELS = 1024  # output pixels per work item: whole small maps, a few rows of large ones (L1/L2-sized)


def binary_conv3x3(
    triples, weights, acc_coef, ones_coef, const, shift, stride: int, height: int, width: int, residual=None, post=None
):
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
    col_valid = _col_patterns(width, stride, triples.shape[4])
    c_out = weights.shape[2]
    if post is None:
        one, zero = np.ones(c_out, np.float32), np.zeros(c_out, np.float32)
        post = (one, one, zero, zero)
    n, w_out = triples.shape[1], triples.shape[4]
    has_residual = residual is not None
    residual = (
        np.ascontiguousarray(residual, np.float32).reshape(n, c_out, h_out * w_out)
        if has_residual
        else np.zeros((1, 1, 1), np.float32)
    )
    work = triples.shape[0] * n * h_out * w_out * c_out
    const_by_output = np.ascontiguousarray(np.swapaxes(const, 1, 2))  # (P, C_out, 64)
    rows_per_block = max(1, min(h_out, BLOCK_PIXELS // w_out))
    out = _kernels(work)[1](
        triples,
        weights,
        acc_coef,
        ones_coef,
        const_by_output,
        shift,
        stride,
        height,
        h_out,
        col_valid,
        rows_per_block,
        residual,
        has_residual,
        *[np.ascontiguousarray(a, np.float32) for a in post],
    )
    return out.reshape(n, c_out, h_out, w_out)


@functools.lru_cache(maxsize=256)
def _col_patterns(width: int, stride: int, w_out: int) -> np.ndarray:
    """Column-validity mask (bits dx = 0, 1, 2) of every output column."""
    masks = np.zeros(w_out, dtype=np.int64)
    for ox in range(w_out):
        for dx in range(KERNEL):
            if 0 <= ox * stride - 1 + dx < width:
                masks[ox] |= 1 << dx
    return masks


def _conv_blocks(
    triples,
    weights,
    acc_coef,
    ones_coef,
    const,
    shift,
    stride,
    h,
    h_out,
    col_valid,
    rows_per_block,
    residual,
    has_residual,
    post_pos,
    post_neg,
    post_pre,
    post_shift,
):
    planes, n, row_words, _, w_out = triples.shape
    c_out = weights.shape[2]
    out = np.empty((n, c_out, h_out * w_out), dtype=np.float32)
    first, last = 0, w_out  # columns [first, last) have all three taps inside the image
    while first < w_out and col_valid[first] != 7:
        first += 1
    while last > first and col_valid[last - 1] != 7:
        last -= 1
    blocks = (h_out + rows_per_block - 1) // rows_per_block
    for task in prange(n * blocks):
        b, oy0 = task // blocks, (task % blocks) * rows_per_block
        rows = min(rows_per_block, h_out - oy0)
        size = rows * w_out
        # the words under kernel row dy of every output pixel of the block, flat (row-major), so that
        # every loop below runs over one contiguous array (any stride)
        win = np.empty((planes, row_words, 3, size), dtype=np.uint64)
        ones = np.zeros((planes, size), dtype=np.int64)  # popcount of the activation bits of each window
        for p in range(planes):
            ones_p = ones[p]
            for j in range(row_words):
                for dy in range(3):
                    dst = win[p, j, dy]
                    for r in range(rows):
                        dst[r * w_out : (r + 1) * w_out] = triples[p, b, j, (oy0 + r) * stride + dy]
                    for i in range(size):
                        ones_p[i] += _popcount64(dst[i])
        row_masks = np.empty(rows, dtype=np.int64)  # bits dy of the kernel rows inside the image
        for r in range(rows):
            row_masks[r] = 0
            for dy in range(3):
                if 0 <= (oy0 + r) * stride - 1 + dy < h:
                    row_masks[r] |= 1 << dy
        counts = np.empty((planes, size), dtype=np.int64)  # popcount(a XOR w) of each window, per plane
        total = np.empty(size, dtype=np.float64)
        for o in range(c_out):
            for p in range(planes):
                acc, ones_p = counts[p], ones[p]
                a_coef, o_coef, inside = acc_coef[p, o], ones_coef[p, o], const[p, o, 63]
                for j in range(row_words):  # the three kernel rows in one pass: vector XOR + VPOPCNTQ
                    w0, w1, w2 = weights[p, j, o], weights[p, row_words + j, o], weights[p, 2 * row_words + j, o]
                    s0, s1, s2 = win[p, j, 0], win[p, j, 1], win[p, j, 2]
                    if j == 0:
                        for i in range(size):
                            acc[i] = _popcount64(s0[i] ^ w0) + _popcount64(s1[i] ^ w1) + _popcount64(s2[i] ^ w2)
                    else:
                        for i in range(size):
                            acc[i] += _popcount64(s0[i] ^ w0) + _popcount64(s1[i] ^ w1) + _popcount64(s2[i] ^ w2)
                # the plane's term with the constant of a window inside the image (all nine taps);
                # border pixels are redone below. Branch-free loops: vectorised
                if p == 0:
                    start = shift[o]
                    for i in range(size):
                        total[i] = start + (a_coef * np.float64(acc[i]) + o_coef * np.float64(ones_p[i]) + inside)
                else:
                    for i in range(size):
                        total[i] += a_coef * np.float64(acc[i]) + o_coef * np.float64(ones_p[i]) + inside
            for r in range(rows):  # border pixels: the same sum with their window pattern's constants
                mask, ox = row_masks[r], 0
                while ox < w_out:
                    if mask == 7 and first <= ox < last:
                        ox = last  # an inner row: only its border columns
                        continue
                    i, cfg = r * w_out + ox, mask * 8 + col_valid[ox]
                    t = shift[o]
                    for p in range(planes):
                        t += (
                            acc_coef[p, o] * np.float64(counts[p, i])
                            + ones_coef[p, o] * np.float64(ones[p, i])
                            + const[p, o, cfg]
                        )
                    total[i] = t
                    ox += 1
            pos, neg, pre, post = post_pos[o], post_neg[o], post_pre[o], post_shift[o]
            dst = out[b, o, oy0 * w_out : oy0 * w_out + size]
            if has_residual:  # added in float32, as PyTorch does
                res = residual[b, o, oy0 * w_out : oy0 * w_out + size]
                for i in range(size):
                    z = (np.float32(total[i]) + res[i]) - pre
                    dst[i] = pos * max(z, np.float32(0)) - neg * max(-z, np.float32(0)) + post
            else:
                for i in range(size):
                    z = np.float32(total[i]) - pre
                    dst[i] = pos * max(z, np.float32(0)) - neg * max(-z, np.float32(0)) + post
    return out


_SERIAL = (njit(cache=True)(_pack_rows), njit(cache=True)(_conv_blocks))
# Not cached: numba's on-disk cache keys a function by its name and line, not by its flags, so a
# cached parallel build was loaded for the serial dispatcher too (which then started numba's thread
# pool on every call: 2.8x slower at 64 x 64 px). The parallel build compiles once per process.
_PARALLEL = (njit(parallel=True)(_pack_rows), njit(parallel=True)(_conv_blocks))


PARALLEL_MIN_WORK = 1 << 16  # outputs x planes below which one thread is faster (measured on 2 cores)


def _kernels(work: int = PARALLEL_MIN_WORK):
    """The kernels for ``work`` (values to produce) on PyTorch's thread count
    (``torch.get_num_threads()``: ``OMP_NUM_THREADS``, ``torch.set_num_threads``), since the packed
    layers run between PyTorch layers: block-parallel ones on min(that, NUMBA_NUM_THREADS) numba
    threads for large work, serial ones otherwise.

    Small work stays serial because handing it to numba's threads costs more than it saves. (With
    one work item per output row, 2 threads and the 'workqueue' layer, a 64 x 64 AOIE-Net once took
    29 ms instead of 5 ms; with work items of ~1024 output pixels and the 'omp' layer, 2 threads
    pay off from 2^16 values per layer: 64 x 64 batch 1, 3.1 ms against 3.6 serial; 200 x 200
    batch 1, 18 ms against 30.)
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
