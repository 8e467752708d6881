"""Fewer popcounts by carry-save adders: does it pay in the packed kernel's inner loop?

The packed convolution's inner loop XORs the window words of each output pixel with a weight word
and counts the bits, one VPOPCNTQ per word. Carry-save adders (the Harley-Seal scheme) add three
words bit by bit into a sum and a carry word (x^y^z and the majority), so the count of three words
is popcount(sum) + 2 popcount(carry): 9 words (a 64-channel window) need 4 counts instead of 9, and
3 words (16 channels) need 2 instead of 3, for a few more logic instructions. This benchmark times
both loops in isolation, as the kernel runs them (one weight set per output channel, a block of
pixels, a float64 accumulate per pixel), on random words, and checks that they agree exactly.

    .venv/bin/python benchmarks/binary_popcount_csa.py     # -> benchmarks/results/binary_popcount_csa.{md,json}
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from crackscope.deploy import bitconv  # noqa: F401  (chooses numba's target: 512-bit vectors where offered)
from crackscope.deploy.bitconv import _popcount64 as pc
from crackscope.provenance import cpu_name, git_commit, write_results

RESULTS = Path(__file__).resolve().parent / "results"


def _loops():
    from numba import njit

    @njit(cache=False)
    def count9(win, wts, total, reps):
        s0, s1, s2, s3, s4, s5, s6, s7, s8 = win[0], win[1], win[2], win[3], win[4], win[5], win[6], win[7], win[8]
        for _ in range(reps):
            for o in range(wts.shape[0]):
                w0, w1, w2, w3, w4 = wts[o, 0], wts[o, 1], wts[o, 2], wts[o, 3], wts[o, 4]
                w5, w6, w7, w8 = wts[o, 5], wts[o, 6], wts[o, 7], wts[o, 8]
                for i in range(total.shape[0]):
                    b = (
                        pc(s0[i] ^ w0) + pc(s1[i] ^ w1) + pc(s2[i] ^ w2)
                        + pc(s3[i] ^ w3) + pc(s4[i] ^ w4) + pc(s5[i] ^ w5)
                        + pc(s6[i] ^ w6) + pc(s7[i] ^ w7) + pc(s8[i] ^ w8)
                    )  # fmt: skip
                    total[i] += 0.5 * np.float64(b)

    @njit(cache=False)
    def csa9(win, wts, total, reps):
        s0, s1, s2, s3, s4, s5, s6, s7, s8 = win[0], win[1], win[2], win[3], win[4], win[5], win[6], win[7], win[8]
        for _ in range(reps):
            for o in range(wts.shape[0]):
                w0, w1, w2, w3, w4 = wts[o, 0], wts[o, 1], wts[o, 2], wts[o, 3], wts[o, 4]
                w5, w6, w7, w8 = wts[o, 5], wts[o, 6], wts[o, 7], wts[o, 8]
                for i in range(total.shape[0]):
                    a, b, c = s0[i] ^ w0, s1[i] ^ w1, s2[i] ^ w2
                    u1, c1 = a ^ b ^ c, (a & b) | (c & (a | b))
                    a, b, c = s3[i] ^ w3, s4[i] ^ w4, s5[i] ^ w5
                    u2, c2 = a ^ b ^ c, (a & b) | (c & (a | b))
                    a, b, c = s6[i] ^ w6, s7[i] ^ w7, s8[i] ^ w8
                    u3, c3 = a ^ b ^ c, (a & b) | (c & (a | b))
                    ones, twos_a = u1 ^ u2 ^ u3, (u1 & u2) | (u3 & (u1 | u2))
                    twos_b, fours_a = c1 ^ c2 ^ c3, (c1 & c2) | (c3 & (c1 | c2))
                    twos, fours_b = twos_a ^ twos_b, twos_a & twos_b
                    fours, eights = fours_a ^ fours_b, fours_a & fours_b
                    n = pc(ones) + 2 * pc(twos) + 4 * pc(fours) + 8 * pc(eights)
                    total[i] += 0.5 * np.float64(n)

    @njit(cache=False)
    def count3(win, wts, total, reps):
        s0, s1, s2 = win[0], win[1], win[2]
        for _ in range(reps):
            for o in range(wts.shape[0]):
                w0, w1, w2 = wts[o, 0], wts[o, 1], wts[o, 2]
                for i in range(total.shape[0]):
                    total[i] += 0.5 * np.float64(pc(s0[i] ^ w0) + pc(s1[i] ^ w1) + pc(s2[i] ^ w2))

    @njit(cache=False)
    def csa3(win, wts, total, reps):
        s0, s1, s2 = win[0], win[1], win[2]
        for _ in range(reps):
            for o in range(wts.shape[0]):
                w0, w1, w2 = wts[o, 0], wts[o, 1], wts[o, 2]
                for i in range(total.shape[0]):
                    a, b, c = s0[i] ^ w0, s1[i] ^ w1, s2[i] ^ w2
                    total[i] += 0.5 * np.float64(pc(a ^ b ^ c) + 2 * pc((a & b) | (c & (a | b))))

    return {9: (count9, csa9), 3: (count3, csa3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", default="256,1024", help="block sizes (output pixels)")
    parser.add_argument("--channels", type=int, default=64, help="output channels (weight sets)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", default=str(RESULTS / "binary_popcount_csa"))
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    for words, (plain, csa) in _loops().items():
        for n in [int(p) for p in args.pixels.split(",")]:
            win = rng.integers(0, 2**63, size=(words, n), dtype=np.uint64)
            wts = rng.integers(0, 2**63, size=(args.channels, words), dtype=np.uint64)
            a, b = np.zeros(n), np.zeros(n)
            plain(win, wts, a, 1)
            csa(win, wts, b, 1)
            if not np.array_equal(a, b):
                raise SystemExit("the carry-save count differs from the plain count")
            for label, fn, counts in (("one count per word", plain, words), ("carry-save adders", csa, None)):
                best = min(_seconds(fn, win, wts, a, args.repeats) for _ in range(5))
                ns = 1e9 * best / (args.repeats * args.channels * n)
                rows.append(
                    {
                        "words": words,
                        "pixels": n,
                        "loop": label,
                        "popcounts_per_value": counts or {9: 4, 3: 2}[words],
                        "ns_per_value": round(ns, 4),
                    }
                )
                print(rows[-1], flush=True)
    record = {
        "cpu": cpu_name(),
        "instruction_set": bitconv.instruction_set(),
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "channels": args.channels,
        "rows": rows,
    }
    lines = [
        "# XOR + popcount: one count per word against carry-save adders",
        "",
        f"{record['cpu']}, {record['instruction_set']}, one thread, {record['date']}, commit {record['commit']};"
        f" {args.channels} output channels, best of 5 runs of {args.repeats} passes (ns per output value).",
        "",
        "| words per window | block pixels | loop | popcounts per value | ns per value |",
        "|---:|---:|---|---:|---:|",
        *(
            f"| {r['words']} | {r['pixels']} | {r['loop']} | {r['popcounts_per_value']} | {r['ns_per_value']:.3f} |"
            for r in rows
        ),
        "",
    ]
    write_results(Path(args.out), record, "\n".join(lines), rows)
    return 0


def _seconds(fn, win, wts, total, repeats: int) -> float:
    t0 = time.perf_counter()
    fn(win, wts, total, repeats)
    return time.perf_counter() - t0


if __name__ == "__main__":
    raise SystemExit(main())
