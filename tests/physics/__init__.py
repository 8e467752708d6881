"""Small independent tools for the physics tests (no crackscope code inside)."""

import numpy as np


def envelope(x: np.ndarray) -> np.ndarray:
    """Amplitude envelope |analytic signal| along the last axis (FFT Hilbert transform)."""
    n = x.shape[-1]
    h = np.zeros(n)
    h[0] = 1.0
    h[1 : (n + 1) // 2] = 2.0
    if n % 2 == 0:
        h[n // 2] = 1.0
    return np.abs(np.fft.ifft(np.fft.fft(x, axis=-1) * h, axis=-1))


def steel_plane_stress_speeds(e=210e9, nu=0.3, rho=7850.0):
    """Textbook plane-stress speeds: c_p = sqrt(E / (rho (1 - nu^2))), c_s = sqrt(E / (2 rho (1 + nu)))."""
    return np.sqrt(e / (rho * (1 - nu**2))), np.sqrt(e / (2 * rho * (1 + nu)))
