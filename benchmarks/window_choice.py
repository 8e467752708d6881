"""Which segmentation window to use in the cascade, chosen on validation images only: a segmenter
run's pixel F1 on its validation images (each dataset apart) when it segments every window of a
given side (crackscope.deploy.cascade.segment_all_tiles, at the run's threshold), against the whole
image in one call, with the seconds each took.

With ``--classifier CLS`` (a tile classifier sharing the run's split) each window also gets the
cascade's operating point on the same validation images (``crackscope.deploy.operating_point``'s
*true* criterion: the highest threshold keeping ``--target-share`` of the correctly found crack
pixels in the cascade's final region), the fraction of windows the cascade then runs, the fraction a
perfect screen would run, and the speed-up both predict from the measured seconds (classifier cost
included for the real one; none for the perfect one).

    .venv/bin/python benchmarks/window_choice.py RUN [--windows 64 128 320] [--overlap 0 0.25]
        [--classifier CLS] [--target-share 0.98] [--out benchmarks/results/window_choice]

Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from crackscope.deploy.cascade import load_classifier, load_segmenter, segment_all_tiles
from crackscope.deploy.operating_point import (
    RunPairs,
    ScreenedImage,
    operating_points,
    oracle_windows,
    pixel_counts,
    pixel_scores,
    tile_probabilities,
)
from crackscope.provenance import measured_on, write_results

HERE = Path(__file__).resolve().parent


def _cascade(images: list[ScreenedImage], segment_s: float, classify_s: float, share: float) -> dict:
    """The cascade's *true* operating point on ``images``, the windows it runs, a perfect screen's,
    and the speed-ups they predict: segment_s / (classify_s + v segment_s), and 1 / v."""
    op = operating_points(images, share)["true"]
    oracle = oracle_windows([i.base for i in images], [i.pixels["true"] for i in images], share)
    return {
        "threshold": op["threshold"],
        "flagged_fraction": op["flagged_fraction"],
        "windows_fraction": op["windows_fraction"],
        "predicted_speedup": segment_s / (classify_s + op["windows_fraction"] * segment_s),
        "oracle_windows_fraction": oracle["windows_fraction"],
        "oracle_speedup": 1 / max(oracle["windows_fraction"], 1e-9),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--windows", type=int, nargs="+", default=[64, 128, 320])
    ap.add_argument("--overlap", type=float, nargs="+", default=[0.0, 0.25])
    ap.add_argument("--classifier", type=Path, default=None)
    ap.add_argument("--target-share", type=float, default=0.98)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "window_choice")
    args = ap.parse_args(argv)
    segmenter, pairs = load_segmenter(args.run), RunPairs(args.run)
    classifier = None if args.classifier is None else load_classifier(args.classifier, runtime="packed")
    val = json.loads((args.run / "split.json").read_text())["stems"]["val"]
    modes = [(w, o) for w in args.windows for o in args.overlap] + [("whole", None)]
    rows = []
    for source, stems in pairs.by_source(val).items():
        counts = {m: np.zeros(3, np.int64) for m in modes}
        seconds = dict.fromkeys(modes, 0.0)
        screened = {m: [] for m in modes}
        classify_s = 0.0
        for stem in stems:
            image, truth = pairs(stem)
            for m in modes:
                t = time.perf_counter()
                if m[0] == "whole":
                    mask = segmenter(torch.from_numpy(image)[None])[0].numpy() > segmenter.threshold
                else:
                    base = segment_all_tiles(image, segmenter, tile=64, window=m[0], overlap=m[1])
                    mask = base.mask
                seconds[m] += time.perf_counter() - t
                counts[m] += pixel_counts(mask, truth)
                if classifier is not None and m[0] != "whole":
                    t = time.perf_counter()
                    screened[m].append(ScreenedImage(base, tile_probabilities(classifier, image, base), truth))
                    classify_s += (time.perf_counter() - t) / (len(modes) - 1)
        for m in modes:
            row = {"data": source, "window": m[0], "overlap": m[1], "n_images": len(stems), "seconds": seconds[m]}
            if screened[m]:
                row["cascade"] = _cascade(screened[m], seconds[m], classify_s, args.target_share)
            rows.append(row | pixel_scores(counts[m]))
            print(rows[-1], flush=True)
    meta = measured_on()
    lines = [
        f"# Segmentation window, chosen on the validation images ({meta['date'][:10]}, {meta['hardware']})",
        "",
        f"`{args.run}` on every window of each side (its threshold {segmenter.threshold}), validation images only.",
        "",
        "| data | window | overlap | images | precision | recall | F1 | seconds |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        overlap = "–" if r["overlap"] is None else f"{r['overlap']:.2f}"
        lines.append(
            f"| {r['data']} | {r['window']} | {overlap} | {r['n_images']} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['f1']:.3f} | {r['seconds']:.1f} |"
        )
    if classifier is not None:
        lines += [
            "",
            f"The cascade with `{args.classifier}` (packed) on the same validation images, its threshold chosen "
            f"there to keep {args.target_share:.0%} of the correctly found crack pixels in its final region; "
            "predicted speed-up = all-windows seconds / (classifier seconds + windows run x all-windows seconds); "
            "a perfect screen runs the fewest windows that keep the same share (bound: 1 / its windows).",
            "",
            "| data | window | overlap | threshold | flagged | windows run | predicted speed-up | "
            "perfect screen: windows | bound |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            if "cascade" in r:
                c = r["cascade"]
                lines.append(
                    f"| {r['data']} | {r['window']} | {r['overlap']:.2f} | {c['threshold']:.3f} | "
                    f"{c['flagged_fraction']:.3f} | {c['windows_fraction']:.3f} | {c['predicted_speedup']:.2f}x | "
                    f"{c['oracle_windows_fraction']:.3f} | {c['oracle_speedup']:.2f}x |"
                )
    write_results(args.out, {**meta, "run": str(args.run), "rows": rows}, "\n".join(lines) + "\n", indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
