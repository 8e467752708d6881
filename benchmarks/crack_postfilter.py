"""Post-filters of the crack mask against false cracks on sound surface: measured, not assumed.

    .venv/bin/python benchmarks/crack_postfilter.py [--classifier DIR] [--segmenter DIR]
        [--val-images 20] [--test-images 6] [--side 1024] [--seed 0]

A segmenter's false cracks on sound pavement might be specks that a filter on the mask removes.
Two filters an inspector would try first:

* **minimum extent** L px: drop every 8-connected crack component whose bounding box is shorter
  than L px on its longer side;
* **hysteresis**: keep the components of ``probability > threshold`` (the segmenter's own) that
  hold at least one pixel above a higher threshold ``t_high``.

1. **Images** (crackscope.data.survey_mosaics): survey-like 1024-px images, 5-15 % crack tiles, the
   rest crack-free surface; --val-images of them from the shipped pair's validation photos (to choose
   on) and --test-images from the photos both models held out (to report), seed --seed.
2. The segmenter on every window (``inspect_image(..., all_tiles=True)``, its defaults), once per
   image; the filters act on its probability map.
3. **Reported** per filter and part, pooled over the images: pixel precision / recall / F1
   against the labels (exact pixels), false crack pixels per megapixel and the share of crack-free
   128-px tiles with a false crack of >= 20 px (crackscope.metrics.false_alarm_counts), and the
   share of the unfiltered mask's correct crack pixels that the filter keeps. Chosen on the
   validation images: the setting with the fewest crack-free tiles with a false crack among those
   that keep >= 98 % of the correct crack pixels; its test row is the result.

Writes benchmarks/results/NAME.{json,md} (default crack_postfilter).
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from crackscope.errors import exit_code_of
from crackscope.provenance import hardware, shown_path, write_results

ROOT = Path(__file__).resolve().parents[1]
EXTENTS_PX = (16, 24, 32, 48, 64)
HIGH_THRESHOLDS = (0.7, 0.8, 0.9, 0.95, 0.98)
KEEP = 0.98
EIGHT = np.ones((3, 3), bool)


def min_extent(mask: np.ndarray, extent_px: int) -> np.ndarray:
    """``mask`` without its 8-connected components whose bounding box's longer side is < ``extent_px``."""
    labels, n = ndimage.label(mask, structure=EIGHT)
    keep = np.zeros(n + 1, bool)
    for i, box in enumerate(ndimage.find_objects(labels), 1):
        keep[i] = max(box[0].stop - box[0].start, box[1].stop - box[1].start) >= extent_px
    return keep[labels]


def hysteresis(probability: np.ndarray, low: float, high: float) -> np.ndarray:
    """The 8-connected components of ``probability > low`` holding a pixel ``> high``."""
    labels, n = ndimage.label(probability > low, structure=EIGHT)
    if n == 0:
        return labels > 0
    peak = np.asarray(ndimage.maximum(probability, labels, index=np.arange(1, n + 1)))
    return np.concatenate([[False], peak > high])[labels]


def filters(low: float) -> dict:
    out = {"none": lambda p: p > low}
    for e in EXTENTS_PX:
        out[f"extent >= {e} px"] = lambda p, e=e: min_extent(p > low, e)
    for t in HIGH_THRESHOLDS:
        out[f"hysteresis, peak > {t}"] = lambda p, t=t: hysteresis(p, low, t)
    return out


def score(images, segmenter) -> dict:
    """Every filter's scores on ``images`` (probability, truth) pairs."""
    from crackscope.deploy.operating_point import pixel_counts, pixel_scores
    from crackscope.metrics import false_alarm_counts, false_alarm_summary

    low = float(segmenter.threshold)
    rows = {}
    for name, fn in filters(low).items():
        counts, alarms, correct, kept = np.zeros(3, np.int64), [], 0, 0
        for probability, truth in images:
            plain, mask = probability > low, fn(probability)
            counts += pixel_counts(mask, truth)
            alarms.append(false_alarm_counts(mask, truth))
            correct += int((plain & truth).sum())
            kept += int((mask & plain & truth).sum())
        rows[name] = {
            "vs_truth": pixel_scores(counts),
            "false_alarms": false_alarm_summary(alarms),
            "kept_correct_share": kept / max(correct, 1),
        }
    return rows


def segment(bank, n: int, side: int, seed: int, classifier, segmenter) -> list:
    from crackscope.data.survey_mosaics import survey_mosaics
    from crackscope.deploy.cascade import inspect_image

    return [
        (inspect_image(image, classifier, segmenter, tile=classifier.tile, all_tiles=True).probability, truth)
        for image, truth, _ in survey_mosaics(bank, n, side=side, seed=seed)
    ]


def _markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        "# Post-filters of the crack mask on survey-like images",
        "",
        f"Measured {env['date']} on {env['cpu']} ({env['cpus']} CPUs), torch {env['torch']}. Segmenter "
        f"`{result['segmenter']}` on every window at its threshold {result['threshold']}; survey-like "
        f"images of {result['side']} px, seed {result['seed']}: {result['val_images']} from the validation "
        f"photos, {result['test_images']} from the held-out photos. Command: `{result['command']}`.",
        "",
        "| filter | part | pixel F1 | precision | recall | false crack px / MP | crack-free tiles with a false crack "
        "| kept of the correct crack px |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in result["val"]:
        for part in ("val", "test"):
            r = result[part][name]
            v, fa = r["vs_truth"], r["false_alarms"]
            lines.append(
                f"| {name} | {part} | {v['f1']:.3f} | {v['precision']:.3f} | {v['recall']:.3f} | "
                f"{fa['false_px_per_megapixel']:.0f} | {fa['false_tile_share']:.2%} of {fa['sound_tiles']} | "
                f"{r['kept_correct_share']:.2%} |"
            )
    chosen = result["chosen"]
    t = result["test"][chosen]
    lines += [
        "",
        f"Chosen on the validation images (fewest crack-free tiles with a false crack, keeping >= {KEEP:.0%} of "
        f"the correct crack pixels): **{chosen}**; on the test images F1 {t['vs_truth']['f1']:.3f}, "
        f"{t['false_alarms']['false_tile_share']:.2%} of the crack-free tiles with a false crack, "
        f"{t['kept_correct_share']:.2%} of the correct crack pixels kept.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return exit_code_of(_main, argv)


def _main(argv=None) -> int:
    from crackscope.data.splits import read_split_stems, stems_held_out_by
    from crackscope.data.survey_mosaics import tile_bank
    from crackscope.deploy.cascade import load_classifier, load_segmenter
    from crackscope.deploy.operating_point import RunPairs, pair_study_parser
    from crackscope.errors import InputError

    p = pair_study_parser(__doc__, "gives the tile grid only")
    p.add_argument("--val-images", type=int, default=20)
    p.add_argument("--test-images", type=int, default=6)
    p.add_argument("--side", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--name", default="crack_postfilter")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    classifier, segmenter = load_classifier(args.classifier), load_segmenter(args.segmenter)
    pairs = RunPairs(args.segmenter)
    val_stems = read_split_stems(args.segmenter).get("val")
    test_stems = stems_held_out_by(args.segmenter, args.classifier)
    if not val_stems or not test_stems:
        raise InputError(f"{args.segmenter} records no validation or no held-out photos")
    result = {
        "command": "benchmarks/crack_postfilter.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "segmenter": shown_path(args.segmenter, ROOT),
        "threshold": float(segmenter.threshold),
        "side": args.side,
        "seed": args.seed,
        "val_images": args.val_images,
        "test_images": args.test_images,
    }
    for part, stems, n in (("val", val_stems, args.val_images), ("test", test_stems, args.test_images)):
        images = segment(tile_bank(pairs, stems), n, args.side, args.seed, classifier, segmenter)
        result[part] = score(images, segmenter)
        print(f"{part}: {n} images scored", flush=True)
    eligible = [k for k, r in result["val"].items() if r["kept_correct_share"] >= KEEP]
    result["chosen"] = min(eligible, key=lambda k: result["val"][k]["false_alarms"]["false_tile_share"])
    result["environment"] = {"date": datetime.date.today().isoformat(), **hardware()}
    write_results(args.out / args.name, result, _markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
