"""What flip test-time augmentation is worth to a crack segmenter: exact-pixel F1 pooled over the
validation and test images the run recorded (split.json), with each mode of
:mod:`crackscope.nn.flip_tta` (none: one pass; flip: the four mirrors; d8: also transposed).

    .venv/bin/python benchmarks/crack_tta.py --model cracks=src/crackscope/weights/cracks/segmenter \
        [--model NAME=RUN ...] [--modes none,flip,d8] [--out benchmarks/results/crack_tta]

For each model, mode and part (val, test), every source of the run (``NAME/<stem>`` in its split):

* F1 at the run's own threshold (chosen on validation without augmentation);
* the threshold that maximises F1 on the validation images with this mode (of 0.05 ... 0.95), and
  the test F1 at that threshold: the fair way to adopt a mode, decided on validation alone;
* seconds per image (whole images, one thread).

Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from crackscope.data.images import load_image, load_mask
from crackscope.data.splits import read_split_stems
from crackscope.engine.runs import load_run, run_threshold
from crackscope.engine.surface import predict_probability, surface_dataset
from crackscope.errors import InputError, exit_code_of
from crackscope.metrics import crack_f_counts, crack_f_curve
from crackscope.nn.flip_tta import TTA_MODES, passes
from crackscope.provenance import measured_on, write_results

HERE = Path(__file__).resolve().parent
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))


def _f1(counts: np.ndarray) -> np.ndarray:
    """Exact-pixel F1 per threshold from summed (K, 4) crack_f_counts at 0 px."""
    return crack_f_curve(counts)[2].numpy()


def score(run: str, modes: list[str]) -> dict:
    """{part: {mode: {source: (K, 4) counts summed}}} and seconds per image per mode."""
    cfg, model, _ = load_run(run)
    stems = read_split_stems(run)
    counts: dict = {}
    seconds = dict.fromkeys(modes, 0.0)
    n_images = 0
    for part in ("val", "test"):
        ds = surface_dataset(cfg.data, stems=stems[part])
        counts[part] = {m: {} for m in modes}
        for i in range(len(ds)):
            source = ds.stems[i].split("/", 1)[0] if "/" in ds.stems[i] else "all"
            image = load_image(ds.image_paths[i], cfg.data.in_channels)
            mask = load_mask(ds.mask_paths[i])[0]
            for mode in modes:
                start = time.perf_counter()
                prob = predict_probability(model, image, cfg.data.size, tta=mode)
                seconds[mode] += time.perf_counter() - start
                c = crack_f_counts(prob, mask, THRESHOLDS, 0).numpy()
                by_source = counts[part][mode]
                by_source[source] = by_source.get(source, 0) + c
            n_images += 1
    return {
        "counts": counts,
        "seconds_per_image": {m: s / n_images for m, s in seconds.items()},
        "threshold": run_threshold(run, cfg),
    }


def summarise(name: str, run: str, scored: dict) -> list[dict]:
    rows = []
    k_run = THRESHOLDS.index(round(scored["threshold"], 2)) if round(scored["threshold"], 2) in THRESHOLDS else None
    for mode, val in scored["counts"]["val"].items():
        val_all = _f1(sum(val.values()))
        k_val = int(np.argmax(val_all))
        test = scored["counts"]["test"][mode]
        row = {
            "model": name,
            "run": run,
            "mode": mode,
            "passes": passes(mode),
            "seconds_per_image": scored["seconds_per_image"][mode],
            "run_threshold": scored["threshold"],
            "val_f1_run_threshold": None if k_run is None else float(val_all[k_run]),
            "val_best_threshold": THRESHOLDS[k_val],
            "val_best_f1": float(val_all[k_val]),
            "test_f1_run_threshold": None if k_run is None else float(_f1(sum(test.values()))[k_run]),
            "test_f1_val_threshold": float(_f1(sum(test.values()))[k_val]),
            "test_f1_val_threshold_by_source": {s: float(_f1(c)[k_val]) for s, c in sorted(test.items())},
        }
        rows.append(row)
    return rows


def _cell(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="NAME=RUN: a surface run or model folder")
    ap.add_argument("--modes", default=",".join(TTA_MODES), help="comma-separated, of " + ", ".join(TTA_MODES))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "crack_tta")
    args = ap.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in TTA_MODES for m in modes):
        raise InputError(f"--modes {args.modes!r}: each must be one of {', '.join(TTA_MODES)}")
    models = []
    for spec in args.model:
        name, _, run = spec.partition("=")
        if not name or not run or not Path(run).is_dir():
            raise InputError(f"--model {spec!r} is not NAME=RUN with RUN a run or model folder")
        read_split_stems(run)  # one line if it recorded no split
        models.append((name, run))
    torch.set_num_threads(1)
    rows = []
    for name, run in models:
        for row in summarise(name, run, score(run, modes)):
            rows.append(row)
            print(name, row["mode"], round(row["val_best_f1"], 4), round(row["test_f1_val_threshold"], 4), flush=True)
    meta = measured_on()
    sources = sorted({s for r in rows for s in r["test_f1_val_threshold_by_source"]})
    lines = [
        f"# Flip test-time augmentation of crack segmenters ({meta['date'][:10]})",
        "",
        f"{meta['hardware']}. Exact-pixel F1 pooled over each part's whole images (the run's "
        "split.json); thresholds 0.05-0.95 in steps of 0.05 (benchmarks/crack_tta.py).",
        "",
        "| model | mode | passes | s / image | val F1 at the run's threshold | val best F1 (threshold) "
        "| test F1 at the run's threshold | test F1 at the val threshold | "
        + " | ".join(f"test {s}" for s in sources)
        + " |",
        "|---|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(sources),
    ]
    for r in rows:
        by = r["test_f1_val_threshold_by_source"]
        lines.append(
            f"| {r['model']} | {r['mode']} | {r['passes']} | {r['seconds_per_image']:.2f} | "
            f"{_cell(r['val_f1_run_threshold'])} | {r['val_best_f1']:.3f} ({r['val_best_threshold']:.2f}) | "
            f"{_cell(r['test_f1_run_threshold'])} | {r['test_f1_val_threshold']:.3f} | "
            + " | ".join(_cell(by.get(s)) for s in sources)
            + " |"
        )
    write_results(args.out, {**meta, "thresholds": THRESHOLDS, "rows": rows}, "\n".join(lines) + "\n", indent=1)
    print(f"wrote {args.out}.json and {args.out}.md")
    return 0


def main(argv=None) -> int:
    return exit_code_of(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
