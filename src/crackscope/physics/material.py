"""Calibrating a triangular spring lattice to an isotropic elastic plate in plane stress.

Each bond of length ``a`` and direction ``n`` carries a normal spring ``k_n`` (resisting stretch
along the bond) and a shear spring ``k_s`` (resisting relative displacement across it): the force
on node i is A (u_j - u_i) with A = (k_n - k_s) n n^T + k_s I. Node mass m = rho t sqrt(3)/2 a^2.

Long waves (|k| a << 1) obey w^2 U = D(k) U with D(k) ~ a^2/m sum_d (k.n_d)^2 A_d over the three
bond directions; with sum_d n_i n_j n_k n_l = 3/8 (d_ij d_kl + d_ik d_jl + d_il d_jk) this is
isotropic and gives

    rho c_p^2 = (9 k_n + 3 k_s) / (4 sqrt(3) t),      rho c_s^2 = (3 k_n + 9 k_s) / (4 sqrt(3) t).

Setting these to the plane-stress continuum, rho c_p^2 = lambda' + 2 mu and rho c_s^2 = mu, with
mu = E / (2 (1 + nu)) and lambda' = E nu / (1 - nu^2), calibrates the springs:

    k_n = sqrt(3) t (3 lambda' + 5 mu) / 6,        k_s = sqrt(3) t (mu - lambda') / 6.

k_s >= 0 needs lambda' <= mu, i.e. nu <= 1/3, and k_n > 0 holds for every nu > -1: the supported
range is -1 < nu <= 1/3 (steel, nu = 0.3, is inside it).

Known limitation of this (Born-type) lattice: the shear springs also resist rigid rotation, so
its static modulus for a symmetric shear strain is (lambda' + 3 mu)/4 rather than mu (3.6 % low
for nu = 0.3; exact at nu = 1/3, where k_s = 0). Wave speeds, which is what the simulator is for,
are exact in the long-wave limit; short waves are dispersive (measured: P arrivals 1 % slow at
20 spacings per P wavelength).
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
            f"poisson_ratio={nu!r} is outside the range the normal+shear spring lattice supports (-1 < nu <= 1/3)"
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
    k_n = math.sqrt(3.0) * thickness * (3.0 * lam + 5.0 * mu) / 6.0
    k_s = max(math.sqrt(3.0) * thickness * (mu - lam) / 6.0, 0.0)
    mass = density * thickness * math.sqrt(3.0) / 2.0 * spacing**2
    return LatticeSprings(k_normal=k_n, k_shear=k_s, node_mass=mass)
