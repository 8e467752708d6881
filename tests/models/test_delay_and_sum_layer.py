"""The delay-and-sum layer against independent references: its Hilbert matrix against SciPy's FFT
analytic signal, its image against the NumPy/SciPy imaging of crackscope.analysis, a hand-placed
pulse imaged where it was placed, and MicroCrackAttentionNeXt with the image as an input channel
(trained, evaluated and exported to ONNX through the engine)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.signal import hilbert

from crackscope.analysis.delay_and_sum import das_image, early_window_s, mode_speeds
from crackscope.errors import InputError
from crackscope.models import create
from crackscope.models.wavefield.delay_and_sum_layer import DelayAndSumImage, hilbert_matrix

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("n", [7, 8, 250])
def test_hilbert_matrix_is_scipys_analytic_signal(n):
    u = np.random.default_rng(n).standard_normal((3, n))
    expected = np.imag(hilbert(u, axis=-1))
    assert np.allclose(u @ hilbert_matrix(n).T, expected, atol=1e-12)
    assert np.allclose(u @ hilbert_matrix(n, 5).T, expected[:, :5], atol=1e-12)


def _acquisition():
    """A 5 x 5 m plate, a source on its left edge, 3 x 3 sensors, 1 ms samples, c_p = 20, c_s = 10 m/s."""
    sensors = [[x, y] for y in (1.0, 2.5, 4.0) for x in (1.0, 2.5, 4.0)]
    return {
        "plate_m": [5.0, 5.0],
        "source_xy_m": [0.0, 2.5],
        "sensor_xy_m": sensors,
        "sample_interval_s": 1e-3,
        "wave_speeds_m_per_s": [20.0, 10.0],
    }


@pytest.mark.parametrize("mode, transits", [("sp", 1.5), ("pp", None), ("ss", 4.0)])
def test_layer_equals_the_scipy_imaging_up_to_its_peak(mode, transits):
    acq = _acquisition()
    n_time = 600
    scattered = np.random.default_rng(1).standard_normal((2, 2, 9, n_time))  # (B, xy, S, T)
    expected = das_image(
        scattered,
        np.asarray(acq["sensor_xy_m"]),
        acq["source_xy_m"],
        acq["sample_interval_s"],
        mode_speeds(acq, mode),
        tuple(acq["plate_m"]),
        size=12,
        window_s=early_window_s(acq, transits),
    )
    expected = expected / expected.reshape(2, -1).max(axis=1)[:, None, None]
    layer = DelayAndSumImage(acq, n_time, 12, mode, transits)
    got = layer(torch.tensor(scattered, dtype=torch.float32).permute(0, 1, 3, 2))  # (B, 2, T, S)
    assert got.shape == (2, 1, 12, 12)
    assert np.allclose(got[:, 0].numpy(), expected, atol=2e-5)
    assert torch.allclose(layer(7.0 * torch.tensor(scattered, dtype=torch.float32).permute(0, 1, 3, 2)), got)


def test_a_pulse_at_one_points_travel_times_peaks_at_that_pixel():
    """Each sensor holds a short pulse at the S-out, P-back delay of p* = (2.96875, 1.71875) m, the
    centre of pixel (column 9, row 5) of a 16 x 16 image; the layer's brightest pixel is that one."""
    acq = _acquisition()
    p, dt, n_time = np.array([2.96875, 1.71875]), 1e-3, 800
    t = np.arange(n_time) * dt
    x = np.zeros((1, 2, n_time, 9), dtype=np.float32)
    for k, s in enumerate(np.asarray(acq["sensor_xy_m"])):
        delay = np.linalg.norm(p - acq["source_xy_m"]) / 10 + np.linalg.norm(s - p) / 20
        x[0, 1, :, k] = np.exp(-(((t - delay) / 0.004) ** 2)) * np.cos(2 * np.pi * 250 * (t - delay))
    img = DelayAndSumImage(acq, n_time, 16, "sp", None)(torch.from_numpy(x))[0, 0].numpy()
    assert np.unravel_index(img.argmax(), img.shape) == (5, 9)
    assert img.max() == pytest.approx(1.0)


def test_bad_options_are_named():
    acq = _acquisition()
    with pytest.raises(InputError, match="sensor_xy_m"):
        DelayAndSumImage({k: v for k, v in acq.items() if k != "sensor_xy_m"}, 100, 8)
    with pytest.raises(InputError, match="das_mode='xy'"):
        DelayAndSumImage(acq, 100, 8, mode="xy")
    with pytest.raises(InputError, match="das_window_transits"):
        DelayAndSumImage(acq, 100, 8, window_transits=0)
    with pytest.raises(InputError, match="acquisition"):
        create("micro_crack_attention_next", n_time=200, n_sensors=9, sensor_grid=(3, 3), das_channel=True)


class Blank(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], 1, 12, 12)


def test_mcan_takes_the_image_as_a_channel_and_keeps_the_paper_model_without_it():
    acq = _acquisition()
    kw = dict(n_time=200, n_sensors=9, sensor_grid=(3, 3), mask_size=12)
    torch.manual_seed(0)
    plain = create("micro_crack_attention_next", **kw)
    with_das = create("micro_crack_attention_next", **kw, das_channel=True, acquisition=acq)
    assert not hasattr(plain, "das_fuse") and "acquisition" not in str(plain)
    x = torch.randn(2, 2, 200, 9)
    with_das.eval()
    out = with_das(x)
    assert out.shape == plain(x).shape == (2, 1, 12, 12)
    # the image reaches the output: the same record with a blank image gives other logits
    imaging = with_das.das
    with_das.das = Blank()
    assert not torch.allclose(with_das(x), out)
    with_das.das = imaging
    assert any(n.startswith("das_fuse") for n, _ in with_das.named_parameters())
    assert not any(n.startswith("das.") for n in with_das.state_dict())  # nothing fixed is saved


def test_trained_with_the_channel_through_the_engine_then_evaluated_and_exported(tmp_path, cli):
    from crackscope.data.wavefield_store import generate_wavefield_store
    from crackscope.engine.config import load_train_config
    from crackscope.engine.train import train
    from crackscope.physics import PlateConfig

    store = tmp_path / "tiny.zarr"
    generate_wavefield_store(store, PlateConfig.preset("tiny", n_time=120), 12, seed=2, batch=6)
    cfg = load_train_config(
        None,
        base={
            "name": "das",
            "out_dir": str(tmp_path / "runs"),
            "seed": 0,
            "data": {"store": str(store), "batch_size": 4, "split": [0.5, 0.25, 0.25]},
            "model": {"name": "micro_crack_attention_next", "das_channel": True, "upsample": "bilinear"},
            "loss": {"name": "CWDL"},
            "trainer": {"max_epochs": 1},
        },
    )
    run = train(cfg, progress=False)
    saved = (run / "config.yaml").read_text()
    assert "acquisition:" in saved and "sensor_xy_m:" in saved
    ev = cli("evaluate", run, "--data", store, "--out", tmp_path / "ev")
    assert ev.returncode == 0, ev.stderr
    test_plates = json.loads((run / "split.json").read_text())["test"]
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["n_samples"] == len(test_plates) == 3
    exp = cli("export", run, "--format", "onnx")
    assert exp.returncode == 0, exp.stderr
    assert float(exp.stdout.strip().rsplit("=", 1)[1]) < 1e-4  # ONNX Runtime against PyTorch
