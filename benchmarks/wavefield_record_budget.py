"""Equal wall time for the record study (configs/wavefield/record_small_grid.yaml): what one plate
costs to simulate, to train on and to validate, at T = 250 and T = 1000, and how many fresh plates
per epoch give a streamed run the wall time of the store run.

    .venv/bin/python benchmarks/wavefield_record_budget.py [--threads 1] [--batches 6]

The store run trains on N plates of a store for E epochs and validates on V plates after each;
its cost is the simulation of its N training plates (the validation plates are common to every
row) plus E * N training steps plus E * V validation passes. A streamed run at record length T
simulates and trains on P fresh plates per epoch, so it costs E * P * (simulate_T + step_T) +
E * V * validate_T. Equal cost gives

    P_T = (N * simulate_250 + E * N * step_250 + E * V * (validate_250 - validate_T)) / (E * (simulate_T + step_T))

Each cost is the median over ``--repeats`` timings of ``--batches`` batches of 16 plates, one
torch and one numba thread, as the study's runs use. Writes
benchmarks/results/wavefield_record_budget.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def plate_costs(config: Path, store: Path, batches: int, repeats: int) -> dict:
    """Seconds per plate: simulating it, one training step on it, one validation pass on it."""
    import torch

    from crackscope.data.wavefield_stream import StreamedWavefieldBatches
    from crackscope.engine.config import load_train_config
    from crackscope.engine.runs import build_loss, build_model
    from crackscope.engine.wavefield import store_geometry

    cfg = load_train_config(config, [f"data.store={store}"])
    torch.manual_seed(0)
    model = build_model(cfg, store_geometry(store))
    loss_fn = build_loss(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optimizer.lr)
    stream = StreamedWavefieldBatches(
        store,
        batches * cfg.data.batch_size,
        cfg.data.batch_size,
        subtract_reference=cfg.data.subtract_reference,
        normalize=cfg.data.normalize,
        mirror=cfg.data.augment,
        seed=0,
    )
    simulate, step, validate = [], [], []
    plates = batches * cfg.data.batch_size
    for repeat in range(repeats + 1):  # the first round warms up (numba compile, allocator)
        stream.set_epoch(repeat)
        t0 = time.perf_counter()
        items = [stream[k] for k in range(batches)]
        t1 = time.perf_counter()
        model.train()
        for x, mask, _ in items:
            optimizer.zero_grad()
            loss_fn(model(x), mask).backward()
            optimizer.step()
        t2 = time.perf_counter()
        model.eval()
        with torch.no_grad():
            for x, mask, _ in items:
                loss_fn(model(x), mask)
        t3 = time.perf_counter()
        if repeat:
            simulate.append((t1 - t0) / plates)
            step.append((t2 - t1) / plates)
            validate.append((t3 - t2) / plates)
    return {
        "n_time": int(store_geometry(store)["n_time"]),
        "simulate_s": statistics.median(simulate),
        "step_s": statistics.median(step),
        "validate_s": statistics.median(validate),
    }


def fresh_plates(costs: dict, t: str, store_plates: int, epochs: int, val_plates: int) -> int:
    """P_T of the module docstring, rounded down to whole batches of 16."""
    base = costs["250"]
    store_run = store_plates * base["simulate_s"] + epochs * store_plates * base["step_s"]
    store_run += epochs * val_plates * (base["validate_s"] - costs[t]["validate_s"])
    per_plate = epochs * (costs[t]["simulate_s"] + costs[t]["step_s"])
    return int(store_run / per_plate) // 16 * 16


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "wavefield" / "mcan_rc_small.yaml")
    p.add_argument("--store250", type=Path, default=ROOT / "data" / "wavefield-small-t250-4k.zarr")
    p.add_argument("--store1000", type=Path, default=ROOT / "data" / "wavefield-small-t1000-4k.zarr")
    p.add_argument("--store-plates", type=int, default=2000, help="N: the store run's training plates")
    p.add_argument("--epochs", type=int, default=4, help="E")
    p.add_argument("--val-plates", type=int, default=1000, help="V")
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "wavefield_record_budget")
    args = p.parse_args(argv)
    from crackscope.data.wavefield_store import open_store

    for store in (args.store250, args.store1000):  # one line naming a missing store (made as in record_small_grid.yaml)
        open_store(store)
    import numba
    import torch

    from crackscope.provenance import cpu_name, write_results

    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    costs = {
        "250": plate_costs(args.config, args.store250, args.batches, args.repeats),
        "1000": plate_costs(args.config, args.store1000, args.batches, args.repeats),
    }
    budget = {t: fresh_plates(costs, t, args.store_plates, args.epochs, args.val_plates) for t in costs}
    result = {
        "protocol": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "hardware": f"{cpu_name()}, {args.threads} torch / numba thread(s)",
        "seconds_per_plate": costs,
        "fresh_plates_per_epoch": budget,
    }
    lines = [
        "# Equal wall time for the record study",
        "",
        f"{result['hardware']}; `{args.config.name}`; batches of 16 plates, median of {args.repeats}.",
        "",
        "| T | simulate [ms/plate] | train step [ms/plate] | validate [ms/plate] | fresh plates per epoch at the "
        f"wall time of {args.store_plates:,} store plates x {args.epochs} epochs |",
        "|---:|---:|---:|---:|---:|",
    ]
    for t, c in costs.items():
        lines.append(
            f"| {t} | {1e3 * c['simulate_s']:.1f} | {1e3 * c['step_s']:.1f} | {1e3 * c['validate_s']:.1f} | "
            f"{budget[t]:,} |"
        )
    write_results(args.out, result, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    from crackscope.errors import exit_code_of

    sys.exit(exit_code_of(main))
