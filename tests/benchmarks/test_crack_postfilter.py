"""benchmarks/crack_postfilter.py's two filters on hand-drawn masks: the minimum extent drops the
components whose bounding box is short on both sides, hysteresis keeps the components that hold
a confident pixel."""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import crack_postfilter as postfilter  # noqa: E402


def _three_components():
    mask = np.zeros((40, 40), bool)
    mask[2, 5:25] = True  # a horizontal line, 20 px long
    for k in range(12):  # a diagonal, 12 x 12 box, touching its neighbours by corners only
        mask[15 + k, 15 + k] = True
    mask[35:38, 35:38] = True  # a 3 x 3 speck
    return mask


def test_minimum_extent_keeps_components_as_long_as_the_longer_side_of_their_box():
    mask = _three_components()
    kept = postfilter.min_extent(mask, 12)
    assert kept[2, 5:25].all() and kept[15:27, 15:27].any() and not kept[35:38, 35:38].any()
    kept = postfilter.min_extent(mask, 13)  # the diagonal (12 px box) goes too
    assert kept.sum() == 20 and kept[2, 5:25].all()
    assert np.array_equal(postfilter.min_extent(mask, 1), mask)


def test_hysteresis_keeps_whole_components_that_reach_the_high_threshold():
    probability = np.where(_three_components(), 0.6, 0.1).astype(np.float32)
    probability[20, 20] = 0.97  # one confident pixel on the diagonal
    kept = postfilter.hysteresis(probability, 0.5, 0.9)
    assert kept[15:27, 15:27].sum() == 12  # the whole diagonal, through its corner-touching pixels
    assert not kept[2].any() and not kept[35:38, 35:38].any()
    assert not postfilter.hysteresis(np.zeros((4, 4), np.float32), 0.5, 0.9).any()
