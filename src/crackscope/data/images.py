"""Reading image and mask files, for every image pipeline (surface, classify, the cascade): any
Pillow format, grey or colour, 8- or 16-bit, as float32 arrays in [0, 1]; an unreadable file is one
:class:`~crackscope.errors.InputError` naming it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from crackscope.errors import InputError

MASK_THRESHOLD = 128  # mask pixel >= 128 -> defect

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
