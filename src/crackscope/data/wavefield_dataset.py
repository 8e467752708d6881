"""WavefieldDataset: a map-style torch dataset over a wave-field store, read lazily.

Each item is ``(x, mask)``:

* ``x``: float32 tensor (2, T, S) -- x/y displacement, time, sensor. The store keeps signals as
  (2, S, T); the dataset transposes them to the (channel, time, sensor) layout of the paper's model.
* ``mask``: float32 tensor (1, M, M) in {0, 1}; row 0 is the bottom of the plate.

``mirror=True`` (training augmentation) reflects half of the items about the plate's horizontal
mid-line, the line through the source: sensor rows reverse, the y displacement changes sign and
the mask flips top to bottom. Plate, lattice, source and sensor grid are symmetric about that line
(the intact reference agrees with its own reflection to float32 rounding), so a reflected item is
the simulation of the reflected plate. Which items are reflected depends only on (seed, epoch,
sample), so a resumed run sees the same ones.

The Zarr group is opened on first access *in each process* and is never pickled, so the dataset
can be used by a :class:`torch.utils.data.DataLoader` with ``num_workers > 0``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from crackscope.data.wavefield_store import open_store
from crackscope.errors import InputError, dataset_index

NORMALIZE_OPTIONS = (None, "per_sample", "global")
_RMS_SAMPLES = 256  # samples used to estimate the global scale when the store has no signal_rms


def reflect_plate(signals: np.ndarray, mask: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """(2, S, T) store-layout signals and (..., M, M) mask of a plate reflected about its horizontal
    mid-line y = H / 2: sensor rows in reverse order, y displacement negated, mask rows reversed."""
    flipped = signals.reshape(2, grid, grid, -1)[:, ::-1].reshape(2, grid * grid, -1)
    return flipped * np.array([1, -1], dtype=signals.dtype)[:, None, None], mask[..., ::-1, :]


class WavefieldDataset(Dataset):
    """The finished (``done == 1``) samples of a wave-field store, optionally restricted to ``indices``.

    Parameters
    ----------
    path:
        the store directory written by :func:`crackscope.data.wavefield_store.generate_wavefield_store`.
    indices:
        store sample indices to use (order kept, duplicates dropped); samples not done are skipped.
        ``None`` = every done sample.
    subtract_reference:
        return ``signal - reference`` (the scattered field: what the cracks add to the intact plate).
    normalize:
        ``None``; ``"per_sample"`` (divide by the item's max |x|, after any reference subtraction;
        an all-zero item stays zero); ``"global"`` (divide every item by the store attribute
        ``signal_rms``, the RMS of the raw signals, or, if the store has none, that RMS computed
        from up to 256 of this dataset's samples).
    """

    def __init__(
        self,
        path: str | Path,
        indices: Iterable[int] | None = None,
        subtract_reference: bool = False,
        normalize: str | None = None,
        mirror: bool = False,
        seed: int = 0,
    ):
        if normalize not in NORMALIZE_OPTIONS:
            raise InputError(f"normalize={normalize!r} is not one of None, 'per_sample', 'global'")
        if not isinstance(subtract_reference, (bool, np.bool_)):
            raise InputError(f"subtract_reference={subtract_reference!r} must be True or False")
        self.path = Path(path)
        self.subtract_reference = bool(subtract_reference)
        self.normalize = normalize
        self.mirror, self.seed, self.epoch = bool(mirror), int(seed), 0
        group = open_store(self.path)  # validates the path; not kept
        n_total = int(group["done"].shape[0])
        done = np.asarray(group["done"][:]).astype(bool)
        if indices is None:
            chosen = np.arange(n_total, dtype=np.int64)
        else:
            chosen = self._check_indices(indices, n_total)
        self.sample_indices: np.ndarray = chosen[done[chosen]]
        self.n_samples_in_store = n_total
        self.max_crack_length_um: np.ndarray = np.asarray(group["max_crack_length_um"][:], dtype=np.float32)[
            self.sample_indices
        ]
        _, _, n_sensors, n_time = group["signals"].shape
        self.n_sensors, self.n_time = int(n_sensors), int(n_time)
        self.mask_size = int(group["masks"].shape[-1])
        self.sensor_grid = int(group.attrs.get("config", {}).get("sensor_grid", round(math.sqrt(self.n_sensors))))
        self.scale: float = 1.0
        if normalize == "global":
            self.scale = self._global_scale(group)
        # per-process state, rebuilt lazily after unpickling
        self._group = None
        self._reference: np.ndarray | None = None

    # ---- construction helpers -----------------------------------------------------------------
    @staticmethod
    def _check_indices(indices: Iterable[int], n_total: int) -> np.ndarray:
        out, seen = [], set()
        for i in indices:
            if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
                raise InputError(f"indices must be integers, got {i!r}")
            i = int(i)
            if not 0 <= i < n_total:
                raise InputError(f"index {i} is out of range for a store of {n_total} samples")
            if i not in seen:
                seen.add(i)
                out.append(i)
        return np.asarray(out, dtype=np.int64)

    def _global_scale(self, group) -> float:
        rms = group.attrs.get("signal_rms")
        if rms is None or not math.isfinite(float(rms)):
            total, count = 0.0, 0
            for i in self.sample_indices[:_RMS_SAMPLES]:
                s = np.asarray(group["signals"][int(i)], dtype=np.float64)
                total += float((s**2).mean())
                count += 1
            rms = math.sqrt(total / count) if count else 0.0
        rms = float(rms)
        return rms if rms > 0 and math.isfinite(rms) else 1.0

    # ---- pickling: no open handles -------------------------------------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_group"] = None
        state["_reference"] = None
        return state

    def _store(self):
        if self._group is None:
            self._group = open_store(self.path)
        return self._group

    def _reference_signals(self) -> np.ndarray:
        if self._reference is None:
            self._reference = np.asarray(self._store()["reference"][...], dtype=np.float32)
        return self._reference

    def set_epoch(self, epoch: int) -> None:
        """Which items ``mirror`` reflects is drawn from (seed, epoch, sample)."""
        self.epoch = int(epoch)

    def reflected(self, store_index: int) -> bool:
        if not self.mirror:
            return False
        return bool(np.random.default_rng([self.seed, self.epoch, int(store_index), 0x6D]).random() < 0.5)

    # ---- Dataset API ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.sample_indices.size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        store_index = int(self.sample_indices[dataset_index(i, len(self), "WavefieldDataset")])
        group = self._store()
        return self.prepare(group["signals"][store_index], group["masks"][store_index], self.reflected(store_index))

    def prepare(self, signals, mask, reflect: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One plate's (2, S, T) store-layout signals and (M, M) mask as a model item: the reference
        subtracted and the normalisation applied as configured, reflected when ``reflect``."""
        x = np.asarray(signals, dtype=np.float32)  # (2, S, T)
        if self.subtract_reference:
            x = x - self._reference_signals()
        if self.normalize == "per_sample":
            peak = float(np.abs(x).max()) if x.size else 0.0
            if peak > 0 and math.isfinite(peak):
                x = x / np.float32(peak)
        elif self.normalize == "global":
            x = x / np.float32(self.scale)
        mask = (np.asarray(mask) > 0).astype(np.float32)[None]
        if reflect:
            x, mask = reflect_plate(x, mask, self.sensor_grid)
        x = np.ascontiguousarray(x.transpose(0, 2, 1), dtype=np.float32)  # (2, T, S)
        return torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(mask))

    def __repr__(self) -> str:
        return (
            f"WavefieldDataset({str(self.path)!r}, {len(self)} of {self.n_samples_in_store} samples, "
            f"subtract_reference={self.subtract_reference}, normalize={self.normalize!r})"
        )
