"""The public simulate_wavefield contract: shapes, units, determinism, batching, bad input."""

import numpy as np
import pytest
import torch

from crackscope.errors import InputError
from crackscope.physics import Crack, PlateConfig, simulate_wavefield

from . import steel_plane_stress_speeds


@pytest.fixture(scope="module")
def tiny():
    return PlateConfig.preset("tiny")


def test_result_contract(tiny):
    crack = Crack((2e-6, 2e-6), (4e-6, 3e-6))
    out = simulate_wavefield(tiny, [[crack], []], device="cpu")
    assert out.signals.shape == (2, 2, 81, tiny.n_time) and out.signals.dtype == torch.float32
    assert out.masks.shape == (2, 36, 36) and out.masks.dtype == torch.uint8
    assert out.time.shape == (tiny.n_time,) and out.time[0] == 0
    np.testing.assert_allclose(np.diff(out.time.numpy()), tiny.dt * tiny.record_every)
    assert out.sensor_xy.shape == (81, 2)
    c_p, c_s = steel_plane_stress_speeds()
    assert out.c_p == pytest.approx(c_p) and out.c_s == pytest.approx(c_s)
    assert out.n_nodes == 41 * 36 and out.n_steps == tiny.n_time - 1
    assert out.masks[1].sum() == 0 and out.masks[0].sum() > 0
    assert out.crack_length_um[0][0] == pytest.approx(np.hypot(2, 1))
    assert out.cut_bonds[0] > 0 and out.cut_bonds[1] == 0
    # sensors: a uniform 9 x 9 grid of cell centres, each within one lattice spacing
    gx = (np.arange(9) + 0.5) * tiny.width / 9
    expected = np.stack(np.meshgrid(gx, gx, indexing="xy"), -1).reshape(-1, 2)
    assert np.abs(out.sensor_xy.numpy() - expected).max() <= tiny.lattice_spacing


def test_same_seed_same_numbers_and_batch_independence(tiny):
    crack = Crack((2e-6, 5e-6), (5e-6, 4e-6))
    batched = simulate_wavefield(tiny, [[crack], [], [crack]])
    alone = simulate_wavefield(tiny, [[crack]])
    assert torch.equal(batched.signals[0], alone.signals[0])
    assert torch.equal(batched.signals[0], batched.signals[2])
    assert not torch.equal(batched.signals[0], batched.signals[1])


def test_crack_outside_plate_is_refused(tiny):
    with pytest.raises(InputError, match="outside"):
        simulate_wavefield(tiny, [[Crack((1e-6, 1e-6), (9e-6, 1e-6))]])


def test_snapshots(tiny):
    out = simulate_wavefield(tiny, [[]], snapshot_every=50)
    assert out.snapshot_steps == [0, 50, 100, 150]
    assert out.snapshots.shape == (1, 4, 2, 41, 36)
    assert out.snapshots[0, 0].abs().max() == 0 and out.snapshots[0, 3].abs().max() > 0


@pytest.mark.parametrize(
    "field,value", [("width", 0.0), ("height", -1e-6), ("density", 0.0), ("lattice_spacing", -1.0), ("n_time", 0)]
)
def test_non_positive_sizes_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        PlateConfig.preset("tiny", **{field: value})


def test_too_high_frequency_is_refused():
    with pytest.raises(ValueError, match="lattice spacings"):
        PlateConfig.preset("tiny", center_frequency=3e9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA; CPU path covered above")
def test_cuda_matches_cpu(tiny):  # pragma: no cover - runs only where a GPU is present
    crack = Crack((2e-6, 2e-6), (4e-6, 3e-6))
    cfg = tiny.replace(dtype="float64")
    cpu = simulate_wavefield(cfg, [[crack]])
    gpu = simulate_wavefield(cfg, [[crack]], device="cuda")
    torch.testing.assert_close(gpu.signals.cpu(), cpu.signals, rtol=1e-9, atol=1e-15)
