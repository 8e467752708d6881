"""Sliced inference: a segmenter run on overlapping windows of a large image, blended without seams.

**Windows.** ``window`` x ``window`` squares on a grid of stride ``S = window - o`` along each axis,
``o`` the overlap in pixels (0 <= o <= window / 2). An axis of ``side`` pixels gets
``n = 1 + ceil(max(side - window, 0) / S)`` windows starting at 0, S, ..., (n - 1) S; the image is
reflect-padded at the bottom and right to the canvas side ``window + (n - 1) S`` (less than S
pixels, or up to the window for an image smaller than one window), segmented, and the result is
cropped back. Nothing is refused for its size: a 20 x 30 image is one reflect-padded window.

**Blending.** Window k weighs its pixels by a separable profile ``w_k(y) w_k(x)``: 1, except over
each overlap it shares with a neighbour, where it falls as a raised cosine,
``cos^2(pi/2 (j + 1/2) / o)`` for the j-th pixel of the overlap, while the neighbour rises as
``sin^2`` of the same angle. The two sum to 1 at every pixel of the overlap, and the sides at the
canvas border are not tapered (no window there to hand over to), so along each axis the profiles
are a **partition of unity**, and so are their products in 2-D: ``sum_k w_k = 1`` on the whole
canvas. The blended probability ``sum_k w_k p_k / sum_k w_k`` (the division only removes float
rounding) is continuous across window borders: a window's edge pixels, where the segmenter lacks
context, get a weight near 0, and the handover is smooth. ``o <= window / 2`` keeps a window's two
ramps apart.

**Overlap 0** is plain non-overlapping tiling, as :mod:`crackscope.data.tiles` cuts it: windows
every ``window`` pixels, the last one aligned to the border (no padding unless the image is smaller
than one window), each pixel taken from the window owning its cell ``[k window, (k+1) window)``.
The weight is 1 on that cell and 0 (left out) elsewhere, so blending is exactly that stitching.

**Subsets.** :func:`blend_windows` accumulates the windows it is given in index order and only
over each window's *support* (where its weight is > 0). A pixel whose covering windows were all
segmented therefore gets bit for bit the value of segmenting every window (the same terms, added
in the same order), provided the segmenter returns the same probabilities for a window whatever
else is in its batch. The cascade (:mod:`crackscope.deploy.cascade`) uses this: it segments the
windows whose support meets a flagged tile, so inside flagged tiles its mask is full
segmentation's. It keeps more than those tiles: every pixel whose covering windows all ran
(:func:`complete_pixels`) already holds its final value, at no further cost.

:func:`resample` resizes images and probability maps for ``--scale`` (bilinear, antialiased when
shrinking).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from crackscope.data.tiles import RowMajorGrid, box_counts, tile_starts
from crackscope.errors import InputError, require_positive_int

__all__ = [
    "DEFAULT_OVERLAP",
    "MAX_OVERLAP",
    "WindowPlan",
    "overlap_pixels",
    "plan_windows",
    "ramp",
    "pad_to",
    "resample",
    "blend_windows",
    "segment_windows",
    "blend_probabilities",
    "windows_touching",
    "windows_meeting_boxes",
    "complete_pixels",
]

DEFAULT_OVERLAP = 0.25  # of the window side
MAX_OVERLAP = 0.5


def ramp(o: int) -> np.ndarray:
    """(o,) float64 rising raised cosine ``sin^2(pi/2 (j + 1/2) / o)``; reversed it is the falling
    ``cos^2`` one, and ``ramp(o) + ramp(o)[::-1] == 1``."""
    return np.sin(0.5 * np.pi * (np.arange(o) + 0.5) / o) ** 2


def overlap_pixels(window: int, overlap: float) -> int:
    """The overlap in pixels of a fraction ``overlap`` in [0, 0.5] of ``window`` (rounded)."""
    window = require_positive_int("window", window)
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float, np.floating, np.integer)):
        raise InputError(f"--overlap {overlap!r} must be a fraction of the window in [0, {MAX_OVERLAP}]")
    if not (math.isfinite(float(overlap)) and 0.0 <= float(overlap) <= MAX_OVERLAP):
        raise InputError(f"--overlap {overlap} must be a fraction of the window in [0, {MAX_OVERLAP}]")
    return min(int(round(float(overlap) * window)), window // 2)


def _axis(side: int, window: int, o: int) -> tuple[int, list[int], list[tuple[int, int]], list[np.ndarray]]:
    """Canvas side, window starts, supports (start, end) in canvas coordinates and 1-D profiles."""
    if o == 0:
        canvas = max(side, window)
        starts = tile_starts(canvas, window)
        supports, profiles = [], []
        for k, s in enumerate(starts):
            a, b = k * window, min((k + 1) * window, canvas)
            profile = np.zeros(window, dtype=np.float32)
            profile[a - s : b - s] = 1.0
            supports.append((a, b))
            profiles.append(profile)
        return canvas, starts, supports, profiles
    stride = window - o
    n = 1 + -(-max(side - window, 0) // stride)
    canvas = window + (n - 1) * stride
    starts = [k * stride for k in range(n)]
    r = ramp(o)
    profiles = []
    for k in range(n):
        profile = np.ones(window, dtype=np.float64)
        if k > 0:
            profile[:o] = r
        if k < n - 1:
            profile[window - o :] = r[::-1]
        profiles.append(profile.astype(np.float32))
    return canvas, starts, [(s, s + window) for s in starts], profiles


@dataclass(frozen=True)
class WindowPlan(RowMajorGrid):
    """The windows of an ``height`` x ``width`` image (module docstring), row-major: window k starts
    at ``origins[k]`` on the reflect-padded ``canvas`` and weighs its pixels by ``weight(k)``."""

    height: int
    width: int
    window: int
    overlap: int
    canvas: tuple[int, int]
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    y_supports: tuple[tuple[int, int], ...]
    x_supports: tuple[tuple[int, int], ...]
    y_profiles: tuple[np.ndarray, ...]
    x_profiles: tuple[np.ndarray, ...]

    def supports(self) -> np.ndarray:
        """(N, 4) int64 (y0, y1, x0, x1): where each window's weight is > 0, in canvas coordinates
        (the whole window; its cell for overlap 0)."""
        ys = np.asarray(self.y_supports, np.int64)
        xs = np.asarray(self.x_supports, np.int64)
        r, c = np.meshgrid(np.arange(self.rows), np.arange(self.cols), indexing="ij")
        r, c = r.ravel(), c.ravel()
        return np.stack([ys[r, 0], ys[r, 1], xs[c, 0], xs[c, 1]], axis=1)

    def weight(self, k: int) -> np.ndarray:
        """(window, window) float32 blending weight of window k."""
        r, c = divmod(int(k), self.cols)
        return np.outer(self.y_profiles[r], self.x_profiles[c])

    def weight_sum(self) -> np.ndarray:
        """(canvas H, canvas W) float64: the sum of every window's weight (1 everywhere: the
        partition of unity of the module docstring)."""
        total = np.zeros(self.canvas, dtype=np.float64)
        for k, (y, x) in enumerate(self.origins.tolist()):
            total[y : y + self.window, x : x + self.window] += self.weight(k)
        return total

    def describe(self) -> str:
        if self.overlap == 0:
            return f"{self.window}-px windows, non-overlapping (last row / column aligned to the border), stitched"
        return (
            f"{self.window}-px windows overlapping by {self.overlap} px (stride {self.window - self.overlap}), "
            f"raised-cosine blended; image reflect-padded to {self.canvas[1]} x {self.canvas[0]}"
        )


def plan_windows(height: int, width: int, window: int, overlap: float = DEFAULT_OVERLAP) -> WindowPlan:
    """The :class:`WindowPlan` of an image; ``overlap`` is a fraction of ``window`` in [0, 0.5]."""
    height, width = require_positive_int("height", height), require_positive_int("width", width)
    o = overlap_pixels(window, overlap)
    ch, ys, ysup, yprof = _axis(height, window, o)
    cw, xs, xsup, xprof = _axis(width, window, o)
    return WindowPlan(
        height, width, window, o, (ch, cw), tuple(ys), tuple(xs), tuple(ysup), tuple(xsup), tuple(yprof), tuple(xprof)
    )


def pad_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A (C, h, w) tensor reflect-padded at the bottom and right to (C, height, width) (numpy's
    ``reflect``, repeated for pads larger than the image; a 1-pixel side is repeated)."""
    c, h, w = image.shape
    if (h, w) == (height, width):
        return image
    if h > height or w > width:
        raise InputError(f"pad_to: a {w} x {h} image does not fit in {width} x {height}")
    padded = np.pad(image.numpy(), ((0, 0), (0, height - h), (0, width - w)), mode="reflect")
    return torch.from_numpy(np.ascontiguousarray(padded))


def resample(x: torch.Tensor | np.ndarray, height: int, width: int) -> torch.Tensor:
    """A (C, h, w) or (h, w) float image resized to ``height`` x ``width``: bilinear
    (``align_corners=False``), antialiased along an axis that shrinks; unchanged at its own size."""
    x = torch.as_tensor(x).float()
    if tuple(x.shape[-2:]) == (height, width):
        return x
    squeeze = x.ndim == 2
    y = x[None, None] if squeeze else x[None]
    shrink = height < x.shape[-2] or width < x.shape[-1]
    y = F.interpolate(y, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    return y[0, 0] if squeeze else y[0]


def windows_touching(plan: WindowPlan, region: np.ndarray) -> np.ndarray:
    """(M,) int64 indices, in order, of the windows whose support meets a boolean (H, W) ``region``
    of the image (summed-area table; the padding holds no region). For a region made of rectangles,
    :func:`windows_meeting_boxes` gives the same without a per-pixel table."""
    m = np.zeros(plan.canvas, dtype=bool)
    m[: plan.height, : plan.width] = region
    return np.flatnonzero(box_counts(m, plan.supports()))


class _Lattice:
    """The canvas cut along every edge of the given (N, 4) (y0, y1, x0, x1) rectangles (and its own
    border) into cells, on which sums over rectangles are piecewise constant: ``ys`` / ``xs`` the
    cut positions (from 0 to the canvas side), cell (i, j) = [ys[i], ys[i+1]) x [xs[j], xs[j+1])."""

    def __init__(self, canvas: tuple[int, int], *rects: np.ndarray):
        edges = [np.asarray(r, np.int64).reshape(-1, 4) for r in rects]
        self.ys = np.unique(np.concatenate([[0, canvas[0]], *(np.clip(e[:, :2], 0, canvas[0]).ravel() for e in edges)]))
        self.xs = np.unique(np.concatenate([[0, canvas[1]], *(np.clip(e[:, 2:], 0, canvas[1]).ravel() for e in edges)]))

    def cover(self, rects: np.ndarray) -> np.ndarray:
        """(cells along y, cells along x) int64: how many of ``rects`` cover each cell."""
        r = np.asarray(rects, np.int64).reshape(-1, 4)
        iy = np.searchsorted(self.ys, np.clip(r[:, :2], 0, self.ys[-1]))
        ix = np.searchsorted(self.xs, np.clip(r[:, 2:], 0, self.xs[-1]))
        d = np.zeros((len(self.ys), len(self.xs)), dtype=np.int64)
        for a, b, sign in (
            (iy[:, 0], ix[:, 0], 1),
            (iy[:, 0], ix[:, 1], -1),
            (iy[:, 1], ix[:, 0], -1),
            (iy[:, 1], ix[:, 1], 1),
        ):
            np.add.at(d, (a, b), sign)
        return d.cumsum(0).cumsum(1)[:-1, :-1]

    def to_pixels(self, cells: np.ndarray) -> np.ndarray:
        """A per-cell array repeated out to the canvas's pixels."""
        return np.repeat(np.repeat(cells, np.diff(self.ys), axis=0), np.diff(self.xs), axis=1)


def windows_meeting_boxes(plan: WindowPlan, boxes: np.ndarray) -> np.ndarray:
    """(M,) int64 indices, in order, of the windows whose support meets any of the (N, 4) (y0, y1,
    x0, x1) pixel ``boxes`` (clipped to the image; the padding holds none): :func:`windows_touching`
    of the boxes' union, counted on the lattice of the boxes' and windows' edges."""
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4).copy()
    boxes[:, :2] = np.clip(boxes[:, :2], 0, plan.height)
    boxes[:, 2:] = np.clip(boxes[:, 2:], 0, plan.width)
    boxes = boxes[(boxes[:, 1] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 2])]
    supports = plan.supports()
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    lattice = _Lattice(plan.canvas, supports, boxes)
    inside = lattice.cover(boxes) > 0
    sat = np.zeros((inside.shape[0] + 1, inside.shape[1] + 1), dtype=np.int64)
    sat[1:, 1:] = inside.cumsum(0).cumsum(1)
    y0, y1 = (np.searchsorted(lattice.ys, supports[:, k]) for k in (0, 1))
    x0, x1 = (np.searchsorted(lattice.xs, supports[:, k]) for k in (2, 3))
    return np.flatnonzero(sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0])


def complete_pixels(plan: WindowPlan, indices: np.ndarray) -> np.ndarray:
    """(canvas H, canvas W) bool: the pixels every window covering which (its support holds the
    pixel) is among ``indices``; there blending ``indices`` gives what blending every window gives.
    Counted on the lattice of the windows' edges (coverage is constant between them): windows
    covering each cell, all of them against the given."""
    supports = plan.supports()
    lattice = _Lattice(plan.canvas, supports)
    given = lattice.cover(supports[np.asarray(indices, dtype=np.int64)])
    return lattice.to_pixels(given == lattice.cover(supports))


def segment_windows(
    canvas_image: torch.Tensor,
    plan: WindowPlan,
    segmenter: Callable[[torch.Tensor], torch.Tensor],
    indices: np.ndarray | None = None,
    batch_size: int = 64,
) -> dict[int, np.ndarray]:
    """The segmenter's (window, window) float32 probability for each window ``indices`` (all when
    ``None``) of the padded (C, *plan.canvas) ``canvas_image``, in batches of ``batch_size``, by
    window index."""
    batch_size = require_positive_int("batch", batch_size)
    if tuple(canvas_image.shape[-2:]) != plan.canvas:
        raise InputError(
            f"segment_windows: an image of {tuple(canvas_image.shape[-2:])} is not the canvas {plan.canvas}"
        )
    indices = np.arange(len(plan)) if indices is None else np.asarray(indices, dtype=np.int64)
    origins, t = plan.origins, plan.window
    out: dict[int, np.ndarray] = {}
    with torch.inference_mode():
        for s in range(0, len(indices), batch_size):
            chunk = indices[s : s + batch_size].tolist()
            batch = torch.stack([canvas_image[:, y : y + t, x : x + t] for y, x in origins[chunk].tolist()])
            probs = torch.as_tensor(segmenter(batch)).float().reshape(len(chunk), t, t).cpu().numpy()
            out.update(zip(chunk, probs))
    return out


def blend_probabilities(plan: WindowPlan, probabilities: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Blend the windows' ``probabilities`` (window index -> (window, window) array,
    :func:`segment_windows`): the (canvas H, canvas W) float32 ``sum w_k p_k / sum w_k`` (0 where
    no given window has weight) and the weight sum ``sum w_k``. Windows are accumulated in index
    order over their supports only, so a pixel whose covering windows are all given gets the same
    bits whatever other windows are given."""
    origins, supports = plan.origins, plan.supports()
    num = np.zeros(plan.canvas, dtype=np.float32)
    den = np.zeros(plan.canvas, dtype=np.float32)
    for k in sorted(probabilities):
        p = probabilities[k]
        y, x = origins[k]
        y0, y1, x0, x1 = supports[k]
        w = plan.weight(k)[y0 - y : y1 - y, x0 - x : x1 - x]
        num[y0:y1, x0:x1] += w * p[y0 - y : y1 - y, x0 - x : x1 - x]
        den[y0:y1, x0:x1] += w
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out, den


def blend_windows(
    canvas_image: torch.Tensor,
    plan: WindowPlan,
    segmenter: Callable[[torch.Tensor], torch.Tensor],
    indices: np.ndarray | None = None,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Segment the windows ``indices`` (all when ``None``) of the padded (C, *plan.canvas)
    ``canvas_image`` in batches of ``batch_size`` and blend them: returns the (canvas H, canvas W)
    float32 probability ``sum w_k p_k / sum w_k`` (0 where no given window has weight) and the
    weight sum ``sum w_k``. Windows are accumulated in index order over their supports only
    (:func:`segment_windows`, then :func:`blend_probabilities`)."""
    return blend_probabilities(plan, segment_windows(canvas_image, plan, segmenter, indices, batch_size))
