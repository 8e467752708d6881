"""The harmonics paper's study (sections 3.1-3.6, Figures 8 and 11) on simulated data: every
single-harmonic, data-, feature- and decision-level method per sensor and both multi-sensor rules,
mean ± std test accuracy over random stratified re-splits.

    .venv/bin/python benchmarks/harmonics_study.py                       # the reduced CPU run (defaults below)
    .venv/bin/python benchmarks/harmonics_study.py --resplits 100 --epochs 600          # the paper's protocol

Steps: simulate a harmonics store (``--preset``, ``--samples``; resumable: the store is finished,
not redone), run ``crackscope.engine.harmonics_protocol`` on it into ``--work``/study (finished
re-splits are skipped, so a killed benchmark resumes), then copy table.md, results.json and
confusion.png to benchmarks/results/harmonics_study/ with protocol.json (settings, whether it is the
full paper protocol, wall times, seconds per re-split, the projected time of the full 100 x 600 run,
hardware and CPU load).

Store: the tiny preset (12 x 9.6 µm plate, 2-19 cracks, nested layout), 480 samples by default, ~40 per label
(labels are drawn uniformly, so the counts vary); a 60/20/20 split then trains on ~289 samples.
Defaults: 10 re-splits x 100 epochs -- a reduced protocol; the full one is 100 x 600.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from crackscope.provenance import cpu_name, gpu_name, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "harmonics_study"
FULL_RESPLITS, FULL_EPOCHS = 100, 600


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--samples", type=int, default=480)
    p.add_argument("--store-seed", type=int, default=0)
    p.add_argument("--resplits", type=int, default=10)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sensors", default="a,b,c")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = the cores)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "harmonics_study", help="store and study directories")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--note", default="", help="free text stored in protocol.json (e.g. the load conditions)")
    args = p.parse_args(argv)

    import torch

    from crackscope.data.harmonics_store import generate_harmonics_store
    from crackscope.data.wavefield_store import limit_threads
    from crackscope.engine.harmonics_protocol import run_harmonics_study
    from crackscope.physics.harmonics_config import HarmonicsConfig

    limit_threads(args.threads)
    load_start = _load()
    utc_start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    store = args.work / f"harmonics-{args.preset}-{args.samples}-s{args.store_seed}.zarr"
    t0 = time.perf_counter()
    summary = generate_harmonics_store(
        store, HarmonicsConfig.preset(args.preset), args.samples, seed=args.store_seed, batch=8, log=print
    )
    t_store = time.perf_counter() - t0
    study_dir = args.work / f"study-{args.preset}-{args.samples}-e{args.epochs}-b{args.batch_size}-s{args.seed}"
    t1 = time.perf_counter()
    result = run_harmonics_study(
        store,
        study_dir,
        resplits=args.resplits,
        epochs=args.epochs,
        seed=args.seed,
        sensors=args.sensors,
        batch_size=args.batch_size,
        device=args.device,
        log=print,
    )
    t_study = time.perf_counter() - t1
    print(result["table"])

    args.results.mkdir(parents=True, exist_ok=True)
    for name in ("table.md", "results.json", "confusion.png"):
        shutil.copy(study_dir / name, args.results / name)
    per = result["seconds_per_resplit"]
    n_train = result["split_sizes"]["n_train"]
    # cost is proportional to training samples x epochs: project the paper's 100 x 600 on this store from
    # the median re-split (re-splits that shared the cores with other jobs are slower; the median ignores them)
    typical = per.get("median", per["mean"])
    projected = typical * (FULL_EPOCHS / args.epochs) * FULL_RESPLITS
    full = args.resplits >= FULL_RESPLITS and args.epochs >= FULL_EPOCHS
    previous = args.results / "protocol.json"
    calls = []
    if previous.exists():
        try:
            old = json.loads(previous.read_text())
            if old.get("study_dir") == str(study_dir):
                calls = old.get("calls", [])
        except (OSError, json.JSONDecodeError):
            pass
    calls.append(
        {
            "utc_start": utc_start,
            "utc_end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "resplits_run": result["ran_now"],
            "resplits_skipped": result["skipped"],
            "study_wall_s": round(t_study, 1),
            "store_wall_s": round(t_store, 1),
            "load_average_start": load_start,
            "load_average_end": _load(),
            "note": args.note,
        }
    )
    protocol = {
        "protocol": "full paper protocol (100 re-splits x 600 epochs)"
        if full
        else f"REDUCED: {args.resplits} re-splits x {args.epochs} epochs (the paper: {FULL_RESPLITS} x {FULL_EPOCHS})",
        "full": full,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "store": str(store),
        "store_label_counts": summary["label_counts"],
        "store_wall_s": round(t_store, 1),
        "study_dir": str(study_dir),
        "split_sizes": result["split_sizes"],
        "calls": calls,
        "study_wall_s_total": round(sum(c["study_wall_s"] for c in calls), 1),
        "seconds_per_resplit": per,
        "seconds_per_resplit_each": result["seconds_each"],
        "projected_full_protocol_s": round(projected, 0),
        "projected_full_protocol_h": round(projected / 3600, 2),
        "projection": f"median s/re-split x ({FULL_EPOCHS} / {args.epochs}) epochs x {FULL_RESPLITS} re-splits, "
        f"{n_train} training samples",
        "full_command": (
            f".venv/bin/python benchmarks/harmonics_study.py --preset {args.preset} --samples {args.samples} "
            f"--resplits {FULL_RESPLITS} --epochs {FULL_EPOCHS} --batch-size {args.batch_size} "
            f"--seed {args.seed}"
        ),
        "ordering": result["ordering"],
        "best": {k: result["best"][k] for k in ("group", "method", "mean")},
        "hardware": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cuda": gpu_name(),
            "device": args.device,
        },
    }
    write_results(args.results / "protocol", protocol)
    print(
        f"{protocol['protocol']}; median {typical:.1f} s per re-split; full protocol projected "
        f"{protocol['projected_full_protocol_h']} h; results: {args.results}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
