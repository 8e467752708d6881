"""Cross-dataset table of crack segmenters: each model scored on the held-out test images of each
dataset (the test part of the split recorded by the run trained on that dataset), so no model is
ever scored on an image it or its sibling trained on.

    .venv/bin/python benchmarks/cross_dataset_cracks.py \
        --model deepcrack=src/crackscope/weights/deepcrack/segmenter --model crack500=runs/cascade/segmenter_crack500 \
        --test deepcrack=src/crackscope/weights/deepcrack/segmenter:../shared/datasets/DeepCrack \
        --test crack500=runs/cascade/segmenter_crack500:../shared/datasets/Crack500 \
        [--out benchmarks/results/cross_dataset_cracks]

``--model NAME=RUN``: a trained surface run or model folder. ``--test NAME=RUN:ROOT``: a dataset
(its layout is NAME: deepcrack or crack500) and the run whose split.json names its test images (a
run on several sources: its ``NAME/<stem>`` test stems, the same images a run on NAME alone holds out).
Writes OUT.json and OUT.md: pixel F1 / IoU at each model's own threshold, and ODS / OIS F at 0 and
2 px tolerance (crackscope.metrics.crack_f_measures).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from crackscope.data.splits import read_split_stems
from crackscope.engine.surface import evaluate_surface_run
from crackscope.errors import exit_code_of, named_values
from crackscope.provenance import measured_on, write_results

HERE = Path(__file__).resolve().parent

KEYS = ("f1", "iou_defect", "precision", "recall", "ods_f_0px", "ois_f_0px", "ods_f_2px", "ois_f_2px")


def held_out(data_name: str, spec: str, part: str = "test") -> tuple[str, list[str]]:
    """``RUN:ROOT`` of ``--test NAME=RUN:ROOT`` -> (ROOT, the ``part`` stems RUN recorded for NAME)."""
    split_run, _, root = spec.partition(":")
    stems = read_split_stems(split_run)[part]
    prefixed = [s.split("/", 1)[1] for s in stems if s.startswith(f"{data_name}/")]
    return root, prefixed or stems  # a run on several sources lists NAME/<stem>


def cases(argv, description: str, default_out: Path) -> tuple[Path, list[tuple[str, str, list[str], str, str]], str]:
    """``--model`` / ``--test`` / ``--out`` / ``--part`` parsed: (OUT, [(dataset, root, stems, model, run), ...],
    part)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--test", action="append", required=True)
    ap.add_argument("--out", type=Path, default=default_out)
    ap.add_argument(
        "--part", choices=("test", "val"), default="test", help="which recorded images (val: to choose models)"
    )
    args = ap.parse_args(argv)
    models, tests = named_values(args.model, "--model"), named_values(args.test, "--test")
    out = []
    for data_name, spec in tests.items():
        root, stems = held_out(data_name, spec, args.part)
        out += [(data_name, root, stems, model_name, run) for model_name, run in models.items()]
    return args.out, out, args.part


def main(argv=None) -> int:
    out, todo, part = cases(argv, __doc__.splitlines()[0], HERE / "results" / "cross_dataset_cracks")
    rows = []
    for data_name, root, stems, model_name, run in todo:
        with tempfile.TemporaryDirectory() as tmp:
            r = evaluate_surface_run(run, root, tmp, format=data_name, stems=stems)
        rows.append(
            {
                "model": model_name,
                "run": run,
                "test": data_name,
                "n_images": r["n_images"],
                "threshold": r["threshold"],
                **{k: r.get(k) for k in KEYS},
                "false_alarms": r.get("false_alarms"),
            }
        )
        print(f"{model_name} on {data_name}: F1 {r['f1']:.4f}  ODS(2px) {r.get('ods_f_2px')}", flush=True)
    meta = measured_on()
    lines = [
        f"# Crack segmenters across datasets ({meta['date'][:10]}, {meta['hardware']})",
        "",
        f"Each model on the {'held-out test' if part == 'test' else 'validation'} images of each dataset "
        "(whole images; F1 / IoU at the model's threshold; ODS / OIS: best fixed / per-image threshold, at 0 "
        "and 2 px tolerance; false alarms on the crack-free surface, more than 16 px from a labelled crack: "
        "false crack pixels per megapixel and the share of crack-free 128-px tiles with a false crack of "
        ">= 20 px, crackscope.metrics.false_alarm_counts).",
        "",
        "| trained on | tested on | images | F1 | IoU | precision | recall | ODS 0 px | OIS 0 px | ODS 2 px | "
        "OIS 2 px | false px / MP | crack-free tiles with a false crack |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = " | ".join("–" if r[k] is None else f"{r[k]:.3f}" for k in KEYS)
        fa = r["false_alarms"] or {}
        alarms = (
            f"{fa['false_px_per_megapixel']:.0f} | {fa['false_tile_share']:.1%} of {fa['sound_tiles']}"
            if fa and fa.get("false_tile_share") is not None
            else "– | –"
        )
        lines.append(f"| {r['model']} | {r['test']} | {r['n_images']} | {cells} | {alarms} |")
    write_results(out, {**meta, "part": part, "rows": rows}, "\n".join(lines) + "\n", indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(exit_code_of(main))
