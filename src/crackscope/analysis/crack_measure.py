"""Crack measurements from a binary crack mask: connected components, skeleton length and width.

:func:`measure_cracks` is a pure function of an (H, W) mask (and an optional pixel size); it knows
nothing about the model that made the mask. Definitions (all in pixels, pixel centres one unit
apart; millimetres are the same numbers times ``mm_per_pixel``, areas times its square):

* **Component**: a set of crack pixels connected through any of their 8 neighbours (edges or
  corners), ``scipy.ndimage.label`` with a 3 x 3 structuring element.
* **Skeleton**: ``skimage.morphology.skeletonize(method="lee")`` (Lee's thinning; Zhang's, the
  default, erases some bands at 45 degrees, 3 or 7 px wide, to a single pixel) of the whole mask, a
  one-pixel-wide centre line with the topology of the mask; each component holds its own part.
* **Length** (``length_px``): the length of the skeleton as a chain of pixel centres, by the
  corner-count estimator of Vossepoel & Smeulders (1982): 0.980 per axis step (to a horizontal or
  vertical neighbour), 1.406 per diagonal step, less 0.091 per corner (a skeleton pixel with two
  steps that are not in line). A diagonal pair of skeleton pixels that is also joined through a
  third at the corner is not a step (the chain goes round the corner, 1 + 1). For a branched crack
  it is the total length of all its branches. Counting steps as 1 and sqrt(2) instead makes a
  straight line up to 8 % too long (at 22.5 degrees to the grid; a circle 5.5 %); the corner count
  takes that bias out, to about 2 % at any angle (a straight line of n pixels along a row measures
  0.98 (n - 1), along a diagonal 1.406 (n - 1): the estimator trades the exact axes for every
  other angle). It is measured between the centres of the end pixels, and thinning may stop up to
  about half the crack's width short of each tip, so it is shorter than the tip-to-tip length by
  1 px plus up to one width. Skeleton spurs from ragged mask borders add to it.
* **Width** at a skeleton pixel: ``2 * d - 1``, with ``d`` the Euclidean distance transform
  (``scipy.ndimage.distance_transform_edt``): the distance from the pixel's centre to the centre of
  the nearest background pixel. The crack's border lies half a pixel before that centre, so the
  local half width is ``d - 1/2``: a 3-pixel-wide bar measures 3 and a 1-pixel line 1. A skeleton
  pixel that sits off the crack's middle line (by up to half a pixel: always where the width is
  an even number of pixels along a row or column, often where the crack runs obliquely to the
  grid) reads up to 1 px less. ``max_width_px`` and ``mean_width_px`` are the maximum and the
  mean over the component's skeleton pixels, so the maximum is the better estimate of a crack's
  width; the mean reads up to about 0.8 px low on oblique cracks (3-px bands at 10-30 degrees:
  2.2-2.4). Tips, where the skeleton ends near the border, count with their smaller widths.
* **Area** (``area_px``): the number of crack pixels of the component.
* **Bounding box** ``y0, x0, y1, x1``: first row and column, and one past the last (so the box
  is ``mask[y0:y1, x0:x1]``, ``y1 - y0`` rows high).

Components are sorted by length, longest first (ties: larger area first, then top-left first),
and numbered from 1 in that order (``index``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from crackscope.errors import InputError

__all__ = ["CONNECTIVITY", "CRACK_COLUMNS", "MM_COLUMNS", "measure_cracks", "crack_summary", "check_mm_per_pixel"]

CONNECTIVITY = 8
CRACK_COLUMNS = ("index", "length_px", "max_width_px", "mean_width_px", "area_px", "y0", "x0", "y1", "x1")
MM_COLUMNS = ("length_mm", "max_width_mm", "mean_width_mm", "area_mm2")  # present when mm_per_pixel is given
_EIGHT = np.ones((3, 3), dtype=bool)


def check_mm_per_pixel(mm_per_pixel, name: str = "mm_per_pixel") -> float | None:
    """``mm_per_pixel`` as a float, or None; :class:`InputError` unless it is finite and > 0."""
    if mm_per_pixel is None:
        return None
    try:
        value = float(mm_per_pixel)
    except (TypeError, ValueError):
        raise InputError(f"{name} {mm_per_pixel!r} must be a positive number of millimetres per pixel") from None
    if isinstance(mm_per_pixel, bool) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} {mm_per_pixel!r} must be a positive number of millimetres per pixel")
    return value


def _as_mask(mask) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InputError(f"crack mask of shape {m.shape} is not (H, W)")
    if m.dtype.kind == "b":
        return m
    if m.dtype.kind in "iu":
        return m != 0
    raise InputError(
        f"crack mask of dtype {m.dtype} is not boolean or integer; threshold probabilities first (mask = p > t)"
    )


# Vossepoel & Smeulders (1982), "Vector code probability and metrication error in the representation
# of straight lines of finite length", Computer Graphics and Image Processing 20: the corner-count
# length estimator of a chain of n_e axis steps, n_o diagonal steps and n_c corners.
AXIS_STEP, DIAGONAL_STEP, CORNER = 0.980, 1.406, 0.091
_DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))  # k and k + 4 opposite


def _edges(skeleton: np.ndarray) -> np.ndarray:
    """(8, H, W) bool: the skeleton's chain steps from each pixel in each of :data:`_DIRECTIONS`.
    Every pair of 8-neighbouring skeleton pixels is a step, except a diagonal pair also joined
    through a skeleton pixel at the corner (the chain then goes round the corner, 1 + 1)."""
    h, w = skeleton.shape
    p = np.pad(skeleton, 1)

    def at(dy, dx):
        return p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    edges = np.empty((8, h, w), dtype=bool)
    for k, (dy, dx) in enumerate(_DIRECTIONS):
        e = skeleton & at(dy, dx)
        if dy and dx:
            e &= ~at(dy, 0) & ~at(0, dx)
        edges[k] = e
    return edges


def _chain_lengths(skeleton: np.ndarray) -> np.ndarray:
    """Per skeleton pixel, its share of the skeleton's length by the corner-count estimator
    (:data:`AXIS_STEP` per axis step and :data:`DIAGONAL_STEP` per diagonal step, each step counted
    at one of its two pixels, less :data:`CORNER` at each pixel of two steps that turns)."""
    edges = _edges(skeleton)
    # steps to the right and down (axis), down-right and down-left (diagonal): each step once
    length = AXIS_STEP * (edges[0].astype(np.float64) + edges[2]) + DIAGONAL_STEP * (
        edges[1].astype(np.float64) + edges[3]
    )
    degree = edges.sum(axis=0)
    straight = np.zeros_like(skeleton)
    for k in range(4):
        straight |= edges[k] & edges[k + 4]
    return length - CORNER * ((degree == 2) & ~straight)


def measure_cracks(mask, mm_per_pixel: float | None = None) -> list[dict]:
    """The crack components of an (H, W) mask (bool, or integer with nonzero = crack), longest
    first: one dict per component with ``index`` (1 = longest), ``length_px``, ``max_width_px``,
    ``mean_width_px``, ``area_px`` and the bounding box ``y0, x0, y1, x1`` (end exclusive); with
    ``mm_per_pixel`` also ``length_mm``, ``max_width_mm``, ``mean_width_mm`` and ``area_mm2``.
    The definitions are in the module docstring. An empty mask gives ``[]``."""
    from skimage.morphology import skeletonize

    m = _as_mask(mask)
    mm = check_mm_per_pixel(mm_per_pixel)
    labels, n = ndimage.label(m, structure=_EIGHT)
    if n == 0:
        return []
    skeleton = skeletonize(m, method="lee")  # Zhang's default erases 45-degree bands 3 or 7 px wide
    width = 2.0 * ndimage.distance_transform_edt(m) - 1.0  # 0 -> -1 off the mask; only crack pixels are read
    on = labels[skeleton]
    length = np.bincount(on, weights=_chain_lengths(skeleton)[skeleton], minlength=n + 1)[1:]
    count = np.bincount(on, minlength=n + 1)[1:]
    width_sum = np.bincount(on, weights=width[skeleton], minlength=n + 1)[1:]
    index = np.arange(1, n + 1)
    width_max = np.asarray(ndimage.maximum(width, np.where(skeleton, labels, 0), index), dtype=np.float64)
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    if (count == 0).any():  # thinning keeps every component's topology, so never; a guard all the same
        whole = np.asarray(ndimage.maximum(width, labels, index), dtype=np.float64)
        width_max = np.where(count > 0, width_max, whole)
        width_sum = np.where(count > 0, width_sum, whole)
    mean = width_sum / np.maximum(count, 1)
    cracks = []
    for k, (ys, xs) in enumerate(ndimage.find_objects(labels)):
        row = {
            "index": 0,
            "length_px": float(length[k]),
            "max_width_px": float(width_max[k]),
            "mean_width_px": float(mean[k]),
            "area_px": int(area[k]),
            "y0": int(ys.start),
            "x0": int(xs.start),
            "y1": int(ys.stop),
            "x1": int(xs.stop),
        }
        if mm is not None:
            row["length_mm"] = row["length_px"] * mm
            row["max_width_mm"] = row["max_width_px"] * mm
            row["mean_width_mm"] = row["mean_width_px"] * mm
            row["area_mm2"] = row["area_px"] * mm * mm
        cracks.append(row)
    cracks.sort(key=lambda c: (-c["length_px"], -c["area_px"], c["y0"], c["x0"]))
    for i, c in enumerate(cracks, 1):
        c["index"] = i
    return cracks


def crack_summary(cracks: list[dict], mm_per_pixel: float | None = None, largest: int = 5) -> dict:
    """What a report says about the components of :func:`measure_cracks`: ``count``, total length
    and area, the widest width, and the ``largest`` longest components in full."""
    mm = check_mm_per_pixel(mm_per_pixel)
    out = {
        "connectivity": CONNECTIVITY,
        "count": len(cracks),
        "total_length_px": float(sum(c["length_px"] for c in cracks)),
        "total_area_px": int(sum(c["area_px"] for c in cracks)),
        "max_width_px": float(max((c["max_width_px"] for c in cracks), default=0.0)),
        "mm_per_pixel": mm,
    }
    if mm is not None:
        out["total_length_mm"] = out["total_length_px"] * mm
        out["total_area_mm2"] = out["total_area_px"] * mm * mm
        out["max_width_mm"] = out["max_width_px"] * mm
    out["largest"] = [dict(c) for c in cracks[:largest]]
    return out
