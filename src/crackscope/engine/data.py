"""What every trained pipeline's data shares: the recorded split and its test part (a run is never
scored on what it trained on), an epoch-seeded sampler (so resumed runs see the same order) and the
base Lightning data module over a split."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler

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
