"""benchmarks/device/prepare.py's WebP copy: the same pixels and stems as the NEU-CLS BMPs, nothing
rewritten on a second call, and an image folder with no images is exit 2."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackscope.data.images import load_image

ROOT = Path(__file__).resolve().parents[2]
NEU = ROOT / ".." / "shared" / "datasets" / "NEU-CLS"


def _prepare():
    spec = importlib.util.spec_from_file_location("device_prepare", ROOT / "benchmarks" / "device" / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_webp_copies_hold_the_same_pixels_and_are_not_rewritten(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("Cr_1.bmp", "PS_10.bmp", "Sc_10.bmp"):
        shutil.copy(NEU / name, src / name)
    prepare = _prepare()
    assert prepare.convert(src, tmp_path / "dst") == 3
    for name in ("Cr_1", "PS_10", "Sc_10"):
        grey = np.asarray(Image.open(src / f"{name}.bmp").convert("L"))
        rgb = np.asarray(Image.open(tmp_path / "dst" / f"{name}.webp"))  # WebP has no grey mode
        assert rgb.dtype == np.uint8 and all(np.array_equal(rgb[..., c], grey) for c in range(3))
        # and what the training reads (grey, float in [0, 1]) is the same for both files
        assert np.array_equal(load_image(src / f"{name}.bmp", 1), load_image(tmp_path / "dst" / f"{name}.webp", 1))
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["Cr_1.webp", "PS_10.webp", "Sc_10.webp"]
    assert prepare.convert(src, tmp_path / "dst") == 0


def test_a_folder_without_images_is_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        _prepare().convert(tmp_path, tmp_path / "dst")
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == f"--data {tmp_path}: no images"
