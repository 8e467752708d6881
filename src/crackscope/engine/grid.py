"""Experiment grids: the cartesian product of config axes (or an explicit list of runs), optionally
x seeds, run sequentially, in a local process pool or on Ray; finished runs are skipped on re-run.

Grid YAML::

    name: activation_loss              # run names are <name>-<axis values>-s<seed>
    base: configs/wavefield/mcan.yaml  # a TrainConfig file (relative to the grid file)
    out_dir: runs/activation_loss
    seeds: [0]
    axes:                              # every combination ...
      model.activation: [relu, gelu, elu, selu]
      loss.name: [FL, DL, WDL, CWDL]
    runs: []                           # ... or / and an explicit list of override mappings
    table: activation_loss             # or "models" / "surface" / "classify": the layout of table.md
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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crackscope.config import load_yaml, validate
from crackscope.engine.config import TrainConfig, load_train_config
from crackscope.errors import InputError

SIZE_COLUMNS = [">0", ">1", ">2", ">3", ">4"]


class GridConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.+-]+$")
    base: Path
    out_dir: Path = Path("runs")
    seeds: list[int] = [0]
    axes: dict[str, list[Any]] = {}
    runs: list[dict[str, Any]] = []
    table: Literal["activation_loss", "models", "surface", "classify"] = "activation_loss"


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
    configs = []
    for seed in grid.seeds:
        for combo in combos:
            name = "-".join([grid.name, *(_label(v) for v in combo.values()), f"s{seed}"])
            sets = [f"{k}={v}" for k, v in combo.items()]
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
    table = {
        "activation_loss": activation_loss_table,
        "models": model_table,
        "surface": surface_table,
        "classify": classify_table,
    }[grid.table](rows)
    (out / "table.md").write_text(table)
    return {"rows": rows, "table": table, "out_dir": str(out)}


def _row(cfg: TrainConfig) -> dict:
    m = json.loads((cfg.run_dir / "metrics.json").read_text())
    if cfg.pipeline == "classify":
        return {
            "run": cfg.name,
            "model": cfg.model.name,
            "loss": cfg.loss.name,
            "seed": cfg.seed,
            **{k: m[k] for k in ("accuracy", "precision", "recall", "f1")},
            "parameters": m.get("parameters"),
            "epochs_run": m.get("epochs_run"),
            "weights_epoch": m.get("weights_epoch", m.get("best_epoch")),
            "train_samples_per_s": m.get("train_samples_per_s"),
        }
    if cfg.pipeline == "surface":
        return {
            "run": cfg.name,
            "model": cfg.model.name,
            "loss": cfg.loss.name,
            "seed": cfg.seed,
            **{k: m[k] for k in ("accuracy", "precision", "recall", "miou", "iou_defect", "f1")},
            "parameters": m.get("parameters"),
            "epochs_run": m.get("epochs_run"),
            "weights_epoch": m.get("weights_epoch", m.get("best_epoch")),
            "train_samples_per_s": m.get("train_samples_per_s"),
        }
    row = {
        "run": cfg.name,
        "model": cfg.model.name,
        # the model's options other than its activation: what tells variants of one model apart
        "variant": ", ".join(f"{k}={v}" for k, v in sorted(cfg.model.kwargs.items()) if k != "activation"),
        "activation": cfg.model.kwargs.get("activation", "relu"),
        "loss": cfg.loss.name,
        "seed": cfg.seed,
        "dsc": m["dsc"],
        "accuracy": m["accuracy"],
        "iou": m["iou"],
        "parameters": m.get("parameters"),
        "train_samples_per_s": m.get("train_samples_per_s"),
    }
    for col in SIZE_COLUMNS:
        row[f"dsc{col}"] = ((m.get("by_crack_size") or {}).get(col) or {}).get("dsc")
    return row


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _mean(values):
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "–"
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return f"{mean:.4f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
    return f"{mean:.4f} ± {std:.4f}"


def activation_loss_table(rows: list[dict]) -> str:
    """The paper's Table 1 layout: rows activation x loss, columns DSC for cracks > 0 ... > 4 µm."""
    lines = [
        "| activation | loss | " + " | ".join(f"{c} µm" for c in SIZE_COLUMNS) + " |",
        "|---|---|" + "---:|" * len(SIZE_COLUMNS),
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["activation"], r["loss"]), []).append(r)
    for (act, loss), rs in groups.items():
        lines.append(
            f"| {act} | {loss} | " + " | ".join(_mean([r[f"dsc{c}"] for r in rs]) for c in SIZE_COLUMNS) + " |"
        )
    return "\n".join(lines) + "\n"


def model_table(rows: list[dict]) -> str:
    """One row per model (and variant: its options other than the activation, in brackets): DSC by
    crack size, pixel accuracy, parameters and training samples/s."""
    lines = [
        "| model | loss | "
        + " | ".join(f"DSC {c} µm" for c in SIZE_COLUMNS)
        + " | accuracy | parameters | train samples/s |",
        "|---|---|" + "---:|" * (len(SIZE_COLUMNS) + 3),
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        label = f"{r['model']} ({r['variant']})" if r.get("variant") else r["model"]
        groups.setdefault((label, r["loss"]), []).append(r)
    for (model, loss), rs in groups.items():
        sps = [r["train_samples_per_s"] for r in rs if r["train_samples_per_s"]]
        lines.append(
            f"| {model} | {loss} | "
            + " | ".join(_mean([r[f"dsc{c}"] for r in rs]) for c in SIZE_COLUMNS)
            + f" | {_mean([r['accuracy'] for r in rs])} | {rs[0]['parameters']:,} | "
            + (f"{sum(sps) / len(sps):.1f}" if sps else "–")
            + " |"
        )
    return "\n".join(lines) + "\n"


def surface_table(rows: list[dict]) -> str:
    """The surface paper's Table 2 layout: Model | Accuracy | Precision | Recall | mIoU (+ defect IoU, F1)."""
    lines = [
        "| model | accuracy | precision | recall | mIoU | defect IoU | F1 | parameters | epochs (kept) |",
        "|---|" + "---:|" * 8,
    ]
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["model"], []).append(r)
    for model, rs in groups.items():
        cells = [_mean([r[k] for r in rs]) for k in ("accuracy", "precision", "recall", "miou", "iou_defect", "f1")]
        epochs = ", ".join(f"{r['epochs_run']} ({r['weights_epoch']})" for r in rs)
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {rs[0]['parameters']:,} | {epochs} |")
    return "\n".join(lines) + "\n"


def classify_table(rows: list[dict]) -> str:
    """The binary paper's Tables 2 / 4 layout: Model | Accuracy (+ macro precision, recall, F1), parameters."""
    lines = ["| model | accuracy | precision | recall | F1 | parameters | epochs (kept) |", "|---|" + "---:|" * 6]
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["model"], []).append(r)
    for model, rs in groups.items():
        cells = [_mean([r[k] for r in rs]) for k in ("accuracy", "precision", "recall", "f1")]
        epochs = ", ".join(f"{r['epochs_run']} ({r['weights_epoch']})" for r in rs)
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {rs[0]['parameters']:,} | {epochs} |")
    return "\n".join(lines) + "\n"
