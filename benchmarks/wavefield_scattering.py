"""How much of a crack reaches the sensors: the scattered field (signal - intact reference) of
single straight cracks against crack length and distance to the nearest sensor.

For each preset and crack length, ``--plates`` plates with one crack each (random centre and
angle, seeded) are simulated with the store's settings; per plate it records

* ``scattered_rel``: RMS over all sensors and times of (signal - reference) / RMS of the reference;
* ``nearest_rel``: the same at the sensor nearest the crack centre;
* ``distance_um``: crack centre to the nearest sensor.

Writes ``benchmarks/results/wavefield_scattering.{json,md}``. Usage::

    python benchmarks/wavefield_scattering.py [--plates 24] [--presets small-demo,paper]
"""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from crackscope.physics.config import PlateConfig
from crackscope.physics.cracks import Crack
from crackscope.physics.wavefield import simulate_wavefield
from crackscope.provenance import cpu_name, write_results

LENGTHS_UM = (0.4, 0.8, 1.6, 3.2, 6.4, 12.8)
SETTINGS = {
    "small-demo": ("small", {"n_time": 250, "record_every": 4}),
    "small": ("small", {}),
    "paper": ("paper", {}),
}


def random_crack(rng, cfg: PlateConfig, length_m: float) -> Crack:
    angle = rng.uniform(0, math.pi)
    dx, dy = 0.5 * length_m * math.cos(angle), 0.5 * length_m * math.sin(angle)
    margin = 0.5 * length_m + 0.3e-6
    cx, cy = rng.uniform(margin, cfg.width - margin), rng.uniform(margin, cfg.height - margin)
    return Crack((cx - dx, cy - dy), (cx + dx, cy + dy))


def measure(name: str, plates: int, seed: int) -> list[dict]:
    preset, overrides = SETTINGS[name]
    cfg = PlateConfig.preset(preset, **overrides)
    rng = np.random.default_rng(seed)
    reference = simulate_wavefield(cfg, [[]]).signals[0].double()  # (2, S, T)
    ref_rms = float(reference.pow(2).mean().sqrt())
    rows = []
    for length_um in LENGTHS_UM:
        if length_um * 1e-6 > 0.5 * min(cfg.width, cfg.height):
            continue
        cracks = [random_crack(rng, cfg, length_um * 1e-6) for _ in range(plates)]
        result = simulate_wavefield(cfg, [[c] for c in cracks])
        sensors = result.sensor_xy.double().numpy()
        scattered = result.signals.double() - reference  # (B, 2, S, T)
        for b, crack in enumerate(cracks):
            centre = np.mean(crack.points, axis=0)
            d = np.linalg.norm(sensors - centre, axis=1)
            s = int(d.argmin())
            near_ref = float(reference[:, s].pow(2).mean().sqrt())
            rows.append(
                {
                    "setting": name,
                    "length_um": length_um,
                    "distance_um": float(d[s] * 1e6),
                    "scattered_rel": float(scattered[b].pow(2).mean().sqrt()) / ref_rms,
                    "nearest_rel": float(scattered[b, :, s].pow(2).mean().sqrt()) / near_ref,
                    "cut_bonds": int(result.cut_bonds[b]),
                }
            )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| setting | crack length [µm] | plates | scattered / intact RMS, all sensors (median) | "
        "at the nearest sensor (median) | nearest sensor within 1 µm / beyond 1 µm (median) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        for length in LENGTHS_UM:
            sel = [r for r in rows if r["setting"] == setting and r["length_um"] == length]
            if not sel:
                continue
            near = [r["nearest_rel"] for r in sel if r["distance_um"] <= 1.0]
            far = [r["nearest_rel"] for r in sel if r["distance_um"] > 1.0]
            fmt = lambda v: f"{np.median(v):.2e}" if v else "–"  # noqa: E731
            lines.append(
                f"| {setting} | {length:g} | {len(sel)} | {fmt([r['scattered_rel'] for r in sel])} | "
                f"{fmt([r['nearest_rel'] for r in sel])} | {fmt(near)} / {fmt(far)} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=24)
    parser.add_argument("--presets", default="small-demo,small,paper")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "wavefield_scattering")
    args = parser.parse_args()
    rows = []
    for name in args.presets.split(","):
        rows += measure(name, args.plates, args.seed)
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "plates_per_length": args.plates,
        "seed": args.seed,
        "hardware": f"{cpu_name()}, {torch.get_num_threads()} threads",
    }
    md = table(rows)
    title = f"# Scattered field of one crack ({meta['date']})"
    write_results(args.out, {**meta, "rows": rows}, f"{title}\n\n{md}", indent=1)
    print(md)


if __name__ == "__main__":
    main()
