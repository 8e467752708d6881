"""Reading image and mask files, for every image pipeline (surface, classify, the cascade): any
Pillow format, grey or colour, 8- or 16-bit, as float32 arrays in [0, 1]; an unreadable file is one
:class:`~crackscope.errors.InputError` naming it.

The checks of images given as arrays live here too: :func:`check_image` (a float (C, H, W) image in
[0, 1], C = 1 or 3) and :func:`to_channels` (grey or RGB as a model takes it)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from crackscope.errors import InputError

MASK_THRESHOLD = 128  # mask pixel >= 128 -> defect
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # read_image: 1 channel
IMAGE_CONTRACT = "float32/float64 in [0, 1], shaped (C, H, W) with C = 1 (grey) or 3 (RGB)"

_READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


# ---- reading single files ----------------------------------------------------------------------
def image_extensions() -> set[str]:
    return {ext.lower() for ext in Image.registered_extensions()}


def natural_key(stem: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", stem)]


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, from its header only; :class:`InputError` naming an unreadable file."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except _READ_ERRORS as e:
        raise InputError(f"cannot read image {path}: {e}") from None
    return int(h), int(w)


_header_size = image_size


def load_image(path: str | Path, in_channels: int = 1) -> np.ndarray:
    """An image file as float32 (C, H, W) in [0, 1]; grey is replicated to 3 channels if asked,
    colour is converted to luminance for 1 channel. 16-bit grey is scaled by 65535."""
    path = Path(path)
    if in_channels not in (1, 3):
        raise InputError(f"in_channels={in_channels!r} must be 1 or 3")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32) / 65535.0
                arr = np.clip(arr, 0.0, 1.0)[None]
                if in_channels == 3:
                    arr = np.repeat(arr, 3, axis=0)
                return np.ascontiguousarray(arr, dtype=np.float32)
            im = im.convert("L" if in_channels == 1 else "RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except _READ_ERRORS as e:
        raise InputError(f"cannot read image {path}: {e}") from None
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr, dtype=np.float32) / np.float32(255.0)


def load_mask(path: str | Path) -> np.ndarray:
    """A mask file as float32 (1, H, W) in {0, 1}: pixel >= 128 is defect."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im.convert("L"), dtype=np.uint8)
    except _READ_ERRORS as e:
        raise InputError(f"cannot read mask {path}: {e}") from None
    return (arr >= MASK_THRESHOLD).astype(np.float32)[None]


def read_image(path: str | Path) -> np.ndarray:
    """An image file as float32 (C, H, W) in [0, 1] with its own channels: 1 for grey files, 3 (RGB)
    for colour ones. :class:`InputError` naming a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image {path}: no such file")
    try:
        with Image.open(path) as im:
            mode = im.mode
    except _READ_ERRORS as e:
        raise InputError(f"cannot read image {path}: {e}") from None
    return load_image(path, 1 if mode in GREY_MODES else 3)


# ---- images given as arrays ----------------------------------------------------------------------
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


def to_channels(
    image: np.ndarray | torch.Tensor, channels: int, who: str = "the model", *, check: bool = True
) -> torch.Tensor:
    """A (C, H, W) image in [0, 1] (:func:`check_image`: a float dtype, C = 1 or 3) with
    ``channels`` channels: as is, or colour -> luminance with Pillow's integer ITU-R 601 weights
    (exactly ``convert("L")`` for 8-bit images, which is how grey models were trained). A grey
    image for a colour model is refused: its colour is unknown. ``check=False`` skips
    :func:`check_image` for an image it has already accepted (it reads every pixel)."""
    if check:
        check_image(image, "to_channels")
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


def normalize_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise InputError(f"size={size!r} must be None, an integer or (height, width)") from None
    if h <= 0 or w <= 0:
        raise InputError(f"size={size!r} must be positive")
    return h, w
