"""The harmonics dataset store: simulated 2nd/3rd harmonic responses of micro-crack groups, in Zarr v3.

Layout (N samples, 3 sensors a/b/c, 2 harmonics, L = 4760 samples):

==============  ==================  =======  =============================================================
array           shape               dtype    meaning
==============  ==================  =======  =============================================================
harmonics       (N, 3, 2, 4760)     float32  [:, s, 0] 2nd, [:, s, 1] 3rd harmonic x displacement [m]
amplitudes      (N, 3, 3)           float32  A1, A2, A3 per sensor [m] (spectral peak amplitudes)
n_cracks        (N,)                int16    micro-cracks in the plate's group
crack_size_um   (N,)                float32  their length [µm]
label           (N,)                int8     0..11 = AD, AE, ..., CG (``label_names`` attribute); -1 unwritten
done            (N,)                uint8    1 once every array of the sample is written
==============  ==================  =======  =============================================================

Sample ``i`` depends only on ``(seed, i)``: with ``rng = default_rng(SeedSequence([seed, i]))`` its
label is ``rng.integers(12)`` (uniform over the 12 labels), then its crack count uniform over the
label's integer range, its crack size uniform over the label's size range, then the crack group
is placed with the same ``rng`` (:func:`draw_sample`). The simulation of a plate does not depend
on the other plates of its batch, so batch size and worker count do not change the numbers.

Writing and resuming follow :mod:`crackscope.data.wavefield_store` (whose generic helpers this
module uses): batches ``[k*batch, (k+1)*batch)`` are written, then their ``done`` flags; a killed
run (``CRACKSCOPE_FAULT_KILL_AFTER_SAMPLES`` is the test hook) loses at most the batches in flight
and re-running the same command finishes the store with arrays identical to an uninterrupted run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crackscope import __version__
from crackscope.data.wavefield_store import (
    StoreRequest,
    _run_local,
    _write_batch,
    check_device,
    limit_threads,
    open_or_create_store,
    open_store,
    pending_batches,
    sample_rng,
)
from crackscope.errors import InputError
from crackscope.physics.harmonics import HARMONICS_SIMULATOR_VERSION, check_groups_fit, crack_group, sensor_nodes
from crackscope.physics.harmonics_config import (
    HARMONIC_LENGTH,
    LABEL_NAMES,
    SENSOR_NAMES,
    HarmonicsConfig,
    label_ranges,
)

STORE_FORMAT = "crackscope.harmonics/1"
REQUIRED_ARRAYS = ("harmonics", "amplitudes", "n_cracks", "crack_size_um", "label", "done")
BATCH_ARRAYS = ("harmonics", "amplitudes", "n_cracks", "crack_size_um", "label")


def draw_parameters(cfg: HarmonicsConfig, rng: np.random.Generator) -> tuple[int, int, float]:
    """(label, n_cracks, crack_size_um): a label uniform over the 12, then count and size uniform in its ranges."""
    label = int(rng.integers(len(LABEL_NAMES)))
    (n_lo, n_hi), (s_lo, s_hi) = label_ranges(label, cfg)
    n = int(rng.integers(n_lo, n_hi + 1))
    size = float(rng.uniform(s_lo, s_hi))
    return label, n, size


def draw_sample(cfg: HarmonicsConfig, seed: int, index: int):
    """(label, n_cracks, crack_size_um, cracks) of sample ``index`` of a store made with ``seed``."""
    rng = sample_rng(seed, index)
    label, n, size = draw_parameters(cfg, rng)
    return label, n, size, crack_group(cfg, n, size, rng)


def simulate_harmonics_samples(
    cfg_json: dict, seed: int, start: int, stop: int, device: str = "cpu", threads: int | None = None
) -> dict[str, np.ndarray]:
    """Simulate samples ``start..stop-1``; plain numpy out, so it can run in another process."""
    from crackscope.physics.harmonics import simulate_crack_groups

    limit_threads(threads)
    cfg = HarmonicsConfig.model_validate(cfg_json)
    drawn = [draw_sample(cfg, seed, i) for i in range(start, stop)]
    out = simulate_crack_groups(cfg, [d[3] for d in drawn], device=device, crack_size_um=[d[2] for d in drawn])
    labels = np.array([d[0] for d in drawn], dtype=np.int8)
    if not np.array_equal(out.labels, labels):  # pragma: no cover - label_ranges and label_of disagree
        raise AssertionError(f"drawn labels {labels} differ from label_of {out.labels}")
    return {
        "start": np.int64(start),
        "harmonics": out.harmonics,
        "amplitudes": out.amplitudes,
        "n_cracks": np.array([d[1] for d in drawn], dtype=np.int16),
        "crack_size_um": np.array([d[2] for d in drawn], dtype=np.float32),
        "label": labels,
    }


@dataclass(frozen=True)
class HarmonicsStoreRequest(StoreRequest):
    """Everything that determines a harmonics store's contents."""

    def identity(self) -> dict:
        return {
            "format": STORE_FORMAT,
            "simulator": HARMONICS_SIMULATOR_VERSION,
            "config": self.cfg.model_dump(mode="json"),
            "n_samples": self.n_samples,
            "seed": self.seed,
            "batch": self.batch,
        }


def _create_arrays(group, req: HarmonicsStoreRequest) -> None:
    from zarr.codecs import BloscCodec

    n, b = req.n_samples, req.batch
    comp = [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")]
    group.create_array(
        "harmonics",
        shape=(n, 3, 2, HARMONIC_LENGTH),
        chunks=(1, 3, 2, HARMONIC_LENGTH),
        dtype="float32",
        compressors=comp,
    )
    group.create_array("amplitudes", shape=(n, 3, 3), chunks=(b, 3, 3), dtype="float32", fill_value=float("nan"))
    group.create_array("n_cracks", shape=(n,), chunks=(b,), dtype="int16", fill_value=-1)
    group.create_array("crack_size_um", shape=(n,), chunks=(b,), dtype="float32", fill_value=float("nan"))
    group.create_array("label", shape=(n,), chunks=(b,), dtype="int8", fill_value=-1)
    group.create_array("done", shape=(n,), chunks=(b,), dtype="uint8", fill_value=0)


def _describe(req: HarmonicsStoreRequest) -> dict:
    cfg = req.cfg
    lattice = cfg.lattice()
    c_p, c_s = cfg.wave_speeds
    record_s = cfg.n_time * cfg.dt * cfg.record_every
    return {
        **req.identity(),
        "crackscope_version": __version__,
        "sample_rng": "numpy.random.default_rng(SeedSequence([seed, index])): label, count, size, then crack placement",
        "label_names": list(LABEL_NAMES),
        "label_layout": "label = 4 * quantity class (A, B, C) + size class (D, E, F, G)",
        "crack_count_edges": list(cfg.crack_count_edges),
        "crack_size_edges_um": list(cfg.crack_size_edges_um),
        "sensor_names": list(SENSOR_NAMES),
        "sensor_xy_m": [[float(v) for v in lattice.positions[:, r, c]] for r, c in sensor_nodes(cfg)],
        "crack_region_m": list(cfg.crack_region),
        "harmonics_layout": "(N, 3 sensors a/b/c, 2 = 2nd/3rd harmonic of the x displacement [m], 4760 samples)",
        "harmonic_sample_interval_s": record_s / HARMONIC_LENGTH,
        "amplitudes_layout": "(N, 3 sensors, A1/A2/A3) peak single-sided spectral amplitudes [m]",
        "center_frequency_hz": cfg.frequency,
        "dt_s": cfg.dt,
        "n_steps": cfg.n_steps,
        "record_s": record_s,
        "c_p_m_per_s": c_p,
        "c_s_m_per_s": c_s,
        "lattice_shape": list(lattice.shape),
        "n_nodes": lattice.n_nodes,
        "complete": False,
    }


def generate_harmonics_store(
    out: str | Path,
    cfg: HarmonicsConfig,
    n_samples: int,
    *,
    seed: int = 0,
    batch: int = 8,
    device: str = "cpu",
    workers: int = 1,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict:
    """Create (or finish) a store of ``n_samples`` simulated plates at ``out``; returns its summary."""
    if workers <= 0:
        raise InputError(f"--workers must be positive, got {workers}")
    check_device(device)
    check_groups_fit(cfg)
    req = HarmonicsStoreRequest(cfg, n_samples, seed, batch)
    group = open_or_create_store(
        Path(out), req, store_format=STORE_FORMAT, describe=_describe, create_arrays=_create_arrays, kind="harmonics"
    )
    todo = pending_batches(group, req)
    remaining = sum(b - a for a, b in todo)
    if remaining < n_samples:
        log(f"resuming: {n_samples - remaining} of {n_samples} samples already done")
    from crackscope.progress import progress_bar

    bar = progress_bar(total=remaining, desc="samples", enabled=progress)
    runner = _run_local(cfg.model_dump(mode="json"), req, todo, device, workers, simulate=simulate_harmonics_samples)
    fault_counter = [0]
    for result in runner:
        bar.update(_write_batch(group, result, fault_counter, names=BATCH_ARRAYS))
    bar.close()
    summary = summarize_harmonics_store(group)
    group.attrs.update(
        {
            "complete": True,
            "label_counts": summary["label_counts"],
            "mean_a2_over_a1": summary["mean_a2_over_a1"],
            "mean_a3_over_a1": summary["mean_a3_over_a1"],
        }
    )
    return summary


def summarize_harmonics_store(group) -> dict:
    """Counts per label and the mean amplitude ratios of the finished samples."""
    done = np.asarray(group["done"][:]).astype(bool)
    labels = np.asarray(group["label"][:])[done]
    amps = np.asarray(group["amplitudes"][:], dtype=np.float64)[done]
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = amps[..., 1] / amps[..., 0]
        r3 = amps[..., 2] / amps[..., 0]
    return {
        "n_samples": int(done.size),
        "n_done": int(done.sum()),
        "label_counts": {name: int((labels == k).sum()) for k, name in enumerate(LABEL_NAMES)},
        "mean_a2_over_a1": float(np.nanmean(r2)) if r2.size else math.nan,
        "mean_a3_over_a1": float(np.nanmean(r3)) if r3.size else math.nan,
    }


def open_harmonics_store(path: str | Path):
    """Open a finished or partial harmonics store read-only; a clear error if it is not one."""
    return open_store(path, store_format=STORE_FORMAT, required=REQUIRED_ARRAYS, kind="harmonics")
