"""Crack segmenters on held-out photos as another camera would take them: darker, flatter, blurred,
noisier, JPEG-compressed, at half the resolution, in grey. A stand-in for the photos of cameras we
do not have: each change is applied to the whole held-out test images of each dataset, and each
model is scored at its own threshold against the unchanged masks.

    .venv/bin/python benchmarks/camera_shift_cracks.py \
        --model deepcrack=src/crackscope/weights/deepcrack/segmenter \
        --model both=src/crackscope/weights/cracks/segmenter \
        --test deepcrack=src/crackscope/weights/cracks/segmenter:../shared/datasets/DeepCrack \
        --test crack500=src/crackscope/weights/cracks/segmenter:../shared/datasets/Crack500 \
        [--out benchmarks/results/camera_shift_cracks]

``--model`` / ``--test`` as in cross_dataset_cracks.py (a run on several sources lists its test
images as NAME/<stem>). The changes (deterministic; crackscope.data.camera_augment):

* ``as taken``; ``darker``: exposure x 0.5; ``brighter``: gamma 0.5 (x ** 0.5);
  ``low contrast``: contrast x 0.5 about the image mean; ``blur``: Gaussian, sigma 1.5 px;
  ``noise``: Gaussian, sigma 0.04 (seeded per image); ``JPEG 25``: re-encoded at quality 25;
  ``grey``: luminance in all three channels; ``half resolution``: the photo at half its width and
  height (cracks half as wide in pixels), the probability resampled back to the mask's size.

A ``--model`` that is a cascade tile classifier (a classify run or model folder) is scored on the
same changed images by its tiles instead (crackscope.deploy.cascade.TileClassifier at its operating
point, 64-px tiles of the cascade's grid): the recall of the tiles its training labels call cracked
(at least ``min_crack_pixels`` crack pixels) and the fraction of all tiles it flags.

Writes OUT.json and OUT.md: pixel F1 per model x dataset x change (micro over the images), and
tile recall / flagged fraction per classifier x dataset x change.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from crackscope.data.camera_augment import gaussian_blur, jpeg_roundtrip, luminance
from crackscope.data.images import load_image, load_mask
from crackscope.data.splits import read_split_stems
from crackscope.deploy.tiling import resample
from crackscope.engine.runs import load_run, run_threshold
from crackscope.engine.surface import predict_probability, surface_dataset
from crackscope.errors import exit_code_of, named_values
from crackscope.provenance import measured_on, write_results

HERE = Path(__file__).resolve().parent


def _noise(x: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + 0.04 * torch.randn(x.shape, generator=g)).clamp(0, 1)


CHANGES = {
    "as taken": lambda x, k: x,
    "darker": lambda x, k: x * 0.5,
    "brighter": lambda x, k: x.clamp(0, 1) ** 0.5,
    "low contrast": lambda x, k: (x - x.mean()) * 0.5 + x.mean(),
    "blur": lambda x, k: gaussian_blur(x, 1.5),
    "noise": lambda x, k: _noise(x, k),
    "JPEG 25": lambda x, k: jpeg_roundtrip(x, 25),
    "grey": lambda x, k: luminance(x).expand_as(x).contiguous(),
    "half resolution": lambda x, k: x,  # resampled around the model (below)
}


def cases(argv) -> tuple[Path, list[tuple[str, str, list[str], str, str]], str]:
    """``--model`` / ``--test`` / ``--out`` / ``--part`` parsed: (OUT, [(dataset, root, stems, model, run), ...],
    part); ``--test NAME=RUN:ROOT`` names the ``part`` images RUN recorded for NAME (a run on several
    sources lists them as NAME/<stem>)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="NAME=RUN: a surface run or model folder")
    ap.add_argument("--test", action="append", required=True, help="NAME=RUN:ROOT: a dataset and a run's split")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "camera_shift_cracks")
    ap.add_argument(
        "--part", choices=("test", "val"), default="test", help="which recorded images (val: to choose models)"
    )
    args = ap.parse_args(argv)
    models, tests = named_values(args.model, "--model"), named_values(args.test, "--test")
    out = []
    for data_name, spec in tests.items():
        split_run, _, root = spec.partition(":")
        stems = read_split_stems(split_run)[args.part]
        prefixed = [s.split("/", 1)[1] for s in stems if s.startswith(f"{data_name}/")]
        out += [(data_name, root, prefixed or stems, model_name, run) for model_name, run in models.items()]
    return args.out, out, args.part


LABEL_ROW = "the label itself"


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def score(run: str, root: str, fmt: str, stems: list[str]) -> dict[str, dict]:
    cfg, model, _ = load_run(run)
    threshold = run_threshold(run, cfg)
    ds = surface_dataset(cfg.data, root=root, format=fmt, stems=stems)
    counts = {c: np.zeros(3, np.int64) for c in CHANGES}
    for k in range(len(ds)):
        image = torch.from_numpy(load_image(ds.image_paths[k], cfg.data.in_channels))
        mask = load_mask(ds.mask_paths[k])[0] > 0
        h, w = mask.shape
        for change, apply in CHANGES.items():
            x = apply(image, k).float().clamp(0, 1)
            if change == "half resolution":
                small = resample(x, h // 2, w // 2).clamp(0, 1).numpy()
                prob = resample(torch.from_numpy(predict_probability(model, small, cfg.data.size))[None], h, w)[0]
                prob = prob.numpy()
            else:
                prob = predict_probability(model, x.numpy(), cfg.data.size)
            pred = prob > threshold
            counts[change] += [int((pred & mask).sum()), int((pred & ~mask).sum()), int((~pred & mask).sum())]
    return {c: {"f1": _f1(*v.tolist()), "tp": int(v[0]), "fp": int(v[1]), "fn": int(v[2])} for c, v in counts.items()}


def score_tiles(run: str, root: str, fmt: str, stems: list[str]) -> dict[str, dict]:
    """Tile recall and flagged fraction of a tile classifier under each change (not half resolution:
    the cascade's ``--scale`` is the answer to other crack widths)."""
    from crackscope.data.surface import SurfaceSegmentationDataset
    from crackscope.data.tiles import extract_tiles, tile_crack_pixels, tile_grid
    from crackscope.deploy.cascade import load_classifier, to_channels

    clf = load_classifier(run)
    label_pixels = int(getattr(load_run(run)[0].data.tiles, "min_crack_pixels", 1))
    ds = SurfaceSegmentationDataset(root, format=fmt, in_channels=3, select=stems)
    counts = {c: np.zeros(4, np.int64) for c in CHANGES if c != "half resolution"}
    for k in range(len(ds)):
        image = torch.from_numpy(load_image(ds.image_paths[k], 3))
        mask = load_mask(ds.mask_paths[k])[0] > 0
        grid = tile_grid(*mask.shape, clf.tile)
        cracked = tile_crack_pixels(mask, grid) >= label_pixels
        for change in counts:
            x = CHANGES[change](image, k).float().clamp(0, 1)
            flagged = clf(extract_tiles(to_channels(x, clf.channels), grid.origins, clf.tile)).numpy() >= clf.threshold
            counts[change] += [int((flagged & cracked).sum()), int(cracked.sum()), int(flagged.sum()), len(grid)]
    return {
        c: {"tile_recall": v[0] / max(v[1], 1), "flagged": v[2] / v[3], "cracked_tiles": int(v[1]), "tiles": int(v[3])}
        for c, v in counts.items()
    }


def _table(first: str, changes: list[str], rows: list[dict], cell) -> list[str]:
    """Markdown lines: one row per model x dataset, one column per change, ``cell(row, change)``."""
    lines = [
        f"| {first} | tested on | images | " + " | ".join(changes) + " |",
        "|---|---|---:|" + "---:|" * len(changes),
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['test']} | {r['n_images']} | " + " | ".join(cell(r, c) for c in changes) + " |"
        )
    return lines


def half_resolution_counts(mask: np.ndarray) -> tuple[int, int, int]:
    """(tp, fp, fn) of a boolean (H, W) label against itself resampled to half its size and back
    exactly as the models' probabilities are (:func:`crackscope.deploy.tiling.resample`), cut at 0.5."""
    h, w = mask.shape
    back = resample(resample(torch.from_numpy(mask.astype(np.float32))[None], h // 2, w // 2), h, w)[0]
    pred = back.numpy() > 0.5
    return int((pred & mask).sum()), int((pred & ~mask).sum()), int((~pred & mask).sum())


def label_at_half_resolution(run: str, root: str, fmt: str, stems: list[str]) -> dict[str, dict]:
    """What half the resolution costs a perfect segmenter, pooled over the images
    (:func:`half_resolution_counts`)."""
    cfg, _, _ = load_run(run)
    ds = surface_dataset(cfg.data, root=root, format=fmt, stems=stems)
    counts = np.zeros(3, np.int64)
    for k in range(len(ds)):
        counts += half_resolution_counts(load_mask(ds.mask_paths[k])[0] > 0)
    tp, fp, fn = counts.tolist()
    return {"as taken": {"f1": 1.0}, "half resolution": {"f1": _f1(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn}}


def main(argv=None) -> int:
    from crackscope.engine.runs import pipeline_of

    out, todo, part = cases(argv)
    rows, tile_rows = [], []
    for data_name, root, stems, model_name, run in todo:
        tiles = pipeline_of(Path(run)) == "classify"
        result = (score_tiles if tiles else score)(run, root, data_name, stems)
        row = {"model": model_name, "run": run, "test": data_name, "n_images": len(stems)}
        (tile_rows if tiles else rows).append({**row, **result} if tiles else {**row, "f1": result})
        key = "tile_recall" if tiles else "f1"
        print(model_name, data_name, {c: round(r[key], 3) for c, r in result.items()}, flush=True)
        if not tiles and not any(r["model"] == LABEL_ROW and r["test"] == data_name for r in rows):
            label = label_at_half_resolution(run, root, data_name, stems)
            rows.append({"model": LABEL_ROW, "run": None, "test": data_name, "n_images": len(stems), "f1": label})
    meta = measured_on()
    changes = list(CHANGES)
    lines = [
        f"# Crack segmenters on held-out photos changed as another camera would ({meta['date'][:10]})",
        "",
        f"{meta['hardware']}. Pixel F1 at each model's own threshold, whole images of each dataset's "
        f"{'held-out test' if part == 'test' else 'validation'} part, "
        "micro over the images; the masks are never changed (benchmarks/camera_shift_cracks.py).",
        "",
        *_table("trained on", changes, rows, lambda r, c: f"{r['f1'][c]['f1']:.3f}" if c in r["f1"] else "–"),
        "",
        f"'{LABEL_ROW}': each label resampled to half its size and back as the models' probabilities are, "
        "cut at 0.5: what half the resolution costs before any model (the other changes leave it at 1).",
    ]
    if tile_rows:
        tile_changes = [c for c in changes if c != "half resolution"]
        lines += [
            "",
            "Tile classifiers at their operating points (0.5 without one), 64-px tiles of the same images: "
            "recall of the tiles their training labels call cracked / fraction of all tiles flagged.",
            "",
            *_table(
                "classifier", tile_changes, tile_rows, lambda r, c: f"{r[c]['tile_recall']:.3f} / {r[c]['flagged']:.2f}"
            ),
        ]
    record = {**meta, "part": part, "rows": rows, "tile_rows": tile_rows}
    write_results(out, record, "\n".join(lines) + "\n", indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(exit_code_of(main))
