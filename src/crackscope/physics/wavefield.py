"""simulate_wavefield: a batch of cracked plates excited at the left edge, recorded by a sensor grid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from crackscope.errors import InputError
from crackscope.physics.config import PlateConfig
from crackscope.physics.cracks import Crack, bonds_cut_by, check_crack_lists, rasterize_mask
from crackscope.physics.lattice import TriangularLattice
from crackscope.physics.solver import LatticeSolver
from crackscope.physics.sources import waveform

# Bump whenever a change to the physics changes the numbers: stores record it, resume checks it.
SIMULATOR_VERSION = "lattice-2 (wave-speed calibrated springs)"


@dataclass
class WavefieldResult:
    """Output of :func:`simulate_wavefield` (B plates, S sensors, T recorded samples)."""

    signals: torch.Tensor  # (B, 2, S, T) x and y displacement [m] at each sensor
    masks: torch.Tensor  # (B, mask, mask) uint8; row 0 = bottom of the plate (y = 0)
    time: torch.Tensor  # (T,) [s]
    sensor_xy: torch.Tensor  # (S, 2) [m], the lattice nodes used as sensors, row-major from bottom-left
    c_p: float  # plane-stress P-wave speed [m/s] (continuum theory)
    c_s: float  # S-wave speed [m/s]
    n_nodes: int  # lattice particles
    n_steps: int  # time steps integrated
    dt: float  # integration step [s]
    crack_length_um: list[list[float]] = field(default_factory=list)  # per plate, per crack
    cut_bonds: list[int] = field(default_factory=list)  # per plate
    snapshots: torch.Tensor | None = None  # (B, K, 2, R, C) displacement fields, if asked for
    snapshot_steps: list[int] | None = None


def sensor_nodes(lattice: TriangularLattice, grid: int) -> list[tuple[int, int]]:
    """(row, col) of the nodes nearest a uniform grid x sensor grid over the plate (cell centres)."""
    nodes = []
    for iy in range(grid):
        for ix in range(grid):
            x = (ix + 0.5) * lattice.width / grid
            y = (iy + 0.5) * lattice.height / grid
            nodes.append(lattice.nearest_node(x, y))
    return nodes


def cut_bond_weights(
    lattice: TriangularLattice, cracks_per_plate: Sequence[Sequence[Crack]]
) -> tuple[dict[str, np.ndarray] | None, list[int]]:
    """Per family, (B, r, c) weights with 0 for every bond a crack cuts (crosses its line, or touches
    its band); None if nothing is cut.

    Only the block of bonds within one spacing of each crack piece's bounding box is tested.
    """
    a = lattice.spacing
    weights, counts = {}, [0] * len(cracks_per_plate)
    for fam in lattice.families:
        p_i = np.moveaxis(fam.first(lattice.positions), 0, -1)  # (r, c, 2)
        p_j = np.moveaxis(fam.second(lattice.positions), 0, -1)
        row_y = p_i[:, 0, 1]
        w = np.ones((len(cracks_per_plate), *p_i.shape[:2]), dtype=np.float32)
        for b, cracks in enumerate(cracks_per_plate):
            for crack in cracks:
                for block, hit in bonds_cut_by(crack, p_i, p_j, row_y, a):
                    w[b][block][hit] = 0.0
        weights[fam.name] = w
    for b in range(len(cracks_per_plate)):
        counts[b] = int(sum((weights[f.name][b] == 0).sum() for f in lattice.families))
    if not any(counts):
        return None, counts
    return weights, counts


def sponge_damping(cfg: PlateConfig, lattice: TriangularLattice) -> np.ndarray | float:
    """Mass-proportional damping [1/s]: the uniform part plus a quadratic ramp in the sponge layer.

    The sponge lines the top, bottom and right edges; the loaded left edge stays undamped.
    """
    if cfg.sponge_width <= 0:
        return cfg.damping
    x, y = lattice.positions
    dist = np.minimum.reduce([cfg.width - x, y, cfg.height - y])
    depth = np.clip(1.0 - dist / cfg.sponge_width, 0.0, 1.0)
    return cfg.damping + cfg.sponge_strength * 2 * math.pi * cfg.frequency * depth**2


def simulate_wavefield(
    cfg: PlateConfig,
    cracks: Sequence[Sequence[Crack]],
    device: str | torch.device = "cpu",
    *,
    snapshot_every: int | None = None,
    sensor_xy=None,
    progress: bool = False,
    backend: str = "auto",
) -> WavefieldResult:
    """Simulate one plate per entry of ``cracks`` (a list of :class:`Crack` per plate, may be empty).

    ``sensor_xy`` (S, 2) [m] replaces the uniform sensor grid by custom positions (each snapped to its
    nearest lattice node); ``snapshot_every`` keeps the whole displacement field every that many steps.
    ``backend``: "auto" (fused numba kernel on CPU, torch elsewhere), "numba" or "torch".
    """
    cracks = check_crack_lists(cracks, cfg.width, cfg.height)
    lattice = cfg.lattice()
    springs = cfg.springs
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    device = torch.device(device)
    dt, batch = cfg.dt, len(cracks)
    weights, cut_counts = cut_bond_weights(lattice, cracks)
    solver = LatticeSolver(
        lattice,
        springs.k_normal,
        springs.k_shear,
        springs.node_mass,
        dt,
        batch,
        bond_weights=weights,
        damping=sponge_damping(cfg, lattice),
        device=device,
        dtype=dtype,
        backend=backend,
    )

    # Source: a point force at the left-edge node of the middle row, pre-scaled by dt^2/m.
    n_steps = cfg.n_steps
    src_r, src_c = lattice.source_node()
    step_times = np.arange(n_steps + 1) * dt
    amplitude = cfg.source_peak_force * waveform(cfg.source_waveform, step_times, cfg.frequency, cfg.tone_burst_cycles)
    theta = math.radians(cfg.source_direction_deg)
    scale = dt * dt / springs.node_mass
    src_x = (amplitude * math.cos(theta) * scale).tolist()
    src_y = (amplitude * math.sin(theta) * scale).tolist()
    last_forced = int(np.nonzero(amplitude)[0].max()) if np.any(amplitude) else -1

    if sensor_xy is None:
        nodes = sensor_nodes(lattice, cfg.sensor_grid)
    else:
        xy = np.asarray(sensor_xy, dtype=np.float64).reshape(-1, 2)
        for x, y in xy:
            if not (0 <= x <= cfg.width and 0 <= y <= cfg.height):
                raise InputError(f"sensor position ({x:.4g}, {y:.4g}) m lies outside the plate")
        nodes = [lattice.nearest_node(x, y) for x, y in xy]
    sensor_index = solver.padded_index([r for r, _ in nodes], [c for _, c in nodes])
    recorded = torch.empty((cfg.n_time, batch, 2, len(nodes)), dtype=dtype, device=device)
    snaps, snap_steps = [], []

    steps = range(n_steps + 1)
    if progress:
        from crackscope.progress import progress_bar

        steps = progress_bar(steps, desc="time steps", total=n_steps + 1)
    for n in steps:
        if n % cfg.record_every == 0:
            solver.read_nodes(sensor_index, out=recorded[n // cfg.record_every])
        if snapshot_every and n % snapshot_every == 0:
            snaps.append(solver.u.clone())
            snap_steps.append(n)
        if n == n_steps:
            break
        if n <= last_forced:
            solver.step(point_force=(src_r, src_c, src_x[n], src_y[n]))
        else:
            solver.step()

    signals = recorded.permute(1, 2, 3, 0).contiguous()
    masks = np.stack([rasterize_mask(c, cfg.width, cfg.height, cfg.mask_size) for c in cracks])
    c_p, c_s = cfg.wave_speeds
    sensor_xy = np.stack([lattice.positions[:, r, c] for r, c in nodes])
    return WavefieldResult(
        signals=signals,
        masks=torch.as_tensor(masks),
        time=torch.as_tensor(np.arange(cfg.n_time) * cfg.record_every * dt),
        sensor_xy=torch.as_tensor(sensor_xy),
        c_p=c_p,
        c_s=c_s,
        n_nodes=lattice.n_nodes,
        n_steps=n_steps,
        dt=dt,
        crack_length_um=[[c.length_um for c in plate] for plate in cracks],
        cut_bonds=cut_counts,
        snapshots=torch.stack(snaps, dim=1) if snaps else None,
        snapshot_steps=snap_steps or None,
    )
