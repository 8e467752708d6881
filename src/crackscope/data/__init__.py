"""Datasets and stores: simulated wave-field stores (Zarr) and loaders."""

from crackscope.data.wavefield_dataset import WavefieldDataset

__all__ = ["WavefieldDataset"]
