"""The cascade on large DeepCrack images: segmenting every tile against screening tiles with the
binary classifier first (AOIE-Net paper, Figure 1), on images neither model was trained on.

    .venv/bin/python benchmarks/cascade_deepcrack.py [--classifier RUN] [--segmenter RUN] [--grids 1 2 3]
        [--repeats 3] [--threads 1] [--target-share 0.98] [--margin 0] [--default true|all] [--ship]
        [--keep-operating-point] [--tile PX]

1. **Operating points, on the validation images.** Both models must share one split (the script
   checks that the two runs' validation and test image lists are equal). On every validation image
   the segmenter runs on all tiles and the classifier scores every tile. Two thresholds are chosen,
   each the highest at which the cascade's final region (the flagged cells and every pixel whose
   covering windows all ran: crackscope.deploy.cascade.screened_windows) still holds
   ``target-share + margin`` of
   (true) the crack pixels that all-tiles segmentation finds -- marked, and cracks in the ground
   truth: the issue's "crack pixels that full segmentation finds" as we read it -- or (all) every
   pixel it marks, false alarms included (which would force the classifier to flag crack-free
   tiles wherever the segmenter errs). The
   ``--default`` one is written to CLASSIFIER/operating_point.json, which ``crackscope
   inspect-image`` uses by default. The test images play no part in either choice. The choice is
   the library's (crackscope.deploy.operating_point), as ``crackscope choose-operating-point``
   makes it.
2. **Large images, from the test images only.** Mosaics of g x g held-out test images (544 x 384
   each, in split order, no image used twice for one g): g = 1 (the images themselves), 2 (1088 x
   768) and 3 (1632 x 1152). The tile grid (64 px, last row / column aligned to the border) does not
   follow the seams between images, so some tiles straddle two images.
3. **Every mode on every mosaic**, ``--repeats`` times each, alternating, after one warm-up: (a)
   the segmenter on every tile, (b) the cascade at each operating point, with the classifier in
   PyTorch and bit-packed (crackscope.deploy.packed); also (c) the segmenter on
   the whole mosaic in one call, for reference. Per mosaic the median wall time (and the median
   CPU time of this process) counts; throughput = all pixels / summed time. The masks are
   deterministic.
4. **Reported**: megapixels/s and seconds, speed-up (a)/(b) by wall and by CPU time, the flagged
   fraction, the share of (a)'s crack pixels (and of its correct ones) that (b) keeps, tile recall
   of the classifier against the ground truth, and pixel precision / recall / F1 / IoU of (a), (b)
   and (c) against the ground truth; the classifier's cost per tile and the segmenter's per window,
   the speed-up the cost model predicts for other fractions of windows run, and the windows a
   perfect screen would run (tiles flagged in order of the crack pixels they hold, as few as keep
   the target share), which bounds the speed-up of any classifier.

Writes benchmarks/results/cascade_deepcrack.{json,md}. ``--ship`` packages both runs as model folders
``--ship-to``/{tile_classifier,segmenter} (default src/crackscope/weights/deepcrack; crackscope.deploy.package, as
``crackscope package`` does), with READMEs naming the commands that reproduce them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from crackscope.data.splits import read_split_stems
from crackscope.deploy.operating_point import (
    CRITERIA,
    RunPairs,
    choose_operating_point,
    oracle_windows,
    pixel_counts,
    pixel_scores,
)
from crackscope.errors import InputError, exit_code_of
from crackscope.provenance import hardware, shown_path, write_results

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "cascade"
TILE = 64
OVERLAP = 0.0  # segmentation window overlap; --overlap sets it (the recorded results: 0)
WINDOW = None  # segmentation window side; --window sets it (None: the tile side, as recorded)


def _clocks(fn):
    """(result, wall seconds, CPU seconds of this process)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


# ---- 2. mosaics of the test images ----------------------------------------------------------------------
def mosaics(pairs: RunPairs, stems, g: int):
    """(name, image (3, g*h, g*w), truth (g*h, g*w)) for consecutive groups of g*g stems (images of one size)."""
    for k in range(len(stems) // (g * g)):
        chosen = stems[k * g * g : (k + 1) * g * g]
        read = [pairs(s) for s in chosen]
        rows = [np.concatenate([im for im, _ in read[r * g : (r + 1) * g]], axis=2) for r in range(g)]
        masks = [np.concatenate([m for _, m in read[r * g : (r + 1) * g]], axis=1) for r in range(g)]
        yield "+".join(chosen), np.concatenate(rows, axis=1), np.concatenate(masks, axis=0)


class _Tally:
    """Sums over the mosaics of one mode: times, pixel counts against the truth, and for a cascade
    what it kept of the all-tiles mask and which tiles it flagged."""

    def __init__(self):
        self.wall, self.cpu, self.counts = [], [], np.zeros(3, np.int64)
        self.kept = self.kept_true = self.flagged = self.tiles = self.truth_tiles_flagged = 0
        self.windows = self.windows_run = 0
        self.classify_s = self.segment_s = 0.0

    def add(self, times, mask, truth, base=None, result=None, truth_tiles=None):
        self.wall.append(statistics.median(t[1] for t in times))
        self.cpu.append(statistics.median(t[2] for t in times))
        self.counts += pixel_counts(mask, truth)
        if base is not None:
            self.kept += int((mask & base.mask).sum())
            self.kept_true += int((mask & base.mask & truth).sum())
        if result is not None:
            self.flagged += result.n_flagged
            self.tiles += result.n_tiles
            self.windows += len(result.plan)
            self.windows_run += result.windows_segmented
            self.truth_tiles_flagged += int((truth_tiles & result.flagged).sum())
            self.classify_s += result.timings["classify_s"]
            self.segment_s += result.timings["segment_s"]

    def report(self, megapixels: float) -> dict:
        return {
            "wall_s": sum(self.wall),
            "cpu_s": sum(self.cpu),
            "mp_per_s": megapixels / sum(self.wall),
            "mp_per_cpu_s": megapixels / sum(self.cpu),
            "vs_truth": pixel_scores(self.counts),
        }


def run_grid(segmenter, pairs: RunPairs, stems, g, cascades: dict, repeats, share: float) -> dict:
    """Every mode on the g x g test mosaics; ``cascades``: name -> (classifier, threshold)."""
    from crackscope.data.tiles import tile_crack_pixels
    from crackscope.deploy.cascade import inspect_image, segment_all_tiles

    modes = ["all_tiles", *cascades, "whole_image"]
    tally = {m: _Tally() for m in modes}
    megapixels, names, first = 0.0, [], True
    total = total_true = truth_tiles_total = 0
    bases, correct = [], []
    for name, image, truth in mosaics(pairs, stems, g):
        x = torch.from_numpy(image)
        runs = {
            "all_tiles": lambda: segment_all_tiles(image, segmenter, tile=TILE, overlap=OVERLAP, window=WINDOW),
            **{
                m: (
                    lambda c=c, t=t: inspect_image(
                        image, c, segmenter, tile=TILE, threshold=t, overlap=OVERLAP, window=WINDOW
                    )
                )
                for m, (c, t) in cascades.items()
            },
            "whole_image": lambda: segmenter(x[None])[0].numpy() > segmenter.threshold,
        }
        if first:  # warm-up: allocator, thread pool, first-call overheads
            for fn in runs.values():
                fn()
            first = False
        times = {m: [] for m in modes}
        for _ in range(repeats):  # alternating, so a change of load hits every mode alike
            for m in modes:
                times[m].append(_clocks(runs[m]))
        base = times["all_tiles"][-1][0]
        truth_tiles = tile_crack_pixels(truth, base.grid) > 0
        bases.append(base)
        correct.append(base.mask & truth)
        tally["all_tiles"].add(times["all_tiles"], base.mask, truth, result=base, truth_tiles=truth_tiles)
        for m in cascades:
            r = times[m][-1][0]
            tally[m].add(times[m], r.mask, truth, base=base, result=r, truth_tiles=truth_tiles)
        tally["whole_image"].add(times["whole_image"], times["whole_image"][-1][0], truth)
        total += int(base.mask.sum())
        total_true += int((base.mask & truth).sum())
        truth_tiles_total += int(truth_tiles.sum())
        megapixels += image.shape[1] * image.shape[2] / 1e6
        names.append(name)
    h, w = image.shape[1:]
    base = tally["all_tiles"]
    seg_ms = 1e3 * base.segment_s / base.windows  # per window
    out = {
        "grid": f"{g}x{g}",
        "mosaic_size": [int(w), int(h)],
        "n_mosaics": len(names),
        "megapixels": megapixels,
        "tiles": base.tiles,
        "crack_tile_fraction_truth": truth_tiles_total / base.tiles,
        "all_tiles_crack_pixels": total,
        "all_tiles_true_crack_pixels": total_true,
        "segmenter_ms_per_window": seg_ms,
        "mosaics": names,
        "windows": sum(len(b.plan) for b in bases),
        "oracle": {
            "all": oracle_windows(bases, [b.mask for b in bases], share),
            "true": oracle_windows(bases, correct, share),
            "share": share,
        },
        "all_tiles": base.report(megapixels),
        "whole_image": tally["whole_image"].report(megapixels),
        "cascades": {},
    }
    for m, (_, t) in cascades.items():
        c = tally[m]
        cls_ms = 1e3 * c.classify_s / c.tiles
        per_window = c.tiles / c.windows  # tiles classified per window of the image
        out["cascades"][m] = {
            "threshold": t,
            **c.report(megapixels),
            "flagged_fraction": c.flagged / c.tiles,
            "windows_fraction": c.windows_run / c.windows,
            "crack_share_of_all_tiles": c.kept / max(total, 1),
            "true_crack_share_of_all_tiles": c.kept_true / max(total_true, 1),
            "tile_recall_vs_truth": c.truth_tiles_flagged / max(truth_tiles_total, 1),
            "speedup_wall": sum(base.wall) / sum(c.wall),
            "speedup_cpu": sum(base.cpu) / sum(c.cpu),
            "classifier_ms_per_tile": cls_ms,
            "cost_model": {  # speed-up = s / (k c + v s): v windows run per window, k tiles per window
                "classifier_over_segmenter": per_window * cls_ms / seg_ms,
                "windows_fraction_for_3x": max(1 / 3 - per_window * cls_ms / seg_ms, 0.0),
                "predicted_speedup": {
                    f"{v:.2f}": seg_ms / (per_window * cls_ms + v * seg_ms) for v in (0.1, 0.2, 0.25, 0.3, 0.4)
                },
            },
        }
    return out


# ---- report ------------------------------------------------------------------------------------------------
def _markdown(result: dict) -> str:
    op, env = result["operating_point"], result["environment"]
    lines = [
        f"# Cascade on {result['data'].split(',')[0].split(':')[0]}: segment every tile vs screen tiles with the "
        "tile classifier first",
        "",
        f"{env['date']}; {env['cpu']} ({env['cpus']} vCPUs), torch {env['torch']} on {env['torch_threads']} "
        f"thread(s) (the packed kernels follow it: serial on one thread), no GPU; load average {env['load_before']} "
        f"before, {env['load_after']} after (when other jobs share the cores, the CPU-time speed-up, from this "
        "process's CPU time, is the steadier number).",
        (
            f"Classifier `{result['classifier']}`: AOIE-Net ResNet-20 (1-bit), run in PyTorch (binary operations "
            "emulated in float32) and, rows marked 'packed', bit-packed (crackscope.deploy.packed: XNOR/popcount, "
            "logits equal to PyTorch's up to float rounding, so the flags agree except at a near-tie). "
            if result.get("classifier_packed", True)
            else f"Classifier `{result['classifier']}`: {result['classifier_model']}, full precision, in PyTorch. "
        )
        + f"Segmenter `{result['segmenter']}`. Tiles of {TILE} px, "
        "non-overlapping, the last row / column aligned to the border. Mosaics of g x g held-out test images "
        f"({result['n_test_images']} test images; {result['n_val_images']} validation images choose the thresholds).",
        "",
        f"Operating points, chosen on the validation images ({op['n_images']} images, {op['n_tiles']} tiles, "
        f"{op['crack_tile_fraction']:.3f} of them cracked): the highest threshold at which the cascade's final "
        f"region (the flagged cells and every pixel whose windows all ran) keeps "
        f">= {op['required_share']:.3f} of ...",
        "",
    ]
    for key, what in CRITERIA.items():
        o = op[key]
        lines.append(
            f"* **{key}** -- {what}: threshold {o['threshold']:.4f} (validation: kept {o['share']:.4f}, "
            f"flagged {o['flagged_fraction']:.3f}, windows run "
            + (f"{o['windows_fraction']:.3f}" if "windows_fraction" in o else "–")
            + ", "
            f"tile recall {o['tile_recall']:.4f})"
        )
    lines.append(f"* shipped default (operating_point.json): **{op['default']}**")
    lines += [
        "",
        "| test mosaics | n | operating point | flagged | all tiles MP/s | cascade MP/s | speed-up (wall) | "
        "speed-up (CPU) | crack pixels kept | correct crack pixels kept | tile recall (truth) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["grids"]:
        for key, c in r["cascades"].items():
            lines.append(
                f"| {r['grid']} ({r['mosaic_size'][0]} x {r['mosaic_size'][1]}) | {r['n_mosaics']} | {key} "
                f"({c['threshold']:.3f}) | {c['flagged_fraction']:.3f} | {r['all_tiles']['mp_per_s']:.3f} | "
                f"{c['mp_per_s']:.3f} | **{c['speedup_wall']:.2f}x** | {c['speedup_cpu']:.2f}x | "
                f"**{c['crack_share_of_all_tiles']:.4f}** | {c['true_crack_share_of_all_tiles']:.4f} | "
                f"{c['tile_recall_vs_truth']:.4f} |"
            )
    lines += [
        "",
        "Against the ground truth (pixels, micro over the mosaics):",
        "",
        "| test mosaics | mode | precision | recall | F1 | IoU | wall s | MP/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["grids"]:
        modes = (
            [("all tiles", r["all_tiles"])]
            + [(f"cascade, {k}", c) for k, c in r["cascades"].items()]
            + [("whole image, one call", r["whole_image"])]
        )
        for label, m in modes:
            v = m["vs_truth"]
            lines.append(
                f"| {r['grid']} | {label} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} | "
                f"{v['iou']:.4f} | {m['wall_s']:.2f} | {m['mp_per_s']:.3f} |"
            )
    lines += [
        "",
        "Costs (c classifier per tile, s segmenter per window, k tiles per window) and the cost model "
        "speed-up = s / (k c + v s) at a fraction v of the windows run. The oracle columns are a perfect "
        "screen: tiles flagged in order of the all-tiles crack pixels their cells hold (all / correct "
        "ones), as few as keep the target share in the cascade's final region; the windows it runs bound "
        "the speed-up of any classifier at 1 / v (classifier cost not counted).",
        "",
        "| test mosaics | operating point | windows run v | c ms/tile | s ms/window | k c / s | v needed for 3x | "
        "oracle flagged (all / true) | oracle v (all / true) | bound 1 / v (true) | "
        "predicted at v = 0.2 / 0.25 / 0.3 |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---:|---|",
    ]
    for r in result["grids"]:
        for key, c in r["cascades"].items():
            cm, pred, o = c["cost_model"], c["cost_model"]["predicted_speedup"], r["oracle"]
            lines.append(
                f"| {r['grid']} | {key} | {c['windows_fraction']:.3f} | {c['classifier_ms_per_tile']:.3f} | "
                f"{r['segmenter_ms_per_window']:.3f} | {cm['classifier_over_segmenter']:.3f} | "
                f"{cm['windows_fraction_for_3x']:.3f} | "
                f"{o['all']['flagged_fraction']:.3f} / {o['true']['flagged_fraction']:.3f} | "
                f"{o['all']['windows_fraction']:.3f} / {o['true']['windows_fraction']:.3f} | "
                f"{1 / max(o['true']['windows_fraction'], 1e-9):.2f}x | "
                f"{pred['0.20']:.2f} / {pred['0.25']:.2f} / {pred['0.30']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def _ship(classifier_run: Path, segmenter_run: Path, result: dict, dest: Path) -> None:
    """Both runs as model folders DEST/{tile_classifier,segmenter} (crackscope.deploy.package, the
    classifier with its bit-packed twin), each with a README naming the commands that reproduce it."""
    import yaml

    from crackscope.deploy.package import choose_command, package_model

    cls_m = json.loads((classifier_run / "metrics.json").read_text())
    seg_m = json.loads((segmenter_run / "metrics.json").read_text())
    seg_cfg = yaml.safe_load((segmenter_run / "config.yaml").read_text())
    op = result["operating_point"]
    crack = cls_m["per_class"]["crack"]
    several = seg_cfg["data"].get("sources") is not None
    data = "DeepCrack + Crack500" if several else "DeepCrack"
    split = "split per dataset by source photo / burst" if several else "split by source photo"
    if several:
        per_source = "; ".join(
            f"{name}: F1 {m['f1']:.4f}, precision {m['precision']:.4f}, recall {m['recall']:.4f} "
            f"({m['n_images']} images)"
            for name, m in sorted(seg_m["per_class"].items())
        )
        seg_words = (
            f"RGB; trained on {seg_cfg['data']['crop']} x {seg_cfg['data']['crop']} camera-augmented crops "
            "(scale 0.5-1.6, illumination, colour, blur, noise, JPEG), per-image standardised input (in "
            f"tiled inference with the whole image's statistics). Test split ({seg_m['n_images']} held-out "
            f"whole images, {split}, seed 0, threshold {seg_m['threshold']} chosen on the validation images of "
            f"both datasets): F1 {seg_m['f1']:.4f} ({per_source})."
        )
    else:
        seg_words = (
            f"RGB, native 544 x 384. Test split ({seg_m['n_images']} held-out images, split by source photo, "
            f"seed 0):\nF1 {seg_m['f1']:.4f}, crack IoU {seg_m['iou_defect']:.4f}, precision "
            f"{seg_m['precision']:.4f}, recall\n{seg_m['recall']:.4f} (whole images, threshold {seg_m['threshold']})."
        )
    run_name = str(seg_cfg["name"])
    stages = f"`crackscope train --config configs/cascade/{run_name}.yaml`"
    first = seg_cfg.get("trainer", {}).get("init_weights")
    if first is not None:  # a fine-tuning stage: its first stage first
        stages = f"`crackscope train --config configs/cascade/{Path(first).name}.yaml`, then " + stages
    label_note = (
        "The label\nthreshold (64 crack pixels) is the one chosen for DeepCrack with "
        "`benchmarks/cascade_select.py`; it was\nnot chosen again for the two datasets."
        if several
        else "The label\nthreshold was chosen on the validation images with `benchmarks/cascade_select.py`."
    )
    notes = {
        "tile_classifier": (
            classifier_run,
            f"""# AOIE-Net ResNet-20 (1-bit) crack / no-crack tile classifier, {data}

{_input_note(classifier_run)}, width 0.5; a tile is labelled crack when it holds at least
{_min_crack_pixels(classifier_run)} crack pixels. Test split ({cls_m["n_images"]} tiles of the
{result["n_test_images"]} held-out images, {split}, seed 0), at the argmax against those labels:
accuracy {cls_m["accuracy"]:.4f}, crack recall {crack["recall"]:.4f}, crack precision {crack["precision"]:.4f}.
Cascade operating point (operating_point.json, chosen on the validation images, criterion
'{op["default"]}'): threshold {op["threshold"]:.4f}, for {op["window"]}-px segmentation windows overlapping
by {op["overlap"]:g} (inspect-image's defaults with this classifier).

`model.packed.safetensors` is the same network bit-packed (1-bit weights, XNOR/popcount;
`crackscope inspect-image ... --runtime packed`), written by `crackscope export ... --format packed`.

Reproduce: `crackscope train --config configs/cascade/{_run_name(classifier_run)}.yaml`, then
`{choose_command(_rel(classifier_run), op)}`
(docs/cascade.md). `.venv/bin/python benchmarks/cascade_deepcrack.py {result["command"]}` makes the same
choice, times the cascade on the test mosaics and writes this folder. {label_note}
""",
        ),
        "segmenter": (
            segmenter_run,
            f"""# U-Net (base width {seg_cfg["model"].get("base_channels", 64)}) crack segmenter, {data}

{seg_words}

Reproduce: {stages} (docs/cascade.md).
""",
        ),
    }
    for name, (run, note) in notes.items():
        package_model(run, dest / name, readme=note, packed=name == "tile_classifier", replace=True)


def _config(run: Path) -> dict:
    """A run's (or model folder's) config.yaml as written."""
    import yaml

    return yaml.safe_load((Path(run) / "config.yaml").read_text())


def _model_name(run: Path) -> str:
    return str(_config(run)["model"]["name"])


def _run_name(run: Path) -> str:
    return str(_config(run)["name"])


def _min_crack_pixels(run: Path) -> int:
    return int(_config(run)["data"]["tiles"]["min_crack_pixels"])


def _input_note(run: Path) -> str:
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    stride, size = cfg["model"].get("stem_stride", 1), cfg["data"].get("size")
    if size is not None:
        return f"64 x 64 tiles resized to {size} x {size} grey"
    words = f"64 x 64 grey tiles at full resolution into a {stride} x {stride} stride-{stride} patchify stem"
    if cfg["model"].get("input_norm") == "per_image":
        words += ", each tile standardised (model.input_norm: per_image)"
    if cfg["data"].get("augment") == "camera":
        words += ", trained under another camera's photometric changes (augment: camera)"
    return words


def _rel(path: Path) -> str:
    return shown_path(path, ROOT)


def main(argv=None) -> int:
    return exit_code_of(_main, argv)


def _main(argv=None) -> int:
    from crackscope.deploy.cascade import load_classifier, load_segmenter
    from crackscope.deploy.operating_point import write_operating_point

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classifier", type=Path, default=RUNS / "tile_classifier_deepcrack")
    p.add_argument("--segmenter", type=Path, default=RUNS / "segmenter_deepcrack")
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="the dataset folder of a one-source segmenter run (default: its config's data.root)",
    )
    p.add_argument("--name", default="cascade_deepcrack", help="OUT/NAME.{json,md}")
    p.add_argument("--grids", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--overlap",
        type=float,
        default=0.0,
        help="window overlap of the segmentation (0: the non-overlapping tiles the recorded results used)",
    )
    p.add_argument("--window", type=int, default=None, help="segmentation window side (default: the tile side)")
    p.add_argument(
        "--tile",
        type=int,
        default=None,
        help="the classifier's tile side (default: with --keep-operating-point the 'tile' of its "
        "operating_point.json, else 64)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--target-share", type=float, default=0.98)
    p.add_argument("--margin", type=float, default=0.0, help="added to the target when choosing on validation")
    p.add_argument(
        "--default",
        choices=sorted(CRITERIA),
        default="true",
        help="the operating point written to CLASSIFIER/operating_point.json",
    )
    p.add_argument(
        "--keep-operating-point",
        action="store_true",
        help="use CLASSIFIER/operating_point.json as it is instead of choosing it again on the validation "
        "images (skips step 1: for speed measurements of the same pair)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--ship", action="store_true", help="copy both runs into --ship-to")
    p.add_argument("--ship-to", type=Path, default=ROOT / "src" / "crackscope" / "weights" / "deepcrack")
    args = p.parse_args(argv)
    global OVERLAP, WINDOW, TILE
    OVERLAP, WINDOW = args.overlap, args.window
    if args.tile is not None:
        TILE = args.tile
    elif args.keep_operating_point:  # the tile the operating point was chosen for (a 128-px screen)
        from crackscope.engine.runs import read_operating_point

        TILE = int((read_operating_point(args.classifier) or {}).get("tile", TILE))
    if TILE < 8:
        raise InputError(f"--tile {TILE}: a tile must be at least 8 px")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    cls_stems = read_split_stems(args.classifier)
    classifier, segmenter = load_classifier(args.classifier), load_segmenter(args.segmenter)
    pairs = RunPairs(args.segmenter, args.data)
    try:  # a binary classifier's bit-packed twin; a full-precision screen has none (PyTorch rows only)
        packed = load_classifier(args.classifier, runtime="packed")
    except InputError:
        packed = None

    t0 = time.perf_counter()
    if args.keep_operating_point:
        from crackscope.engine.runs import read_operating_point

        op = read_operating_point(args.classifier)
        if op is None:
            raise InputError(f"--keep-operating-point: {args.classifier} has no operating_point.json")
    else:
        op = choose_operating_point(  # the library's choice, as `crackscope choose-operating-point` makes it
            args.classifier,
            args.segmenter,
            data=args.data,
            target_share=args.target_share,
            margin=args.margin,
            criterion=args.default,
            tile=TILE,
            window=WINDOW,  # None: the segmenter's training window, else the tile side (recorded as used)
            overlap=OVERLAP,
            segmenter_name=_rel(args.segmenter),
            classifier=classifier,
            segmenter=segmenter,
            pairs=pairs,
        )
        write_operating_point(args.classifier, op)
    print(
        "operating points (validation): "
        + ", ".join(f"{k} {op[k]['threshold']:.4f} (flagged {op[k]['flagged_fraction']:.3f})" for k in CRITERIA)
        + f" ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )

    grids = []
    for source, stems in pairs.by_source(cls_stems["test"]).items():
        for g in args.grids:
            t0 = time.perf_counter()
            cascades = {
                **{k: (classifier, op[k]["threshold"]) for k in CRITERIA},
                **{f"{k}, packed": (packed, op[k]["threshold"]) for k in CRITERIA if packed is not None},
            }
            r = run_grid(segmenter, pairs, stems, g, cascades, args.repeats, args.target_share)
            if source is not None:
                r["grid"] = f"{source} {r['grid']}"
            r["n_test_images"] = len(stems)
            grids.append(r)
            print(
                f"{r['grid']}: {r['n_mosaics']} mosaics; "
                + "; ".join(
                    f"{k}: flagged {c['flagged_fraction']:.3f}, {c['speedup_wall']:.2f}x wall / "
                    f"{c['speedup_cpu']:.2f}x CPU, "
                    f"kept {c['crack_share_of_all_tiles']:.4f}"
                    for k, c in r["cascades"].items()
                )
                + f" ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )

    result = {
        "command": " ".join(argv if argv is not None else sys.argv[1:]),
        "classifier": _rel(args.classifier),
        "classifier_model": _model_name(args.classifier),
        "classifier_packed": packed is not None,
        "segmenter": _rel(args.segmenter),
        "data": (
            "DeepCrack, the 300 training pairs of the official split; mosaics of the test split only"
            if pairs.names == [None]
            else f"{' and '.join(pairs.names)}: mosaics of each one's held-out test images"
        ),
        "n_test_images": len(cls_stems["test"]),
        "n_val_images": len(cls_stems["val"]),
        "repeats": args.repeats,
        "operating_point": op,
        "grids": grids,
        "environment": {
            "date": datetime.date.today().isoformat(),
            **hardware(),
            "load_before": [round(v, 2) for v in load_before],
            "load_after": [round(v, 2) for v in os.getloadavg()],
        },
    }
    write_results(args.out / args.name, result, _markdown(result))
    print(_markdown(result))
    if args.ship:
        _ship(args.classifier, args.segmenter, result, args.ship_to)
    return 0


if __name__ == "__main__":
    sys.exit(main())
