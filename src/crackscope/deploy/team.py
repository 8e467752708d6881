"""One pass of a packed network on several threads, the work items claimed, not assigned.

numba's parallel loops start their threads for every layer (two loops a unit: packing, then the
convolution) and give each thread a fixed share of the loop's items; the caller waits at the end of
each loop for the slowest thread. On a small input (64 x 64 px, batch 1: 20-80 µs a loop) that
costs about what the second thread saves, and on a host that lends its second vCPU unevenly, a
fixed share waits for it (``docs/binary.md``).

Here every thread that takes part runs the whole pass, phase after phase, in one compiled call:
phase 0 computes the stem's rows (when the stem is compiled, :func:`~crackscope.deploy.float_layers.stem_rows`)
and packs them as the first unit's input; phase k + 1 runs unit k's convolution block by block of whole
output rows, and packs each block for unit k + 1 (and copies its option-A shortcut) while it is in
cache: packing is row by row, so it needs no phase of its own. A thread takes a phase's items from
a shared counter (an atomic compare-and-swap): the caller's thread from the head of the map, the
helpers from its tail, so each keeps the same rows layer after layer until the ends meet. A thread
that finds no item left waits, spinning, until the phase's items are all done, then goes on.

The caller's thread takes part from the start; a helper joins when the operating system runs it.
Nothing waits for an item that no running thread has taken, so the caller alone, or with a helper
that never comes, still finishes the pass. The helpers are threads of the plan that stay in compiled
code between passes: they spin for about a millisecond after a pass (a pass that follows at once
starts on both threads, with no wake-up), then sleep, and end after :data:`IDLE_SECONDS`. The
items are those of the serial kernels (:func:`~crackscope.deploy.bitconv._pack_image_rows`,
:func:`~crackscope.deploy.bitconv._conv_task`), so the values are the serial pass's, bit for bit.
"""

from __future__ import annotations

import os
import threading

import numpy as np
from llvmlite import ir
from numba import literal_unroll, njit, types
from numba.experimental import structref
from numba.extending import intrinsic

from crackscope.deploy import bitconv, float_layers

__all__ = ["TeamPlan"]


@intrinsic
def _fetch_add(typingctx, array, index):
    """``array[index] += 1`` as one atomic instruction (sequentially consistent) on an int64 array;
    returns the value before."""
    sig = types.int64(array, index)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.atomic_rmw("add", builder.gep(data, [args[1]]), ir.Constant(ir.IntType(64), 1), "seq_cst")

    return sig, codegen


@intrinsic
def _load_acquire(typingctx, array, index):
    """``array[index]`` read as an atomic load with acquire order: every write made before the
    matching atomic add of another thread is visible after it (and the load is not hoisted out of a
    loop)."""
    sig = types.int64(array, index)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.load_atomic(builder.gep(data, [args[1]]), "acquire", 8)

    return sig, codegen


@intrinsic
def _compare_exchange(typingctx, array, index, expected, value):
    """Atomically: if ``array[index] == expected``, set it to ``value`` (sequentially consistent);
    True if it did."""
    sig = types.boolean(array, index, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        pair = builder.cmpxchg(builder.gep(data, [args[1]]), args[2], args[3], "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)

    return sig, codegen


@njit(nogil=True, cache=True)
def _claim(counters, base, from_head) -> int:
    """Take a work item of the phase whose counters start at ``base``: the first one left
    (``from_head``: the caller's thread) or the last one left (a helper), or -1 when none is left.
    Items left are ``head .. tail - 1``, both ends in one word (head << 32 | tail), so each thread
    keeps to its own end of the map (the same rows, layer after layer, stay in its cache) until the
    ends meet."""
    while True:
        word = _load_acquire(counters, base)
        head, tail = word >> 32, word & 0xFFFFFFFF
        if head >= tail:
            return -1
        if from_head:
            if _compare_exchange(counters, base, word, ((head + 1) << 32) | tail):
                return head
        elif _compare_exchange(counters, base, word, (head << 32) | (tail - 1)):
            return tail - 1


# counters: [0] an error flag (a thread failed: the others stop waiting), then per phase p three
# int64 at 1 + 3p: the items left (head << 32 | tail, see _claim), items done, items in all
_ERROR = 0


@njit(nogil=True, cache=True)
def _wait_done(counters, phase) -> bool:
    """Spin until every item of ``phase`` is done (True), or a thread failed (False)."""
    if phase < 0:
        return True
    base = 1 + 3 * phase
    total = counters[base + 2]
    while _load_acquire(counters, base + 1) < total:
        if _load_acquire(counters, _ERROR) != 0:
            return False
    return True


@njit(nogil=True, cache=True)
def _prepare_rows(b, y0, rows, x, thresholds, below, stride, field_bits, unit, bits, triples, front, residual):
    """What a unit needs of rows ``y0 .. y0 + rows - 1`` of image ``b`` of its input ``x``
    (N, C, H, W): their packed words in ``triples``, and with an option-A shortcut (``front`` >= 0)
    their share of ``residual`` (N, C_out, H_out * W_out): every ``stride``-th row and column, into
    channels ``front`` on. Row by row, so any thread may do any rows."""
    bitconv._pack_image_rows(b, y0, rows, x, thresholds, below, stride, field_bits, unit, bits, triples)
    if front < 0:
        return
    c = x.shape[1]
    w_res = triples.shape[4]
    for y in range(y0, y0 + rows):
        if y % stride != 0:
            continue
        row = (y // stride) * w_res
        for ch in range(c):
            src, dst = x[b, ch, y], residual[b, front + ch]
            for ox in range(w_res):
                dst[row + ox] = src[ox * stride]


@njit(nogil=True, cache=True)
def _team_first(
    counters,
    from_head,
    rows_per_task,
    x,
    stem,
    thresholds,
    below,
    stride,
    field_bits,
    unit,
    bits,
    triples,
    front,
    residual,
):
    """This thread's share of phase 0, ``rows_per_task`` rows of one image per work item: the stem's
    output rows into ``x`` when ``stem`` (has_stem, padded input, weight, bias) has one
    (:func:`~crackscope.deploy.float_layers.stem_rows`), then those rows prepared as the first
    unit's input (:func:`_prepare_rows`)."""
    has_stem, padded, stem_weight, stem_bias = stem
    h = x.shape[2]
    blocks = (h + rows_per_task - 1) // rows_per_task
    while True:
        t = _claim(counters, 1, from_head)
        if t < 0:
            break
        b, y0 = t // blocks, (t % blocks) * rows_per_task
        rows = min(rows_per_task, h - y0)
        if has_stem:
            float_layers.stem_rows(padded, stem_weight, stem_bias, b, y0, rows, x)
        _prepare_rows(b, y0, rows, x, thresholds, below, stride, field_bits, unit, bits, triples, front, residual)
        _fetch_add(counters, 2)


@njit(nogil=True, cache=True)
def _team_unit(
    counters,
    from_head,
    phase,
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
    post_pos,
    post_neg,
    post_pre,
    post_shift,
    border_map,
    out,
    has_next,
    next_thresholds,
    next_below,
    next_stride,
    next_field_bits,
    next_unit,
    next_bits,
    next_triples,
    next_front,
    next_residual,
) -> bool:
    """This thread's share of phase ``phase`` (after waiting for phase ``phase - 1``): one binary
    unit's ``post(conv + residual)`` into ``out`` (N, C_out, H_out * W_out), block by block of whole
    output rows, each block then prepared for the next unit (``has_next``: its packed words and
    option-A shortcut, :func:`_prepare_rows`) while it is in cache. False if a thread failed."""
    if not _wait_done(counters, phase - 1):
        return False
    planes, n, row_words, rows_in, w_out = triples.shape
    flat = triples.reshape(planes, n, row_words, rows_in * w_out)
    c_out = out.shape[1]
    image = out.reshape(n, c_out, h_out, w_out)
    all_rows = n * h_out
    base = 1 + 3 * phase
    while True:
        t = _claim(counters, base, from_head)
        if t < 0:
            break
        bitconv._conv_task(
            t,
            flat,
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
            True,
            post_pos,
            post_neg,
            post_pre,
            post_shift,
            border_map,
            out,
        )
        if has_next:
            g0 = t * rows_per_block
            g1 = min(g0 + rows_per_block, all_rows)
            g = g0
            while g < g1:  # per run of rows of one image
                b, oy = g // h_out, g % h_out
                seg = min(g1 - g, h_out - oy)
                _prepare_rows(
                    b,
                    oy,
                    seg,
                    image,
                    next_thresholds,
                    next_below,
                    next_stride,
                    next_field_bits,
                    next_unit,
                    next_bits,
                    next_triples,
                    next_front,
                    next_residual,
                )
                g += seg
        _fetch_add(counters, base + 1)
    return True


class _Unit:
    """One binary unit's operands and buffers in a :class:`TeamPlan`."""

    def __init__(self, operands, thresholds, below, stride, shape, threads, out, front=-1, c_res=None):
        n, c, h, w = shape
        field_bits, row_words = bitconv.field_layout(c)
        self.unit = np.ones(1, dtype=bitconv._field_unit(field_bits))
        planes = np.shape(thresholds)[0]
        h_out, w_out = (h - 1) // stride + 1, (w - 1) // stride + 1
        c_out = operands.weights.shape[2]
        self.shape_out = (n, c_out, h_out, w_out)
        # work items as the parallel kernels cut them, at least one per thread
        self.rows_per_task = bitconv.task_rows(n, h, w, threads)
        self.rows_per_block = bitconv.block_rows(n, h_out, w_out, threads)
        self.packs = n * -(-h // self.rows_per_task)
        self.convs = -(-(n * h_out) // self.rows_per_block)
        self.out = out  # (N, C_out, H_out * W_out) float32
        self.front = front
        # option A: its zero channels stay zero, only the copied ones are written; identity: the
        # input itself, bound per pass
        self.residual = np.zeros((n, c_res, h_out * w_out), np.float32) if front >= 0 else None
        self.thresholds = np.ascontiguousarray(thresholds, np.float32)
        self.below = np.ascontiguousarray(below, np.bool_)
        self.stride, self.field_bits, self.bits = stride, field_bits, _unit_bits(self.unit.dtype)
        self.triples = np.zeros((planes, n, row_words, h + 2, w_out), np.uint64)  # the padding rows stay 0
        col_valid = bitconv._col_patterns(w, stride, w_out)
        self.conv_args = (
            operands.weights,
            operands.acc_coef,
            operands.ones_coef,
            operands.inner,
            operands.border,
            operands.plane_ratio,
            stride,
            h,
            h_out,
            col_valid,
            self.rows_per_block,
        )
        self.post = operands.post
        self.border_map = bitconv._border_map(operands.border, stride, h, h_out, col_valid, self.rows_per_block, n)

    def prepare_args(self) -> tuple:
        """What :func:`_prepare_rows` takes after the unit's input."""
        residual = self.residual if self.residual is not None else _NO_RESIDUAL
        return (
            self.thresholds,
            self.below,
            self.stride,
            self.field_bits,
            self.unit,
            self.bits,
            self.triples,
            self.front,
            residual,
        )

    def residual_for(self, x: np.ndarray) -> np.ndarray:
        return self.residual if self.residual is not None else x.reshape(self.shape_out[0], self.shape_out[1], -1)


_NO_RESIDUAL = np.zeros((1, 1, 1), np.float32)
# no stem in the team (the caller fills its output): arguments of the same types as a stem's
_NO_STEM = (False, np.zeros((1, 1, 1, 1), np.float32), np.zeros((1, 1, 3, 3), np.float32), np.zeros(1, np.float32))
_NO_NEXT = (
    np.zeros((1, 1), np.float32),
    np.zeros((1, 1), np.bool_),
    1,
    64,
    np.ones(1, np.uint64),
    np.ones(64, np.uint64),
    np.zeros((1, 1, 1, 1, 1), np.uint64),
    -1,
    _NO_RESIDUAL,
)


def _unit_bits(dtype) -> np.ndarray:
    """bits[k] = 1 << k in ``dtype``, as :func:`~crackscope.deploy.bitconv._unit_bits` makes them
    inside the kernels. Made in NumPy: a cached numba function that returns an array of a dtype
    taken from its argument fails in the next process ("'descr' is NULL")."""
    return np.array([1 << k for k in range(8 * np.dtype(dtype).itemsize)], dtype=dtype)


# the control words of a plan (int64): the number of the pass posted, of the pass closed (its
# helpers may no longer join it), then per helper slot the pass it joined and the pass it left
_POSTED, _CLOSED, _SLOTS = 0, 1, 2


@njit(nogil=True, cache=True)
def _store(array, index, value):
    """``array[index] = value`` as an atomic exchange (a full barrier on x86)."""
    _exchange(array, index, value)


@intrinsic
def _exchange(typingctx, array, index, value):
    """Atomic ``array[index] = value`` (sequentially consistent) on an int64 array; returns the value
    before."""
    sig = types.int64(array, index, types.int64)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.atomic_rmw("xchg", builder.gep(data, [args[1]]), args[2], "seq_cst")

    return sig, codegen


@njit(nogil=True, cache=True)
def _run_pass(counters, from_head, x, first_rows, stem, first_args, units_args) -> bool:
    """Every phase of a pass, this thread's share (:func:`_team_first`, then :func:`_team_unit` for
    each unit); False if a thread failed."""
    _team_first(counters, from_head, first_rows, x, stem, *first_args)
    phase = 1
    for args in literal_unroll(units_args):
        if not _team_unit(counters, from_head, phase, *args):
            return False
        phase += 1
    return True


@structref.register
class _PassArgsType(types.StructRef):
    """numba's type of :class:`_PassArgs` (one per kind of network: the fields' types)."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class _PassArgs(structref.StructRefProxy):
    """A plan's arguments of :func:`_run_pass` (the first unit's input ``x``, ``first_rows``, the
    ``stem``, ``first_args`` and ``units_args``: about 500 arrays and numbers for AOIE-Net
    ResNet-20), converted to numba's values once, when the plan is made. A call that takes the
    tuples themselves converts every array again (numba wraps each in a new reference count): 32-40
    µs a call at 64 px, during which the helper had done the whole first phase alone; this object
    crosses into compiled code as one pointer."""


structref.define_proxy(_PassArgs, _PassArgsType, ["x", "first_rows", "stem", "first_args", "units_args"])


@njit(cache=True)
def _pass_args(x, first_rows, stem, first_args, units_args):
    return _PassArgs(x, first_rows, stem, first_args, units_args)


@njit(nogil=True, cache=True)
def _take_part(control, slot, last, spin, from_head, counters, args):
    """A thread's part in the passes of a plan, in compiled code: wait (spinning) for a pass after
    ``last`` to be posted, join it unless it is closed, take work items (from the head of each map
    if ``from_head``) until none is left, and again; returns the last pass seen after ``spin`` empty
    polls in a row (about a millisecond per million). A helper thread lives in it; the caller's
    thread runs it with ``spin`` 0 for the pass it posted (one compiled entry point for both). ``args``
    is the plan's :class:`_PassArgs`."""
    joined, left = _SLOTS + 2 * slot, _SLOTS + 2 * slot + 1
    polls = 0
    while True:
        posted = _load_acquire(control, _POSTED)
        if posted <= last:
            polls += 1
            if polls >= spin:
                return last
            continue
        polls, last = 0, posted
        _store(control, joined, posted)
        if _load_acquire(control, _CLOSED) < posted:  # (else the caller finished it alone)
            _run_pass(counters, from_head, args.x, args.first_rows, args.stem, args.first_args, args.units_args)
        _store(control, left, posted)


@njit(nogil=True, cache=True)
def _close(control, posted, helpers):
    """Close pass ``posted`` (a helper that has not joined it yet will not) and wait for every helper
    that joined it to leave: afterwards no helper touches the plan's buffers or counters."""
    _store(control, _CLOSED, posted)
    for slot in range(helpers):
        if _load_acquire(control, _SLOTS + 2 * slot) == posted:
            while _load_acquire(control, _SLOTS + 2 * slot + 1) != posted:
                pass


@njit(nogil=True, cache=True)
def _post(control, counters, totals, posted):
    """The caller's side of posting pass ``posted``: every phase's counters reset (head 0, tail and
    total its item count, nothing done, no error), then the pass number published (an atomic
    store: the helpers see the counters, and the input written before, first)."""
    counters[0] = 0
    for p in range(totals.shape[0]):
        base = 1 + 3 * p
        counters[base] = totals[p]
        counters[base + 1] = 0
        counters[base + 2] = totals[p]
    _store(control, _POSTED, posted)


SPIN_POLLS = 1_000_000  # empty polls before an idle helper thread sleeps (about a millisecond here)
IDLE_SECONDS = 30.0  # a helper that sleeps this long ends; the next pass starts a new one


class TeamPlan:
    """A packed network's units for one input shape, ready to run as a team: their operands, the
    work items of each phase, buffers for the input, every unit's packed input and output, made once
    and reused by every pass of that shape (one pass at a time: :meth:`run` holds the plan's lock),
    and ``threads - 1`` helper threads that wait for the passes (started by the first pass; each
    spins for about a millisecond after a pass, then sleeps, and ends after :data:`IDLE_SECONDS`).
    ``units`` are the network's binary units in order, as ``(ConvOperands, thresholds, below,
    stride, shortcut)``, the shortcut ``None`` (identity) or ``(front, channels)`` (option A).
    ``shape`` is the first unit's input (the stem's output). With ``stem`` (weight, bias, padding;
    :func:`~crackscope.deploy.float_layers.stem_rows`) and the network's ``input_shape``,
    the team computes the stem too, in phase 0, and a pass's ``fill`` writes the network's input;
    else ``fill`` writes the stem's output."""

    def __init__(self, units, shape, threads: int, stem: tuple | None = None, input_shape: tuple | None = None):
        self.x = np.zeros(shape, np.float32)
        if stem is not None:
            weight, bias, pad = stem
            n, c_in, h_in, w_in = input_shape
            padded = np.zeros((n, c_in, h_in + 2 * pad, w_in + 2 * pad), np.float32)  # the border stays 0
            self.input = padded[:, :, pad : pad + h_in, pad : pad + w_in]
            self.stem_args = (True, padded, weight, bias)
        else:
            self.input = self.x
            self.stem_args = _NO_STEM
        self.units, outputs = [], {}
        for i, (operands, thresholds, below, stride, shortcut) in enumerate(units):
            n, c, h, w = shape
            c_out = operands.weights.shape[2]
            shape = (n, c_out, (h - 1) // stride + 1, (w - 1) // stride + 1)
            # two output buffers per shape, used in turn: a unit's input is never its output, and the
            # phases' order keeps an output until the unit after next overwrites it
            out = outputs.setdefault((shape, i % 2), np.empty((n, c_out, shape[2] * shape[3]), np.float32))
            front, c_res = shortcut if shortcut is not None else (-1, None)
            self.units.append(_Unit(operands, thresholds, below, stride, (n, c, h, w), threads, out, front, c_res))
        self.shape_out = shape
        # phase 0 prepares the first unit's input; phase k + 1 runs unit k and prepares unit k + 1's
        self.totals = np.array([self.units[0].packs] + [unit.convs for unit in self.units], np.int64)
        self.counters = np.zeros(1 + 3 * len(self.totals), np.int64)
        self.first_rows = self.units[0].rows_per_task
        self.first_args = self.units[0].prepare_args()
        args, z = [], self.x
        for k, unit in enumerate(self.units):
            nxt = self.units[k + 1] if k + 1 < len(self.units) else None
            args.append(
                (
                    unit.triples,
                    *unit.conv_args,
                    unit.residual_for(z),
                    *unit.post,
                    unit.border_map,
                    unit.out,
                    nxt is not None,
                    *(nxt.prepare_args() if nxt is not None else _NO_NEXT),
                )
            )
            z = unit.out.reshape(unit.shape_out)
        self.units_args = tuple(args)
        self.pass_args = _pass_args(self.x, self.first_rows, self.stem_args, self.first_args, self.units_args)
        self.helpers = threads - 1
        self.control = np.zeros(_SLOTS + 2 * (self.helpers + 1), np.int64)  # the helpers' slots, then the caller's
        self.posted = 0
        self.lock = threading.Lock()
        self.threads: list = [None] * self.helpers  # each helper's thread while it lives
        self.wake = [threading.Event() for _ in range(self.helpers)]
        self.sleeping = [False] * self.helpers
        self.failure: BaseException | None = None
        self.pid = os.getpid()

    def run(self, fill, finish):
        """A pass: ``fill(x)`` writes the input into the plan's buffer x (float32: the network's input
        with a compiled stem, else the stem's output), the caller's thread and the helpers take the
        work items -> ``finish(z)`` of the last unit's output z (N, C, H, W), the serial pass's
        values; z is the plan's buffer, valid only during the call."""
        with self.lock:
            if self.failure is not None:
                raise RuntimeError("a helper thread of the packed network failed") from self.failure
            fill(self.input)  # (no helper reads it between passes)
            self.posted += 1
            _post(self.control, self.counters, self.totals, self.posted)
            self._rouse_helpers()
            try:
                _take_part(
                    self.control,
                    self.helpers,  # the caller's own slot
                    self.posted - 1,
                    0,
                    True,
                    self.counters,
                    self.pass_args,
                )
                done = _wait_done(self.counters, len(self.totals) - 1)
            finally:
                _close(self.control, self.posted, self.helpers)
            if not done:
                raise RuntimeError("a helper thread of the packed network failed") from self.failure
            return finish(self.units[-1].out.reshape(self.shape_out))

    def _rouse_helpers(self) -> None:
        """Start the helpers that are not alive, wake those that sleep (under the GIL, as they decide
        to sleep). In a forked child the parent's helpers do not exist: it starts its own."""
        if self.pid != os.getpid():
            self.pid = os.getpid()
            self.threads = [None] * self.helpers
            self.wake = [threading.Event() for _ in range(self.helpers)]
            self.sleeping = [False] * self.helpers
        for slot in range(self.helpers):
            if self.threads[slot] is None:
                thread = threading.Thread(
                    target=self._helper, args=(slot, self.posted - 1), name=f"crackscope-team-{slot}", daemon=True
                )
                self.threads[slot] = thread
                thread.start()
            elif self.sleeping[slot]:
                self.wake[slot].set()

    def _helper(self, slot: int, last: int) -> None:
        try:
            while True:
                last = _take_part(
                    self.control,
                    slot,
                    last,
                    SPIN_POLLS,
                    False,
                    self.counters,
                    self.pass_args,
                )
                # idle: sleep until a pass is posted (the poster wakes a sleeping helper), or end
                self.sleeping[slot] = True
                if self.control[_POSTED] > last:  # posted while it decided to sleep
                    self.sleeping[slot] = False
                    continue
                woken = self.wake[slot].wait(IDLE_SECONDS)
                self.wake[slot].clear()
                self.sleeping[slot] = False
                if not woken:
                    self.threads[slot] = None
                    return
        except BaseException as error:  # noqa: BLE001  (the next pass reports it)
            self.failure = error
            self.counters[_ERROR] = 1
            self.threads[slot] = None
