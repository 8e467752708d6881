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
of the batch (about ``BLOCK_PIXELS`` pixels, one work item each; a block of small maps holds
several images, so that its loops stay long): it XORs one weight word against the whole block
and counts bits with vector popcounts (VPOPCNTQ with AVX-512), then forms the block of one output
channel in float64 -- long, branch-free loops the compiler vectorises; the border pixels, whose
windows reach into the padding, then get their pattern's constant. Packing works on blocks of
whole rows of one image in the same way, at stride 1 writing each word of the block's rows in one
run.
Tensors are (N, C, H, W) float32 on both sides of the kernel, as in PyTorch.

Instruction set. The kernels are compiled by numba for the CPU it runs on. On AVX-512 CPUs LLVM
prefers 256-bit vectors by default; when this module is the first to load numba and the user has
not set ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``, it asks for 512-bit vectors (the host's
features plus ``-prefer-256-bit``; the kernels ran 20-25 % faster). ``CRACKSCOPE_NUMBA_512=0``
leaves numba's default. Any other target is chosen with numba's own variables, e.g. the AVX2 path
on an AVX-512 machine: ``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=""``.
:func:`instruction_set` says which path the compiled code takes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import types as types_module
from concurrent.futures import ThreadPoolExecutor


def _prefer_512_bit_vectors() -> None:
    """Ask numba for 512-bit vectors on an AVX-512 host (see the module docstring); only before numba
    is loaded, and only when nothing else chose its target."""
    if (
        "numba" in sys.modules
        or os.environ.get("CRACKSCOPE_NUMBA_512", "1") == "0"
        or "NUMBA_CPU_NAME" in os.environ
        or "NUMBA_CPU_FEATURES" in os.environ
    ):
        return
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" in features.split(","):
        os.environ["NUMBA_CPU_FEATURES"] = features + ",-prefer-256-bit"


_prefer_512_bit_vectors()

import numba  # noqa: E402  (after the target is chosen)
import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import njit, prange, types  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

__all__ = [
    "field_layout",
    "pack_row_triples",
    "pack_weight_rows",
    "conv_constants",
    "binary_conv3x3",
    "instruction_set",
]

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


@functools.lru_cache(maxsize=1)
def instruction_set() -> str:
    """Which x86 path numba's code for the kernels takes, read off the machine code of a probe loop
    (XOR + popcount over uint64 words, the kernels' inner loop): "AVX-512 VPOPCNTQ, 512-bit",
    "AVX-512 VPOPCNTQ, 256-bit", "AVX2, popcount by byte table (VPSHUFB)", "scalar POPCNT" or
    "other" (not x86, or not recognised)."""
    import re

    @njit(cache=False)
    def probe(a, w):
        total = 0
        for i in range(a.shape[0]):
            total += _popcount64(a[i] ^ w)
        return total

    probe(np.zeros(64, np.uint64), np.uint64(1))
    asm = "\n".join(probe.inspect_asm().values())
    if re.search(r"vpopcntq\s+%zmm", asm):
        return "AVX-512 VPOPCNTQ, 512-bit"
    if re.search(r"vpopcntq\s+%ymm", asm):
        return "AVX-512 VPOPCNTQ, 256-bit"
    if re.search(r"vpshufb\s+%ymm", asm):
        return "AVX2, popcount by byte table (VPSHUFB)"
    if "popcnt" in asm:
        return "scalar POPCNT"
    return "other"


def field_layout(channels: int) -> tuple[int, int]:
    """(field_bits, row_words) for ``channels`` input channels."""
    field_bits = 1
    while field_bits < channels:
        field_bits *= 2
    if channels > 64:
        field_bits = 64 * -(-channels // 64)
    return field_bits, -(-KERNEL * field_bits // 64)


@njit(cache=True)
def _write_row_triple(fields, col0, w, dst, y, stride, field_bits, unit_bits, units_per_field):
    """Row ``y`` of the row triples ``dst`` (row_words, H + 2, W_out) of one plane and image, from the
    row's channel fields ``fields[:, col0 : col0 + w]`` (units_per_field, ...). Every word is written
    once per output column: the first piece of a word (shift 0) is assigned, the others are OR-ed
    in; taps outside the image give 0."""
    w_out = dst.shape[2]
    for dx in range(3):
        first = max(0, -((dx - 1) // stride))  # smallest ox with ox * stride - 1 + dx >= 0
        last = min(w_out - 1, (w - dx) // stride)  # largest ox with ox * stride - 1 + dx <= w - 1
        for j in range(units_per_field):
            bit0 = dx * field_bits + j * unit_bits
            word, shift = bit0 // 64, np.uint64(bit0 % 64)
            row = dst[word, y]
            src = fields[j, col0 + first * stride - 1 + dx :]
            if bit0 % 64 == 0:
                for i in range(first):
                    row[i] = 0
                for i in range(last + 1, w_out):
                    row[i] = 0
                part = row[first : last + 1]
                for i in range(part.shape[0]):  # 0-based over slices: vectorised at stride 1
                    part[i] = np.uint64(src[i * stride])
            else:
                part = row[first : last + 1]
                for i in range(part.shape[0]):
                    part[i] |= np.uint64(src[i * stride]) << shift


@njit(cache=True)
def _write_rows_flat(fields, rows, w, dst, y0, stride, field_bits, unit_bits, units_per_field):
    """Rows ``y0 .. y0 + rows - 1`` of the row triples ``dst`` (row_words, H + 2, W_out) of one plane
    and image, from the rows' channel fields ``fields`` (units_per_field, rows * W), where
    W = stride * W_out (stride 1, or an even width at stride 2): the same words as
    :func:`_write_row_triple` row by row, written as one run over the rows (output column k of
    the run reads field column stride * k - 1 + dx), the image's first column (and at stride 1 its
    last) then cleared of the taps that fall outside it. Long loops for small images."""
    w_out = dst.shape[2]
    size_in, size = rows * w, rows * w_out
    for dx in range(3):
        for j in range(units_per_field):
            bit0 = dx * field_bits + j * unit_bits
            word, shift = bit0 // 64, np.uint64(bit0 % 64)
            flat = dst[word].reshape(dst.shape[1] * dst.shape[2])[y0 * w_out : y0 * w_out + size]
            src = fields[j]
            # output columns whose tap is inside the block: stride * k - 1 + dx in [0, size_in - 1]
            lo, hi = (1 if dx == 0 else 0), min(size, (size_in - dx) // stride + 1)
            if bit0 % 64 == 0:
                for k in range(lo):
                    flat[k] = 0
                for k in range(hi, size):
                    flat[k] = 0
                part = flat[lo:hi]
                if stride == 1:
                    tap = src[lo - 1 + dx :]
                    for k in range(part.shape[0]):
                        part[k] = np.uint64(tap[k])
                else:
                    for k in range(part.shape[0]):
                        part[k] = np.uint64(src[stride * (lo + k) - 1 + dx])
            else:
                part = flat[lo:hi]
                if stride == 1:
                    tap = src[lo - 1 + dx :]
                    for k in range(part.shape[0]):
                        part[k] |= np.uint64(tap[k]) << shift
                else:
                    for k in range(part.shape[0]):
                        part[k] |= np.uint64(src[stride * (lo + k) - 1 + dx]) << shift
            # the tap left of column 0 (dx = 0) or, at stride 1, right of column W - 1 (dx = 2): zero padding
            if dx == 0 or (dx == 2 and stride == 1):
                edge = 0 if dx == 0 else w_out - 1
                keep = (
                    ~(((np.uint64(1) << np.uint64(unit_bits)) - np.uint64(1)) << shift)
                    if unit_bits < 64
                    else np.uint64(0)
                )
                for r in range(rows):
                    flat[r * w_out + edge] &= keep


def _pack_rows(x, thresholds, below, stride, w_out, field_bits, row_words, unit, rows_per_task):
    n, channels, h, w = x.shape
    planes = thresholds.shape[0]
    out = np.zeros((planes, n, row_words, h + 2, w_out), dtype=np.uint64)  # the padding rows stay 0
    bits = _unit_bits(unit)
    blocks = (h + rows_per_task - 1) // rows_per_task
    for task in prange(n * blocks):  # a block of whole rows of one image (all of a small one)
        _pack_task(task, x, thresholds, below, stride, field_bits, unit, rows_per_task, bits, out)
    return out


@njit(cache=True)
def _unit_bits(unit):
    """bits[k] = 1 << k in the type of ``unit`` (one element, 1)."""
    bits = np.zeros(unit.itemsize * 8, dtype=unit.dtype)
    for k in range(bits.shape[0]):
        bits[k] = unit[0] << k
    return bits


@njit(cache=True, nogil=True)
def _pack_task(task, x, thresholds, below, stride, field_bits, unit, rows_per_task, bits, out):
    """Work item ``task`` of :func:`_pack_rows`: a block of ``rows_per_task`` whole rows of one image
    of ``x``, binarised and packed into its rows of the row triples ``out`` (P, N, row_words, H + 2,
    W_out); ``bits`` from :func:`_unit_bits`."""
    h = x.shape[2]
    blocks = (h + rows_per_task - 1) // rows_per_task
    b, y0 = task // blocks, (task % blocks) * rows_per_task
    _pack_image_rows(b, y0, min(rows_per_task, h - y0), x, thresholds, below, stride, field_bits, unit, bits, out)


@njit(cache=True, nogil=True)
def _pack_image_rows(b, y0, rows, x, thresholds, below, stride, field_bits, unit, bits, out):
    """Rows ``y0 .. y0 + rows - 1`` of image ``b`` of ``x``, binarised and packed into their rows of
    the row triples ``out`` (each row's words depend on that row alone)."""
    n, channels, h, w = x.shape
    planes = thresholds.shape[0]
    unit_bits = unit.itemsize * 8  # a field is gathered in the narrowest unsigned type that holds it
    units_per_field = max(1, field_bits // unit_bits)
    w_out = out.shape[4]
    size = rows * w
    flat = x.reshape(n, channels, h * w)
    all_fields = np.zeros((planes, units_per_field, size), dtype=unit.dtype)
    for c in range(channels):  # each input value is read once for all planes
        xr, bit = flat[b, c, y0 * w : y0 * w + size], bits[c % unit_bits]
        for p in range(planes):
            t, f = thresholds[p, c], all_fields[p, c // unit_bits]
            # contiguous in x, one comparison per value: vectorised (8-bit to 32-bit units give
            # 8 to 2 times the lanes of uint64)
            if below[p, c]:
                for i in range(size):
                    f[i] |= bit * (xr[i] <= t)
            else:
                for i in range(size):
                    f[i] |= bit * (xr[i] >= t)
    for p in range(planes):
        if w == stride * w_out:  # stride 1, or an even width at stride 2: one run over the rows
            _write_rows_flat(all_fields[p], rows, w, out[p, b], y0 + 1, stride, field_bits, unit_bits, units_per_field)
        else:
            for r in range(rows):
                _write_row_triple(
                    all_fields[p], r * w, w, out[p, b], y0 + r + 1, stride, field_bits, unit_bits, units_per_field
                )


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
    kernels = _kernels(x.size * thresholds.shape[0])
    return kernels[0](
        np.ascontiguousarray(x, dtype=np.float32),
        np.ascontiguousarray(thresholds, np.float32),
        np.ascontiguousarray(below, dtype=np.bool_),
        stride,
        w_out,
        field_bits,
        row_words,
        unit,
        _rows_per_task(x.shape[0], x.shape[2], x.shape[3], kernels),
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


def border_deltas(const: np.ndarray) -> np.ndarray:
    """(C_out, 64) float64: what a window with pattern cfg adds to the sum over planes of the
    constant of an inner window (cfg 63), ``sum_p const[p, :, cfg] - const[p, :, 63]``, from
    ``const`` (P, 64, C_out) of :func:`conv_constants`. Zero at cfg 63."""
    const = np.asarray(const, np.float64)
    return np.ascontiguousarray((const - const[:, 63:64, :]).sum(axis=0).T)


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
    c_out = weights.shape[2]
    if post is None:
        one, zero = np.ones(c_out, np.float32), np.zeros(c_out, np.float32)
        post = (one, one, zero, zero)
    operands = ConvOperands(weights, acc_coef, ones_coef, const, shift, *post)
    return operands.run(triples, stride, height, width, residual)


class ConvOperands:
    """Everything :func:`binary_conv3x3` needs besides the activations, in the kernel's layout,
    computed once per layer (the packed network keeps one per binary unit)."""

    def __init__(self, weights, acc_coef, ones_coef, const, shift, post_pos, post_neg, post_pre, post_shift):
        const = np.asarray(const, np.float64)
        self.weights = np.ascontiguousarray(weights, np.uint64)
        self.acc_coef = np.ascontiguousarray(acc_coef, np.float64)
        self.ones_coef = np.ascontiguousarray(ones_coef, np.float64)
        self.inner = np.ascontiguousarray(np.asarray(shift, np.float64) + const[:, 63, :].sum(axis=0))
        self.border = border_deltas(const)
        self.post = tuple(np.ascontiguousarray(a, np.float32) for a in (post_pos, post_neg, post_pre, post_shift))
        self.plane_ratio = _shared_plane_ratio(self.weights, self.acc_coef, self.ones_coef)

    def run(self, triples, stride: int, height: int, width: int, residual=None) -> np.ndarray:
        """The layer on packed activations ``triples`` (P, N, row_words, H + 2, W_out)."""
        planes, n, row_words, rows_in, w_out = triples.shape
        h_out = (height - 1) // stride + 1
        c_out = self.weights.shape[2]
        has_residual = residual is not None
        residual = (
            np.ascontiguousarray(residual, np.float32).reshape(n, c_out, h_out * w_out)
            if has_residual
            else _NO_RESIDUAL
        )
        kernels = _kernels(planes * n * h_out * w_out * c_out)
        rows_per_block = _rows_per_block(n, h_out, w_out, kernels)
        out = kernels[1](
            triples.reshape(planes, n, row_words, rows_in * w_out),
            self.weights,
            self.acc_coef,
            self.ones_coef,
            self.inner,
            self.border,
            self.plane_ratio,
            stride,
            height,
            h_out,
            _col_patterns(width, stride, w_out),
            rows_per_block,
            residual,
            has_residual,
            *self.post,
        )
        return out.reshape(n, c_out, h_out, w_out)


_NO_RESIDUAL = np.zeros((1, 1, 1), np.float32)


def _rows_per_block(n: int, h_out: int, w_out: int, kernels) -> int:
    """:func:`block_rows` for the threads of ``kernels`` (one for the serial ones)."""
    return block_rows(n, h_out, w_out, _threads_of(kernels))


def _rows_per_task(n: int, h: int, w: int, kernels) -> int:
    """:func:`task_rows` for the threads of ``kernels`` (one for the serial ones)."""
    return task_rows(n, h, w, _threads_of(kernels))


def block_rows(n: int, h_out: int, w_out: int, threads: int) -> int:
    """Output rows of the batch (``n`` maps of ``h_out`` x ``w_out``) per work item of the
    convolution: about BLOCK_PIXELS pixels, so small maps share a block; whole images when a block
    holds one or more (the kernel then adds the border constants from one map for every block);
    at least one item per thread (:func:`_split_rows`)."""
    rows = max(1, BLOCK_PIXELS // w_out)
    rows = rows - rows % h_out if rows >= h_out else rows
    return _split_rows(rows, n * h_out, threads)


def task_rows(n: int, h: int, w: int, threads: int) -> int:
    """Input rows of one image per work item of the packing: about BLOCK_PIXELS pixels, all of a
    small image; for one image, at least one item per thread (:func:`_split_rows`)."""
    rows = max(1, min(h, BLOCK_PIXELS // w))
    return _split_rows(rows, h, threads) if n == 1 else rows


def _threads_of(kernels) -> int:
    return numba.get_num_threads() if kernels is _PARALLEL else 1


def _split_rows(rows: int, all_rows: int, threads: int) -> int:
    """``rows`` per work item, or fewer where that would give fewer items than ``threads`` (one
    mid-size map): ``all_rows`` split evenly over the threads."""
    return rows if -(-all_rows // rows) >= threads else max(1, -(-all_rows // threads))


def _shared_plane_ratio(weights, acc_coef, ones_coef) -> np.ndarray:
    """(r_0 = 1, r_1) when two planes use the same weight bits and their coefficients differ only by
    the activation scale, ``coef[1, o] = r_1 * coef[0, o]`` for every output channel (AOIE-Net's
    DBN-IEB: one weight set, two activation levels); empty otherwise. The kernel then forms
    ``acc_coef[0] * (count_0 + r_1 * count_1)`` and one ones term per output instead of two."""
    if weights.shape[0] != 2 or not np.array_equal(weights[0], weights[1]):
        return np.zeros(0)
    a0, a1, c0, c1 = acc_coef[0], acc_coef[1], ones_coef[0], ones_coef[1]
    if not np.all(a0 != 0):
        return np.zeros(0)
    ratio = a1[0] / a0[0]
    if not (np.allclose(a1, ratio * a0, rtol=1e-12, atol=0) and np.allclose(c1, ratio * c0, rtol=1e-12, atol=1e-300)):
        return np.zeros(0)
    return np.array([1.0, ratio])


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
    inner,
    border,
    plane_ratio,
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
    """One work item per block of whole output rows. For each output channel one fused, branch-free
    pass over the block's pixels counts XOR bits of all kernel rows (specialised for 1, 2 and 3
    words per kernel row: every channel count up to 64) and adds the plane's affine terms in
    float64; the border pixels then get their window pattern's constant; the residual and the
    post-sum layer are applied in float32 on the way out."""
    n = triples.shape[1]
    c_out = weights.shape[2]
    out = np.empty((n, c_out, h_out * col_valid.shape[0]), dtype=np.float32)
    border_map = _border_map(border, stride, h, h_out, col_valid, rows_per_block, n)
    for task in prange((n * h_out + rows_per_block - 1) // rows_per_block):
        _conv_task(
            task,
            triples,
            weights,
            acc_coef,
            ones_coef,
            inner,
            border,
            plane_ratio,
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
            border_map,
            out,
        )
    return out


@njit(cache=True, nogil=True)
def _border_map(border, stride, h, h_out, col_valid, rows_per_block, n):
    """(C_out, pixels) float64: the border constant of every pixel of a block of whole images, made
    once per call and shared by every block of :func:`_conv_blocks`; (C_out, 0) where the blocks do
    not share one."""
    c_out = border.shape[0]
    w_out = col_valid.shape[0]
    all_rows = n * h_out  # row g is row g % h_out of image g // h_out
    # Small maps (blocks of whole images, most pixels at the border): every block starts at an
    # image's first row, so pixel i of any block has the pattern of pixel i % (h_out w_out) of an
    # image, and one map of the border constants, made once per call, serves every block (added
    # contiguously instead of gathered per block). Only where there are several blocks to share it.
    image_px = h_out * w_out
    map_px = min(rows_per_block, all_rows) * w_out
    block_map = rows_per_block % h_out == 0 and all_rows > rows_per_block
    if block_map:  # and most pixels at the border: rows at the border, then columns at the border
        border_rows, border_cols = 0, 0
        for oy in range(h_out):
            if oy * stride == 0 or oy * stride + 1 >= h:
                border_rows += 1
        for ox in range(w_out):
            if col_valid[ox] != 7:
                border_cols += 1
        block_map = 8 * (border_rows * w_out + (h_out - border_rows) * border_cols) > image_px
    border_map = np.zeros((c_out, map_px if block_map else 0), dtype=np.float64)
    if block_map:
        map_pattern = np.empty(map_px, dtype=np.int64)
        for i in range(map_px):
            oy, ox = (i % image_px) // w_out, i % w_out
            row_mask = 0
            for dy in range(3):
                if 0 <= oy * stride - 1 + dy < h:
                    row_mask |= 1 << dy
            map_pattern[i] = row_mask * 8 + col_valid[ox]
        for o in range(c_out):
            border_o, map_o = border[o], border_map[o]
            for i in range(map_px):
                map_o[i] = border_o[map_pattern[i]]
    return border_map


@njit(cache=True, nogil=True)
def _conv_task(
    task,
    triples,
    weights,
    acc_coef,
    ones_coef,
    inner,
    border,
    plane_ratio,
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
    border_map,
    out,
):
    """Work item ``task`` of :func:`_conv_blocks`: its block of ``rows_per_block`` whole output rows
    of the batch, written into ``out`` (N, C_out, H_out * W_out); ``border_map`` from
    :func:`_border_map` (no columns: the block adds its own border constants)."""
    planes, n, row_words, _ = triples.shape
    w_out = col_valid.shape[0]
    words = 3 * row_words  # per window and plane, index dy * row_words + j (as in the weights)
    c_out = weights.shape[2]
    zero = np.float32(0)
    all_rows = n * h_out  # row g is row g % h_out of image g // h_out
    block_map = border_map.shape[1] > 0
    g0 = task * rows_per_block
    rows = min(rows_per_block, all_rows - g0)
    size = rows * w_out
    # the words under each kernel row of every output pixel of the block, contiguous per word
    win = np.empty((planes, words, size), dtype=np.uint64)
    ones = np.zeros((planes, size), dtype=np.float64)  # popcount of each window's activation bits
    for p in range(planes):
        for dy in range(3):
            for j in range(row_words):
                dst = win[p, dy * row_words + j]
                r = 0
                while r < rows:  # per run of rows of one image: one copy at stride 1
                    b, oy = (g0 + r) // h_out, (g0 + r) % h_out
                    seg = min(rows - r, h_out - oy)
                    if stride == 1:
                        row0 = (oy + dy) * w_out
                        dst[r * w_out : (r + seg) * w_out] = triples[p, b, j, row0 : row0 + seg * w_out]
                    else:
                        for k in range(seg):
                            row0 = ((oy + k) * stride + dy) * w_out
                            dst[(r + k) * w_out : (r + k + 1) * w_out] = triples[p, b, j, row0 : row0 + w_out]
                    r += seg
                ones_p = ones[p]
                for i in range(size):
                    ones_p[i] += np.float64(_popcount64(dst[i]))
    # pixels whose window reaches into the padding, and their pattern
    n_border = 0
    where = np.empty(size, dtype=np.int64)
    pattern = np.empty(size, dtype=np.int64)
    every = np.empty(size, dtype=np.int64)  # every pixel's pattern (63: inside)
    for r in range(0 if block_map else rows):  # (the border map holds them)
        row_mask = 0
        for dy in range(3):
            if 0 <= ((g0 + r) % h_out) * stride - 1 + dy < h:
                row_mask |= 1 << dy
        for ox in range(w_out):
            cfg = row_mask * 8 + col_valid[ox]
            every[r * w_out + ox] = cfg
            if cfg != 63:
                where[n_border], pattern[n_border] = r * w_out + ox, cfg
                n_border += 1
    dense_border = 8 * n_border > size  # small maps: one gather per pixel beats a scatter per border pixel
    total = np.empty(size, dtype=np.float64)
    shared = plane_ratio.shape[0] == 2 and row_words == 1
    if shared:  # two planes, one weight set, 16 channels or fewer: one pass per output channel
        ratio = plane_ratio[1]
        ones_both = np.empty(size, dtype=np.float64)
        for i in range(size):
            ones_both[i] = ones[0, i] + ratio * ones[1, i]
    for o in range(c_out):
        start = inner[o]
        map_o = border_map[o]  # empty unless block_map
        if shared:
            a, c = acc_coef[0, o], ones_coef[0, o]
            s0, s1, s2, t0, t1, t2 = win[0, 0], win[0, 1], win[0, 2], win[1, 0], win[1, 1], win[1, 2]
            w0, w1, w2 = weights[0, 0, o], weights[0, 1, o], weights[0, 2, o]
            if block_map:  # the same sum with the pixel's border constant (first term: the same order)
                for i in range(size):
                    first = _popcount64(s0[i] ^ w0) + _popcount64(s1[i] ^ w1) + _popcount64(s2[i] ^ w2)
                    second = _popcount64(t0[i] ^ w0) + _popcount64(t1[i] ^ w1) + _popcount64(t2[i] ^ w2)
                    total[i] = (
                        start + a * (np.float64(first) + ratio * np.float64(second)) + c * ones_both[i]
                    ) + map_o[i]
            else:
                for i in range(size):
                    first = _popcount64(s0[i] ^ w0) + _popcount64(s1[i] ^ w1) + _popcount64(s2[i] ^ w2)
                    second = _popcount64(t0[i] ^ w0) + _popcount64(t1[i] ^ w1) + _popcount64(t2[i] ^ w2)
                    total[i] = start + a * (np.float64(first) + ratio * np.float64(second)) + c * ones_both[i]
        else:
            for i in range(size):
                total[i] = start
        for p in range(0 if shared else planes):
            a, c, ones_p, win_p = acc_coef[p, o], ones_coef[p, o], ones[p], win[p]
            if row_words == 1:
                s0, s1, s2 = win_p[0], win_p[1], win_p[2]
                w0, w1, w2 = weights[p, 0, o], weights[p, 1, o], weights[p, 2, o]
                for i in range(size):
                    bits = _popcount64(s0[i] ^ w0) + _popcount64(s1[i] ^ w1) + _popcount64(s2[i] ^ w2)
                    total[i] += a * np.float64(bits) + c * ones_p[i]
            elif row_words == 2:
                s0, s1, s2, s3, s4, s5 = win_p[0], win_p[1], win_p[2], win_p[3], win_p[4], win_p[5]
                w0, w1, w2 = weights[p, 0, o], weights[p, 1, o], weights[p, 2, o]
                w3, w4, w5 = weights[p, 3, o], weights[p, 4, o], weights[p, 5, o]
                for i in range(size):
                    bits = (
                        _popcount64(s0[i] ^ w0)
                        + _popcount64(s1[i] ^ w1)
                        + _popcount64(s2[i] ^ w2)
                        + _popcount64(s3[i] ^ w3)
                        + _popcount64(s4[i] ^ w4)
                        + _popcount64(s5[i] ^ w5)
                    )
                    total[i] += a * np.float64(bits) + c * ones_p[i]
            elif row_words == 3:
                s0, s1, s2, s3, s4 = win_p[0], win_p[1], win_p[2], win_p[3], win_p[4]
                s5, s6, s7, s8 = win_p[5], win_p[6], win_p[7], win_p[8]
                w0, w1, w2 = weights[p, 0, o], weights[p, 1, o], weights[p, 2, o]
                w3, w4, w5 = weights[p, 3, o], weights[p, 4, o], weights[p, 5, o]
                w6, w7, w8 = weights[p, 6, o], weights[p, 7, o], weights[p, 8, o]
                for i in range(size):
                    bits = (
                        _popcount64(s0[i] ^ w0)
                        + _popcount64(s1[i] ^ w1)
                        + _popcount64(s2[i] ^ w2)
                        + _popcount64(s3[i] ^ w3)
                        + _popcount64(s4[i] ^ w4)
                        + _popcount64(s5[i] ^ w5)
                        + _popcount64(s6[i] ^ w6)
                        + _popcount64(s7[i] ^ w7)
                        + _popcount64(s8[i] ^ w8)
                    )
                    total[i] += a * np.float64(bits) + c * ones_p[i]
            else:  # wider fields (more than 64 channels): word by word
                counts = np.zeros(size, dtype=np.int64)
                for k in range(words):
                    s, wk = win_p[k], weights[p, k, o]
                    for i in range(size):
                        counts[i] += _popcount64(s[i] ^ wk)
                for i in range(size):
                    total[i] += a * np.float64(counts[i]) + c * ones_p[i]
        border_o = border[o]  # (64,), 0 at pattern 63
        if block_map:
            if not shared:  # (the shared pass added it)
                for i in range(size):
                    total[i] += map_o[i]
        elif dense_border:
            for i in range(size):
                total[i] += border_o[every[i]]
        else:
            for q in range(n_border):
                total[where[q]] += border_o[pattern[q]]
        pos, neg, pre, post = post_pos[o], post_neg[o], post_pre[o], post_shift[o]
        r = 0
        while r < rows:  # one pass per run of rows of the same image
            b, oy = (g0 + r) // h_out, (g0 + r) % h_out
            m = min(rows - r, h_out - oy) * w_out
            tot, dst = total[r * w_out : r * w_out + m], out[b, o, oy * w_out : oy * w_out + m]
            # pos * relu(z) - neg * relu(-z) is exactly (pos if z > 0 else neg) * z: a select and
            # a multiply, which vectorise (max() with Python's NaN rule does not)
            if has_residual:  # added in float32, as PyTorch does
                res = residual[b, o, oy * w_out : oy * w_out + m]
                for i in range(m):
                    z = (np.float32(tot[i]) + res[i]) - pre
                    dst[i] = (pos if z > zero else neg) * z + post
            else:
                for i in range(m):
                    z = np.float32(tot[i]) - pre
                    dst[i] = (pos if z > zero else neg) * z + post
            r += m // w_out


def _renamed(fn, suffix: str, globals_: dict | None = None):
    """The same function under another name. numba's on-disk cache files a function by its qualified
    name and first line, not by its compile flags: under one name, a cached parallel build was once
    loaded for the serial dispatcher too (which then started numba's thread pool on every call, 2.8x
    slower at 64 x 64 px). Under its own name each build has its own cache entry. ``globals_``: names
    the clone sees on top of the module's (the kernels a chain calls)."""
    name = fn.__name__ + suffix
    clone = types_module.FunctionType(
        fn.__code__.replace(co_name=name, co_qualname=name),
        {**fn.__globals__, **globals_} if globals_ else fn.__globals__,
        name,
        fn.__defaults__,
        fn.__closure__,
    )
    clone.__qualname__ = name
    return clone


# Both builds are cached on disk (beside this file, or in NUMBA_CACHE_DIR), so only the first process
# on a machine compiles them; see docs/binary.md for what a fresh process costs. The serial ones
# release the GIL, so that chunks of a batch can run on several Python threads at once
# (:func:`map_on_threads`).
_SERIAL = (
    njit(nogil=True, cache=True)(_renamed(_pack_rows, "_nogil")),
    njit(nogil=True, cache=True)(_renamed(_conv_blocks, "_nogil")),
)
_PARALLEL = (
    njit(parallel=True, cache=True)(_renamed(_pack_rows, "_parallel")),
    njit(parallel=True, cache=True)(_renamed(_conv_blocks, "_parallel")),
)


# outputs x planes below which a layer stays on one thread. Whether a whole pass is better on one
# thread depends on the state of the host (crackscope.deploy.pass_mode chooses it while it runs);
# when two threads pay, they pay down to small layers: 64 px, batch 1, on the 2-vCPU AMD EPYC in
# that state (one process, 3 rounds, 2026-12-07), every layer parallel 1.20-1.24 ms, from 2^18
# (every layer serial) 1.42-1.45 ms; in a variant that split output channels instead of rows (the
# same times at 0), from 2^14 1.21-1.26 ms and from 2^16 1.26-1.28 ms; at 200 px, batch 1, 2^18
# and every layer parallel were level (6.9-7.8 ms)
PARALLEL_MIN_WORK = 1 << 14


def _residual_chain(
    x,
    thresholds,
    below,
    weights,
    acc,
    ones,
    inner,
    border,
    ratio,
    pos,
    neg,
    pre,
    shift,
    w_out,
    field_bits,
    row_words,
    unit,
    rows_per_task,
    rows_per_block,
    col_valid,
):
    """``x`` through K binary units one after another, each ``post(conv(x) + x)`` at stride 1 with
    as many output as input channels, in one compiled call. Unit k's operands are entry k of each
    array (stacked on a leading axis of length K). The same kernels (``PACK``, ``CONV``, this clone's
    globals) on the same operands as :meth:`ConvOperands.run` unit by unit, so the same values,
    without returning to Python between units."""
    n, c, h, w = x.shape
    z = x
    for k in range(thresholds.shape[0]):
        triples = PACK(z, thresholds[k], below[k], 1, w_out, field_bits, row_words, unit, rows_per_task)  # noqa: F821
        planes = triples.shape[0]
        out = CONV(  # noqa: F821
            triples.reshape((planes, n, row_words, (h + 2) * w_out)),
            weights[k],
            acc[k],
            ones[k],
            inner[k],
            border[k],
            ratio[k],
            1,
            h,
            h,
            col_valid,
            rows_per_block,
            z.reshape((n, c, h * w)),
            True,
            pos[k],
            neg[k],
            pre[k],
            shift[k],
        )
        z = out.reshape((n, c, h, w))
    return z


# :func:`_residual_chain` compiled against each pair of kernels, under its own name (see :func:`_renamed`)
_CHAINS = {
    kernels: njit(nogil=nogil, cache=True)(_renamed(_residual_chain, suffix, {"PACK": kernels[0], "CONV": kernels[1]}))
    for kernels, suffix, nogil in ((_SERIAL, "_nogil", True), (_PARALLEL, "_parallel", False))
}


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

    if getattr(_LOCAL, "serial", False):  # a chunk on one of map_on_threads's threads
        return _SERIAL
    torch_threads = torch.get_num_threads()
    threads = min(torch_threads, numba.config.NUMBA_NUM_THREADS)
    if threads <= 1 or work < PARALLEL_MIN_WORK:
        return _SERIAL
    if numba.get_num_threads() != threads:
        numba.set_num_threads(threads)
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    return _PARALLEL


_LOCAL = threading.local()  # .serial: this thread runs the serial kernels only


@contextlib.contextmanager
def serial_kernels():
    """Within it, this thread's packed layers run on the serial kernels, whatever the thread count
    (the same numbers as the parallel ones)."""
    before = getattr(_LOCAL, "serial", False)
    _LOCAL.serial = True
    try:
        yield
    finally:
        _LOCAL.serial = before


@contextlib.contextmanager
def one_thread():
    """Within it, a pass runs on one thread: the serial kernels, and PyTorch's layers (stem, real
    shortcuts, classifier) on one thread too (PyTorch's thread count is process-wide: it is put
    back afterwards, as :func:`map_on_threads` does)."""
    import torch

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with serial_kernels():
            yield
    finally:
        torch.set_num_threads(torch_threads)


_POOL: dict = {}  # thread count -> the ThreadPoolExecutor of map_on_threads


def thread_budget() -> int:
    """The threads the packed layers may use: PyTorch's thread count, at most ``NUMBA_NUM_THREADS``
    (as :func:`_kernels` counts them)."""
    import torch

    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


def map_on_threads(fn, items: list, threads: int) -> list:
    """``[fn(item) for item in items]`` on ``threads`` Python threads, each item on one thread with
    the serial kernels (which release the GIL): parallelism over whole chunks of a batch, one
    fork/join per call instead of one per layer and block. PyTorch's own layers inside ``fn`` run on
    one thread each meanwhile: PyTorch's thread count is 1 while the call lasts, then put back.
    The results are those of the loop, item by item (the serial kernels compute the same numbers)."""
    import torch

    pool = _POOL.get(threads)
    if pool is None:
        pool = _POOL[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="crackscope-packed")

    def serial(item):
        if not getattr(_LOCAL, "one_torch_thread", False):
            # in this thread too: a new thread's OpenMP count is the process default, and a PyTorch
            # convolution here would start an OpenMP team of its own, whose threads then outnumber
            # the cores and make libgomp's spinning threads sleep early (every later parallel
            # kernel of the process ran 1.5x slower: 200 px, batch 1, two threads, 9.7 -> 15.5 ms)
            torch.set_num_threads(1)
            _LOCAL.one_torch_thread = True
        with serial_kernels():
            return fn(item)

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return list(pool.map(serial, items))
    finally:
        torch.set_num_threads(torch_threads)


def _forget_pools() -> None:
    """In a forked child the pools' threads do not exist: start new ones on demand."""
    _POOL.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


class ResidualChain:
    """Consecutive binary units with identity shortcuts, stride 1 and as many output as input
    channels (a ResNet stage after its first unit), run in one compiled call: the values of
    :meth:`ConvOperands.run` unit by unit (``post(conv(x) + x)``), without Python between units.
    ``layers``: (ConvOperands, thresholds (P, C) float32, below (P, C) bool) per unit, all of the
    same shapes (:meth:`chainable`); their operands are stacked on a leading unit axis."""

    def __init__(self, layers):
        if not self.chainable(layers):
            raise ValueError("a residual chain needs units of one shape")
        operands = [op for op, _, _ in layers]
        self.channels = int(operands[0].weights.shape[2])
        self.planes = int(np.shape(layers[0][1])[0])

        def stack(arrays, dtype):
            return np.ascontiguousarray(np.stack([np.asarray(a, dtype) for a in arrays]))

        self.arrays = (
            stack([t for _, t, _ in layers], np.float32),
            stack([b for _, _, b in layers], np.bool_),
            stack([op.weights for op in operands], np.uint64),
            stack([op.acc_coef for op in operands], np.float64),
            stack([op.ones_coef for op in operands], np.float64),
            stack([op.inner for op in operands], np.float64),
            stack([op.border for op in operands], np.float64),
            stack([op.plane_ratio for op in operands], np.float64),
            *(stack([op.post[i] for op in operands], np.float32) for i in range(4)),
        )
        self.field_bits, self.row_words = field_layout(self.channels)
        self.unit = np.ones(1, dtype=_field_unit(self.field_bits))

    @staticmethod
    def chainable(layers) -> bool:
        """Whether ``layers`` can run as one chain: every operand of the same shape in every unit,
        and as many output as input channels."""
        first = layers[0][0]
        c = first.weights.shape[2]
        shapes = lambda op, t, b: (  # noqa: E731
            op.weights.shape,
            op.acc_coef.shape,
            op.ones_coef.shape,
            op.inner.shape,
            op.border.shape,
            op.plane_ratio.shape,
            np.shape(t),
            np.shape(b),
            tuple(a.shape for a in op.post),
        )
        return np.shape(layers[0][1])[1] == c and all(shapes(*u) == shapes(*layers[0]) for u in layers)

    def __len__(self) -> int:
        return int(self.arrays[0].shape[0])

    def run(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 -> the same shape, through every unit."""
        n, c, h, w = x.shape
        if c != self.channels:
            raise ValueError(f"the chain takes {self.channels} channels, not {c}")
        kernels = _kernels(self.planes * x.size)
        chain = _CHAINS[kernels]
        return chain(
            np.ascontiguousarray(x, np.float32),
            *self.arrays,
            w,
            self.field_bits,
            self.row_words,
            self.unit,
            _rows_per_task(n, h, w, kernels),
            _rows_per_block(n, h, w, kernels),
            _col_patterns(w, 1, w),
        )
