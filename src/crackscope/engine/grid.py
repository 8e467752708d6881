"""Experiment grids: the cartesian product of config axes (or an explicit list of runs), optionally
x seeds, run sequentially, in a local process pool or on Ray; finished runs are skipped on re-run.

Grid YAML::

    name: activation_loss              # run names are <name>-<axis values>-s<seed>
    base: configs/wavefield/mcan.yaml  # a TrainConfig file (relative to the grid file)
    out_dir: runs/activation_loss
    seeds: [0]
    set:                               # overrides shared by every run (before each run's own)
      trainer.max_epochs: 4
    axes:                              # every combination ...
      model.activation: [relu, gelu, elu, selu]
      loss.name: [FL, DL, WDL, CWDL]
    runs: []                           # ... or / and an explicit list of override mappings; a run's
                                       # optional 'label' names it instead of its values
    table: activation_loss             # a layout of table.md that the base config's pipeline offers
                                       # (Pipeline.grid_tables; default: its first)
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crackscope.config import load_yaml, validate
from crackscope.engine import pipelines
from crackscope.engine.config import TrainConfig, load_train_config
from crackscope.errors import InputError


class GridConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.+-]+$")
    base: Path
    out_dir: Path = Path("runs")
    seeds: list[int] = [0]
    set: dict[str, Any] = {}
    axes: dict[str, list[Any]] = {}
    runs: list[dict[str, Any]] = []
    table: str | None = None


def _label(value) -> str:
    return str(value).replace("/", "_").replace(" ", "")


def expand(grid_path: str | Path, overrides: list[str] = ()) -> tuple[GridConfig, list[TrainConfig]]:
    """The grid and its validated run configs (all validated before anything runs)."""
    grid_path = Path(grid_path)
    grid = validate(GridConfig, load_yaml(grid_path), f"grid file {grid_path}")
    base = grid.base if grid.base.is_absolute() else (grid_path.parent / grid.base)
    if not base.exists():
        base = grid.base  # relative to the working directory
    combos: list[dict[str, Any]] = []
    if grid.axes:
        keys = list(grid.axes)
        combos += [dict(zip(keys, values)) for values in itertools.product(*grid.axes.values())]
    combos += [dict(r) for r in grid.runs]
    if not combos:
        raise InputError(f"grid file {grid_path}: needs 'axes' or 'runs'")
    tables = pipelines.get(load_train_config(base).pipeline).grid_tables
    if grid.table is None:
        grid = grid.model_copy(update={"table": next(iter(tables), None)})
    if grid.table not in tables:
        raise InputError(
            f"grid file {grid_path}: table {grid.table!r} is not a layout of this pipeline's grids "
            f"({', '.join(tables) or 'none'})"
        )
    shared = [f"{k}={v}" for k, v in grid.set.items()]
    configs = []
    for seed in grid.seeds:
        for combo in combos:
            combo = dict(combo)
            label = combo.pop("label", None)
            parts = [_label(label)] if label is not None else [_label(v) for v in combo.values()]
            name = "-".join([grid.name, *parts, f"s{seed}"])
            sets = shared + [f"{k}={v}" for k, v in combo.items()]
            sets += [f"name={name}", f"seed={seed}", f"out_dir={grid.out_dir}"] + list(overrides)
            configs.append(load_train_config(base, sets))
    return grid, configs


def _run_one(cfg_json: dict) -> dict:
    from crackscope.engine.train import train

    cfg = TrainConfig.model_validate(cfg_json)
    run_dir = train(cfg, resume=True, progress=False)
    return json.loads((run_dir / "metrics.json").read_text())


def run_grid(
    grid_path,
    overrides: list[str] = (),
    *,
    backend: str = "local",
    workers: int = 1,
    address: str | None = None,
    log=lambda s: None,
) -> dict:
    """Run every unfinished run of the grid; write GRID_OUT/results.csv and table.md."""
    grid, configs = expand(grid_path, list(overrides))
    out_override = [o.split("=", 1)[1] for o in overrides if o.startswith("out_dir=")]
    if out_override:
        grid = grid.model_copy(update={"out_dir": Path(out_override[-1])})
    if workers < 1:
        raise InputError(f"--workers must be positive, got {workers}")
    todo = [c for c in configs if not (c.run_dir / "metrics.json").exists()]
    log(f"{len(configs)} runs, {len(configs) - len(todo)} already finished")
    payloads = [c.model_dump(mode="json") for c in todo]
    if backend == "ray":
        try:
            import ray
        except ImportError:
            raise InputError("--backend ray needs the ray extra: pip install 'crackscope[ray]'") from None
        started = not ray.is_initialized()
        if started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        try:
            task = ray.remote(num_cpus=1)(_run_one)
            ray.get([task.remote(p) for p in payloads])
        finally:
            if started:
                ray.shutdown()
    elif workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            list(pool.map(_run_one, payloads))
    else:
        for i, p in enumerate(payloads, 1):
            log(f"[{i}/{len(payloads)}] {p['name']}")
            _run_one(p)
    rows = [_row(c) for c in configs]
    out = grid.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.csv").write_text(_csv(rows))
    table = pipelines.get(configs[0].pipeline).grid_tables[grid.table](rows)
    (out / "table.md").write_text(table)
    return {"rows": rows, "table": table, "out_dir": str(out)}


def _row(cfg: TrainConfig) -> dict:
    """One run's row of results.csv, in its pipeline's columns (``Pipeline.grid_row``)."""
    metrics = json.loads((cfg.run_dir / "metrics.json").read_text())
    return pipelines.get(cfg.pipeline).require("grid", "grid_row")(cfg, metrics)


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def mean_cell(values) -> str:
    """A table cell: the mean of the numbers among ``values`` (None / NaN skipped), ``± sample std``
    when there are several (seeds), ``–`` when there are none."""
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "–"
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return f"{mean:.4f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
    return f"{mean:.4f} ± {std:.4f}"


def metric_row(cfg, metrics: dict, keys: tuple[str, ...]) -> dict:
    """A run's results.csv row with the metric ``keys`` of its metrics.json: run, model, loss,
    seed, the metrics, parameters, epochs run, the epoch whose weights were kept, throughput."""
    return {
        "run": cfg.name,
        "model": cfg.model.name,
        "loss": cfg.loss.name,
        "seed": cfg.seed,
        **{k: metrics[k] for k in keys},
        "parameters": metrics.get("parameters"),
        "epochs_run": metrics.get("epochs_run"),
        "weights_epoch": metrics.get("weights_epoch", metrics.get("best_epoch")),
        "train_samples_per_s": metrics.get("train_samples_per_s"),
    }


def per_model_table(rows: list[dict], columns: tuple[tuple[str, str], ...]) -> str:
    """One row per model: the mean (± std over seeds) of each ``(key, header)`` column, its
    parameters and the epochs each run trained (with the kept epoch in brackets)."""
    header = " | ".join(h for _, h in columns)
    lines = [f"| model | {header} | parameters | epochs (kept) |", "|---|" + "---:|" * (len(columns) + 2)]
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["model"], []).append(r)
    for model, rs in groups.items():
        cells = [mean_cell([r[k] for r in rs]) for k, _ in columns]
        epochs = ", ".join(f"{r['epochs_run']} ({r['weights_epoch']})" for r in rs)
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {rs[0]['parameters']:,} | {epochs} |")
    return "\n".join(lines) + "\n"
