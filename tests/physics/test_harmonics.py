"""The nonlinear-harmonics simulator: contact law, pulse inversion, baseline removal, growth, contract, bad input."""

import math

import numpy as np
import pydantic
import pytest
import torch

from crackscope.errors import InputError
from crackscope.physics import HarmonicsConfig, simulate_harmonics
from crackscope.physics.contact import ContactLatticeSolver, contact_correction, contact_tension, crack_bonds
from crackscope.physics.cracks import Crack
from crackscope.physics.harmonics import (
    bandpass,
    crack_group,
    place_crack_group,
    plate_rng,
    simulate_crack_groups,
    site_layout,
)
from crackscope.physics.harmonics_config import LABEL_NAMES, label_of, label_ranges
from crackscope.physics.solver import LatticeSolver
from crackscope.physics.wavefield import sponge_damping

pytestmark = pytest.mark.usefixtures("one_numba_thread")


@pytest.fixture(scope="module")
def tiny():
    return HarmonicsConfig.preset("tiny")


def ratios(result):
    """(B, 3) A2/A1 and A3/A1 per sensor, float64."""
    a = result.amplitudes.astype(np.float64)
    return a[..., 1] / a[..., 0], a[..., 2] / a[..., 0]


# ---- the contact law ----------------------------------------------------------------------------


def test_contact_law_reproduces_the_piecewise_linear_force_by_hand():
    k, r, g = 2.0, 0.25, 0.1  # k_t = 0.5
    delta = np.array([0.3, 0.0, -0.05, -0.1, -0.3])
    # open (delta > -g): k_t delta; closed: k_t delta + (k - k_t)(delta + g)
    by_hand = np.array([0.15, 0.0, -0.025, -0.05, -0.15 - 1.5 * 0.2])
    np.testing.assert_allclose(contact_tension(delta, k, r, g), by_hand, rtol=0, atol=1e-15)
    np.testing.assert_allclose(contact_correction(delta, k, r, g), by_hand - k * delta, rtol=0, atol=1e-15)
    # g = 0: the bilinear law, k_t in tension and k in compression
    np.testing.assert_allclose(contact_tension([0.4, -0.4], k, r, 0.0), [0.2, -0.8])
    # continuous at the kink delta = -g
    eps = 1e-9
    assert abs(contact_tension(-g + eps, k, r, g) - contact_tension(-g - eps, k, r, g)) < 1e-8


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_solver_applies_the_contact_correction_to_the_crack_bonds(tiny, backend):
    """One step of the contact solver minus one linear step = dt^2/m * gain * sum over crack bonds of c(delta) n."""
    cfg = tiny.replace(dtype="float64", sponge_width=2e-6)  # a sponge, so the damping gain is exercised too
    lat, s = cfg.lattice(), cfg.springs
    group = [Crack((5e-6, 4e-6), (6e-6, 4.6e-6)), Crack((7e-6, 6e-6), (7.3e-6, 5.1e-6))]
    bonds = crack_bonds(lat, [[], group])
    assert len(bonds) > 5 and set(bonds.plate.tolist()) == {1}
    damping = sponge_damping(cfg, lat)
    gap = 2e-3
    contact = ContactLatticeSolver(
        lat,
        s.k_normal,
        s.k_shear,
        s.node_mass,
        cfg.dt,
        2,
        contact=bonds,
        tension_ratio=0.2,
        gap=gap,
        source_node=lat.source_node(),
        source_sign=[1, -1],
        damping=damping,
        dtype=torch.float64,
        backend=backend,
    )
    linear = LatticeSolver(
        lat, s.k_normal, s.k_shear, s.node_mass, cfg.dt, 2, damping=damping, dtype=torch.float64, backend=backend
    )
    u0 = 1e-2 * torch.randn(contact.u.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for sol in (contact, linear):
        sol.u, sol.u_prev = u0, 0.5 * u0
    contact.step()
    linear.step()
    u = u0.numpy()
    expected = np.zeros_like(u)
    gain = np.broadcast_to(1.0 / (1.0 + damping * cfg.dt / 2.0), lat.shape)
    scale = cfg.dt**2 / s.node_mass
    for b, (ri, ci), (rj, cj), n in zip(bonds.plate, bonds.node_i, bonds.node_j, bonds.direction):
        delta = n @ (u[b, :, rj, cj] - u[b, :, ri, ci])
        c = float(contact_tension(delta, s.k_normal, 0.2, gap)) - s.k_normal * delta
        expected[b, :, ri, ci] += scale * gain[ri, ci] * c * n
        expected[b, :, rj, cj] -= scale * gain[rj, cj] * c * n
    diff = (contact.u - linear.u).numpy()
    assert np.abs(expected).max() > 1e-4  # both branches of the law are visited by these deltas
    np.testing.assert_allclose(diff, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max())


# ---- harmonics against independent expectations ---------------------------------------------------


def test_intact_plate_has_no_harmonics(tiny):
    out = simulate_harmonics(tiny, [0], seed=0)
    plus, minus = out.signals[0, :, 0], out.signals[0, :, 1]
    # a linear plate is exactly sign-symmetric in floating point: the pulse-inversion sum is 0
    np.testing.assert_array_equal(minus, -plus)
    assert np.abs(plus).max() > 0 and out.contact_bonds[0] == 0
    assert np.all(out.amplitudes[0, :, 0] > 0)
    assert np.all(out.amplitudes[0, :, 1:] == 0) and np.all(out.harmonics == 0)
    # the same in float64: nothing above round-off (here: exactly nothing)
    out64 = simulate_harmonics(tiny.replace(dtype="float64"), [0], seed=0)
    a2, a3 = ratios(out64)
    assert a2.max() < 1e-12 and a3.max() < 1e-12
    # the float32 and float64 records agree to float32 precision (the lattice is linear)
    np.testing.assert_allclose(out.signals, out64.signals, rtol=0, atol=1e-5 * np.abs(out64.signals).max())


def test_baseline_removal_leaves_linear_cracks_far_below_clapping_ones(tiny):
    """A gap too wide to ever close makes the crack bonds plain (softer) linear springs: the
    even part vanishes exactly and the odd part differs from the intact plate only by the linear
    scattering leaking into the 3 f0 band, which must be far below a clapping crack's 3rd harmonic."""
    linear = simulate_harmonics(tiny.replace(crack_gap=1.0), [10], seed=0)
    clapping = simulate_harmonics(tiny, [10], seed=0)
    np.testing.assert_array_equal(linear.signals[0, :, 1], -linear.signals[0, :, 0])
    assert np.all(linear.amplitudes[0, :, 1] == 0)
    a2_lin, a3_lin = ratios(linear)
    a2_clap, a3_clap = ratios(clapping)
    assert a3_lin.max() < 1e-4
    assert a3_clap.min() > 30 * a3_lin.max()
    assert a2_clap.min() > 1e-2


def test_second_harmonic_grows_with_crack_count_and_size(tiny):
    by_count = ratios(simulate_harmonics(tiny, [2, 8, 18], [0.8, 0.8, 0.8], seed=0))[0].mean(axis=1)
    by_size = ratios(simulate_harmonics(tiny, [10, 10, 10], [0.4, 0.8, 1.2], seed=0))[0].mean(axis=1)
    assert np.all(np.diff(by_count) > 0) and by_count[-1] > 3 * by_count[0]
    assert np.all(np.diff(by_size) > 0) and by_size[-1] > 3 * by_size[0]


def test_bilinear_law_gives_even_harmonics_and_a_gap_gives_odd_ones(tiny):
    """Weak contact nonlinearity (k - k_t small): to first order in (1 - r) the correction force is the
    rectified linear elongation, so with g = 0 (bilinear, symmetric rectifier) only even harmonics
    appear; the 3rd comes in at second order, A3/A2 ~ (1 - r). A gap makes the clipping asymmetric:
    the 3rd harmonic is then first order, A3/A2 independent of r and much larger."""
    third_over_second = {}
    for r in (0.9, 0.95):
        for g in (0.0, 1e-11):
            a = simulate_harmonics(tiny.replace(tension_stiffness_ratio=r, crack_gap=g), [10], seed=0).amplitudes
            a = a.astype(np.float64).mean(axis=1)[0]
            assert a[1] > 1e-4 * a[0]  # a clear 2nd harmonic in every case
            third_over_second[r, g] = a[2] / a[1]
    bilinear, gapped = third_over_second[0.9, 0.0], third_over_second[0.9, 1e-11]
    assert bilinear < 0.03 and gapped > 0.1 and gapped > 10 * bilinear
    # second order vs first order in (1 - r): halving (1 - r) halves A3/A2 only without a gap
    assert 0.3 < third_over_second[0.95, 0.0] / bilinear < 0.7
    assert 0.9 < third_over_second[0.95, 1e-11] / gapped < 1.25


def test_bandpass_alone_agrees_with_pulse_inversion(tiny):
    pi = simulate_harmonics(tiny, [8], seed=2)
    bp = simulate_harmonics(tiny.replace(extraction="bandpass"), [8], seed=2)
    assert bp.signals.shape[2] == 1 and pi.signals.shape[2] == 2
    np.testing.assert_array_equal(bp.signals[:, :, 0], pi.signals[:, :, 0])
    np.testing.assert_allclose(bp.amplitudes[..., 1], pi.amplitudes[..., 1], rtol=0.15)
    np.testing.assert_allclose(bp.amplitudes[..., 2], pi.amplitudes[..., 2], rtol=0.15)


# ---- resampling and the output contract ---------------------------------------------------------


@pytest.mark.parametrize("preset", ["tiny", "small", "paper"])
def test_harmonics_always_have_4760_samples(preset):
    cfg = HarmonicsConfig.preset(preset)
    out = simulate_harmonics(cfg, [cfg.crack_count_edges[0]], seed=0)
    assert out.harmonics.shape == (1, 3, 2, 4760) and out.harmonics.dtype == np.float32
    assert out.signals.shape == (1, 3, 2, cfg.n_time)
    assert out.time.shape == (4760,)
    np.testing.assert_allclose(out.time[-1] + out.time[1], cfg.n_time * cfg.dt, rtol=1e-12)
    assert np.abs(out.harmonics).max() > 0


def test_long_records_are_resampled_down_to_4760(tiny):
    cfg = tiny.replace(record_periods=70.0, taper_periods=10.0)
    assert cfg.n_time > 4760
    out = simulate_harmonics(cfg, [4], seed=0)
    assert out.harmonics.shape == (1, 3, 2, 4760) and out.signals.shape[-1] == cfg.n_time


def test_spectral_resampling_evaluates_the_band_limited_signal_exactly():
    rng = np.random.default_rng(0)
    dt, f0 = 1e-3, 20.0
    x = rng.standard_normal((2, 1190))
    native = bandpass(x, dt, 2 * f0, 5.0)
    fine = bandpass(x, dt, 2 * f0, 5.0, out_length=4760)  # 4 new samples per old one
    np.testing.assert_allclose(fine[:, ::4], native, rtol=0, atol=1e-12 * np.abs(native).max())
    np.testing.assert_allclose(bandpass(x, dt, 2 * f0, 5.0, out_length=1190), native, atol=1e-12)
    # a band-passed burst at 2 f0 passes with unit gain at its centre frequency
    t = np.arange(8000) * dt
    burst = np.sin(2 * np.pi * 2 * f0 * t) * np.exp(-(((t - 4.0) / 1.0) ** 2))
    np.testing.assert_allclose(bandpass(burst, dt, 2 * f0, 10.0), burst, atol=1e-3)


def test_result_contract_and_determinism(tiny):
    out = simulate_harmonics(tiny, [3, 9], [0.7, 1.1], seed=4)
    b = 2
    assert out.amplitudes.shape == (b, 3, 3) and out.amplitudes.dtype == np.float32
    assert (
        out.labels.tolist()
        == [label_of(3, 0.7, tiny), label_of(9, 1.1, tiny)]
        == [LABEL_NAMES.index("AE"), LABEL_NAMES.index("BG")]
    )
    assert out.label_names == LABEL_NAMES and out.sensor_names == ("a", "b", "c")
    assert out.n_cracks.tolist() == [3, 9] and out.crack_size_um.tolist() == [0.7, 1.1]
    assert [len(g) for g in out.cracks] == [3, 9]
    x0, y0, x1, y1 = tiny.crack_region
    for group, size in zip(out.cracks, (0.7, 1.1)):
        for c in group:
            assert c.length_um == pytest.approx(size)
            (ax, ay), (bx, by) = c.points
            assert x0 <= min(ax, bx) and max(ax, bx) <= x1 and y0 <= min(ay, by) and max(ay, by) <= y1
    # sensors: distinct nodes, each within one spacing of its configured place, outside the crack region
    for (fx, fy), (sx, sy) in zip(tiny.sensor_xy_fraction, out.sensor_xy):
        assert math.hypot(sx - fx * tiny.width, sy - fy * tiny.height) <= tiny.lattice_spacing
        assert not (x0 <= sx <= x1 and y0 <= sy <= y1)
    assert out.contact_bonds.tolist() == crack_bonds(tiny.lattice(), out.cracks).count(2).tolist()
    again = simulate_harmonics(tiny, [3, 9], [0.7, 1.1], seed=4)
    np.testing.assert_array_equal(again.harmonics, out.harmonics)
    # a plate's numbers do not depend on the rest of its batch
    alone = simulate_crack_groups(tiny, [out.cracks[1]])
    np.testing.assert_array_equal(alone.harmonics[0], out.harmonics[1])
    np.testing.assert_array_equal(alone.signals[0], out.signals[1])
    # nested layout (default): the group is fixed by (count, size), the seed does not enter
    np.testing.assert_array_equal(simulate_harmonics(tiny, [3], [0.7], seed=5).harmonics[0], out.harmonics[0])
    random = tiny.replace(crack_layout="random")
    first = simulate_harmonics(random, [3], [0.7], seed=4).harmonics[0]
    assert not np.array_equal(simulate_harmonics(random, [3], [0.7], seed=5).harmonics[0], first)


def test_crack_groups_never_share_a_bond(tiny):
    lat = tiny.lattice()
    group = place_crack_group(tiny, 19, 1.2, plate_rng(0, 0))
    bonds = crack_bonds(lat, [group])
    keys = {tuple(i) + tuple(j) for i, j in zip(bonds.node_i.tolist(), bonds.node_j.tolist())}
    assert len(keys) == len(bonds)
    assert np.bincount(bonds.crack, minlength=19).min() >= 2  # every crack crosses bonds


def test_backends_agree_through_the_public_api(tiny):
    cfg = tiny.replace(dtype="float64", record_periods=14.0)
    a = simulate_harmonics(cfg, [6], seed=3, backend="numba")
    b = simulate_harmonics(cfg, [6], seed=3, backend="torch")
    np.testing.assert_allclose(a.harmonics, b.harmonics, rtol=0, atol=1e-6 * np.abs(a.harmonics).max())


# ---- config, labels, bad input -------------------------------------------------------------------


def test_config_presets_labels_and_strictness(tiny):
    assert [HarmonicsConfig.preset(p).default_crack_size_um for p in ("paper", "small", "tiny")]
    with pytest.raises(pydantic.ValidationError, match="extra"):
        HarmonicsConfig(no_such_key=1)
    with pytest.raises(pydantic.ValidationError):
        HarmonicsConfig.preset("tiny", tone_burst_cycles=5)  # the paper's burst has >= 10 cycles
    with pytest.raises(InputError, match="huge"):
        HarmonicsConfig.preset("huge")
    assert LABEL_NAMES[0] == "AD" and LABEL_NAMES[-1] == "CG" and len(LABEL_NAMES) == 12
    e, s = tiny.crack_count_edges, tiny.crack_size_edges_um
    assert label_of(e[0], s[0], tiny) == 0
    assert label_of(e[1] - 1, s[1] - 1e-9, tiny) == 0 and label_of(e[1], s[1], tiny) == 5
    assert label_of(e[3], s[4], tiny) == 11
    assert label_of(0, s[0], tiny) == -1 and label_of(e[0], s[4] + 0.1, tiny) == -1
    for lab in range(12):
        (n_lo, n_hi), (s_lo, s_hi) = label_ranges(lab, tiny)
        assert label_of(n_lo, s_lo, tiny) == label_of(n_hi, 0.5 * (s_lo + s_hi), tiny) == lab
    out = simulate_harmonics(tiny, [0])  # sizes default to default_crack_size_um
    assert out.crack_size_um.tolist() == [tiny.default_crack_size_um]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_cracks=[-1]), "n_cracks=-1"),
        (dict(n_cracks=[2.5]), "n_cracks=2.5"),
        (dict(n_cracks=[2], crack_size_um=[50.0]), "crack_size_um=50"),
        (dict(n_cracks=[2], crack_size_um=[0.1]), "crack_size_um=0.1"),
        (dict(n_cracks=[2], crack_size_um=[-1.0]), "crack_size_um=-1"),
        (dict(n_cracks=[2], crack_size_um=[float("nan")]), "crack_size_um=nan"),
        (dict(n_cracks=[2, 3], crack_size_um=[0.8]), r"crack_size_um=\[0.8\]"),
        (dict(n_cracks=[], crack_size_um=[]), "n_cracks"),
        (dict(n_cracks=[5000], crack_size_um=[1.0]), "n_cracks=5000"),
        (dict(n_cracks=[2], seed=-3), "seed=-3"),
    ],
)
def test_bad_input_raises_input_error_naming_the_value(tiny, kwargs, match):
    with pytest.raises(InputError, match=match):
        simulate_harmonics(tiny, **kwargs)


def test_crowded_groups_that_pass_the_area_check_still_fail_cleanly(tiny):
    """Random placement jams before the crude area bound: the error names count and size."""
    with pytest.raises(InputError, match=r"n_cracks=60 cracks of crack_size_um=2 cannot fit"):
        place_crack_group(tiny, 60, 2.0, plate_rng(0, 0))  # refused at once by the area bound
    with pytest.raises(InputError, match=r"n_cracks=40 cracks of crack_size_um=2 could not be placed"):
        place_crack_group(tiny, 40, 2.0, plate_rng(0, 0))  # passes the bound, jams while placing
    with pytest.raises(InputError, match=r"could not be placed.*\(plate 1\)"):
        simulate_harmonics(tiny.replace(crack_layout="random"), [2, 40], [2.0, 2.0])
    # the nested layout holds crack_count_edges[-1] cracks of at most crack_size_edges_um[-1]
    with pytest.raises(InputError, match=r"crack_size_um=2 exceeds the nested layout's 1.2 µm.*\(plate 1\)"):
        simulate_harmonics(tiny, [2, 4], [1.0, 2.0])
    with pytest.raises(InputError, match=r"n_cracks=20 exceeds the nested layout's 19 cracks"):
        simulate_harmonics(tiny, [20], [1.0])


def test_nested_groups_are_prefixes_of_one_layout_shortened_about_their_centres(tiny):
    """crack_layout=nested: group(n, l) = first n cracks of the site's layout, each scaled about its
    centre to length l, so a larger count adds cracks and a larger size lengthens the same cracks."""
    rng = plate_rng(0, 0)
    big = crack_group(tiny, 19, 1.2, rng)
    small = crack_group(tiny, 7, 0.4, rng)
    np.testing.assert_allclose([c.points for c in big], [c.points for c in site_layout(tiny)], rtol=0, atol=1e-18)
    for full, short in zip(big, small):
        (a, b), (p, q) = np.asarray(full.points), np.asarray(short.points)
        np.testing.assert_allclose((a + b) / 2, (p + q) / 2, atol=1e-18)  # same centre
        np.testing.assert_allclose((q - p) / 0.4, (b - a) / 1.2, atol=1e-12)  # same direction
        assert short.length_um == pytest.approx(0.4)
    lat = tiny.lattice()
    for size in tiny.crack_size_edges_um:  # valid at every size: disjoint bonds, every crack crosses one
        bonds = crack_bonds(lat, [crack_group(tiny, 19, size, rng)])
        keys = {tuple(i) + tuple(j) for i, j in zip(bonds.node_i.tolist(), bonds.node_j.tolist())}
        assert len(keys) == len(bonds) and np.bincount(bonds.crack, minlength=19).min() >= 1
    assert [c.points for c in site_layout(tiny.replace(layout_seed=1))] != [c.points for c in big]
