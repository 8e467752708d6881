"""Cracks of known geometry drawn into photos of sound surface: the reference for crack measurements.

A crack is a band of constant ``width_px`` around a centre line of ``length_px`` -- a straight
segment, or a circular arc of ``curvature_per_px`` (1 / radius) -- at ``angle_rad`` (the direction
of its chord, from the image's x axis towards y), centred at ``centre`` (row, column). Its ends are
round, so the band is every point within ``width_px / 2`` of the centre line: the tip-to-tip
length is ``length_px + width_px``, and the centre line's length is ``length_px``, which is what a
skeleton of the band measures.

:func:`crack_geometry_mask` rasterises the band (a pixel is crack when its centre is in it);
:func:`draw_crack` darkens the image by ``depth`` over the band, antialiased over one pixel at its
border (``image * (1 - depth * coverage)``, so the surface texture shows through, as in a real
crack's shadowed walls) and returns the mask with it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from crackscope.errors import InputError


@dataclass(frozen=True)
class CrackGeometry:
    """A band around a straight or circular centre line (module docstring); lengths in pixels."""

    length_px: float
    width_px: float
    angle_rad: float = 0.0
    curvature_per_px: float = 0.0
    centre: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self):
        if not (self.length_px > 0 and self.width_px > 0):
            raise InputError(f"crack length_px={self.length_px!r} and width_px={self.width_px!r} must be > 0")
        if abs(self.curvature_per_px) * self.length_px > 2 * math.pi * 0.9:
            raise InputError(
                f"crack curvature_per_px={self.curvature_per_px!r} bends {self.length_px} px almost into a circle"
            )

    def centre_line(self, step_px: float = 0.25) -> np.ndarray:
        """(N, 2) points (row, column) along the centre line, ``step_px`` apart (ends included)."""
        n = max(int(math.ceil(self.length_px / step_px)), 1) + 1
        s = np.linspace(-self.length_px / 2, self.length_px / 2, n)
        k = self.curvature_per_px
        along = s if k == 0 else np.sin(k * s) / k  # chord direction
        across = np.zeros_like(s) if k == 0 else (1 - np.cos(k * s)) / k  # towards the centre of curvature
        ux, uy = math.cos(self.angle_rad), math.sin(self.angle_rad)
        nx, ny = -uy, ux
        x = self.centre[1] + along * ux + across * nx
        y = self.centre[0] + along * uy + across * ny
        return np.stack([y, x], axis=1)

    def as_dict(self) -> dict:
        return asdict(self)


def _distance_to_band(shape: tuple[int, int], points: np.ndarray, half_widths) -> np.ndarray:
    """(H, W) signed distance from every pixel centre to the band around a dense polyline
    ``points`` ((N, 2) row, column) whose half width at point k is ``half_widths[k]`` (a scalar: the
    same everywhere): min over k of |pixel - point k| - half width k, <= 0 inside the band; inf
    more than 2 px outside its bounding box."""
    h, w = shape
    half = np.broadcast_to(np.asarray(half_widths, dtype=float), (len(points),))
    reach = float(half.max()) + 2
    y0, y1 = max(int(points[:, 0].min() - reach), 0), min(int(points[:, 0].max() + reach) + 2, h)
    x0, x1 = max(int(points[:, 1].min() - reach), 0), min(int(points[:, 1].max() + reach) + 2, w)
    dist = np.full(shape, np.inf)
    if y0 >= y1 or x0 >= x1:
        return dist
    yy, xx = np.mgrid[y0:y1, x0:x1]
    best = np.full(yy.shape, np.inf)
    pieces = max(len(points) // 256, 1)
    for chunk, half_chunk in zip(np.array_split(points, pieces), np.array_split(half, pieces)):
        d = np.sqrt((yy[..., None] - chunk[:, 0]) ** 2 + (xx[..., None] - chunk[:, 1]) ** 2) - half_chunk
        best = np.minimum(best, d.min(-1))
    dist[y0:y1, x0:x1] = best
    return dist


def crack_geometry_mask(shape: tuple[int, int], geometry: CrackGeometry) -> np.ndarray:
    """(H, W) bool: the pixels whose centres lie within ``width_px / 2`` of the centre line."""
    return _distance_to_band(shape, geometry.centre_line(), geometry.width_px / 2) <= 0


def draw_crack(image, geometry: CrackGeometry, depth: float = 0.6) -> tuple[torch.Tensor, np.ndarray]:
    """(image (C, H, W) with the crack darkened in, its mask (H, W) bool) for an image in [0, 1]."""
    if not 0 < depth <= 1:
        raise InputError(f"crack depth={depth!r} must be in (0, 1]")
    x = torch.as_tensor(image)
    outside = _distance_to_band(tuple(x.shape[-2:]), geometry.centre_line(), geometry.width_px / 2)
    coverage = np.clip(0.5 - outside, 0.0, 1.0)
    out = x * (1.0 - depth * torch.from_numpy(coverage).to(x.dtype))[None]
    return out, outside <= 0


@dataclass(frozen=True)
class Hairline:
    """A drawn hairline crack: a tortuous centre line (``points``, (N, 2) row/column, 0.25 px
    apart) whose width tapers from ``width_px`` in the middle to ``tip_width_px`` at both ends."""

    points: np.ndarray
    width_px: float
    tip_width_px: float
    depth: float

    def widths(self) -> np.ndarray:
        """(N,) the band's full width at each centre-line point: a sine taper, ``tip_width_px`` at
        the ends and ``width_px`` in the middle."""
        t = np.linspace(0.0, 1.0, len(self.points))
        return self.tip_width_px + (self.width_px - self.tip_width_px) * np.sin(np.pi * t)

    @property
    def length_px(self) -> float:
        return float(np.linalg.norm(np.diff(self.points, axis=0), axis=1).sum())


def random_hairline(
    shape: tuple[int, int],
    rng: np.random.Generator,
    width_px: tuple[float, float] = (1.0, 2.5),
    length_px: tuple[float, float] = (60.0, 300.0),
    depth: tuple[float, float] = (0.35, 0.7),
) -> Hairline:
    """A hairline crack inside an image of ``shape`` (H, W): it starts at a random point and runs
    ``length_px`` (uniform in the range) with a heading that meanders: the sum of three sinusoids
    of the arc length, wavelengths 8-200 px and amplitudes up to 0.45 rad (about 25 degrees), as a
    real crack turns between the grains without closing on itself. Width uniform in ``width_px``
    in its middle, 0.6 of that at its tips (at least 0.8 px); darkened by ``depth``. Cracks
    neither run straight from border to border nor keep one width, as joints and saw cuts do
    (:mod:`crackscope.data.hard_negatives`)."""
    h, w = shape
    length = float(rng.uniform(*length_px))
    step = 0.25
    n = max(int(length / step), 2)
    heading = float(rng.uniform(0, 2 * math.pi))
    s = np.arange(n) * step
    wavelengths = np.exp(rng.uniform(np.log(8.0), np.log(200.0), size=3))
    amplitudes = rng.uniform(0.0, 0.45, size=3)
    phases = rng.uniform(0, 2 * math.pi, size=3)
    angles = heading + sum(a * np.sin(2 * math.pi * s / lam + p) for a, lam, p in zip(amplitudes, wavelengths, phases))
    start = np.array([rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w])
    rows = start[0] + np.concatenate([[0.0], np.cumsum(np.sin(angles[:-1]) * step)])
    cols = start[1] + np.concatenate([[0.0], np.cumsum(np.cos(angles[:-1]) * step)])
    width = float(rng.uniform(*width_px))
    return Hairline(
        points=np.stack([rows, cols], axis=1),
        width_px=width,
        tip_width_px=max(0.6 * width, 0.8),
        depth=float(rng.uniform(*depth)),
    )


def draw_hairline(image, hairline: Hairline) -> tuple[torch.Tensor, np.ndarray]:
    """(image (C, H, W) with the hairline darkened in, its mask (H, W) bool) for an image in [0, 1].

    A pixel is crack when its centre lies in the band (nearer to some centre-line point than that
    point's half width), or is the pixel the centre line passes through (so a crack thinner than a
    pixel stays connected). The image is darkened by ``depth`` times the
    pixel's coverage, antialiased over one pixel as in :func:`draw_crack`."""
    x = torch.as_tensor(image)
    h, w = x.shape[-2:]
    points = hairline.points
    outside = _distance_to_band((h, w), points, hairline.widths() / 2)
    coverage = np.clip(0.5 - outside, 0.0, 1.0)
    mask = outside <= 0
    inside = (points[:, 0] > -0.5) & (points[:, 0] < h - 0.5) & (points[:, 1] > -0.5) & (points[:, 1] < w - 0.5)
    on_line = np.rint(points[inside]).astype(int)
    mask[on_line[:, 0], on_line[:, 1]] = True
    coverage[mask] = np.maximum(coverage[mask], 0.5)
    out = x * (1.0 - hairline.depth * torch.from_numpy(coverage).to(x.dtype))[None]
    return out, mask
