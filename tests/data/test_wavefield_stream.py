"""Streamed training plates against a direct simulation of their cracks, and their freshness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr
from torch.utils.data import DataLoader

from crackscope.data.wavefield_stream import EpochSequentialSampler, StreamedWavefieldBatches
from crackscope.errors import InputError
from crackscope.physics import rasterize_mask, simulate_wavefield
from crackscope.physics.config import PlateConfig


def _stream(store, **kw):
    return StreamedWavefieldBatches(store, 5, 3, subtract_reference=True, normalize="global", seed=4, **kw)


def test_a_streamed_batch_is_the_simulation_of_its_cracks_prepared_like_the_store(tiny_store):
    ds = _stream(tiny_store)
    assert len(ds) == 2 and list(ds.plate_indices(1)) == [3, 4]  # 5 plates in batches of 3
    g = zarr.open_group(str(tiny_store), mode="r")
    cfg = PlateConfig.model_validate(dict(g.attrs["config"]))
    cracks = ds.cracks(1)
    x, mask, longest = ds[1]
    direct = simulate_wavefield(cfg, cracks).signals.numpy()  # (B, 2, S, T)
    scattered = (direct - np.asarray(g["reference"][...])[None]) / g.attrs["signal_rms"]
    np.testing.assert_allclose(x.numpy(), scattered.transpose(0, 1, 3, 2), rtol=1e-5, atol=1e-6)
    for m, plate in zip(mask, cracks):
        np.testing.assert_array_equal(m[0].numpy(), rasterize_mask(plate, cfg.width, cfg.height, cfg.mask_size))
    np.testing.assert_allclose(longest.numpy(), [max(c.length_um for c in p) for p in cracks], rtol=1e-6)


def _points(plates):
    return {tuple(np.round(np.asarray(c.points).ravel(), 12)) for p in plates for c in p}


def test_plates_are_the_same_on_a_rerun_and_never_repeat_across_epochs_or_the_store(tiny_store):
    from crackscope.analysis.inspect import cracks_from_store

    a, b = _stream(tiny_store), _stream(tiny_store)
    assert _points(a.cracks(0)) == _points(b.cracks(0))  # a resumed run simulates the same plates
    epoch0 = _points(a.cracks(0) + a.cracks(1))
    a.set_epoch(1)
    epoch1 = _points(a.cracks(0) + a.cracks(1))
    g = zarr.open_group(str(tiny_store), mode="r")
    stored = _points([cracks_from_store(g, i) for i in range(g["done"].shape[0])])
    assert not epoch0 & epoch1 and not (epoch0 | epoch1) & stored


def test_a_loader_with_a_worker_sees_each_epochs_plates(tiny_store):
    ds = _stream(tiny_store)
    sampler = EpochSequentialSampler(len(ds), ds)
    loader = DataLoader(ds, batch_size=None, sampler=sampler, num_workers=1, multiprocessing_context="spawn")
    first = [m for _, m, _ in loader]
    sampler.set_epoch(1)
    second = [m for _, m, _ in loader]
    assert [m.shape[0] for m in first] == [3, 2]
    assert not all(torch.equal(p, q) for p, q in zip(first, second))
    ds.set_epoch(1)
    assert torch.equal(second[1], ds[1][1])


def test_bad_stream_sizes_are_refused(tiny_store):
    with pytest.raises(InputError, match="plates_per_epoch"):
        StreamedWavefieldBatches(tiny_store, 0, 4)
