"""The cascade's window bookkeeping counted on the lattice of window edges
(crackscope.deploy.tiling.windows_meeting_boxes, complete_pixels) against per-pixel brute force."""

import numpy as np
import pytest

from crackscope.deploy.tiling import complete_pixels, plan_windows, windows_meeting_boxes


def _weighs(plan) -> np.ndarray:
    """(windows, canvas H, canvas W) bool: where each window's blending weight is positive."""
    out = np.zeros((len(plan), *plan.canvas), bool)
    for k, (y, x) in enumerate(plan.origins.tolist()):
        out[k, y : y + plan.window, x : x + plan.window] = plan.weight(k) > 0
    return out


@pytest.mark.parametrize("size,window,overlap", [((150, 200), 48, 0.25), ((97, 61), 32, 0.5), ((128, 128), 32, 0.0)])
def test_windows_meeting_boxes_are_the_windows_whose_weight_meets_a_box_pixel(size, window, overlap):
    rng = np.random.default_rng(0)
    plan = plan_windows(*size, window, overlap)
    weighs = _weighs(plan)[:, : size[0], : size[1]]
    for _ in range(20):
        n = int(rng.integers(0, 4))
        y0 = rng.integers(-10, size[0], n)
        x0 = rng.integers(-10, size[1], n)
        boxes = np.stack([y0, y0 + rng.integers(0, 40, n), x0, x0 + rng.integers(0, 40, n)], 1)
        region = np.zeros(size, bool)
        for a, b, c, d in boxes.tolist():
            region[max(a, 0) : max(b, 0), max(c, 0) : max(d, 0)] = True
        expected = np.flatnonzero((weighs & region).any(axis=(1, 2)))
        assert np.array_equal(windows_meeting_boxes(plan, boxes), expected)


@pytest.mark.parametrize("size,window,overlap", [((150, 200), 48, 0.25), ((97, 61), 32, 0.5), ((64, 96), 32, 0.0)])
def test_complete_pixels_are_those_no_missing_window_weighs(size, window, overlap):
    rng = np.random.default_rng(1)
    plan = plan_windows(*size, window, overlap)
    weighs = _weighs(plan)
    for _ in range(10):
        given = np.flatnonzero(rng.random(len(plan)) < rng.random())
        missing = np.setdiff1d(np.arange(len(plan)), given)
        assert np.array_equal(complete_pixels(plan, given), ~weighs[missing].any(0))
