"""benchmarks/sparse_inspection.py's comparison of the two modes, on mosaics whose answer is known by
construction: grey 128-px tiles, the crack tiles crossed by a dark line 3 px wide, a segmenter that
marks exactly the dark pixels, and classifiers whose flags are chosen by hand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from crackscope.data.survey_mosaics import TileBank
from crackscope.deploy.cascade import TileClassifier, TileSegmenter

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import sparse_inspection as bench  # noqa: E402

TILE = 128
GREY, DARK = 0.6, 0.1


def _bank(n_crack: int = 12, n_sound: int = 40) -> TileBank:
    crack, sound = [], []
    for k in range(n_crack):
        image = np.full((1, TILE, TILE), GREY, np.float32)
        truth = np.zeros((TILE, TILE), bool)
        row = 20 + 7 * k  # a horizontal line 3 px wide, 100 px long, at another row in every tile
        truth[row : row + 3, 14:114] = True
        image[0][truth] = DARK
        crack.append((image, truth, f"c{k}@0,0"))
    for k in range(n_sound):
        sound.append((np.full((1, TILE, TILE), GREY, np.float32), np.zeros((TILE, TILE), bool), f"s{k}@0,0"))
    return TileBank(crack, sound)


def _dark_pixels(x: torch.Tensor) -> torch.Tensor:
    """Logit +20 on a dark pixel, -20 on a grey one: probability 1 or 0 to float precision."""
    return 80.0 * (0.35 - x[:, :1])


def _classifier(flag_cracks: bool) -> TileClassifier:
    """Crack probability 1 on a tile with a dark pixel (or 0 whatever the tile when not ``flag_cracks``)."""

    def logits(x: torch.Tensor) -> torch.Tensor:
        dark = (x.amin((1, 2, 3)) < 0.35).float() if flag_cracks else torch.zeros(len(x))
        return torch.stack([torch.zeros(len(x)), 40.0 * dark - 20.0], 1)

    return TileClassifier(logits, crack_index=1, channels=1, tile=TILE, threshold=0.5, window=TILE, overlap=0.0)


def _args(images: int = 2) -> argparse.Namespace:
    return argparse.Namespace(images=images, crack_share=(0.1, 0.2), seed=3, repeats=1, follow=None)


def test_a_classifier_that_flags_the_crack_tiles_keeps_every_correct_pixel_and_skips_the_rest():
    bank = _bank()
    segmenter = TileSegmenter(_dark_pixels, channels=1, threshold=0.5, window=TILE)
    r = bench.run_side(_classifier(True), segmenter, bank, _args(), side=512)
    # 16 tiles per mosaic; 10-20 % crack tiles -> 2 or 3 of them, drawn by the seed
    assert r["n_images"] == 2 and r["megapixels"] == pytest.approx(2 * 512 * 512 / 1e6)
    assert 2 / 16 <= r["crack_tile_share"] <= 3 / 16
    # the classifier flags exactly the crack tiles, the segmenter marks exactly the line
    assert r["flagged_fraction"] == pytest.approx(r["crack_tile_share"])
    assert r["kept_true_crack_share"] == 1.0
    for mode in ("all_windows", "cascade"):
        v = r[mode]["vs_truth"]
        assert v["precision"] == 1.0 and v["recall"] == 1.0 and v["f1"] == 1.0
        fa = r[mode]["false_alarms"]
        assert fa["false_px_per_megapixel"] == 0 and fa["false_tile_share"] == 0
        assert r[mode]["seconds"] > 0
    assert r["speedup"] == pytest.approx(r["all_windows"]["seconds"] / r["cascade"]["seconds"])


def test_a_classifier_that_flags_nothing_keeps_nothing_and_the_report_says_so(tmp_path):
    bank = _bank()
    segmenter = TileSegmenter(_dark_pixels, channels=1, threshold=0.5, window=TILE)
    r = bench.run_side(_classifier(False), segmenter, bank, _args(), side=512)
    assert r["flagged_fraction"] == 0 and r["kept_true_crack_share"] == 0
    assert r["all_windows"]["vs_truth"]["f1"] == 1.0
    assert r["cascade"]["vs_truth"]["recall"] == 0
    result = {
        "command": "benchmarks/sparse_inspection.py --sides 512",
        "classifier": "c",
        "segmenter": "s",
        "n_photos": 1,
        "crack_tiles": len(bank.crack),
        "sound_tiles": len(bank.sound),
        "seed": 3,
        "crack_share": [0.1, 0.2],
        "sides": [r],
        "threads": 1,
        "environment": {"date": "2026-12-07", "cpu": "x", "cpus": 2, "torch": "t", "load_before": 0, "load_after": 0},
    }
    md = bench._markdown(result)
    assert "| 512 | 2 |" in md and "0.00%" in md  # the cascade's kept share
    # the targets: kept and F1 missed; no false crack anywhere (< 1 % of crack-free tiles) met in both modes
    target_line = next(line for line in md.splitlines() if line.startswith("- 512 px"))
    assert "keeps >= 98% **no**" in target_line and "F1 at least all windows' **no**" in target_line
    assert "all windows yes, cascade yes" in target_line
