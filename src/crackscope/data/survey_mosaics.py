"""Survey-like inspection images: large mosaics of tiles in which most of the surface is sound.

A road or bridge survey photo is mostly crack-free surface; crack datasets are folders of crack
close-ups. To measure an inspection tool as a survey would use it, :func:`survey_mosaics` builds
seeded ``side`` x ``side`` images from ``tile`` x ``tile`` squares cut from labelled photos:

* **crack tiles**: the squares of each photo's non-overlapping grid (from the top-left corner,
  whole squares only) that hold at least ``min_crack_px`` labelled crack pixels;
* **sound tiles**: squares of the same photos in which every pixel is more than ``clearance_px``
  from every labelled crack pixel -- the crack-free surface of
  :func:`crackscope.metrics.false_alarm_counts` -- found on a ``tile // 4`` lattice and taken
  greedily (row by row) so that no two overlap.

Each mosaic holds a share of crack tiles drawn uniformly from ``crack_share`` (at least one), at
random grid places, the rest sound tiles, each tile used at most once per mosaic. Everything
follows from ``seed``. The mosaic's truth is the tiles' labels, so a sound tile stays crack-free
in it, while the crack tiles keep their labelled cracks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from crackscope.errors import InputError, require_positive_int
from crackscope.metrics import SOUND_CLEARANCE_PX, SOUND_TILE_PX, crack_free_pixels


@dataclass
class TileBank:
    """Tiles cut from labelled photos: ``crack`` and ``sound`` lists of (image (C, t, t) float32,
    truth (t, t) bool, where "<stem>@y,x")."""

    crack: list[tuple[np.ndarray, np.ndarray, str]]
    sound: list[tuple[np.ndarray, np.ndarray, str]]


def sound_tile_origins(
    truth: np.ndarray, tile: int, clearance_px: float, step: int | None = None, sound: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """Top-left corners of non-overlapping ``tile`` squares of ``truth`` (H, W) in which every pixel
    is more than ``clearance_px`` from every labelled crack pixel, searched on a ``step`` lattice
    (default ``tile // 4``) row by row, each kept when it overlaps none kept before. ``sound``: that
    crack-free mask (:func:`crackscope.metrics.crack_free_pixels`) when the caller has it already."""
    tile = require_positive_int("tile", tile)
    step = require_positive_int("step", step or max(tile // 4, 1))
    truth = np.asarray(truth).astype(bool)
    h, w = truth.shape
    if h < tile or w < tile:
        return []
    if sound is None:
        sound = crack_free_pixels(truth, clearance_px)
    # a square is sound when the count of sound pixels in it is tile^2 (summed-area table)
    table = np.pad(sound.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    taken = np.zeros_like(truth)
    origins = []
    for y in range(0, h - tile + 1, step):
        for x in range(0, w - tile + 1, step):
            inside = table[y + tile, x + tile] - table[y, x + tile] - table[y + tile, x] + table[y, x]
            if inside == tile * tile and not taken[y : y + tile, x : x + tile].any():
                taken[y : y + tile, x : x + tile] = True
                origins.append((y, x))
    return origins


def tile_bank(
    read: Callable[[str], tuple[np.ndarray, np.ndarray]],
    stems: Iterable[str],
    tile: int = SOUND_TILE_PX,
    clearance_px: float = SOUND_CLEARANCE_PX,
    min_crack_px: int = 20,
) -> TileBank:
    """The crack and sound tiles of the photos ``stems``; ``read(stem)`` gives (image (C, H, W)
    float32 in [0, 1], truth (H, W) bool), as :class:`crackscope.deploy.operating_point.RunPairs`."""
    tile = require_positive_int("tile", tile)
    bank = TileBank([], [])
    for stem in stems:
        image, truth = read(stem)
        truth = np.asarray(truth).astype(bool)
        h, w = truth.shape
        for y in range(0, h - tile + 1, tile):
            for x in range(0, w - tile + 1, tile):
                t = truth[y : y + tile, x : x + tile]
                if t.sum() >= min_crack_px:
                    bank.crack.append((image[:, y : y + tile, x : x + tile], t, f"{stem}@{y},{x}"))
        for y, x in sound_tile_origins(truth, tile, clearance_px):
            bank.sound.append(
                (image[:, y : y + tile, x : x + tile], truth[y : y + tile, x : x + tile], f"{stem}@{y},{x}")
            )
    return bank


def survey_mosaics(
    bank: TileBank,
    n_images: int,
    side: int = 1024,
    crack_share: tuple[float, float] = (0.05, 0.15),
    seed: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """``n_images`` mosaics (image (C, side, side) float32, truth (side, side) bool, info) of the
    bank's tiles; ``info`` has ``crack_tiles`` and ``tiles`` (counts) and ``sources`` (per grid
    place, the tile it came from, row-major)."""
    if not bank.crack or not bank.sound:
        raise InputError(f"the photos give {len(bank.crack)} crack tiles and {len(bank.sound)} sound tiles; need both")
    lo, hi = (float(v) for v in crack_share)
    if not 0 < lo <= hi < 1:
        raise InputError(f"crack_share {crack_share!r} must be two shares 0 < low <= high < 1")
    t = bank.crack[0][1].shape[0]
    side = require_positive_int("side", side)
    if side % t:
        raise InputError(f"side {side} must be a multiple of the tile side {t}")
    g = side // t
    n = g * g
    channels = bank.crack[0][0].shape[0]
    for k in range(require_positive_int("n_images", n_images)):
        rng = np.random.default_rng(np.random.SeedSequence([seed, k]))
        n_crack = max(1, int(round(rng.uniform(lo, hi) * n)))
        if n_crack > len(bank.crack) or n - n_crack > len(bank.sound):
            raise InputError(
                f"a {side}-px mosaic needs {n_crack} crack and {n - n_crack} sound tiles; the photos give "
                f"{len(bank.crack)} and {len(bank.sound)}"
            )
        places = rng.permutation(n)
        crack_places = set(places[:n_crack].tolist())
        cracks = iter(rng.choice(len(bank.crack), n_crack, replace=False))
        sounds = iter(rng.choice(len(bank.sound), n - n_crack, replace=False))
        image = np.zeros((channels, side, side), np.float32)
        truth = np.zeros((side, side), bool)
        sources = []
        for p in range(n):
            tile_image, tile_truth, where = bank.crack[next(cracks)] if p in crack_places else bank.sound[next(sounds)]
            y, x = (p // g) * t, (p % g) * t
            image[:, y : y + t, x : x + t] = tile_image
            truth[y : y + t, x : x + t] = tile_truth
            sources.append(where)
        yield image, truth, {"crack_tiles": n_crack, "tiles": n, "sources": sources}
