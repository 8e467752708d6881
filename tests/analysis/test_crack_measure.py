"""Crack measurements (crackscope.analysis.crack_measure) against shapes of known geometry: a bar of
known length and width, diagonal lines, a ring, separate and corner-touching blobs, the empty mask,
the millimetre conversion, and the inputs it refuses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crackscope.analysis.crack_measure import CRACK_COLUMNS, MM_COLUMNS, crack_summary, measure_cracks
from crackscope.errors import InputError


def _bar(h=20, w=60, y=8, x=10, thick=3, long=40):
    m = np.zeros((h, w), dtype=bool)
    m[y : y + thick, x : x + long] = True
    return m


def test_a_3_by_40_bar_is_about_40_long_and_3_wide():
    (c,) = measure_cracks(_bar())
    # The skeleton is a chain of pixel centres, so a 40-pixel run is at most 39 steps long (0.98
    # each along a row), and thinning may end it up to half the width (1.5, so up to 2 whole pixels)
    # inside either tip: 0.98 x (35 .. 39) = 34.3 .. 38.2.
    assert 34.3 <= c["length_px"] <= 38.3
    assert c["max_width_px"] == pytest.approx(3)  # 2 x distance transform (2) - 1: the border half a pixel in
    assert c["mean_width_px"] == pytest.approx(3, abs=0.25)  # tips, where the skeleton meets the border, read less
    assert (c["area_px"], c["y0"], c["x0"], c["y1"], c["x1"]) == (120, 8, 10, 11, 50)
    (v,) = measure_cracks(_bar().T)  # the same bar upright
    assert 34.3 <= v["length_px"] <= 38.3 and v["max_width_px"] == pytest.approx(3)


@pytest.mark.parametrize("n", [2, 9, 30])
def test_a_diagonal_one_pixel_line_is_n_minus_1_diagonal_steps(n):
    """n - 1 diagonal steps of 1.406 and no corner (every inner pixel's two steps are in line)."""
    for line in (np.eye(n, dtype=bool), np.fliplr(np.eye(n, dtype=bool))):
        mask = np.pad(line, 3)
        (c,) = measure_cracks(mask)
        assert c["length_px"] == pytest.approx((n - 1) * 1.406)
        assert c["max_width_px"] == pytest.approx(1) and c["mean_width_px"] == pytest.approx(1)
        assert c["area_px"] == n


def test_a_one_pixel_horizontal_line_has_unit_steps():
    m = np.zeros((5, 30), dtype=bool)
    m[2, 4:24] = True
    (c,) = measure_cracks(m)
    assert c["length_px"] == pytest.approx(19 * 0.980) and c["max_width_px"] == pytest.approx(1)


def test_a_ring_measures_its_circumference_within_the_chain_code_bias():
    yy, xx = np.mgrid[:80, :80]
    r = np.hypot(yy - 40, xx - 40)
    ring = (r >= 19) & (r < 22)  # centre line ~ radius 20.5, about 3 px wide
    (c,) = measure_cracks(ring)
    # the corner-count estimator takes out the 8-direction chain's bias (+5.5 % on a circle)
    assert 2 * math.pi * 20.5 * 0.97 <= c["length_px"] <= 2 * math.pi * 20.5 * 1.03
    assert c["max_width_px"] == pytest.approx(3)
    # off the grid's axes the skeleton often sits off the ring's middle line, and reads up to 1 px less
    assert 2.0 <= c["mean_width_px"] <= 3


def test_separate_blobs_are_separate_components_and_corner_contact_joins_them():
    m = np.zeros((40, 40), dtype=bool)
    m[2:6, 2:5] = True
    m[20:23, 10:30] = True
    cracks = measure_cracks(m)
    assert len(cracks) == 2 and [c["index"] for c in cracks] == [1, 2]
    assert (cracks[0]["y0"], cracks[0]["x0"], cracks[0]["area_px"]) == (20, 10, 60)  # the longer one first
    assert (cracks[1]["y0"], cracks[1]["x0"], cracks[1]["area_px"]) == (2, 2, 12)
    assert cracks[0]["length_px"] > cracks[1]["length_px"]
    touching = np.zeros((10, 10), dtype=bool)
    touching[1:4, 1:4] = touching[4:7, 4:7] = True  # they share one corner: 8-connected, one crack
    assert len(measure_cracks(touching)) == 1


def test_an_empty_mask_has_no_cracks():
    assert measure_cracks(np.zeros((16, 16), dtype=bool)) == []
    s = crack_summary([], 0.5)
    assert s["count"] == 0 and s["total_length_px"] == 0 and s["largest"] == [] and s["total_length_mm"] == 0


def test_millimetres_are_pixels_times_the_pixel_size():
    m = _bar()
    m[0:2, 0:5] = True
    px = measure_cracks(m)
    mm = measure_cracks(m, mm_per_pixel=0.25)
    assert all(set(c) == set(CRACK_COLUMNS) for c in px)
    assert all(set(c) == set(CRACK_COLUMNS) | set(MM_COLUMNS) for c in mm)
    for a, b in zip(px, mm):
        assert {k: b[k] for k in CRACK_COLUMNS} == a
        assert b["length_mm"] == pytest.approx(a["length_px"] * 0.25)
        assert b["max_width_mm"] == pytest.approx(a["max_width_px"] * 0.25)
        assert b["mean_width_mm"] == pytest.approx(a["mean_width_px"] * 0.25)
        assert b["area_mm2"] == pytest.approx(a["area_px"] * 0.25**2)
    s = crack_summary(mm, 0.25, largest=1)
    assert s["count"] == 2 and len(s["largest"]) == 1 and s["largest"][0] == mm[0]
    assert s["total_length_mm"] == pytest.approx(sum(c["length_px"] for c in px) * 0.25)
    assert s["total_area_px"] == int(m.sum()) and s["max_width_mm"] == pytest.approx(0.75)


def test_integer_masks_count_nonzero_and_bad_inputs_are_refused():
    m = _bar().astype(np.uint8) * 255
    assert measure_cracks(m) == measure_cracks(m > 0)
    with pytest.raises(InputError, match="float64 is not boolean or integer"):
        measure_cracks(np.zeros((8, 8)))
    with pytest.raises(InputError, match=r"is not \(H, W\)"):
        measure_cracks(np.zeros((1, 8, 8), dtype=bool))
    for bad in (0, -0.5, float("nan"), float("inf"), "x"):
        with pytest.raises(InputError, match="positive number of millimetres per pixel"):
            measure_cracks(_bar(), mm_per_pixel=bad)


def test_a_staircase_is_counted_by_its_corners():
    """A chain of two axis steps that turns at every pixel (right, down, right, down, ...): 8 axis
    steps and 7 corners, 8 x 0.980 - 7 x 0.091. Its diagonal pairs are also joined through the
    corner pixels, so they are not steps."""
    m = np.zeros((10, 10), dtype=bool)
    for k in range(4):
        m[1 + k, 1 + k] = m[1 + k, 2 + k] = True
    m[5, 5] = True
    from crackscope.analysis.crack_measure import _chain_lengths

    assert _chain_lengths(m)[m].sum() == pytest.approx(8 * 0.980 - 7 * 0.091)


@pytest.mark.parametrize("width", [2, 3, 5, 7])
def test_straight_bands_at_every_angle_measure_their_centre_line(width):
    """Bands of known geometry (crackscope.data.synthetic_cracks: a 160-px centre line, round
    ends) every 5 degrees: the length is the centre line's to -4 % .. +2 % (thinning ends up to half
    the width inside each tip; the estimator's own error is about 2 %), the width within 1.2 px
    below. A 45-degree band 3 px wide, which Zhang's thinning erased to one pixel, is measured."""
    from crackscope.data.synthetic_cracks import CrackGeometry, crack_geometry_mask

    for degrees in range(0, 91, 5):
        g = CrackGeometry(160.0, float(width), math.radians(degrees), 0.0, centre=(128.3, 127.6))
        (c,) = measure_cracks(crack_geometry_mask((256, 256), g))
        assert 0.96 * 160 <= c["length_px"] <= 1.02 * 160, degrees
        assert width - 1.2 <= c["max_width_px"] <= width, degrees
