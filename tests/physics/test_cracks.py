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


@pytest.mark.parametrize("preset", ["paper", "small"])
def test_single_notch_presets_cover_five_percent_of_the_mask(preset):
    """The paper reports crack pixels averaging about 5 % of the mask; its presets' notches (one per
    plate) are chosen for 5 +- 1 % (400 random plates)."""
    cfg = PlateConfig.preset(preset)
    rng = np.random.default_rng(2)
    plates = [sample_cracks(cfg.cracks.distribution(), cfg.width, cfg.height, rng) for _ in range(400)]
    assert all(len(p) == 1 and len(p[0].points) == 2 and p[0].width_m > 0 for p in plates)
    fracs = [rasterize_mask(p, cfg.width, cfg.height, 36).mean() for p in plates]
    assert 0.04 < np.mean(fracs) < 0.06


def test_multi_crack_paper_preset_keeps_its_five_percent_of_line_cracks():
    cfg = PlateConfig.preset("paper-multi")
    rng = np.random.default_rng(2)
    plates = [sample_cracks(cfg.cracks.distribution(), cfg.width, cfg.height, rng) for _ in range(400)]
    assert all(c.width_m == 0 for p in plates for c in p)
    assert 0.04 < np.mean([rasterize_mask(p, cfg.width, cfg.height, 36).mean() for p in plates]) < 0.065


# ---- cracks with width (bands, notches) --------------------------------------------------------
def _liang_barsky_hits(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Independent reference: does segment a->b (..., 2) meet the axis-aligned box [lo, hi]?"""
    t0 = np.zeros(a.shape[:-1])
    t1 = np.ones(a.shape[:-1])
    ok = np.ones(a.shape[:-1], dtype=bool)
    for k in range(2):
        d = b[..., k] - a[..., k]
        with np.errstate(divide="ignore", invalid="ignore"):
            ta, tb = (lo[k] - a[..., k]) / d, (hi[k] - a[..., k]) / d
        flat = np.abs(d) < 1e-30
        ok &= ~flat | ((a[..., k] >= lo[k]) & (a[..., k] <= hi[k]))
        t0 = np.where(flat, t0, np.maximum(t0, np.minimum(ta, tb)))
        t1 = np.where(flat, t1, np.minimum(t1, np.maximum(ta, tb)))
    return ok & (t0 <= t1)


def _all_bonds(lat: TriangularLattice):
    """Every bond (i, j) of the lattice from the node positions alone: pairs at distance a."""
    xy = lat.positions.reshape(2, -1).T
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    i, j = np.nonzero(np.triu(np.abs(d - lat.spacing) < 1e-3 * lat.spacing))
    return xy[i], xy[j]


@pytest.mark.parametrize("angle_deg", [0.0, 23.0, 90.0, 131.0])
def test_band_cuts_exactly_the_bonds_that_meet_it(angle_deg):
    """A notch cuts every bond with an end inside it or crossing its edge: the count equals an
    independent one over all bonds (rotated into the band's frame, clipped against the box)."""
    lat = TriangularLattice(4e-6, 4e-6, 0.2e-6)
    c, th = np.array([2.013e-6, 1.987e-6]), math.radians(angle_deg)
    d = np.array([math.cos(th), math.sin(th)])
    length, width = 1.7e-6, 0.53e-6
    crack = Crack(tuple(c - d * length / 2), tuple(c + d * length / 2), width_m=width)
    _, counts = cut_bond_weights(lat, [[crack]])
    a, b = _all_bonds(lat)
    rot = np.array([d, [-d[1], d[0]]])  # rows: the band's axes
    hits = _liang_barsky_hits(
        (a - c) @ rot.T, (b - c) @ rot.T, np.array([-length / 2, -width / 2]), np.array([length / 2, width / 2])
    )
    assert counts[0] == int(hits.sum()) > 0


def test_particles_inside_a_band_keep_no_bond_and_width_zero_is_the_line():
    lat = TriangularLattice(4e-6, 4e-6, 0.2e-6)
    band = Crack((1.0e-6, 2.0e-6), (3.0e-6, 2.1e-6), width_m=0.8e-6)
    weights, _ = cut_bond_weights(lat, [[band]])
    inside = np.zeros(lat.shape, dtype=bool)
    from crackscope.physics.cracks import points_in_band

    inside = points_in_band(np.moveaxis(lat.positions, 0, -1), band.bands[0])
    assert inside.sum() > 10
    bonded = np.zeros(lat.shape)
    for fam in lat.families:  # bonds still present at each node, summed over both of its ends
        w = weights[fam.name][0]
        fam.first(bonded)[...] += w
        fam.second(bonded)[...] += w
    assert (bonded[inside] == 0).all() and (bonded[~inside] > 0).all()
    line = Crack((1.0e-6, 2.0e-6), (3.0e-6, 2.1e-6))
    w_line, n_line = cut_bond_weights(lat, [[line]])
    w_zero, n_zero = cut_bond_weights(lat, [[Crack(*line.points, width_m=0.0)]])
    assert n_line == n_zero and all((w_line[k] == w_zero[k]).all() for k in w_line)


def test_mask_of_an_axis_aligned_band_is_hand_worked():
    # centre line (1.5, 2.5) -> (4.5, 2.5), 2 m wide: x in [1.5, 4.5], y in [1.5, 3.5] meets columns 1..4, rows 1..3
    mask = rasterize_mask([Crack((1.5, 2.5), (4.5, 2.5), width_m=2.0)], 10.0, 10.0, 10)
    expected = np.zeros((10, 10), np.uint8)
    expected[1:4, 1:5] = 1
    np.testing.assert_array_equal(mask, expected)
    # a band narrower than anything draws its centre line
    thin = rasterize_mask([Crack((0.5, 0.7), (7.3, 5.1), width_m=1e-9)], 10.0, 10.0, 10)
    np.testing.assert_array_equal(thin, rasterize_mask([Crack((0.5, 0.7), (7.3, 5.1))], 10.0, 10.0, 10))


def _clipped_area(poly: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Area of convex polygon ``poly`` clipped to the box [lo, hi] (Sutherland-Hodgman + shoelace)."""
    pts = [tuple(p) for p in poly]
    for axis, bound, keep_below in ((0, lo[0], False), (0, hi[0], True), (1, lo[1], False), (1, hi[1], True)):
        out = []
        for k in range(len(pts)):
            p, q = np.array(pts[k]), np.array(pts[(k + 1) % len(pts)])
            p_in = p[axis] <= bound if keep_below else p[axis] >= bound
            q_in = q[axis] <= bound if keep_below else q[axis] >= bound
            if p_in:
                out.append(tuple(p))
            if p_in != q_in:
                t = (bound - p[axis]) / (q[axis] - p[axis])
                out.append(tuple(p + t * (q - p)))
        pts = out
        if not pts:
            return 0.0
    x, y = np.array(pts).T
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def test_mask_of_rotated_bands_matches_polygon_clipping():
    rng = np.random.default_rng(4)
    for _ in range(6):
        c, th = rng.uniform(3, 7, 2), rng.uniform(0, math.pi)
        d = np.array([math.cos(th), math.sin(th)]) * rng.uniform(0.5, 3)
        crack = Crack(tuple(c - d), tuple(c + d), width_m=rng.uniform(0.3, 2.5))
        mask = rasterize_mask([crack], 10.0, 10.0, 10)
        areas = np.array(
            [
                [_clipped_area(crack.bands[0], np.array([ix, iy]), np.array([ix + 1, iy + 1])) for ix in range(10)]
                for iy in range(10)
            ]
        )
        np.testing.assert_array_equal(mask, (areas > 1e-12).astype(np.uint8))


def test_sampled_bands_lie_inside_the_plate_with_uniform_widths():
    dist = CrackDistribution(
        count_min=1,
        count_max=1,
        length_um_min=0.4,
        length_um_max=6.4,
        length_distribution="uniform",
        kink_probability=0.0,
        width_um_min=2.0,
        width_um_max=5.0,
    )
    rng = np.random.default_rng(3)
    widths = []
    for _ in range(600):
        (crack,) = sample_cracks(dist, 18e-6, 18e-6, rng)
        corners = crack.bands.reshape(-1, 2)
        assert (corners >= 0).all() and (corners <= 18e-6).all()
        widths.append(crack.width_um)
    widths = np.array(widths)
    assert widths.min() >= 2.0 and widths.max() <= 5.0
    assert widths.mean() == pytest.approx(3.5, abs=0.1)  # uniform on [2, 5]
