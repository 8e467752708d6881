"""Source time functions (dimensionless, peak magnitude 1)."""

from __future__ import annotations

import math

import numpy as np


def ricker(time_s: np.ndarray, center_frequency_hz: float) -> np.ndarray:
    """Ricker wavelet centred at t0 = 1.5 / f0 (so it starts and ends at ~1e-8 of its peak)."""
    t0 = 1.5 / center_frequency_hz
    arg = (math.pi * center_frequency_hz * (time_s - t0)) ** 2
    return (1.0 - 2.0 * arg) * np.exp(-arg)


def tone_burst(time_s: np.ndarray, center_frequency_hz: float, cycles: float) -> np.ndarray:
    """Hann-windowed sine burst of ``cycles`` periods starting at t = 0, zero afterwards."""
    duration = cycles / center_frequency_hz
    inside = (time_s >= 0) & (time_s <= duration)
    window = np.sin(math.pi * np.clip(time_s, 0.0, duration) / duration) ** 2
    return np.where(inside, window * np.sin(2.0 * math.pi * center_frequency_hz * time_s), 0.0)


def source_duration_s(waveform: str, center_frequency_hz: float, cycles: float) -> float:
    """Time [s] after which the source force is (numerically) zero."""
    return 3.0 / center_frequency_hz if waveform == "ricker" else cycles / center_frequency_hz


def waveform(name: str, time_s: np.ndarray, center_frequency_hz: float, cycles: float) -> np.ndarray:
    if name == "ricker":
        out = ricker(time_s, center_frequency_hz)
        return np.where(time_s <= source_duration_s(name, center_frequency_hz, cycles), out, 0.0)
    if name == "tone_burst":
        return tone_burst(time_s, center_frequency_hz, cycles)
    raise ValueError(f"unknown source waveform {name!r}")
