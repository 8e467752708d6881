"""Make what a lent GPU machine needs for the NEU-CLS runs, in the ignored folder ``.device/``.

The device tool copies the working tree (tracked files plus carried ignored paths, 64 MiB in all)
and nothing beside it, so ``../shared/datasets/NEU-CLS`` does not travel. This writes:

* ``.device/NEU-CLS/``: every NEU-CLS image as lossless WebP (stored as RGB with three equal channels, which
  WebP needs and the loader reads back as the same grey pixels; the same stems and order, so
  the same split; about 22 KB an image against 40 KB of BMP), each checked pixel for pixel against
  its source and written through a temporary file, so a killed run leaves no half image;
* ``.device/wheels/``: the wheels of the packages crackscope imports that the device image lacks
  (``DEVICE_MISSING``; the image's list is in the device tool's KINDS.md), for its Python 3.12,
  at the versions installed here.

It prints the size that will travel against the limit and exits 2 (one line) when it is over it
or when the source folder has no images.

    .venv/bin/python benchmarks/device/prepare.py [--data ../shared/datasets/NEU-CLS] [--no-wheels]
    .venv/bin/python benchmarks/device/prepare.py --wheels-only   # only .device/wheels (wavefield_paper.sh)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from crackscope.data.images import image_extensions

ROOT = Path(__file__).resolve().parents[2]
DEVICE_DIR = ROOT / ".device"
LIMIT_BYTES = 64 << 20  # what one device call may carry, working tree included
DEVICE_MISSING = ("pydantic", "pydantic_core", "annotated_types", "typing_inspection")
WHEEL_PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)


def convert(src: Path, dst: Path) -> int:
    """Lossless WebP copies of the images of ``src`` in ``dst`` (kept if already there and equal);
    returns how many were written."""
    exts = image_extensions()  # what crackscope's loaders read
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in exts)
    if not files:
        raise SystemExit(_fail(f"--data {src}: no images"))
    dst.mkdir(parents=True, exist_ok=True)
    written = 0
    for f in files:
        out = dst / f"{f.stem}.webp"
        pixels = np.asarray(Image.open(f).convert("L"))
        if out.exists() and np.array_equal(np.asarray(Image.open(out).convert("L")), pixels):
            continue
        tmp = out.with_name(out.name + ".tmp")
        Image.fromarray(pixels).save(tmp, "WEBP", lossless=True, quality=100, method=6)
        if not np.array_equal(np.asarray(Image.open(tmp).convert("L")), pixels):
            raise SystemExit(_fail(f"{f}: the WebP copy is not pixel-identical"))
        os.replace(tmp, out)
        written += 1
    return written


def download_wheels(dst: Path) -> list[str]:
    """pip-download the wheels of DEVICE_MISSING for CPython 3.12 (the device's Python)."""
    dst.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}=={importlib.metadata.version(name)}" for name in DEVICE_MISSING]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        *[f"--platform={p}" for p in WHEEL_PLATFORMS],
        "-d",
        str(dst),
        *specs,
    ]
    subprocess.run(cmd, check=True)
    return specs


def travelling_bytes() -> int:
    """Tracked and untracked-not-ignored files plus .device/: what a call carrying .device sends."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    files = [ROOT / p.decode() for p in listed if p] + [p for p in DEVICE_DIR.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files if p.is_file())


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "NEU-CLS")
    ap.add_argument("--no-wheels", action="store_true", help="skip the wheel download")
    ap.add_argument(
        "--wheels-only", action="store_true", help="only the wheels (for device/wavefield_paper.sh): no NEU-CLS copy"
    )
    a = ap.parse_args()
    if a.no_wheels and a.wheels_only:
        return _fail("--no-wheels and --wheels-only leave nothing to do")
    if not a.wheels_only:
        if not a.data.is_dir():
            return _fail(f"--data {a.data}: not a folder")
        n = convert(a.data, DEVICE_DIR / "NEU-CLS")
        print(f".device/NEU-CLS: {n} images written, {len(list((DEVICE_DIR / 'NEU-CLS').glob('*.webp')))} in all")
    if not a.no_wheels:
        print("wheels:", ", ".join(download_wheels(DEVICE_DIR / "wheels")))
    size = travelling_bytes()
    print(f"a call carrying .device sends {size / 2**20:.1f} MiB of {LIMIT_BYTES / 2**20:.0f} MiB")
    return _fail(f"{size / 2**20:.1f} MiB is over the device limit") if size > LIMIT_BYTES else 0


if __name__ == "__main__":
    sys.exit(main())
