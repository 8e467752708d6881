"""``crackscope inspect-image`` on an image file (:func:`inspect_image_file`) or a folder of them
(:func:`inspect_folder`): the models loaded from their runs, the cascade run on each image, the
cracks of the final mask measured (:mod:`crackscope.analysis.crack_measure`) and the report files
written. Every option is an :class:`~crackscope.deploy.inspect_options.InspectOptions`, checked
before anything is read or written."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crackscope.data.images import read_image
from crackscope.deploy.cascade.core import default_tile, inspect_image
from crackscope.deploy.cascade.models import TileClassifier, TileSegmenter, load_classifier, load_segmenter
from crackscope.deploy.cascade.render import csv_bytes, overlay_cascade, png_bytes
from crackscope.deploy.inspect_options import InspectOptions, inspect_options
from crackscope.errors import InputError

__all__ = ["inspect_image_file", "inspect_folder", "LABELLED_CRACKS", "SUMMARY_CSV", "SKIPPED_TXT"]
# OUT/index.html of a folder: crackscope.deploy.cascade.report_html

LABELLED_CRACKS = 5  # the longest crack components, labelled on overlay.png and listed in summary.json
SUMMARY_CSV = "summary.csv"
SKIPPED_TXT = "skipped.txt"


def _rounded(row: dict) -> dict:
    """Floats to 6 significant digits, for the report files."""
    return {k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in row.items()}


@dataclass
class _Setup:
    """The loaded models of one ``crackscope inspect-image`` call and its options, ``tile`` filled
    in (the classifier run's tile side, else :data:`DEFAULT_TILE`); ``window``, ``overlap`` and
    ``threshold`` left ``None`` are :func:`inspect_image`'s defaults (the classifier's operating point, ...)."""

    segmenter: TileSegmenter
    classifier: TileClassifier | None
    options: InspectOptions


def _check_paths(out_dir: Path, classifier_path, options: InspectOptions) -> None:
    """The checks of the output folder and the classifier that :class:`InspectOptions` cannot make
    (they are arguments, not options); one :class:`InputError` line each."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a directory")
    if classifier_path is None and not options.all_tiles:
        raise InputError("--classifier is required unless --all-tiles is given")


def _setup(segmenter_path, classifier_path, options: InspectOptions) -> _Setup:
    """The models loaded (one :class:`InputError` line for a wrong run) and the defaults they set."""
    segmenter = load_segmenter(segmenter_path, batch_size=options.batch, tta=options.tta)
    clf = load_classifier(classifier_path, runtime=options.runtime) if classifier_path is not None else None
    tile = default_tile(clf, options.tile)
    return _Setup(segmenter=segmenter, classifier=clf, options=options.model_copy(update={"tile": tile}))


def _check_channels(image: np.ndarray, image_path: Path, setup: _Setup) -> None:
    for model, role in ((setup.segmenter, "segmenter"), (setup.classifier, "classifier")):
        if model is not None and image.shape[0] == 1 and model.channels == 3:
            raise InputError(f"image {image_path} is greyscale but the {role} {model.source} takes RGB images")


@dataclass
class _Report:
    """What one image gives: its summary, its report files (name -> bytes), its cracks (rows of
    cracks.csv) and the overlay (uint8 RGB), for the folder's index.html."""

    summary: dict
    files: dict[str, bytes]
    cracks: list[dict]
    overlay: np.ndarray


def _report(image: np.ndarray, image_path: Path, setup: _Setup) -> _Report:
    """The summary and the report files of one image; nothing written."""
    from crackscope.analysis.crack_measure import CRACK_COLUMNS, MM_COLUMNS, crack_summary, measure_cracks

    mm_per_pixel = setup.options.mm_per_pixel
    result = inspect_image(image, setup.classifier, setup.segmenter, setup.options)
    t_measure = time.perf_counter()
    cracks = [_rounded(c) for c in measure_cracks(result.mask, mm_per_pixel)]
    measure_s = time.perf_counter() - t_measure
    classifier = setup.classifier
    summary = {
        "image": str(image_path),
        "classifier": None if classifier is None else classifier.source,
        "classifier_runtime": None if classifier is None else classifier.runtime,
        "segmenter": setup.segmenter.source,
        "segmenter_tta": setup.segmenter.tta,
        **result.summary(),
        "cracks": {
            **_rounded(crack_summary(cracks, mm_per_pixel, largest=LABELLED_CRACKS)),
            "mm_per_pixel": mm_per_pixel,  # as given, not rounded
            "measure_s": round(measure_s, 6),
        },
    }
    columns = list(CRACK_COLUMNS) + (list(MM_COLUMNS) if mm_per_pixel is not None else [])
    overlay = overlay_cascade(image, result, cracks=cracks[:LABELLED_CRACKS])
    files = {
        "mask.png": png_bytes(result.mask.astype(np.uint8) * 255),
        "overlay.png": png_bytes(overlay),
        "tiles.csv": csv_bytes(result.tile_rows()),
        "cracks.csv": csv_bytes(cracks, columns),
        "summary.json": (json.dumps(summary, indent=2) + "\n").encode("utf-8"),
    }
    return _Report(summary, files, cracks, overlay)


def inspect_image_file(
    image_path,
    segmenter_path,
    out_dir,
    classifier_path=None,
    options: InspectOptions | None = None,
    **keywords,
) -> dict:
    """``crackscope inspect-image IMAGE``: OUT/mask.png (0/255), OUT/overlay.png, OUT/tiles.csv (row,
    col, y0, x0, probability, flagged), OUT/cracks.csv and OUT/summary.json. Everything is checked
    and computed before the first file is written, and each file is written atomically: bad input
    writes nothing.

    ``options``: an :class:`InspectOptions`; keywords named as its fields (``tile=``, ``batch=``, ...)
    set options on top of it. ``tile``: default the classifier run's tile side (64 without one);
    ``threshold``: default the classifier's operating point (RUN/operating_point.json, else 0.5);
    ``window``, ``overlap``, ``batch``, ``scale``: the segmentation windows (default: the window and
    overlap the operating point was chosen for when it records them, else the segmenter's training
    crop or the tile side and 0.25; 64 per call) and the resampling of the image, as
    :func:`inspect_image` takes them. The crack components of the final mask are measured by
    :func:`crackscope.analysis.crack_measure.measure_cracks` (8-connected; skeleton length, max /
    mean width, area, bounding box; also in mm with ``mm_per_pixel`` > 0): one row each in
    cracks.csv, longest first; ``summary["cracks"]`` holds their count, totals and the
    :data:`LABELLED_CRACKS` longest, which the overlay labels."""
    from crackscope.io import atomic_write_bytes

    options = inspect_options(options, keywords, "inspect_image_file")
    image_path, out_dir = Path(image_path), Path(out_dir)
    _check_paths(out_dir, classifier_path, options)
    image = read_image(image_path)
    setup = _setup(segmenter_path, classifier_path, options)
    _check_channels(image, image_path, setup)
    report = _report(image, image_path, setup)
    for name, data in report.files.items():
        atomic_write_bytes(out_dir / name, data)
    return report.summary


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
    options: InspectOptions | None = None,
    log: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    **keywords,
) -> dict:
    """``crackscope inspect-image FOLDER``: every image of FOLDER (its ``images/`` subfolder if it has
    one; the files ``crackscope predict`` reads, in natural order) inspected as
    :func:`inspect_image_file` does, into OUT/<stem>/ (``<stem>_<ext>`` where two files share a
    stem), and OUT/summary.csv with one row per image (file, output, width, height, tiles, flagged,
    flagged_fraction, windows_segmented, crack_pixels, crack_count, total_length_px, max_width_px,
    with --mm-per-pixel also total_length_mm and max_width_mm, time_s: reading to written files), and
    OUT/index.html, the report to open in a browser (:mod:`.report_html`: worst photos first, each
    with its overlay and crack table, the unreadable ones listed). ``options`` and the keywords as
    :func:`inspect_image_file` takes them; ``progress(done, total)`` is called after each image.

    The options and models are checked before anything is written (one :class:`InputError` line).
    An image that cannot be read, or is greyscale for a colour model, is reported through ``log``,
    listed in OUT/skipped.txt (``path<TAB>reason``) and skipped; when none can be used it is one
    :class:`InputError` and nothing is written. Returns ``{"out", "rows", "skipped", "files"}``."""
    from crackscope.deploy.cascade.report_html import REPORT_HTML, PhotoRow, render_report, thumbnail_uri
    from crackscope.engine.image_predictions import list_prediction_images
    from crackscope.io import atomic_write_bytes, atomic_write_text

    log = log or (lambda _msg: None)
    progress = progress or (lambda _done, _total: None)
    options = inspect_options(options, keywords, "inspect_folder")
    folder, out_dir = Path(folder), Path(out_dir)
    _check_paths(out_dir, classifier_path, options)
    try:
        files = list_prediction_images(folder)
    except InputError as err:
        raise InputError(f"image folder {str(err).removeprefix('--data ')}") from None
    setup = _setup(segmenter_path, classifier_path, options)
    mm = options.mm_per_pixel is not None
    rows, skipped, photos = [], [], []
    for done, (path, name) in enumerate(zip(files, _output_names(files)), start=1):
        t0 = time.perf_counter()
        try:
            image = read_image(path)
            _check_channels(image, path, setup)
        except InputError as err:
            log(f"skipped: {err}")
            skipped.append((str(path), str(err)))
            progress(done, len(files))
            continue
        report = _report(image, path, setup)
        for file, data in report.files.items():
            atomic_write_bytes(out_dir / name / file, data)
        summary = report.summary
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
        grey = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image
        photo = (np.clip(grey.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)
        photos.append(PhotoRow(row, report.cracks, thumbnail_uri(photo), thumbnail_uri(report.overlay)))
        progress(done, len(files))
        log(
            f"{name}: {row['width']} x {row['height']}, {row['flagged']} of {row['tiles']} tiles flagged, "
            f"{row['crack_count']} cracks, {row['crack_pixels']} crack pixels ({row['time_s']:.2f} s)"
        )
    if not rows:
        first = skipped[0][1] if skipped else ""
        raise InputError(f"image folder {folder}: none of the {len(files)} images could be used ({first})")
    atomic_write_bytes(out_dir / SUMMARY_CSV, csv_bytes(rows))
    if skipped:
        atomic_write_text(out_dir / SKIPPED_TXT, "".join(f"{path}\t{reason}\n" for path, reason in skipped))
    context = {
        "folder": str(folder),
        "segmenter": setup.segmenter.source,
        "classifier": None if setup.classifier is None else setup.classifier.source,
        "mode": "all windows" if options.all_tiles else "cascade",
    }
    page = render_report(photos, skipped, options.mm_per_pixel, context)
    atomic_write_text(out_dir / REPORT_HTML, page)
    return {
        "out": str(out_dir),
        "rows": rows,
        "skipped": [f"{path}\t{reason}" for path, reason in skipped],
        "files": len(files),
    }
