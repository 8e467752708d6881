"""The image-classification pipeline ("classify") in the engine: stratified splits recorded by stem,
the Lightning data module, evaluation (accuracy, macro precision / recall / F1, confusion matrix,
per class) and prediction on a folder of images.

Data: :mod:`crackscope.data.classification` (NEU-CLS, one folder per class, CIFAR-10) and the
crack / no-crack tiles of DeepCrack (:mod:`crackscope.data.tiles`, format ``deepcrack-tiles``). The split
(:func:`make_classification_split`) is the paper protocol's stratified train/test split with the
validation part carved out of train (see :class:`~crackscope.engine.config.ClassificationData`);
RUN/split.json holds, besides the usual ``train``/``val``/``test`` indices and ``stems``, the
``classes`` (names, in the order of the model's outputs) and the resolved ``format``. The tile format
is split by source image (:func:`make_tile_split`): its ``stems`` are image stems, ``unit`` is
``"image"`` and ``tiles`` counts the tiles (and crack tiles) of each part.
Metrics: :func:`crackscope.metrics.classification_summary`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from crackscope.data.classification import (
    NEU_CLS_CLASSES,
    ImageClassificationDataset,
    detect_format,
    neu_class_of_folder,
    resize_image,
)
from crackscope.data.images import image_size
from crackscope.data.splits import group_split, stratified_split
from crackscope.data.surface import source_layout
from crackscope.data.tiles import TILE_CLASSES, TILE_FORMAT, CrackTileDataset
from crackscope.engine.data import (
    EpochSeededSampler,
    SplitDataModule,
    own_source_test_part,
    own_test_part,
    stem_positions,
)
from crackscope.engine.evaluation import provenance, write_metrics
from crackscope.engine.grid import metric_row, per_model_table
from crackscope.engine.image_predictions import (
    finish_predictions,
    image_onnx_inputs,
    list_prediction_images,
    readable_images,
    skipped_note,
)
from crackscope.engine.runs import model_classes
from crackscope.errors import InputError
from crackscope.figures import plot_confusion_matrix

SPLIT_PARTS = ("train", "val", "test")


def resolve_format(root, fmt: str) -> str:
    """``fmt``, or the detected layout of ``root`` for ``"auto"``."""
    return detect_format(root) if fmt == "auto" else fmt


def classification_dataset(
    data_cfg, root=None, format=None, stems=None, augment=False, test=False, seed: int = 0
) -> ImageClassificationDataset:
    """The dataset of ``data_cfg`` (or another ``root``/``format`` read with its size and channels),
    restricted to ``stems`` (in that order) when given. CIFAR-10: ``test`` reads the test batch.
    DeepCrack tiles: ``stems`` are the source images whose tiles are taken."""
    if (format or data_cfg.format) == TILE_FORMAT:  # root None: the config's root or sources
        return tile_dataset(data_cfg, root, images=stems, augment=augment, seed=seed)
    root = Path(root or data_cfg.root)
    fmt = resolve_format(root, format or data_cfg.format)
    kw = {
        "size": data_cfg.size,
        "channels": data_cfg.channels,
        "split": ("test" if test else "train") if fmt == "cifar10" else None,
    }
    ds = ImageClassificationDataset(root, fmt, **kw)
    if stems is not None:
        ds = ImageClassificationDataset(
            root,
            fmt,
            indices=stem_positions(ds.stems, stems, root),
            augment=augment,
            seed=seed,
            camera=_camera(data_cfg, augment),
            **kw,
        )
    return ds


def _camera(data_cfg, augment) -> dict | None:
    """The config's camera options for a dataset that augments with ``camera`` (none otherwise)."""
    return getattr(data_cfg, "camera", None) if augment == "camera" else None


def tile_dataset(data_cfg, root=None, images=None, augment=False, seed: int = 0) -> CrackTileDataset:
    """The tiles of ``data_cfg``'s image/mask pairs (its ``tiles`` spec, or the defaults when it has
    none): of ``root`` when given (in the layout of the config's source there, else DeepCrack's),
    else of the config's root or sources (``<name>/<stem>`` image stems)."""
    from crackscope.engine.config import TileSpec

    spec = getattr(data_cfg, "tiles", None) or TileSpec()
    sources = data_cfg.tile_sources
    if root is not None:
        sources = [(None, Path(root), source_layout(sources, root, "deepcrack"))]
    return CrackTileDataset(
        sources[0][1],
        sources=sources,
        tile=spec.tile,
        stride=spec.stride,
        min_crack_pixels=spec.min_crack_pixels,
        size=data_cfg.size,
        channels=data_cfg.channels,
        augment=augment,
        images=images,
        seed=seed,
        camera=_camera(data_cfg, augment),
    )


def dataset_classes(root, fmt: str) -> list[str]:
    """Class names of a dataset in label order."""
    if fmt == TILE_FORMAT:
        return list(TILE_CLASSES)
    return list(ImageClassificationDataset(root, fmt).classes)


def classify_geometry(data_cfg) -> dict:
    """Model keywords implied by the data: input channels and one logit per class."""
    return {"in_channels": int(data_cfg.channels), "classes": len(dataset_classes(data_cfg.root, data_cfg.format))}


def _check_images(ds: ImageClassificationDataset, data_cfg) -> None:
    """Every image file's header is readable, and sizes agree when images share unresized batches."""
    if ds.files is None:  # CIFAR-10: 32 x 32 pixels held in memory
        return
    sizes = {image_size(p) for p in ds.files}  # InputError naming an unreadable file
    if data_cfg.size is None and len(sizes) > 1 and data_cfg.batch_size > 1:
        raise InputError(
            f"data.root {data_cfg.root}: images of {len(sizes)} different sizes cannot share a batch; "
            f"set data.size (resize) or data.batch_size=1"
        )


def _required_parts(data_cfg) -> tuple[str, ...]:
    """The split parts that must not be empty: all three, or train and test without validation."""
    return SPLIT_PARTS if data_cfg.has_validation else ("train", "test")


def make_classification_split(data_cfg, seed: int, run_dir: Path) -> dict:
    """Stratified per class from ``seed``; reused from RUN/split.json on resume.

    Two fractions [train, test]: ``stratified_split(targets, split, seed)`` gives the test part
    (exactly the paper protocol's 8:2 test part), then ``val_fraction`` of each class of its train
    part becomes the validation part (``stratified_split`` again, same seed). Three fractions:
    one stratified three-way split. CIFAR-10: the test batch is the test part; validation is carved
    out of the training batches. ``train``/``val`` index the training listing, ``test`` the test
    listing (the same listing except for CIFAR-10); ``stems`` are authoritative."""
    path = run_dir / "split.json"
    if path.exists():
        return json.loads(path.read_text())
    fmt = resolve_format(data_cfg.root, data_cfg.format)
    if fmt == TILE_FORMAT:
        return make_tile_split(data_cfg, seed)
    ds = classification_dataset(data_cfg, format=fmt)
    _check_images(ds, data_cfg)
    targets = np.asarray(ds.targets)
    vf = data_cfg.val_fraction
    test_stems = None
    if fmt == "cifar10":
        inner = (
            stratified_split(targets, (1 - vf, vf), seed)
            if vf > 0
            else {"train": list(range(len(targets))), "test": []}
        )
        test_ds = classification_dataset(data_cfg, format=fmt, test=True)
        split = {"train": inner["train"], "val": inner["test"], "test": list(range(len(test_ds)))}
        test_stems = test_ds.stems
    elif len(data_cfg.split) == 2:
        outer = stratified_split(targets, data_cfg.split, seed)
        pool = np.asarray(outer["train"], dtype=np.int64)
        inner = (
            stratified_split(targets[pool], (1 - vf, vf), seed)
            if vf > 0
            else {"train": list(range(len(pool))), "test": []}
        )
        split = {
            "train": sorted(int(pool[i]) for i in inner["train"]),
            "val": sorted(int(pool[i]) for i in inner["test"]),
            "test": outer["test"],
        }
    else:
        split = stratified_split(targets, data_cfg.split, seed)
    empty = [k for k in _required_parts(data_cfg) if not split[k]]
    if empty:
        given = (
            f"data.val_fraction {vf}"
            if fmt == "cifar10"
            else f"data.split {list(data_cfg.split)}"
            + (f" with data.val_fraction {vf}" if len(data_cfg.split) == 2 else "")
        )
        raise InputError(
            f"{given} leaves the {' and '.join(empty)} part empty for {len(ds)} images (parts are rounded per class)"
        )
    stems = {k: [ds.stems[i] for i in split[k]] for k in ("train", "val")}
    stems["test"] = [(test_stems or ds.stems)[i] for i in split["test"]]
    return {**split, "seed": seed, "format": fmt, "classes": list(ds.classes), "stems": stems}


def _group_parts(groups: list, data_cfg, seed: int) -> dict[str, list[int]]:
    """train / val / test positions in ``groups`` by group: the three fractions, or [train, test]
    with ``val_fraction`` of the training groups carved out as validation."""
    if len(data_cfg.split) == 3:
        return group_split(groups, data_cfg.split, seed)
    vf = data_cfg.val_fraction
    outer = group_split(groups, data_cfg.split, seed)
    pool = outer["train"]
    inner = (
        group_split([groups[i] for i in pool], (1 - vf, vf), seed)
        if vf > 0
        else {"train": list(range(len(pool))), "test": []}
    )
    return {
        "train": sorted(pool[i] for i in inner["train"]),
        "val": sorted(pool[i] for i in inner["test"]),
        "test": outer["test"],
    }


def make_tile_split(data_cfg, seed: int) -> dict:
    """The DeepCrack tile split, by source photo (:func:`~crackscope.data.surface.group_split` over the
    images): every tile of an image, and every crop of a photo, is in one part. Three fractions give
    exactly the ``deepcrack`` surface split of the same seed; two fractions [train, test] carve
    ``val_fraction`` of the training images out as validation, again by photo. ``train``/``val``/
    ``test`` and ``stems`` list images; ``tiles`` counts the tiles of each part. Several sources are
    each split so and joined (image stems ``<name>/<stem>``), as the surface split of the same
    sources, seed and fractions is."""
    ds = tile_dataset(data_cfg)
    groups = ds.image_groups
    split = {k: [] for k in SPLIT_PARTS}
    for name, _, _ in data_cfg.tile_sources:  # each source on its own, as the surface split does
        mine = [i for i, g in enumerate(groups) if name is None or g.startswith(f"{name}/")]
        parts = _group_parts([groups[i] for i in mine], data_cfg, seed)
        for k in SPLIT_PARTS:
            split[k] += [mine[i] for i in parts[k]]
    empty = [k for k in _required_parts(data_cfg) if not split[k]]
    if empty:
        raise InputError(
            f"data.split {list(data_cfg.split)} leaves the {' and '.join(empty)} part empty for "
            f"{len(ds.image_stems)} images of {len(set(groups))} source photos"
        )
    tiles = {}
    for k in SPLIT_PARTS:
        chosen = np.isin(ds.image_index, split[k])
        tiles[k] = {"total": int(chosen.sum()), "crack": int(ds.targets[chosen].sum())}
    spec = {"tile": ds.tile, "stride": ds.stride, "min_crack_pixels": ds.min_crack_pixels}
    return {
        **split,
        "seed": seed,
        "format": TILE_FORMAT,
        "classes": list(ds.classes),
        "unit": "image",
        "stems": {k: [ds.image_stems[i] for i in split[k]] for k in SPLIT_PARTS},
        "tiles": tiles,
        "tiling": spec,
    }


class ClassificationDataModule(SplitDataModule):
    def _loader(self, part, train=False):
        ds = classification_dataset(
            self.cfg,
            format=self.split["format"],
            stems=self.split["stems"][part],
            augment=train and self.cfg.augment,
            test=part == "test",
            seed=self.seed,
        )
        # the training set's augmentation follows the epoch: fresh workers each epoch see it
        sampler = EpochSeededSampler(len(ds), self.seed, dataset=ds) if train else None
        return DataLoader(
            ds,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0 and not train,
        )


def classification_metric(cfg, geometry: dict, classes=None):
    """A fresh validation metric: the confusion matrix of ``geometry["classes"]`` classes."""
    from crackscope.metrics import ClassificationMetrics

    return ClassificationMetrics(int(geometry["classes"]), classes)


# ---- evaluation ---------------------------------------------------------------------------------
def _label_map(data_classes: list[str], classes: list[str], data, fmt: str) -> np.ndarray:
    """Dataset label -> model output index by class name; a NEU-CLS model (classes ``Cr``, ``In``,
    ...) also takes folders named by the full class names (``crazing``, ``pitted_surface``, ...)."""
    index = {c: i for i, c in enumerate(classes)}
    neu = set(classes) <= set(NEU_CLS_CLASSES)
    mapping = []
    for c in data_classes:
        key = c if c in index or not neu else neu_class_of_folder(c)
        if key not in index:
            raise InputError(
                f"--data {data} ({fmt}): class {c!r} is not one of the model's classes ({', '.join(classes)})"
            )
        mapping.append(index[key])
    return np.asarray(mapping, dtype=np.int64)


@torch.no_grad()
def _probabilities(model, ds, batch_size: int) -> torch.Tensor:
    loader = DataLoader(ds, batch_size=batch_size)  # no workers: an unreadable image raises InputError here
    return torch.cat([torch.softmax(model(x), 1) for x, _ in loader])


def _own_test_images(cfg, run_dir: Path, data: Path, fmt: str) -> list | None:
    """The run's test part when ``data`` is its training data (one of its tile sources: that
    source's test images), else ``None``."""
    if cfg.data.sources is not None:
        sources = [(n, r, TILE_FORMAT) for n, r, _ in cfg.data.tile_sources]
        return own_source_test_part(run_dir, sources, data, fmt)
    own_root = Path(cfg.data.root).is_dir() and data.resolve() == Path(cfg.data.root).resolve()
    return own_test_part(run_dir, own_root and fmt == resolve_format(cfg.data.root, cfg.data.format))


def evaluate_classification_run(
    run_dir, data, out_dir, *, format: str | None = None, stems=None, extra: dict | None = None
) -> dict:
    """Metrics of a run (or model folder) on a classification dataset -> OUT/metrics.json and
    OUT/figures/confusion.png. On the run's own data only its test part is scored; on other data
    every image (CIFAR-10: the test batch). Nothing is written unless every image was read."""
    from crackscope.engine.runs import load_run
    from crackscope.metrics import classification_summary, multiclass_confusion

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    cfg, model, geometry = load_run(run_dir)
    classes = model_classes(run_dir, geometry)
    subset = "given stems"
    if data is None:  # the run's own data: several tile sources
        fmt, data = cfg.data.format, None
        ds = classification_dataset(cfg.data, format=fmt, stems=stems)
    else:
        data = Path(data)
        fmt = resolve_format(data, format or cfg.data.format)
        if stems is None:
            stems = _own_test_images(cfg, run_dir, data, fmt)
            subset = "test split" if stems is not None else ("test batch" if fmt == "cifar10" else "all images")
        ds = classification_dataset(cfg.data, root=data, format=fmt, stems=stems, test=fmt == "cifar10")
    data_name = cfg.data.describe() if data is None else str(data)
    if len(ds) == 0:
        raise InputError(f"--data {data_name}: no images to evaluate")
    labels = torch.from_numpy(_label_map(list(ds.classes), classes, data, fmt)[np.asarray(ds.targets)])
    same_size = cfg.data.size is not None or fmt == TILE_FORMAT
    probs = _probabilities(model, ds, cfg.data.batch_size if same_size else 1)
    result = classification_summary(multiclass_confusion(probs, labels, len(classes)), classes)
    if set(classes) <= set(NEU_CLS_CLASSES):
        result["class_names"] = [NEU_CLS_CLASSES[c] for c in classes]
    result.update(
        provenance(
            cfg,
            run_dir,
            data=data_name,
            subset=subset,
            n_samples=result["n_images"],
            format=fmt,
            size_policy="original size" if cfg.data.size is None else f"resize to {cfg.data.size}",
        )
    )
    if extra:
        result.update(extra)
    write_metrics(out_dir, result)
    plot_confusion_matrix(
        result["confusion"],
        result["classes"],
        out_dir / "figures" / "confusion.png",
        title=f"{cfg.name} on {Path(data_name).name}\naccuracy {result['accuracy']:.4f}, macro F1 {result['f1']:.4f}",
    )
    return result


# ---- predict on a folder of images ---------------------------------------------------------------
def predict_classification(run_dir, data, out_dir, log=lambda s: None) -> dict:
    """OUT/predictions.csv: file, predicted class and one probability column per class for every
    readable image of DATA (a folder or one image); unreadable ones go to OUT/skipped.txt."""
    from crackscope.engine.runs import load_run

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    cfg, model, geometry = load_run(run_dir)
    classes = model_classes(run_dir, geometry)
    files = list_prediction_images(Path(data))
    rows, skipped = [], []
    for path, image in readable_images(files, cfg.data.channels, log, skipped):
        with torch.no_grad():
            prob = torch.softmax(model(resize_image(image, cfg.data.size)[None]), 1)[0]
        k = int(prob.argmax())
        rows.append(
            {
                "stem": path.stem,
                "file": str(path),
                "predicted": classes[k],
                "probability": round(float(prob[k]), 6),
                **{f"p_{c}": round(float(p), 6) for c, p in zip(classes, prob.tolist())},
            }
        )
    return finish_predictions(out_dir, rows, skipped, data, len(files))


# ---- the classify pipeline's registry entries (crackscope.engine.pipelines) --------------------
def finish_classification_training(run_dir: Path, cfg, split: dict, extra: dict) -> dict:
    """End of training: the test images into RUN/metrics.json and RUN/figures/confusion.png."""
    return evaluate_classification_run(
        run_dir, cfg.data.root, run_dir, format=split["format"], stems=split["stems"]["test"], extra=extra
    )


def evaluate_classification(run_dir, data, out_dir, format=None) -> dict:
    return evaluate_classification_run(run_dir, data, out_dir, format=format)


def report_classification(r: dict, out_dir: Path) -> list[str]:
    lo, hi = r["accuracy_interval_95"]
    lines = [
        f"accuracy {r['accuracy']:.4f}  macro precision {r['precision']:.4f}  recall {r['recall']:.4f}  "
        f"F1 {r['f1']:.4f}  ({r['n_images']} images, {r['subset']})",
        f"  {r['errors']} errors; the accuracy's exact 95 % interval for {r['n_images']} test images: "
        f"{lo:.4f}-{hi:.4f}",
    ]
    for cls, m in r["per_class"].items():
        if m["f1"] is not None:
            lines.append(
                f"  {cls}: precision {m['precision']:.4f}  recall {m['recall']:.4f}  F1 {m['f1']:.4f}  "
                f"({m['support']} images)"
            )
    return lines


def predict_classification_folder(run_dir, data, out_dir, log=lambda s: None) -> str:
    r = predict_classification(run_dir, data, out_dir, log=log)
    return f"classified {r['n_predicted']} images into {Path(out_dir) / 'predictions.csv'}" + skipped_note(r, out_dir)


def classify_onnx_inputs(cfg, geometry: dict, batch: int) -> tuple[str, list[tuple[int, ...]], dict]:
    """ONNX input: (batch, C, H, W) images; the logits (batch, classes) have only a dynamic batch
    axis. Without a fixed size the network pools globally, so any H, W (checked on two sizes)."""
    return image_onnx_inputs(
        int(geometry.get("in_channels", cfg.data.channels)), cfg.data.size, batch, ((64, 64), (96, 80))
    )


# ---- experiment grids (crackscope.engine.grid): one run's row, the table layouts ---------------------
def classify_grid_row(cfg, m: dict) -> dict:
    """A classify run's results.csv row: model, loss, seed, accuracy, macro precision / recall / F1."""
    return metric_row(cfg, m, ("accuracy", "precision", "recall", "f1"))


def classify_table(rows: list[dict]) -> str:
    """The binary paper's Tables 2 / 4 layout: Model | Accuracy (+ macro precision, recall, F1), parameters."""
    return per_model_table(
        rows, (("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1"))
    )
