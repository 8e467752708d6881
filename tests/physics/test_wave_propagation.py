"""The simulator against elastodynamics: wave speeds, energy conservation, shadows, echoes, symmetry."""

import math

import numpy as np
import pytest
import torch

from crackscope.physics import Crack, PlateConfig, simulate_wavefield
from crackscope.physics.solver import LatticeSolver
from crackscope.physics.wavefield import cut_bond_weights

from . import envelope, steel_plane_stress_speeds

A = 0.2e-6  # lattice spacing [m]


def _arrival_speed(direction_deg, component, distances_um):
    """Speed from a straight-line fit of distance vs the envelope peak time along the plate's mid-line."""
    c_s_theory = steel_plane_stress_speeds()[1]
    # Tall plate: reflections from the top and bottom edges arrive after the recording ends.
    cfg = PlateConfig(
        width=50e-6,
        height=80e-6,
        lattice_spacing=A,
        n_time=540,
        dtype="float64",
        center_frequency=c_s_theory / (12 * A),
        source_direction_deg=direction_deg,
    )
    xy = np.array([[d * 1e-6, 40e-6] for d in distances_um])
    out = simulate_wavefield(cfg, [[]], sensor_xy=xy)
    trace = out.signals[0, component].numpy()
    peak_time = out.time.numpy()[envelope(trace).argmax(axis=1)]
    return np.polyfit(peak_time, out.sensor_xy[:, 0].numpy(), 1)[0]


def test_p_wave_speed_within_3_percent_of_theory():
    """A force normal to the edge radiates P waves along the normal (no S there)."""
    c_p = _arrival_speed(0.0, 0, [10, 20, 30, 40])
    assert c_p == pytest.approx(steel_plane_stress_speeds()[0], rel=0.03)


def test_s_wave_speed_within_3_percent_of_theory():
    """A force along the edge radiates S waves along the normal (no P there)."""
    c_s = _arrival_speed(90.0, 1, [5, 10, 15, 20])
    assert c_s == pytest.approx(steel_plane_stress_speeds()[1], rel=0.03)


def _run_energy(cfg, cracks, steps):
    """Drive the solver with the configured source, return energies after the source stops."""
    lat = cfg.lattice()
    s = cfg.springs
    weights, _ = cut_bond_weights(lat, [cracks])
    solver = LatticeSolver(
        lat, s.k_normal, s.k_shear, s.node_mass, cfg.dt, 1, bond_weights=weights, dtype=torch.float64
    )
    r, c = lat.source_node()
    f0 = cfg.frequency
    scale = cfg.dt**2 / s.node_mass
    force = torch.zeros_like(solver.u)
    n_src = int(math.ceil(3.0 / f0 / cfg.dt)) + 1
    for n in range(n_src):
        arg = (math.pi * f0 * (n * cfg.dt - 1.5 / f0)) ** 2
        force[0, 0, r, c] = 1000.0 * (1 - 2 * arg) * math.exp(-arg) * scale
        solver.step(force)
    energies, textbook = [], []
    for _ in range(steps):
        u_before = solver.u_prev.clone()
        solver.step()
        energies.append(solver.energy().item())
        # textbook energy at the middle state: centred velocity and 1/2 u^T K u
        u_mid, u_next = solver.u_prev, solver.u
        v = (u_next - u_before) / (2 * cfg.dt)
        kinetic = 0.5 * s.node_mass * v.pow(2).sum().item()
        textbook.append(kinetic + solver.potential_energy(u_mid).item())
    return np.array(energies), np.array(textbook)


def test_energy_is_conserved_without_damping():
    """Free edges, a crack, no damping: total energy after the source stops stays within 1 % over 2000 steps."""
    cfg = PlateConfig.preset("tiny", dtype="float64")
    crack = Crack((3.0e-6, 2.0e-6), (4.0e-6, 4.5e-6), (5.0e-6, 5.0e-6))
    discrete, textbook = _run_energy(cfg, [crack], 2000)
    assert discrete[0] > 0
    assert np.abs(discrete / discrete[0] - 1).max() < 1e-9  # the exact discrete invariant
    assert np.abs(textbook / textbook.mean() - 1).max() < 0.01  # the textbook energy, within 1 %


def test_damping_only_removes_energy():
    cfg = PlateConfig.preset("tiny", dtype="float64", damping=2e8, n_time=400)
    lat = cfg.lattice()
    s = cfg.springs
    solver = LatticeSolver(lat, s.k_normal, s.k_shear, s.node_mass, cfg.dt, 1, damping=cfg.damping, dtype=torch.float64)
    solver.u = torch.randn(solver.u.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1e-9
    solver.u_prev = solver.u.clone()
    energy = []
    for _ in range(300):
        solver.step()
        energy.append(solver.energy().item())
    assert np.all(np.diff(energy) <= 1e-12 * energy[0])
    assert energy[-1] < 0.5 * energy[0]


def _shadow_setup():
    # A vertical crack, 6 µm long, centred on the mid-line at x = 14 µm of a 24 x 24 µm plate.
    cfg = PlateConfig(width=24e-6, height=24e-6, lattice_spacing=A, n_time=400, dtype="float64")
    crack = Crack((14e-6, 9e-6), (14e-6, 15e-6))
    return cfg, crack


def test_crack_shadow_and_echo_timing():
    cfg, crack = _shadow_setup()
    behind = np.array([[20e-6, 12e-6], [22e-6, 12e-6]])  # in the crack's shadow
    between = np.array([[6e-6, 12e-6], [8e-6, 14e-6]])  # between the source and the crack
    xy = np.concatenate([behind, between])
    cracked = simulate_wavefield(cfg, [[crack]], sensor_xy=xy)
    intact = simulate_wavefield(cfg, [[]], sensor_xy=xy)
    diff = (cracked.signals - intact.signals)[0].numpy()  # (2, S, T)
    scale = np.abs(intact.signals.numpy()).max()
    t = intact.time.numpy()
    # Shadow: the crack changes the sensors behind it by far more than numerical noise.
    for s in range(2):
        assert np.abs(diff[:, s]).max() > 0.05 * np.abs(intact.signals[0, :, s].numpy()).max()
    # Between: nothing changes before a P wave could reach the crack and come back (10 % margin
    # for lattice dispersion), and something does change afterwards.
    c_p = cracked.c_p
    src = np.array([0.0, 12e-6])
    crack_pts = np.array([[14e-6, y] for y in np.linspace(9e-6, 15e-6, 61)])
    for s, sensor in enumerate(cracked.sensor_xy[2:].numpy(), start=2):
        path = (np.linalg.norm(crack_pts - src, axis=1) + np.linalg.norm(crack_pts - sensor, axis=1)).min()
        t_echo = path / c_p
        early = t < 0.9 * t_echo
        assert early.sum() > 50
        assert np.abs(diff[:, s, early]).max() < 1e-6 * scale
        assert np.abs(diff[:, s, ~early]).max() > 1e-3 * scale


def test_mirror_symmetric_plate_and_crack_give_mirror_symmetric_signals():
    """Plate, source (x-force at mid-left) and a V-shaped crack symmetric about y = H/2."""
    cfg = PlateConfig.preset("small", n_time=300, dtype="float64")
    h = cfg.height
    crack = Crack((9e-6, h / 2 - 2.3e-6), (11e-6, h / 2), (9e-6, h / 2 + 2.3e-6))
    out = simulate_wavefield(cfg, [[crack]])
    sig = out.signals[0].numpy().reshape(2, 9, 9, -1)  # (xy, iy, ix, T)
    xy = out.sensor_xy.numpy().reshape(9, 9, 2)
    np.testing.assert_allclose(xy[::-1, :, 1], h - xy[:, :, 1], rtol=0, atol=1e-12)
    scale = np.abs(sig).max()
    np.testing.assert_allclose(sig[0, ::-1], sig[0], rtol=0, atol=1e-9 * scale)  # u_x even
    np.testing.assert_allclose(sig[1, ::-1], -sig[1], rtol=0, atol=1e-9 * scale)  # u_y odd
    assert np.abs(sig[1]).max() > 1e-3 * scale  # and u_y is not trivially zero
    mask = out.masks[0].numpy()
    np.testing.assert_array_equal(mask[::-1], mask)


def test_wider_notch_scatters_more():
    """Same centre, length and angle: removing more material (a wider notch) scatters more of the
    wave (for a small scatterer the scattered amplitude grows with the void's area, Born)."""
    cfg = PlateConfig.preset("small", n_time=250, record_every=4)
    c, th = np.array([9e-6, 9e-6]), math.radians(30.0)
    d = 1.5e-6 * np.array([math.cos(th), math.sin(th)])
    widths_um = (0.0, 1.0, 2.0, 3.0)
    plates = [[]] + [[Crack(tuple(c - d), tuple(c + d), width_m=w * 1e-6)] for w in widths_um]
    s = simulate_wavefield(cfg, plates).signals.numpy()
    scattered = np.sqrt(((s[1:] - s[:1]) ** 2).mean(axis=(1, 2, 3))) / np.sqrt((s[0] ** 2).mean())
    assert (np.diff(scattered) > 0.03 * scattered[:-1]).all(), scattered


@pytest.mark.parametrize("width_um", [0.0, 0.6])
def test_notch_across_the_plate_lets_nothing_through(width_um):
    """A cut from the bottom edge to the top edge splits the plate in two bodies: the half without
    the source never moves, to the last bit, whatever the time."""
    cfg = PlateConfig.preset("tiny", width=8e-6, height=8e-6, n_time=400, dtype="float64")
    cut = Crack((4.03e-6, 0.0), (4.03e-6, 8e-6), width_m=width_um * 1e-6)  # off the node columns
    xy = np.array([[2e-6, 4e-6], [5e-6, 4e-6], [7e-6, 1e-6], [7.5e-6, 7e-6]])
    out = simulate_wavefield(cfg, [[cut]], sensor_xy=xy)
    sig = out.signals[0].numpy()
    assert np.abs(sig[:, 0]).max() > 0  # the source side moves
    assert (sig[:, 1:] == 0).all()
