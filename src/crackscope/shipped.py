"""The models shipped inside the package, by name.

Each shipped model is a model folder (``config.yaml``, ``model.safetensors``, ``metrics.json``, ...,
as ``crackscope package`` writes it) under ``crackscope/weights/<data>/<name>/``, package data read
with :mod:`importlib.resources`, so that a wheel installed anywhere finds its models. A model's name
is its folder's path there (``sd-saliency-900/unet_cbam``); a *pair* (``cracks``, ``deepcrack``) is
a segmenter with the tile classifier whose operating point was chosen for it, the two models of
``crackscope inspect-image``. Where one model is asked for, a pair's name means its segmenter;
``--classifier cracks`` means its tile classifier.

:func:`resolve` turns what a user typed (a run directory, a model folder or a name) into a folder;
:func:`describe` gives ``crackscope models`` and ``GET /api/models`` their rows: task, input,
operating point, the headline number measured on held-out data (read from the folder's own metrics
file, never typed here) and the licence of the training data. This module imports neither torch
nor the engine.
"""

from __future__ import annotations

import atexit
import contextlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from crackscope.errors import InputError

__all__ = [
    "DEFAULT_PAIR",
    "MODELS",
    "PACKED_SCREENS",
    "PAIRS",
    "DATASETS",
    "ShippedModel",
    "Dataset",
    "weights_root",
    "folder",
    "resolve",
    "is_name",
    "label",
    "describe",
]

DEFAULT_PAIR = "cracks"  # crackscope inspect-image's models when none is given


@dataclass(frozen=True)
class Dataset:
    """A training data set and the terms it is published under, as its authors state them."""

    name: str
    licence: str
    cite: str


# What each data set's authors say of its use (their repositories and pages; docs/models.md).
DATASETS = {
    "DeepCrack": Dataset(
        "DeepCrack",
        "no licence stated; published by its authors as a public benchmark, to be cited",
        "Liu et al., Neurocomputing 2019",
    ),
    "Crack500": Dataset(
        "Crack500",
        "no licence stated; its authors ask users to cite their papers",
        "Zhang et al., ICIP 2016; Yang et al., T-ITS 2019",
    ),
    "NEU-CLS": Dataset(
        "NEU-CLS", "no licence stated; a research database, to be cited", "Song & Yan, Appl. Surf. Sci. 2013"
    ),
    "SD-saliency-900": Dataset(
        "SD-saliency-900", "no licence stated; a research data set, to be cited", "Song et al., 2020"
    ),
    "crackscope simulator": Dataset(
        "crackscope simulator",
        "MIT, as crackscope: plates simulated by crackscope simulate wavefield",
        "this package",
    ),
}


@dataclass(frozen=True)
class ShippedModel:
    """One shipped model folder and what ``crackscope models`` says of it.

    ``headline``: (metrics file in the folder, dotted key, what it is, digits): the number is read
    from the file; ``count``: (dotted key of the number of held-out items, their unit)."""

    name: str
    task: str
    input: str
    trained_on: tuple[str, ...]
    headline: tuple[str, str, str, int]
    count: tuple[str, str]
    pair: str | None = None


def _tile_classifier(name: str, network: str, trained_on: tuple[str, ...], tile: int, pair: str | None) -> ShippedModel:
    """A crack / no-crack classifier of ``tile``-px tiles (``network`` says which), a cascade's screen."""
    return ShippedModel(
        name,
        f"crack / no-crack per {tile} px tile ({network}), the cascade's screen",
        f"grey {tile} x {tile} tiles of a photo",
        trained_on,
        ("metrics.json", "accuracy", "tile accuracy at the argmax", 4),
        ("n_images", "held-out tiles"),
        pair=pair,
    )


def _cascade_pair(
    pair: str, trained_on: tuple[str, ...], photos: str, tile: int, screen: str
) -> tuple[ShippedModel, ShippedModel]:
    """The segmenter and the tile classifier (``tile``-px tiles, the network ``screen``) of a crack
    pair: the models of inspect-image."""
    return (
        ShippedModel(
            f"{pair}/segmenter",
            "crack segmentation (a mask and measured cracks)",
            photos,
            trained_on,
            ("metrics.json", "f1", "pixel F1 on held-out photos", 4),
            ("n_images", "photos"),
            pair=pair,
        ),
        _tile_classifier(f"{pair}/tile_classifier", screen, trained_on, tile, pair),
    )


MODELS: dict[str, ShippedModel] = {
    m.name: m
    for m in (
        *_cascade_pair(
            "cracks", ("DeepCrack", "Crack500"), "RGB photo of concrete or asphalt, any size", 128, "float ResNet-20"
        ),
        # the pair's 1-bit screen until 2026-12-07, for --runtime packed (not a pair member)
        _tile_classifier("cracks/tile_classifier_1bit", "1-bit AOIE-Net", ("DeepCrack", "Crack500"), 128, None),
        *_cascade_pair("deepcrack", ("DeepCrack",), "RGB photo, any size (DeepCrack's camera)", 64, "1-bit AOIE-Net"),
        ShippedModel(
            "neu-cls/aoie_net",
            "steel surface defect class, 6 classes (1-bit AOIE-Net)",
            "grey 200 x 200 image",
            ("NEU-CLS",),
            ("metrics.json", "accuracy", "accuracy", 4),
            ("n_images", "held-out images"),
        ),
        ShippedModel(
            "neu-cls/resnet20",
            "steel surface defect class, 6 classes (float ResNet-20)",
            "grey 200 x 200 image",
            ("NEU-CLS",),
            ("metrics.json", "accuracy", "accuracy", 4),
            ("n_images", "held-out images"),
        ),
        ShippedModel(
            "sd-saliency-900/unet",
            "steel surface defect segmentation (U-Net)",
            "grey image, resized to 128 x 128",
            ("SD-saliency-900",),
            ("metrics.json", "miou", "mIoU", 4),
            ("n_images", "held-out images"),
        ),
        ShippedModel(
            "sd-saliency-900/unet_cbam",
            "steel surface defect segmentation (U-Net + CBAM)",
            "grey image, resized to 128 x 128",
            ("SD-saliency-900",),
            ("metrics.json", "miou", "mIoU", 4),
            ("n_images", "held-out images"),
        ),
        ShippedModel(
            "wavefield/mcan-rc-small",
            "crack mask inside a plate from its wave field (MicroCrackAttentionNeXt-RC)",
            "x/y displacements at 9 x 9 sensors, 250 time steps (small preset)",
            ("crackscope simulator",),
            ("metrics_seed1001.json", "dsc", "DSC on fresh plates of an unseen seed", 3),
            ("n_samples", "plates"),
        ),
        ShippedModel(
            "wavefield/mcan-small",
            "crack mask inside a plate from its wave field (MicroCrackAttentionNeXt as published)",
            "x/y displacements at 9 x 9 sensors, 250 time steps (small preset)",
            ("crackscope simulator",),
            ("metrics_seed1001.json", "dsc", "DSC on fresh plates of an unseen seed", 3),
            ("n_samples", "plates"),
        ),
        ShippedModel(
            "wavefield/mcan-small-multi",
            "line-crack masks inside a plate from its wave field (MicroCrackAttentionNeXt)",
            "x/y displacements at 9 x 9 sensors, 250 time steps (small-multi preset)",
            ("crackscope simulator",),
            ("metrics.json", "dsc", "DSC on the held-out plates", 3),
            ("n_samples", "plates"),
        ),
    )
}

# a pair's full-precision screen -> the shipped 1-bit screen that --runtime packed can run instead
PACKED_SCREENS = {"cracks/tile_classifier": "cracks/tile_classifier_1bit"}
PAIRS = {"cracks": "DeepCrack + Crack500 photos (the default)", "deepcrack": "DeepCrack photos only"}
_ROLE_SUFFIX = {"segmenter": "segmenter", "classifier": "tile_classifier"}

_extracted = contextlib.ExitStack()  # only for a package imported from a zip file
atexit.register(_extracted.close)


@cache
def weights_root() -> Path:
    """The folder of the shipped models, ``crackscope/weights`` of the installed package (a plain
    folder for a wheel or an editable install; extracted once if the package runs from a zip)."""
    root = resources.files("crackscope") / "weights"
    if isinstance(root, Path):
        return root
    return _extracted.enter_context(resources.as_file(root))  # pragma: no cover (zip imports)


def _canonical(name: str) -> str:
    return str(name).strip().rstrip("/")


def is_name(value) -> bool:
    """Whether ``value`` is the name of a shipped model or pair."""
    return _canonical(value) in MODELS or _canonical(value) in PAIRS


def folder(name: str, role: str = "segmenter") -> Path:
    """The folder of the shipped model ``name``; a pair's name gives its ``role`` (``"segmenter"``
    or ``"classifier"``). One :class:`InputError` line naming the choices for an unknown name."""
    name = _canonical(name)
    if name in PAIRS:
        name = f"{name}/{_ROLE_SUFFIX[role]}"
    if name not in MODELS:
        raise InputError(f"no shipped model {name!r}; choose one of {', '.join([*PAIRS, *MODELS])}")
    return weights_root() / name


def resolve(value, role: str = "segmenter") -> tuple[Path, str]:
    """(folder, label) of what a user gave where a run or model folder is taken: an existing folder
    as it is, else a shipped model's name, else the path unchanged for the caller's own error (no
    such run directory). The label is the shipped model's name for a folder of the package's (so
    reports name ``cracks/segmenter``, not a path into site-packages), else the path as given."""
    path = Path(value)
    if not path.is_dir() and is_name(value):
        path = folder(value, role)
    return path, label(path)


def label(path) -> str:
    """A shipped model folder's name (``cracks/segmenter``), any other path as it is."""
    try:
        return Path(path).resolve().relative_to(weights_root().resolve()).as_posix()
    except ValueError:
        return str(path)


def _dotted(data: dict, key: str):
    for part in key.split("."):
        data = data[part]
    return data


def _operating_point(path: Path, cfg: dict) -> str:
    """The operating point a folder's predictions use, from its files (as ``run_threshold`` reads them)."""
    op_file = path / "operating_point.json"
    point = json.loads(op_file.read_text()) if op_file.is_file() else None
    if (cfg.get("pipeline") or "wavefield") == "classify":
        if point is None:
            return "the most probable class"
        windows = f", for {point['window']}-px windows" if point.get("window") else ""
        return f"crack probability >= {point['threshold']:.3g} flags a tile (chosen on validation images{windows})"
    if point is None:
        return f"probability >= {cfg['trainer']['threshold']:g}"
    return f"probability >= {point['threshold']:.3g} (chosen on validation data)"


def describe(name: str) -> dict:
    """``crackscope models``' row of the shipped model ``name``: name, task, input, operating point,
    headline (the number, what it is, on how many held-out items, from which file), training data
    and licences, pair and folder."""
    m = MODELS[name]
    path = folder(name)
    cfg = yaml.safe_load((path / "config.yaml").read_text()) or {}
    file, key, what, digits = m.headline
    metrics = json.loads((path / file).read_text())
    value = float(_dotted(metrics, key))
    count_key, unit = m.count
    n = int(_dotted(metrics, count_key))
    return {
        "name": m.name,
        "pair": m.pair,
        "task": m.task,
        "input": m.input,
        "pipeline": cfg.get("pipeline") or "wavefield",
        "operating_point": _operating_point(path, cfg),
        "headline": {"value": round(value, digits), "metric": what, "n": n, "unit": unit, "file": file},
        "headline_text": f"{what} {value:.{digits}f} ({n:,} {unit})",
        "trained_on": [{"dataset": d, "licence": DATASETS[d].licence, "cite": DATASETS[d].cite} for d in m.trained_on],
        "folder": str(path),
    }
