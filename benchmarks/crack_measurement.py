"""How far crack lengths and widths can be trusted: cracks of known geometry drawn into photos of
real crack-free pavement, measured from their exact mask and from the segmenter's.

    .venv/bin/python benchmarks/crack_measurement.py [--segmenter DIR] [--classifier DIR]
        [--widths 2 4 6 8 12] [--angles 0 30 60 90 135] [--length 200] [--backgrounds 3] [--mm-per-pixel 0.5]

1. **Backgrounds**: 3 x 3 mosaics (384 x 384) of 128-px sound tiles (no labelled crack within
   16 px: crackscope.data.survey_mosaics) from the photos both models held out.
2. **Cracks** (crackscope.data.synthetic_cracks): a band of each width around a centre line of
   --length px, straight or bent on a circle of radius 150 px, at each angle, through the middle of
   each background, darkened by 60 % with a one-pixel antialiased border.
3. **Measured** (crackscope.analysis.crack_measure.measure_cracks, as ``inspect-image`` writes it to
   cracks.csv): (a) the exact mask of the band; (b) the mask ``crackscope inspect-image`` makes of
   the photo at the shipped defaults (the cascade): the cracks whose components overlap the band,
   their lengths summed (a crack found in pieces), their largest width, their mean width.
4. **Hairlines and --scale**: cracks of --hairline-widths (1-2 px) inspected at each of --scales:
   the share of their pixels marked, of cracks found, the pieces and the length found.
   Errors against the geometry: length against the centre line's length, ``max_width_px`` and
   ``mean_width_px`` against the band's width; in pixels and in millimetres at --mm-per-pixel.

Writes benchmarks/results/crack_measurement.{json,md}.
"""

from __future__ import annotations

import datetime
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from crackscope.errors import exit_code_of
from crackscope.provenance import hardware, shown_path, write_results

ROOT = Path(__file__).resolve().parents[1]
RADIUS_PX = 150.0


def _backgrounds(bank, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        picks = rng.choice(len(bank.sound), 9, replace=False)
        tiles = [bank.sound[int(i)][0] for i in picks]
        rows = [np.concatenate(tiles[r * 3 : (r + 1) * 3], axis=2) for r in range(3)]
        out.append(np.concatenate(rows, axis=1))
    return out


def _matched(cracks: list[dict], found: np.ndarray, truth: np.ndarray) -> dict | None:
    """The measured cracks whose components overlap the true band (a crack the segmenter breaks
    into pieces counts as all of them): their summed length, their largest width and their
    length-weighted mean width; None when no component overlaps the band."""
    from scipy import ndimage

    labels, n = ndimage.label(found, structure=np.ones((3, 3), bool))
    hit = set(np.unique(labels[truth]).tolist()) - {0}
    if not hit:
        return None
    boxes = {}
    for k in hit:
        ys, xs = np.nonzero(labels == k)
        boxes[(ys.min(), xs.min(), ys.max() + 1, xs.max() + 1, len(ys))] = k
    parts = [c for c in cracks if (c["y0"], c["x0"], c["y1"], c["x1"], c["area_px"]) in boxes]
    length = sum(c["length_px"] for c in parts)
    return {
        "pieces": len(parts),
        "length_px": length,
        "max_width_px": max(c["max_width_px"] for c in parts),
        "mean_width_px": (
            sum(c["mean_width_px"] * c["length_px"] for c in parts) / length
            if length
            else max(c["mean_width_px"] for c in parts)
        ),
    }


def _errors(rows: list[dict], key: str, mm: float) -> dict:
    vals = [r[key] for r in rows if r.get(key) is not None]
    if not vals:
        return {"n": 0}
    return {
        "n": len(vals),
        "mean_px": statistics.fmean(vals),
        "mean_abs_px": statistics.fmean(abs(v) for v in vals),
        "max_abs_px": max(abs(v) for v in vals),
        "mean_abs_mm": statistics.fmean(abs(v) for v in vals) * mm,
    }


def run(args) -> dict:
    from crackscope.analysis.crack_measure import measure_cracks
    from crackscope.data.splits import stems_held_out_by
    from crackscope.data.survey_mosaics import tile_bank
    from crackscope.data.synthetic_cracks import CrackGeometry, draw_crack
    from crackscope.deploy.cascade import inspect_image, load_classifier, load_segmenter
    from crackscope.deploy.operating_point import RunPairs

    classifier, segmenter = load_classifier(args.classifier), load_segmenter(args.segmenter)
    stems = stems_held_out_by(args.segmenter, args.classifier)
    bank = tile_bank(RunPairs(args.segmenter), stems)
    backgrounds = _backgrounds(bank, args.backgrounds, args.seed)
    rows = []
    for b, background in enumerate(backgrounds):
        for width in args.widths:
            for angle in args.angles:
                for curvature in (0.0, 1.0 / RADIUS_PX):
                    geometry = CrackGeometry(args.length, width, math.radians(angle), curvature, centre=(191.6, 192.3))
                    image, truth = draw_crack(torch.from_numpy(background), geometry, depth=0.6)
                    exact = measure_cracks(truth)[0]
                    found = inspect_image(image.numpy(), classifier, segmenter, tile=classifier.tile).mask
                    measured = _matched(measure_cracks(found), found, truth)
                    row = {
                        "background": b,
                        "width_px": width,
                        "angle_deg": angle,
                        "curvature_per_px": curvature,
                        "length_px": args.length,
                        "exact_length_error_px": exact["length_px"] - args.length,
                        "exact_max_width_error_px": exact["max_width_px"] - width,
                        "exact_mean_width_error_px": exact["mean_width_px"] - width,
                        "found": measured is not None,
                        "recall": float((found & truth).sum() / truth.sum()),
                    }
                    if measured is not None:
                        row |= {
                            "segmenter_pieces": measured["pieces"],
                            "segmenter_length_error_px": measured["length_px"] - args.length,
                            "segmenter_max_width_error_px": measured["max_width_px"] - width,
                            "segmenter_mean_width_error_px": measured["mean_width_px"] - width,
                        }
                    rows.append(row)
        print(f"background {b + 1} of {len(backgrounds)} done", flush=True)
    hairlines = {}
    for width in args.hairline_widths:
        for scale in args.scales:
            cases = []
            for background in backgrounds:
                for angle in args.angles:
                    for curvature in (0.0, 1.0 / RADIUS_PX):
                        geometry = CrackGeometry(
                            args.length, width, math.radians(angle), curvature, centre=(191.6, 192.3)
                        )
                        image, truth = draw_crack(torch.from_numpy(background), geometry, depth=0.6)
                        found = inspect_image(
                            image.numpy(), classifier, segmenter, tile=classifier.tile, scale=scale
                        ).mask
                        measured = _matched(measure_cracks(found), found, truth)
                        cases.append(
                            {
                                "recall": float((found & truth).sum() / truth.sum()),
                                "found": measured is not None,
                                "pieces": measured["pieces"] if measured else 0,
                                "length_share": measured["length_px"] / args.length if measured else 0.0,
                            }
                        )
            hairlines[f"{width:g}@{scale:g}"] = {
                "width_px": width,
                "scale": scale,
                "cases": len(cases),
                **{
                    k: statistics.fmean(float(c[k]) for c in cases)
                    for k in ("recall", "found", "pieces", "length_share")
                },
            }
            print(f"hairline {width:g} px at --scale {scale:g}: {hairlines[f'{width:g}@{scale:g}']}", flush=True)
    summary = {}
    for width in args.widths:
        mine = [r for r in rows if r["width_px"] == width]
        summary[str(width)] = {
            "cases": len(mine),
            "found": sum(r["found"] for r in mine),
            "recall": statistics.fmean(r["recall"] for r in mine),
            "pieces": statistics.fmean(r["segmenter_pieces"] for r in mine if r["found"])
            if any(r["found"] for r in mine)
            else None,
            **{
                f"{source}_{what}": _errors(mine, f"{source}_{what}_error_px", args.mm_per_pixel)
                for source in ("exact", "segmenter")
                for what in ("length", "max_width", "mean_width")
            },
        }
    return {"rows": rows, "by_width": summary, "hairlines": hairlines, "n_photos": len(stems)}


def _cell(e: dict, mm: bool = False) -> str:
    if not e.get("n"):
        return "–"
    return f"{e['mean_px']:+.1f} ({e['mean_abs_mm']:.2f} mm)" if mm else f"{e['mean_px']:+.1f} / {e['mean_abs_px']:.1f}"


def _markdown(result: dict) -> str:
    env, a = result["environment"], result["args"]
    lines = [
        "# Crack measurements against cracks of known geometry",
        "",
        f"Measured {env['date']} on {env['cpu']}, torch {env['torch']}. Segmenter `{a['segmenter']}`, classifier "
        f"`{a['classifier']}` (the cascade at `inspect-image`'s defaults). {a['backgrounds']} backgrounds of "
        f"crack-free pavement (3 x 3 sound 128-px tiles of {result['n_photos']} held-out photos); cracks "
        f"{a['length']} px long (centre line), straight or on a {RADIUS_PX:.0f}-px radius, at "
        f"{', '.join(str(v) for v in a['angles'])} degrees, darkened 60 %. Errors are measured minus true, "
        f"in px as mean (signed) / mean absolute; millimetres at {a['mm_per_pixel']} mm per pixel (mean absolute).",
        "",
        "| width px | cases | found | pieces | recall | length, exact mask | max width, exact | mean width, exact | "
        "length, segmenter | max width, segmenter | mean width, segmenter | max width, segmenter (mm) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w, s in result["by_width"].items():
        lines.append(
            f"| {w} | {s['cases']} | {s['found']} | "
            + (f"{s['pieces']:.1f}" if s["pieces"] is not None else "–")
            + f" | {s['recall']:.2f} | {_cell(s['exact_length'])} | "
            f"{_cell(s['exact_max_width'])} | {_cell(s['exact_mean_width'])} | {_cell(s['segmenter_length'])} | "
            f"{_cell(s['segmenter_max_width'])} | {_cell(s['segmenter_mean_width'])} | "
            f"{_cell(s['segmenter_max_width'], mm=True)} |"
        )
    if result.get("hairlines"):
        lines += [
            "",
            "Hairline cracks at `inspect-image --scale S` (the photo enlarged S times before both models see it): "
            "the share of the crack's pixels marked, the share of cracks found at all, the pieces and the summed "
            "length of the found pieces over the true length.",
            "",
            "| width px | --scale | cases | pixels marked | found | pieces | length found |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for h in result["hairlines"].values():
            lines.append(
                f"| {h['width_px']:g} | {h['scale']:g} | {h['cases']} | {h['recall']:.2f} | {h['found']:.0%} | "
                f"{h['pieces']:.1f} | {h['length_share']:.0%} |"
            )
    return "\n".join(lines) + "\n"


def _rel(path: Path) -> str:
    return shown_path(path, ROOT)


def main(argv=None) -> int:
    return exit_code_of(_main, argv)


def _main(argv=None) -> int:
    from crackscope.deploy.operating_point import pair_study_parser

    p = pair_study_parser(__doc__)
    p.add_argument("--widths", type=float, nargs="+", default=[2, 4, 6, 8, 12])
    p.add_argument("--angles", type=float, nargs="+", default=[0, 30, 60, 90, 135])
    p.add_argument("--length", type=float, default=200.0)
    p.add_argument("--hairline-widths", type=float, nargs="*", default=[1, 1.5, 2], help="widths of the --scale study")
    p.add_argument("--scales", type=float, nargs="+", default=[1, 1.5, 2], help="inspect-image --scale values")
    p.add_argument("--backgrounds", type=int, default=3)
    p.add_argument("--mm-per-pixel", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--name", default="crack_measurement")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run(args)
    result["args"] = {k: (_rel(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result["environment"] = {"date": datetime.date.today().isoformat(), **hardware()}
    write_results(args.out / args.name, result, _markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
