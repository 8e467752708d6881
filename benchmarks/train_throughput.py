"""Training throughput (forward + backward + Adam step, samples/s) of every wave-field model.

    .venv/bin/python benchmarks/train_throughput.py [--device cuda] [--n-time 2000 250] [--batch 16]

Random inputs of the store layout (B, 2, T, 81) and random 36x36 masks; each model is warmed up,
then timed over --steps steps. Writes benchmarks/results/train_throughput.json. Run it on an idle
machine: the JSON records the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from crackscope import losses, models
from crackscope.io import atomic_write_text
from crackscope.provenance import cpu_name

OUT = Path(__file__).resolve().parent / "results" / "train_throughput.json"
MODELS = ["micro_crack_attention_next", "spase_net", "densenet1d", "simple_cnn", "resnet18_1d2d"]


def measure(name: str, n_time: int, batch: int, steps: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = models.create(name, n_time=n_time).to(device)
    loss_fn = losses.create(model.default_loss)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 2, n_time, 81, device=device)
    y = (torch.rand(batch, 1, 36, 36, device=device) < 0.05).float()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {
        "model": name,
        "n_time": n_time,
        "batch": batch,
        "steps": steps,
        "seconds": seconds,
        "samples_per_s": batch * steps / seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--n-time", type=int, nargs="+", default=[2000, 250])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here; nothing measured")
        return 0
    load_before = os.getloadavg()
    rows = [measure(m, t, args.batch, args.steps, device) for t in args.n_time for m in MODELS]
    report = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else f"{cpu_name()} CPU",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "rows": rows,
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print("| model | T | parameters | train samples/s |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['n_time']} | {r['parameters']:,} | {r['samples_per_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
