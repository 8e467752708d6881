"""What the page and the API accept as photos: uploaded files, checked and saved, and folders named
by path, inside the allowed root only. A refusal is an :class:`UploadError`: an HTTP status and one
line naming the file or folder; the caller removes whatever it had saved."""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from crackscope.errors import InputError

__all__ = ["UploadError", "save_upload", "allowed_folder", "safe_name", "CHUNK"]

CHUNK = 1 << 20


class UploadError(InputError):
    """A refused upload or folder: ``status`` (400 empty or unusable, 403 outside the allowed folder,
    404 no such folder, 413 too large, 415 not an image) and one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def safe_name(filename: str | None, taken: set[str]) -> str:
    """The file name an upload is saved under: its last path part, with characters other than
    letters, digits, ``.``, ``-``, ``_`` and spaces replaced, never hidden, and made unique among
    ``taken`` (``a.jpg``, ``a-2.jpg``, ...)."""
    name = re.sub(r"[^\w.\- ]", "_", Path(str(filename or "")).name).strip() or "photo"
    if name.startswith("."):
        name = "photo" + name
    stem, suffix = Path(name).stem, Path(name).suffix
    unique, k = name, 2
    while unique.lower() in taken:
        unique, k = f"{stem}-{k}{suffix}", k + 1
    taken.add(unique.lower())
    return unique


def save_upload(source: BinaryIO, filename: str, dest: Path, max_bytes: int) -> Path:
    """Copy an upload to ``dest`` (chunk by chunk, stopping past ``max_bytes``) and check that it is
    a non-empty image Pillow can identify; :class:`UploadError` naming ``filename`` otherwise."""
    from crackscope.data.images import image_size

    size = 0
    with open(dest, "wb") as out:
        while chunk := source.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise UploadError(413, f"{filename} is larger than the {max_bytes / 1e6:g} MB limit of one photo")
            out.write(chunk)
    if size == 0:
        raise UploadError(400, f"{filename} is empty")
    try:
        image_size(dest)
        with Image.open(dest) as im:
            kind = im.format
    except (InputError, OSError):
        raise UploadError(415, f"{filename} is not an image (no image format recognised)") from None
    extensions = Image.registered_extensions()
    if extensions.get(dest.suffix.lower()) != kind:  # named so that the folder inspection lists it
        suffix = next((ext for ext, fmt in extensions.items() if fmt == kind), ".img")
        dest = dest.rename(dest.with_name(dest.name + suffix))
    return dest


def allowed_folder(folder: str, root: Path) -> Path:
    """The folder of photos named ``folder`` (absolute, or relative to ``root``), resolved through
    symbolic links: it must lie inside ``root`` (403 otherwise) and exist (404)."""
    if not str(folder).strip():
        raise UploadError(400, "no folder given")
    root = root.resolve()
    path = Path(folder).expanduser()
    path = (path if path.is_absolute() else root / path).resolve()
    if not path.is_relative_to(root):
        raise UploadError(403, f"folder {folder} is outside the allowed folder {root}")
    if not path.is_dir():
        raise UploadError(404, f"folder {folder}: no such folder under {root}")
    return path
