"""Does a tile classifier's survey operating point carry over to photos it was not chosen on?
Validation photos only.

    .venv/bin/python benchmarks/operating_point_transfer.py --classifier NAME=DIR [--classifier ...]
        [--segmenter cracks/segmenter] [--images 10] [--window 128] [--seed 0] [--margins 0 0.01]

The validation photos of the segmenter's split are cut into two halves (a seeded permutation).
Each half gives --images survey-like 1024-px images (crackscope.data.survey_mosaics: 5-15 % crack
tiles, the rest crack-free surface). For each classifier, the cascade's operating point (criterion
'true': the highest threshold that keeps 98 % of the crack pixels every window finds correctly) is
chosen on one half's images and applied to the other's, both ways: what it keeps there and the share
of --window-px windows it runs. A classifier whose threshold keeps its 98 % on the other half
carries over to new photos; one that falls short there will on new photos too. The test photos
play no part, so this can choose between classifiers. --margins adds safety margins to the 98 %
required on the half that chooses (choose-operating-point --margin): how much margin the other half
needs is how much a new set of photos will.

Writes benchmarks/results/NAME.{json,md} (default operating_point_transfer).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np
import torch

from crackscope.errors import InputError, exit_code_of, named_values
from crackscope.provenance import hardware, write_results

ROOT = Path(__file__).resolve().parents[1]
SHARE = 0.98


def _markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        "# Survey operating points carried over between halves of the validation photos",
        "",
        f"Measured {env['date']} on {env['cpu']}, torch {env['torch']}. Segmenter `{result['segmenter']}`, "
        f"{result['window']}-px windows without overlap; {result['n_photos']} validation photos cut in two "
        f"halves (seed {result['seed']}), {result['images']} survey-like 1024-px images each. Criterion 'true', "
        f"{SHARE:.0%} plus the margin. Command: `{result['command']}`.",
        "",
        "| classifier | margin | chosen on | threshold | kept there | windows run there | kept on the other half | "
        "windows run there |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['classifier']} | {r['margin']:g} | half {r['chosen_on']} | {r['threshold']:.3f} | "
            f"{r['kept']:.2%} | "
            f"{r['windows']:.1%} | **{r['kept_other']:.2%}** | {r['windows_other']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return exit_code_of(_main, argv)


def _main(argv=None) -> int:
    from crackscope.data.splits import read_split_stems
    from crackscope.data.survey_mosaics import survey_mosaics, tile_bank
    from crackscope.deploy.cascade import load_classifier, load_segmenter
    from crackscope.deploy.operating_point import RunPairs, kept_at, operating_points, screen_images
    from crackscope.shipped import resolve

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classifier", action="append", required=True, help="NAME=DIR (a run, model folder or name)")
    p.add_argument("--segmenter", default="cracks/segmenter")
    p.add_argument("--images", type=int, default=10, help="survey-like images per half")
    p.add_argument("--window", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--margins", type=float, nargs="+", default=[0.0], help="added to the 98 %% when choosing")
    p.add_argument("--runtime", default="packed", help="the classifiers' runtime: auto, onnx, torch or packed")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--name", default="operating_point_transfer")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for margin in args.margins:  # a share above 1 cannot be kept: every threshold would fail it
        if not 0.0 <= margin <= 1.0 - SHARE:
            raise InputError(f"--margins {margin:g}: the share required, {SHARE:g} + margin, must be in [{SHARE:g}, 1]")
    classifiers = list(named_values(args.classifier, "--classifier").items())
    segmenter = load_segmenter(args.segmenter)
    seg_dir = resolve(args.segmenter, "segmenter")[0]
    pairs = RunPairs(seg_dir)
    val = sorted(read_split_stems(seg_dir).get("val") or [])
    if len(val) < 4:
        raise InputError(f"{args.segmenter} records {len(val)} validation photos; two halves need 4 or more")
    order = np.random.default_rng(args.seed).permutation(len(val))
    halves = [[val[i] for i in order[: len(val) // 2]], [val[i] for i in order[len(val) // 2 :]]]
    mosaics = []
    for half in halves:
        made = survey_mosaics(tile_bank(pairs, half), args.images, side=1024, seed=args.seed)
        mosaics.append({f"survey-{k}": (image, truth) for k, (image, truth, _) in enumerate(made)})
    rows = []
    for name, path in classifiers:
        classifier = load_classifier(path, runtime=args.runtime)
        screened = [
            screen_images(classifier, segmenter, m.__getitem__, list(m), tile=classifier.tile, window=args.window)
            for m in mosaics
        ]
        for margin in args.margins:
            for a, b in ((0, 1), (1, 0)):
                point = operating_points(screened[a], SHARE + margin)["true"]
                kept_other, windows_other = kept_at(screened[b], point["threshold"])
                rows.append(
                    {
                        "classifier": name,
                        "path": path,
                        "margin": margin,
                        "chosen_on": a,
                        "threshold": point["threshold"],
                        "kept": point["share"],
                        "windows": point["windows_fraction"],
                        "kept_other": kept_other,
                        "windows_other": windows_other,
                    }
                )
                print(f"{name} +{margin:g}: chosen on half {a}, kept on half {b} {kept_other:.4f}", flush=True)
    result = {
        "command": "benchmarks/operating_point_transfer.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "segmenter": args.segmenter,
        "window": args.window,
        "seed": args.seed,
        "images": args.images,
        "n_photos": len(val),
        "halves": halves,
        "rows": rows,
        "environment": {"date": datetime.date.today().isoformat(), **hardware()},
    }
    write_results(args.out / args.name, result, _markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
