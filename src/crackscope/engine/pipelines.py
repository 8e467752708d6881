"""The pipeline registry: everything that differs between crackscope's pipelines, in one table.

:data:`REGISTRY` maps a pipeline name (``pipeline:`` in a training config, recorded in every run's
``config.yaml``) to a :class:`Pipeline`. The CLI, the config validation, the training engine,
``evaluate``, ``predict``, ``export``, ``grid`` and the cascade all look a pipeline up here; nothing
else branches on the name. A field that is ``None`` is a command the pipeline does not offer (the
CLI says so in one line, exit 2).

The functions are referenced as ``"module:function"`` strings and imported on first call, so
reading the registry (``crackscope --help``, config validation) loads no pipeline code. Adding a
pipeline is one module with its functions and one :func:`register` call (in that module, or below
for crackscope's own); ``docs/architecture.md`` walks through a complete one.

This module imports nothing from the rest of the engine and no torch, so the config, the runs and
the CLI can all import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

import yaml

from crackscope.data.formats import CLASSIFY_FORMATS, SURFACE_FORMATS
from crackscope.errors import InputError


class Lazy:
    """A function named ``"package.module:function"``, imported when first called."""

    def __init__(self, target: str):
        self.target = target
        self._fn: Callable | None = None

    def resolve(self):
        """The named object itself (a function or a class), imported on first use."""
        if self._fn is None:
            module, name = self.target.split(":")
            self._fn = getattr(import_module(module), name)
        return self._fn

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Lazy({self.target!r})"


def resolve(entry):
    """A registry field's object: a :class:`Lazy` entry imported, anything else as it is."""
    return entry.resolve() if isinstance(entry, Lazy) else entry


TASKS = ("segmentation", "classification", "study")


@dataclass(frozen=True)
class Pipeline:
    """One pipeline's entry points. The argument lists are the contract every entry fulfils.

    What the pipeline is:

    * ``task``: ``"segmentation"`` (a probability per pixel, thresholded at an operating point that
      ``trainer.choose_threshold`` may choose on validation data; ONNX exports keep the spatial
      axes and record the threshold), ``"classification"`` (one class per input; the cascade's tile
      classifier and bit-packed export) or ``"study"`` (its own runner, no engine);
    * ``inputs``: what its models read (``"images"``: the cascade takes a classifier and a segmenter
      of images from any pipeline that says so);
    * ``data_config``: the pydantic class of a training config's ``data:`` section, with a
      ``kind`` field equal to the pipeline's name;
    * ``data_help`` / ``predict_help``: what ``--data`` is for ``evaluate`` / ``predict``; ``format_help``: the
      ``--format`` values, described (every one of ``formats`` named);
    * ``threshold_monitor``: the validation score that picks the best epoch when the run chooses
      its threshold (default: ``monitor``).

    Training with the shared Lightning engine (:func:`crackscope.engine.train.train`):

    * ``geometry(data_cfg) -> dict``: the model keywords the data fixes (sizes, channels, classes);
    * ``split(data_cfg, seed, run_dir) -> dict``: train / val / test parts (+ extras such as class
      names), recorded in RUN/split.json;
    * ``datamodule(data_cfg, seed, split) -> LightningDataModule``;
    * ``metric(cfg, geometry, classes) -> torchmetrics.Metric`` for validation, of which ``logged``
      keys are logged as ``val/<key>`` (the first on the progress bar); ``monitor`` selects the best
      epoch unless the config names another;
    * ``finish_training(run_dir, cfg, split, extra) -> dict``: scores the test part into RUN/metrics.json.

    Using a trained run or shipped model folder:

    * ``evaluate(run_dir, data, out_dir, format) -> dict``: metrics on labelled data (the run's test
      part when ``data`` is its training data), OUT/metrics.json and figures; ``formats``: the
      ``--format`` values it accepts (empty: it takes none);
    * ``report(result, out_dir) -> list[str]``: the lines ``crackscope evaluate`` prints;
    * ``predict(run_dir, data, out_dir, log) -> str``: predictions on unlabelled data, and the line
      ``crackscope predict`` prints;
    * ``onnx_inputs(cfg, geometry, batch) -> (input name, shapes to check, dynamic axes)`` for export;
    * ``study(**options) -> dict``: a pipeline with its own runner instead of the engine.

    Experiment grids (:mod:`crackscope.engine.grid`):

    * ``grid_row(cfg, metrics) -> dict``: one run's row of GRID/results.csv from its metrics.json;
    * ``grid_tables``: ``{table name: function(rows) -> markdown}``, the layouts ``table:`` may name.
    """

    name: str
    summary: str
    task: str = "segmentation"
    inputs: str = ""
    data_config: Any = None
    data_help: str = ""
    predict_help: str = ""
    format_help: str = ""
    threshold_monitor: str | None = None
    geometry: Callable[[Any], dict] | None = None
    split: Callable[[Any, int, Path], dict] | None = None
    datamodule: Callable[[Any, int, dict], Any] | None = None
    metric: Callable[[Any, dict, list[str] | None], Any] | None = None
    logged: Any = ()  # a tuple of keys, or a Lazy one
    monitor: str | None = None
    finish_training: Callable[[Path, Any, dict, dict], dict] | None = None
    evaluate: Callable[[Path, Path, Path, str | None], dict] | None = None
    formats: tuple[str, ...] = ()
    report: Callable[[dict, Path], list[str]] | None = None
    predict: Callable[[Path, Path, Path, Callable[[str], None]], str] | None = None
    onnx_inputs: Callable[[Any, dict, int], tuple[str, list[tuple[int, ...]], dict]] | None = None
    study: Callable[..., dict] | None = None
    grid_row: Callable[[Any, dict], dict] | None = None
    grid_tables: dict[str, Callable[[list[dict]], str]] = field(default_factory=dict)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"pipeline {self.name!r}: task {self.task!r} is not one of {', '.join(TASKS)}")
        if self.datamodule is not None and self.data_config is None:
            raise ValueError(f"pipeline {self.name!r} trains, so it needs a data_config class")

    @property
    def trains(self) -> bool:
        """Whether ``crackscope train`` (the Lightning engine) runs this pipeline."""
        return self.datamodule is not None

    @property
    def segments(self) -> bool:
        """Whether its models give a probability per pixel, thresholded at an operating point."""
        return self.task == "segmentation"

    def require(self, command: str, field: str) -> Callable:
        """The entry point ``field`` for ``command``, or one InputError line if there is none."""
        fn = getattr(self, field)
        if fn is None:
            raise InputError(f"'crackscope {command}' does not apply to the {self.name} pipeline")
        return fn


REGISTRY: dict[str, Pipeline] = {}


def register(pipeline: Pipeline) -> Pipeline:
    if pipeline.name in REGISTRY:
        raise ValueError(f"pipeline {pipeline.name!r} is registered twice")
    REGISTRY[pipeline.name] = pipeline
    return pipeline


def get(name: str) -> Pipeline:
    """The registered pipeline ``name``; InputError naming the choices otherwise."""
    if name not in REGISTRY:
        raise InputError(f"unknown pipeline {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def pipeline_of(run_dir: str | Path) -> str:
    """The name of the pipeline a run directory (or shipped model folder) was trained for."""
    cfg_path = Path(run_dir) / "config.yaml"
    if not cfg_path.exists():
        raise InputError(f"{run_dir} is not a crackscope run or model folder (no config.yaml)")
    try:
        raw = yaml.safe_load(cfg_path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{cfg_path} is not valid YAML: {err}") from None
    return str(raw.get("pipeline", "wavefield"))


def of_run(run_dir: str | Path) -> Pipeline:
    """The pipeline a run directory (or shipped model folder) was trained for."""
    return get(pipeline_of(run_dir))


def trainable() -> tuple[str, ...]:
    """The pipelines ``crackscope train`` accepts."""
    return tuple(name for name, p in REGISTRY.items() if p.trains)


def with_task(task: str) -> tuple[str, ...]:
    """The pipelines of one task (``"segmentation"``, ``"classification"`` or ``"study"``)."""
    return tuple(name for name, p in REGISTRY.items() if p.task == task)


def data_help(command: str = "evaluate") -> str:
    """What ``--data`` is, pipeline by pipeline, for ``crackscope evaluate`` or ``predict`` help."""
    field = "predict_help" if command == "predict" else "data_help"
    return " ".join(f"{p.name}: {getattr(p, field)}." for p in REGISTRY.values() if getattr(p, field))


def format_help() -> str:
    """The ``--format`` values, pipeline by pipeline (for ``crackscope evaluate`` help)."""
    return " ".join(f"{p.name}: {p.format_help}." for p in REGISTRY.values() if p.formats)


register(
    Pipeline(
        name="wavefield",
        summary="crack masks inside a plate from a 9 x 9 sensor grid's wave field (MicroCrackAttentionNeXt)",
        task="segmentation",
        inputs="wave field",
        data_config=Lazy("crackscope.engine.config:WavefieldData"),
        data_help="a wave-field store (crackscope simulate wavefield)",
        predict_help="a wave-field store",
        threshold_monitor="val/dsc_best",
        geometry=Lazy("crackscope.engine.wavefield:wavefield_geometry"),
        split=Lazy("crackscope.engine.wavefield:make_split"),
        datamodule=Lazy("crackscope.engine.wavefield:WavefieldDataModule"),
        metric=Lazy("crackscope.engine.module:segmentation_metric"),
        logged=Lazy("crackscope.metrics:SEGMENTATION_VAL_KEYS"),
        monitor="val/dsc",
        finish_training=Lazy("crackscope.engine.wavefield:finish_wavefield_training"),
        evaluate=Lazy("crackscope.engine.wavefield:evaluate_wavefield"),
        report=Lazy("crackscope.engine.wavefield:report_wavefield"),
        predict=Lazy("crackscope.engine.wavefield:predict_wavefield"),
        onnx_inputs=Lazy("crackscope.engine.wavefield:wavefield_onnx_inputs"),
        grid_row=Lazy("crackscope.engine.wavefield:wavefield_grid_row"),
        grid_tables={
            "activation_loss": Lazy("crackscope.engine.wavefield:activation_loss_table"),
            "models": Lazy("crackscope.engine.wavefield:model_table"),
            "plates": Lazy("crackscope.engine.wavefield:plates_table"),
            "data": Lazy("crackscope.engine.wavefield:data_table"),
        },
    )
)

register(
    Pipeline(
        name="surface",
        summary="defect masks on surface images (U-Net + CBAM, U-Net, SegNet, FCN-8s, DeepLabv3+)",
        task="segmentation",
        inputs="images",
        data_config=Lazy("crackscope.engine.config:SurfaceData"),
        data_help="an image / mask dataset folder (its test split if it is the training data)",
        predict_help="a folder of images or one image",
        format_help="sd-saliency-900, folder (images/ + masks/), deepcrack, crack500 or crackpatches",
        geometry=Lazy("crackscope.engine.surface:surface_geometry"),
        split=Lazy("crackscope.engine.surface:make_surface_split"),
        datamodule=Lazy("crackscope.engine.surface:SurfaceDataModule"),
        metric=Lazy("crackscope.engine.module:segmentation_metric"),
        logged=Lazy("crackscope.metrics:SEGMENTATION_VAL_KEYS"),
        monitor="val/miou",
        finish_training=Lazy("crackscope.engine.surface:finish_surface_training"),
        evaluate=Lazy("crackscope.engine.surface:evaluate_surface"),
        formats=SURFACE_FORMATS,
        report=Lazy("crackscope.engine.surface:report_surface"),
        predict=Lazy("crackscope.engine.surface:predict_surface_folder"),
        onnx_inputs=Lazy("crackscope.engine.surface:surface_onnx_inputs"),
        grid_row=Lazy("crackscope.engine.surface:surface_grid_row"),
        grid_tables={"surface": Lazy("crackscope.engine.surface:surface_table")},
    )
)

register(
    Pipeline(
        name="classify",
        summary="one defect class per image or tile (AOIE-Net and binary / full-precision ResNets)",
        task="classification",
        inputs="images",
        data_config=Lazy("crackscope.engine.config:ClassificationData"),
        data_help="a labelled image dataset folder (its test split if it is the training data)",
        predict_help="a folder of images or one image",
        format_help="auto, neu-cls, folder (one folder per class), cifar10 or deepcrack-tiles",
        geometry=Lazy("crackscope.engine.classify:classify_geometry"),
        split=Lazy("crackscope.engine.classify:make_classification_split"),
        datamodule=Lazy("crackscope.engine.classify:ClassificationDataModule"),
        metric=Lazy("crackscope.engine.classify:classification_metric"),
        logged=Lazy("crackscope.metrics:CLASSIFICATION_VAL_KEYS"),
        monitor="val/accuracy",
        finish_training=Lazy("crackscope.engine.classify:finish_classification_training"),
        evaluate=Lazy("crackscope.engine.classify:evaluate_classification"),
        formats=CLASSIFY_FORMATS,
        report=Lazy("crackscope.engine.classify:report_classification"),
        predict=Lazy("crackscope.engine.classify:predict_classification_folder"),
        onnx_inputs=Lazy("crackscope.engine.classify:classify_onnx_inputs"),
        grid_row=Lazy("crackscope.engine.classify:classify_grid_row"),
        grid_tables={"classify": Lazy("crackscope.engine.classify:classify_table")},
    )
)

register(
    Pipeline(
        name="harmonics",
        summary="micro-crack group quantity and size from 2nd / 3rd harmonics; evidence fusion (re-split study)",
        task="study",
        inputs="harmonic signals",
        study=Lazy("crackscope.engine.harmonics_protocol:run_harmonics_study"),
    )
)
