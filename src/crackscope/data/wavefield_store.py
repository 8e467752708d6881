"""The wave-field dataset store: a Zarr v3 group written in resumable, sample-aligned batches.

Layout (N samples, S = sensor_grid^2 sensors, T recorded time samples, K = most cracks per plate):

====================  =====================  =========  ==========================================
array                 shape                  dtype      meaning
====================  =====================  =========  ==========================================
signals               (N, 2, S, T)           float32    x, y displacement [m] at each sensor
masks                 (N, M, M)              uint8      crack mask, row 0 = bottom of the plate
reference             (2, S, T)              float32    the same plate without cracks
n_cracks              (N,)                   int16      cracks in each plate
crack_length_um       (N, K)                 float32    length of each crack [µm], NaN-padded
max_crack_length_um   (N,)                   float32    longest crack per plate [µm]
crack_width_um        (N, K)                 float32    band width of each crack [µm] (0 = line), NaN-padded
crack_points_m        (N, K, 3, 2)           float64    crack polyline points [m], NaN-padded
done                  (N,)                   uint8      1 once every array of the sample is written
====================  =====================  =========  ==========================================

Signals are chunked by sample; the small arrays by batch. Zarr writes each chunk file atomically
(temporary file, then rename), so a kill never leaves a torn chunk.

Sample ``i`` depends only on ``(seed, i)``: its cracks come from
``numpy.random.default_rng(SeedSequence([seed, i]))``, and its simulation from the cracks alone.
Work is split into batches ``[k*batch, (k+1)*batch)``; a batch is written, then its ``done`` flags
are set, so a killed run loses at most the batches in flight and re-running the same command
finishes the store with arrays identical to an uninterrupted run.
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from crackscope import __version__
from crackscope.errors import InputError
from crackscope.physics.config import PlateConfig
from crackscope.physics.cracks import Crack, sample_cracks
from crackscope.physics.wavefield import SIMULATOR_VERSION

STORE_FORMAT = "crackscope.wavefield/1"
MAX_CRACK_POINTS = 3
REQUIRED_ARRAYS = (
    "signals",
    "masks",
    "reference",
    "n_cracks",
    "crack_length_um",
    "max_crack_length_um",
    "crack_points_m",
    "done",
)
_FAULT_ENV = "CRACKSCOPE_FAULT_KILL_AFTER_SAMPLES"  # test hook: SIGKILL after writing n samples' signals


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index`` of a store made with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def cracks_for_sample(cfg: PlateConfig, seed: int, index: int) -> list[Crack]:
    return sample_cracks(cfg.cracks.distribution(), cfg.width, cfg.height, sample_rng(seed, index))


def limit_threads(threads: int | None) -> None:
    """Cap torch's and numba's threads in a worker process (None or 0: leave them alone)."""
    import torch

    if threads:
        try:
            import numba

            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        except ImportError:  # pragma: no cover
            pass
        # after numba's: starting its 'omp' threading layer can change the OpenMP count PyTorch reads
        torch.set_num_threads(threads)


def simulate_samples(
    cfg_json: dict, seed: int, start: int, stop: int, device: str = "cpu", threads: int | None = None
) -> dict[str, np.ndarray]:
    """Simulate samples ``start..stop-1``; plain numpy out, so it can run in another process or on Ray."""
    limit_threads(threads)
    cfg = PlateConfig.model_validate(cfg_json)
    cracks = [cracks_for_sample(cfg, seed, i) for i in range(start, stop)]
    return {"start": np.int64(start), **simulate_plates(cfg, cracks, device)}


def simulate_plates(cfg: PlateConfig, cracks: list[list[Crack]], device: str = "cpu") -> dict[str, np.ndarray]:
    """The store arrays (signals, masks, crack counts, lengths, points, widths) of one batch of plates."""
    from crackscope.physics.wavefield import simulate_wavefield

    out = simulate_wavefield(cfg, cracks, device=device)
    n, k = len(cracks), max(cfg.cracks.count_max, 1)
    lengths = np.full((n, k), np.nan, dtype=np.float32)
    widths = np.full((n, k), np.nan, dtype=np.float32)
    points = np.full((n, k, MAX_CRACK_POINTS, 2), np.nan)
    for b, plate in enumerate(cracks):
        for c, crack in enumerate(plate):
            lengths[b, c] = crack.length_um
            widths[b, c] = crack.width_um
            points[b, c, : len(crack.points)] = crack.points
    return {
        "signals": out.signals.float().cpu().numpy(),
        "masks": out.masks.cpu().numpy().astype(np.uint8),
        "n_cracks": np.array([len(p) for p in cracks], dtype=np.int16),
        "crack_length_um": lengths,
        "max_crack_length_um": np.nan_to_num(
            np.nanmax(np.where(np.isnan(lengths), -np.inf, lengths), axis=1), neginf=0.0
        ).astype(np.float32),
        "crack_points_m": points,
        "crack_width_um": widths,
    }


def simulate_reference(cfg: PlateConfig, device: str = "cpu") -> np.ndarray:
    """(2, S, T) signals of the same plate with no crack."""
    from crackscope.physics.wavefield import simulate_wavefield

    return simulate_wavefield(cfg, [[]], device=device).signals[0].float().cpu().numpy()


@dataclass(frozen=True)
class StoreRequest:
    """Everything that determines a store's contents."""

    cfg: PlateConfig
    n_samples: int
    seed: int = 0
    batch: int = 8

    def __post_init__(self):
        if self.n_samples <= 0:
            raise InputError(f"--samples must be a positive number of samples, got {self.n_samples}")
        if self.batch <= 0:
            raise InputError(f"--batch must be positive, got {self.batch}")
        if self.seed < 0:
            raise InputError(f"--seed must be non-negative, got {self.seed}")

    def identity(self) -> dict:
        return {
            "format": STORE_FORMAT,
            "simulator": SIMULATOR_VERSION,
            "config": self.cfg.model_dump(mode="json"),
            "n_samples": self.n_samples,
            "seed": self.seed,
            "batch": self.batch,
        }

    def batches(self) -> list[tuple[int, int]]:
        return [(s, min(s + self.batch, self.n_samples)) for s in range(0, self.n_samples, self.batch)]


def check_writable_target(out: Path) -> None:
    """Refuse an output path we cannot create or write, before any data is written."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not (out / "zarr.json").exists():
        raise InputError(f"--out {out} is a non-empty directory that is not a crackscope store")
    missing = [p for p in [out, *out.parents] if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        for p in missing:  # leave nothing behind
            try:
                p.rmdir()
            except OSError:
                pass
        raise InputError(f"--out {out} is not writable ({err.strerror or err})") from None


def _create_arrays(group, req: StoreRequest) -> None:
    from zarr.codecs import BloscCodec

    cfg = req.cfg
    n, s, t, m = req.n_samples, cfg.sensor_grid**2, cfg.n_time, cfg.mask_size
    k = max(cfg.cracks.count_max, 1)
    b = req.batch  # small per-sample arrays are chunked by batch: each batch writes whole chunks
    comp = [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")]
    group.create_array("signals", shape=(n, 2, s, t), chunks=(1, 2, s, t), dtype="float32", compressors=comp)
    group.create_array("masks", shape=(n, m, m), chunks=(b, m, m), dtype="uint8", compressors=comp)
    group.create_array("reference", shape=(2, s, t), chunks=(2, s, t), dtype="float32", compressors=comp)
    group.create_array("n_cracks", shape=(n,), chunks=(b,), dtype="int16", fill_value=0)
    group.create_array("crack_length_um", shape=(n, k), chunks=(b, k), dtype="float32", fill_value=float("nan"))
    group.create_array("max_crack_length_um", shape=(n,), chunks=(b,), dtype="float32", fill_value=float("nan"))
    group.create_array("crack_width_um", shape=(n, k), chunks=(b, k), dtype="float32", fill_value=float("nan"))
    group.create_array(
        "crack_points_m",
        shape=(n, k, MAX_CRACK_POINTS, 2),
        chunks=(b, k, MAX_CRACK_POINTS, 2),
        dtype="float64",
        fill_value=float("nan"),
    )
    group.create_array("done", shape=(n,), chunks=(b,), dtype="uint8", fill_value=0)


def _describe(req: StoreRequest) -> dict:
    cfg = req.cfg
    lattice = cfg.lattice()
    c_p, c_s = cfg.wave_speeds
    from crackscope.physics.wavefield import sensor_nodes

    nodes = sensor_nodes(lattice, cfg.sensor_grid)
    return {
        **req.identity(),
        "crackscope_version": __version__,
        "sample_rng": "numpy.random.default_rng(SeedSequence([seed, index]))",
        "crack_length_um_layout": "per crack (N, K), NaN-padded; max_crack_length_um per sample",
        "crack_width_um_layout": "per crack (N, K), NaN-padded; 0 = a line crack, > 0 = a band (notch)",
        "mask_layout": "mask[iy, ix], iy = 0 at y = 0 (bottom); pixel size width/M x height/M",
        "signals_layout": "(N, 2 = x/y displacement [m], S sensors row-major from the bottom-left, T)",
        "dt_s": cfg.dt,
        "record_interval_s": cfg.dt * cfg.record_every,
        "n_steps": cfg.n_steps,
        "c_p_m_per_s": c_p,
        "c_s_m_per_s": c_s,
        "center_frequency_hz": cfg.frequency,
        "lattice_shape": list(lattice.shape),
        "n_nodes": lattice.n_nodes,
        "sensor_xy_m": [[float(v) for v in lattice.positions[:, r, c]] for r, c in nodes],
        "complete": False,
    }


def open_or_create_store(
    out: Path,
    req: StoreRequest,
    *,
    store_format: str = STORE_FORMAT,
    describe=None,
    create_arrays=None,
    kind: str = "wave-field",
):
    """Open the store at ``out`` for (re)generation, creating it if needed; refuse a mismatch.

    The keywords let other stores reuse this: ``describe(req)`` gives the new group's attributes,
    ``create_arrays(group, req)`` its arrays (defaults: the wave-field store's), ``kind`` names it.
    """
    import zarr

    out = Path(out)
    check_writable_target(out)
    if (out / "zarr.json").exists():
        group = zarr.open_group(str(out), mode="r+")
        attrs = dict(group.attrs)
        if attrs.get("format") != store_format:
            raise InputError(f"--out {out} is a Zarr group but not a crackscope {kind} store")
        mine = req.identity()
        for key in ("simulator", "n_samples", "seed", "batch", "config"):
            if attrs.get(key) != mine[key]:
                if key == "config":
                    diff = sorted(k for k in mine["config"] if attrs["config"].get(k) != mine["config"][k])
                    raise InputError(
                        f"--out {out} was made with other simulation parameters ({', '.join(diff)}); "
                        "use a new directory"
                    )
                raise InputError(
                    f"--out {out} was made with {key}={attrs.get(key)!r}, not {mine[key]!r}; use a new directory"
                )
        return group
    group = zarr.open_group(str(out), mode="w", attributes=(describe or _describe)(req))
    (create_arrays or _create_arrays)(group, req)
    return group


def pending_batches(group, req: StoreRequest) -> list[tuple[int, int]]:
    done = np.asarray(group["done"][:])
    return [(a, b) for a, b in req.batches() if not done[a:b].all()]


BATCH_ARRAYS = (
    "signals",
    "masks",
    "n_cracks",
    "crack_length_um",
    "max_crack_length_um",
    "crack_points_m",
    "crack_width_um",
)


def _write_batch(group, result: dict, fault_counter: list[int], names: tuple[str, ...] = BATCH_ARRAYS) -> int:
    """Write one batch's arrays ``names`` (the first one sets the batch size), then its done flags."""
    start = int(result["start"])
    stop = start + result[names[0]].shape[0]
    for name in names:
        group[name][start:stop] = result[name]
    limit = os.environ.get(_FAULT_ENV)
    if limit is not None:
        fault_counter[0] += stop - start
        if fault_counter[0] >= int(limit):
            os.kill(os.getpid(), signal.SIGKILL)  # simulate a crash after data, before the done flags
    group["done"][start:stop] = np.ones(stop - start, dtype=np.uint8)
    return stop - start


def _run_local(
    cfg_json, req, todo, device, workers, simulate: Callable[..., dict] = simulate_samples
) -> Iterator[dict]:
    """Results of ``simulate(cfg_json, seed, start, stop, device[, threads])`` per batch, here or in
    worker processes."""
    if workers <= 1:
        for a, b in todo:
            yield simulate(cfg_json, req.seed, a, b, device)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        queue, pending = list(todo), set()
        while queue or pending:
            while queue and len(pending) < 2 * workers:
                a, b = queue.pop(0)
                pending.add(pool.submit(simulate, cfg_json, req.seed, a, b, device, threads))
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                yield fut.result()


def _run_ray(cfg_json, req, todo, device, address) -> Iterator[dict]:
    try:
        import ray
    except ImportError:
        raise InputError("--backend ray needs the ray extra: pip install 'crackscope[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        task = ray.remote(num_cpus=1)(simulate_samples)
        cfg_ref = ray.put(cfg_json)
        queue, pending = list(todo), []
        width = max(1, int(ray.available_resources().get("CPU", 1))) * 2
        while queue or pending:
            while queue and len(pending) < width:
                a, b = queue.pop(0)
                pending.append(task.remote(cfg_ref, req.seed, a, b, device, 1))
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                yield ray.get(ref)
    finally:
        if started_here:
            ray.shutdown()


def check_device(device: str) -> None:
    """``cpu`` or an available ``cuda[:i]``; InputError naming the value otherwise."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: CUDA is not available on this machine")
    elif device != "cpu":
        raise InputError(f"--device must be cpu or cuda, got {device!r}")


def generate_wavefield_store(
    out: str | Path,
    cfg: PlateConfig,
    n_samples: int,
    *,
    seed: int = 0,
    batch: int = 8,
    device: str = "cpu",
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict:
    """Create (or finish) a store of ``n_samples`` simulated plates at ``out``; returns its summary."""
    if workers <= 0:
        raise InputError(f"--workers must be positive, got {workers}")
    if backend not in ("local", "ray"):
        raise InputError(f"--backend must be 'local' or 'ray', got {backend!r}")
    check_device(device)
    req = StoreRequest(cfg, n_samples, seed, batch)
    group = open_or_create_store(Path(out), req)
    cfg_json = cfg.model_dump(mode="json")
    if not group.attrs.get("reference_done"):
        group["reference"][...] = simulate_reference(cfg, device)
        group.attrs["reference_done"] = True
    todo = pending_batches(group, req)
    remaining = sum(b - a for a, b in todo)
    if remaining < n_samples:
        log(f"resuming: {n_samples - remaining} of {n_samples} samples already done")
    from crackscope.progress import progress_bar

    bar = progress_bar(total=remaining, desc="samples", enabled=progress)
    runner = (
        _run_ray(cfg_json, req, todo, device, address)
        if backend == "ray"
        else _run_local(cfg_json, req, todo, device, workers)
    )
    fault_counter = [0]
    for result in runner:
        bar.update(_write_batch(group, result, fault_counter))
    bar.close()
    summary = summarize_store(group)
    group.attrs.update(
        {
            "complete": True,
            "mean_crack_pixel_fraction": summary["mean_crack_pixel_fraction"],
            "signal_rms": summary["signal_rms"],
        }
    )
    return summary


def summarize_store(group) -> dict:
    """Counts, crack-length statistics and the mean crack-pixel fraction of the finished samples."""
    done = np.asarray(group["done"][:]).astype(bool)
    idx = np.nonzero(done)[0]
    masks = np.asarray(group["masks"][:])[idx] if idx.size else np.zeros((0, 1, 1))
    lengths = np.asarray(group["crack_length_um"][:])[idx]
    lengths = lengths[np.isfinite(lengths)]
    rms, count = 0.0, 0
    for i in idx[: min(idx.size, 256)]:
        s = np.asarray(group["signals"][int(i)], dtype=np.float64)
        rms += float((s**2).mean())
        count += 1
    return {
        "n_samples": int(done.size),
        "n_done": int(idx.size),
        "n_cracks": int(lengths.size),
        "crack_length_um_min": float(lengths.min()) if lengths.size else math.nan,
        "crack_length_um_max": float(lengths.max()) if lengths.size else math.nan,
        "mean_crack_pixel_fraction": float(masks.mean()) if masks.size else math.nan,
        "signal_rms": math.sqrt(rms / count) if count else math.nan,
    }


def open_store(
    path: str | Path,
    *,
    store_format: str = STORE_FORMAT,
    required: tuple[str, ...] = REQUIRED_ARRAYS,
    kind: str = "wave-field",
):
    """Open a finished or partial store read-only; a clear error if it is not one (of ``store_format``)."""
    import zarr

    path = Path(path)
    if not (path / "zarr.json").exists():
        raise InputError(f"{path} is not a crackscope {kind} store (no zarr.json)")
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as err:  # corrupt metadata
        raise InputError(f"{path} could not be opened as a Zarr store: {err}") from None
    if group.attrs.get("format") != store_format:
        raise InputError(f"{path} is not a crackscope {kind} store (format {group.attrs.get('format')!r})")
    present = set(group.array_keys())
    for name in required:
        if name not in present:
            raise InputError(f"{path}: the store has no '{name}' array (incomplete or damaged store)")
    return group
