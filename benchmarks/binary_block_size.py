"""Blocking for the caches: the packed AOIE-Net's time against the convolution's block size.

A convolution work item is a block of about ``bitconv.BLOCK_PIXELS`` output pixels (whole rows of
the batch): its window words (planes x 3 row_words x pixels x 8 bytes: 48 KiB for a 16-channel
layer at 1,024 pixels, 144 KiB at 64 channels) are read once per output channel. A block that fits
the 48 KiB L1 data cache reads them from L1, a larger one from L2, with fewer blocks to set up.
This benchmark times the whole packed network (untrained AOIE-Net ResNet-20, NEU-CLS shape) at
each block size, the sizes alternating within each round, one thread.

    .venv/bin/python benchmarks/binary_block_size.py    # -> benchmarks/results/binary_block_size.{md,json}
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from crackscope import models
from crackscope.deploy import bitconv
from crackscope.deploy.packed import pack_model
from crackscope.provenance import cpu_name, git_commit, write_results

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = ((64, 1, 60), (64, 32, 10), (200, 1, 10), (200, 32, 3))  # side, batch, timed calls


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", default="256,512,1024,2048", help="BLOCK_PIXELS values")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "binary_block_size"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = models.create("aoie_net_resnet20", in_channels=1, classes=6).eval()
    packed = pack_model(model, {"kwargs": {"in_channels": 1, "classes": 6}})
    blocks = [int(b) for b in args.blocks.split(",")]
    default = bitconv.BLOCK_PIXELS
    times: dict[tuple, list] = {}
    try:
        with torch.no_grad():
            for _ in range(args.rounds):
                for side, batch, calls in SHAPES:
                    x = torch.rand(batch, 1, side, side, generator=torch.Generator().manual_seed(0))
                    for block in blocks:
                        bitconv.BLOCK_PIXELS = block
                        for _ in range(3):
                            packed(x)
                        t = []
                        for _ in range(calls):
                            t0 = time.perf_counter()
                            packed(x)
                            t.append(time.perf_counter() - t0)
                        times.setdefault((side, batch, block), []).append(1e3 * statistics.median(t))
    finally:
        bitconv.BLOCK_PIXELS = default
    rows = [
        {"side": s, "batch": b, "block_pixels": k, "ms_per_round": [round(v, 2) for v in ms]}
        for (s, b, k), ms in sorted(times.items())
    ]
    record = {
        "cpu": cpu_name(),
        "instruction_set": bitconv.instruction_set(),
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "default_block_pixels": default,
        "rows": rows,
    }
    lines = [
        "# Packed AOIE-Net against the convolution's block size",
        "",
        f"{record['cpu']}, {record['instruction_set']}, one thread, {record['date']}, commit {record['commit']};"
        f" median ms per call in each of {args.rounds} rounds (the block sizes alternate within a round);"
        f" the runtime's block: {default} pixels.",
        "",
        "| side | batch | " + " | ".join(f"{k} px" for k in blocks) + " |",
        "|---:|---:|" + "---:|" * len(blocks),
    ]
    for side, batch, _ in SHAPES:
        cells = [" / ".join(f"{v:.2f}" for v in times[(side, batch, k)]) for k in blocks]
        lines.append(f"| {side} | {batch} | " + " | ".join(cells) + " |")
    write_results(Path(args.out), record, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
