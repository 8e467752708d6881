"""Complexity of the binary classifiers (AOIE-Net and its baselines) as the paper's tables count it.

For every ResNet-20 family (and the Table 1 ablation rows) at the two inputs the paper uses --
NEU-CLS (1 x 200 x 200 grey, 6 classes) and CIFAR-10 (3 x 32 x 32, 10 classes) -- and for the
ResNet-18 families at ImageNet size (3 x 224 x 224, 1000 classes): parameters (binary / real),
FLOPs, BOPs, equivalent FLOPs = FLOPs + BOPs / 64 and memory in Mbit (binary weights 1 bit, real
ones 32 bit), from ``crackscope.models.binary.complexity`` (forward hooks; conventions in its
docstring). AOIE-Net's merged two-bit-plane input is counted both ways (``merged_planes`` 2 and 1).

    .venv/bin/python benchmarks/binary_complexity.py [--out STEM]   # -> benchmarks/results/binary_complexity.{md,json}

Counting is deterministic (no timing); it takes a few seconds on a CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from crackscope import models
from crackscope.models.binary import TABLE1_ROWS
from crackscope.models.binary.complexity import complexity
from crackscope.provenance import write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FAMILIES = ("resnet", "bnn", "xnor", "reactnet", "fracbnn", "adabin", "ienet", "aoie_net")
INPUTS = {
    "NEU-CLS (1 x 200 x 200, 6 classes)": (20, 1, 200, 6),
    "CIFAR-10 (3 x 32 x 32, 10 classes)": (20, 3, 32, 10),
    "ImageNet (3 x 224 x 224, 1000 classes)": (18, 3, 224, 1000),
}


def _name(family: str, depth: int) -> str:
    return f"resnet{depth}" if family == "resnet" else f"{family}_resnet{depth}"


def _row(label: str, model, size: int, merged_planes: int = 2) -> dict:
    c = complexity(model, size, merged_planes=merged_planes)
    return {
        "model": label,
        "params": c.params_total,
        "params_binary": c.params_binary,
        "params_real": c.params_real,
        "flops": c.flops,
        "bops": c.bops,
        "flops_equiv": c.flops_equiv,
        "memory_mbit": c.memory_mbit,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=RESULTS / "binary_complexity", help="writes OUT.md and OUT.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    tables: dict[str, list[dict]] = {}
    for title, (depth, channels, size, classes) in INPUTS.items():
        rows = []
        for family in FAMILIES:
            model = models.create(_name(family, depth), in_channels=channels, classes=classes).eval()
            rows.append(_row(_name(family, depth), model, size))
            if family == "aoie_net":
                rows.append(_row(f"{_name(family, depth)} (merged input as one plane)", model, size, merged_planes=1))
        if depth == 20:
            for row, flags in TABLE1_ROWS.items():
                model = models.create("aoie_ablation_resnet20", in_channels=channels, classes=classes, **flags).eval()
                rows.append(_row(f"Table 1: {row}", model, size))
        tables[title] = rows
    lines = [
        "# Complexity of the binary classifiers",
        "",
        "Counted by `benchmarks/binary_complexity.py` (forward hooks, `crackscope.models.binary.complexity`):",
        "conv and linear layers only, one MAC = one operation; BOPs are the MACs of binary convolutions",
        "(binary weights on binary input); equivalent FLOPs = FLOPs + BOPs / 64; memory = binary weights",
        "x 1 bit + real parameters x 32 bit (1 Mbit = 10^6 bits).",
        "",
    ]
    for title, rows in tables.items():
        lines += [
            f"## {title}",
            "",
            "| model | parameters | binary | real | FLOPs (M) | BOPs (M) | equiv. FLOPs (M) | Mbit |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['model']} | {r['params']:,} | {r['params_binary']:,} | {r['params_real']:,} | "
                f"{r['flops'] / 1e6:.2f} | {r['bops'] / 1e6:.1f} | {r['flops_equiv'] / 1e6:.2f} | "
                f"{r['memory_mbit']:.3f} |"
            )
        lines.append("")
    write_results(args.out, tables, "\n".join(lines), indent=1)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
