"""WavefieldDataset against the raw store arrays it reads."""

from __future__ import annotations

import math
import pickle
import shutil

import numpy as np
import pytest
import torch
import zarr
from torch.utils.data import DataLoader

from crackscope.data import WavefieldDataset
from crackscope.errors import InputError
from crackscope.physics.config import PlateConfig

N = 6


@pytest.fixture(scope="module")
def store(tiny_store):
    return tiny_store


@pytest.fixture(scope="module")
def raw(store, read_store):
    g = zarr.open_group(str(store), mode="r")
    return read_store(store, "signals", "masks", "reference", "max_crack_length_um") | {
        "signal_rms": g.attrs["signal_rms"]
    }


def test_layout_is_an_exact_transpose_of_the_store(store, raw):
    ds = WavefieldDataset(store)
    cfg = PlateConfig.preset("tiny")
    assert len(ds) == N and list(ds.sample_indices) == list(range(N))
    for i in range(N):
        x, mask = ds[i]
        assert x.dtype == torch.float32 and mask.dtype == torch.float32
        assert tuple(x.shape) == (2, cfg.n_time, cfg.sensor_grid**2)
        assert tuple(mask.shape) == (1, cfg.mask_size, cfg.mask_size)
        np.testing.assert_array_equal(x.numpy(), raw["signals"][i].transpose(0, 2, 1))
        # spot-check the index mapping element by element: x[c, t, s] == store[i, c, s, t]
        for c, s, t in ((0, 0, 199), (1, 80, 57), (0, 40, 123)):
            assert x[c, t, s].item() == raw["signals"][i, c, s, t]
        np.testing.assert_array_equal(mask[0].numpy(), raw["masks"][i].astype(np.float32))
        assert set(np.unique(mask.numpy())) <= {0.0, 1.0} and mask.sum() > 0  # every tiny plate has >= 1 crack
    np.testing.assert_array_equal(ds.max_crack_length_um, raw["max_crack_length_um"])


def test_reference_subtraction_is_signal_minus_reference(store, raw):
    ds = WavefieldDataset(store, subtract_reference=True)
    for i in range(N):
        x, _ = ds[i]
        expected = (raw["signals"][i] - raw["reference"]).transpose(0, 2, 1)
        np.testing.assert_array_equal(x.numpy(), expected)
        assert np.abs(expected).max() > 0  # cracks do scatter: the residual is not zero


def test_per_sample_normalisation_has_unit_peak(store, raw):
    for subtract in (False, True):
        ds = WavefieldDataset(store, subtract_reference=subtract, normalize="per_sample")
        for i in range(N):
            x, _ = ds[i]
            assert abs(float(x.abs().max()) - 1.0) < 1e-6
            base = raw["signals"][i] - (raw["reference"] if subtract else 0.0)
            np.testing.assert_allclose(x.numpy() * np.abs(base).max(), base.transpose(0, 2, 1), rtol=1e-5, atol=0)


def test_global_normalisation_uses_store_rms_or_recomputes_it(store, raw, tmp_path):
    ds = WavefieldDataset(store, normalize="global")
    assert ds.scale == raw["signal_rms"]
    x, _ = ds[3]
    np.testing.assert_allclose(x.numpy() * raw["signal_rms"], raw["signals"][3].transpose(0, 2, 1), rtol=1e-6)

    # without the attribute the same RMS is computed from the samples
    copy = tmp_path / "no_rms.zarr"
    shutil.copytree(store, copy)
    g = zarr.open_group(str(copy), mode="r+")
    del g.attrs["signal_rms"]
    expected = math.sqrt(np.mean([(raw["signals"][i].astype(np.float64) ** 2).mean() for i in range(N)]))
    assert math.isclose(WavefieldDataset(copy, normalize="global").scale, expected, rel_tol=1e-9)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_with_two_workers_matches_direct_reads(store, context):
    ds = WavefieldDataset(store, subtract_reference=True, normalize="per_sample")
    ds[0]  # opens the group in this process; it must not travel to the workers
    state = pickle.loads(pickle.dumps(ds))
    assert state._group is None and state._reference is None
    loader = DataLoader(ds, batch_size=2, num_workers=2, shuffle=False, multiprocessing_context=context)
    xs, ms = zip(*loader)
    x, m = torch.cat(xs), torch.cat(ms)
    assert x.shape[0] == N
    for i in range(N):
        xi, mi = ds[i]
        assert torch.equal(x[i], xi) and torch.equal(m[i], mi)


def test_not_done_samples_are_excluded(store, raw, tmp_path):
    copy = tmp_path / "partial.zarr"
    shutil.copytree(store, copy)
    g = zarr.open_group(str(copy), mode="r+")
    g["done"][2] = 0
    g["done"][5] = 0

    ds = WavefieldDataset(copy)
    assert list(ds.sample_indices) == [0, 1, 3, 4]
    assert len(ds) == 4
    for k, i in enumerate([0, 1, 3, 4]):
        np.testing.assert_array_equal(ds[k][0].numpy(), raw["signals"][i].transpose(0, 2, 1))
    np.testing.assert_array_equal(ds.max_crack_length_um, raw["max_crack_length_um"][[0, 1, 3, 4]])
    with pytest.raises(IndexError):
        ds[4]

    sub = WavefieldDataset(copy, indices=[4, 2, 0, 4])  # order kept, not-done and duplicates dropped
    assert list(sub.sample_indices) == [4, 0]
    np.testing.assert_array_equal(sub[0][1][0].numpy(), raw["masks"][4].astype(np.float32))


def test_bad_options_raise_input_error(store, tmp_path):
    with pytest.raises(InputError, match="minmax"):
        WavefieldDataset(store, normalize="minmax")
    with pytest.raises(InputError, match="17"):
        WavefieldDataset(store, indices=[0, 17])
    with pytest.raises(InputError, match="-1"):
        WavefieldDataset(store, indices=[-1])
    with pytest.raises(InputError, match="not a crackscope"):
        WavefieldDataset(tmp_path)


def test_reflection_is_the_simulation_of_the_reflected_plate():
    """Physics check of the mirror augmentation: reflecting a simulated plate about y = H/2 gives the
    simulation of the plate with the reflected (kinked) crack: same signals to float32 rounding,
    the same mask exactly."""
    from crackscope.data.wavefield_dataset import reflect_plate
    from crackscope.physics.cracks import Crack
    from crackscope.physics.wavefield import simulate_wavefield

    cfg = PlateConfig.preset("tiny", n_time=120)
    h = cfg.height
    pts = [(1.3e-6, 2.1e-6), (2.9e-6, 2.6e-6), (3.4e-6, 4.4e-6)]
    crack, mirrored = Crack(*pts), Crack(*[(x, h - y) for x, y in pts])
    result = simulate_wavefield(cfg, [[crack], [mirrored]])
    signals, masks = result.signals.numpy(), result.masks.numpy()
    x, m = reflect_plate(signals[0], masks[0], cfg.sensor_grid)
    assert np.array_equal(m, masks[1]) and masks[1].sum() > 0
    peak = np.abs(signals[1]).max()
    assert np.abs(x - signals[1]).max() < 1e-4 * peak
    assert np.abs(signals[0] - signals[1]).max() > 0.1 * peak  # the two plates do differ


def test_mirror_augmentation_reflects_about_half_by_seed_and_epoch(store, raw):
    from crackscope.data.wavefield_dataset import reflect_plate

    ds = WavefieldDataset(store, mirror=True, seed=4)
    plain = WavefieldDataset(store)
    flips = {}
    for epoch in (0, 1, 2):
        ds.set_epoch(epoch)
        flips[epoch] = [ds.reflected(int(i)) for i in ds.sample_indices]
        for i, flipped in enumerate(flips[epoch]):
            x, mask = ds[i]
            x0, mask0 = plain[i]
            if flipped:
                xs, ms = reflect_plate(x0.numpy().transpose(0, 2, 1), mask0.numpy(), ds.sensor_grid)
                x0, mask0 = torch.from_numpy(xs.transpose(0, 2, 1).copy()), torch.from_numpy(ms.copy())
            assert torch.equal(x, x0) and torch.equal(mask, mask0)
    assert flips[0] != flips[1] or flips[1] != flips[2]  # drawn anew each epoch
    again = WavefieldDataset(store, mirror=True, seed=4)
    again.set_epoch(1)
    assert [again.reflected(int(i)) for i in again.sample_indices] == flips[1]
    many = [WavefieldDataset(store, mirror=True, seed=s).reflected(0) for s in range(200)]
    assert 70 < sum(many) < 130
