"""The segmenter's mask threshold, seen as a survey sees it: pixel F1 and false cracks on sound
surface of survey-like images at each threshold, for segmenting every window and for the cascade.

    .venv/bin/python benchmarks/survey_threshold.py [--classifier DIR] [--segmenter DIR]
        [--val-images 20] [--test-images 6] [--sides 1024 2048] [--seed 0] [--name survey_threshold]

The shipped segmenter's threshold (its ``operating_point.json``) was chosen for the best F1 on the
validation close-ups, which are mostly crack. A survey photo is mostly sound surface, where every
false crack costs precision. For each part, the survey-like mosaics of
``benchmarks/sparse_inspection.py`` (crackscope.data.survey_mosaics: 128-px crack tiles and sound
tiles of the photos held out by both models, 5-15 % crack tiles, seeded) are inspected once in each
mode at ``crackscope inspect-image``'s defaults; the probability maps are then cut at every
threshold in ``--thresholds``. Reported per part, side, mode and threshold, pooled over the mosaics:
exact-pixel precision, recall and F1 against the labels, and the false alarms on crack-free surface
(crackscope.metrics.false_alarm_counts: false crack pixels per megapixel, the share of crack-free
128-px tiles holding a false crack of >= 20 px); for the cascade also the share of the every-window
mask's correct crack pixels it keeps at the same threshold.

The choice is made on the validation mosaics only (``--val-images`` of ``--sides[0]``): the threshold
of the highest cascade F1 (the default mode). The test mosaics are reported at it and at the
shipped threshold. Writes benchmarks/results/NAME.{json,md}.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import numpy as np
import torch

from crackscope.errors import InputError, exit_code_of
from crackscope.provenance import hardware, shown_path, write_results

ROOT = Path(__file__).resolve().parents[1]
MODES = ("all_windows", "cascade")


def sweep(classifier, segmenter, bank, n_images: int, side: int, seed: int, thresholds: list[float]) -> dict:
    """{mode: [row per threshold]} over ``n_images`` survey-like mosaics of ``side`` px."""
    from crackscope.data.survey_mosaics import survey_mosaics
    from crackscope.deploy.cascade import inspect_image
    from crackscope.deploy.operating_point import pixel_counts, pixel_scores
    from crackscope.metrics import crack_free_pixels, false_alarm_counts, false_alarm_summary

    counts = {m: np.zeros((len(thresholds), 3), np.int64) for m in MODES}
    alarms = {m: [[] for _ in thresholds] for m in MODES}
    correct = np.zeros(len(thresholds), np.int64)
    kept = np.zeros(len(thresholds), np.int64)
    for image, truth, _ in survey_mosaics(bank, n_images, side=side, seed=seed):
        prob = {
            "all_windows": inspect_image(
                image, classifier, segmenter, tile=classifier.tile, all_tiles=True
            ).probability,
            "cascade": inspect_image(image, classifier, segmenter, tile=classifier.tile).probability,
        }
        sound = crack_free_pixels(truth)  # once per mosaic, for every threshold and mode
        for k, t in enumerate(thresholds):
            masks = {m: prob[m] > t for m in MODES}
            for m in MODES:
                counts[m][k] += pixel_counts(masks[m], truth)
                alarms[m][k].append(false_alarm_counts(masks[m], truth, sound=sound))
            full_correct = masks["all_windows"] & truth
            correct[k] += int(full_correct.sum())
            kept[k] += int((full_correct & masks["cascade"]).sum())
    out = {}
    for m in MODES:
        out[m] = []
        for k, t in enumerate(thresholds):
            row = {"threshold": t, **pixel_scores(counts[m][k]), "false_alarms": false_alarm_summary(alarms[m][k])}
            if m == "cascade":
                row["kept_true_crack_share"] = int(kept[k]) / max(int(correct[k]), 1)
            out[m].append(row)
    return out


def main(argv=None) -> int:
    return exit_code_of(_main, argv)


def _main(argv=None) -> int:
    from crackscope.deploy.cascade import load_classifier, load_segmenter
    from crackscope.deploy.operating_point import pair_study_parser, survey_tile_bank

    p = pair_study_parser(__doc__)
    p.add_argument("--val-images", type=int, default=20)
    p.add_argument("--test-images", type=int, default=6)
    p.add_argument("--sides", type=int, nargs="+", default=[1024, 2048])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--thresholds", type=float, nargs="+", default=[round(0.3 + 0.05 * i, 2) for i in range(11)])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--name", default="survey_threshold")
    args = p.parse_args(argv)
    bad = [t for t in args.thresholds if not 0 < t < 1]
    if bad:
        raise InputError(f"--thresholds {bad} must lie strictly between 0 and 1")
    torch.set_num_threads(1)
    classifier = load_classifier(args.classifier)
    segmenter = load_segmenter(args.segmenter)
    shipped = float(segmenter.threshold)  # the run's operating point, as inspect-image uses it
    thresholds = sorted(set(args.thresholds) | {shipped})
    parts = {}
    for part, n_images, sides in (("val", args.val_images, args.sides[:1]), ("test", args.test_images, args.sides)):
        stems, bank = survey_tile_bank(part, args.segmenter, args.classifier)
        parts[part] = {"n_photos": len(stems), "n_images": n_images, "sides": {}}
        for side in sides:
            parts[part]["sides"][str(side)] = sweep(classifier, segmenter, bank, n_images, side, args.seed, thresholds)
            print(part, side, "done", flush=True)
    val = parts["val"]["sides"][str(args.sides[0])]["cascade"]
    chosen = max(val, key=lambda row: (row["f1"], row["threshold"]))["threshold"]
    result = {
        "command": "benchmarks/survey_threshold.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "classifier": shown_path(args.classifier, ROOT),
        "segmenter": shown_path(args.segmenter, ROOT),
        "shipped_threshold": shipped,
        "chosen_threshold": chosen,
        "chosen_on": f"cascade F1 on {args.val_images} survey-like {args.sides[0]}-px validation mosaics",
        "seed": args.seed,
        "thresholds": thresholds,
        "parts": parts,
        "environment": {"date": datetime.date.today().isoformat(), **hardware()},
    }
    write_results(args.out / args.name, result, _markdown(result))
    print(_markdown(result))
    return 0


def _markdown(r: dict) -> str:
    lines = [
        "# The segmenter's mask threshold on survey-like images",
        "",
        f"Measured {r['environment']['date']}. Classifier `{r['classifier']}`, segmenter `{r['segmenter']}` "
        f"(its threshold {r['shipped_threshold']}). Mosaics seed {r['seed']}. Command: `{r['command']}`.",
        "",
        f"Chosen on validation ({r['chosen_on']}): **{r['chosen_threshold']}**.",
        "",
    ]
    for part, info in r["parts"].items():
        for side, modes in info["sides"].items():
            lines += [
                f"## {part}: {info['n_images']} mosaics of {side} px ({info['n_photos']} photos)",
                "",
                "| threshold | mode | pixel F1 | precision | recall | false crack px / MP | crack-free tiles with "
                "a false crack | kept of the correct crack px |",
                "|---:|---|---:|---:|---:|---:|---:|---:|",
            ]
            for k, t in enumerate(r["thresholds"]):
                for m in MODES:
                    row = modes[m][k]
                    fa = row["false_alarms"]
                    share = fa["false_tile_share"]
                    mark = " (chosen)" if t == r["chosen_threshold"] else ""
                    mark += " (the segmenter's)" if t == r["shipped_threshold"] else ""
                    kept = f"{100 * row['kept_true_crack_share']:.2f}%" if "kept_true_crack_share" in row else "–"
                    lines.append(
                        f"| {t}{mark} | {m.replace('_', ' ')} | {row['f1']:.3f} | {row['precision']:.3f} | "
                        f"{row['recall']:.3f} | {fa['false_px_per_megapixel'] or 0:.0f} | "
                        f"{100 * (share or 0):.2f}% of {fa['sound_tiles']} | {kept} |"
                    )
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
