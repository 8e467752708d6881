"""Fresh training plates simulated while a model trains, so that no plate is ever seen twice.

:class:`StreamedWavefieldBatches` is a map-style dataset whose item ``k`` is a whole batch: the
``batch_size`` plates ``k * batch_size ...`` of the current epoch, simulated together with the
settings of a store (its ``PlateConfig``; its intact reference and global scale prepare the items
exactly as :class:`~crackscope.data.wavefield_dataset.WavefieldDataset` prepares the store's own).
Plate ``i`` of epoch ``e`` draws its cracks from ``SeedSequence([seed, e, i, STREAM_TAG])``: a
resumed run simulates the same plates again, and none of them is a store's plate (a store's sample
``i`` uses ``SeedSequence([store_seed, i])``, two words, never four). Use it with
``DataLoader(batch_size=None, sampler=EpochSequentialSampler(...))``; with ``num_workers`` > 0 (and
``multiprocessing_context="spawn"``: the simulator runs under OpenMP, which must not be forked) the
plates are simulated in other processes while the model trains.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from crackscope.data.wavefield_dataset import WavefieldDataset
from crackscope.data.wavefield_store import open_store, simulate_plates
from crackscope.errors import InputError

STREAM_TAG = 0x5354524D  # "STRM": keeps streamed plates apart from any store's


def stream_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of streamed plate ``index`` of ``epoch``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index), STREAM_TAG]))


class StreamedWavefieldBatches(Dataset):
    """``plates_per_epoch`` fresh plates per epoch, simulated in batches of ``batch_size`` with the
    settings of ``store``; item ``k`` is ``(x (B, 2, T, S), mask (B, 1, M, M), longest crack (B,) [µm])``."""

    def __init__(
        self,
        store,
        plates_per_epoch: int,
        batch_size: int,
        *,
        subtract_reference: bool = False,
        normalize: str | None = None,
        mirror: bool = False,
        seed: int = 0,
    ):
        if plates_per_epoch < 1 or batch_size < 1:
            raise InputError(
                f"a stream needs plates_per_epoch >= 1 and batch_size >= 1, got {plates_per_epoch}, {batch_size}"
            )
        from crackscope.physics.config import PlateConfig

        self.cfg = PlateConfig.model_validate(dict(open_store(store).attrs["config"]))
        # the store's own items are prepared by the same code: reference, scale, reflection
        self.items = WavefieldDataset(
            store, indices=[], subtract_reference=subtract_reference, normalize=normalize, mirror=mirror, seed=seed
        )
        self.plates_per_epoch, self.batch_size = int(plates_per_epoch), int(batch_size)
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.items.set_epoch(epoch)

    def __len__(self) -> int:
        return -(-self.plates_per_epoch // self.batch_size)

    def plate_indices(self, k: int) -> range:
        if not 0 <= k < len(self):
            raise IndexError(f"batch {k} of a stream of {len(self)} batches")
        return range(k * self.batch_size, min((k + 1) * self.batch_size, self.plates_per_epoch))

    def cracks(self, k: int) -> list:
        """The cracks of the plates of batch ``k`` of the current epoch."""
        from crackscope.physics.cracks import sample_cracks

        dist = self.cfg.cracks.distribution()
        return [
            sample_cracks(dist, self.cfg.width, self.cfg.height, stream_rng(self.seed, self.epoch, i))
            for i in self.plate_indices(k)
        ]

    def __getitem__(self, k: int):
        plates = simulate_plates(self.cfg, self.cracks(k))
        pairs = [
            self.items.prepare(s, m, self.items.reflected(i))
            for s, m, i in zip(plates["signals"], plates["masks"], self.plate_indices(k))
        ]
        x = torch.stack([p[0] for p in pairs])
        mask = torch.stack([p[1] for p in pairs])
        return x, mask, torch.from_numpy(plates["max_crack_length_um"])


class EpochSequentialSampler(Sampler[int]):
    """0, 1, ..., n - 1 every epoch; passes the epoch Lightning sets to ``dataset.set_epoch``."""

    def __init__(self, n: int, dataset=None):
        self.n, self.dataset = int(n), dataset

    def set_epoch(self, epoch: int) -> None:
        if self.dataset is not None:
            self.dataset.set_epoch(epoch)

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n
