"""Prediction on a user's folder of images, shared by the image pipelines: which files to read,
reading them with unreadable ones listed and skipped (never fatal unless none reads), and the
summary files OUT/predictions.csv and OUT/skipped.txt."""

from __future__ import annotations

from pathlib import Path

from crackscope.data.images import image_extensions, load_image, natural_key
from crackscope.errors import InputError
from crackscope.io import atomic_write_csv, atomic_write_text


def list_prediction_images(data: Path) -> list[Path]:
    """Images to predict: DATA's ``Source Images/`` or ``images/`` subfolder if present, else DATA."""
    data = Path(data)
    if data.is_file():
        return [data]
    if not data.is_dir():
        raise InputError(f"--data {data}: no such file or folder")
    for sub in ("Source Images", "images"):
        if (data / sub).is_dir():
            data = data / sub
            break
    exts = image_extensions()
    files = sorted(
        (p for p in data.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in exts),
        key=lambda p: natural_key(p.stem),
    )
    if not files:
        raise InputError(f"--data {data}: no image files found")
    return files


def readable_images(files, channels: int, log, skipped: list):
    """(path, image) for every file that reads; an unreadable one is reported through ``log`` and
    appended to ``skipped`` as "path<TAB>reason" instead."""
    for path in files:
        try:
            image = load_image(path, channels)
        except InputError as err:
            log(f"skipped: {err}")
            skipped.append(f"{path}\t{err}")
            continue
        yield path, image


def finish_predictions(out_dir: Path, rows: list[dict], skipped: list[str], data, n_files: int) -> dict:
    """OUT/predictions.csv (and OUT/skipped.txt); :class:`InputError` when no image could be read."""
    if not rows:
        raise InputError(f"--data {data}: none of the {n_files} images could be read")
    atomic_write_csv(out_dir / "predictions.csv", rows)
    if skipped:
        atomic_write_text(out_dir / "skipped.txt", "\n".join(skipped) + "\n")
    return {"n_predicted": len(rows), "n_skipped": len(skipped), "out": str(out_dir)}


def skipped_note(result: dict, out_dir) -> str:
    """``"; skipped N unreadable (see OUT/skipped.txt)"`` for a :func:`finish_predictions` result
    that skipped files, else ``""``: the tail of the line ``crackscope predict`` prints."""
    n = result["n_skipped"]
    return f"; skipped {n} unreadable (see {Path(out_dir) / 'skipped.txt'})" if n else ""


def image_onnx_inputs(channels: int, size, batch: int, free_sizes: tuple[tuple[int, int], ...]):
    """ONNX input of an image model: (batch, C, H, W) at the config's fixed ``size``, or, without one,
    dynamic H and W checked at each of ``free_sizes`` (the first is traced)."""
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
        return "image", [(batch, channels, h, w)], {0: "batch"}
    shapes = [(batch if k == 0 else 1, channels, h, w) for k, (h, w) in enumerate(free_sizes)]
    return "image", shapes, {0: "batch", 2: "height", 3: "width"}
