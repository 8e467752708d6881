"""Where a crack segmenter's exact-pixel errors lie: at the crack's border, or away from any crack.

Exact-pixel F1 counts a predicted pixel one column off the label as wrong, just as a "crack" drawn
on sound surface. This benchmark separates the two on the recorded validation (or test) images of a
run, per source, at the run's threshold:

* false positives within 1 and 2 px of a labelled crack pixel (a mask wider than the label, or
  shifted) against those further away (a false crack, or a crack the label misses);
* false negatives within 1 and 2 px of a predicted pixel (a mask narrower than the label) against
  those further away (crack length missed);
* predicted crack area / labelled area;
* F1 if the false positives within 1 px were not counted, and if no error within 2 px were;
* the images with the most false-positive pixels far (> 2 px) from any label.

Distances are Euclidean between pixel centres (``crackscope.metrics.crack_free_pixels``).

    .venv/bin/python benchmarks/crack_error_anatomy.py src/crackscope/weights/cracks/segmenter [--part val]
        # -> benchmarks/results/crack_error_anatomy_val.{md,json}
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from crackscope.engine.surface import recorded_masks
from crackscope.metrics import crack_free_pixels
from crackscope.provenance import measured_on, write_results

HERE = Path(__file__).resolve().parent
COUNTS = ("tp", "fp", "fn", "fp_1px", "fp_2px", "fn_1px", "fn_2px", "label_px", "predicted_px")


def anatomy(prediction: np.ndarray, label: np.ndarray) -> dict[str, int]:
    """The counts of :data:`COUNTS` for one boolean prediction and label of the same shape."""
    fp, fn = prediction & ~label, label & ~prediction
    near_label = {r: ~crack_free_pixels(label, r) for r in (1, 2)}  # within r px of a labelled crack pixel
    near_pred = {r: ~crack_free_pixels(prediction, r) for r in (1, 2)}
    return {
        "tp": int((prediction & label).sum()),
        "fp": int(fp.sum()),
        "fn": int(fn.sum()),
        "fp_1px": int((fp & near_label[1]).sum()),
        "fp_2px": int((fp & near_label[2]).sum()),
        "fn_1px": int((fn & near_pred[1]).sum()),
        "fn_2px": int((fn & near_pred[2]).sum()),
        "label_px": int(label.sum()),
        "predicted_px": int(prediction.sum()),
    }


def summary(c: dict[str, int]) -> dict[str, float]:
    tp, fp, fn = c["tp"], c["fp"], c["fn"]

    def f1(fp_, fn_):
        return 2 * tp / max(2 * tp + fp_ + fn_, 1)

    return {
        "f1": f1(fp, fn),
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(tp + fn, 1),
        "fp_within_1px": c["fp_1px"] / max(fp, 1),
        "fp_within_2px": c["fp_2px"] / max(fp, 1),
        "fn_within_1px": c["fn_1px"] / max(fn, 1),
        "fn_within_2px": c["fn_2px"] / max(fn, 1),
        "area_ratio": c["predicted_px"] / max(c["label_px"], 1),
        "f1_without_fp_1px": f1(fp - c["fp_1px"], fn),
        "f1_without_errors_2px": f1(fp - c["fp_2px"], fn - c["fn_2px"]),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a surface run or model folder trained on crack photos")
    ap.add_argument("--part", choices=("val", "test"), default="val")
    ap.add_argument("--worst", type=int, default=5, help="images listed with the most far false positives")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    by_source: dict[str, dict[str, int]] = {}
    far = []
    threshold, masks = recorded_masks(args.run, args.part)
    for stem, label, predicted in masks:
        source = stem.split("/", 1)[0] if "/" in stem else "all"
        c = anatomy(predicted, label)
        total = by_source.setdefault(source, dict.fromkeys(("images", *COUNTS), 0))
        total["images"] += 1
        for k in COUNTS:
            total[k] += c[k]
        far.append((c["fp"] - c["fp_2px"], stem))
    far.sort(reverse=True)
    rows = [{"source": s, **c, **summary(c)} for s, c in by_source.items()]
    record = {
        "run": args.run,
        "part": args.part,
        "threshold": threshold,
        "measured_on": measured_on(),
        "rows": rows,
        "most_far_false_positives": [{"stem": n, "far_fp_px": int(v)} for v, n in far[: args.worst]],
    }
    m = record["measured_on"]
    lines = [
        f"# Where the exact-pixel errors lie: `{args.run}`, {args.part} images",
        "",
        f"{m['date'][:10]}, {m['hardware']}, commit {m['commit']}; threshold {threshold:.2f} (the run's)."
        " Shares of the false positives (FP)"
        " within 1 / 2 px of a labelled crack pixel, and of the false negatives (FN) within 1 / 2 px of a"
        " predicted one.",
        "",
        "| source | images | F1 | precision | recall | FP within 1 px | FP within 2 px | FN within 1 px"
        " | FN within 2 px | predicted / labelled area | F1 without FP within 1 px | F1 without errors within 2 px |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['source']} | {r['images']} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f}"
            f" | {r['fp_within_1px']:.0%} | {r['fp_within_2px']:.0%} | {r['fn_within_1px']:.0%}"
            f" | {r['fn_within_2px']:.0%} | {r['area_ratio']:.2f} | {r['f1_without_fp_1px']:.3f}"
            f" | {r['f1_without_errors_2px']:.3f} |"
            for r in rows
        ),
        "",
        "Most false-positive pixels more than 2 px from any labelled crack: "
        + ", ".join(f"`{r['stem']}` ({r['far_fp_px']})" for r in record["most_far_false_positives"]),
        "",
    ]
    out = args.out or HERE / "results" / f"crack_error_anatomy_{args.part}"
    write_results(out, record, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
