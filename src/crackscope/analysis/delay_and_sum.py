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
    t = delay_samples(sensor_xy_m, source_xy_m, sample_interval_s, (c_out, c_back), plate_m, size)  # (P, S)
    lo = np.clip(np.floor(t).astype(np.int64), 0, n_time - 1)
    hi = np.clip(lo + 1, 0, n_time - 1)
    frac = np.clip(t - np.floor(t), 0.0, 1.0)
    inside = t <= n_time - 1
    sensors = np.arange(sensor_xy_m.shape[0])[None, :]
    picked = env[..., sensors, lo] * (1 - frac) + env[..., sensors, hi] * frac  # (..., P, S)
    image = (picked * inside).sum(axis=-1)
    return image.reshape(*env.shape[:-2], size, size)


def delay_samples(sensor_xy_m, source_xy_m, sample_interval_s: float, speeds_m_per_s, plate_m, size: int) -> np.ndarray:
    """(size * size, S) float64: the delay source -> pixel -> sensor of every mask pixel (row-major from
    the bottom row, centres as in the crack masks) and sensor, in record samples."""
    sensor_xy_m = np.asarray(sensor_xy_m, dtype=np.float64).reshape(-1, 2)
    c_out, c_back = (float(v) for v in speeds_m_per_s)
    width, height = plate_m
    px = (np.arange(size) + 0.5) * width / size
    py = (np.arange(size) + 0.5) * height / size
    p = np.stack(np.meshgrid(px, py, indexing="xy"), axis=-1).reshape(-1, 2)  # (P, 2)
    out_leg = np.linalg.norm(p - np.asarray(source_xy_m, dtype=np.float64), axis=1)  # (P,)
    back_leg = np.linalg.norm(p[:, None, :] - sensor_xy_m[None], axis=2)  # (P, S)
    return (out_leg[:, None] / c_out + back_leg / c_back) / sample_interval_s


MODES = ("sp", "ss", "pp", "ps")  # wave out from the source, wave back to the sensor


def store_acquisition(group) -> dict:
    """What delay-and-sum needs to know of a wave-field store's plates, as plain numbers (JSON/YAML):
    ``plate_m`` (width, height), ``source_xy_m``, ``sensor_xy_m`` (S pairs), ``sample_interval_s``
    (between recorded samples) and ``wave_speeds_m_per_s`` (c_p, c_s)."""
    from crackscope.physics.config import PlateConfig

    attrs = dict(group.attrs)
    cfg = PlateConfig.model_validate(attrs["config"])
    lattice = cfg.lattice()
    r, c = lattice.source_node()
    return {
        "plate_m": [float(cfg.width), float(cfg.height)],
        "source_xy_m": [float(v) for v in lattice.positions[:, r, c]],
        "sensor_xy_m": [[float(v) for v in xy] for xy in attrs["sensor_xy_m"]],
        "sample_interval_s": float(cfg.dt * cfg.record_every),
        "wave_speeds_m_per_s": [float(v) for v in cfg.wave_speeds],
    }


def mode_speeds(acquisition: dict, mode: str) -> tuple[float, float]:
    """(c_out, c_back) of ``mode`` (``"sp"``: shear out from the source, P back to the sensors)."""
    if mode not in MODES:
        raise InputError(f"mode={mode!r} is not one of {', '.join(MODES)} (the waves out and back)")
    c_p, c_s = acquisition["wave_speeds_m_per_s"]
    return tuple(c_p if m == "p" else c_s for m in mode)


def early_window_s(acquisition: dict, transits: float | None) -> float | None:
    """The early record kept: ``transits`` P-wave transits of the plate's width (None: all of it)."""
    return None if transits is None else transits * acquisition["plate_m"][0] / acquisition["wave_speeds_m_per_s"][0]


def das_image_of_store(group, indices, *, mode: str = "sp", window_transits: float | None = 1.5) -> np.ndarray:
    """(N, M, M) delay-and-sum images of samples ``indices`` of a wave-field store, from its own
    reference, sensor positions, record interval and wave speeds. ``mode``: the wave out and back
    (``"sp"``: shear out, P back). ``window_transits``: keep the record up to that many P-wave
    transits of the plate's width (None: all of it)."""
    acq = store_acquisition(group)
    speeds = mode_speeds(acq, mode)
    reference = np.asarray(group["reference"][...], dtype=np.float64)
    signals = np.stack([np.asarray(group["signals"][int(i)], dtype=np.float64) for i in indices])
    return das_image(
        signals - reference[None],
        np.asarray(acq["sensor_xy_m"]),
        acq["source_xy_m"],
        acq["sample_interval_s"],
        speeds,
        tuple(acq["plate_m"]),
        size=int(group["masks"].shape[-1]),
        window_s=early_window_s(acq, window_transits),
    )
