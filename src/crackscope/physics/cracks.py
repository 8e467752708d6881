"""Crack geometry: segments and kinked polylines, bands (notches), bond cutting, masks, sampling.

A crack of width 0 is a traction-free line: every lattice bond whose segment crosses it is removed.
A crack of width w > 0 is a band (a rectangular notch) of that width around each straight piece:
every bond with an end inside the band or crossing its boundary is removed. The particles inside
are then left with no bond at all, so they carry no force and never move: the notch is empty
material, as if they had been removed, while the lattice keeps the regular (rows, cols) layout
that the sliced force kernels rely on. Coordinates are metres from the plate's lower-left corner.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from crackscope.errors import InputError


@dataclass(frozen=True, init=False)
class Crack:
    """A crack through the points ``Crack((x0, y0), (x1, y1), ..., width_m=0.0)`` [m]; 3+ points =
    kinked. ``width_m`` > 0 makes each straight piece a band (notch) of that width, centred on it,
    with square ends at its points."""

    points: tuple[tuple[float, float], ...]
    width_m: float

    def __init__(self, *points: Sequence[float], width_m: float = 0.0):
        if len(points) == 1 and len(points[0]) > 0 and isinstance(points[0][0], (tuple, list, np.ndarray)):
            points = tuple(points[0])
        pts = tuple((float(p[0]), float(p[1])) for p in points)
        if len(pts) < 2:
            raise InputError(f"a crack needs at least two points, got {pts!r}")
        if any(not (math.isfinite(x) and math.isfinite(y)) for x, y in pts):
            raise InputError(f"crack points must be finite numbers, got {pts!r}")
        width_m = float(width_m)
        if not (math.isfinite(width_m) and width_m >= 0.0):
            raise InputError(f"crack width_m must be a finite number >= 0, got {width_m!r}")
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "width_m", width_m)

    @property
    def width_um(self) -> float:
        return self.width_m * 1e6

    @property
    def bands(self) -> np.ndarray:
        """(n_segments, 4, 2): the corners of each piece's band, in order around it (zero area at
        width 0)."""
        seg = self.segments
        d = seg[:, 1] - seg[:, 0]
        n = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-300)
        h = 0.5 * self.width_m * n
        return np.stack([seg[:, 0] - h, seg[:, 1] - h, seg[:, 1] + h, seg[:, 0] + h], axis=1)

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
        """InputError if a point of the centre line lies outside the plate (a band may overhang an
        edge: what lies outside is no material anyway)."""
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


def _block_near(p_i: np.ndarray, row_y: np.ndarray, shape: np.ndarray, spacing: float):
    """The (rows, cols) slice of a bond family's grid whose first ends lie within about one spacing
    of the bounding box of ``shape`` (k, 2); None when it is empty."""
    lo, hi = shape.min(0) - spacing, shape.max(0) + spacing
    r0, r1 = np.searchsorted(row_y, lo[1]), np.searchsorted(row_y, hi[1], side="right")
    c0, c1 = max(int(lo[0] // spacing) - 1, 0), max(int(hi[0] // spacing) + 2, 0)
    if r0 >= r1 or c0 >= p_i.shape[1]:
        return None
    return (slice(r0, r1), slice(c0, c1))


def bonds_crossing(p_i: np.ndarray, p_j: np.ndarray, row_y: np.ndarray, segment: np.ndarray, spacing: float):
    """(block, hit): the slice of one bond family's (rows, cols) grid near ``segment`` and the boolean
    mask of its bonds (p_i -> p_j, each (rows, cols, 2)) that the segment properly crosses; ``None``
    when no bond is near. ``row_y``: y of each row of first ends (increasing)."""
    block = _block_near(p_i, row_y, segment, spacing)
    if block is None:
        return None
    return block, segments_cross(p_i[block], p_j[block], segment)


def points_in_band(p: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Boolean (...): which points p (..., 2) lie in the closed rectangle ``band`` (4, 2), corners in
    order around it."""
    o, e1, e2 = band[0], band[1] - band[0], band[3] - band[0]
    rel = p - o
    s = (rel @ e1) / max(float(e1 @ e1), 1e-300)
    t = (rel @ e2) / max(float(e2 @ e2), 1e-300)
    return (s >= 0) & (s <= 1) & (t >= 0) & (t <= 1)


def bonds_in_band(p_i: np.ndarray, p_j: np.ndarray, row_y: np.ndarray, band: np.ndarray, spacing: float):
    """(block, hit) like :func:`bonds_crossing` for a band (4, 2): a bond is hit when an end lies in
    the band or the bond crosses one of its four sides (a bond meeting a convex region does one or
    the other)."""
    block = _block_near(p_i, row_y, band, spacing)
    if block is None:
        return None
    a, b = p_i[block], p_j[block]
    hit = points_in_band(a, band) | points_in_band(b, band)
    for k in range(4):
        hit |= segments_cross(a, b, np.stack([band[k], band[(k + 1) % 4]]))
    return block, hit


def bonds_cut_by(crack: Crack, p_i: np.ndarray, p_j: np.ndarray, row_y: np.ndarray, spacing: float):
    """(block, hit) pairs, one per straight piece of ``crack`` near the bonds: those it cuts (crossed
    by a line crack; touching the band of a crack with width)."""
    if crack.width_m > 0:
        found = (bonds_in_band(p_i, p_j, row_y, band, spacing) for band in crack.bands)
    else:
        found = (bonds_crossing(p_i, p_j, row_y, seg, spacing) for seg in crack.segments)
    return [f for f in found if f is not None]


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
    segment (or, for a crack with width, its band) meets its closed square (a "supercover"), so no
    crack is ever lost and a band of width 0 draws exactly its line.
    """
    mask = np.zeros((size, size), dtype=np.uint8)
    px, py = width / size, height / size
    x_lo = np.arange(size)[None, :] * px
    y_lo = np.arange(size)[:, None] * py
    for crack in cracks:
        if crack.width_m > 0:
            for band in crack.bands:
                mask |= _band_cover(band, px, py, size)
            continue
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


def _band_cover(band: np.ndarray, px: float, py: float, size: int) -> np.ndarray:
    """(size, size) uint8: the pixels whose closed square meets the rectangle ``band`` (4, 2).

    Separating-axis test of two convex polygons: they are disjoint exactly when their projections
    are disjoint on one of the four edge normals (x, y and the band's two axes)."""
    cx = (np.arange(size)[None, :] + 0.5) * px
    cy = (np.arange(size)[:, None] + 0.5) * py
    lo, hi = band.min(0), band.max(0)
    meets = (cx + px / 2 >= lo[0]) & (cx - px / 2 <= hi[0]) & (cy + py / 2 >= lo[1]) & (cy - py / 2 <= hi[1])
    centre = band.mean(0)
    for edge in (band[1] - band[0], band[3] - band[0]):
        length = float(np.linalg.norm(edge))
        if length == 0.0:
            continue
        u = edge / length
        half_band = length / 2
        half_pixel = (abs(u[0]) * px + abs(u[1]) * py) / 2
        gap = np.abs((cx - centre[0]) * u[0] + (cy - centre[1]) * u[1])
        meets &= gap <= half_band + half_pixel
    return meets.astype(np.uint8)


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
    edge_margin: float = 0.0  # [m] keep crack points (and band corners) this far inside the plate
    width_um_min: float = 0.0  # band width [µm], uniform in [min, max]; 0 = a line crack
    width_um_max: float = 0.0


def sample_cracks(dist: CrackDistribution, width: float, height: float, rng: np.random.Generator) -> list[Crack]:
    """Random cracks for one plate: random count, length, centre, orientation, kink and width.

    The width is drawn last and only when ``width_um_max`` > 0, so line-crack plates come out of
    the same generator state exactly as before widths existed."""
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
        band_m = rng.uniform(dist.width_um_min, dist.width_um_max) * 1e-6 if dist.width_um_max > 0 else 0.0
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
            crack = Crack(*[tuple(p) for p in pts], width_m=band_m)
            extent = crack.bands.reshape(-1, 2) if band_m > 0 else np.asarray(crack.points)
            if (extent.min(0) >= m).all() and (extent[:, 0] <= width - m).all() and (extent[:, 1] <= height - m).all():
                cracks.append(crack)
                break
        else:  # pragma: no cover - only for cracks longer than the plate
            raise InputError(f"a crack of {length_um:.3g} µm does not fit in the {width:.3g} x {height:.3g} m plate")
    return cracks
