"""Following cracks out of the flagged tiles (``crackscope inspect-image --follow R --follow-threshold P``):
what it recovers and what it costs, on whole photos and on survey-like images.

    .venv/bin/python benchmarks/cascade_follow.py [--part val|test] [--thresholds 0 0.05 0.1 0.2 0.3]
        [--rounds 8] [--mosaics 20] [--side 1024] [--threads 1] [--name cascade_follow_val]

1. **Images**, of the photos both shipped models held out (``--part test``, to report) or chose on
   (``--part val``, to choose on): (a) the photos whole, where a crack runs on from tile to tile as
   it does in a survey photo; (b) ``--mosaics`` survey-like images of ``--side`` px
   (crackscope.data.survey_mosaics, seed 0, 5-15 % crack tiles), where it does not: each 128-px
   tile comes from another place, so a crack stops at the tile's border.
2. **Modes**: the segmenter on every window (the reference), the cascade without following, and the
   cascade following for up to ``--rounds`` rounds at each ``--thresholds`` (the classifier
   probability a reached tile needs), all at the models' own defaults otherwise.
3. **Reported**, pooled per kind of image: the share of tiles segmented (flagged + followed), the
   share of the every-window mask's correct crack pixels the cascade keeps, exact-pixel F1 against
   the labels, the crack components of >= 20 px per image (a crack the cascade cuts at a tile border
   falls into more, shorter pieces than every window gives), and the seconds of the cascade (one run,
   ``--threads`` torch threads).

Writes benchmarks/results/NAME.{json,md}.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from crackscope.errors import exit_code_of
from crackscope.provenance import hardware, shown_path, write_results

ROOT = Path(__file__).resolve().parents[1]
MIN_COMPONENT_PX = 20  # crackscope.metrics.false_alarm_counts counts false cracks of this size too


def _components(mask: np.ndarray) -> int:
    from scipy.ndimage import label

    labels, n = label(mask, structure=np.ones((3, 3), bool))
    return int((np.bincount(labels.ravel())[1:] >= MIN_COMPONENT_PX).sum()) if n else 0


def measure(images, classifier, segmenter, modes: dict) -> dict:
    """Every mode of ``modes`` (name -> inspect_image keywords) on every (image, truth) of ``images``."""
    from crackscope.deploy.cascade import inspect_image
    from crackscope.deploy.operating_point import pixel_counts, pixel_scores

    names = ["all_windows", *modes]
    counts = {m: np.zeros(3, np.int64) for m in names}
    pieces = dict.fromkeys(names, 0)
    seconds = dict.fromkeys(names, 0.0)
    segmented = dict.fromkeys(names, 0)
    kept = dict.fromkeys(names, 0)
    correct = tiles = n = 0
    for image, truth in images:
        n += 1
        results = {}
        for m in names:
            keywords = {"all_tiles": True} if m == "all_windows" else modes[m]
            t0 = time.perf_counter()
            results[m] = r = inspect_image(image, classifier, segmenter, tile=classifier.tile, **keywords)
            seconds[m] += time.perf_counter() - t0
            counts[m] += pixel_counts(r.mask, truth)
            pieces[m] += _components(r.mask)
            segmented[m] += int((r.flagged | r.followed).sum())
        full = results["all_windows"].mask & truth
        correct += int(full.sum())
        tiles += results["all_windows"].n_tiles
        for m in names:
            kept[m] += int((results[m].mask & full).sum())
    return {
        "images": n,
        "tiles": tiles,
        "modes": {
            m: {
                "segmented_tile_share": segmented[m] / max(tiles, 1),
                "kept_true_crack_share": kept[m] / max(correct, 1),
                "vs_truth": pixel_scores(counts[m]),
                "components_per_image": pieces[m] / max(n, 1),
                "seconds": seconds[m],
            }
            for m in names
        },
    }


def _markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        "# Following cracks out of the flagged tiles",
        "",
        f"Measured {env['date']} on {env['cpu']} ({env['cpus']} CPUs available), torch {env['torch']}, "
        f"{result['threads']} torch thread(s); load average before / after: {env['load_before']} / "
        f"{env['load_after']}. Classifier `{result['classifier']}`, segmenter `{result['segmenter']}`, "
        f"their {result['part']} photos; command `{result['command']}`. Pixel F1 exact, pooled; components: "
        f"crack components of >= {MIN_COMPONENT_PX} px (8-connected) per image; seconds: one run of all images.",
        "",
        "| images | mode | tiles segmented | kept of the correct crack px | pixel F1 | precision | recall | "
        "components / image | s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, r in result["kinds"].items():
        for m, v in r["modes"].items():
            s = v["vs_truth"]
            lines.append(
                f"| {kind} ({r['images']}) | {m.replace('_', ' ')} | {v['segmented_tile_share']:.1%} | "
                f"{v['kept_true_crack_share']:.2%} | {s['f1']:.4f} | {s['precision']:.4f} | {s['recall']:.4f} | "
                f"{v['components_per_image']:.2f} | {v['seconds']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return exit_code_of(_main, argv)


def _main(argv=None) -> int:
    from crackscope.data.splits import stems_only_in
    from crackscope.data.survey_mosaics import survey_mosaics
    from crackscope.deploy.cascade import load_classifier, load_segmenter
    from crackscope.deploy.operating_point import RunPairs, pair_study_parser, survey_tile_bank

    p = pair_study_parser(__doc__)
    p.add_argument("--part", choices=("test", "val"), default="val")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.3])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--mosaics", type=int, default=20)
    p.add_argument("--side", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--name", default=None, help="OUT/NAME.{json,md} (default cascade_follow_PART)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    classifier = load_classifier(args.classifier)
    segmenter = load_segmenter(args.segmenter)
    modes = {"cascade": {"follow": 0}} | {
        f"follow {t:g}": {"follow": args.rounds, "follow_threshold": t} for t in args.thresholds
    }
    stems = stems_only_in(args.part, args.segmenter, args.classifier)
    read = RunPairs(args.segmenter)
    kinds = {}
    t0 = time.perf_counter()
    kinds["whole photos"] = measure((read(s) for s in stems), classifier, segmenter, modes)
    print(f"whole photos: {time.perf_counter() - t0:.0f} s", flush=True)
    _, bank = survey_tile_bank(args.part, args.segmenter, args.classifier)
    mosaics = ((im, tr) for im, tr, _ in survey_mosaics(bank, args.mosaics, side=args.side, seed=0))
    kinds[f"survey-like {args.side} px"] = measure(mosaics, classifier, segmenter, modes)
    print(f"survey-like: {time.perf_counter() - t0:.0f} s", flush=True)
    result = {
        "command": "benchmarks/cascade_follow.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "classifier": shown_path(args.classifier, ROOT),
        "segmenter": shown_path(args.segmenter, ROOT),
        "part": args.part,
        "photos": stems,
        "rounds": args.rounds,
        "thresholds": args.thresholds,
        "threads": args.threads,
        "kinds": kinds,
        "environment": {
            "date": datetime.date.today().isoformat(),
            **hardware(),
            "load_before": [round(v, 2) for v in load_before],
            "load_after": [round(v, 2) for v in os.getloadavg()],
        },
    }
    write_results(args.out / (args.name or f"cascade_follow_{args.part}"), result, _markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
