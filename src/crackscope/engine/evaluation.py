"""What every pipeline's ``evaluate`` records: the same provenance keys in OUT/metrics.json.

Whatever the pipeline, a metrics.json says which pipeline and run made it, which model and loss,
on which data and which part of it, over how many samples, at which operating point:

=============  ===============================================================================
``pipeline``   the registry name (``wavefield``, ``surface``, ``classify``, ...)
``run``        the run directory or shipped model folder that was scored
``model``      the registered model name; ``loss`` the loss it was trained with
``data``       the store or dataset folder (or the run's own sources, described)
``subset``     which part was scored, in words: ``test split`` (the run's own data: only its
               test part), ``all plates`` / ``all images`` / ``all pairs`` (other data: all of
               it), ``given ...`` (a caller's choice), ``test batch`` (CIFAR-10's own)
``n_samples``  plates, images or tiles scored
``threshold``  the probability threshold of a segmentation model (RUN/operating_point.json's or
               the config's); ``null`` for a classifier (argmax)
=============  ===============================================================================

The pipeline's own keys (the metrics, ``format``, ``size_policy``, ``activation`` ...) sit beside
them. Scores follow :mod:`crackscope.metrics`, including its one convention for an empty mask
predicted empty (1.0).
"""

from __future__ import annotations

import json
from pathlib import Path

from crackscope.io import atomic_write_text

PROVENANCE_KEYS = ("pipeline", "run", "model", "loss", "data", "subset", "n_samples", "threshold")


def provenance(cfg, run_dir, *, data, subset: str, n_samples: int, threshold: float | None = None, **extra) -> dict:
    """The provenance keys of :data:`PROVENANCE_KEYS` (then ``extra``) for a run ``cfg`` scored on
    ``n_samples`` of ``data``."""
    return {
        "pipeline": cfg.pipeline,
        "run": str(run_dir),
        "model": cfg.model.name,
        "loss": cfg.loss.name,
        "data": str(data),
        "subset": subset,
        "n_samples": int(n_samples),
        "threshold": None if threshold is None else float(threshold),
        **extra,
    }


def write_metrics(out_dir, result: dict) -> Path:
    """OUT/metrics.json (atomic: a reader never sees half a file)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
