"""Hard negatives for crack segmentation: what looks like a crack on a survey photo but is not.

Crack datasets label cracks and little else, so a segmenter trained on them has never been told
that a formwork joint, a plank edge, a shadow or a paint line is not a crack. No public labelled set
holds them; :func:`draw_hard_negative` draws one into a training crop (the image only: the mask,
which says where the cracks are, is unchanged). The kinds, each with its geometry drawn from
``rng``:

* ``joint`` -- a formwork joint, saw cut or expansion gap: a dark straight groove across the whole
  crop, 1.5-8 px wide (as thin as a hairline crack, but straight from border to border);
* ``edge`` -- a plank or slab edge: a straight step in brightness across the crop (one side 10-35 %
  darker), with a thin dark seam on it half the time;
* ``shadow`` -- a cast shadow: a half-plane 25-60 % darker, its border a soft straight penumbra
  2-15 px wide;
* ``stain`` -- oil, water or rust: a dark irregular blob 20-120 px across with soft edges;
* ``tyre`` -- a tyre mark: a dark band 15-45 px wide with soft edges along a gentle arc;
* ``paint`` -- a road marking: a bright white or yellow straight band 6-24 px wide with sharp edges.

Brightness changes are multiplicative (``image * (1 - depth * coverage)``, coverage in [0, 1]),
so texture shows through as on a real surface; paint blends towards its colour. Coverage is
a smooth function of the signed distance to the shape, so edges are antialiased.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from crackscope.errors import InputError

KINDS = ("joint", "edge", "shadow", "stain", "tyre", "paint")


def _ramp(distance: torch.Tensor, half_width: float, soft_px: float) -> torch.Tensor:
    """Coverage in [0, 1] of a band |distance| <= half_width whose border is blurred over ``soft_px``
    (a linear ramp centred on the border; soft_px -> 0 gives a sharp, antialiased edge)."""
    soft = max(float(soft_px), 1.0)
    return ((half_width - distance.abs()) / soft + 0.5).clamp(0.0, 1.0)


def _line(h: int, w: int, rng: np.random.Generator) -> tuple[torch.Tensor, float, tuple[float, float]]:
    """Signed distance (H, W) in pixels to a random straight line through the crop, its angle and
    a point on it (row, column)."""
    theta = float(rng.uniform(0, math.pi))
    cy, cx = float(rng.uniform(0.2, 0.8) * h), float(rng.uniform(0.2, 0.8) * w)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    # unit normal (sin, -cos) of direction (cos, sin) in (x, y)
    d = (xx - cx) * math.sin(theta) - (yy - cy) * math.cos(theta)
    return d, theta, (cy, cx)


def _darken(image: torch.Tensor, coverage: torch.Tensor, depth: float) -> torch.Tensor:
    return image * (1.0 - depth * coverage)[None]


def draw_hard_negative(
    image: torch.Tensor, rng: np.random.Generator, kind: str | None = None
) -> tuple[torch.Tensor, dict]:
    """``(image with one hard negative drawn in, {"kind": ..., and its geometry})`` for a (C, H, W)
    float image in [0, 1]; ``kind`` one of :data:`KINDS`, or drawn uniformly when ``None``."""
    if kind is None:
        kind = KINDS[int(rng.integers(len(KINDS)))]
    if kind not in KINDS:
        raise InputError(f"hard negative kind {kind!r} is not one of {', '.join(KINDS)}")
    c, h, w = image.shape
    x = image.float()
    if kind == "joint":
        d, theta, centre = _line(h, w, rng)
        width = float(rng.uniform(1.5, 8.0))
        depth = float(rng.uniform(0.35, 0.8))
        out = _darken(x, _ramp(d, width / 2, 1.0), depth)
        info = {"width_px": width, "depth": depth, "angle_rad": theta, "centre": centre}
    elif kind == "edge":
        d, theta, centre = _line(h, w, rng)
        depth = float(rng.uniform(0.1, 0.35))
        out = _darken(x, (d / 1.0 + 0.5).clamp(0, 1), depth)  # the side d > 0 darker
        seam = bool(rng.random() < 0.5)
        if seam:
            out = _darken(out, _ramp(d, 0.75, 1.0), float(rng.uniform(0.3, 0.6)))
        info = {"depth": depth, "seam": seam, "angle_rad": theta, "centre": centre}
    elif kind == "shadow":
        d, theta, centre = _line(h, w, rng)
        soft = float(rng.uniform(2.0, 15.0))
        depth = float(rng.uniform(0.25, 0.6))
        out = _darken(x, ((d / soft) + 0.5).clamp(0, 1), depth)
        info = {"depth": depth, "penumbra_px": soft, "angle_rad": theta, "centre": centre}
    elif kind == "stain":
        radius = float(rng.uniform(10.0, 60.0))
        cy, cx = float(rng.uniform(0, h)), float(rng.uniform(0, w))
        yy, xx = torch.meshgrid(
            torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
        )
        angle = torch.atan2(yy - cy, xx - cx)
        k = rng.integers(2, 6, size=3)
        phases, amps = rng.uniform(0, 2 * math.pi, size=3), rng.uniform(0.0, 0.25, size=3)
        wobble = 1.0 + sum(float(a) * torch.cos(int(n) * angle + float(p)) for a, n, p in zip(amps, k, phases))
        r = torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        soft = float(rng.uniform(2.0, 10.0))
        depth = float(rng.uniform(0.15, 0.5))
        out = _darken(x, ((radius * wobble - r) / soft + 0.5).clamp(0, 1), depth)
        info = {"radius_px": radius, "depth": depth, "centre": (cy, cx)}
    elif kind == "tyre":
        d, theta, centre = _line(h, w, rng)
        yy, xx = torch.meshgrid(
            torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
        )
        along = (xx - centre[1]) * math.cos(theta) + (yy - centre[0]) * math.sin(theta)
        curvature = float(rng.uniform(-1.0, 1.0)) / (4.0 * max(h, w))  # radius >= 4 crop sides
        width = float(rng.uniform(15.0, 45.0))
        depth = float(rng.uniform(0.15, 0.45))
        out = _darken(x, _ramp(d - curvature * along**2, width / 2, float(rng.uniform(3.0, 8.0))), depth)
        info = {"width_px": width, "depth": depth, "curvature_per_px": curvature, "angle_rad": theta, "centre": centre}
    else:  # paint
        d, theta, centre = _line(h, w, rng)
        width = float(rng.uniform(6.0, 24.0))
        yellow = bool(rng.random() < 0.4)
        colour = (
            torch.tensor([0.95, 0.85, 0.25] if yellow else [0.95, 0.95, 0.93])[:c] if c == 3 else torch.tensor([0.9])
        )
        opacity = float(rng.uniform(0.6, 0.95))
        cover = opacity * _ramp(d, width / 2, 1.0)[None]
        out = x * (1 - cover) + colour.view(-1, 1, 1) * cover
        info = {"width_px": width, "opacity": opacity, "yellow": yellow, "angle_rad": theta, "centre": centre}
    return out.clamp(0.0, 1.0).to(image.dtype), {"kind": kind, **info}
