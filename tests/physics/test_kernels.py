"""The fused numba kernel against the readable torch reference implementation."""

import numpy as np
import pytest
import torch

from crackscope.physics import Crack, PlateConfig, simulate_wavefield
from crackscope.physics.solver import LatticeSolver
from crackscope.physics.wavefield import cut_bond_weights, sponge_damping


@pytest.mark.parametrize("damped", [False, True])
def test_numba_kernel_equals_torch_reference_step_by_step(damped):
    cfg = PlateConfig.preset(
        "tiny", dtype="float64", sponge_width=1.5e-6 if damped else 0.0, damping=1e7 if damped else 0.0
    )
    lat, s = cfg.lattice(), cfg.springs
    cracks = [[Crack((2e-6, 2e-6), (4e-6, 4.2e-6), (5e-6, 3e-6))], [], [Crack((1e-6, 6e-6), (6e-6, 6.5e-6))]]
    weights, _ = cut_bond_weights(lat, cracks)
    solvers = [
        LatticeSolver(
            lat,
            s.k_normal,
            s.k_shear,
            s.node_mass,
            cfg.dt,
            3,
            bond_weights=weights,
            damping=sponge_damping(cfg, lat),
            dtype=torch.float64,
            backend=b,
        )
        for b in ("torch", "numba")
    ]
    start = torch.randn(solvers[0].u.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for sol in solvers:
        sol.u = start
        sol.u_prev = 0.9 * start
    for n in range(100):
        for sol in solvers:
            sol.step(point_force=(20, 0, 1e-3 * np.sin(n / 5.0), 2e-4))
    ref, fast = solvers[0].u, solvers[1].u
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-12)


def test_backends_agree_through_the_public_api():
    cfg = PlateConfig.preset("tiny")
    cracks = [[Crack((2e-6, 3e-6), (5e-6, 3.5e-6))]]
    a = simulate_wavefield(cfg, cracks, backend="torch").signals
    b = simulate_wavefield(cfg, cracks, backend="numba").signals
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5 * a.abs().max().item())
