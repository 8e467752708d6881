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


def _distance_to_line(shape: tuple[int, int], geometry: CrackGeometry) -> np.ndarray:
    """(H, W) distance from every pixel centre to the nearest point of the centre line (a dense
    polyline of it: its error is below 0.01 px at the default step)."""
    h, w = shape
    points = geometry.centre_line()
    reach = geometry.width_px / 2 + 2
    y0, y1 = max(int(points[:, 0].min() - reach), 0), min(int(points[:, 0].max() + reach) + 2, h)
    x0, x1 = max(int(points[:, 1].min() - reach), 0), min(int(points[:, 1].max() + reach) + 2, w)
    dist = np.full(shape, np.inf)
    if y0 >= y1 or x0 >= x1:
        return dist
    yy, xx = np.mgrid[y0:y1, x0:x1]
    best = np.full(yy.shape, np.inf)
    for chunk in np.array_split(points, max(len(points) // 256, 1)):
        d2 = (yy[..., None] - chunk[:, 0]) ** 2 + (xx[..., None] - chunk[:, 1]) ** 2
        best = np.minimum(best, d2.min(-1))
    dist[y0:y1, x0:x1] = np.sqrt(best)
    return dist


def crack_geometry_mask(shape: tuple[int, int], geometry: CrackGeometry) -> np.ndarray:
    """(H, W) bool: the pixels whose centres lie within ``width_px / 2`` of the centre line."""
    return _distance_to_line(shape, geometry) <= geometry.width_px / 2


def draw_crack(image, geometry: CrackGeometry, depth: float = 0.6) -> tuple[torch.Tensor, np.ndarray]:
    """(image (C, H, W) with the crack darkened in, its mask (H, W) bool) for an image in [0, 1]."""
    if not 0 < depth <= 1:
        raise InputError(f"crack depth={depth!r} must be in (0, 1]")
    x = torch.as_tensor(image)
    dist = _distance_to_line(tuple(x.shape[-2:]), geometry)
    coverage = np.clip(geometry.width_px / 2 - dist + 0.5, 0.0, 1.0)
    out = x * (1.0 - depth * torch.from_numpy(coverage).to(x.dtype))[None]
    return out, dist <= geometry.width_px / 2
