"""The tile cascade for large images (AOIE-Net paper, Wu et al. 2025, Figure 1).

A fast binary tile classifier screens every tile of a large image; only the tiles it flags as
cracked go to the segmenter; the per-tile masks are stitched into one full-resolution mask. The
baseline (:func:`segment_all_tiles`) runs the segmenter on every tile of the same grid and stitches
the same way, so the two differ only in the tiles that are skipped.

* **Tiling** (:mod:`crackscope.data.tiles`, the grid the classifier was trained on): T x T tiles,
  non-overlapping, with the last row and column aligned to the image border (no padding; a
  544-pixel side with T = 64 has its last tile at 480). Each pixel is stitched from exactly one
  tile: the one owning its cell [kT, min((k+1)T, side)). Unflagged cells get probability 0.
* **Classifier**: any callable taking a float (N, C, h, w) batch of tiles in [0, 1] and returning
  (N,) crack probabilities. An optional ``channels`` attribute asks for grey (1) or RGB (3) tiles
  (default: the image's own channels). :class:`TileClassifier` wraps any logits function and
  resizes tiles to the run's input size: the run's PyTorch model (``runtime="torch"``) or its
  bit-packed XNOR/popcount twin (``runtime="packed"``, :mod:`crackscope.deploy.packed`; same
  predictions, about half the time per tile here).
* **Segmenter**: a callable (N, C, T, T) -> (N, T, T) crack probabilities, optionally with
  ``channels`` and ``threshold``; :class:`TileSegmenter` wraps a surface run. It is called on the
  flagged tiles only, in batches of ``batch_size``, and never when nothing is flagged.

:func:`load_classifier` / :func:`load_segmenter` build both from a run directory or a shipped
model folder (``crackscope.engine.runs.load_run``) and refuse, with one line, a run of the wrong
pipeline or class count. :func:`inspect_image_file` is ``crackscope inspect-image``; it also measures
the cracks of the final mask (:mod:`crackscope.analysis.crack_measure`).

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
from crackscope.data.tiles import TileGrid, extract_tiles, resize_tiles, stitch, tile_grid
from crackscope.engine.runs import OPERATING_POINT_FILE  # {"threshold": t, ...} chosen on validation
from crackscope.errors import InputError

__all__ = [
    "RUNTIMES",
    "TileClassifier",
    "TileSegmenter",
    "CascadeResult",
    "inspect_image",
    "segment_all_tiles",
    "load_classifier",
    "load_segmenter",
    "read_image",
    "to_channels",
    "check_image",
    "overlay_cascade",
    "inspect_image_file",
    "OPERATING_POINT_FILE",
    "DEFAULT_TILE",
    "LABELLED_CRACKS",
]

DEFAULT_TILE = 64
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
    and its operating point, the defaults of the cascade."""

    logits_fn: Callable[[torch.Tensor], torch.Tensor]
    crack_index: int = 1
    channels: int = 1
    input_size: tuple[int, int] | None = None
    batch_size: int = 256
    tile: int | None = None
    threshold: float = 0.5
    source: str = ""

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
    in chunks of ``batch_size``; ``threshold`` makes the binary mask."""

    model: Callable[[torch.Tensor], torch.Tensor]
    channels: int = 3
    threshold: float = 0.5
    batch_size: int = 64
    source: str = ""

    @torch.inference_mode()
    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        out = [
            torch.sigmoid(self.model(tiles[s : s + self.batch_size]).float())[:, 0]
            for s in range(0, len(tiles), self.batch_size)
        ]
        return torch.cat(out) if out else torch.zeros((0, *tiles.shape[-2:]))


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
    named ``crack``. Its ``threshold`` is RUN/operating_point.json's (chosen on validation) or 0.5.
    ``runtime``: ``"torch"`` (the PyTorch model) or ``"packed"`` (bit-packed, :func:`_packed`)."""
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
    threshold = 0.5
    op_file = path / OPERATING_POINT_FILE
    if op_file.is_file():
        try:
            threshold = float(json.loads(op_file.read_text())["threshold"])
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
    )


def load_segmenter(path: str | Path, batch_size: int = 64, role: str = "--segmenter") -> TileSegmenter:
    """A :class:`TileSegmenter` from a surface run or model folder (one output channel). Its
    threshold is the run's ``trainer.threshold``. Runs trained with a fixed ``data.size`` are
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
        threshold=float(cfg.trainer.threshold),
        batch_size=batch_size,
        source=str(path),
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
@dataclass
class CascadeResult:
    """What :func:`inspect_image` found.

    ``probability``: (H, W) float32 stitched crack probability (0 in unflagged cells); ``mask``: (H, W)
    bool, ``probability > mask_threshold``; ``grid``: the tiles; ``tile_probability``: (N,) classifier
    crack probability per tile (NaN where no classifier ran: ``mode == "all-tiles"``); ``flagged``:
    (N,) bool, the tiles that were segmented; ``timings``: seconds (``classify_s``, ``segment_s``,
    ``stitch_s``, ``total_s``)."""

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

    @property
    def n_tiles(self) -> int:
        return len(self.grid)

    @property
    def n_flagged(self) -> int:
        return int(self.flagged.sum())

    def tile_rows(self) -> list[dict]:
        """One row per tile: row, col, y0, x0, probability (empty without a classifier), flagged (0/1)."""
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
        return {
            "height": h,
            "width": w,
            "megapixels": round(h * w / 1e6, 6),
            "mode": self.mode,
            "tile": self.grid.tile,
            "tile_grid": [self.grid.rows, self.grid.cols],
            "tiling": "non-overlapping; last row / column aligned to the image border",
            "threshold": self.threshold,
            "mask_threshold": self.mask_threshold,
            "tiles": self.n_tiles,
            "flagged": self.n_flagged,
            "flagged_fraction": round(self.n_flagged / self.n_tiles, 6),
            "crack_pixels": int(self.mask.sum()),
            "crack_fraction": round(float(self.mask.mean()), 6),
            "timings_s": {k: round(v, 6) for k, v in self.timings.items()},
            "torch_threads": torch.get_num_threads(),
            **self.extra,
        }


def _prepared(image, channels: int | None, who: str) -> torch.Tensor:
    return _to_channels(image, channels, who) if channels is not None else _to_channels(image, int(np.shape(image)[0]))


def inspect_image(
    image,
    classifier: Callable | None,
    segmenter: Callable,
    tile: int = DEFAULT_TILE,
    threshold: float = 0.5,
    all_tiles: bool = False,
    mask_threshold: float | None = None,
    batch_size: int = 64,
) -> CascadeResult:
    """Cascade one image: classify every tile, segment the flagged ones (batched), stitch.

    ``image``: an image file, or a numpy array or torch tensor of dtype float32 or float64 with
    values in [0, 1], shaped (C, H, W) with C = 1 (grey) or 3 (RGB), as :func:`read_image` returns.
    Integer arrays (such as 8-bit images of 0..255) and floats outside [0, 1] are refused with one
    :class:`InputError` line naming the dtype or range (:func:`check_image`): convert 8-bit images
    with ``image / 255``. A tile is flagged when its crack probability is >= ``threshold``.
    ``all_tiles=True`` is the baseline: no classifier, every tile segmented (``classifier`` may be
    ``None``). ``mask_threshold``: default the segmenter's ``threshold`` attribute, else 0.5.
    ``batch_size``: tiles per segmenter call.
    """
    image = read_image(image) if isinstance(image, (str, Path)) else check_image(image, "inspect_image")
    if not all_tiles and classifier is None:
        raise InputError("a classifier is needed unless all_tiles=True")
    if not 0.0 <= float(threshold) <= 1.0:
        raise InputError(f"threshold={threshold!r} must be a probability in [0, 1]")
    mask_threshold = float(getattr(segmenter, "threshold", 0.5) if mask_threshold is None else mask_threshold)
    seg_image = _prepared(image, getattr(segmenter, "channels", None), "the segmenter")
    grid = tile_grid(seg_image.shape[1], seg_image.shape[2], tile)
    origins = grid.origins
    t_start = time.perf_counter()
    if all_tiles:
        tile_prob = np.full(len(grid), np.nan, dtype=np.float32)
        flagged = np.ones(len(grid), dtype=bool)
    else:
        cls_image = _prepared(image, getattr(classifier, "channels", None), "the classifier")
        with torch.inference_mode():
            prob = classifier(extract_tiles(cls_image, origins, grid.tile))
        tile_prob = torch.as_tensor(prob).detach().float().reshape(-1).cpu().numpy()
        if tile_prob.shape != (len(grid),) or not np.all(np.isfinite(tile_prob)):
            raise InputError(
                f"the classifier returned {tile_prob.shape} values for {len(grid)} tiles (or non-finite "
                f"ones); it must return one crack probability per tile"
            )
        flagged = tile_prob >= float(threshold)
    t_classified = time.perf_counter()
    chosen = np.flatnonzero(flagged)
    parts = []
    with torch.inference_mode():
        for s in range(0, len(chosen), batch_size):
            batch = extract_tiles(seg_image, origins[chosen[s : s + batch_size]], grid.tile)
            parts.append(torch.as_tensor(segmenter(batch)).float().reshape(len(batch), grid.tile, grid.tile))
    t_segmented = time.perf_counter()
    probs = torch.cat(parts) if parts else torch.zeros((0, grid.tile, grid.tile))
    probability = stitch(probs, grid, chosen)
    mask = probability > mask_threshold
    t_end = time.perf_counter()
    timings = {
        "classify_s": t_classified - t_start,
        "segment_s": t_segmented - t_classified,
        "stitch_s": t_end - t_segmented,
        "total_s": t_end - t_start,
    }
    return CascadeResult(
        probability,
        mask,
        grid,
        tile_prob,
        flagged,
        timings,
        "all-tiles" if all_tiles else "cascade",
        None if all_tiles else float(threshold),
        mask_threshold,
    )


def segment_all_tiles(
    image, segmenter: Callable, tile: int = DEFAULT_TILE, mask_threshold: float | None = None, batch_size: int = 64
) -> CascadeResult:
    """The baseline: the segmenter on every tile of the cascade's grid, stitched the same way.
    ``image`` as :func:`inspect_image` takes it (float in [0, 1], (C, H, W) with C = 1 or 3)."""
    if not isinstance(image, (str, Path)):
        check_image(image, "segment_all_tiles")
    return inspect_image(
        image, None, segmenter, tile=tile, all_tiles=True, mask_threshold=mask_threshold, batch_size=batch_size
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
        for y0, y1, x0, x1 in result.grid.cells()[result.flagged].tolist():
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
) -> dict:
    """``crackscope inspect-image``: OUT/mask.png (0/255), OUT/overlay.png, OUT/tiles.csv (row, col, y0,
    x0, probability, flagged), OUT/cracks.csv and OUT/summary.json. Everything is checked and computed
    before the first file is written, and each file is written atomically: bad input writes nothing.

    ``tile``: default the classifier run's tile side (64 without one); ``threshold``: default the
    classifier's operating point (RUN/operating_point.json, else 0.5). The crack components of the
    final mask are measured by :func:`crackscope.analysis.crack_measure.measure_cracks` (8-connected;
    skeleton length, max / mean width, area, bounding box; also in mm with ``mm_per_pixel`` > 0):
    one row each in cracks.csv, longest first; ``summary["cracks"]`` holds their count, totals and
    the :data:`LABELLED_CRACKS` longest, which the overlay labels."""
    from crackscope.analysis.crack_measure import (
        CRACK_COLUMNS,
        MM_COLUMNS,
        check_mm_per_pixel,
        crack_summary,
        measure_cracks,
    )
    from crackscope.io import atomic_write_bytes

    mm_per_pixel = check_mm_per_pixel(mm_per_pixel, "--mm-per-pixel")
    image_path, out_dir = Path(image_path), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a directory")
    if tile is not None and (isinstance(tile, bool) or int(tile) < 1):
        raise InputError(f"--tile {tile} must be a positive number of pixels")
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise InputError(f"--threshold {threshold} must be a probability in [0, 1]")
    if classifier_path is None and not all_tiles:
        raise InputError("--classifier is required unless --all-tiles is given")
    image = read_image(image_path)
    segmenter = load_segmenter(segmenter_path)
    classifier = load_classifier(classifier_path, runtime=runtime) if classifier_path is not None else None
    tile = int(tile or (classifier.tile if classifier is not None and classifier.tile else DEFAULT_TILE))
    h, w = image.shape[1:]
    if h < tile or w < tile:
        raise InputError(f"image {image_path} ({w} x {h} pixels) is smaller than one {tile} x {tile} tile")
    for model, role in ((segmenter, "segmenter"), (classifier, "classifier")):
        if model is not None and image.shape[0] == 1 and model.channels == 3:
            raise InputError(f"image {image_path} is greyscale but the {role} {model.source} takes RGB images")
    threshold = float(threshold if threshold is not None else (classifier.threshold if classifier else 0.5))
    result = inspect_image(image, classifier, segmenter, tile=tile, threshold=threshold, all_tiles=all_tiles)
    t_measure = time.perf_counter()
    cracks = [_rounded(c) for c in measure_cracks(result.mask, mm_per_pixel)]
    measure_s = time.perf_counter() - t_measure
    summary = {
        "image": str(image_path),
        "classifier": None if classifier is None else classifier.source,
        "classifier_runtime": None if classifier is None else runtime,
        "segmenter": segmenter.source,
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
    for name, data in files.items():
        atomic_write_bytes(out_dir / name, data)
    return summary
