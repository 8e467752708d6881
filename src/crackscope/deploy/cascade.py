"""The tile cascade for large images (AOIE-Net paper, Wu et al. 2025, Figure 1).

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
  (default: the image's own channels). :class:`TileClassifier` wraps any logits function and
  resizes tiles to the run's input size: the run's PyTorch model (``runtime="torch"``) or its
  bit-packed XNOR/popcount twin (``runtime="packed"``, :mod:`crackscope.deploy.packed`; same
  predictions, about half the time per tile here).
* **Segmenter**: a callable (N, C, W, W) -> (N, W, W) crack probabilities, optionally with
  ``channels`` and ``threshold``; :class:`TileSegmenter` wraps a surface run. A segmenter with
  ``prepare_image`` ((C, H, W) -> (C, H, W), applied once to the whole image) and ``on_prepared``
  (windows of the prepared image -> probabilities) is run through those two instead: a model with
  per-image standardised input is standardised with the whole image's statistics, not each window's.

:func:`load_classifier` / :func:`load_segmenter` build both from a run directory or a shipped
model folder (``crackscope.engine.runs.load_run``) and refuse, with one line, a run of the wrong
pipeline or class count. :func:`inspect_image_file` and :func:`inspect_folder` are
``crackscope inspect-image`` on an image or a folder; they also measure the cracks of the final
mask (:mod:`crackscope.analysis.crack_measure`).

Image arrays are float32 / float64 in [0, 1], shaped (C, H, W) with C = 1 or 3; :func:`check_image`
refuses anything else (an integer dtype, values outside [0, 1]) in one line: ``image / 255`` for 8 bits.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from crackscope.data.images import load_image
from crackscope.data.tiles import TileGrid, extract_tiles, resize_tiles, tile_grid
from crackscope.deploy.tiling import (
    DEFAULT_OVERLAP,
    WindowPlan,
    blend_windows,
    complete_pixels,
    pad_to,
    plan_windows,
    resample,
    windows_touching,
)
from crackscope.engine.runs import OPERATING_POINT_FILE, run_threshold  # {"threshold": t, ...}: validation
from crackscope.errors import InputError, require_positive_int

__all__ = [
    "RUNTIMES",
    "TileClassifier",
    "TileSegmenter",
    "CascadeResult",
    "inspect_image",
    "segment_all_tiles",
    "screened_windows",
    "load_classifier",
    "load_segmenter",
    "read_image",
    "to_channels",
    "check_image",
    "overlay_cascade",
    "inspect_image_file",
    "inspect_folder",
    "check_scale",
    "OPERATING_POINT_FILE",
    "DEFAULT_OVERLAP",
    "MAX_SCALE",
    "DEFAULT_TILE",
    "LABELLED_CRACKS",
]

DEFAULT_TILE = 64
MAX_SCALE = 16.0  # --scale in (0, MAX_SCALE]
LABELLED_CRACKS = 5  # the longest crack components, labelled on overlay.png and listed in summary.json
RUNTIMES = ("torch", "packed")
PACKED_FILES = ("model.packed.safetensors", "export/model.packed.safetensors")  # in a run or model folder
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


# ---- the two models --------------------------------------------------------------------------------
@dataclass
class TileClassifier:
    """Crack probability of tiles from a classification network's logits.

    ``logits_fn``: (N, C, h, w) float -> (N, K) logits (an ``nn.Module`` in eval mode, or another
    runtime's forward). Tiles are resized to ``input_size`` first (antialiased bilinear, as the
    ``deepcrack-tiles`` training data were) and run in chunks of ``batch_size``; the result is the
    softmax probability of class ``crack_index``. ``tile`` and ``threshold`` are the run's tile side
    and its operating point, the defaults of the cascade; ``window`` and ``overlap``, when the
    operating point records them, the segmentation windows it was chosen for (also defaults)."""

    logits_fn: Callable[[torch.Tensor], torch.Tensor]
    crack_index: int = 1
    channels: int = 1
    input_size: tuple[int, int] | None = None
    batch_size: int = 256
    tile: int | None = None
    threshold: float = 0.5
    source: str = ""
    window: int | None = None
    overlap: float | None = None

    @torch.inference_mode()
    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, len(tiles), self.batch_size):
            x = resize_tiles(tiles[start : start + self.batch_size], self.input_size)
            out.append(torch.softmax(self.logits_fn(x).float(), dim=1)[:, self.crack_index])
        return torch.cat(out) if out else torch.zeros(0)


@dataclass
class TileSegmenter:
    """Crack probability per pixel of tiles from a segmentation network's logits (N, 1, T, T),
    in chunks of ``batch_size``; ``threshold`` makes the binary mask. ``window``: the window side
    the model was trained on (its training crop, ``data.crop``), the default segmentation window
    of :func:`inspect_image_file`; ``None``: the tile side.

    A model with per-image standardised input (:class:`~crackscope.nn.input_norm.StandardizedInput`)
    is standardised **once per image**, not per window: :meth:`prepare_image` standardises the
    whole image with its own mean and standard deviation and :meth:`on_prepared` runs the network
    on windows of the result. Every window then sees its pixels as the whole image would present
    them to the model; standardising each window on its own would stretch a window holding a crack
    and a window of plain concrete differently (pixel F1 on the validation images of
    ``weights/cracks/segmenter`` with 64-px windows: 0.70 against 0.65 on DeepCrack, 0.61 against 0.54
    on Crack500). Called directly on tiles, the model runs as trained (each tile its own image)."""

    model: Callable[[torch.Tensor], torch.Tensor]
    channels: int = 3
    threshold: float = 0.5
    batch_size: int = 64
    source: str = ""
    window: int | None = None

    @torch.inference_mode()
    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        return self._probability(self.model, tiles)

    def _probability(self, net, tiles: torch.Tensor) -> torch.Tensor:
        out = [
            torch.sigmoid(net(tiles[s : s + self.batch_size]).float())[:, 0]
            for s in range(0, len(tiles), self.batch_size)
        ]
        return torch.cat(out) if out else torch.zeros((0, *tiles.shape[-2:]))

    @property
    def standardizes(self) -> bool:
        from crackscope.nn.input_norm import StandardizedInput

        return isinstance(self.model, StandardizedInput)

    @torch.inference_mode()
    def prepare_image(self, image: torch.Tensor) -> torch.Tensor:
        """The (C, H, W) image as the network's first layer takes it: standardised with the whole
        image's statistics for a model with per-image standardised input, else unchanged."""
        return self.model.standardize(image[None])[0] if self.standardizes else image

    @torch.inference_mode()
    def on_prepared(self, tiles: torch.Tensor) -> torch.Tensor:
        """Crack probability of windows cut from :meth:`prepare_image`'s output."""
        return self._probability(self.model.net if self.standardizes else self.model, tiles)


def _load(path: str | Path, pipeline: str, role: str):
    from crackscope.engine.runs import load_run, pipeline_of

    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{role} {path}: no such run directory or model folder")
    found = pipeline_of(path)
    if found != pipeline:
        what = {"classify": "an image classifier", "surface": "a surface segmentation model"}[pipeline]
        raise InputError(f"{role} {path} is a {found} run, not {what} ({pipeline} pipeline)")
    return load_run(path)


def _packed(path: Path, model, role: str):
    """The bit-packed twin of a binary classifier: RUN/model.packed.safetensors or
    RUN/export/model.packed.safetensors when there, else packed now from the PyTorch weights."""
    from crackscope.deploy.packed import load_packed, pack_model

    for name in PACKED_FILES:
        if (path / name).is_file():
            return load_packed(path / name)
    try:
        return pack_model(model)
    except InputError as err:
        raise InputError(f"{role} {path}: --runtime packed needs a binary network ({err})") from None


def load_classifier(
    path: str | Path, batch_size: int = 256, role: str = "--classifier", runtime: str = "torch"
) -> TileClassifier:
    """A :class:`TileClassifier` from a classify run or model folder with two classes, one of them
    named ``crack``. Its ``threshold`` is RUN/operating_point.json's (chosen on validation) or 0.5,
    and its ``window`` / ``overlap`` the segmentation windows that threshold was chosen for, when
    the file records them. ``runtime``: ``"torch"`` (the PyTorch model) or ``"packed"``
    (bit-packed, :func:`_packed`)."""
    from crackscope.engine.runs import model_classes

    if runtime not in RUNTIMES:
        raise InputError(f"--runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    path = Path(path)
    cfg, model, geometry = _load(path, "classify", role)
    classes = model_classes(path, geometry)
    if len(classes) != 2 or "crack" not in [c.lower() for c in classes]:
        raise InputError(
            f"{role} {path} classifies {len(classes)} classes ({', '.join(classes)}); the cascade "
            f"needs a crack / no-crack classifier (2 classes, one named 'crack')"
        )
    tiles = getattr(cfg.data, "tiles", None)
    threshold, window, overlap = 0.5, None, None
    op_file = path / OPERATING_POINT_FILE
    if op_file.is_file():
        try:
            op = json.loads(op_file.read_text())
            threshold = float(op["threshold"])
            window = None if op.get("window") is None else int(op["window"])
            overlap = None if op.get("overlap") is None else float(op["overlap"])
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"{op_file}: no readable 'threshold' ({err})") from None
    size = cfg.data.size
    return TileClassifier(
        _packed(path, model, role) if runtime == "packed" else model,
        crack_index=[c.lower() for c in classes].index("crack"),
        channels=int(cfg.data.channels),
        input_size=None if size is None else tuple(np.broadcast_to(size, 2).tolist()),
        batch_size=batch_size,
        tile=tiles.tile if tiles is not None else None,
        threshold=threshold,
        source=str(path),
        window=window,
        overlap=overlap,
    )


def load_segmenter(path: str | Path, batch_size: int = 64, role: str = "--segmenter") -> TileSegmenter:
    """A :class:`TileSegmenter` from a surface run or model folder (one output channel). Its
    threshold is the run's (RUN/operating_point.json when it chose one on validation images, else
    ``trainer.threshold``). Runs trained with a fixed ``data.size`` are
    refused: tiles are segmented at their own resolution."""
    path = Path(path)
    cfg, model, geometry = _load(path, "surface", role)
    if int(geometry.get("classes", 1)) != 1:
        raise InputError(f"{role} {path} has {geometry['classes']} output channels; the cascade needs one (crack)")
    if cfg.data.size is not None:
        raise InputError(
            f"{role} {path} was trained on images resized to {cfg.data.size}; the cascade segments "
            f"tiles at their original resolution (train it with data.size=null)"
        )
    return TileSegmenter(
        model,
        channels=int(cfg.data.in_channels),
        threshold=run_threshold(path, cfg),
        batch_size=batch_size,
        source=str(path),
        window=cfg.data.crop,
    )


# ---- images and channels -----------------------------------------------------------------------------
def read_image(path: str | Path) -> np.ndarray:
    """An image file as float32 (C, H, W) in [0, 1] with its own channels: 1 for grey files, 3 (RGB)
    for colour ones. :class:`InputError` naming a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image {path}: no such file")
    try:
        with Image.open(path) as im:
            mode = im.mode
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise InputError(f"cannot read image {path}: {e}") from None
    return load_image(path, 1 if mode in GREY_MODES else 3)


IMAGE_CONTRACT = "float32/float64 in [0, 1], shaped (C, H, W) with C = 1 (grey) or 3 (RGB)"


def check_image(image, who: str = "the cascade"):
    """``image`` itself if it is an image the cascade can use: a numpy array or torch tensor of a
    floating dtype with every value in [0, 1], shaped (C, H, W) with C = 1 (grey) or 3 (RGB).
    Anything else is one :class:`InputError` line naming its dtype, range or shape: integer (and
    boolean) arrays are refused rather than guessed at (an 8-bit image of 0..255 read as [0, 1]
    would be all crack-free white); convert them yourself, ``image / 255`` for 8 bits."""
    is_tensor = isinstance(image, torch.Tensor)
    a = image if is_tensor else np.asarray(image)
    floating = a.is_floating_point() if is_tensor else a.dtype.kind == "f"
    dtype = str(a.dtype).removeprefix("torch.")
    if not floating:
        integer = not a.is_complex() if is_tensor else a.dtype.kind in "biu"
        try:
            values = f" (values {int(a.min())}..{int(a.max())})" if integer else ""
        except (ValueError, RuntimeError):  # empty
            values = ""
        raise InputError(
            f"{who} got an image array of dtype {dtype}{values}; it takes {IMAGE_CONTRACT}: "
            f"convert 8-bit images with image / 255"
        )
    if a.ndim != 3 or a.shape[0] not in (1, 3):
        raise InputError(f"image of shape {tuple(a.shape)} is not (C, H, W) with C = 1 (grey) or 3 (RGB)")
    if a.shape[1] * a.shape[2]:
        lo, hi = (float(v) for v in (torch.aminmax(a) if is_tensor else (a.min(), a.max())))
        if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN spreads to min and max
            raise InputError(f"{who} got a {dtype} image with NaN or infinite values; it takes {IMAGE_CONTRACT}")
        if not 0.0 <= lo <= hi <= 1.0:
            raise InputError(
                f"{who} got a {dtype} image with values in [{lo:g}, {hi:g}]; it takes {IMAGE_CONTRACT} "
                f"(8-bit images: image / 255)"
            )
    return image


def to_channels(image: np.ndarray | torch.Tensor, channels: int, who: str = "the model") -> torch.Tensor:
    """A (C, H, W) image in [0, 1] (:func:`check_image`: a float dtype, C = 1 or 3) with
    ``channels`` channels: as is, or colour -> luminance with Pillow's integer ITU-R 601 weights
    (exactly ``convert("L")`` for 8-bit images, which is how grey models were trained). A grey
    image for a colour model is refused: its colour is unknown."""
    return _to_channels(check_image(image, "to_channels"), channels, who)


def _to_channels(image, channels: int, who: str = "the model") -> torch.Tensor:
    """:func:`to_channels` of an image :func:`check_image` accepted."""
    x = torch.as_tensor(np.asarray(image, dtype=np.float32) if not isinstance(image, torch.Tensor) else image)
    x = x.float()
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise InputError(f"image of shape {tuple(x.shape)} is not (C, H, W) with C = 1 (grey) or 3 (RGB)")
    c = int(x.shape[0])
    if c == channels:
        return x.contiguous()
    if c == 1:
        raise InputError(f"the image is greyscale but {who} takes {channels}-channel colour images")
    # (19595 R + 38470 G + 7471 B + 0x8000) >> 16 on the 8-bit levels, in float32: every product and
    # partial sum is an integer below 2**24 (255 * 65536 + 0x8000 < 2**24), so exact; the shift is a
    # floor of a division by 2**16, also exact. 2.5x faster than the same in int32 with its casts.
    q = x.clamp(0, 1).mul_(255).round_()
    lum = torch.add(q[1].mul(38470), q[0], alpha=19595).add_(q[2], alpha=7471).add_(0x8000)
    return lum.mul_(1 / 65536).floor_().div_(255.0)[None]


# ---- the cascade -------------------------------------------------------------------------------------
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
    classifier ran: ``mode == "all-tiles"``); ``flagged``: (N,) bool; ``timings``: seconds
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
        classifier), flagged (0/1)."""
        rows = []
        for (r, c), (y, x), p, f in zip(
            self.grid.index.tolist(), self.grid.origins.tolist(), self.tile_probability.tolist(), self.flagged.tolist()
        ):
            rows.append(
                {
                    "row": r,
                    "col": c,
                    "y0": y,
                    "x0": x,
                    "probability": "" if np.isnan(p) else round(float(p), 6),
                    "flagged": int(f),
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
            "segmented_fraction": None if self.region is None else round(float(self.region.mean()), 6),
            "crack_pixels": int(self.mask.sum()),
            "crack_fraction": round(float(self.mask.mean()), 6),
            "timings_s": {k: round(v, 6) for k, v in self.timings.items()},
            "torch_threads": torch.get_num_threads(),
            **self.extra,
        }


def _prepared(image, channels: int | None, who: str) -> torch.Tensor:
    return _to_channels(image, channels, who) if channels is not None else _to_channels(image, int(np.shape(image)[0]))


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


def inspect_image(
    image,
    classifier: Callable | None,
    segmenter: Callable,
    tile: int = DEFAULT_TILE,
    threshold: float | None = None,
    all_tiles: bool = False,
    mask_threshold: float | None = None,
    batch_size: int = 64,
    window: int | None = None,
    overlap: float | None = None,
    scale: float = 1.0,
) -> CascadeResult:
    """Cascade one image: classify every tile, segment the windows around the flagged ones (batched),
    blend them.

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
      operating point was chosen for (:func:`load_classifier` reads them), else the segmenter's
      training window or ``tile``, 0.25 and 0.5 (:func:`_defaults`).
    * Segmentation (:mod:`crackscope.deploy.tiling`): ``window`` x ``window`` windows
      overlapping by ``overlap`` of a window (in [0, 0.5]; 0: stitched without overlap),
      blended with raised-cosine weights that sum to 1. Only the windows meeting a flagged tile's
      cell run (with ``scale`` != 1, also those within the resampling filter's reach of it), in
      batches of ``batch_size``. The result is that of segmenting every window wherever every
      window covering a pixel ran (``CascadeResult.region``: the flagged cells and the parts of
      their windows no skipped window reaches), and 0 elsewhere. The segmenter is never called
      when nothing is flagged.

    ``all_tiles=True`` is the baseline: no classifier, every window segmented (``classifier`` may be
    ``None``). ``mask_threshold``: default the segmenter's ``threshold`` attribute, else 0.5.
    """
    image = read_image(image) if isinstance(image, (str, Path)) else check_image(image, "inspect_image")
    if not all_tiles and classifier is None:
        raise InputError("a classifier is needed unless all_tiles=True")
    tile = require_positive_int("tile", tile)
    window, overlap, threshold = _defaults(classifier, segmenter, tile, window, overlap, threshold)
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"threshold={threshold!r} must be a probability in [0, 1]")
    batch_size = require_positive_int("batch_size", batch_size)
    scale = check_scale(scale)
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
    chosen, region = screened_windows(plan, result.scaled_cells(), flagged, (h, w))
    seg_image = _prepared(x, getattr(segmenter, "channels", None), "the segmenter")
    run = segmenter
    if hasattr(segmenter, "prepare_image"):  # whole-image input statistics, windows of the result
        seg_image, run = segmenter.prepare_image(seg_image), segmenter.on_prepared
    blended, _ = blend_windows(pad_to(seg_image, *plan.canvas), plan, run, chosen, batch_size)
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
        need = np.zeros((hs, ws), dtype=bool)
        for y0, y1, x0, x1 in np.asarray(scaled_cells)[np.asarray(flagged, bool)].tolist():
            need[max(y0 - margin, 0) : y1 + margin, max(x0 - margin, 0) : x1 + margin] = True
        chosen = windows_touching(plan, need)
    return chosen, final_region(complete_pixels(plan, chosen)[:hs, :ws], size, margin)


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
    ``all_tiles=True``). ``image`` as :func:`inspect_image` takes it (float in [0, 1], (C, H, W)
    with C = 1 or 3)."""
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


# ---- reports ---------------------------------------------------------------------------------------------
def overlay_cascade(
    image,
    result: CascadeResult,
    alpha: float = 0.5,
    outline=(255, 210, 0),
    cracks: list[dict] | None = None,
    label_color=(0, 230, 255),
) -> np.ndarray:
    """uint8 RGB (H, W, 3): the image (float in [0, 1], (C, H, W), as :func:`inspect_image` takes
    it) with crack pixels tinted red and the cells of the flagged tiles outlined (1 pixel, yellow);
    in ``all-tiles`` mode no outlines are drawn. ``cracks``: components of
    :func:`crackscope.analysis.crack_measure.measure_cracks` to label, each with its bounding box
    (1 pixel, cyan) and ``#index length`` (in mm when the component has ``length_mm``, else px)."""
    x = _to_channels(check_image(image, "overlay_cascade"), int(np.shape(image)[0])).numpy()
    rgb = np.repeat(x, 3, axis=0) if x.shape[0] == 1 else x
    rgb = rgb.transpose(1, 2, 0).copy()
    rgb[result.mask] = (1 - alpha) * rgb[result.mask] + alpha * np.array([1.0, 0.0, 0.0], dtype=np.float32)
    rgb = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    if result.mode == "cascade":
        color = np.asarray(outline, dtype=np.uint8)
        for y0, y1, x0, x1 in result.cells()[result.flagged].tolist():
            if y1 <= y0 or x1 <= x0:  # a sliver of a cell that holds no pixel at the image's size
                continue
            rgb[y0, x0:x1] = rgb[y1 - 1, x0:x1] = color
            rgb[y0:y1, x0] = rgb[y0:y1, x1 - 1] = color
    if cracks:
        rgb = _label_cracks(rgb, cracks, label_color)
    return rgb


def _label_cracks(rgb: np.ndarray, cracks: list[dict], color) -> np.ndarray:
    """Each crack's bounding box and ``#index length`` on a dark patch, inside the image: above the
    box where there is room, else just inside its top edge."""
    from PIL import ImageDraw, ImageFont

    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    h, w = rgb.shape[:2]
    try:
        font = ImageFont.load_default(size=max(10, min(h, w) // 40))
    except TypeError:  # Pillow < 10.1: one bitmap size
        font = ImageFont.load_default()
    color = tuple(int(v) for v in color)
    for c in cracks:
        draw.rectangle((c["x0"], c["y0"], c["x1"] - 1, c["y1"] - 1), outline=color, width=1)
    for c in cracks:  # text over every box
        size = f"{c['length_mm']:.1f} mm" if "length_mm" in c else f"{c['length_px']:.0f} px"
        text = f"#{c['index']} {size}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 4, bottom - top + 4
        x = min(max(c["x0"], 0), max(w - tw, 0))
        y = c["y0"] - th if c["y0"] >= th else min(c["y0"] + 1, max(h - th, 0))
        draw.rectangle((x, y, x + tw - 1, y + th - 1), fill=(0, 0, 0))
        draw.text((x + 2 - left, y + 2 - top), text, fill=color, font=font)
    return np.asarray(im).copy()


def _rounded(row: dict) -> dict:
    """Floats to 6 significant digits, for the report files."""
    return {k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in row.items()}


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _csv(rows: list[dict], fieldnames: list[str] | None = None) -> bytes:
    import csv

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames or list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


SUMMARY_CSV = "summary.csv"
SKIPPED_TXT = "skipped.txt"


@dataclass
class _Setup:
    """The checked options and loaded models of one ``crackscope inspect-image`` call."""

    segmenter: TileSegmenter
    classifier: TileClassifier | None
    runtime: str
    tile: int
    window: int | None  # None: inspect_image's defaults (the classifier's operating point, ...)
    overlap: float | None
    batch: int
    scale: float
    threshold: float | None
    all_tiles: bool
    mm_per_pixel: float | None


def _check_options(
    out_dir: Path, classifier_path, tile, threshold, all_tiles, mm_per_pixel, window, overlap, batch, scale
):
    """Every option checked, one :class:`InputError` line each; returns (mm_per_pixel, scale)."""
    from crackscope.analysis.crack_measure import check_mm_per_pixel
    from crackscope.deploy.tiling import overlap_pixels

    mm_per_pixel = check_mm_per_pixel(mm_per_pixel, "--mm-per-pixel")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a directory")
    for name, value in (("--tile", tile), ("--window", window)):
        if value is not None and (isinstance(value, bool) or int(value) != value or int(value) < 1):
            raise InputError(f"{name} {value} must be a positive number of pixels")
    if isinstance(batch, bool) or int(batch) != batch or int(batch) < 1:
        raise InputError(f"--batch {batch} must be a positive number of windows")
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise InputError(f"--threshold {threshold} must be a probability in [0, 1]")
    if overlap is not None:
        overlap_pixels(int(window or DEFAULT_TILE), overlap)  # its range, naming --overlap
    scale = check_scale(scale, "--scale")
    if classifier_path is None and not all_tiles:
        raise InputError("--classifier is required unless --all-tiles is given")
    return mm_per_pixel, scale


def _setup(
    segmenter_path, classifier_path, runtime, tile, window, overlap, batch, scale, threshold, all_tiles, mm_per_pixel
) -> _Setup:
    """The models loaded (one :class:`InputError` line for a wrong run) and the defaults they set."""
    segmenter = load_segmenter(segmenter_path, batch_size=int(batch))
    clf = load_classifier(classifier_path, runtime=runtime) if classifier_path is not None else None
    tile = int(tile or (clf.tile if clf is not None and clf.tile else DEFAULT_TILE))
    return _Setup(
        segmenter=segmenter,
        classifier=clf,
        runtime=runtime,
        tile=tile,
        window=window,
        overlap=overlap,
        batch=int(batch),
        scale=scale,
        threshold=threshold,
        all_tiles=all_tiles,
        mm_per_pixel=mm_per_pixel,
    )


def _check_channels(image: np.ndarray, image_path: Path, setup: _Setup) -> None:
    for model, role in ((setup.segmenter, "segmenter"), (setup.classifier, "classifier")):
        if model is not None and image.shape[0] == 1 and model.channels == 3:
            raise InputError(f"image {image_path} is greyscale but the {role} {model.source} takes RGB images")


def _report(image: np.ndarray, image_path: Path, setup: _Setup) -> tuple[dict, dict[str, bytes]]:
    """The summary and the report files (name -> bytes) of one image; nothing written."""
    from crackscope.analysis.crack_measure import CRACK_COLUMNS, MM_COLUMNS, crack_summary, measure_cracks

    mm_per_pixel = setup.mm_per_pixel
    result = inspect_image(
        image,
        setup.classifier,
        setup.segmenter,
        tile=setup.tile,
        threshold=setup.threshold,
        all_tiles=setup.all_tiles,
        batch_size=setup.batch,
        window=setup.window,
        overlap=setup.overlap,
        scale=setup.scale,
    )
    t_measure = time.perf_counter()
    cracks = [_rounded(c) for c in measure_cracks(result.mask, mm_per_pixel)]
    measure_s = time.perf_counter() - t_measure
    classifier = setup.classifier
    summary = {
        "image": str(image_path),
        "classifier": None if classifier is None else classifier.source,
        "classifier_runtime": None if classifier is None else setup.runtime,
        "segmenter": setup.segmenter.source,
        **result.summary(),
        "cracks": {
            **_rounded(crack_summary(cracks, mm_per_pixel, largest=LABELLED_CRACKS)),
            "mm_per_pixel": mm_per_pixel,  # as given, not rounded
            "measure_s": round(measure_s, 6),
        },
    }
    columns = list(CRACK_COLUMNS) + (list(MM_COLUMNS) if mm_per_pixel is not None else [])
    files = {
        "mask.png": _png(result.mask.astype(np.uint8) * 255),
        "overlay.png": _png(overlay_cascade(image, result, cracks=cracks[:LABELLED_CRACKS])),
        "tiles.csv": _csv(result.tile_rows()),
        "cracks.csv": _csv(cracks, columns),
        "summary.json": (json.dumps(summary, indent=2) + "\n").encode("utf-8"),
    }
    return summary, files


def inspect_image_file(
    image_path,
    segmenter_path,
    out_dir,
    classifier_path=None,
    tile: int | None = None,
    threshold: float | None = None,
    all_tiles: bool = False,
    runtime: str = "torch",
    mm_per_pixel: float | None = None,
    window: int | None = None,
    overlap: float | None = None,
    batch: int = 64,
    scale: float = 1.0,
) -> dict:
    """``crackscope inspect-image IMAGE``: OUT/mask.png (0/255), OUT/overlay.png, OUT/tiles.csv (row,
    col, y0, x0, probability, flagged), OUT/cracks.csv and OUT/summary.json. Everything is checked
    and computed before the first file is written, and each file is written atomically: bad input
    writes nothing.

    ``tile``: default the classifier run's tile side (64 without one); ``threshold``: default the
    classifier's operating point (RUN/operating_point.json, else 0.5); ``window``, ``overlap``,
    ``batch``, ``scale``: the segmentation windows (default: the window and overlap the operating
    point was chosen for when it records them, else the segmenter's training crop or the tile side
    and 0.25; 64 per call) and the resampling of the image, as :func:`inspect_image` takes them. The crack components
    of the final mask are measured by :func:`crackscope.analysis.crack_measure.measure_cracks`
    (8-connected; skeleton length, max / mean width, area, bounding box; also in mm with
    ``mm_per_pixel`` > 0): one row each in cracks.csv, longest first; ``summary["cracks"]`` holds
    their count, totals and the :data:`LABELLED_CRACKS` longest, which the overlay labels."""
    from crackscope.io import atomic_write_bytes

    image_path, out_dir = Path(image_path), Path(out_dir)
    mm_per_pixel, scale = _check_options(
        out_dir, classifier_path, tile, threshold, all_tiles, mm_per_pixel, window, overlap, batch, scale
    )
    image = read_image(image_path)
    setup = _setup(
        segmenter_path,
        classifier_path,
        runtime,
        tile,
        window,
        overlap,
        batch,
        scale,
        threshold,
        all_tiles,
        mm_per_pixel,
    )
    _check_channels(image, image_path, setup)
    summary, files = _report(image, image_path, setup)
    for name, data in files.items():
        atomic_write_bytes(out_dir / name, data)
    return summary


def _output_names(files: list[Path]) -> list[str]:
    """OUT/<name>/ of each image: its stem, or stem_extension where two images share a stem."""
    stems = [p.stem for p in files]
    names = [f"{p.stem}_{p.suffix.lstrip('.').lower()}" if stems.count(p.stem) > 1 else p.stem for p in files]
    return [f"{n}_image" if n in (SUMMARY_CSV, SKIPPED_TXT) else n for n in names]


def inspect_folder(
    folder,
    segmenter_path,
    out_dir,
    classifier_path=None,
    tile: int | None = None,
    threshold: float | None = None,
    all_tiles: bool = False,
    runtime: str = "torch",
    mm_per_pixel: float | None = None,
    window: int | None = None,
    overlap: float | None = None,
    batch: int = 64,
    scale: float = 1.0,
    log: Callable[[str], None] | None = None,
) -> dict:
    """``crackscope inspect-image FOLDER``: every image of FOLDER (its ``images/`` subfolder if it has
    one; the files ``crackscope predict`` reads, in natural order) inspected as
    :func:`inspect_image_file` does, into OUT/<stem>/ (``<stem>_<ext>`` where two files share a
    stem), and OUT/summary.csv with one row per image (file, output, width, height, tiles, flagged,
    flagged_fraction, windows_segmented, crack_pixels, crack_count, total_length_px, max_width_px,
    with --mm-per-pixel also total_length_mm and max_width_mm, time_s: reading to written files).

    The options and models are checked before anything is written (one :class:`InputError` line).
    An image that cannot be read, or is greyscale for a colour model, is reported through ``log``,
    listed in OUT/skipped.txt (``path<TAB>reason``) and skipped; when none can be used it is one
    :class:`InputError` and nothing is written. Returns ``{"out", "rows", "skipped", "files"}``."""
    from crackscope.engine.image_predictions import list_prediction_images
    from crackscope.io import atomic_write_bytes, atomic_write_text

    log = log or (lambda _msg: None)
    folder, out_dir = Path(folder), Path(out_dir)
    mm_per_pixel, scale = _check_options(
        out_dir, classifier_path, tile, threshold, all_tiles, mm_per_pixel, window, overlap, batch, scale
    )
    try:
        files = list_prediction_images(folder)
    except InputError as err:
        raise InputError(f"image folder {str(err).removeprefix('--data ')}") from None
    setup = _setup(
        segmenter_path,
        classifier_path,
        runtime,
        tile,
        window,
        overlap,
        batch,
        scale,
        threshold,
        all_tiles,
        mm_per_pixel,
    )
    mm = setup.mm_per_pixel is not None
    rows, skipped = [], []
    for path, name in zip(files, _output_names(files)):
        t0 = time.perf_counter()
        try:
            image = read_image(path)
            _check_channels(image, path, setup)
        except InputError as err:
            log(f"skipped: {err}")
            skipped.append(f"{path}\t{err}")
            continue
        summary, report = _report(image, path, setup)
        for file, data in report.items():
            atomic_write_bytes(out_dir / name / file, data)
        c = summary["cracks"]
        row = {
            "file": str(path),
            "output": name,
            "width": summary["width"],
            "height": summary["height"],
            "tiles": summary["tiles"],
            "flagged": summary["flagged"],
            "flagged_fraction": summary["flagged_fraction"],
            "windows_segmented": summary["windows_segmented"],
            "crack_pixels": summary["crack_pixels"],
            "crack_count": c["count"],
            "total_length_px": c["total_length_px"],
            "max_width_px": c["max_width_px"],
        }
        if mm:
            row.update(total_length_mm=c["total_length_mm"], max_width_mm=c["max_width_mm"])
        row["time_s"] = round(time.perf_counter() - t0, 4)
        rows.append(row)
        log(
            f"{name}: {row['width']} x {row['height']}, {row['flagged']} of {row['tiles']} tiles flagged, "
            f"{row['crack_count']} cracks, {row['crack_pixels']} crack pixels ({row['time_s']:.2f} s)"
        )
    if not rows:
        first = skipped[0].split("\t", 1)[1] if skipped else ""
        raise InputError(f"image folder {folder}: none of the {len(files)} images could be used ({first})")
    atomic_write_bytes(out_dir / SUMMARY_CSV, _csv(rows))
    if skipped:
        atomic_write_text(out_dir / SKIPPED_TXT, "\n".join(skipped) + "\n")
    return {"out": str(out_dir), "rows": rows, "skipped": skipped, "files": len(files)}
