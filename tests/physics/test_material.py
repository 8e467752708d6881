"""Calibration of the spring lattice against continuum theory."""

import numpy as np
import pytest

from crackscope.errors import InputError
from crackscope.physics import PlateConfig
from crackscope.physics.lattice import dynamical_matrix
from crackscope.physics.material import calibrate_springs, wave_speeds

from . import steel_plane_stress_speeds


def test_steel_wave_speeds_match_textbook_values():
    c_p, c_s = wave_speeds(210e9, 0.3, 7850.0)
    # hand-computed: mu = 210e9 / 2.6 = 80.77 GPa -> c_s = 3207.7 m/s; E/(rho 0.91) -> c_p = 5421.9 m/s
    assert c_s == pytest.approx(3207.66, abs=0.05)
    assert c_p == pytest.approx(5421.93, abs=0.05)


@pytest.mark.parametrize("nu", [-0.5, 0.0, 0.2, 0.3, 1.0 / 3.0])
@pytest.mark.parametrize("angle", [0.0, 0.4, 1.1])
def test_long_wave_lattice_speeds_equal_continuum(nu, angle):
    """Eigenvalues of the lattice's dynamical matrix at |k| a = 1e-3 give c_p and c_s in every direction."""
    a, t, rho, e = 0.2e-6, 0.2e-6, 7850.0, 210e9
    springs = calibrate_springs(e, nu, rho, t, a)
    k = 1e-3 / a * np.array([np.cos(angle), np.sin(angle)])
    w2 = np.linalg.eigvalsh(dynamical_matrix(k, a, springs.k_normal, springs.k_shear, springs.node_mass))
    c_s_lattice, c_p_lattice = np.sqrt(w2) / np.linalg.norm(k)
    c_p, c_s = steel_plane_stress_speeds(e, nu, rho)
    assert c_p_lattice == pytest.approx(c_p, rel=1e-5)
    assert c_s_lattice == pytest.approx(c_s, rel=1e-5)


@pytest.mark.parametrize("nu", [0.34, 0.49, -1.0, -1.5])
def test_poisson_ratio_outside_supported_range_is_refused(nu):
    with pytest.raises(ValueError, match="poisson_ratio"):
        PlateConfig.preset("tiny", poisson_ratio=nu)
    with pytest.raises(InputError, match="poisson_ratio"):
        calibrate_springs(210e9, nu, 7850.0, 1e-6, 1e-7)


def test_springs_are_non_negative_across_supported_range():
    for nu in np.linspace(-0.99, 1 / 3, 40):
        s = calibrate_springs(210e9, float(nu), 7850.0, 1e-6, 1e-7)
        assert s.k_normal > 0 and s.k_shear >= 0
