"""Lattice geometry against brute force, and the stability limit against blow-up."""

import math

import numpy as np
import pytest
import torch

from crackscope.physics import PlateConfig
from crackscope.physics.lattice import TriangularLattice
from crackscope.physics.solver import LatticeSolver


def brute_force_bonds(lattice):
    """All node pairs at distance a, found from positions alone."""
    xy = lattice.positions.reshape(2, -1).T
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    i, j = np.nonzero(
        np.isclose(d, lattice.spacing, rtol=1e-6) & (np.arange(len(xy))[:, None] < np.arange(len(xy))[None])
    )
    return {(int(a), int(b)) for a, b in zip(i, j)}


@pytest.mark.parametrize("size", [(2.0e-6, 1.6e-6), (1.9e-6, 2.3e-6)])
def test_bond_families_are_exactly_the_nearest_neighbour_pairs(size):
    lat = TriangularLattice(size[0], size[1], 0.2e-6)
    idx = np.arange(lat.n_nodes).reshape(lat.shape)
    found = set()
    for fam in lat.families:
        i, j = fam.first(idx).ravel(), fam.second(idx).ravel()
        vec = lat.positions.reshape(2, -1)[:, j] - lat.positions.reshape(2, -1)[:, i]
        np.testing.assert_allclose(vec.T / lat.spacing, np.tile(fam.direction, (len(i), 1)), atol=1e-9)
        found |= {(min(a, b), max(a, b)) for a, b in zip(i, j)}
    assert found == brute_force_bonds(lat)


def test_lattice_fits_plate_and_is_mirror_symmetric():
    lat = TriangularLattice(7.2e-6, 7.2e-6, 0.2e-6)
    x, y = lat.positions
    assert x.min() >= 0 and x.max() <= 7.2e-6 and y.min() >= 0 and y.max() <= 7.2e-6
    assert lat.n_rows % 2 == 1
    np.testing.assert_allclose(y[::-1] + y, 7.2e-6, rtol=1e-12)  # rows mirror about H/2
    np.testing.assert_allclose(x[::-1], x, rtol=1e-12)  # mirrored rows have the same parity


def _amplification(cfg, dt_factor, steps=1500):
    lat = cfg.lattice()
    s = cfg.springs
    solver = LatticeSolver(
        lat, s.k_normal, s.k_shear, s.node_mass, cfg.stability_limit * dt_factor, 1, dtype=torch.float64
    )
    g = torch.Generator().manual_seed(0)
    solver.u = torch.randn(solver.u.shape, generator=g, dtype=torch.float64)
    solver.u_prev = solver.u.clone()
    start = solver.u.abs().max().item()
    for _ in range(steps):
        solver.step()
    return solver.u.abs().max().item() / start


def test_time_step_limit_separates_stable_from_unstable():
    """Random initial displacements excite every mode: bounded just below the limit, growing just above."""
    cfg = PlateConfig.preset("tiny", dtype="float64")
    assert _amplification(cfg, 0.99) < 10.0
    grown = _amplification(cfg, 1.03)
    assert not math.isfinite(grown) or grown > 1e3


def test_time_step_above_limit_is_refused():
    cfg = PlateConfig.preset("tiny")
    with pytest.raises(ValueError, match="time_step=.*stability limit"):
        cfg.replace(time_step=cfg.stability_limit * 1.01)
    assert cfg.replace(time_step=cfg.stability_limit * 0.99).dt < cfg.stability_limit


def test_stability_limit_is_of_the_courant_order():
    cfg = PlateConfig.preset("tiny")
    c_p, _ = cfg.wave_speeds
    ratio = cfg.stability_limit * c_p / cfg.lattice_spacing
    assert 0.3 < ratio < math.sqrt(2.0)
