"""The surface pipeline in the engine: stratified splits, the Lightning data module, evaluation at the
original image resolution (overall and per defect class) and prediction on a folder of images.

Metrics are computed on each image at its ORIGINAL size: the model's output on the padded or
resized input is brought back with :func:`crackscope.data.surface.restore` and compared with the
mask as read from disk (binarised at 128). Dataset-level numbers are micro averages (confusion
counts summed over all test pixels); ``miou`` is the mean of the defect and background IoU. Crack
runs (a DeepCrack or Crack500 run, or either format evaluated) also get the crack literature's ODS
and OIS F-measures at a tolerance of 0 and 2 pixels (:func:`crackscope.metrics.crack_f_measures`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from crackscope.data.formats import CRACK_SURFACE_FORMATS
from crackscope.data.images import load_image, load_mask
from crackscope.data.splits import group_split, stratified_split
from crackscope.data.surface import (
    CombinedSegmentationDataset,
    SurfaceSegmentationDataset,
    prepare_image,
    read_pairs,
    restore,
    source_layout,
)
from crackscope.engine.data import EpochSeededSampler, SplitDataModule, own_source_test_part
from crackscope.engine.evaluation import provenance, write_metrics
from crackscope.engine.grid import metric_row, per_model_table
from crackscope.engine.image_predictions import (
    finish_predictions,
    image_onnx_inputs,
    list_prediction_images,
    readable_images,
    skipped_note,
)
from crackscope.engine.runs import run_threshold
from crackscope.errors import InputError
from crackscope.figures import plot_best_median_worst
from crackscope.io import atomic_savefig, atomic_write_bytes
from crackscope.nn.flip_tta import flip_average

SPLIT_PARTS = ("train", "val", "test")
# pixel tolerances of the ODS / OIS F-measures reported for crack runs
CRACK_F_TOLERANCES_PX = (0, 2)
CRACK_F_KEYS = ("ods_f", "ods_threshold", "ods_precision", "ods_recall", "ois_f")


def _augmentation(data_cfg, augment):
    """What the dataset's ``augment`` gets for the training part: ``data.augment`` when asked."""
    if not augment:
        return None
    if data_cfg.augment == "camera":
        from crackscope.data.camera_augment import CameraAugment

        return CameraAugment(crop=data_cfg.crop, **(data_cfg.camera or {}))
    return True


def surface_dataset(
    data_cfg, root=None, format=None, stems=None, augment=False, seed: int = 0
) -> SurfaceSegmentationDataset | CombinedSegmentationDataset:
    """The dataset of ``data_cfg`` (or another ``root``/``format`` read with the same size policy),
    restricted to ``stems`` (in that order) when given. A multi-source config (``data.sources``)
    with no ``root`` given is read as one :class:`CombinedSegmentationDataset` whose stems are
    ``<name>/<stem>`` (:func:`~crackscope.data.surface.read_pairs`). ``augment``: the training
    part's augmentation (``data.augment``), drawn from ``seed``."""
    if root is not None:
        sources = [(None, Path(root), format or source_layout(data_cfg.source_list, root, data_cfg.source_list[0][2]))]
    else:
        sources = data_cfg.source_list
    return read_pairs(
        sources,
        stems,
        seed=seed,
        size=data_cfg.size,
        in_channels=data_cfg.in_channels,
        augment=_augmentation(data_cfg, augment),
    )


def surface_geometry(data_cfg) -> dict:
    """Model keywords implied by the data: input channels and one (defect) output channel."""
    return {"in_channels": int(data_cfg.in_channels), "classes": 1}


def make_surface_split(data_cfg, seed: int, run_dir: Path) -> dict:
    """Stratified by defect class (SD-saliency-900) from ``seed``; reused from RUN/split.json on resume.
    DeepCrack is split by source photo (:func:`~crackscope.data.splits.group_split`): the crops of
    one photo stay in one part, and the tile classifier's split of the same seed and fractions is
    the same. Crack500 is split by burst (:func:`~crackscope.data.surface.crack500_bursts`): photos
    taken seconds apart, often the same crack re-shot, stay in one part. Several sources
    (``data.sources``) are each split so, with the same seed and fractions, and joined: each
    source's test part is the one a run on that source alone holds out.

    The record holds indices into the sorted pair list and, authoritative, the file stems."""
    path = run_dir / "split.json"
    if path.exists():
        return json.loads(path.read_text())
    stems: dict[str, list[str]] = {k: [] for k in SPLIT_PARTS}
    indices: dict[str, list[int]] = {k: [] for k in SPLIT_PARTS}
    offset = 0
    for name, root, fmt in data_cfg.source_list:
        ds = surface_dataset(data_cfg, root=root, format=fmt)
        where = f"data.root {root}" if name is None else f"data source {name} ({root})"
        if len(ds) < 3:
            raise InputError(f"{where} has only {len(ds)} image/mask pairs; need at least 3")
        split = (
            group_split(ds.groups, data_cfg.split, seed)
            if ds.format in CRACK_SURFACE_FORMATS
            else stratified_split(ds.classes, data_cfg.split, seed)
        )
        if not split["train"] or not split["val"]:
            raise InputError(
                f"data.split {list(data_cfg.split)} leaves an empty train or validation set for the "
                f"{len(ds)} pairs of {where}"
            )
        sizes = {ds.meta(i)["size"] for i in range(len(ds))}
        if len(sizes) > 1 and data_cfg.batch_size > 1 and data_cfg.crop is None:
            raise InputError(
                f"{where}: images of {len(sizes)} different sizes cannot share a batch; "
                f"set data.size (resize), data.batch_size=1 or train on crops (augment: camera)"
            )
        prefix = "" if name is None else f"{name}/"
        for k in SPLIT_PARTS:
            stems[k] += [prefix + ds.stems[i] for i in split[k]]
            indices[k] += [offset + i for i in split[k]]
        offset += len(ds)
    if data_cfg.sources is not None and data_cfg.crop is None and data_cfg.batch_size > 1:
        raise InputError(
            "data.sources: images of different datasets cannot share a batch; train on crops "
            "(augment: camera, crop: N) or set data.size or data.batch_size=1"
        )
    return {**indices, "seed": seed, "stems": stems}


class SurfaceDataModule(SplitDataModule):
    def _loader(self, part, train=False):
        ds = surface_dataset(
            self.cfg, stems=self.split["stems"][part], augment=train and self.cfg.augment, seed=self.seed
        )
        sampler = EpochSeededSampler(len(ds), self.seed, dataset=ds) if train else None
        # whole validation / test images: of several sizes when training on crops
        batch_size = self.cfg.batch_size if train or self.cfg.crop is None else 1
        return DataLoader(
            ds,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.cfg.num_workers,
            # a seeded augmentation follows the epoch: fresh workers each epoch see it
            persistent_workers=self.cfg.num_workers > 0 and not (train and self.cfg.augment == "camera"),
        )


# ---- inference ---------------------------------------------------------------------------------
@torch.no_grad()
def predict_probability(model, image: np.ndarray, size=None, tta: str = "none") -> np.ndarray:
    """Defect probability (H, W) float32 at the original size of a (C, H, W) image in [0, 1].
    ``tta``: flip test-time augmentation (:mod:`crackscope.nn.flip_tta`; ``"none"``, ``"flip"``,
    ``"d8"``)."""
    x, meta = prepare_image(image, size)
    prob = flip_average(lambda t: torch.sigmoid(model(t)), x[None], tta)[0, 0]
    return restore(prob, meta).numpy().astype(np.float32)


def recorded_masks(run_dir, part: str = "test"):
    """``(threshold, masks)``: the run's threshold (:func:`run_threshold`) and an iterator over each
    image ``run_dir`` recorded for ``part`` (``"val"`` or ``"test"``) of its split, in the recorded
    order, segmented whole by the run's model at that threshold: ``(stem, label, predicted)``, both
    masks (H, W) bool at the image's own size. ``stem`` is ``<source>/<stem>`` for a run on several
    sources."""
    from crackscope.data.splits import read_split_stems
    from crackscope.engine.runs import load_run

    cfg, model, _ = load_run(run_dir)
    threshold = run_threshold(run_dir, cfg)
    ds = surface_dataset(cfg.data, stems=read_split_stems(run_dir)[part])

    def masks():
        for i in range(len(ds)):
            label = np.asarray(load_mask(ds.mask_paths[i])[0] > 0.5)
            image = load_image(ds.image_paths[i], cfg.data.in_channels)
            yield ds.stems[i], label, predict_probability(model, image, cfg.data.size) >= threshold

    return threshold, masks()


def _choose_stems(cfg, run_dir: Path, root: Path, fmt: str):
    """The run's test stems when evaluating on its own training data (one of its sources: that
    source's test stems), else every pair."""
    stems = own_source_test_part(run_dir, cfg.data.source_list, root, fmt)
    return (stems, "test split") if stems is not None else (None, "all pairs")


def surface_summary(counts: torch.Tensor) -> dict:
    """The surface metric names from (N, 4) confusion counts (micro over all pixels)."""
    from crackscope.metrics import summarize

    s = summarize(counts)
    return {
        "miou": s["miou"],
        "iou_defect": s["iou"],
        "iou_background": s["iou_background"],
        "accuracy": s["accuracy"],
        "precision": s["precision"],
        "recall": s["recall"],
        "f1": s["dsc"],
        "n_images": s["n_samples"],
    }


def evaluate_surface_run(
    run_dir, data, out_dir, *, format: str | None = None, stems=None, extra: dict | None = None
) -> dict:
    """Metrics of a run (or shipped model folder) on a surface dataset -> OUT/metrics.json + figure.

    ``data=None``: the run's own data (all its sources, stems ``<name>/<stem>``); ``per_class``
    then holds each source's numbers."""
    from crackscope.engine.runs import load_run
    from crackscope.metrics import (
        F_MEASURE_THRESHOLDS,
        confusion_counts,
        crack_f_counts,
        crack_f_from_counts,
        false_alarm_counts,
        false_alarm_summary,
        sample_metrics,
    )

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    cfg, model, _ = load_run(run_dir)
    threshold = run_threshold(run_dir, cfg)
    own_formats = [f for _, _, f in cfg.data.source_list]
    if data is None:
        fmt, data_name = "+".join(own_formats), cfg.data.describe()
        ds = surface_dataset(cfg.data, stems=stems)
        subset = "all pairs" if stems is None else "given stems"
    else:
        data = Path(data)
        fmt, data_name = format or source_layout(cfg.data.source_list, data, own_formats[0]), str(data)
        subset = "given stems"
        if stems is None:
            stems, subset = _choose_stems(cfg, run_dir, data, fmt)
        ds = surface_dataset(cfg.data, root=data, format=fmt, stems=stems)
    if len(ds) == 0:
        raise InputError(f"--data {data_name}: no image/mask pairs to evaluate")
    counts, probs = [], []
    crack = any(f in CRACK_SURFACE_FORMATS for f in [*fmt.split("+"), *own_formats])
    f_counts = {t: [] for t in CRACK_F_TOLERANCES_PX} if crack else {}  # per tolerance, (K, 4) per image
    alarms = []  # crack runs: what is marked on the crack-free part of each image
    for i in range(len(ds)):
        image = load_image(ds.image_paths[i], cfg.data.in_channels)
        prob = predict_probability(model, image, cfg.data.size)
        mask = load_mask(ds.mask_paths[i])[0]
        counts.append(
            confusion_counts(
                torch.from_numpy(prob)[None],
                torch.from_numpy(mask)[None],
                threshold=threshold,
                from_logits=False,
            )[0]
        )
        probs.append(prob)
        for t, c in f_counts.items():
            c.append(crack_f_counts(prob, mask, F_MEASURE_THRESHOLDS, t))
        if crack:
            alarms.append(false_alarm_counts(prob > threshold, mask))
    counts = torch.stack(counts)
    result = surface_summary(counts)
    for t, c in f_counts.items():
        f = crack_f_from_counts(torch.stack(c), F_MEASURE_THRESHOLDS)
        result.update({f"{k}_{t}px": f[k] for k in CRACK_F_KEYS})
    if f_counts:
        th = F_MEASURE_THRESHOLDS
        result["f_measure_thresholds"] = f"{len(th)} thresholds from {th[0]} to {th[-1]}"
        result["false_alarms"] = false_alarm_summary(alarms)
    classes = [c for c in ds.classes if c is not None]
    if classes:
        labels = np.asarray(ds.classes)
        result["per_class"] = {c: surface_summary(counts[torch.from_numpy(labels == c)]) for c in sorted(set(classes))}
    result.update(
        provenance(
            cfg,
            run_dir,
            data=data_name,
            subset=subset,
            n_samples=result["n_images"],
            threshold=threshold,
            format=fmt,
            size_policy="pad to a multiple of 32" if cfg.data.size is None else f"resize to {cfg.data.size}",
        )
    )
    if extra:
        result.update(extra)
    write_metrics(out_dir, result)
    per_image_iou = sample_metrics(counts)["iou"]  # an empty mask predicted empty scores 1, as in metrics
    plot_best_median_worst(
        per_image_iou.numpy(),
        lambda i: [
            (load_image(ds.image_paths[i], 1)[0], "image", "gray"),
            (load_mask(ds.mask_paths[i])[0], "ground truth", "gray"),
            (probs[i], "defect probability", "magma"),
            (probs[i] > threshold, "prediction", "gray"),
        ],
        lambda label, i: f"{label}: {ds.stems[i]} (IoU {float(per_image_iou[i]):.2f})",
        out_dir / "figures" / "examples.png",
        title=f"{cfg.name} on {Path(data_name).name}",
    )
    return result


# ---- predict on a folder of images -------------------------------------------------------------
def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """uint8 RGB (H, W, 3): the image in grey (or colour) with the predicted defect tinted red."""
    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]
    rgb = rgb.transpose(1, 2, 0).astype(np.float32)
    red = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    rgb = np.where(mask[..., None], (1 - alpha) * rgb + alpha * red, rgb)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def predict_surface(run_dir, data, out_dir, log=lambda s: None) -> dict:
    """Masks (0/255 PNG) and overlays at the original resolution for every readable image of DATA.

    Unreadable files are reported through ``log``, listed in OUT/skipped.txt and skipped; the
    others are processed. OUT/predictions.csv lists stem, height, width and defect-pixel fraction."""
    from crackscope.engine.runs import load_run

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    cfg, model, _ = load_run(run_dir)
    threshold = run_threshold(run_dir, cfg)
    files = list_prediction_images(Path(data))
    rows, skipped = [], []
    for path, image in readable_images(files, cfg.data.in_channels, log, skipped):
        prob = predict_probability(model, image, cfg.data.size)
        mask = prob > threshold
        atomic_write_bytes(out_dir / "masks" / f"{path.stem}.png", _png_bytes(mask.astype(np.uint8) * 255))
        atomic_write_bytes(out_dir / "overlays" / f"{path.stem}.png", _png_bytes(overlay(image, mask)))
        rows.append(
            {
                "stem": path.stem,
                "file": str(path),
                "height": mask.shape[0],
                "width": mask.shape[1],
                "defect_fraction": round(float(mask.mean()), 6),
            }
        )
    return finish_predictions(out_dir, rows, skipped, data, len(files))


def plot_model_comparison(runs, data, path, *, stems=None, n_images: int = 4, format: str | None = None) -> Path:
    """Qualitative comparison: one row per image, columns image | ground truth | each run's mask.

    ``stems`` default: the first run's test split, one image per defect class first, then in order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crackscope.engine.runs import load_run

    loaded = [load_run(r) for r in runs]
    cfg0 = loaded[0][0]
    if stems is None:
        chosen, _ = _choose_stems(cfg0, Path(runs[0]), Path(data), format or cfg0.data.format)
        chosen = chosen or surface_dataset(cfg0.data, root=data, format=format).stems
        by_class: dict[str, list[str]] = {}
        for s in chosen:
            by_class.setdefault(s.split("_", 1)[0], []).append(s)
        groups = list(by_class.values())
        order = [g[k] for k in range(max(len(g) for g in groups)) for g in groups if k < len(g)]  # round robin
        stems = order[:n_images]
    ds = surface_dataset(cfg0.data, root=data, format=format, stems=list(stems))
    cols = 2 + len(loaded)
    fig, axes = plt.subplots(
        len(ds), cols, figsize=(1.9 * cols, 1.9 * len(ds) + 0.4), squeeze=False, constrained_layout=True
    )
    for row in range(len(ds)):
        panels = [(load_image(ds.image_paths[row], 1)[0], "image"), (load_mask(ds.mask_paths[row])[0], "ground truth")]
        for run, (cfg, model, _) in zip(runs, loaded):
            image = load_image(ds.image_paths[row], cfg.data.in_channels)
            panels.append((predict_probability(model, image, cfg.data.size) > run_threshold(run, cfg), cfg.model.name))
        for col, (img, title) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(np.asarray(img, dtype=np.float32), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
        axes[row, 0].set_ylabel(ds.stems[row], fontsize=8)
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return Path(path)


def choose_surface_threshold(run_dir, root, stems) -> dict:
    """A run's defect threshold chosen on ``stems`` of ``root`` (its validation images): the one of
    :data:`~crackscope.metrics.THRESHOLD_GRID` with the highest pixel F1 (micro over the images, at
    their original size), written to RUN/operating_point.json, which evaluate, predict, export and
    the cascade then use."""
    from crackscope.engine.runs import load_run, write_operating_point
    from crackscope.metrics import THRESHOLD_GRID, sweep_counts

    cfg, model, _ = load_run(run_dir)
    ds = surface_dataset(cfg.data, root=root, stems=list(stems))  # root None: all the run's sources
    if len(ds) == 0:
        raise InputError(
            f"{run_dir}: no validation images to choose a threshold on (data.split has no validation part)"
        )
    counts = torch.zeros(len(THRESHOLD_GRID), 3, dtype=torch.long)
    for i in range(len(ds)):
        prob = predict_probability(model, load_image(ds.image_paths[i], cfg.data.in_channels), cfg.data.size)
        mask = load_mask(ds.mask_paths[i])[0]
        counts += sweep_counts(torch.from_numpy(prob)[None], torch.from_numpy(mask)[None], THRESHOLD_GRID, False)
    return write_operating_point(
        run_dir,
        counts,
        THRESHOLD_GRID,
        chosen_on="validation split",
        n_images=len(ds),
        data=str(root or cfg.data.describe()),
    )


# ---- the surface pipeline's registry entries (crackscope.engine.pipelines) ---------------------
def finish_surface_training(run_dir: Path, cfg, split: dict, extra: dict) -> dict:
    """End of training: the threshold chosen on the validation images (``trainer.choose_threshold``,
    before any test image is scored), then the test images into RUN/metrics.json and RUN/figures/."""
    if cfg.trainer.choose_threshold:
        choose_surface_threshold(run_dir, cfg.data.root, split["stems"]["val"])
    return evaluate_surface_run(run_dir, cfg.data.root, run_dir, stems=split["stems"]["test"], extra=extra)


def evaluate_surface(run_dir, data, out_dir, format=None) -> dict:
    return evaluate_surface_run(run_dir, data, out_dir, format=format)


def report_surface(r: dict, out_dir: Path) -> list[str]:
    lines = [
        f"mIoU {r['miou']:.4f}  defect IoU {r['iou_defect']:.4f}  accuracy {r['accuracy']:.4f}  "
        f"precision {r['precision']:.4f}  recall {r['recall']:.4f}  F1 {r['f1']:.4f}  "
        f"({r['n_images']} images, {r['subset']})"
    ]
    if "ods_f_0px" in r:
        lines.append(
            "  ".join(
                f"{t} px: ODS F {r[f'ods_f_{t}px']:.4f} (threshold {r[f'ods_threshold_{t}px']:.2f}) "
                f"OIS F {r[f'ois_f_{t}px']:.4f}"
                for t in CRACK_F_TOLERANCES_PX
            )
        )
    fa = r.get("false_alarms")
    if fa:
        per_mp, share = fa["false_px_per_megapixel"], fa["false_tile_share"]
        lines.append(
            "on crack-free surface (more than "
            f"{fa['clearance_px']} px from a labelled crack): "
            + (f"{per_mp:.0f} false crack px per megapixel" if per_mp is not None else "no crack-free pixels")
            + ", "
            + (
                f"{share:.1%} of {fa['sound_tiles']} crack-free {fa['tile_px']}-px tiles with a false crack "
                f"(>= {fa['min_component_px']} px)"
                if share is not None
                else f"no crack-free {fa['tile_px']}-px tile"
            )
        )
    for cls, m in (r.get("per_class") or {}).items():
        lines.append(
            f"  {cls}: mIoU {m['miou']:.4f}  defect IoU {m['iou_defect']:.4f}  precision "
            f"{m['precision']:.4f}  recall {m['recall']:.4f}  ({m['n_images']} images)"
        )
    return lines


def predict_surface_folder(run_dir, data, out_dir, log=lambda s: None) -> str:
    r = predict_surface(run_dir, data, out_dir, log=log)
    return f"predicted {r['n_predicted']} images into {out_dir} (masks/, overlays/, predictions.csv)" + skipped_note(
        r, out_dir
    )


def surface_onnx_inputs(cfg, geometry: dict, batch: int) -> tuple[str, list[tuple[int, ...]], dict]:
    """ONNX input: (batch, C, H, W) images; with the pad policy (no fixed size) any H, W that are
    multiples of 32, so those axes are dynamic and parity is checked on two sizes."""
    return image_onnx_inputs(
        int(geometry.get("in_channels", cfg.data.in_channels)), cfg.data.size, batch, ((224, 224), (256, 192))
    )


# ---- experiment grids (crackscope.engine.grid): one run's row, the table layouts ---------------------
def surface_grid_row(cfg, m: dict) -> dict:
    """A surface run's results.csv row: model, loss, seed, accuracy ... F1, parameters, epochs."""
    return metric_row(cfg, m, ("accuracy", "precision", "recall", "miou", "iou_defect", "f1"))


def surface_table(rows: list[dict]) -> str:
    """The surface paper's Table 2 layout: Model | Accuracy | Precision | Recall | mIoU (+ defect IoU, F1)."""
    return per_model_table(
        rows,
        (
            ("accuracy", "accuracy"),
            ("precision", "precision"),
            ("recall", "recall"),
            ("miou", "mIoU"),
            ("iou_defect", "defect IoU"),
            ("f1", "F1"),
        ),
    )
