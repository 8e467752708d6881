"""Choose the cascade's tile classifier on the VALIDATION images only: for each candidate run, the
operating point that keeps the target share of the crack pixels all-tiles segmentation finds
(crackscope.deploy.operating_point, as benchmarks/cascade_deepcrack.py step 1 and
``crackscope choose-operating-point`` choose it), the fraction of tiles it flags there, its per-tile cost
against the segmenter's, and the speed-up the cost model predicts, s / (c + f s).

    .venv/bin/python benchmarks/cascade_select.py RUN [RUN ...] [--segmenter RUN] [--threads 1]

The test images play no part: the candidate with the highest predicted validation speed-up is the
one to benchmark on the test mosaics (and to ship). Writes benchmarks/results/cascade_select.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

from crackscope.data.splits import read_split_stems
from crackscope.deploy.operating_point import CRITERIA, RunPairs, choose_thresholds
from crackscope.errors import InputError, exit_code_of
from crackscope.provenance import cpu_name, shown_path, write_results

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "cascade"
TILE = 64


def _rel(path: Path) -> str:
    return shown_path(path, ROOT)


def _per_tile_ms(fn, tiles: torch.Tensor, repeats: int) -> float:
    fn(tiles[:64])  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(tiles)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times) / len(tiles)


def _validation_tiles(root: Path, stems, channels: int) -> torch.Tensor:
    from crackscope.data.images import read_image, to_channels
    from crackscope.data.tiles import extract_tiles, tile_grid

    parts = []
    for stem in stems:
        image = read_image(
            root / "train_img" / f"{stem}.jpg"
        )  # DeepCrack's layout: validation stems are training photos
        grid = tile_grid(image.shape[1], image.shape[2], TILE)
        parts.append(extract_tiles(to_channels(image, channels), grid.origins, TILE))
    return torch.cat(parts)


def _markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        f"# Choosing the cascade's tile classifier on the validation images ({result['n_val_images']} images)",
        "",
        f"{env['date']}; {env['cpu']}, torch {env['torch']} on {env['torch_threads']} thread(s). Segmenter "
        f"`{result['segmenter']}`: {result['segmenter_ms_per_tile']:.3f} ms per 64-px tile. Each candidate's "
        f"threshold is the highest that keeps {result['target_share']:.2f} of the pixels of the criterion on "
        "the validation images; c is the bit-packed classifier's cost per tile over all validation tiles. "
        "Predicted speed-up = s / (c + f s). The test images play no part.",
        "",
    ]
    for key in CRITERIA:
        lines += [
            f"Criterion **{key}**: {CRITERIA[key]}.",
            "",
            "| candidate | labels: crack pixels >= | threshold | flagged f | tile recall | c ms/tile | c / s "
            "| predicted speed-up |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in result["candidates"]:
            op = c["operating_point"][key]
            lines.append(
                f"| `{c['run']}` | {c['min_crack_pixels']} | {op['threshold']:.4f} | {op['flagged_fraction']:.3f} "
                f"| {op['tile_recall']:.3f} | {c['classifier_ms_per_tile']:.3f} "
                f"| {c['classifier_over_segmenter']:.3f} | **{c['predicted_speedup'][key]:.2f}x** |"
            )
        lines.append("")
    lines.append(f"Chosen (criterion `{result['criterion']}`): `{result['chosen']}`.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return exit_code_of(_main, argv)


def _main(argv=None) -> int:
    from crackscope.deploy.cascade import load_classifier, load_segmenter

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("classifiers", type=Path, nargs="+")
    p.add_argument("--segmenter", type=Path, default=RUNS / "segmenter_deepcrack")
    p.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "datasets" / "DeepCrack")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--target-share", type=float, default=0.98)
    p.add_argument("--criterion", choices=sorted(CRITERIA), default="true", help="the one that picks the winner")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    for run in (args.segmenter, *args.classifiers):
        missing = [f for f in ("config.yaml", "split.json", "model.safetensors") if not (run / f).is_file()]
        if missing:
            raise InputError(f"{run}: not a finished training run (no {', '.join(missing)})")
    seg_stems = read_split_stems(args.segmenter)
    segmenter = load_segmenter(args.segmenter)
    pairs = RunPairs(args.segmenter, args.data)
    tiles = {}  # channels -> every validation tile (the candidates share the segmenter's images, checked below)

    def validation_tiles(channels: int) -> torch.Tensor:
        if channels not in tiles:
            tiles[channels] = _validation_tiles(args.data, seg_stems["val"], channels)
        return tiles[channels]

    seg_ms = _per_tile_ms(segmenter, validation_tiles(segmenter.channels), args.repeats)
    candidates = []
    for run in args.classifiers:
        stems = read_split_stems(run)
        if any(stems[part] != seg_stems[part] for part in ("val", "test")):
            raise InputError(
                f"{run}: its validation / test images differ from the segmenter's; train both with one split"
            )
        classifier = load_classifier(run)
        op = choose_thresholds(classifier, segmenter, pairs, stems["val"], args.target_share, tile=TILE)
        packed = load_classifier(run, runtime="packed")
        cls_ms = _per_tile_ms(packed, validation_tiles(packed.channels), args.repeats)
        config = yaml.safe_load((run / "config.yaml").read_text())
        entry = {
            "run": _rel(run),
            "min_crack_pixels": config["data"]["tiles"]["min_crack_pixels"],
            "operating_point": op,
            "classifier_ms_per_tile": cls_ms,
            "classifier_over_segmenter": cls_ms / seg_ms,
            "predicted_speedup": {k: seg_ms / (cls_ms + op[k]["flagged_fraction"] * seg_ms) for k in CRITERIA},
        }
        candidates.append(entry)
        print(
            f"{entry['run']}: "
            + ", ".join(
                f"{k} flagged {op[k]['flagged_fraction']:.3f} -> {entry['predicted_speedup'][k]:.2f}x" for k in CRITERIA
            ),
            flush=True,
        )
    chosen = max(candidates, key=lambda c: c["predicted_speedup"][args.criterion])
    result = {
        "segmenter": _rel(args.segmenter),
        "segmenter_ms_per_tile": seg_ms,
        "target_share": args.target_share,
        "n_val_images": len(seg_stems["val"]),
        "criterion": args.criterion,
        "chosen": chosen["run"],
        "candidates": candidates,
        "environment": {
            "date": datetime.date.today().isoformat(),
            "cpu": cpu_name(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
    }
    write_results(args.out / "cascade_select", result, _markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
