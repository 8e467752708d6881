"""Crack / no-crack tiles of large images: the training data of the cascade's tile classifier.

**Tiling** (shared with :mod:`crackscope.deploy.cascade`, so training and inference cut the same
tiles). Along each axis, T x T tiles start every ``stride`` pixels (default T: non-overlapping)
and the last row / column is aligned to the image border (start = side - T) instead of padding:
every tile holds real pixels only and the whole image is covered. A 544-pixel side with T = 64
gives starts 0, 64, ..., 448 and 480 (the last tile overlaps its neighbour by 32 pixels). With
stride T the *cells* [kT, min((k+1)T, side)) partition the image and cell k lies inside tile k's
window: stitching takes each pixel from the tile that owns its cell (:meth:`TileGrid.cells`,
:func:`stitch`), so every pixel comes from exactly one tile.

**Labels.** A tile is ``crack`` (1) when its window holds at least ``min_crack_pixels`` crack
pixels (mask value >= 128, the threshold of :func:`crackscope.data.surface.load_mask`), else
``no_crack`` (0). The default 1 labels any tile with a crack pixel as cracked: the cascade must
not skip crack pixels.

:class:`CrackTileDataset` is the ``"deepcrack-tiles"`` format of the ``classify`` pipeline: the
tiles of the DeepCrack image/mask pairs (:class:`~crackscope.data.surface.SurfaceSegmentationDataset`
with ``format="deepcrack"`` lists them), selected by source image so that a split keeps all tiles
of one image -- and all crops of one photo -- in the same part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from crackscope.data.classification import ImageClassificationDataset
from crackscope.data.formats import TILE_FORMAT
from crackscope.data.images import load_image, load_mask, normalize_size
from crackscope.data.surface import read_pairs
from crackscope.errors import InputError, dataset_index, require_positive_int

__all__ = [
    "TILE_FORMAT",
    "TILE_CLASSES",
    "TileGrid",
    "tile_starts",
    "tile_grid",
    "extract_tiles",
    "resize_tiles",
    "stitch",
    "tile_crack_pixels",
    "box_counts",
    "CrackTileDataset",
]

TILE_CLASSES = ("no_crack", "crack")


# ---- the grid ------------------------------------------------------------------------------------
def tile_starts(side: int, tile: int, stride: int | None = None) -> list[int]:
    """Start positions of ``tile``-wide windows every ``stride`` pixels along a ``side``-pixel axis,
    the last one aligned to the border (``side - tile``) when the stride does not land on it."""
    tile = require_positive_int("tile", tile)
    stride = tile if stride is None else require_positive_int("stride", stride)
    if side < tile:
        raise InputError(f"a side of {side} pixels is smaller than one tile ({tile} pixels)")
    starts = list(range(0, side - tile + 1, stride))
    if starts[-1] != side - tile:
        starts.append(side - tile)
    return starts


class RowMajorGrid:
    """Rows ``ys`` x columns ``xs`` of square cells (tiles, windows), counted row-major."""

    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @property
    def rows(self) -> int:
        return len(self.ys)

    @property
    def cols(self) -> int:
        return len(self.xs)

    def __len__(self) -> int:
        return self.rows * self.cols

    @property
    def origins(self) -> np.ndarray:
        """(N, 2) int64 (y0, x0) of every cell, row-major."""
        yy, xx = np.meshgrid(np.asarray(self.ys, dtype=np.int64), np.asarray(self.xs, dtype=np.int64), indexing="ij")
        return np.stack([yy.ravel(), xx.ravel()], axis=1)


@dataclass(frozen=True)
class TileGrid(RowMajorGrid):
    """The tiles of an ``height`` x ``width`` image, row-major: tile k is at row ``index[k, 0]``,
    column ``index[k, 1]`` and covers ``[y0, y0 + tile) x [x0, x0 + tile)`` with
    ``(y0, x0) = origins[k]``."""

    height: int
    width: int
    tile: int
    stride: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @property
    def index(self) -> np.ndarray:
        """(N, 2) int64 (row, col) of every tile, row-major."""
        rr, cc = np.meshgrid(np.arange(self.rows), np.arange(self.cols), indexing="ij")
        return np.stack([rr.ravel(), cc.ravel()], axis=1).astype(np.int64)

    def cells(self) -> np.ndarray:
        """(N, 4) int64 (y0, y1, x0, x1): the part of the image each tile owns when stitching.

        Only for non-overlapping grids (stride = tile): cell (r, c) is
        ``[r*T, min((r+1)*T, H)) x [c*T, min((c+1)*T, W))``, inside the window of tile (r, c)."""
        if self.stride != self.tile:
            raise InputError(f"stitching needs a non-overlapping grid (stride {self.stride} != tile {self.tile})")
        t = self.tile
        rc = self.index
        y0, x0 = rc[:, 0] * t, rc[:, 1] * t
        return np.stack([y0, np.minimum(y0 + t, self.height), x0, np.minimum(x0 + t, self.width)], axis=1)


def tile_grid(height: int, width: int, tile: int, stride: int | None = None) -> TileGrid:
    """The :class:`TileGrid` of an image (see the module docstring); :class:`InputError` when the
    image is smaller than one tile."""
    tile = require_positive_int("tile", tile)
    stride = tile if stride is None else require_positive_int("stride", stride)
    if height < tile or width < tile:
        raise InputError(
            f"the image ({width} x {height} pixels, width x height) is smaller than one {tile} x {tile} tile"
        )
    return TileGrid(
        int(height),
        int(width),
        tile,
        stride,
        tuple(tile_starts(height, tile, stride)),
        tuple(tile_starts(width, tile, stride)),
    )


# ---- cutting, resizing, stitching -----------------------------------------------------------------
def extract_tiles(image: torch.Tensor, origins: np.ndarray | Sequence[Sequence[int]], tile: int) -> torch.Tensor:
    """(N, C, tile, tile) windows of a (C, H, W) tensor at ``origins`` ((N, 2) y0, x0)."""
    origins = np.asarray(origins, dtype=np.int64).reshape(-1, 2)
    if len(origins) == 0:
        return image.new_zeros((0, image.shape[0], tile, tile))
    return torch.stack([image[:, y : y + tile, x : x + tile] for y, x in origins.tolist()])


def resize_tiles(tiles: torch.Tensor, size: int | Sequence[int] | None) -> torch.Tensor:
    """(N, C, h, w) tiles in [0, 1] resized to ``size`` (bilinear, antialiased; ``None`` keeps them):
    per tile the same operation as :func:`crackscope.data.classification.resize_image`, which the
    classifier's training data went through."""
    size = normalize_size(size)
    if size is None or tuple(tiles.shape[-2:]) == size or len(tiles) == 0:
        return tiles
    return F.interpolate(tiles, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0.0, 1.0)


def stitch(
    values: torch.Tensor | np.ndarray, grid: TileGrid, indices: Sequence[int] | None = None, fill: float = 0.0
) -> np.ndarray:
    """An (H, W) float32 image from per-tile (M, T, T) ``values`` of the tiles ``indices`` (all
    tiles in order when ``None``): each pixel of a listed tile's cell is taken from that tile; the
    cells of unlisted tiles stay ``fill``."""
    values = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    indices = np.arange(len(grid)) if indices is None else np.asarray(indices, dtype=np.int64)
    if values.shape[0] != len(indices) or values.shape[1:] != (grid.tile, grid.tile):
        raise InputError(
            f"stitch: values of shape {values.shape} do not match {len(indices)} tiles of {grid.tile} x {grid.tile}"
        )
    out = np.full((grid.height, grid.width), fill, dtype=np.float32)
    cells, origins = grid.cells(), grid.origins
    for v, k in zip(values, indices.tolist()):
        y0, y1, x0, x1 = cells[k]
        oy, ox = origins[k]
        out[y0:y1, x0:x1] = v[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return out


def tile_crack_pixels(mask: np.ndarray, grid: TileGrid) -> np.ndarray:
    """(N,) int64: crack pixels of a boolean (H, W) mask inside every tile window (summed-area table)."""
    m = np.asarray(mask, dtype=bool)
    if m.shape != (grid.height, grid.width):
        raise InputError(f"mask of shape {m.shape} does not match the grid's {grid.height} x {grid.width}")
    o, t = grid.origins, grid.tile
    return box_counts(m, np.stack([o[:, 0], o[:, 0] + t, o[:, 1], o[:, 1] + t], axis=1))


def box_counts(mask: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) int64: the True pixels of a boolean (H, W) ``mask`` inside each box of ``boxes`` ((N, 4)
    y0, y1, x0, x1, half-open, within the mask), from one summed-area table."""
    m = np.asarray(mask, dtype=bool)
    sat = np.zeros((m.shape[0] + 1, m.shape[1] + 1), dtype=np.int64)
    sat[1:, 1:] = m.cumsum(0, dtype=np.int64).cumsum(1)
    y0, y1, x0, x1 = np.asarray(boxes, np.int64).reshape(-1, 4).T
    return sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]


@lru_cache(maxsize=4096)
def _cached_counts(path: str, mtime_ns: int, tile: int, stride: int) -> np.ndarray:
    mask = load_mask(path)[0] > 0
    counts = tile_crack_pixels(mask, tile_grid(*mask.shape, tile, stride))
    counts.setflags(write=False)
    return counts


def _crack_counts(path: Path, tile: int, stride: int) -> np.ndarray:
    """Crack pixels per tile of a mask file, cached by (path, modification time, tiling): the
    classify pipeline builds the dataset several times per run."""
    return _cached_counts(str(path), path.stat().st_mtime_ns, tile, stride)


# ---- the dataset ---------------------------------------------------------------------------------
class CrackTileDataset(ImageClassificationDataset):
    """Tiles of DeepCrack images (or of other image/mask pairs: ``sources``) labelled crack / no
    crack; items ``(tile, label)``.

    * ``tile``: float32 (C, s, s) in [0, 1] -- the T x T window (C = ``channels``: colour is
      converted to luminance for 1) resized to ``size`` (``None`` keeps T), then augmented.
    * ``label``: int64 scalar tensor, 1 = ``crack``.

    Parameters
    ----------
    root: the DeepCrack folder (``train_img/``, ``train_lab/``).
    sources: instead of ``root``, image/mask pairs of other layouts or of several datasets,
        ``[(name, root, format)]`` with a surface ``format`` (``deepcrack``, ``crack500``, ``crackpatches``, ``folder``;
        :func:`~crackscope.data.surface.read_pairs`); named sources list their images as
        ``<name>/<stem>``.
    tile, stride: the grid (module docstring); ``stride=None`` = ``tile`` (non-overlapping).
    min_crack_pixels: crack pixels that make a tile ``crack``.
    size, channels, augment, seed, camera: as for :class:`~crackscope.data.classification.ImageClassificationDataset`
        (``augment=True``: seeded flips and quarter turns).
    images: stems of the source images to take tiles from (in that order); ``None`` = all.
    indices: positions in the resulting tile list to keep.

    Attributes (besides the base class's ``classes``, ``targets``, ``stems`` = ``<image>/y<y0>x<x0>``,
    ``files`` = the image of each tile): ``image_stems``, ``image_groups`` (source photo of each
    image), ``image_paths``, ``mask_paths``, and per tile ``image_index``, ``origins`` ((N, 2) y0,
    x0), ``crack_pixels``. Images are read once and kept in memory (uint8) while tiles are drawn.
    """

    labels_from_masks = True

    def __init__(
        self,
        root: str | Path,
        tile: int = 64,
        stride: int | None = None,
        min_crack_pixels: int = 1,
        size: int | Sequence[int] | None = None,
        channels: int = 1,
        augment: bool | Callable | None = False,
        images: Sequence[str] | None = None,
        indices: Iterable[int] | None = None,
        seed: int = 0,
        sources: Sequence[tuple[str | None, str | Path, str]] | None = None,
        camera: Mapping[str, Any] | None = None,
    ):
        sources = [(None, root, "deepcrack")] if sources is None else list(sources)
        self._init_common(sources[0][1], size, channels, augment, seed, camera)
        self.format = TILE_FORMAT
        self.split = None
        self.tile = require_positive_int("tile", tile)
        self.stride = self.tile if stride is None else require_positive_int("stride", stride)
        self.min_crack_pixels = require_positive_int("min_crack_pixels", min_crack_pixels)
        self.sources = sources
        pairs = read_pairs(sources, images)
        self.classes = list(TILE_CLASSES)
        self.image_stems, self.image_groups = list(pairs.stems), list(pairs.groups)
        self.image_paths, self.mask_paths = list(pairs.image_paths), list(pairs.mask_paths)
        image_index, origins, counts, stems = [], [], [], []
        for k, (stem, (h, w)) in enumerate(zip(pairs.stems, pairs.original_sizes)):
            if h < self.tile or w < self.tile:
                raise InputError(
                    f"image {pairs.image_paths[k]} ({w} x {h}) is smaller than one {self.tile} x {self.tile} tile"
                )
            grid = tile_grid(h, w, self.tile, self.stride)
            o = grid.origins
            image_index.append(np.full(len(o), k, dtype=np.int64))
            origins.append(o)
            counts.append(_crack_counts(pairs.mask_paths[k], self.tile, self.stride))
            stems.extend(f"{stem}/y{y}x{x}" for y, x in o.tolist())
        self.image_index = np.concatenate(image_index) if image_index else np.zeros(0, np.int64)
        self.origins = np.concatenate(origins) if origins else np.zeros((0, 2), np.int64)
        self.crack_pixels = np.concatenate(counts) if counts else np.zeros(0, np.int64)
        self.targets = (self.crack_pixels >= self.min_crack_pixels).astype(np.int64)
        self.stems = stems
        self.files = [self.image_paths[k] for k in self.image_index.tolist()]
        self._images: dict[int, np.ndarray] = {}
        if indices is not None:
            self._select(indices)

    def _select(self, indices: Iterable[int]) -> list[int]:
        keep = super()._select(indices)
        self.image_index, self.origins = self.image_index[keep], self.origins[keep]
        self.crack_pixels = self.crack_pixels[keep]
        return keep

    def _image(self, k: int) -> np.ndarray:
        """Image ``k`` as uint8 (C, H, W), read on first use."""
        if k not in self._images:
            self._images[k] = np.rint(load_image(self.image_paths[k], self.channels) * 255).astype(np.uint8)
        return self._images[k]

    def _read(self, i: int) -> np.ndarray:
        y, x = self.origins[i].tolist()
        window = self._image(int(self.image_index[i]))[:, y : y + self.tile, x : x + self.tile]
        return window.astype(np.float32) / np.float32(255.0)  # exactly load_image's values

    def _draw_cracks(self, x: torch.Tensor, i: int, label: int) -> tuple[torch.Tensor, int]:
        """With the camera augmentation's ``p_synthetic_crack``, that share of the tiles gets one
        drawn hairline crack (:func:`~crackscope.data.synthetic_cracks.random_hairline`, after the
        flips, before the photometric changes, from (seed, epoch, i, 3)), and the label follows:
        ``crack`` when the tile's labelled crack pixels plus the drawn ones (counted at the tile's
        own resolution) reach ``min_crack_pixels``."""
        p = self._camera.params["p_synthetic_crack"]
        if p <= 0:
            return x, label
        rng = np.random.default_rng([self.seed, self.epoch, i, 3])
        if rng.random() < p:
            from crackscope.data.synthetic_cracks import draw_hairline, random_hairline

            x, drawn = draw_hairline(x, random_hairline(tuple(x.shape[-2:]), rng))
            at_tile = float(drawn.sum()) * (self.tile / x.shape[-1]) * (self.tile / x.shape[-2])
            label = int(label or self.crack_pixels[i] + at_tile >= self.min_crack_pixels)
        return x, label

    def meta(self, i: int) -> dict[str, Any]:
        """The base record plus the source image, the tile origin and its crack pixels."""
        m = super().meta(i)
        i = dataset_index(i, len(self), "CrackTileDataset")
        y, x = self.origins[i].tolist()
        m.update(image=self.image_stems[int(self.image_index[i])], y0=y, x0=x, crack_pixels=int(self.crack_pixels[i]))
        return m

    def __repr__(self) -> str:
        return (
            f"CrackTileDataset({str(self.root)!r}, {len(self.image_stems)} images, {len(self)} tiles of "
            f"{self.tile} px (stride {self.stride}), {int(self.targets.sum())} crack, size={self.size}, "
            f"channels={self.channels})"
        )
