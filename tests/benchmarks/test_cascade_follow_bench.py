"""benchmarks/cascade_follow.py's measurement on an image whose answer is worked out by hand: one
row of six 32-px tiles, a crack 3 px wide from x = 0 to 149 (tiles 0-4), a segmenter that returns
the pixels, a classifier that flags tile 0 only."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import cascade_follow as bench  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
T = 32


class _Pixels:
    threshold, channels = 0.5, 1

    def __call__(self, tiles):
        return tiles[:, 0]


class _FirstTile:
    tile, channels, window, overlap = T, 1, T, 0.0  # stitched windows: the region is the flagged cells

    def __call__(self, tiles):
        return torch.tensor([0.9] + [0.1] * (len(tiles) - 1))


def test_following_keeps_the_crack_the_cascade_cuts():
    image = np.zeros((1, T, 6 * T), np.float32)
    truth = np.zeros((T, 6 * T), bool)
    truth[14:17, :150] = True
    image[0][truth] = 1.0
    modes = {"cascade": {"follow": 0}, "follow": {"follow": 50, "follow_threshold": 0.0}}
    out = bench.measure([(image, truth)], _FirstTile(), _Pixels(), modes)["modes"]
    # every window and following find all 450 crack pixels; the cascade the 96 of tile 0
    assert out["all_windows"]["kept_true_crack_share"] == 1.0 and out["all_windows"]["vs_truth"]["f1"] == 1.0
    assert out["follow"]["kept_true_crack_share"] == 1.0 and out["follow"]["segmented_tile_share"] == 5 / 6
    assert out["cascade"]["kept_true_crack_share"] == pytest.approx(96 / 450)
    assert out["cascade"]["segmented_tile_share"] == 1 / 6
    assert out["cascade"]["vs_truth"]["recall"] == pytest.approx(96 / 450)
    assert all(v["components_per_image"] == 1 for v in out.values())
