"""Delay-and-sum imaging as a fixed network layer: the physics prior a wave-field model can take in.

The same image as :func:`crackscope.analysis.delay_and_sum.das_image` (see there for the physics):
the envelope of every sensor's scattered signal, summed at the travel time source -> pixel -> sensor.
Here both steps are fixed tensors, so the layer runs inside the model on CPU or GPU and exports
to ONNX (a matrix product and two gathers, no FFT):

* the envelope ``|u + i H u|`` takes the Hilbert transform H as the (kept samples x T) matrix
  of the FFT analytic signal over the whole record (``scipy.signal.hilbert``'s definition);
* the sum at the delays is a gather of two neighbouring samples per (pixel, sensor) with
  linear-interpolation weights; delays past the kept early record weigh 0.

The image is divided by its own maximum per plate, so it does not depend on the input's scale.
Nothing here is trained, and nothing is saved with the weights: the layer is rebuilt from the
acquisition geometry (:func:`crackscope.analysis.delay_and_sum.store_acquisition`), which
training writes into the run's ``config.yaml``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from crackscope.analysis.delay_and_sum import MODES, delay_samples, early_window_s, mode_speeds
from crackscope.errors import InputError

ACQUISITION_KEYS = ("plate_m", "source_xy_m", "sensor_xy_m", "sample_interval_s", "wave_speeds_m_per_s")


def hilbert_matrix(n_time: int, rows: int | None = None) -> np.ndarray:
    """(rows, n_time) float64 H with ``H @ u`` the imaginary part of the FFT analytic signal of u
    (length n_time): the spectrum's positive frequencies doubled, the negative ones removed."""
    gain = np.zeros(n_time)
    gain[0] = 1.0
    gain[1 : (n_time + 1) // 2] = 2.0
    if n_time % 2 == 0:
        gain[n_time // 2] = 1.0
    columns = np.fft.ifft(np.fft.fft(np.eye(n_time), axis=0) * gain[:, None], axis=0)  # column j: analytic e_j
    return np.ascontiguousarray(columns.imag[: n_time if rows is None else rows])


class DelayAndSumImage(nn.Module):
    """(B, C >= 2, T, S) scattered x/y displacements (channels 0 and 1) -> (B, 1, size, size)
    delay-and-sum image with a peak of 1 per plate (row 0 = bottom of the plate, as the masks).

    ``acquisition``: the plates' geometry (``ACQUISITION_KEYS``; metres, seconds); ``mode``: the
    waves out and back (``"sp"``: shear out, P back); ``window_transits``: the early record kept, in
    P-wave transits of the plate's width (None: all of it)."""

    def __init__(
        self, acquisition: dict, n_time: int, size: int, mode: str = "sp", window_transits: float | None = 1.5
    ):
        super().__init__()
        missing = [k for k in ACQUISITION_KEYS if k not in (acquisition or {})]
        if missing:
            raise InputError(
                f"delay-and-sum needs the plates' acquisition geometry; missing {', '.join(missing)} "
                "(training fills it from data.store)"
            )
        if mode not in MODES:
            raise InputError(f"das_mode={mode!r} is not one of {', '.join(MODES)} (the waves out and back)")
        if window_transits is not None and not window_transits > 0:
            raise InputError(f"das_window_transits must be > 0 or null (got {window_transits!r})")
        dt = float(acquisition["sample_interval_s"])
        sensors = np.asarray(acquisition["sensor_xy_m"], dtype=np.float64).reshape(-1, 2)
        window = early_window_s(acquisition, window_transits)
        kept = n_time if window is None else int(np.sum(np.arange(n_time) * dt <= window))
        kept = max(kept, 1)
        t = delay_samples(
            sensors,
            acquisition["source_xy_m"],
            dt,
            mode_speeds(acquisition, mode),
            tuple(acquisition["plate_m"]),
            size,
        )  # (P, S) in samples
        lo = np.clip(np.floor(t).astype(np.int64), 0, n_time - 1)
        hi = np.clip(lo + 1, 0, n_time - 1)
        frac = np.clip(t - np.floor(t), 0.0, 1.0)
        inside = t <= n_time - 1
        w_lo = (1 - frac) * inside * (lo < kept)  # samples past the kept record are 0 in the envelope
        w_hi = frac * inside * (hi < kept)
        column = np.arange(sensors.shape[0])[None, :]
        n_sensors = sensors.shape[0]
        self.size, self.n_sensors, self.kept = size, n_sensors, kept
        f32 = dict(dtype=torch.float32)
        self.register_buffer("hilbert", torch.tensor(hilbert_matrix(n_time, kept), **f32), persistent=False)
        for name, index in (("index_lo", lo), ("index_hi", hi)):
            flat = np.minimum(index, kept - 1) * n_sensors + column  # into the (kept * S) envelope
            self.register_buffer(name, torch.from_numpy(flat.reshape(-1)), persistent=False)
        self.register_buffer("weight_lo", torch.tensor(w_lo.reshape(-1), **f32), persistent=False)
        self.register_buffer("weight_hi", torch.tensor(w_hi.reshape(-1), **f32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x[:, :2]  # (B, 2, T, S)
        imag = torch.einsum("kt,bcts->bcks", self.hilbert, u)
        real = u[:, :, : self.kept]
        envelope = torch.sqrt((real * real + imag * imag).sum(dim=1)).reshape(x.shape[0], -1)  # (B, kept * S)
        picked = envelope[:, self.index_lo] * self.weight_lo + envelope[:, self.index_hi] * self.weight_hi
        image = picked.reshape(x.shape[0], self.size * self.size, self.n_sensors).sum(dim=-1)
        peak = image.amax(dim=1, keepdim=True)
        image = image / torch.where(peak > 0, peak, torch.ones_like(peak))
        return image.reshape(x.shape[0], 1, self.size, self.size)
