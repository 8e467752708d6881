"""Delay-and-sum imaging of the scattered wave field: where the record says a crack is, untrained.

The NDT standard for sparse arrays (the "total focusing" family): a scatterer at p turns the wave
from the source s_0 into a wave that reaches sensor s_k after

    t_k(p) = |p - s_0| / c_out + |s_k - p| / c_back,

so the image sums, over the sensors, the envelope of each sensor's scattered signal (signal minus
the intact plate) at that delay:

    I(p) = sum_k  e_k(t_k(p)),     e_k = |hilbert(u_k - u_k^intact)|  over the x and y components.

Only single scattering of the direct wave is modelled: edge reflections blur the image, which is
why it is a diagnostic of what the record holds about a crack's position, not a segmenter. The
speeds pick the wave modes: the point force on the plate's edge radiates its strongest wave into
the plate as shear, and a notch scatters part of it back as the faster P wave, so crackscope's
default is ``"sp"`` (c_out = c_s, c_back = c_p); ``window_s`` keeps only the early record (default
1.5 P-wave transits of the plate), before the edge echoes dominate. Units: metres and seconds.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import hilbert

from crackscope.errors import InputError


def envelopes(scattered: np.ndarray) -> np.ndarray:
    """(..., 2, S, T) scattered x/y displacements -> (..., S, T) envelope, root-sum-square of the
    components' analytic-signal magnitudes."""
    analytic = np.abs(hilbert(np.asarray(scattered, dtype=np.float64), axis=-1))
    return np.sqrt((analytic**2).sum(axis=-3))


def das_image(
    scattered: np.ndarray,
    sensor_xy_m: np.ndarray,
    source_xy_m,
    sample_interval_s: float,
    speeds_m_per_s: tuple[float, float],
    plate_m: tuple[float, float],
    size: int = 36,
    window_s: float | None = None,
) -> np.ndarray:
    """(..., size, size) delay-and-sum image of (..., 2, S, T) scattered signals; row 0 = bottom of
    the plate, pixel centres at ((ix + 0.5) W / size, (iy + 0.5) H / size) like the crack masks.
    ``speeds_m_per_s``: (c_out, c_back), the speeds from the source to a pixel and back to a sensor."""
    sensor_xy_m = np.asarray(sensor_xy_m, dtype=np.float64).reshape(-1, 2)
    scattered = np.asarray(scattered)
    if scattered.shape[-3:-1] != (2, sensor_xy_m.shape[0]):
        raise InputError(
            f"scattered signals {scattered.shape} do not match (..., 2, {sensor_xy_m.shape[0]} sensors, T)"
        )
    c_out, c_back = (float(v) for v in speeds_m_per_s)
    if not (sample_interval_s > 0 and c_out > 0 and c_back > 0):
        raise InputError(f"sample interval {sample_interval_s!r} s and speeds {speeds_m_per_s!r} m/s must be > 0")
    env = envelopes(scattered)  # (..., S, T)
    n_time = env.shape[-1]
    if window_s is not None:
        env = env * (np.arange(n_time) * sample_interval_s <= window_s)
    width, height = plate_m
    px = (np.arange(size) + 0.5) * width / size
    py = (np.arange(size) + 0.5) * height / size
    p = np.stack(np.meshgrid(px, py, indexing="xy"), axis=-1).reshape(-1, 2)  # (P, 2), row-major from bottom
    out_leg = np.linalg.norm(p - np.asarray(source_xy_m, dtype=np.float64), axis=1)  # (P,)
    back_leg = np.linalg.norm(p[:, None, :] - sensor_xy_m[None], axis=2)  # (P, S)
    t = (out_leg[:, None] / c_out + back_leg / c_back) / sample_interval_s  # (P, S) in samples
    lo = np.clip(np.floor(t).astype(np.int64), 0, n_time - 1)
    hi = np.clip(lo + 1, 0, n_time - 1)
    frac = np.clip(t - np.floor(t), 0.0, 1.0)
    inside = t <= n_time - 1
    sensors = np.arange(sensor_xy_m.shape[0])[None, :]
    picked = env[..., sensors, lo] * (1 - frac) + env[..., sensors, hi] * frac  # (..., P, S)
    image = (picked * inside).sum(axis=-1)
    return image.reshape(*env.shape[:-2], size, size)


MODES = ("sp", "ss", "pp", "ps")  # wave out from the source, wave back to the sensor


def das_image_of_store(group, indices, *, mode: str = "sp", window_transits: float | None = 1.5) -> np.ndarray:
    """(N, M, M) delay-and-sum images of samples ``indices`` of a wave-field store, from its own
    reference, sensor positions, record interval and wave speeds. ``mode``: the wave out and back
    (``"sp"``: shear out, P back). ``window_transits``: keep the record up to that many P-wave
    transits of the plate's width (None: all of it)."""
    from crackscope.physics.config import PlateConfig

    if mode not in MODES:
        raise InputError(f"mode={mode!r} is not one of {', '.join(MODES)} (the waves out and back)")
    attrs = dict(group.attrs)
    cfg = PlateConfig.model_validate(attrs["config"])
    lattice = cfg.lattice()
    r, c = lattice.source_node()
    source = lattice.positions[:, r, c]
    c_p, c_s = cfg.wave_speeds
    reference = np.asarray(group["reference"][...], dtype=np.float64)
    signals = np.stack([np.asarray(group["signals"][int(i)], dtype=np.float64) for i in indices])
    window = None if window_transits is None else window_transits * cfg.width / c_p
    return das_image(
        signals - reference[None],
        np.asarray(attrs["sensor_xy_m"]),
        source,
        cfg.dt * cfg.record_every,
        tuple(c_p if m == "p" else c_s for m in mode),
        (cfg.width, cfg.height),
        size=cfg.mask_size,
        window_s=window,
    )
