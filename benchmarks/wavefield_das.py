"""What the record says about where a crack is, without training: delay-and-sum imaging
(crackscope.analysis.delay_and_sum) of a wave-field store's scattered field.

For each plate it records the distance from the image's brightest pixel to the nearest crack pixel
(µm), and the pooled crack DSC of marking every pixel above a fraction q of the plate's own image
maximum, q chosen on the first half of the plates and scored on the second half (per size class).

    python benchmarks/wavefield_das.py STORE [--samples 400] [--mode sp] [--window 1.5]

Writes benchmarks/results/wavefield_das.{json,md}.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from crackscope.analysis.delay_and_sum import das_image_of_store
from crackscope.data.wavefield_store import open_store
from crackscope.metrics import DEFAULT_BOUNDS_UM, by_crack_size, cell_oracle, confusion_counts, summarize
from crackscope.provenance import cpu_name, write_results

FRACTIONS = tuple(round(0.05 * k, 2) for k in range(4, 20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--mode", default="sp")
    parser.add_argument("--window", type=float, default=1.5, help="P-wave transits of the plate kept")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "wavefield_das")
    args = parser.parse_args()
    group = open_store(args.store)
    done = np.nonzero(np.asarray(group["done"][:]))[0][: args.samples]
    images = das_image_of_store(group, done, mode=args.mode, window_transits=args.window)
    masks = np.asarray(group["masks"].get_orthogonal_selection((done,))) > 0
    longest = np.asarray(group["max_crack_length_um"][:])[done]
    cfg = dict(group.attrs["config"])
    pixel_um = cfg["width"] / cfg["mask_size"] * 1e6
    grid = int(cfg["sensor_grid"])

    errors = []
    for img, m in zip(images, masks):
        iy, ix = np.unravel_index(img.argmax(), img.shape)
        cy, cx = np.nonzero(m)
        errors.append(float(np.hypot(cy - iy, cx - ix).min() * pixel_um) if cy.size else np.nan)
    errors = np.array(errors)

    half = len(done) // 2
    peak = images.max(axis=(1, 2), keepdims=True)
    target = torch.as_tensor(masks.astype(np.float32))

    def counts(q, sel):
        pred = torch.as_tensor((images[sel] >= q * peak[sel]).astype(np.float32))
        return confusion_counts(pred, target[sel], threshold=0.5, from_logits=False)

    val, test = slice(0, half), slice(half, None)
    best_q = max(FRACTIONS, key=lambda q: summarize(counts(q, val))["dsc"])
    test_counts = counts(best_q, test)
    sizes = by_crack_size(test_counts, longest[test])
    oracle = by_crack_size(
        confusion_counts(cell_oracle(target[test], grid).float(), target[test], from_logits=False), longest[test]
    )
    spacing_um = cfg["width"] / grid * 1e6
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "store": str(args.store),
        "machine": cpu_name(),
        "plates": int(len(done)),
        "mode": args.mode,
        "window_transits": args.window,
        "peak_to_crack_um_median": float(np.nanmedian(errors)),
        "peak_within_one_sensor_spacing": float(np.nanmean(errors <= spacing_um)),
        "sensor_spacing_um": spacing_um,
        "fraction_of_peak": best_q,
        "dsc_by_size": {k: v["dsc"] for k, v in sizes.items()},
        "cell_oracle_by_size": {k: v["dsc"] for k, v in oracle.items()},
    }
    cols = [f">{b:g}" for b in DEFAULT_BOUNDS_UM]
    lines = [
        f"# Delay-and-sum imaging ({result['date']}, {args.store.name}, {len(done)} plates, mode {args.mode}, "
        f"{args.window} P transits)",
        "",
        f"Brightest pixel to the nearest crack pixel: median {result['peak_to_crack_um_median']:.2f} µm; "
        f"within one sensor spacing ({spacing_um:g} µm): {100 * result['peak_within_one_sensor_spacing']:.0f} %.",
        "",
        "| second half of the plates | " + " | ".join(f"{c} µm" for c in cols) + " |",
        "|---|" + "---:|" * len(cols),
        f"| DSC, pixels above {best_q} x the plate's peak | "
        + " | ".join(f"{sizes[c]['dsc']:.3f}" if sizes[c]["dsc"] is not None else "–" for c in cols)
        + " |",
        "| cell oracle DSC | "
        + " | ".join(f"{oracle[c]['dsc']:.3f}" if oracle[c]["dsc"] is not None else "–" for c in cols)
        + " |",
    ]
    write_results(args.out, result, "\n".join(lines) + "\n", indent=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
