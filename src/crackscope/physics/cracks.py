"""Crack geometry: segments and kinked polylines, bond cutting, mask rasterisation, sampling.

A crack is a zero-width, traction-free line: every lattice bond whose segment crosses it is
removed. Coordinates are metres from the plate's lower-left corner.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from crackscope.errors import InputError


@dataclass(frozen=True, init=False)
class Crack:
    """A crack through the points ``Crack((x0, y0), (x1, y1), ...)`` [m]; 3+ points = kinked."""

    points: tuple[tuple[float, float], ...]

    def __init__(self, *points: Sequence[float]):
        if len(points) == 1 and len(points[0]) > 0 and isinstance(points[0][0], (tuple, list, np.ndarray)):
            points = tuple(points[0])
        pts = tuple((float(p[0]), float(p[1])) for p in points)
        if len(pts) < 2:
            raise InputError(f"a crack needs at least two points, got {pts!r}")
        if any(not (math.isfinite(x) and math.isfinite(y)) for x, y in pts):
            raise InputError(f"crack points must be finite numbers, got {pts!r}")
        object.__setattr__(self, "points", pts)

    @property
    def segments(self) -> np.ndarray:
        """(n_segments, 2, 2): start and end point of each straight piece."""
        p = np.asarray(self.points)
        return np.stack([p[:-1], p[1:]], axis=1)

    @property
    def length_m(self) -> float:
        p = np.asarray(self.points)
        return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())

    @property
    def length_um(self) -> float:
        return self.length_m * 1e6

    def check_inside(self, width: float, height: float) -> None:
        for x, y in self.points:
            if not (0.0 <= x <= width and 0.0 <= y <= height):
                raise InputError(
                    f"crack point ({x:.4g}, {y:.4g}) m lies outside the {width:.4g} x {height:.4g} m plate"
                )


def _orientation(ax, ay, bx, by, px, py):
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


def segments_cross(p_i: np.ndarray, p_j: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Boolean array: which bonds (p_i -> p_j, shape (..., 2)) properly cross ``segment`` (2, 2)."""
    (qx0, qy0), (qx1, qy1) = segment
    o1 = _orientation(qx0, qy0, qx1, qy1, p_i[..., 0], p_i[..., 1])
    o2 = _orientation(qx0, qy0, qx1, qy1, p_j[..., 0], p_j[..., 1])
    o3 = _orientation(p_i[..., 0], p_i[..., 1], p_j[..., 0], p_j[..., 1], qx0, qy0)
    o4 = _orientation(p_i[..., 0], p_i[..., 1], p_j[..., 0], p_j[..., 1], qx1, qy1)
    return (o1 * o2 < 0) & (o3 * o4 < 0)


def bonds_crossing(p_i: np.ndarray, p_j: np.ndarray, row_y: np.ndarray, segment: np.ndarray, spacing: float):
    """(block, hit): the slice of one bond family's (rows, cols) grid near ``segment`` and the boolean
    mask of its bonds (p_i -> p_j, each (rows, cols, 2)) that the segment properly crosses; ``None``
    when no bond is near. ``row_y``: y of each row of first ends (increasing)."""
    lo, hi = segment.min(0) - spacing, segment.max(0) + spacing
    r0, r1 = np.searchsorted(row_y, lo[1]), np.searchsorted(row_y, hi[1], side="right")
    c0, c1 = max(int(lo[0] // spacing) - 1, 0), max(int(hi[0] // spacing) + 2, 0)
    if r0 >= r1 or c0 >= p_i.shape[1]:
        return None
    block = (slice(r0, r1), slice(c0, c1))
    return block, segments_cross(p_i[block], p_j[block], segment)


def check_crack_lists(plates, width: float, height: float, what: str = "cracks") -> list[list[Crack]]:
    """One list of :class:`Crack` per plate, each inside the plate; InputError otherwise."""
    if len(plates) == 0:
        raise InputError(f"{what} must hold one list of cracks per plate (use [[]] for one intact plate)")
    plates = [list(p) for p in plates]
    for plate in plates:
        for c in plate:
            if not isinstance(c, Crack):
                raise InputError(f"expected Crack objects, got {c!r}")
            c.check_inside(width, height)
    return plates


def rasterize_mask(cracks: Iterable[Crack], width: float, height: float, size: int) -> np.ndarray:
    """(size, size) uint8 mask; pixel [iy, ix] covers [ix, ix+1] x [iy, iy+1] * (W, H)/size.

    Row 0 is the bottom of the plate (y = 0), like the sensor rows. A pixel is 1 when any crack
    segment passes through its closed square (a "supercover" line), so no crack is ever lost.
    """
    mask = np.zeros((size, size), dtype=np.uint8)
    px, py = width / size, height / size
    x_lo = np.arange(size)[None, :] * px
    y_lo = np.arange(size)[:, None] * py
    for crack in cracks:
        for (x0, y0), (x1, y1) in crack.segments:
            t0 = np.zeros((size, size))
            t1 = np.ones((size, size))
            inside = np.ones((size, size), dtype=bool)
            for start, delta, lo, hi in ((x0, x1 - x0, x_lo, x_lo + px), (y0, y1 - y0, y_lo, y_lo + py)):
                lo = np.broadcast_to(lo, (size, size))
                hi = np.broadcast_to(hi, (size, size))
                if abs(delta) < 1e-30:
                    inside &= (start >= lo) & (start <= hi)
                    continue
                ta, tb = (lo - start) / delta, (hi - start) / delta
                t0 = np.maximum(t0, np.minimum(ta, tb))
                t1 = np.minimum(t1, np.maximum(ta, tb))
            mask |= (inside & (t0 <= t1)).astype(np.uint8)
    return mask


@dataclass(frozen=True)
class CrackDistribution:
    """How random cracks are drawn (per plate): count, length [µm], kinks, placement."""

    count_min: int = 1
    count_max: int = 4
    length_um_min: float = 0.4
    length_um_max: float = 12.8
    length_distribution: str = "log-uniform"  # or "uniform"
    kink_probability: float = 0.25
    kink_angle_deg_max: float = 60.0
    edge_margin: float = 0.0  # [m] keep crack points this far inside the plate


def sample_cracks(dist: CrackDistribution, width: float, height: float, rng: np.random.Generator) -> list[Crack]:
    """Random cracks for one plate: random count, length, centre, orientation and kink."""
    n = int(rng.integers(dist.count_min, dist.count_max + 1))
    cracks = []
    m = dist.edge_margin
    for _ in range(n):
        u = rng.random()
        lo, hi = dist.length_um_min, dist.length_um_max
        if dist.length_distribution == "log-uniform":
            length_um = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        else:
            length_um = lo + u * (hi - lo)
        length = length_um * 1e-6
        kinked = rng.random() < dist.kink_probability
        kink_at = rng.uniform(0.3, 0.7)
        kink = math.radians(rng.uniform(15.0, dist.kink_angle_deg_max)) * rng.choice([-1.0, 1.0])
        for _attempt in range(1000):
            theta = rng.uniform(0.0, math.pi)
            cx, cy = rng.uniform(m, width - m), rng.uniform(m, height - m)
            d = np.array([math.cos(theta), math.sin(theta)])
            start = np.array([cx, cy]) - d * length / 2.0
            if kinked:
                mid = start + d * length * kink_at
                d2 = np.array([math.cos(theta + kink), math.sin(theta + kink)])
                pts = [start, mid, mid + d2 * length * (1.0 - kink_at)]
            else:
                pts = [start, start + d * length]
            pts_arr = np.asarray(pts)
            if (
                (pts_arr.min(0) >= m).all()
                and (pts_arr[:, 0] <= width - m).all()
                and (pts_arr[:, 1] <= height - m).all()
            ):
                cracks.append(Crack(*[tuple(p) for p in pts_arr]))
                break
        else:  # pragma: no cover - only for cracks longer than the plate
            raise InputError(f"a crack of {length_um:.3g} µm does not fit in the {width:.3g} x {height:.3g} m plate")
    return cracks
