"""Run directories: what is in them and how to rebuild a trained model from one, without executing code.

RUN/
  config.yaml          the resolved TrainConfig
  split.json           train/val/test sample indices (and stems; class names for classify)
  model.safetensors    the selected weights (best validation score: trainer.monitor), loadable without pickle
  checkpoints/         Lightning checkpoints, one per epoch + last.ckpt (for --resume)
  logs/                CSV logs (and TensorBoard / MLflow when enabled)
  metrics.json         test metrics (per crack size / defect class), parameters, training throughput
  operating_point.json the probability threshold chosen on the validation split (when the run chose one)
  simulate.yaml        wave field: the simulator settings of the training store (fresh plates, geometry check)
  figures/
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from crackscope.config import validate
from crackscope.engine.config import TrainConfig
from crackscope.engine.pipelines import pipeline_of  # noqa: F401  (re-exported: a run's pipeline name)
from crackscope.errors import InputError


def build_model(cfg, geometry: dict | None = None) -> torch.nn.Module:
    """The registered model of ``cfg.model`` with the data geometry filled in (config keys win).

    ``model.input_norm: per_image`` puts :class:`~crackscope.nn.input_norm.PerImageStandardize`
    in front of it (brightness- and contrast-independent input; weights then named ``net.*``)."""
    from crackscope import models
    from crackscope.nn.input_norm import with_input_norm

    kwargs = {**_accepted(models.get(cfg.model.name), geometry or {}), **cfg.model.kwargs}
    input_norm = kwargs.pop("input_norm", None)
    try:
        return with_input_norm(models.create(cfg.model.name, **kwargs), input_norm)
    except TypeError as err:
        raise InputError(f"model: {cfg.model.name} does not accept these options ({err})") from None


def _accepted(cls, geometry: dict) -> dict:
    """The geometry keys that ``cls``'s constructor takes (a store may describe more than a model
    uses, e.g. the wave-field acquisition that only a delay-and-sum input needs)."""
    import inspect

    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(geometry)
    return {k: v for k, v in geometry.items() if k in params}


def build_loss(cfg) -> torch.nn.Module:
    from crackscope import losses

    try:
        return losses.create(cfg.loss.name, **cfg.loss.kwargs)
    except TypeError as err:
        raise InputError(f"loss: {cfg.loss.name} does not accept these options ({err})") from None


def load_run(run_dir: str | Path):
    """(config, model with trained weights, geometry) from a run directory."""
    run_dir = Path(run_dir)
    cfg_path, weights = run_dir / "config.yaml", run_dir / "model.safetensors"
    if not cfg_path.exists():
        raise InputError(f"{run_dir} is not a crackscope run (no config.yaml)")
    if not weights.exists():
        raise InputError(f"{run_dir} has no trained weights (model.safetensors); train it or --resume it first")
    raw = yaml.safe_load(cfg_path.read_text())
    geometry = raw.pop("geometry", None) or {}
    if "sensor_grid" in geometry:
        geometry["sensor_grid"] = tuple(geometry["sensor_grid"])
    cfg = validate(TrainConfig, raw, f"{cfg_path}")
    model = build_model(cfg, geometry)
    load_weights(model, weights, f"the {cfg.model.name} described by {cfg_path}")
    model.eval()
    return cfg, model, geometry


def load_weights(model: torch.nn.Module, weights: str | Path, described: str) -> None:
    """Load a safetensors file into ``model`` (every tensor, matching shapes); one
    :class:`InputError` line naming the file when it is unreadable or does not fit ``described``."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights))
    except Exception as err:  # safetensors' own error type: a corrupt or truncated file
        raise InputError(f"cannot read {weights}: {err}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise InputError(f"{weights} does not fit {described} ({first})") from None


def init_weights_file(path: str | Path) -> Path:
    """The safetensors file of ``trainer.init_weights``: PATH/model.safetensors for a run directory
    or model folder, PATH itself for a file; one :class:`InputError` line when there is none."""
    path = Path(path)
    file = path / "model.safetensors" if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"trainer.init_weights {path}: no such run directory, model folder or .safetensors file")
    return file


def model_classes(run_dir: str | Path, geometry: dict) -> list[str]:
    """The class names of a run's outputs, in order (recorded in RUN/split.json)."""
    n = int(geometry.get("classes", 0))
    split_file = Path(run_dir) / "split.json"
    classes = json.loads(split_file.read_text()).get("classes") if split_file.exists() else None
    if classes is None:
        raise InputError(f"{run_dir}: no class names (split.json with 'classes'); cannot match the data's classes")
    if len(classes) != n:
        raise InputError(f"{run_dir}: split.json names {len(classes)} classes but the model has {n} outputs")
    return list(classes)


OPERATING_POINT_FILE = "operating_point.json"  # {"threshold": t, ...} chosen on validation data


def read_operating_point(run_dir: str | Path) -> dict | None:
    """RUN/operating_point.json, checked, or ``None`` when the run has none: the one reader of the
    file. ``threshold`` must lie inside (0, 1); ``window`` (px) and ``overlap`` (a fraction in
    [0, 1)), which a cascade's tile classifier records for the segmentation windows its threshold
    was chosen with, are returned as int / float when present. One :class:`InputError` line
    naming the file otherwise."""
    path = Path(run_dir) / OPERATING_POINT_FILE
    if not path.is_file():
        return None
    try:
        point = json.loads(path.read_text())
        point["threshold"] = float(point["threshold"])
        if point.get("window") is not None:
            point["window"] = int(point["window"])
        if point.get("overlap") is not None:
            point["overlap"] = float(point["overlap"])
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: no readable 'threshold' ({err})") from None
    if not 0.0 < point["threshold"] < 1.0:
        raise InputError(f"{path}: threshold {point['threshold']} is not inside (0, 1)")
    if point.get("window") is not None and point["window"] < 1:
        raise InputError(f"{path}: window {point['window']} is not a positive number of pixels")
    if point.get("overlap") is not None and not 0.0 <= point["overlap"] < 1.0:
        raise InputError(f"{path}: overlap {point['overlap']} is not in [0, 1)")
    return point


def save_operating_point(run_dir: str | Path, point: dict) -> dict:
    """Write RUN/operating_point.json (atomically): the one writer of the file. ``point`` needs a
    ``threshold`` inside (0, 1); what else it holds (the score there, which data it was chosen on,
    the candidates, a cascade's window / overlap) is recorded as given."""
    from crackscope.io import atomic_write_text

    threshold = float(point["threshold"])
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"operating point threshold {threshold} is not inside (0, 1)")
    atomic_write_text(Path(run_dir) / OPERATING_POINT_FILE, json.dumps(point, indent=2) + "\n")
    return point


def run_threshold(run_dir: str | Path, cfg) -> float:
    """The probability threshold a run's predictions use: RUN/operating_point.json's (chosen on its
    validation split) when present, else the config's ``trainer.threshold``."""
    point = read_operating_point(run_dir)
    return float(cfg.trainer.threshold) if point is None else point["threshold"]


def write_operating_point(run_dir: str | Path, counts: torch.Tensor, thresholds, **record) -> dict:
    """RUN/operating_point.json: the threshold of ``thresholds`` with the highest micro DSC (pixel
    F1) in the (K, 3) TP / FP / FN ``counts`` of the validation data (see
    :func:`crackscope.metrics.best_threshold`), with ``record`` (which data it was chosen on)."""
    from crackscope.metrics import best_threshold

    best = best_threshold(counts, thresholds)
    point = {"threshold": best["threshold_best"], "dsc": best["dsc_best"], **record, "candidates": list(thresholds)}
    return save_operating_point(run_dir, point)


MODEL_FOLDER_FILES = (
    "config.yaml",
    "model.safetensors",
    "split.json",
    "metrics.json",
    OPERATING_POINT_FILE,
    "simulate.yaml",
)
