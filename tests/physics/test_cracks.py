"""Crack geometry: hand-worked masks and bond cuts, sampling statistics."""

import math

import numpy as np
import pytest

from crackscope.physics import Crack, PlateConfig
from crackscope.physics.cracks import CrackDistribution, rasterize_mask, sample_cracks
from crackscope.physics.lattice import TriangularLattice
from crackscope.physics.wavefield import cut_bond_weights


def test_mask_of_a_horizontal_crack_is_hand_worked():
    # 10 x 10 m plate, 10 x 10 pixels of 1 m: from (1.5, 2.5) to (4.5, 2.5) -> row 2, columns 1..4
    mask = rasterize_mask([Crack((1.5, 2.5), (4.5, 2.5))], 10.0, 10.0, 10)
    expected = np.zeros((10, 10), np.uint8)
    expected[2, 1:5] = 1
    np.testing.assert_array_equal(mask, expected)


def test_mask_of_a_diagonal_and_a_kinked_crack():
    # The diagonal through pixel centres (0.5, 0.5) -> (3.5, 3.5) touches the pixel corners it
    # passes through, so the supercover includes both neighbours at each corner.
    mask = rasterize_mask([Crack((0.5, 0.5), (3.5, 3.5))], 10.0, 10.0, 10)
    assert all(mask[i, i] for i in range(4)) and mask.sum() == 4 + 2 * 3
    kinked = rasterize_mask([Crack((0.5, 8.5), (3.5, 8.5), (3.5, 5.5))], 10.0, 10.0, 10)
    expected = np.zeros((10, 10), np.uint8)
    expected[8, 0:4] = 1
    expected[5:9, 3] = 1
    np.testing.assert_array_equal(kinked, expected)


def test_horizontal_crack_cuts_the_bonds_it_crosses():
    """A horizontal line between rows r and r+1 crosses the two up-bonds of each node: one every a/2."""
    lat = TriangularLattice(10e-6, 10e-6, 0.2e-6)
    r = lat.n_rows // 2
    y = lat.y0 + (r + 0.5) * lat.row_spacing
    x0, x1 = 3.03e-6, 5.03e-6
    _, counts = cut_bond_weights(lat, [[Crack((x0, y), (x1, y))]])
    # up-bonds from row r cross the line at their mid-points: x = c a + a/4 + (r % 2) a/2, and at
    # (c + 1/2) a - a/4 + (r % 2) a/2 = c a + a/4 + a/2 ... i.e. every a/2 starting at a/4 (+ a/2 if odd)
    a = lat.spacing
    start = a / 4 + (r % 2) * a / 2
    mids = start + np.arange(-4, 2 * lat.n_cols + 4) * a / 2
    assert counts[0] == int(((mids > x0) & (mids < x1)).sum()) == 20


def test_smallest_paper_crack_always_cuts_bonds():
    """A 0.4 µm crack = 2a cannot fit inside one lattice triangle, wherever and however it lies."""
    lat = TriangularLattice(7.2e-6, 7.2e-6, 0.2e-6)
    rng = np.random.default_rng(0)
    cracks = []
    for _ in range(200):
        c = rng.uniform(1e-6, 6e-6, 2)
        th = rng.uniform(0, math.pi)
        d = 0.2e-6 * np.array([math.cos(th), math.sin(th)])
        cracks.append([Crack(tuple(c - d), tuple(c + d))])
    _, counts = cut_bond_weights(lat, cracks)
    assert min(counts) >= 1


def test_sampled_cracks_follow_the_configured_distribution():
    dist = CrackDistribution(count_min=1, count_max=4, length_um_min=0.4, length_um_max=12.8)
    rng = np.random.default_rng(1)
    lengths, counts = [], []
    for _ in range(1500):
        cracks = sample_cracks(dist, 36e-6, 36e-6, rng)
        counts.append(len(cracks))
        for c in cracks:
            c.check_inside(36e-6, 36e-6)
            lengths.append(c.length_um)
    lengths = np.array(lengths)
    assert lengths.min() >= 0.4 - 1e-9 and lengths.max() <= 12.8 + 1e-9
    # log-uniform over [0.4, 12.8]: the median is the geometric mean sqrt(0.4 * 12.8) = 2.263 µm
    assert np.median(lengths) == pytest.approx(math.sqrt(0.4 * 12.8), rel=0.08)
    assert set(counts) == {1, 2, 3, 4}


def test_crack_needs_two_points():
    with pytest.raises(ValueError):
        Crack((0.0, 0.0))
    assert Crack((0, 0), (3, 4)).length_m == 5.0


def test_mean_crack_pixel_fraction_of_paper_preset_is_near_the_papers():
    """The paper preset's defaults were chosen to give a crack-pixel fraction near the paper's ~5 %."""
    cfg = PlateConfig.preset("paper")
    rng = np.random.default_rng(2)
    fracs = [
        rasterize_mask(
            sample_cracks(cfg.cracks.distribution(), cfg.width, cfg.height, rng), cfg.width, cfg.height, 36
        ).mean()
        for _ in range(400)
    ]
    assert 0.04 < np.mean(fracs) < 0.065
