"""Which segmentation window to use in the cascade, chosen on validation images only: a segmenter
run's pixel F1 on its validation images (each dataset apart) when it segments every window of a
given side (crackscope.deploy.cascade.segment_all_tiles, at the run's threshold), against the whole
image in one call, with the seconds each took.

    .venv/bin/python benchmarks/window_choice.py RUN [--windows 64 128 320] [--overlap 0 0.25]
        [--out benchmarks/results/window_choice]

Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cascade_deepcrack import Pairs, _counts, _scores  # noqa: E402
from cross_dataset_cracks import measured_on  # noqa: E402

from crackscope.deploy.cascade import load_segmenter, segment_all_tiles  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--windows", type=int, nargs="+", default=[64, 128, 320])
    ap.add_argument("--overlap", type=float, nargs="+", default=[0.0, 0.25])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "window_choice")
    args = ap.parse_args(argv)
    segmenter, pairs = load_segmenter(args.run), Pairs(args.run)
    val = json.loads((args.run / "split.json").read_text())["stems"]["val"]
    modes = [(w, o) for w in args.windows for o in args.overlap] + [("whole", None)]
    rows = []
    for source, stems in pairs.by_source(val).items():
        counts = {m: np.zeros(3, np.int64) for m in modes}
        seconds = dict.fromkeys(modes, 0.0)
        for stem in stems:
            image, truth = pairs(stem)
            for m in modes:
                t = time.perf_counter()
                if m[0] == "whole":
                    mask = segmenter(torch.from_numpy(image)[None])[0].numpy() > segmenter.threshold
                else:
                    mask = segment_all_tiles(image, segmenter, tile=64, window=m[0], overlap=m[1]).mask
                seconds[m] += time.perf_counter() - t
                counts[m] += _counts(mask, truth)
        for m in modes:
            rows.append(
                {"data": source, "window": m[0], "overlap": m[1], "n_images": len(stems), "seconds": seconds[m]}
                | _scores(counts[m])
            )
            print(rows[-1], flush=True)
    meta = measured_on()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({**meta, "run": str(args.run), "rows": rows}, indent=1) + "\n")
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
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
