"""``report/index.html`` of ``crackscope inspect-image FOLDER``: one self-contained page to look
through a folder's results in a browser, with no server and no internet.

One row per photo (its thumbnail and its overlay's, embedded in the page; the number of cracks, the
longest, the widest and the total length, in px and, with ``--mm-per-pixel``, in mm), worst first:
:func:`severity_key` (the widest crack, then the total length, then the count). A click on a row opens
the photo's overlay (``<output>/overlay.png``, linked relatively, so the folder works from a USB stick)
with its crack table; a click on a column heading sorts by it. Photos that could not be read are
listed with the reason. The page is rendered by a Jinja2 template (autoescaped) from plain rows.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import PurePath
from urllib.parse import quote

import numpy as np
from PIL import Image

__all__ = ["PhotoRow", "severity_key", "thumbnail_uri", "render_report", "REPORT_HTML", "MAX_CRACK_ROWS"]

REPORT_HTML = "index.html"
THUMBNAIL_PX = 128  # longest side of the embedded thumbnails
MAX_CRACK_ROWS = 200  # rows of a photo's crack table on the page (all of them are in its cracks.csv)


@dataclass
class PhotoRow:
    """One inspected photo as the report shows it: its summary.csv row (``file``, ``output``, ``width``,
    ``height``, ``crack_count``, ``total_length_px``, ``max_width_px``, ...), its cracks (rows of
    cracks.csv, longest first) and its two thumbnails as data URIs."""

    row: dict
    cracks: list[dict]
    thumbnail: str = ""
    overlay_thumbnail: str = ""
    extra: dict = field(default_factory=dict)


def severity_key(row: dict) -> tuple[float, float, int]:
    """Larger is worse: the widest crack (inspection codes grade cracks by width), then the total
    crack length, then the number of cracks; ``sorted(..., key=severity_key, reverse=True)`` puts
    the worst photo first."""
    return (float(row["max_width_px"]), float(row["total_length_px"]), int(row["crack_count"]))


def thumbnail_uri(rgb: np.ndarray, size: int = THUMBNAIL_PX) -> str:
    """A uint8 (H, W) or (H, W, 3) image as a JPEG data URI, its longest side ``size`` px at most."""
    im = Image.fromarray(rgb)
    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(value, digits: int = 1) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


def render_report(
    photos: list[PhotoRow], skipped: list[tuple[str, str]], mm_per_pixel: float | None, context: dict
) -> str:
    """The page's HTML. ``skipped``: (path, reason) of the photos that could not be used;
    ``context``: what the page header names (``folder``, ``segmenter``, ``classifier``, ``mode``)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("crackscope.deploy.cascade", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["urlpath"] = lambda path: quote(str(path))
    ordered = sorted(photos, key=lambda p: severity_key(p.row), reverse=True)
    rows = []
    for rank, p in enumerate(ordered, start=1):
        longest = p.cracks[0] if p.cracks else {}
        rows.append(
            {
                "rank": rank,
                "id": f"photo-{rank}",
                **p.row,
                "name": PurePath(str(p.row["file"])).name,
                "longest_px": longest.get("length_px", 0.0),
                "longest_mm": longest.get("length_mm", 0.0 if mm_per_pixel is not None else None),
                "cracks": p.cracks[:MAX_CRACK_ROWS],
                "more_cracks": max(len(p.cracks) - MAX_CRACK_ROWS, 0),
                "thumbnail": p.thumbnail,
                "overlay_thumbnail": p.overlay_thumbnail,
            }
        )
    return env.get_template("report.html").render(
        rows=rows, skipped=skipped, mm=mm_per_pixel is not None, mm_per_pixel=mm_per_pixel, context=context
    )
