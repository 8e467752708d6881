"""Cracks of known geometry: the rasterised band against the continuum shape it stands for."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from crackscope.data.synthetic_cracks import (
    CrackGeometry,
    Hairline,
    crack_geometry_mask,
    draw_crack,
    draw_hairline,
    random_hairline,
)
from crackscope.errors import InputError


@pytest.mark.parametrize("width", [2, 5, 12])
@pytest.mark.parametrize("angle", [0.0, 0.4, 1.1])
@pytest.mark.parametrize("curvature", [0.0, 1 / 120])
def test_band_area_is_the_capsule_area(width, angle, curvature):
    """Every pixel centre within w/2 of a centre line of length L: a band with round ends, area
    L w + pi w^2 / 4 (for a circular arc too, while w/2 is below the radius). Pixel counting is
    exact to about the perimeter's length times a small fraction: 3 % here."""
    g = CrackGeometry(150.0, float(width), angle, curvature, centre=(100.3, 110.6))
    area = crack_geometry_mask((220, 220), g).sum()
    assert area == pytest.approx(150 * width + math.pi * width**2 / 4, rel=0.03)


def test_centre_line_is_a_circular_arc_of_its_length():
    k = 1 / 80
    g = CrackGeometry(120.0, 3.0, 0.7, k, centre=(100.0, 100.0))
    pts = g.centre_line(step_px=0.05)
    steps = np.hypot(*np.diff(pts, axis=0).T)
    assert steps.sum() == pytest.approx(120.0, rel=1e-4)  # arc length
    # the centre of curvature: one radius from the middle of the arc along its normal (-sin a, cos a)
    o = np.array([100.0 + math.cos(0.7) / k, 100.0 - math.sin(0.7) / k])
    np.testing.assert_allclose(np.hypot(*(pts - o).T), 1 / k, rtol=1e-9)
    straight = CrackGeometry(50.0, 2.0, math.pi / 2, 0.0, centre=(30.0, 20.0)).centre_line()
    np.testing.assert_allclose(straight[:, 1], 20.0, atol=1e-12)  # upright: constant column
    np.testing.assert_allclose([straight[0, 0], straight[-1, 0]], [5.0, 55.0])


def test_drawn_crack_darkens_its_band_only():
    image = torch.full((3, 64, 64), 0.8)
    g = CrackGeometry(40.0, 4.0, 0.3, 0.0, centre=(32.2, 31.7))
    out, mask = draw_crack(image, g, depth=0.5)
    assert np.array_equal(mask, crack_geometry_mask((64, 64), g))
    inner = crack_geometry_mask((64, 64), CrackGeometry(40.0, 3.0, 0.3, 0.0, centre=(32.2, 31.7)))
    np.testing.assert_allclose(out[:, torch.from_numpy(inner)].numpy(), 0.4, atol=1e-6)  # fully covered: 0.8 x 0.5
    outer = ~crack_geometry_mask((64, 64), CrackGeometry(40.0, 5.0, 0.3, 0.0, centre=(32.2, 31.7)))
    np.testing.assert_allclose(out[:, torch.from_numpy(outer)].numpy(), 0.8, atol=1e-6)
    with pytest.raises(InputError, match="width_px=0"):
        CrackGeometry(10.0, 0.0)
    with pytest.raises(InputError, match="depth=1.5"):
        draw_crack(image, g, depth=1.5)


@pytest.mark.parametrize("width", [1.0, 2.0, 4.0])
def test_hairline_of_constant_width_on_a_straight_line_is_the_capsule(width):
    """A Hairline whose tips are as wide as its middle, on a straight centre line, is the band of
    draw_crack: area L w + pi w^2 / 4 (1-px line: at least one pixel per pixel of length)."""
    n = 481
    points = np.stack([np.full(n, 60.3), np.linspace(20.0, 140.0, n)], axis=1)  # 120 px along x
    line = Hairline(points, width_px=width, tip_width_px=width, depth=0.5)
    image, mask = draw_hairline(torch.full((1, 120, 160), 0.8, dtype=torch.float64), line)
    assert line.length_px == pytest.approx(120.0)
    assert mask.sum() == pytest.approx(120 * width + math.pi * width**2 / 4, rel=0.05)
    band = crack_geometry_mask((120, 160), CrackGeometry(120.0, width, 0.0, centre=(60.3, 80.0)))
    assert (mask & ~band).sum() <= 0.02 * band.sum() + 2  # the same pixels, up to the on-line ones
    assert float(image[0][mask].max()) < 0.8 - 0.5 * 0.8 * 0.5 + 1e-9  # every crack pixel darkened >= half


def test_random_hairlines_meander_taper_and_stay_connected():
    """A random hairline turns (its chord is shorter than its length, but it does not curl up: the
    chord is more than half of it), is widest in its middle, and its mask is one 8-connected piece."""
    from scipy import ndimage

    rng = np.random.default_rng(7)
    for _ in range(8):
        line = random_hairline((1000, 1000), rng, length_px=(150.0, 150.0))
        chord = float(np.linalg.norm(line.points[-1] - line.points[0]))
        assert line.length_px == pytest.approx(150.0, abs=0.5)
        assert 0.5 * line.length_px < chord <= line.length_px
        w = line.widths()
        assert w[0] == pytest.approx(max(0.6 * line.width_px, 0.8)) and w[-1] == pytest.approx(w[0])
        assert w.max() == pytest.approx(line.width_px, rel=1e-3)
        _, mask = draw_hairline(torch.full((1, 1000, 1000), 0.5), line)
        _, pieces = ndimage.label(mask, structure=np.ones((3, 3)))
        assert pieces == 1
