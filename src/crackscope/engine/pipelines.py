"""What differs between pipelines inside the one engine: the data geometry, the split, the Lightning
data module and the evaluation written at the end of training. Everything else (model and loss
registries, the Lightning task, checkpoints, resume, DDP, grids) is shared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from crackscope.engine.runs import pipeline_of  # noqa: F401 (lives in runs: light to import)
from crackscope.errors import InputError
from crackscope.metrics import SEGMENTATION_VAL_KEYS


def _segmentation_metric(cfg, geometry, classes=None):
    from crackscope.metrics import THRESHOLD_GRID, SegmentationMetrics

    sweep = THRESHOLD_GRID if getattr(cfg.trainer, "choose_threshold", False) else ()
    return SegmentationMetrics(threshold=cfg.trainer.threshold, sweep=sweep)


@dataclass(frozen=True)
class Pipeline:
    geometry: Callable  # (data_cfg) -> model keywords
    split: Callable  # (data_cfg, seed, run_dir) -> split record (train/val/test + extras)
    datamodule: Callable  # (data_cfg, seed, split) -> LightningDataModule
    evaluate: Callable  # (run_dir, cfg, split, extra) -> metrics dict, written to RUN/metrics.json
    # (cfg, geometry, class names or None) -> a fresh torchmetrics Metric for validation / test ...
    metric: Callable = _segmentation_metric
    # ... and the keys of its compute() logged as val/<key> (the first on the progress bar)
    logged: tuple[str, ...] = SEGMENTATION_VAL_KEYS


def _wavefield() -> Pipeline:
    from crackscope.engine.data import WavefieldDataModule, make_split, store_geometry
    from crackscope.engine.evaluate import choose_threshold, evaluate_run, write_simulate_yaml

    def evaluate(run_dir, cfg, split, extra):
        write_simulate_yaml(run_dir, cfg.data.store)
        if cfg.trainer.choose_threshold:  # on the validation plates only, before the test plates are scored
            choose_threshold(run_dir, cfg.data.store, split["val"])
        return evaluate_run(run_dir, cfg.data.store, run_dir, indices=split["test"], extra=extra)

    return Pipeline(
        geometry=lambda data: store_geometry(data.store),
        split=make_split,
        datamodule=WavefieldDataModule,
        evaluate=evaluate,
    )


def _surface() -> Pipeline:
    from crackscope.engine.surface import SurfaceDataModule, evaluate_surface_run, make_surface_split, surface_geometry

    return Pipeline(
        geometry=surface_geometry,
        split=make_surface_split,
        datamodule=SurfaceDataModule,
        evaluate=lambda run_dir, cfg, split, extra: evaluate_surface_run(run_dir, cfg.data.root, run_dir,
                                                                         stems=split["stems"]["test"], extra=extra),
    )


def _classify() -> Pipeline:
    from crackscope.engine.classify import (
        CLASSIFICATION_KEYS,
        ClassificationDataModule,
        classification_metric,
        classify_geometry,
        evaluate_classification_run,
        make_classification_split,
    )

    return Pipeline(
        geometry=classify_geometry,
        split=make_classification_split,
        datamodule=ClassificationDataModule,
        evaluate=lambda run_dir, cfg, split, extra: evaluate_classification_run(
            run_dir, cfg.data.root, run_dir, format=split["format"], stems=split["stems"]["test"], extra=extra),
        metric=classification_metric,
        logged=CLASSIFICATION_KEYS,
    )


_PIPELINES = {"wavefield": _wavefield, "surface": _surface, "classify": _classify}


def get(name: str) -> Pipeline:
    if name not in _PIPELINES:
        raise InputError(f"unknown pipeline {name!r}; choose one of {', '.join(_PIPELINES)}")
    return _PIPELINES[name]()
