"""The surface-segmentation study: the paper's comparison of five models (Zhang et al., Table 2) and
its ablation (U-Net vs U-Net + CBAM) on SD-saliency-900, with one protocol and one split.

    .venv/bin/python benchmarks/surface_study.py                 # the reduced CPU protocol (defaults)
    .venv/bin/python benchmarks/surface_study.py --size none --base-channels 32 --epochs 100   # paper scale (GPU)

Steps: run configs/surface/comparison_grid.yaml with the given overrides (finished runs are
skipped, an interrupted run resumes from its last checkpoint), copy table.md / results.csv to
benchmarks/results/surface_study/, draw the qualitative figure (image | ground truth | each model),
write protocol.json, and with --ship copy U-Net+CBAM and the best other model into
src/crackscope/weights/sd-saliency-900/<model>/.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from crackscope.provenance import write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "surface_study"
DEFAULT_DATA = Path("../shared/datasets/SD-saliency-900")  # relative: run from the repository root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--size", default="128", help="resize side in pixels, or 'none' to pad 200 -> 224 (default 128)")
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--work", type=Path, default=Path("runs/surface_study"))
    p.add_argument(
        "--ship", action="store_true", help="copy U-Net+CBAM and the best other model into the package's weights"
    )
    args = p.parse_args(argv)

    size = "null" if args.size.lower() == "none" else str(int(args.size))
    overrides = [
        f"out_dir={args.work}",
        f"data.root={args.data}",
        f"data.size={size}",
        f"model.base_channels={args.base_channels}",
        f"trainer.max_epochs={args.epochs}",
    ]
    t0 = time.time()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "crackscope.cli",
            "grid",
            str(ROOT / "configs" / "surface" / "comparison_grid.yaml"),
            *overrides,
        ],
        check=True,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.work / "table.md", RESULTS / "table.md")
    shutil.copy(args.work / "results.csv", RESULTS / "results.csv")
    rows = list(csv.DictReader((args.work / "results.csv").open()))
    runs = [args.work / r["run"] for r in rows]

    from crackscope.engine.surface import plot_model_comparison

    plot_model_comparison(runs, args.data, RESULTS / "comparison.png", n_images=6)
    import torch

    metrics = {r["run"]: json.loads((args.work / r["run"] / "metrics.json").read_text()) for r in rows}
    first = next(iter(metrics.values()))
    protocol = {
        "dataset": str(args.data.resolve()),
        "split": first["dataset"],
        "size": size,
        "base_channels": args.base_channels,
        "max_epochs": args.epochs,
        "epochs_run": {m["model"]: m["epochs_run"] for m in metrics.values()},
        "hardware": first["hardware"],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "wall_s_this_invocation": round(time.time() - t0, 1),
    }
    write_results(RESULTS / "protocol", protocol)
    if args.ship:
        from crackscope.deploy.package import package_model

        others = [r for r in rows if r["model"] not in ("unet_cbam",)]
        best_other = max(others, key=lambda r: float(r["miou"]))
        for r in [next(r for r in rows if r["model"] == "unet_cbam"), best_other]:
            m = metrics[r["run"]]
            note = (
                f"# {r['model']} trained on SD-saliency-900\n\n"
                f"Test split ({m['n_images']} images, stratified by class, seed 0): mIoU {m['miou']:.4f}, "
                f"defect IoU {m['iou_defect']:.4f}, precision {m['precision']:.4f}, recall {m['recall']:.4f}.\n"
                f"Trained {m['epochs_run']} epochs (best {m['best_epoch']}, 0-based) on {m['hardware']}.\n\n"
                f"Reproduce: `.venv/bin/python benchmarks/surface_study.py --size {args.size} "
                f"--base-channels {args.base_channels} --epochs {args.epochs} --ship`\n\n"
                f"Use: `crackscope evaluate sd-saliency-900/{r['model']} --data ../shared/datasets/"
                f"SD-saliency-900 --out eval/` or `crackscope predict sd-saliency-900/{r['model']} "
                f"--data IMAGES/ --out pred/`\n"
            )
            dest = ROOT / "src" / "crackscope" / "weights" / "sd-saliency-900" / r["model"]
            package_model(args.work / r["run"], dest, readme=note, replace=True)  # as `crackscope package` does
    print((RESULTS / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
