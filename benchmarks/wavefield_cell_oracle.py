"""What DSC a perfect detector of crack-holding sensor cells would score on a wave-field store.

The 9 x 9 sensors split the 36 x 36 mask into 81 cells of 4 x 4 pixels. The "cell oracle"
(crackscope.metrics.cell_oracle) knows exactly which cells hold crack pixels and marks all 16
pixels of each; its DSC against the true masks is the score of locating cracks to the cell of the
nearest sensor and no finer. A model whose DSC sits at this level has learnt which cells are cracked; above it, it
resolves where inside a cell the crack runs. Also written: the same per crack-size class.

    python benchmarks/wavefield_cell_oracle.py [STORE ...] [--preset NAME ...] [--samples 4000]

``--preset`` draws the masks of a preset's plates (seed 0, as a store made with that seed would hold
them) without simulating any wave: the oracle needs only the masks.

Writes benchmarks/results/wavefield_cell_oracle.{json,md}.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from crackscope.data.wavefield_store import open_store
from crackscope.metrics import cell_oracle
from crackscope.provenance import write_results

BOUNDS_UM = (0, 1, 2, 3, 4)


def dsc(pred: np.ndarray, true: np.ndarray) -> float:
    tp, fp, fn = (pred & true).sum(), (pred & ~true).sum(), (~pred & true).sum()
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 1.0


def measure(store: Path, samples: int) -> dict:
    group = open_store(store)
    done = np.nonzero(np.asarray(group["done"][:]))[0][:samples]
    masks = np.asarray(group["masks"].get_orthogonal_selection((done,))) > 0
    longest = np.asarray(group["max_crack_length_um"][:])[done]
    return _row(Path(store).name, masks, longest, int(group.attrs["config"]["sensor_grid"]))


def measure_preset(name: str, samples: int) -> dict:
    from crackscope.data.wavefield_store import cracks_for_sample
    from crackscope.physics.config import PlateConfig
    from crackscope.physics.cracks import rasterize_mask

    cfg = PlateConfig.preset(name)
    plates = [cracks_for_sample(cfg, 0, i) for i in range(samples)]
    masks = np.stack([rasterize_mask(p, cfg.width, cfg.height, cfg.mask_size) for p in plates]) > 0
    longest = np.array([max((c.length_um for c in p), default=0.0) for p in plates])
    return _row(f"preset {name}", masks, longest, cfg.sensor_grid)


def _row(source: str, masks: np.ndarray, longest: np.ndarray, grid: int) -> dict:
    oracle = cell_oracle(torch.as_tensor(masks), grid).numpy()
    row = {
        "store": source,
        "samples": int(len(masks)),
        "grid": grid,
        "mask_size": int(masks.shape[-1]),
        "crack_pixel_fraction": float(masks.mean()),
    }
    for b in BOUNDS_UM:
        sel = longest > b
        row[f"dsc>{b}"] = dsc(oracle[sel], masks[sel]) if sel.any() else None
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="*", type=Path)
    parser.add_argument("--preset", action="append", default=[], help="a wave-field preset (repeatable)")
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "wavefield_cell_oracle")
    args = parser.parse_args()
    rows = [measure_preset(p, args.samples) for p in args.preset] + [measure(s, args.samples) for s in args.stores]
    date = datetime.now(UTC).isoformat(timespec="seconds")
    lines = [
        "| store | plates | crack pixels | " + " | ".join(f"DSC >{b} µm" for b in BOUNDS_UM) + " |",
        "|---|---:|---:|" + "---:|" * len(BOUNDS_UM),
    ]
    for r in rows:
        cells = " | ".join("–" if r[f"dsc>{b}"] is None else f"{r[f'dsc>{b}']:.3f}" for b in BOUNDS_UM)
        lines.append(f"| {r['store']} | {r['samples']} | {100 * r['crack_pixel_fraction']:.2f} % | {cells} |")
    write_results(
        args.out, {"date": date, "rows": rows}, f"# Cell-oracle DSC ({date})\n\n" + "\n".join(lines) + "\n", indent=1
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
