"""Delay-and-sum imaging against geometry: a hand-placed delay peaks where it was placed, and a
simulated notch is imaged near where it was cut."""

import numpy as np
import pytest

from crackscope.analysis.delay_and_sum import das_image
from crackscope.errors import InputError
from crackscope.physics import Crack, PlateConfig, simulate_wavefield


def test_a_pulse_at_the_travel_time_of_one_point_is_imaged_there():
    """Synthetic record: each sensor holds one short pulse at the delay of p* = (3.25, 1.75) m
    (10 m/s out, 20 m/s back); the image's maximum is the pixel whose centre is p*."""
    sensors = np.array([[0.5, 0.5], [4.5, 0.5], [0.5, 4.5], [4.5, 4.5], [2.5, 2.5]])
    source, p, dt = np.array([0.0, 2.5]), np.array([3.25, 1.75]), 1e-3
    t = np.arange(2000) * dt
    signals = np.zeros((2, len(sensors), t.size))
    for k, s in enumerate(sensors):
        delay = np.linalg.norm(p - source) / 10 + np.linalg.norm(s - p) / 20
        signals[0, k] = np.exp(-(((t - delay) / 0.004) ** 2)) * np.cos(2 * np.pi * 250 * (t - delay))
    img = das_image(signals, sensors, source, dt, (10.0, 20.0), (5.0, 5.0), size=10)
    iy, ix = np.unravel_index(img.argmax(), img.shape)
    assert ((ix + 0.5) * 0.5, (iy + 0.5) * 0.5) == (3.25, 1.75)


def test_simulated_notches_are_imaged_within_two_sensor_spacings():
    cfg = PlateConfig.preset("small", n_time=250, record_every=4)
    lattice = cfg.lattice()
    r, c = lattice.source_node()
    centres = [(5e-6, 5e-6), (12e-6, 13e-6), (9e-6, 9e-6), (14e-6, 4e-6)]
    plates = [[]] + [[Crack((x - 0.5e-6, y), (x + 0.5e-6, y), width_m=1e-6)] for x, y in centres]
    out = simulate_wavefield(cfg, plates)
    s = out.signals.numpy().astype(np.float64)
    spacing = cfg.width / cfg.sensor_grid  # 2 µm
    for k, (x, y) in enumerate(centres, start=1):
        img = das_image(
            s[k] - s[0],
            out.sensor_xy.numpy(),
            lattice.positions[:, r, c],
            cfg.dt * cfg.record_every,
            (out.c_s, out.c_p),
            (cfg.width, cfg.height),
            window_s=1.5 * cfg.width / out.c_p,
        )
        iy, ix = np.unravel_index(img.argmax(), img.shape)
        pixel = cfg.width / 36
        assert np.hypot((ix + 0.5) * pixel - x, (iy + 0.5) * pixel - y) < 2 * spacing


def test_bad_shapes_and_speeds_are_refused():
    with pytest.raises(InputError, match="sensors"):
        das_image(np.zeros((2, 3, 10)), np.zeros((4, 2)), (0, 0), 1.0, (1.0, 1.0), (1.0, 1.0))
    with pytest.raises(InputError, match="speeds"):
        das_image(np.zeros((2, 4, 10)), np.zeros((4, 2)), (0, 0), 1.0, (0.0, 1.0), (1.0, 1.0))
