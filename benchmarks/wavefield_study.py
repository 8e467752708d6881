"""The MicroCrackAttentionNeXt study on the `small` preset (one notch per plate, T = 250): the
comparison with its four predecessors, what each difference of MicroCrackAttentionNeXt-RC is
worth, and the paper's Table 1 (4 activations x 4 losses), at a reduced, stated budget per run.

    .venv/bin/python benchmarks/wavefield_study.py                       # the reduced protocol below
    .venv/bin/python benchmarks/wavefield_study.py --train-plates 27000 --epochs 8   # the full CPU protocol

Every run reads the same store (made if missing, resumable) and the same seeded split as
configs/wavefield/mcan_small.yaml, and trains on the first --train-plates plates of its training
split for --epochs epochs (cosine schedule); validation (threshold, kept epoch) and test plates are
the whole split's, so rows are scored on the same 1,500 test plates. The three grids run in turn:

    models          configs/wavefield/model_comparison_small_grid.yaml   (5 models x 3 seeds)
    ablation        configs/wavefield/mcan_rc_ablation_small_grid.yaml   (decoder x sensor positions)
    activation_loss configs/wavefield/activation_loss_small_grid.yaml    (4 x 4, one seed)
    das_channel     configs/wavefield/das_channel_small_grid.yaml        (RC without / with the delay-and-sum channel)

Two more grids run only when named, each at its own budget (--train-plates/--epochs do not apply):

    learning_curve  configs/wavefield/learning_curve_small_grid.yaml     (1,000, 3,000, 9,000 plates, 8 epochs)
    record          configs/wavefield/record_small_grid.yaml             (a store against fresh plates, T = 250
                                                                          against T = 1000, at equal wall time)

The learning curve runs at the full CPU protocol of mcan_small.yaml; its 27,000-plate point is the
shipped wavefield/mcan-small itself. The record grid reads its own two 4,000-plate stores (--store
does not apply; the commands that make them are in its header).

Finished runs are skipped, so a killed study resumes where it stopped. Each finished run's
metrics.json is also kept in benchmarks/results/wavefield_study/runs/GRID/RUN.json (a few kB, committed),
and restored into --work before a grid starts, so the study resumes from a fresh clone without its
run directories. Each grid's table.md and results.csv are copied to
benchmarks/results/wavefield_study/ with a JSON of the protocol and hardware; `--harvest` writes them
from the finished runs alone (the table says how many of the grid's runs it holds), for a study that
was stopped. With --workers K > 1 the runs go K at a time, one torch thread each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from crackscope.provenance import cpu_name, gpu_name, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "wavefield_study"
GRIDS = {
    "models": "model_comparison_small_grid.yaml",
    "ablation": "mcan_rc_ablation_small_grid.yaml",
    "activation_loss": "activation_loss_small_grid.yaml",
    "learning_curve": "learning_curve_small_grid.yaml",
    "das_channel": "das_channel_small_grid.yaml",
    "record": "record_small_grid.yaml",
}
# grids that set their own number of training plates and epochs (the full CPU protocol)
OWN_PROTOCOL = {"learning_curve", "record"}
# grids that name their own stores (--store does not apply to them)
OWN_STORES = {"record"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, default=ROOT / "data" / "wavefield-small-t250.zarr")
    p.add_argument(
        "--simulate-config",
        type=Path,
        default=ROOT / "configs" / "wavefield" / "simulate_small_t250.yaml",
        help="simulator settings of the store, used only when it is missing or unfinished",
    )
    p.add_argument("--samples", type=int, default=30000, help="plates in the store (when it is made)")
    p.add_argument("--store-seed", type=int, default=1)
    p.add_argument("--train-plates", type=int, default=2000, help="training plates per run (data.train_plates)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument(
        "--only",
        choices=list(GRIDS),
        nargs="+",
        default=["models", "ablation", "activation_loss"],
        help="grids to run, in this order (default: the paper's three, at the reduced budget)",
    )
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "study", help="run directories")
    p.add_argument(
        "--label",
        default="",
        help="suffix of the results' names, for a grid run on another store (e.g. multi: das_channel_multi.md)",
    )
    p.add_argument("--backend", default="local")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--harvest",
        action="store_true",
        help="train nothing: keep the finished runs' metrics and write the tables from them",
    )
    args = p.parse_args(argv)

    def common(key: str) -> list[str]:
        budget = (
            []
            if key in OWN_PROTOCOL
            else [f"data.train_plates={args.train_plates}", f"trainer.max_epochs={args.epochs}"]
        )
        store = [] if key in OWN_STORES else [f"data.store={args.store}"]
        return [*store, *budget, f"out_dir={args.work / key}"]

    def name(key: str) -> str:  # the results' name of grid KEY
        return f"{key}_{args.label}" if args.label else key

    if args.harvest:
        for key in args.only:
            harvest(key, common(key), name(key))
        print(f"results: {RESULTS}")
        return 0

    exe = [sys.executable, "-m", "crackscope.cli"]
    env = dict(os.environ)
    if args.workers > 1:
        env.setdefault("OMP_NUM_THREADS", "1")
    subprocess.run(
        [
            *exe,
            "simulate",
            "wavefield",
            "--config",
            str(args.simulate_config),
            "--samples",
            str(args.samples),
            "--seed",
            str(args.store_seed),
            "--batch",
            "32",
            "--out",
            str(args.store),
        ],
        check=True,
        env=env,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    for key in args.only:
        overrides = common(key)
        restore(key, overrides, name(key))
        finished = subprocess.run(
            [
                *exe,
                "grid",
                str(ROOT / "configs" / "wavefield" / GRIDS[key]),
                "--backend",
                args.backend,
                "--workers",
                str(args.workers),
                *overrides,
            ],
            env=env,
        )
        harvest(key, overrides, name(key))
        if finished.returncode != 0:
            return finished.returncode
    import torch

    protocol = {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "hardware": f"{cpu_name()}, {env.get('OMP_NUM_THREADS') or torch.get_num_threads()} torch threads per run",
        "cuda": gpu_name(),
    }
    write_results(RESULTS / ("protocol_" + args.label if args.label else "protocol"), protocol)
    print(f"results: {RESULTS}")
    return 0


def _configs(key: str, overrides: list[str]):
    from crackscope.engine.grid import expand

    return expand(ROOT / "configs" / "wavefield" / GRIDS[key], overrides)


def restore(key: str, overrides: list[str], name: str) -> int:
    """Put the kept metrics.json of each finished run of grid ``key`` back into its run directory, so
    the grid skips it; returns how many were restored."""
    restored = 0
    for cfg in _configs(key, overrides)[1]:
        kept = RESULTS / "runs" / name / f"{cfg.name}.json"
        target = cfg.run_dir / "metrics.json"
        if kept.exists() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(kept, target)
            restored += 1
    return restored


def harvest(key: str, overrides: list[str], name: str) -> None:
    """Keep each finished run's metrics.json in RESULTS/runs/NAME/ and write RESULTS/NAME.{md,csv} from the
    finished runs of grid ``key``."""
    from crackscope.engine import pipelines
    from crackscope.engine.grid import _csv, _row

    grid, configs = _configs(key, overrides)
    done = [c for c in configs if (c.run_dir / "metrics.json").exists()]
    (RESULTS / "runs" / name).mkdir(parents=True, exist_ok=True)
    for cfg in done:
        metrics = json.loads((cfg.run_dir / "metrics.json").read_text())
        (RESULTS / "runs" / name / f"{cfg.name}.json").write_text(json.dumps(metrics, indent=1) + "\n")
    if not done:
        return
    rows = [_row(c) for c in done]
    table = pipelines.get(done[0].pipeline).grid_tables[grid.table](rows)
    if len(done) < len(configs):
        table = f"{len(done)} of the grid's {len(configs)} runs have finished.\n\n{table}"
    (RESULTS / f"{name}.md").write_text(table)
    (RESULTS / f"{name}.csv").write_text(_csv(rows))


if __name__ == "__main__":
    sys.exit(main())
