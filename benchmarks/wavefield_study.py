"""The MicroCrackAttentionNeXt study: the paper's Table 1 (4 activations x 4 losses) and the
comparison with its four predecessors, on one simulated dataset.

    .venv/bin/python benchmarks/wavefield_study.py                      # the reduced CPU protocol below
    .venv/bin/python benchmarks/wavefield_study.py --preset paper --samples 2000 --epochs 50   # the paper's scale

Steps: simulate the store (resumable), run configs/wavefield/activation_loss_grid.yaml and
configs/wavefield/model_comparison_grid.yaml on it with the given epochs (finished runs are
skipped, so a killed study resumes), then copy both tables and CSVs to
benchmarks/results/wavefield_study/ with a JSON of the protocol and hardware.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from crackscope.provenance import cpu_name, gpu_name, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "wavefield_study"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="small")
    p.add_argument("--n-time", type=int, default=250, help="recorded samples T (default 250)")
    p.add_argument("--record-every", type=int, default=4, help="integration steps per recorded sample")
    p.add_argument("--samples", type=int, default=800)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--subtract-reference", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "study", help="store and run directories")
    p.add_argument("--only", choices=["activation_loss", "models"], default=None)
    p.add_argument("--backend", default="local")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)

    exe = [sys.executable, "-m", "crackscope.cli"]
    store = args.work / f"wavefield-{args.preset}-T{args.n_time}.zarr"
    subprocess.run(
        [
            *exe,
            "simulate",
            "wavefield",
            "--preset",
            args.preset,
            "--set",
            f"n_time={args.n_time}",
            "--set",
            f"record_every={args.record_every}",
            "--samples",
            str(args.samples),
            "--batch",
            "16",
            "--out",
            str(store),
        ],
        check=True,
    )
    common = [
        f"data.store={store}",
        f"trainer.max_epochs={args.epochs}",
        f"data.batch_size={args.batch_size}",
        f"data.subtract_reference={str(args.subtract_reference).lower()}",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    grids = {"models": "model_comparison_grid.yaml", "activation_loss": "activation_loss_grid.yaml"}
    for key, grid in grids.items():
        if args.only and key != args.only:
            continue
        out = args.work / key
        subprocess.run(
            [
                *exe,
                "grid",
                str(ROOT / "configs" / "wavefield" / grid),
                "--backend",
                args.backend,
                "--workers",
                str(args.workers),
                *common,
                f"out_dir={out}",
            ],
            check=True,
        )
        shutil.copy(out / "table.md", RESULTS / f"{key}.md")
        shutil.copy(out / "results.csv", RESULTS / f"{key}.csv")
    import torch

    protocol = {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "hardware": f"{cpu_name()}, {torch.get_num_threads()} torch threads",
        "cuda": gpu_name(),
    }
    write_results(RESULTS / "protocol", protocol)
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
