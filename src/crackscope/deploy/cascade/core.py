"""The tile cascade on one image (AOIE-Net paper, Wu et al. 2025, Figure 1): :func:`inspect_image`.

A fast binary tile classifier screens every tile of a large image; the segmenter runs only on the
overlapping windows around the tiles it flags, and their outputs are blended into one
full-resolution mask. The baseline (:func:`segment_all_tiles`) segments every window and blends
the same way. Wherever every window covering a pixel ran (the cells of the flagged tiles and the
parts of their windows that no skipped window reaches) the two agree bit for bit; elsewhere the
cascade's mask is empty.

* **Scale**: ``scale`` != 1 resamples the image first (bilinear, antialiased when shrinking) and the
  probability back to the image's size at the end; tiles and windows live on the resampled image.
* **Tiles** (:mod:`crackscope.data.tiles`, the grid the classifier was trained on): T x T tiles,
  non-overlapping, with the last row and column aligned to the image border (a 544-pixel side with
  T = 64 has its last tile at 480; an image smaller than a tile is reflect-padded to one). Each
  tile owns the cell [kT, min((k+1)T, side)).
* **Windows** (:mod:`crackscope.deploy.tiling`): ``window`` x ``window`` (default T), overlapping by
  ``overlap`` of a window (default 0.25), the image reflect-padded to fit them; blended with
  raised-cosine weights that sum to 1 everywhere, so a crack crossing a window border shows no
  seam. ``overlap=0`` is the earlier non-overlapping stitching. The windows meeting a flagged cell
  run, in batches of ``batch_size``; none when nothing is flagged. The result is kept wherever it
  is final, every window covering the pixel having run (``CascadeResult.region``, a superset of the
  flagged cells); elsewhere the probability is 0.
* **Classifier**: any callable taking a float (N, C, h, w) batch of tiles in [0, 1] and returning
  (N,) crack probabilities. An optional ``channels`` attribute asks for grey (1) or RGB (3) tiles
  (default: the image's own channels). :class:`~crackscope.deploy.cascade.models.TileClassifier`
  wraps any logits function and resizes tiles to the run's input size.
* **Segmenter**: a callable (N, C, W, W) -> (N, W, W) crack probabilities, optionally with
  ``channels`` and ``threshold``; :class:`~crackscope.deploy.cascade.models.TileSegmenter` wraps a
  surface run. A segmenter with ``prepare_image`` ((C, H, W) -> (C, H, W), applied once to the
  whole image) and ``on_prepared`` (windows of the prepared image -> probabilities) is run through
  those two instead: a model with per-image standardised input is standardised with the whole
  image's statistics, not each window's.

Image arrays are float32 / float64 in [0, 1], shaped (C, H, W) with C = 1 or 3;
:func:`crackscope.data.images.check_image` refuses anything else (an integer dtype, values outside
[0, 1]) in one line: ``image / 255`` for 8 bits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crackscope.allocator import keep_large_blocks
from crackscope.data.images import check_image, read_image, to_channels
from crackscope.data.tiles import TileGrid, box_counts, extract_tiles, tile_grid
from crackscope.deploy.inspect_options import DEFAULT_TILE, MAX_SCALE, InspectOptions, inspect_options
from crackscope.deploy.tiling import (
    DEFAULT_OVERLAP,
    WindowPlan,
    blend_probabilities,
    complete_pixels,
    pad_to,
    plan_windows,
    resample,
    segment_windows,
    windows_meeting_boxes,
)
from crackscope.errors import InputError, require_positive_int

__all__ = [
    "CascadeResult",
    "inspect_image",
    "segment_all_tiles",
    "screened_windows",
    "tiles_reached",
    "final_region",
    "check_scale",
    "scaled_size",
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "MAX_SCALE",
]


def check_scale(scale, name: str = "scale") -> float:
    """``float(scale)`` if it is a finite number in (0, :data:`MAX_SCALE`], else one :class:`InputError` line."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise InputError(f"{name} {scale!r} must be a number in (0, {MAX_SCALE:g}]") from None
    if isinstance(scale, bool) or not (math.isfinite(value) and 0.0 < value <= MAX_SCALE):
        raise InputError(f"{name} {scale} must be a number in (0, {MAX_SCALE:g}] (> 1 enlarges the image)")
    return value


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The image size after ``--scale``: each side times ``scale``, rounded, at least 1 pixel."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def _map_back(a: int, side: int, scaled: int) -> int:
    """The first pixel of an axis of ``side`` pixels whose centre falls at or after pixel boundary
    ``a`` of the same axis resampled to ``scaled`` pixels: ceil(a side / scaled - 1/2), exactly."""
    return -(-(2 * a * side - scaled) // (2 * scaled))


@dataclass
class CascadeResult:
    """What :func:`inspect_image` found.

    ``probability``: (H, W) float32 crack probability at the image's own size, 0 outside
    ``region``; ``region``: (H, W) bool, where the probability is final, that of segmenting every
    window: the pixels all of whose covering windows ran, which include the cells of the flagged
    tiles (everything in ``all-tiles`` mode); ``mask``: (H, W) bool, ``probability > mask_threshold``; ``grid``: the
    classifier's tiles, on the image resampled by ``scale`` (and reflect-padded to one tile if
    smaller); ``tile_probability``: (N,) classifier crack probability per tile (NaN where no
    classifier ran: ``mode == "all-tiles"``); ``flagged``: (N,) bool, by the classifier;
    ``followed``: (N,) bool, the tiles segmented too because a crack ran into them
    (``InspectOptions.follow``); ``timings``: seconds
    (``classify_s``, ``segment_s`` (blending included), ``stitch_s`` (resampling back, masking),
    ``total_s`` (also resampling the image by ``scale``)); ``plan``: the segmentation windows
    (:class:`crackscope.deploy.tiling.WindowPlan`), of which ``windows_segmented`` ran."""

    probability: np.ndarray
    mask: np.ndarray
    grid: TileGrid
    tile_probability: np.ndarray
    flagged: np.ndarray
    timings: dict[str, float]
    mode: str
    threshold: float | None
    mask_threshold: float
    extra: dict[str, Any] = field(default_factory=dict)
    plan: WindowPlan | None = None
    windows_segmented: int = 0
    scale: float = 1.0
    scaled_size: tuple[int, int] | None = None
    region: np.ndarray | None = None
    followed: np.ndarray | None = None

    @property
    def n_tiles(self) -> int:
        return len(self.grid)

    @property
    def n_flagged(self) -> int:
        return int(self.flagged.sum())

    def scaled_cells(self) -> np.ndarray:
        """(N, 4) int64 (y0, y1, x0, x1): each tile's cell on the resampled image (clipped to it)."""
        hs, ws = self.scaled_size or self.mask.shape
        cells = self.grid.cells().copy()
        cells[:, :2] = np.minimum(cells[:, :2], hs)
        cells[:, 2:] = np.minimum(cells[:, 2:], ws)
        return cells

    def cells(self) -> np.ndarray:
        """(N, 4) int64 (y0, y1, x0, x1): each tile's cell in the image's own pixels (the pixels
        whose centres fall in its cell on the resampled image; the cells partition the image)."""
        h, w = self.mask.shape
        hs, ws = self.scaled_size or (h, w)
        c = self.scaled_cells()
        if (hs, ws) == (h, w):
            return c
        return np.stack(
            [
                _map_back(c[:, 0], h, hs),
                _map_back(c[:, 1], h, hs),
                _map_back(c[:, 2], w, ws),
                _map_back(c[:, 3], w, ws),
            ],
            axis=1,
        )

    def tile_rows(self) -> list[dict]:
        """One row per tile: row, col, y0, x0 (on the resampled image), probability (empty without a
        classifier), flagged (0/1: by the classifier), followed (0/1: segmented because a crack ran
        into it, ``InspectOptions.follow``)."""
        followed = self.followed if self.followed is not None else np.zeros(len(self.grid), bool)
        rows = []
        for (r, c), (y, x), p, f, g in zip(
            self.grid.index.tolist(),
            self.grid.origins.tolist(),
            self.tile_probability.tolist(),
            self.flagged.tolist(),
            followed.tolist(),
        ):
            rows.append(
                {
                    "row": r,
                    "col": c,
                    "y0": y,
                    "x0": x,
                    "probability": "" if np.isnan(p) else round(float(p), 6),
                    "flagged": int(f),
                    "followed": int(g),
                }
            )
        return rows

    def summary(self) -> dict:
        h, w = self.mask.shape
        plan = self.plan
        return {
            "height": h,
            "width": w,
            "megapixels": round(h * w / 1e6, 6),
            "mode": self.mode,
            "scale": self.scale,
            "scaled_size": list(self.scaled_size or (h, w)),
            "tile": self.grid.tile,
            "tile_grid": [self.grid.rows, self.grid.cols],
            "tiling": "classifier: non-overlapping tiles, last row / column aligned to the image border; "
            + ("segmenter: " + plan.describe() if plan is not None else ""),
            "window": None if plan is None else plan.window,
            "overlap_px": None if plan is None else plan.overlap,
            "windows": None if plan is None else len(plan),
            "windows_segmented": self.windows_segmented,
            "threshold": self.threshold,
            "mask_threshold": self.mask_threshold,
            "tiles": self.n_tiles,
            "flagged": self.n_flagged,
            "flagged_fraction": round(self.n_flagged / self.n_tiles, 6),
            "followed": 0 if self.followed is None else int(self.followed.sum()),
            "segmented_fraction": None if self.region is None else round(float(self.region.mean()), 6),
            "crack_pixels": int(self.mask.sum()),
            "crack_fraction": round(float(self.mask.mean()), 6),
            "timings_s": {k: round(v, 6) for k, v in self.timings.items()},
            "torch_threads": torch.get_num_threads(),
            **self.extra,
        }


def _prepared(image, channels: int | None, who: str) -> torch.Tensor:
    """An image :func:`check_image` accepted, with the ``channels`` a model asks for (default: its own)."""
    if channels is None:
        return to_channels(image, int(np.shape(image)[0]), check=False)
    return to_channels(image, channels, who, check=False)


def default_tile(classifier, tile: int | None = None) -> int:
    """``tile`` when given, else the classifier's training tile (its ``tile`` attribute: the tile its
    operating point was chosen for), else :data:`DEFAULT_TILE`."""
    return int(tile or getattr(classifier, "tile", None) or DEFAULT_TILE)


def _defaults(classifier, segmenter, tile: int, window, overlap, threshold) -> tuple[int, float, float]:
    """(window, overlap, threshold) with the unset ones filled in: the window and overlap the
    classifier's operating point was chosen for (its ``window`` / ``overlap`` attributes), else the
    segmenter's training window (its ``window``) or the tile side and :data:`DEFAULT_OVERLAP`; the
    classifier's ``threshold``, else 0.5."""
    own = [getattr(classifier, k, None) for k in ("window", "overlap", "threshold")]
    window = window or own[0] or getattr(segmenter, "window", None) or tile
    overlap = overlap if overlap is not None else own[1] if own[1] is not None else DEFAULT_OVERLAP
    threshold = threshold if threshold is not None else own[2] if own[2] is not None else 0.5
    return require_positive_int("window", window), float(overlap), float(threshold)


_KEYWORDS = (
    "tile",
    "threshold",
    "all_tiles",
    "batch_size",
    "window",
    "overlap",
    "follow",
    "follow_threshold",
    "scale",
)  # of inspect_image


def inspect_image(
    image,
    classifier: Callable | None,
    segmenter: Callable,
    options: InspectOptions | None = None,
    *,
    mask_threshold: float | None = None,
    **keywords,
) -> CascadeResult:
    """Cascade one image: classify every tile, segment the windows around the flagged ones (batched),
    blend them.

    ``options``: an :class:`~crackscope.deploy.inspect_options.InspectOptions`, of which this uses
    ``tile``, ``threshold``, ``all_tiles``, ``batch``, ``window``, ``overlap``, ``follow``,
    ``follow_threshold`` and ``scale`` (its ``runtime``, ``tta`` and ``mm_per_pixel`` are for
    loading the models and measuring the cracks). The keywords ``tile=``, ``threshold=``,
    ``all_tiles=``, ``batch_size=`` (the option ``batch``), ``window=``, ``overlap=``, ``follow=``,
    ``follow_threshold=`` and ``scale=`` set those options too, on top of ``options``. ``tile``
    left ``None``: the classifier's training tile (its ``tile`` attribute, as ``crackscope
    inspect-image`` takes it; the tile its operating point was chosen for), else 64
    (:data:`DEFAULT_TILE`).

    ``image``: an image file, or a numpy array or torch tensor of dtype float32 or float64 with
    values in [0, 1], shaped (C, H, W) with C = 1 (grey) or 3 (RGB), as :func:`read_image` returns.
    Integer arrays (such as 8-bit images of 0..255) and floats outside [0, 1] are refused with one
    :class:`InputError` line naming the dtype or range (:func:`check_image`): convert 8-bit images
    with ``image / 255``. Any size is taken: an image smaller than a tile or window is reflect-padded
    and the result cropped back.

    * ``scale``: the image is resampled by it first (bilinear; > 1 enlarges, for cracks thinner than
      the training data's) and the probability back to (H, W) at the end.
    * Tiles: ``tile`` x ``tile``, non-overlapping (:mod:`crackscope.data.tiles`); one is flagged when
      its crack probability is >= ``threshold``.
    * Defaults: ``window``, ``overlap`` and ``threshold`` left ``None`` are those the classifier's
      operating point was chosen for (``load_classifier`` reads them), else the segmenter's
      training window or ``tile``, 0.25 and 0.5 (:func:`_defaults`).
    * Segmentation (:mod:`crackscope.deploy.tiling`): ``window`` x ``window`` windows
      overlapping by ``overlap`` of a window (in [0, 0.5]; 0: stitched without overlap),
      blended with raised-cosine weights that sum to 1. Only the windows meeting a flagged tile's
      cell run (with ``scale`` != 1, also those within the resampling filter's reach of it), in
      batches of ``batch_size``. The result is that of segmenting every window wherever every
      window covering a pixel ran (``CascadeResult.region``: the flagged cells and the parts of
      their windows no skipped window reaches), and 0 elsewhere. The segmenter is never called
      when nothing is flagged.
    * Following (``follow`` rounds, cascade only): after segmenting, each tile not yet segmented
      whose cell the final mask reaches (a crack pixel inside it or within
      :data:`FOLLOW_REACH_PX` px of it, :func:`tiles_reached`) and whose crack probability is at
      least ``follow_threshold`` (hysteresis, as in Canny's edge linking) is added, its windows run, and all
      windows are blended again in index order; until no tile is reached or the rounds are spent.
      ``CascadeResult.followed`` marks those tiles. A crack that runs out of a flagged tile is
      followed instead of being cut where the classifier stopped flagging.

    ``all_tiles=True`` is the baseline: no classifier, every window segmented (``classifier`` may be
    ``None``). ``mask_threshold``: default the segmenter's ``threshold`` attribute, else 0.5.
    """
    keep_large_blocks()  # each window's layer outputs reuse the last one's pages (crackscope.allocator)
    image = read_image(image) if isinstance(image, (str, Path)) else check_image(image, "inspect_image")
    options = inspect_options(options, keywords, "inspect_image", _KEYWORDS, {"batch_size": "batch"})
    all_tiles, batch_size, scale = options.all_tiles, options.batch, options.scale
    if not all_tiles and classifier is None:
        raise InputError("a classifier is needed unless all_tiles=True")
    tile = default_tile(classifier, options.tile)
    window, overlap, threshold = _defaults(
        classifier, segmenter, tile, options.window, options.overlap, options.threshold
    )
    if not 0.0 <= threshold <= 1.0:  # the classifier's operating point
        raise InputError(f"threshold={threshold!r} must be a probability in [0, 1]")
    mask_threshold = float(getattr(segmenter, "threshold", 0.5) if mask_threshold is None else mask_threshold)
    h, w = (int(v) for v in np.shape(image)[1:])
    hs, ws = scaled_size(h, w, scale)
    plan = plan_windows(hs, ws, window, overlap)
    t_start = time.perf_counter()
    x = image if isinstance(image, torch.Tensor) else torch.as_tensor(np.asarray(image, dtype=np.float32))
    if (hs, ws) != (h, w):
        x = resample(x, hs, ws).clamp_(0.0, 1.0)
    grid = tile_grid(max(hs, tile), max(ws, tile), tile)
    t_scaled = time.perf_counter()
    if all_tiles:
        tile_prob = np.full(len(grid), np.nan, dtype=np.float32)
        flagged = np.ones(len(grid), dtype=bool)
    else:
        cls_image = pad_to(
            _prepared(x, getattr(classifier, "channels", None), "the classifier"), grid.height, grid.width
        )
        with torch.inference_mode():
            prob = classifier(extract_tiles(cls_image, grid.origins, grid.tile))
        tile_prob = torch.as_tensor(prob).detach().float().reshape(-1).cpu().numpy()
        if tile_prob.shape != (len(grid),) or not np.all(np.isfinite(tile_prob)):
            raise InputError(
                f"the classifier returned {tile_prob.shape} values for {len(grid)} tiles (or non-finite "
                f"ones); it must return one crack probability per tile"
            )
        flagged = tile_prob >= float(threshold)
    t_classified = time.perf_counter()
    result = CascadeResult(
        np.zeros((h, w), np.float32),
        np.zeros((h, w), bool),
        grid,
        tile_prob,
        flagged,
        {},
        "all-tiles" if all_tiles else "cascade",
        None if all_tiles else float(threshold),
        mask_threshold,
        plan=plan,
        scale=scale,
        scaled_size=(hs, ws),
    )
    cells = result.scaled_cells()
    chosen, region = screened_windows(plan, cells, flagged, (h, w))
    seg_image = _prepared(x, getattr(segmenter, "channels", None), "the segmenter")
    run = segmenter
    if hasattr(segmenter, "prepare_image"):  # whole-image input statistics, windows of the result
        seg_image, run = segmenter.prepare_image(seg_image), segmenter.on_prepared
    canvas = pad_to(seg_image, *plan.canvas)
    probabilities = segment_windows(canvas, plan, run, chosen, batch_size)
    blended, _ = blend_probabilities(plan, probabilities)
    followed = np.zeros(len(grid), dtype=bool)
    for _ in range(0 if all_tiles else options.follow):  # follow the cracks out of the segmented tiles
        complete = complete_pixels(plan, chosen)[:hs, :ws]
        reached = tiles_reached((blended[:hs, :ws] > mask_threshold) & complete, cells, flagged | followed)
        reached &= tile_prob >= options.follow_threshold
        if not reached.any():
            break
        followed |= reached
        chosen, region = screened_windows(plan, cells, flagged | followed, (h, w))
        new = np.asarray([k for k in chosen.tolist() if k not in probabilities], dtype=np.int64)
        probabilities.update(segment_windows(canvas, plan, run, new, batch_size))
        blended, _ = blend_probabilities(plan, probabilities)
    result.followed = followed
    t_segmented = time.perf_counter()
    probability = blended[:hs, :ws]
    if (hs, ws) != (h, w):
        probability = resample(probability, h, w).numpy()
    result.probability = np.where(region, probability, np.float32(0)).astype(np.float32, copy=False)
    result.region = region
    result.mask = result.probability > mask_threshold
    result.windows_segmented = len(chosen)
    t_end = time.perf_counter()
    result.timings = {
        "classify_s": t_classified - t_scaled,
        "segment_s": t_segmented - t_classified,
        "stitch_s": t_end - t_segmented,
        "total_s": t_end - t_start,
    }
    return result


def screened_windows(
    plan: WindowPlan, scaled_cells: np.ndarray, flagged: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """What the cascade segments and keeps for the tiles ``flagged`` (bool (N,)): the indices of the
    windows of ``plan`` (on the resampled image) meeting a flagged tile's cell (``scaled_cells``,
    (N, 4) y0, y1, x0, x1) or within the reach of resampling back to the image's own ``size``, and
    the (H, W) bool region of the image where the result is then final (:func:`final_region`).
    Flagging more tiles only adds windows and region (both grow monotonically with the flags)."""
    h, w = size
    hs, ws = plan.height, plan.width
    margin = 0 if (hs, ws) == (h, w) else math.ceil(max(hs / h, ws / w, 1.0)) + 1
    if np.all(flagged):
        chosen = np.arange(len(plan))
    else:
        boxes = np.asarray(scaled_cells, np.int64).reshape(-1, 4)[np.asarray(flagged, bool)]
        chosen = windows_meeting_boxes(plan, boxes + np.array([-margin, margin, -margin, margin]))
    return chosen, final_region(complete_pixels(plan, chosen)[:hs, :ws], size, margin)


FOLLOW_REACH_PX = 2  # a crack pixel this close to a tile's cell (on the resampled image) reaches it


def tiles_reached(crack: np.ndarray, cells: np.ndarray, done: np.ndarray, reach: int = FOLLOW_REACH_PX) -> np.ndarray:
    """(N,) bool: the tiles not ``done`` that a crack reaches: ``crack`` ((hs, ws) bool, the mask
    where it is final) holds a pixel inside the tile's cell (``cells``, (N, 4) y0, y1, x0, x1) or
    within ``reach`` px of it. A crack seen running out of a segmented tile is followed into the
    next one (``InspectOptions.follow``) instead of being cut at the border of the flagged tiles."""
    hs, ws = crack.shape
    grown = np.asarray(cells, np.int64).reshape(-1, 4) + np.array([-reach, reach, -reach, reach])
    grown = np.clip(grown, 0, np.array([hs, hs, ws, ws]))
    return (box_counts(crack, grown) > 0) & ~np.asarray(done, bool)


def final_region(complete: np.ndarray, size: tuple[int, int], margin: int) -> np.ndarray:
    """(H, W) bool at the image's own ``size``: the pixels whose probability is final, from the
    (hs, ws) ``complete`` pixels of the resampled image (:func:`~crackscope.deploy.tiling.complete_pixels`).
    At scale 1 they are the same pixels. Otherwise ``complete`` is first eroded by ``margin`` px (the
    reach of resampling back, as for choosing the windows), and a pixel of the image is final when
    the resampled pixel under its centre is left: all that resampling back reads for it is final."""
    h, w = size
    hs, ws = complete.shape
    if (hs, ws) == (h, w):
        return complete.copy()
    from scipy.ndimage import binary_erosion

    kept = binary_erosion(complete, np.ones((2 * margin + 1, 2 * margin + 1), bool), border_value=1)
    rows = (2 * np.arange(h, dtype=np.int64) + 1) * hs // (2 * h)  # floor((i + 1/2) hs / h), exactly
    cols = (2 * np.arange(w, dtype=np.int64) + 1) * ws // (2 * w)
    return kept[np.ix_(rows, cols)]


def segment_all_tiles(
    image,
    segmenter: Callable,
    tile: int = DEFAULT_TILE,
    mask_threshold: float | None = None,
    batch_size: int = 64,
    window: int | None = None,
    overlap: float = DEFAULT_OVERLAP,
    scale: float = 1.0,
) -> CascadeResult:
    """The baseline: the segmenter on every window, blended the same way (:func:`inspect_image`'s
    ``all_tiles=True``, the other keywords as it takes them). ``image`` as :func:`inspect_image` takes
    it (float in [0, 1], (C, H, W) with C = 1 or 3)."""
    if not isinstance(image, (str, Path)):
        check_image(image, "segment_all_tiles")
    return inspect_image(
        image,
        None,
        segmenter,
        tile=tile,
        all_tiles=True,
        mask_threshold=mask_threshold,
        batch_size=batch_size,
        window=window,
        overlap=overlap,
        scale=scale,
    )
