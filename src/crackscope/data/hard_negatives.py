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
* ``paint`` -- a road marking: a bright white or yellow straight band 6-24 px wide with sharp edges;
* ``text`` -- a date stamp, watermark or an inspector's marker or chalk writing: a line of 3-20
  characters 8-28 px high in black, grey, red, blue or white, at any angle;
* ``ruler`` -- a tape measure or crack gauge laid on the surface: an opaque yellow, white or grey
  band 12-40 px wide from a tip inside the crop to its border, with dark tick marks every 4-10 px
  along one edge (every fifth one longer).

The last two are what a segmenter trained on close-ups marked most often on the DeepCrack
validation photos: a tape measure beside the crack and the photographer's watermark.

Brightness changes are multiplicative (``image * (1 - depth * coverage)``, coverage in [0, 1]),
so texture shows through as on a real surface; paint, text and rulers blend towards their colour. Coverage is
a smooth function of the signed distance to the shape, so edges are antialiased.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from crackscope.errors import InputError

KINDS = ("joint", "edge", "shadow", "stain", "tyre", "paint", "text", "ruler")
LINE_KINDS = KINDS[:6]  # the kinds before text and rulers (what configs trained before them drew)
_TEXT_CHARACTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-./:()#"
_TEXT_COLOURS = {  # RGB in [0, 1]
    "black": (0.05, 0.05, 0.05),
    "grey": (0.3, 0.3, 0.3),
    "red": (0.8, 0.1, 0.1),
    "blue": (0.1, 0.2, 0.7),
    "white": (0.95, 0.95, 0.95),
}
_RULER_COLOURS = {"yellow": (0.92, 0.8, 0.2), "white": (0.93, 0.93, 0.9), "grey": (0.65, 0.66, 0.68)}


def _ramp(distance: torch.Tensor, half_width: float, soft_px: float) -> torch.Tensor:
    """Coverage in [0, 1] of a band |distance| <= half_width whose border is blurred over ``soft_px``
    (a linear ramp centred on the border; soft_px -> 0 gives a sharp, antialiased edge)."""
    soft = max(float(soft_px), 1.0)
    return ((half_width - distance.abs()) / soft + 0.5).clamp(0.0, 1.0)


def _line(h: int, w: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, float, tuple[float, float]]:
    """A random straight line through the crop: every pixel's signed distance to it and its position
    along it from a point on it (both (H, W), in pixels), its angle and that point (row, column)."""
    theta = float(rng.uniform(0, math.pi))
    cy, cx = float(rng.uniform(0.2, 0.8) * h), float(rng.uniform(0.2, 0.8) * w)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    # unit normal (sin, -cos) of direction (cos, sin) in (x, y)
    d = (xx - cx) * math.sin(theta) - (yy - cy) * math.cos(theta)
    along = (xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta)
    return d, along, theta, (cy, cx)


def _darken(image: torch.Tensor, coverage: torch.Tensor, depth: float) -> torch.Tensor:
    return image * (1.0 - depth * coverage)[None]


def _colour(rgb: tuple[float, float, float], channels: int) -> torch.Tensor:
    """(C, 1, 1) colour for an RGB or grey image (grey: the luminance)."""
    if channels == 3:
        return torch.tensor(rgb).view(3, 1, 1)
    return torch.tensor([0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]]).view(1, 1, 1)


def _text_coverage(h: int, w: int, rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
    """Coverage (H, W) in [0, 1] of a random line of text (Pillow's built-in font) and its geometry."""
    from PIL import Image, ImageDraw, ImageFont

    height = float(rng.uniform(8.0, 28.0))
    n = int(rng.integers(3, 21))
    text = "".join(_TEXT_CHARACTERS[int(i)] for i in rng.integers(len(_TEXT_CHARACTERS), size=n))
    angle = float(rng.uniform(-math.pi, math.pi)) if rng.random() < 0.5 else float(rng.uniform(-0.2, 0.2))
    ay, ax = float(rng.uniform(0.1, 0.9) * h), float(rng.uniform(0.1, 0.9) * w)
    bold = int(rng.random() < 0.3)
    layer = Image.new("L", (w, h), 0)
    ImageDraw.Draw(layer).text(
        (ax, ay), text, fill=255, font=ImageFont.load_default(height), anchor="lm", stroke_width=bold, stroke_fill=255
    )
    # counter-clockwise on screen by angle: PIL turns by degrees counter-clockwise about ``center``
    layer = layer.rotate(math.degrees(angle), resample=Image.BILINEAR, center=(ax, ay))
    coverage = torch.from_numpy(np.asarray(layer, dtype=np.float32) / 255.0)
    return coverage, {"text": text, "height_px": height, "angle_rad": angle, "anchor": (ay, ax), "bold": bool(bold)}


def draw_hard_negative(
    image: torch.Tensor, rng: np.random.Generator, kind: str | None = None, kinds: tuple[str, ...] = KINDS
) -> tuple[torch.Tensor, dict]:
    """``(image with one hard negative drawn in, {"kind": ..., and its geometry})`` for a (C, H, W)
    float image in [0, 1]; ``kind`` one of :data:`KINDS`, or drawn uniformly from ``kinds`` when
    ``None``."""
    if kind is None:
        bad = [k for k in kinds if k not in KINDS]
        if bad or not kinds:
            raise InputError(f"hard negative kinds {list(kinds)!r}: each must be one of {', '.join(KINDS)}")
        kind = kinds[int(rng.integers(len(kinds)))]
    if kind not in KINDS:
        raise InputError(f"hard negative kind {kind!r} is not one of {', '.join(KINDS)}")
    c, h, w = image.shape
    x = image.float()
    if kind == "joint":
        d, along, theta, centre = _line(h, w, rng)
        width = float(rng.uniform(1.5, 8.0))
        depth = float(rng.uniform(0.35, 0.8))
        out = _darken(x, _ramp(d, width / 2, 1.0), depth)
        info = {"width_px": width, "depth": depth, "angle_rad": theta, "centre": centre}
    elif kind == "edge":
        d, along, theta, centre = _line(h, w, rng)
        depth = float(rng.uniform(0.1, 0.35))
        out = _darken(x, (d / 1.0 + 0.5).clamp(0, 1), depth)  # the side d > 0 darker
        seam = bool(rng.random() < 0.5)
        if seam:
            out = _darken(out, _ramp(d, 0.75, 1.0), float(rng.uniform(0.3, 0.6)))
        info = {"depth": depth, "seam": seam, "angle_rad": theta, "centre": centre}
    elif kind == "shadow":
        d, along, theta, centre = _line(h, w, rng)
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
        d, along, theta, centre = _line(h, w, rng)
        curvature = float(rng.uniform(-1.0, 1.0)) / (4.0 * max(h, w))  # radius >= 4 crop sides
        width = float(rng.uniform(15.0, 45.0))
        depth = float(rng.uniform(0.15, 0.45))
        out = _darken(x, _ramp(d - curvature * along**2, width / 2, float(rng.uniform(3.0, 8.0))), depth)
        info = {"width_px": width, "depth": depth, "curvature_per_px": curvature, "angle_rad": theta, "centre": centre}
    elif kind == "text":
        coverage, info = _text_coverage(h, w, rng)
        name = list(_TEXT_COLOURS)[int(rng.integers(len(_TEXT_COLOURS)))]
        opacity = float(rng.uniform(0.7, 1.0))
        cover = opacity * coverage[None]
        out = x * (1 - cover) + _colour(_TEXT_COLOURS[name], c) * cover
        info = {**info, "colour": name, "opacity": opacity}
    elif kind == "ruler":
        d, along, theta, tip = _line(h, w, rng)  # along: from the tip, outwards
        width = float(rng.uniform(12.0, 40.0))
        name = list(_RULER_COLOURS)[int(rng.integers(len(_RULER_COLOURS)))]
        band = _ramp(d, width / 2, 1.0) * (along + 0.5).clamp(0.0, 1.0)
        out = x * (1 - band[None]) + _colour(_RULER_COLOURS[name], c) * band[None]
        spacing = float(rng.uniform(4.0, 10.0))
        k = torch.round(along / spacing)  # the nearest tick, 1 px wide, antialiased
        tick = (1.0 - (along - k * spacing).abs()).clamp(0.0, 1.0)
        length = torch.where(k % 5 == 0, 0.55 * width, 0.3 * width)
        from_edge = d + width / 2  # ticks hang from the edge d = -width / 2 into the band
        ticks = tick * ((length - from_edge).clamp(0.0, 1.0)) * (from_edge >= 0) * (along >= 0.5 * spacing) * band
        out = out * (1 - 0.85 * ticks[None])
        info = {"width_px": width, "tick_spacing_px": spacing, "colour": name, "angle_rad": theta, "centre": tip}
    else:  # paint
        d, along, theta, centre = _line(h, w, rng)
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
