"""What ``crackscope inspect-image`` draws and writes: the overlay of a cascade's result (crack
pixels tinted, flagged cells outlined, the longest cracks labelled) and the bytes of the report
files (PNG, CSV)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from crackscope.data.images import check_image, to_channels
from crackscope.deploy.cascade.core import CascadeResult

__all__ = ["overlay_cascade", "png_bytes", "csv_bytes"]


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
    x = to_channels(check_image(image, "overlay_cascade"), int(np.shape(image)[0]), check=False).numpy()
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


def png_bytes(array: np.ndarray) -> bytes:
    """A uint8 (H, W) or (H, W, 3) array as a PNG file's bytes."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def csv_bytes(rows: list[dict], fieldnames: list[str] | None = None) -> bytes:
    """The rows as a CSV file's bytes (UTF-8, ``\\n`` line ends), with a header of ``fieldnames``
    (default: the first row's keys)."""
    import csv

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames or list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")
