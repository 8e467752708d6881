"""The wave-field pipeline in the engine: its data (store geometry, split, Lightning data module),
the end of training (simulate.yaml, operating point, test metrics), ``evaluate`` / ``predict`` on a
store (metrics.json, the size table, figures) and its ONNX input. Registered in
:mod:`crackscope.engine.pipelines`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Dataset

from crackscope.data.splits import split_indices
from crackscope.engine.data import EpochSeededSampler, SplitDataModule, own_test_part
from crackscope.engine.evaluation import provenance, write_metrics
from crackscope.engine.grid import mean_cell
from crackscope.engine.runs import load_run, run_threshold, write_operating_point
from crackscope.errors import InputError
from crackscope.figures import plot_best_median_worst
from crackscope.io import atomic_savez, atomic_write_text
from crackscope.metrics import DEFAULT_BOUNDS_UM


# ---- data: the store's geometry, the run's split, the Lightning data module ---------------------
class WithCrackLength(Dataset):
    """(x, mask, longest crack [µm]) items, for per-crack-size metrics."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __getitem__(self, i):
        x, mask = self.base[i]
        return x, mask, torch.tensor(float(self.base.max_crack_length_um[i]))


def wavefield_dataset(
    store: Path, indices, subtract_reference: bool, normalize, *, mirror: bool = False, seed: int = 0
):
    from crackscope.data.wavefield_dataset import WavefieldDataset

    return WithCrackLength(
        WavefieldDataset(
            store, indices=indices, subtract_reference=subtract_reference, normalize=normalize, mirror=mirror, seed=seed
        )
    )


def store_geometry(store: Path) -> dict:
    """Model keywords implied by a store: time samples, sensors, grid and mask size, and the
    acquisition geometry (plate, source, sensors, record interval, wave speeds) for the models that
    image the record (``das_channel``)."""
    from crackscope.analysis.delay_and_sum import store_acquisition
    from crackscope.data.wavefield_store import open_store

    group = open_store(store)
    n, _, s, t = group["signals"].shape
    grid = int(group.attrs["config"]["sensor_grid"])
    return {
        "n_time": int(t),
        "n_sensors": int(s),
        "sensor_grid": (grid, grid),
        "mask_size": int(group["masks"].shape[-1]),
        "acquisition": store_acquisition(group),
    }


class WavefieldDataModule(SplitDataModule):
    def _loader(self, part, train=False):
        if train and self.cfg.stream_plates:
            return self._stream_loader()
        ds = wavefield_dataset(
            self.cfg.store,
            self.split[part],
            self.cfg.subtract_reference,
            self.cfg.normalize,
            mirror=train and self.cfg.augment,
            seed=self.seed,
        )
        sampler = EpochSeededSampler(len(ds), self.seed, dataset=ds) if train else None
        return DataLoader(
            ds,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            num_workers=self.cfg.num_workers,
            # workers must copy the dataset anew each epoch to see its epoch's reflections
            persistent_workers=self.cfg.num_workers > 0 and not (train and self.cfg.augment),
        )

    def _stream_loader(self) -> DataLoader:
        """Fresh plates every epoch (data.stream_plates), one simulated batch per item."""
        from crackscope.data.wavefield_stream import EpochSequentialSampler, StreamedWavefieldBatches

        ds = StreamedWavefieldBatches(
            self.cfg.store,
            self.cfg.stream_plates,
            self.cfg.batch_size,
            subtract_reference=self.cfg.subtract_reference,
            normalize=self.cfg.normalize,
            mirror=self.cfg.augment,
            seed=self.seed,
        )
        # workers copy the dataset anew each epoch, so they see that epoch's plates; they are spawned,
        # since forking a process whose simulator runs under OpenMP is unsafe
        workers = self.cfg.num_workers
        return DataLoader(
            ds,
            batch_size=None,
            sampler=EpochSequentialSampler(len(ds), ds),
            num_workers=workers,
            multiprocessing_context="spawn" if workers else None,
        )


def make_split(data_cfg, seed: int, run_dir: Path) -> dict[str, list[int]]:
    """The run's split, written once to RUN/split.json and reused on resume."""
    path = run_dir / "split.json"
    if path.exists():
        return json.loads(path.read_text())
    from crackscope.data.wavefield_store import open_store

    group = open_store(data_cfg.store)
    done = np.nonzero(np.asarray(group["done"][:]))[0]
    if done.size < 3:
        raise InputError(f"data.store {data_cfg.store} has only {done.size} finished samples; need at least 3")
    split = split_indices(done, data_cfg.split, seed)
    if not split["train"] or not split["val"]:
        raise InputError(
            f"data.split {list(data_cfg.split)} leaves an empty train or validation set for {done.size} samples"
        )
    cap = getattr(data_cfg, "train_plates", None)
    if cap is not None:
        if cap > len(split["train"]):
            raise InputError(
                f"data.train_plates {cap} is more than the {len(split['train'])} training plates of "
                f"data.store {data_cfg.store}"
            )
        split["train"] = split["train"][:cap]
    return split


def wavefield_geometry(data_cfg) -> dict:
    """The model keywords a wave-field store fixes (time samples, sensors, mask size)."""
    return store_geometry(data_cfg.store)


# ---- evaluate / predict ------------------------------------------------------------------------
SIMULATE_FILE = "simulate.yaml"  # in a wave-field run: the simulator settings of its training store
# PlateConfig fields that fix what a sample means to a model: plate size, sampling in time and space
GEOMETRY_FIELDS = (
    "width",
    "height",
    "lattice_spacing",
    "n_time",
    "record_every",
    "time_step",
    "cfl",
    "sensor_grid",
    "mask_size",
)


def write_simulate_yaml(run_dir: Path, store: Path) -> Path:
    """RUN/simulate.yaml: the PlateConfig of the training store, usable as
    ``crackscope simulate wavefield --config simulate.yaml --samples N --seed S --out STORE`` to
    make fresh plates for the model (another seed gives other plates). Every field is written,
    those the store predates at their class defaults (a store older than crack widths made line
    cracks), so that no preset's value can fill a gap when the file is read back."""
    from crackscope.data.wavefield_store import open_store
    from crackscope.physics.config import PlateConfig

    attrs = open_store(store).attrs
    config = PlateConfig.model_validate(dict(attrs["config"])).model_dump(mode="json")
    note = (
        f"# Simulator settings of the store this model was trained on ({attrs.get('n_samples')} plates, seed "
        f"{attrs.get('seed')}, {attrs.get('simulator')}).\n# Fresh test plates: crackscope simulate wavefield "
        f"--config simulate.yaml --samples N --seed S --out plates.zarr\n"
    )
    return atomic_write_text(Path(run_dir) / SIMULATE_FILE, note + yaml.safe_dump(config, sort_keys=False))


def _check_geometry(run_dir: Path, run_geometry: dict, store: Path) -> dict:
    """The store's model geometry; InputError naming the first field that differs from the run's
    (its training store's settings in RUN/simulate.yaml when present, else the tensor shapes)."""
    geo = store_geometry(store)
    for key in ("n_time", "n_sensors", "mask_size"):
        if key in run_geometry and int(run_geometry[key]) != int(geo[key]):
            raise InputError(
                f"--data {store}: {key}={geo[key]} but the model was trained with {key}={run_geometry[key]}"
            )
    trained = Path(run_dir) / SIMULATE_FILE
    if trained.exists():
        from crackscope.data.wavefield_store import open_store

        mine, theirs = yaml.safe_load(trained.read_text()) or {}, dict(open_store(store).attrs["config"])
        for key in GEOMETRY_FIELDS:
            if key in mine and mine[key] != theirs.get(key):
                raise InputError(
                    f"--data {store}: {key}={theirs.get(key)!r} but the model was trained on plates with "
                    f"{key}={mine[key]!r} ({trained})"
                )
    return geo


def _choose_indices(cfg, run_dir: Path, store: Path, indices):
    if indices is not None:
        return list(indices)
    return own_test_part(run_dir, Path(store).resolve() == Path(cfg.data.store).resolve(), by="indices")


@torch.no_grad()
def _infer(model, cfg, store, indices, batch_size):
    ds = wavefield_dataset(store, indices, cfg.data.subtract_reference, cfg.data.normalize)
    if len(ds) == 0:
        raise InputError(f"--data {store}: no finished samples to evaluate")
    loader = DataLoader(ds, batch_size=batch_size or cfg.data.batch_size)
    probs, masks, lengths = [], [], []
    for x, mask, length in loader:
        probs.append(torch.sigmoid(model(x)).squeeze(1))
        masks.append(mask.squeeze(1))
        lengths.append(length)
    sample_index = ds.base.sample_indices
    return torch.cat(probs), torch.cat(masks), torch.cat(lengths), np.asarray(sample_index)


# rows of the size table: (key in a size class's metrics, what a reader calls it)
SIZE_TABLE_ROWS = (
    ("dsc", "DSC, pooled crack pixels"),
    ("dsc_per_sample", "DSC, mean per plate"),
    ("accuracy", "pixel accuracy"),
    ("iou", "IoU, crack"),
    ("iou_background", "IoU, background"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("cell_oracle_dsc", "cell oracle DSC"),
)


def size_table(by_size: dict) -> str:
    """Markdown: one row per metric, one column per crack-size class (like the paper's Table 1)."""
    cols = [f">{b}" for b in DEFAULT_BOUNDS_UM]
    lines = ["| metric | " + " | ".join(f"{c} µm" for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for key, label in SIZE_TABLE_ROWS:
        cells = []
        for c in cols:
            v = (by_size.get(c) or {}).get(key)
            cells.append("–" if v is None else f"{v:.4f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| samples | " + " | ".join(str((by_size.get(c) or {}).get("n_samples", 0)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def choose_threshold(run_dir, store, indices, *, batch_size=None) -> dict:
    """Choose a run's crack threshold on ``indices`` of ``store`` (its validation plates): the one of
    :data:`~crackscope.metrics.THRESHOLD_GRID` with the highest micro DSC, written to
    RUN/operating_point.json with that DSC and the plates it was chosen on."""
    from crackscope.metrics import THRESHOLD_GRID, sweep_counts

    run_dir, store = Path(run_dir), Path(store)
    cfg, model, geometry = load_run(run_dir)
    _check_geometry(run_dir, geometry, store)
    probs, masks, _, sample_index = _infer(model, cfg, store, list(indices), batch_size)
    counts = sweep_counts(probs, masks, THRESHOLD_GRID, from_logits=False)
    point = write_operating_point(
        run_dir,
        counts,
        THRESHOLD_GRID,
        chosen_on="validation split",
        n_samples=int(len(sample_index)),
        store=str(store),
    )
    return point


def evaluate_run(run_dir, store, out_dir, *, indices=None, batch_size=None, extra: dict | None = None) -> dict:
    """Metrics of a run on ``store`` (its test split when it is the training store) written to ``out_dir``."""
    from crackscope.metrics import SegmentationMetrics, confusion_counts, sample_metrics

    run_dir, store, out_dir = Path(run_dir), Path(store), Path(out_dir)
    cfg, model, geometry = load_run(run_dir)
    threshold = run_threshold(run_dir, cfg)
    _check_geometry(run_dir, geometry, store)
    subset = "given plates" if indices is not None else "all plates"
    indices = _choose_indices(cfg, run_dir, store, indices)
    if subset == "all plates" and indices is not None:
        subset = "test split"
    probs, masks, lengths, sample_index = _infer(model, cfg, store, indices, batch_size)
    # one process evaluates everything: no cross-process reduction even if a DDP group is still up
    metrics = SegmentationMetrics(threshold=threshold, from_logits=False, sync_on_compute=False)
    metrics.update(probs.unsqueeze(1), masks.unsqueeze(1), lengths)
    result = _to_builtin(metrics.compute())
    result.update(
        provenance(
            cfg,
            run_dir,
            data=store,
            subset=subset,
            n_samples=len(sample_index),
            threshold=threshold,
            activation=cfg.model.kwargs.get("activation"),
        )
    )
    if extra:
        result.update(extra)
    _add_cell_oracle(result, masks, lengths, geometry)
    counts = confusion_counts(probs.unsqueeze(1), masks.unsqueeze(1), threshold=threshold, from_logits=False)
    per_sample_dsc = sample_metrics(counts)["dsc"]
    write_metrics(out_dir, result)
    atomic_write_text(out_dir / "size_table.md", size_table(result.get("by_crack_size", {})))
    plot_best_median_worst(
        per_sample_dsc.numpy(),
        lambda i: [
            (masks[i].numpy(), "true mask", "gray_r"),
            (probs[i].numpy(), "crack probability", "magma"),
            ((probs[i] > threshold).numpy(), "predicted mask", "gray_r"),
        ],
        lambda label, i: f"{label} (#{int(sample_index[i])}, DSC {float(per_sample_dsc[i]):.2f})",
        out_dir / "figures" / "masks.png",
        title=f"{cfg.name} on {store.name}",
        origin="lower",
    )
    return result


def _add_cell_oracle(result: dict, masks: torch.Tensor, lengths: torch.Tensor, geometry: dict) -> None:
    """``cell_oracle_dsc`` overall and per size class: the pooled DSC of marking every pixel of each
    sensor cell that holds crack (:func:`~crackscope.metrics.cell_oracle`), the level of locating
    cracks to the nearest sensor; a model above it places them inside the cells."""
    from crackscope.metrics import by_crack_size, cell_oracle, confusion_counts, summarize

    rows, cols = tuple(geometry.get("sensor_grid") or (0, 0))
    oracle = cell_oracle(masks, int(rows)) if rows == cols else None
    if oracle is None:
        return
    counts = confusion_counts(oracle.float(), masks, threshold=0.5, from_logits=False)
    result["cell_oracle_dsc"] = summarize(counts)["dsc"]
    for key, row in by_crack_size(counts, lengths).items():
        if key in result.get("by_crack_size", {}):
            result["by_crack_size"][key]["cell_oracle_dsc"] = row["dsc"]


def predict_run(run_dir, store, out_dir, *, batch_size=None) -> Path:
    """Predicted probabilities and masks for every finished sample of ``store`` -> OUT/predictions.npz."""
    run_dir, store, out_dir = Path(run_dir), Path(store), Path(out_dir)
    cfg, model, geometry = load_run(run_dir)
    threshold = run_threshold(run_dir, cfg)
    _check_geometry(run_dir, geometry, store)
    probs, _, _, sample_index = _infer(model, cfg, store, None, batch_size)
    return atomic_savez(
        out_dir / "predictions.npz",
        sample_index=sample_index,
        probability=probs.numpy().astype(np.float16),
        mask=(probs > threshold).numpy().astype(np.uint8),
        threshold=np.float32(threshold),
    )


def _to_builtin(obj):
    if isinstance(obj, dict):
        return {k: _to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_builtin(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# ---- the wave-field pipeline's registry entries (crackscope.engine.pipelines) -------------------
def finish_wavefield_training(run_dir: Path, cfg, split: dict, extra: dict) -> dict:
    """End of training: RUN/simulate.yaml, the threshold chosen on the validation plates (when the
    config asks for it, before any test plate is scored), then the test plates into RUN/metrics.json."""
    write_simulate_yaml(run_dir, cfg.data.store)
    # what the model was trained on: the record's length, and fresh plates per epoch when streamed
    extra = {**extra, "n_time": store_geometry(cfg.data.store)["n_time"], "stream_plates": cfg.data.stream_plates}
    if cfg.trainer.choose_threshold:
        choose_threshold(run_dir, cfg.data.store, split["val"])
    return evaluate_run(run_dir, cfg.data.store, run_dir, indices=split["test"], extra=extra)


def evaluate_wavefield(run_dir, data, out_dir, format=None) -> dict:
    """``crackscope evaluate`` of a wave-field run on a store (``format`` does not apply)."""
    return evaluate_run(run_dir, data, out_dir)


def report_wavefield(result: dict, out_dir: Path) -> list[str]:
    oracle = result.get("cell_oracle_dsc")
    return [
        f"DSC {result['dsc']:.4f} (pooled crack pixels; mean per plate {result['dsc_per_sample']:.4f})  "
        f"IoU {result['iou']:.4f}  precision {result['precision']:.4f}  recall {result['recall']:.4f}  "
        f"accuracy {result['accuracy']:.4f}  ({result['n_samples']} samples"
        + (f"; cell oracle DSC {oracle:.4f})" if oracle is not None else ")"),
        (Path(out_dir) / "size_table.md").read_text().rstrip(),
    ]


def predict_wavefield(run_dir, data, out_dir, log=None) -> str:
    return f"predictions: {predict_run(run_dir, data, out_dir)}"


def wavefield_onnx_inputs(cfg, geometry: dict, batch: int) -> tuple[str, list[tuple[int, ...]], dict]:
    """ONNX input: (batch, 2, n_time, n_sensors) displacements; only the batch axis is dynamic."""
    return "wavefield", [(batch, 2, int(geometry["n_time"]), int(geometry["n_sensors"]))], {0: "batch"}


# ---- experiment grids (crackscope.engine.grid): one run's row, the table layouts ---------------------
SIZE_COLUMNS = [">0", ">1", ">2", ">3", ">4"]  # the crack-size classes of the paper's tables [µm]


def _train_plates(cfg, metrics: dict | None = None) -> int | None:
    """The number of plates the run trained on: its split.json's training part (``data.train_plates``
    when capped); without a split.json (a run restored from its metrics.json alone) the training
    part its metrics record, else the configured cap."""
    path = Path(cfg.run_dir) / "split.json"
    if path.exists():
        return len(json.loads(path.read_text())["train"])
    recorded = ((metrics or {}).get("dataset") or {}).get("train")
    return recorded if recorded is not None else cfg.data.train_plates


def wavefield_grid_row(cfg, m: dict) -> dict:
    """A wave-field run's results.csv row: model, variant, activation, loss, seed, DSC (all and per size)."""
    row = {
        "run": cfg.name,
        "model": cfg.model.name,
        # the model's options other than its activation: what tells variants of one model apart
        "variant": ", ".join(f"{k}={v}" for k, v in sorted(cfg.model.kwargs.items()) if k != "activation"),
        "activation": cfg.model.kwargs.get("activation", "relu"),
        "loss": cfg.loss.name,
        "seed": cfg.seed,
        "train_plates": None if cfg.data.stream_plates else _train_plates(cfg, m),
        "stream_plates": cfg.data.stream_plates,
        "n_time": m.get("n_time"),
        "epochs_run": m.get("epochs_run"),
        "fit_seconds": m.get("fit_seconds"),
        "dsc": m["dsc"],
        "accuracy": m["accuracy"],
        "iou": m["iou"],
        "parameters": m.get("parameters"),
        "train_samples_per_s": m.get("train_samples_per_s"),
    }
    for col in SIZE_COLUMNS:
        row[f"dsc{col}"] = ((m.get("by_crack_size") or {}).get(col) or {}).get("dsc")
    return row


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
            f"| {act} | {loss} | " + " | ".join(mean_cell([r[f"dsc{c}"] for r in rs]) for c in SIZE_COLUMNS) + " |"
        )
    return "\n".join(lines) + "\n"


def plates_table(rows: list[dict]) -> str:
    """A learning curve: one row per number of training plates (``data.train_plates``, the whole
    training split where unset), DSC by crack size, seeds averaged."""
    lines = [
        "| training plates | " + " | ".join(f"DSC {c} µm" for c in SIZE_COLUMNS) + " |",
        "|---:|" + "---:|" * len(SIZE_COLUMNS),
    ]
    groups: dict = {}
    for r in rows:
        groups.setdefault(r["train_plates"], []).append(r)
    for plates, rs in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        label = f"{plates:,}" if plates is not None else "all"
        lines.append(f"| {label} | " + " | ".join(mean_cell([r[f"dsc{c}"] for r in rs]) for c in SIZE_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def data_table(rows: list[dict]) -> str:
    """What the model trains on: one row per record length T and training data (a store's plates
    reused every epoch, or fresh plates streamed from the simulator), with the plates seen, the
    training wall time and DSC by crack size, seeds averaged."""
    lines = [
        "| T | training data | plates seen (fresh) | training wall time [min] | "
        + " | ".join(f"DSC {c} µm" for c in SIZE_COLUMNS)
        + " |",
        "|---:|---|---:|---:|" + "---:|" * len(SIZE_COLUMNS),
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["n_time"], r["stream_plates"], r["train_plates"]), []).append(r)
    for (n_time, stream, plates), rs in groups.items():
        epochs = rs[0]["epochs_run"] or 0
        if stream:
            what, seen = f"{stream:,} fresh plates per epoch", f"{stream * epochs:,} ({stream * epochs:,})"
        else:
            what = f"{plates:,} plates of a store" if plates else "a store"
            seen = f"{plates * epochs:,} ({plates:,})" if plates else "–"
        walls = [r["fit_seconds"] / 60 for r in rs if r.get("fit_seconds")]
        lines.append(
            f"| {n_time if n_time is not None else '–'} | {what} | {seen} | "
            + (f"{sum(walls) / len(walls):.1f}" if walls else "–")
            + " | "
            + " | ".join(mean_cell([r[f"dsc{c}"] for r in rs]) for c in SIZE_COLUMNS)
            + " |"
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
            + " | ".join(mean_cell([r[f"dsc{c}"] for r in rs]) for c in SIZE_COLUMNS)
            + f" | {mean_cell([r['accuracy'] for r in rs])} | {rs[0]['parameters']:,} | "
            + (f"{sum(sps) / len(sps):.1f}" if sps else "–")
            + " |"
        )
    return "\n".join(lines) + "\n"
