"""Calibrating a triangular spring lattice to an isotropic elastic plate in plane stress.

Each bond of length ``a`` carries a normal spring ``k_n`` (resisting stretch along the bond) and a
shear spring ``k_s`` (resisting relative displacement across it). For a uniform strain ``eps`` the
energy per unit area of the triangular lattice (three bond directions, node area sqrt(3)/2 a^2) is

    W = sqrt(3)/8 * [ (k_n - k_s) tr(eps)^2 + 2 (k_n + k_s) eps:eps ],

using sum_d n_i n_j n_k n_l = 3/8 (d_ij d_kl + d_ik d_jl + d_il d_jk) over the three directions.
Matching the plane-stress continuum, W = t [ lambda'/2 tr(eps)^2 + mu eps:eps ], gives

    k_n = 2 t (mu + lambda') / sqrt(3),     k_s = 2 t (mu - lambda') / sqrt(3),

with mu = E / (2 (1 + nu)) and the plane-stress lambda' = E nu / (1 - nu^2). Equivalently
nu = (k_n - k_s) / (3 k_n + k_s). Non-negative springs need -1 < nu <= 1/3: the supported range.
The node mass is m = rho t sqrt(3)/2 a^2, so the lattice's long-wave speeds are exactly

    c_p = sqrt(E / (rho (1 - nu^2))),   c_s = sqrt(E / (2 rho (1 + nu)))    (plane stress).

(References: Griffiths & Mustoe 2001; Zhao et al. 2011, "Distinct lattice spring model".)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from crackscope.errors import InputError

POISSON_MIN_EXCLUSIVE = -1.0
POISSON_MAX = 1.0 / 3.0


def check_poisson_ratio(nu: float) -> float:
    if not (POISSON_MIN_EXCLUSIVE < nu <= POISSON_MAX + 1e-12):
        raise InputError(
            f"poisson_ratio={nu!r} is outside the range the normal+shear spring lattice supports "
            f"(-1 < nu <= 1/3)"
        )
    return nu


@dataclass(frozen=True)
class LatticeSprings:
    """Spring constants [N/m] and node mass [kg] of the calibrated lattice."""

    k_normal: float
    k_shear: float
    node_mass: float


def plane_stress_lame(youngs_modulus: float, poisson_ratio: float) -> tuple[float, float]:
    """(lambda', mu) [Pa] of the plane-stress continuum."""
    e, nu = youngs_modulus, poisson_ratio
    return e * nu / (1.0 - nu * nu), e / (2.0 * (1.0 + nu))


def wave_speeds(youngs_modulus: float, poisson_ratio: float, density: float) -> tuple[float, float]:
    """Plane-stress P and S wave speeds (c_p, c_s) [m/s] from continuum theory."""
    lam, mu = plane_stress_lame(youngs_modulus, poisson_ratio)
    return math.sqrt((lam + 2.0 * mu) / density), math.sqrt(mu / density)


def calibrate_springs(
    youngs_modulus: float, poisson_ratio: float, density: float, thickness: float, spacing: float
) -> LatticeSprings:
    """Spring constants and node mass that reproduce the plate's elasticity (see module doc)."""
    check_poisson_ratio(poisson_ratio)
    lam, mu = plane_stress_lame(youngs_modulus, poisson_ratio)
    k_n = 2.0 * thickness * (mu + lam) / math.sqrt(3.0)
    k_s = max(2.0 * thickness * (mu - lam) / math.sqrt(3.0), 0.0)
    mass = density * thickness * math.sqrt(3.0) / 2.0 * spacing**2
    return LatticeSprings(k_normal=k_n, k_shear=k_s, node_mass=mass)
