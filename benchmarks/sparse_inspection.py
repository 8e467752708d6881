"""The crack inspection of survey-like images: mostly sound surface, a few cracks. Segmenting every
window against the cascade, side by side, on images neither model was trained on.

    .venv/bin/python benchmarks/sparse_inspection.py [--classifier DIR] [--segmenter DIR]
        [--images 6] [--sides 1024 2048] [--crack-share 0.05 0.15] [--seed 0] [--repeats 3] [--threads 1]
        [--runtime auto|onnx|torch|packed] [--part test|val]

1. **Images** (crackscope.data.survey_mosaics): from the photos held out by both models (in the
   test part of both runs' split.json; ``--part val``: their validation photos instead, on which
   models may be chosen), 128-px crack tiles (their grid squares holding >= 20
   labelled crack pixels) and sound tiles (squares with no labelled crack within 16 px), put
   together seeded into --images mosaics per side, each 5-15 % crack tiles (--crack-share).
2. **Both modes on every mosaic**, as ``crackscope inspect-image`` runs them at the models' own
   defaults (the classifier's tile, the window, overlap and threshold of its operating point):
   (a) the segmenter on every window (``--all-tiles``), (b) the cascade. One warm-up, then
   --repeats alternating runs on --threads torch threads; the median wall time per mosaic counts.
3. **Reported**, pooled over the mosaics of a side: pixel precision / recall / F1 against the
   labels (exact pixels), seconds and the speed-up (a)/(b), the share of (a)'s correct crack
   pixels that (b) keeps, the share of tiles the classifier flags, and for each mode the false
   alarms on the crack-free surface (crackscope.metrics.false_alarm_counts: false crack pixels
   per megapixel, and the share of crack-free 128-px tiles holding a false crack of >= 20 px),
   with the issue's targets: (b) >= 5x faster, keeps >= 98 %, F1 (b) >= F1 (a), < 1 % of
   crack-free tiles with a false crack.

The dense worst case (mosaics of whole test photos, mostly crack) is benchmarks/cascade_deepcrack.py.
Writes benchmarks/results/NAME.{json,md} (default sparse_inspection).
"""

from __future__ import annotations

import datetime
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from crackscope.errors import exit_code_of
from crackscope.provenance import hardware, shown_path, write_results

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"speedup": 5.0, "kept": 0.98, "false_tile_share": 0.01}


def run_side(classifier, segmenter, bank, args, side: int) -> dict:
    from crackscope.data.survey_mosaics import survey_mosaics
    from crackscope.deploy.cascade import inspect_image
    from crackscope.deploy.operating_point import pixel_counts, pixel_scores
    from crackscope.metrics import false_alarm_counts, false_alarm_summary

    modes = ("all_windows", "cascade")
    counts = {m: np.zeros(3, np.int64) for m in modes}
    alarms = {m: [] for m in modes}
    seconds = {m: [] for m in modes}
    correct = kept = flagged = tiles = crack_tiles = 0
    first = True
    follow = {} if args.follow is None else {"follow": args.follow}
    followed = 0
    for image, truth, info in survey_mosaics(
        bank, args.images, side=side, crack_share=tuple(args.crack_share), seed=args.seed
    ):
        runs = {
            "all_windows": lambda: inspect_image(image, classifier, segmenter, tile=classifier.tile, all_tiles=True),
            "cascade": lambda: inspect_image(image, classifier, segmenter, tile=classifier.tile, **follow),
        }
        if first:  # warm-up: allocator, thread pool, first-call overheads
            for fn in runs.values():
                fn()
            first = False
        times = {m: [] for m in modes}
        results = {}
        for _ in range(args.repeats):  # alternating, so a change of load hits both modes alike
            for m in modes:
                t0 = time.perf_counter()
                results[m] = runs[m]()
                times[m].append(time.perf_counter() - t0)
        for m in modes:
            seconds[m].append(statistics.median(times[m]))
            counts[m] += pixel_counts(results[m].mask, truth)
            alarms[m].append(false_alarm_counts(results[m].mask, truth))
        full, casc = results["all_windows"].mask, results["cascade"].mask
        correct += int((full & truth).sum())
        kept += int((casc & full & truth).sum())
        flagged += results["cascade"].n_flagged
        followed += int(results["cascade"].followed.sum())
        tiles += results["cascade"].n_tiles
        crack_tiles += info["crack_tiles"] / info["tiles"]
    out = {
        "side": side,
        "n_images": args.images,
        "crack_tile_share": crack_tiles / args.images,
        "megapixels": args.images * side * side / 1e6,
        "kept_true_crack_share": kept / max(correct, 1),
        "flagged_fraction": flagged / max(tiles, 1),
        "followed_fraction": followed / max(tiles, 1),
    }
    for m in modes:
        out[m] = {
            "seconds": sum(seconds[m]),
            "vs_truth": pixel_scores(counts[m]),
            "false_alarms": false_alarm_summary(alarms[m]),
        }
    out["speedup"] = out["all_windows"]["seconds"] / out["cascade"]["seconds"]
    return out


def _flagged(r: dict) -> str:
    """The share of tiles the classifier flagged, and those followed after it when any were."""
    followed = r.get("followed_fraction") or 0.0
    return f"{r['flagged_fraction']:.1%}" + (f" + {followed:.1%} followed" if followed else "")


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _allocator(env: dict) -> str:
    """What the run's C allocator did (crackscope.provenance.hardware): the user's settings K=V, and
    whether crackscope kept freed blocks (crackscope.allocator); empty for results that record neither."""
    settings = env.get("allocator_env") or {}
    text = "; allocator settings " + " ".join(f"`{k}={v}`" for k, v in settings.items()) if settings else ""
    if (env.get("allocator") or {}).get("applied"):
        text += "; freed blocks kept by crackscope.allocator"
    return text


def _markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        "# Crack inspection of survey-like images: every window against the cascade",
        "",
        f"Measured {env['date']} on {env['cpu']} ({env['cpus']} CPUs available), torch {env['torch']}, "
        f"{result['threads']} torch thread(s); load average before / after: {env['load_before']} / "
        f"{env['load_after']}{_allocator(env)}. Classifier `{result['classifier']}` "
        f"(runtime {result.get('resolved_runtime', result.get('runtime', 'torch'))}), "
        f"segmenter `{result['segmenter']}`, "
        f"at the defaults of `crackscope inspect-image`. {result['n_photos']} "
        f"{'validation' if result.get('part') == 'val' else 'held-out'} photos give "
        f"{result['crack_tiles']} crack tiles and {result['sound_tiles']} sound tiles of 128 px; "
        f"mosaics seed {result['seed']}, {result['crack_share'][0]:.0%}-{result['crack_share'][1]:.0%} "
        f"crack tiles. Command: `{result['command']}`.",
        "",
        "| side | images | crack tiles | mode | s | speed-up | pixel F1 | precision | recall | "
        "false crack px / MP | crack-free tiles with a false crack | flagged | kept of the correct crack px |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["sides"]:
        for m in ("all_windows", "cascade"):
            v, fa = r[m]["vs_truth"], r[m]["false_alarms"]
            casc = m == "cascade"
            lines.append(
                f"| {r['side']} | {r['n_images']} | {r['crack_tile_share']:.1%} | {m.replace('_', ' ')} | "
                f"{r[m]['seconds']:.1f} | {r['speedup']:.2f}x | {v['f1']:.3f} | {v['precision']:.3f} | "
                f"{v['recall']:.3f} | {fa['false_px_per_megapixel']:.0f} | "
                f"{fa['false_tile_share']:.2%} of {fa['sound_tiles']} | "
                + (f"{_flagged(r)} | {r['kept_true_crack_share']:.2%} |" if casc else "– | – |")
            )
    lines += ["", "Targets (issue 29):", ""]
    for r in result["sides"]:
        c, a = r["cascade"], r["all_windows"]
        lines.append(
            f"- {r['side']} px: cascade >= {TARGETS['speedup']:.0f}x faster "
            f"{_yes(r['speedup'] >= TARGETS['speedup'])}; "
            f"keeps >= {TARGETS['kept']:.0%} {_yes(r['kept_true_crack_share'] >= TARGETS['kept'])}; "
            f"F1 at least all windows' {_yes(c['vs_truth']['f1'] >= a['vs_truth']['f1'])}; "
            f"< {TARGETS['false_tile_share']:.0%} crack-free tiles with a false crack: all windows "
            f"{_yes(a['false_alarms']['false_tile_share'] < TARGETS['false_tile_share'])}, cascade "
            f"{_yes(c['false_alarms']['false_tile_share'] < TARGETS['false_tile_share'])}"
        )
    return "\n".join(lines) + "\n"


def _rel(path: Path) -> str:
    return shown_path(path, ROOT)


def main(argv=None) -> int:
    return exit_code_of(_main, argv)


def _main(argv=None) -> int:
    from crackscope.deploy.cascade import load_classifier, load_segmenter
    from crackscope.deploy.operating_point import pair_study_parser, survey_tile_bank

    p = pair_study_parser(__doc__)
    p.add_argument("--images", type=int, default=6, help="mosaics per side")
    p.add_argument("--sides", type=int, nargs="+", default=[1024, 2048])
    p.add_argument("--crack-share", type=float, nargs=2, default=[0.05, 0.15])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--follow", type=int, default=None, help="the cascade's rounds of following cracks (default: inspect-image's)"
    )
    p.add_argument(
        "--runtime",
        default="auto",
        help="the classifier's: auto (inspect-image's default: onnx for a full-precision screen), onnx, torch, "
        "or packed (1-bit)",
    )
    p.add_argument(
        "--part",
        choices=("test", "val"),
        default="test",
        help="whose photos: the test photos both models held out (to report), or their validation photos "
        "(to choose models on)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--name", default="sparse_inspection")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    classifier = load_classifier(args.classifier, runtime=args.runtime)
    segmenter = load_segmenter(args.segmenter)
    stems, bank = survey_tile_bank(args.part, args.segmenter, args.classifier)
    print(f"{len(stems)} {args.part} photos: {len(bank.crack)} crack tiles, {len(bank.sound)} sound tiles", flush=True)
    sides = []
    for side in args.sides:
        t0 = time.perf_counter()
        r = run_side(classifier, segmenter, bank, args, side)
        sides.append(r)
        print(
            f"{side} px: all windows F1 {r['all_windows']['vs_truth']['f1']:.3f}, cascade F1 "
            f"{r['cascade']['vs_truth']['f1']:.3f}, {r['speedup']:.2f}x, kept {r['kept_true_crack_share']:.4f} "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    result = {
        "command": "benchmarks/sparse_inspection.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "classifier": _rel(args.classifier),
        "segmenter": _rel(args.segmenter),
        "n_photos": len(stems),
        "part": args.part,
        "photos": stems,
        "crack_tiles": len(bank.crack),
        "sound_tiles": len(bank.sound),
        "seed": args.seed,
        "crack_share": args.crack_share,
        "repeats": args.repeats,
        "threads": args.threads,
        "runtime": args.runtime,
        "resolved_runtime": getattr(classifier, "runtime", args.runtime),
        "targets": TARGETS,
        "sides": sides,
        "environment": {
            "date": datetime.date.today().isoformat(),
            **hardware(),
            "load_before": [round(v, 2) for v in load_before],
            "load_after": [round(v, 2) for v in os.getloadavg()],
        },
    }
    write_results(args.out / args.name, result, _markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
