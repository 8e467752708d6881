"""Data for the engine: seeded splits, an epoch-seeded sampler (so resumed runs see the same order)
and the wave-field Lightning data module."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from crackscope.data.splits import split_indices
from crackscope.errors import InputError


def stem_positions(available, wanted, root) -> list[int]:
    """Positions in ``available`` (a dataset's stems) of the ``wanted`` stems, in that order, for
    rebuilding a split recorded by stem; :class:`InputError` if the dataset at ``root`` lacks any."""
    position = {s: i for i, s in enumerate(available)}
    missing = [s for s in wanted if s not in position]
    if missing:
        raise InputError(
            f"{root}: the split lists {missing[0]!r} (and {len(missing) - 1} more) that the dataset does not have"
        )
    return [position[s] for s in wanted]


def own_test_part(run_dir: Path, same_data: bool, by: str = "stems") -> list | None:
    """The test part of the run's recorded split (RUN/split.json) when it is scored on its own
    training data, else ``None`` (score everything given): the one rule by which every pipeline
    never scores a run on the samples it was trained or selected on. ``by="stems"``: image
    pipelines record the parts by file stem; ``"indices"``: wave-field plates by store index."""
    split_file = Path(run_dir) / "split.json"
    if not (same_data and split_file.exists()):
        return None
    record = json.loads(split_file.read_text())
    return record["stems"]["test"] if by == "stems" else record["test"]


def own_source_test_part(run_dir: Path, sources, root, fmt: str) -> list | None:
    """:func:`own_test_part` for a run on ``sources`` (``[(name, root, format)]``): the test part of
    the source at ``root`` read as ``fmt`` -- for a named source its ``<name>/<stem>`` stems with the
    prefix taken off -- else ``None``."""
    for name, src_root, src_fmt in sources:
        same = Path(root).resolve() == Path(src_root).resolve() and fmt == src_fmt
        stems = own_test_part(run_dir, same)
        if stems is not None:
            return stems if name is None else [s.split("/", 1)[1] for s in stems if s.split("/", 1)[0] == name]
    return None


class EpochSeededSampler(Sampler[int]):
    """A random permutation that depends only on (seed, epoch): a resumed run sees the same order.

    ``dataset``: also passed the epoch (its ``set_epoch``) when Lightning sets it here, for datasets
    whose augmentation is drawn from (seed, epoch, item). Workers copy the dataset when an epoch's
    iterator starts, so its loader must not keep persistent workers."""

    def __init__(self, n: int, seed: int, dataset=None):
        self.n, self.seed, self.epoch, self.dataset = n, seed, 0, dataset

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.dataset is not None and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class WithCrackLength(Dataset):
    """(x, mask, longest crack [µm]) items, for per-crack-size metrics."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __getitem__(self, i):
        x, mask = self.base[i]
        return x, mask, torch.tensor(float(self.base.max_crack_length_um[i]))


def wavefield_dataset(
    store: Path, indices, subtract_reference: bool, normalize, *, mirror: bool = False, seed: int = 0
):
    from crackscope.data.wavefield_dataset import WavefieldDataset

    return WithCrackLength(
        WavefieldDataset(
            store, indices=indices, subtract_reference=subtract_reference, normalize=normalize, mirror=mirror, seed=seed
        )
    )


def store_geometry(store: Path) -> dict:
    """Model keywords implied by a store: time samples, sensors, grid and mask size."""
    from crackscope.data.wavefield_store import open_store

    group = open_store(store)
    n, _, s, t = group["signals"].shape
    grid = int(group.attrs["config"]["sensor_grid"])
    return {
        "n_time": int(t),
        "n_sensors": int(s),
        "sensor_grid": (grid, grid),
        "mask_size": int(group["masks"].shape[-1]),
    }


class SplitDataModule(L.LightningDataModule):
    """A data module over a run's split: subclasses say how ``_loader(part, train)`` reads a part."""

    def __init__(self, data_cfg, seed: int, split: dict):
        super().__init__()
        self.cfg, self.seed, self.split = data_cfg, seed, split

    def _loader(self, part: str, train: bool = False) -> DataLoader:
        raise NotImplementedError

    def train_dataloader(self):
        return self._loader("train", train=True)

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")


class WavefieldDataModule(SplitDataModule):
    def _loader(self, part, train=False):
        if train and self.cfg.stream_plates:
            return self._stream_loader()
        ds = wavefield_dataset(
            self.cfg.store,
            self.split[part],
            self.cfg.subtract_reference,
            self.cfg.normalize,
            mirror=train and self.cfg.augment,
            seed=self.seed,
        )
        sampler = EpochSeededSampler(len(ds), self.seed, dataset=ds) if train else None
        return DataLoader(
            ds,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            num_workers=self.cfg.num_workers,
            # workers must copy the dataset anew each epoch to see its epoch's reflections
            persistent_workers=self.cfg.num_workers > 0 and not (train and self.cfg.augment),
        )

    def _stream_loader(self) -> DataLoader:
        """Fresh plates every epoch (data.stream_plates), one simulated batch per item."""
        from crackscope.data.wavefield_stream import EpochSequentialSampler, StreamedWavefieldBatches

        ds = StreamedWavefieldBatches(
            self.cfg.store,
            self.cfg.stream_plates,
            self.cfg.batch_size,
            subtract_reference=self.cfg.subtract_reference,
            normalize=self.cfg.normalize,
            mirror=self.cfg.augment,
            seed=self.seed,
        )
        # workers copy the dataset anew each epoch, so they see that epoch's plates; they are spawned,
        # since forking a process whose simulator runs under OpenMP is unsafe
        workers = self.cfg.num_workers
        return DataLoader(
            ds,
            batch_size=None,
            sampler=EpochSequentialSampler(len(ds), ds),
            num_workers=workers,
            multiprocessing_context="spawn" if workers else None,
        )


def make_split(data_cfg, seed: int, run_dir: Path) -> dict[str, list[int]]:
    """The run's split, written once to RUN/split.json and reused on resume."""
    path = run_dir / "split.json"
    if path.exists():
        return json.loads(path.read_text())
    from crackscope.data.wavefield_store import open_store

    group = open_store(data_cfg.store)
    done = np.nonzero(np.asarray(group["done"][:]))[0]
    if done.size < 3:
        raise InputError(f"data.store {data_cfg.store} has only {done.size} finished samples; need at least 3")
    split = split_indices(done, data_cfg.split, seed)
    if not split["train"] or not split["val"]:
        raise InputError(
            f"data.split {list(data_cfg.split)} leaves an empty train or validation set for {done.size} samples"
        )
    return split


def wavefield_geometry(data_cfg) -> dict:
    """The model keywords a wave-field store fixes (time samples, sensors, mask size)."""
    return store_geometry(data_cfg.store)
