"""Datasets and stores: simulated wave-field stores (Zarr) and loaders.

``WavefieldDataset`` is imported on first use, so reading a layout name (``data.formats``) loads
no torch."""

__all__ = ["WavefieldDataset"]


def __getattr__(name):
    if name == "WavefieldDataset":
        from crackscope.data.wavefield_dataset import WavefieldDataset

        return WavefieldDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
