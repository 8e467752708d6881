"""The figures a condition rating uses -- total crack length and the widest crack per photo -- from
a segmenter's mask against the same figures from the labelled mask, on real held-out photos.

`benchmarks/crack_measurement.py` checks the measurement chain on drawn cracks of known geometry;
this checks it where the geometry is a person's label: each image of a run's recorded part (test by
default) is segmented whole at the run's threshold, and both masks are measured as `cracks.csv` does
(:func:`crackscope.analysis.crack_measure.measure_cracks`: skeleton length summed over all components,
the largest maximum width). Per source and model:

* predicted / labelled total length, pooled over the images (false cracks add length, missed pieces
  subtract it);
* the median and the mean absolute per-image relative length error;
* the median per-image error of the widest crack, in pixels.

    .venv/bin/python benchmarks/crack_length_photos.py --model NAME=RUN [--model ...] [--part test]
        # -> benchmarks/results/crack_length_photos.{md,json}
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from crackscope.errors import exit_code_of, named_values
from crackscope.provenance import measured_on, write_results

HERE = Path(__file__).resolve().parent


def figures(mask: np.ndarray) -> tuple[float, float]:
    """(total skeleton length in px, widest crack in px) of an (H, W) bool mask; (0, 0) when empty."""
    from crackscope.analysis.crack_measure import measure_cracks

    cracks = measure_cracks(mask)
    if not cracks:
        return 0.0, 0.0
    return float(sum(c["length_px"] for c in cracks)), float(max(c["max_width_px"] for c in cracks))


def summarise(rows: list[dict]) -> dict:
    """Pooled length ratio and per-image errors of ``rows`` (one per image; images without a labelled
    crack count in the pooled ratio only)."""
    label = np.array([r["label_length_px"] for r in rows])
    pred = np.array([r["predicted_length_px"] for r in rows])
    has = label > 0
    rel = (pred[has] - label[has]) / label[has]
    width = np.array([r["predicted_max_width_px"] - r["label_max_width_px"] for r in rows])[has]
    return {
        "images": len(rows),
        "label_length_px": float(label.sum()),
        "length_ratio": float(pred.sum() / label.sum()) if label.sum() else float("nan"),
        "median_relative_length_error": float(np.median(rel)) if rel.size else float("nan"),
        "mean_abs_relative_length_error": float(np.abs(rel).mean()) if rel.size else float("nan"),
        "median_max_width_error_px": float(np.median(width)) if width.size else float("nan"),
    }


def _main(argv=None) -> int:
    from crackscope.engine.surface import recorded_masks
    from crackscope.shipped import resolve

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="NAME=RUN: a surface run, model folder or name")
    ap.add_argument("--part", choices=("val", "test"), default="test")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "crack_length_photos")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    models = [(name, resolve(run, "segmenter")[0]) for name, run in named_values(args.model, "--model").items()]
    per_image, table = [], []
    for name, run in models:
        rows = []
        for stem, label, predicted in recorded_masks(run, args.part)[1]:
            (lp, lw), (pp, pw) = figures(label), figures(predicted)
            rows.append(
                {
                    "model": name,
                    "source": stem.split("/", 1)[0] if "/" in stem else "all",
                    "stem": stem,
                    "label_length_px": lp,
                    "label_max_width_px": lw,
                    "predicted_length_px": pp,
                    "predicted_max_width_px": pw,
                }
            )
        per_image += rows
        for source in sorted({r["source"] for r in rows}):
            table.append({"model": name, "source": source, **summarise([r for r in rows if r["source"] == source])})
        print(name, [(t["source"], round(t["length_ratio"], 3)) for t in table if t["model"] == name], flush=True)
    m = measured_on()
    lines = [
        f"# Total crack length and widest crack per photo: segmenter masks against the labels ({args.part} images)",
        "",
        f"{m['date'][:10]}, {m['hardware']}, commit {m['commit']}. Whole images at each run's threshold; "
        "lengths are skeleton lengths summed over all crack components of the image, widths the largest "
        "maximum width (`crackscope.analysis.crack_measure`). Command: `benchmarks/crack_length_photos.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
        + "`.",
        "",
        "| model | source | images | labelled length, px | predicted / labelled length (pooled) "
        "| median per-image length error | mean absolute per-image length error | median widest-crack error, px |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {t['model']} | {t['source']} | {t['images']} | {t['label_length_px']:,.0f} | {t['length_ratio']:.3f} "
            f"| {t['median_relative_length_error']:+.1%} | {t['mean_abs_relative_length_error']:.1%} "
            f"| {t['median_max_width_error_px']:+.1f} |"
            for t in table
        ),
        "",
    ]
    write_results(args.out, {"part": args.part, "measured_on": m, "rows": table, "images": per_image}, "\n".join(lines))
    print("\n".join(lines))
    return 0


def main(argv=None) -> int:
    return exit_code_of(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
