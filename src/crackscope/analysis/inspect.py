"""Inspect a wave-field store: a JSON summary and a report figure of one sample.

``inspect_store(path, out_dir)`` writes

* ``out_dir/summary.json``: sample counts, cracks per sample, a crack-length histogram, how many
  plates have a largest crack above 0..4 µm, and the mean crack-pixel fraction of the masks;
* ``out_dir/inspect.png``: (a) x-displacement traces of three sensors of one sample against the
  intact reference, (b) six wave-field snapshots of that sample, re-simulated from the store's
  config and crack polylines, with the cracks drawn on top, (c) its crack mask.

Both files are written atomically (temporary file, then rename). The re-simulation is also a
check: its signals must reproduce the stored ones, which proves the crack geometry round-trips.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np

from crackscope.errors import InputError
from crackscope.io import atomic_write_bytes

LENGTH_BIN_EDGES_UM: tuple[float, ...] = (0.4, 0.8, 1.6, 3.2, 6.4, 12.8)
LARGEST_CRACK_THRESHOLDS_UM: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0)
N_SNAPSHOTS = 6
SNAPSHOT_EVERY = 100
PAPER_CRACK_PIXEL_FRACTION = 0.05
RESIMULATION_TOLERANCE = 1e-4  # relative; float32 round-off is ~1e-6
_BLOCK = 1024  # samples read at a time for the mask statistics


# ---- summary -----------------------------------------------------------------------------------
def _finite_or_none(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def summarize_cracks(group) -> dict:
    """Statistics of the finished (``done == 1``) samples of an open store group."""
    done = np.asarray(group["done"][:]).astype(bool)
    idx = np.nonzero(done)[0]
    lengths = np.asarray(group["crack_length_um"][:], dtype=np.float64)[idx]  # (n_done, K), NaN-padded
    n_cracks = np.asarray(group["n_cracks"][:]).astype(np.int64)[idx]
    flat = lengths[np.isfinite(lengths)]
    largest = np.where(np.isfinite(lengths), lengths, 0.0).max(axis=1) if idx.size else np.zeros(0)

    edges = np.asarray(LENGTH_BIN_EDGES_UM)
    counts, _ = np.histogram(flat, bins=edges)

    pixels, total = 0, 0
    masks = group["masks"]
    for a in range(0, idx.size, _BLOCK):
        block = idx[a : a + _BLOCK]
        lo, hi = int(block[0]), int(block[-1]) + 1
        m = np.asarray(masks[lo:hi])[block - lo] > 0
        pixels += int(m.sum())
        total += int(m.size)

    per_sample = {str(k): int((n_cracks == k).sum()) for k in range(int(n_cracks.max()) + 1)} if idx.size else {}
    return {
        "n_samples": int(done.size),
        "n_done": int(idx.size),
        "n_cracks_total": int(flat.size),
        "cracks_per_sample": {
            "min": int(n_cracks.min()) if idx.size else None,
            "max": int(n_cracks.max()) if idx.size else None,
            "mean": float(n_cracks.mean()) if idx.size else None,
            "counts": per_sample,
        },
        "crack_length_um": {
            "min": _finite_or_none(flat.min()) if flat.size else None,
            "max": _finite_or_none(flat.max()) if flat.size else None,
            "mean": _finite_or_none(flat.mean()) if flat.size else None,
            "bin_edges": [float(e) for e in edges],
            "counts": [int(c) for c in counts],
            "below_range": int((flat < edges[0]).sum()),
            "above_range": int((flat > edges[-1]).sum()),
        },
        "samples_with_largest_crack_over_um": {f"{t:g}": int((largest > t).sum()) for t in LARGEST_CRACK_THRESHOLDS_UM},
        "mean_crack_pixel_fraction": pixels / total if total else None,
    }


def format_summary(summary: dict) -> str:
    """A few human-readable lines describing ``summary`` (as returned by :func:`inspect_store`)."""
    lines = []
    head = f"{summary.get('store', 'store')}: {summary['n_done']} of {summary['n_samples']} samples done"
    if summary.get("plate_um"):
        w, h = summary["plate_um"]
        head += f"; plate {w:g} x {h:g} µm, {summary.get('n_time', '?')} time samples"
    lines.append(head)
    cps = summary["cracks_per_sample"]
    if cps["mean"] is not None:
        lines.append(
            f"cracks per sample: min {cps['min']}, mean {cps['mean']:.2f}, max {cps['max']} "
            f"({summary['n_cracks_total']} cracks in all)"
        )
    hist = summary["crack_length_um"]
    edges, counts = hist["bin_edges"], hist["counts"]
    bins = " | ".join(f"{a:g}-{b:g}: {c}" for a, b, c in zip(edges[:-1], edges[1:], counts))
    extra = ""
    if hist["below_range"] or hist["above_range"]:
        extra = f" (below {edges[0]:g}: {hist['below_range']}, above {edges[-1]:g}: {hist['above_range']})"
    lines.append(f"crack length [µm]: {bins}{extra}")
    over = summary["samples_with_largest_crack_over_um"]
    lines.append(f"samples whose largest crack is > {' / '.join(over)} µm: {' / '.join(str(v) for v in over.values())}")
    frac = summary["mean_crack_pixel_fraction"]
    if frac is not None:
        lines.append(
            f"mean crack-pixel fraction: {100 * frac:.2f} % of mask pixels "
            f"(the paper's data has ~{100 * PAPER_CRACK_PIXEL_FRACTION:.0f} %)"
        )
    s = summary.get("sample")
    if s:
        lines.append(
            f"figure sample {s['index']}: {s['n_cracks']} crack(s), longest {s['max_crack_length_um']:.2f} µm; "
            f"re-simulation matches the stored signals to {s['resimulation_max_rel_error']:.1e} (relative)"
        )
        if s["resimulation_max_rel_error"] > RESIMULATION_TOLERANCE:
            lines.append(
                "WARNING: the re-simulated sample does not reproduce the stored signals; the store was "
                "probably made by a different version of the simulator, so the snapshots may not match it"
            )
    return "\n".join(lines)


# ---- re-simulation -----------------------------------------------------------------------------
def _config(group):
    from crackscope.physics.config import PlateConfig

    return PlateConfig.model_validate(group.attrs["config"])


def cracks_from_store(group, index: int) -> list:
    """The :class:`Crack` objects of sample ``index``, rebuilt from ``crack_points_m`` (NaN-padded) and
    ``crack_width_um`` (stores written before crack widths existed hold line cracks only)."""
    from crackscope.physics.cracks import Crack

    points = np.asarray(group["crack_points_m"][int(index)], dtype=np.float64)  # (K, P, 2)
    widths = np.zeros(len(points))
    if "crack_width_um" in set(group.array_keys()):
        widths = np.nan_to_num(np.asarray(group["crack_width_um"][int(index)], dtype=np.float64))
    cracks = []
    for poly, width_um in zip(points, widths):
        pts = poly[np.isfinite(poly).all(axis=1)]
        if len(pts) >= 2:
            cracks.append(Crack(*[tuple(p) for p in pts], width_m=width_um * 1e-6))
    return cracks


def _check_device(device: str) -> str:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device={device!r} is not a torch device (use 'cpu' or 'cuda')") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={device!r}: CUDA is not available on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device={device!r} is not supported (use 'cpu' or 'cuda')")
    return str(dev)


def resimulate_sample(
    group, index: int, device: str = "cpu", *, snapshot_every: int | None = None, n_time: int | None = None
):
    """Simulate stored sample ``index`` again from the store's config and crack polylines.

    ``n_time`` shortens the run to the first ``n_time`` recorded samples (a prefix of the stored
    signals). Returns the :class:`WavefieldResult`.
    """
    from crackscope.physics.wavefield import simulate_wavefield

    cfg = _config(group)
    if n_time is not None and n_time != cfg.n_time:
        cfg = cfg.replace(n_time=int(n_time))
    return simulate_wavefield(
        cfg, [cracks_from_store(group, index)], _check_device(device), snapshot_every=snapshot_every
    )


def snapshot_interval(n_steps: int) -> int:
    """Steps between the six snapshots: 100, or n_steps // 6 when the run is shorter than 600 steps."""
    if n_steps >= N_SNAPSHOTS * SNAPSHOT_EVERY:
        return SNAPSHOT_EVERY
    return max(1, n_steps // N_SNAPSHOTS)


# ---- the figure --------------------------------------------------------------------------------
_UNITS = ((1.0, "m"), (1e-3, "mm"), (1e-6, "µm"), (1e-9, "nm"), (1e-12, "pm"))


def _length_unit(peak: float) -> tuple[float, str]:
    for scale, name in _UNITS:
        if peak >= scale:
            return scale, name
    return _UNITS[-1]


def _sensor_choice(grid: int) -> list[tuple[int, str]]:
    """Sensors of the middle row: next to the source (left edge), the centre, the far (right) side."""
    row = grid // 2
    picks, seen = [], set()
    for col, name in ((0, "near source"), (grid // 2, "centre"), (grid - 1, "far side")):
        if col not in seen:
            seen.add(col)
            picks.append((row * grid + col, name))
    return picks


def _draw_cracks(ax, cracks, color, lw, scale=1e6, label=None):
    """Line cracks as lines, notches as the outlines of their bands."""
    for k, crack in enumerate(cracks):
        name = label if k == 0 else None
        if crack.width_m > 0:
            for j, band in enumerate(crack.bands * scale):
                closed = np.vstack([band, band[:1]])
                ax.plot(closed[:, 0], closed[:, 1], color=color, lw=lw, label=name if j == 0 else None)
            continue
        p = np.asarray(crack.points) * scale
        ax.plot(p[:, 0], p[:, 1], color=color, lw=lw, solid_capstyle="round", label=name)


def _make_figure(
    *, cfg, index, cracks, signals, reference, time_s, sensor_xy, mask, snapshots, snap_steps, lattice_xy, title
):
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure
    from matplotlib.tri import Triangulation

    w_um, h_um = cfg.width * 1e6, cfg.height * 1e6
    fig = Figure(figsize=(15, 12.5), layout="constrained")
    gs = fig.add_gridspec(3, 4, height_ratios=[1.15, 1, 1])
    fig.suptitle(title, fontsize=14)

    # (a) sensor traces
    picks = _sensor_choice(cfg.sensor_grid)
    colours = ["tab:blue", "tab:orange", "tab:green"]
    t_ns = np.asarray(time_s) * 1e9
    peak = max(
        float(np.abs(signals[0, [i for i, _ in picks]]).max()),
        float(np.abs(reference[0, [i for i, _ in picks]]).max()),
        1e-300,
    )
    scale, unit = _length_unit(peak)
    sub = gs[0, :3].subgridspec(len(picks), 1, hspace=0.0)
    trace_axes = []
    for k, (s, name) in enumerate(picks):
        ax = fig.add_subplot(sub[k], sharex=trace_axes[0] if trace_axes else None)
        trace_axes.append(ax)
        x_um, y_um = sensor_xy[s] * 1e6
        ax.plot(t_ns, reference[0, s] / scale, color="0.55", lw=1.2, ls="--", label="intact reference")
        ax.plot(t_ns, signals[0, s] / scale, color=colours[k], lw=1.3, label=f"sample {index} (cracked)")
        ax.axhline(0, color="0.85", lw=0.6, zorder=0)
        ax.text(
            0.995,
            0.93,
            f"sensor {s}, {name}: x = {x_um:.2f} µm, y = {y_um:.2f} µm",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=9,
            color=colours[k],
            bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1.5),
        )
        lo = min(float(signals[0, s].min()), float(reference[0, s].min())) / scale
        hi = max(float(signals[0, s].max()), float(reference[0, s].max())) / scale
        span = max(hi - lo, 1e-12)
        ax.set_ylim(lo - 0.08 * span, hi + 0.35 * span)  # headroom for the sensor label
        ax.set_ylabel(f"$u_x$ [{unit}]")
        ax.grid(alpha=0.25)
        if k < len(picks) - 1:
            ax.tick_params(labelbottom=False)
    trace_axes[0].set_title(
        f"(a) x displacement at {len(picks)} sensors: sample {index} vs the intact plate", loc="left"
    )
    trace_axes[0].legend(
        loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=9, ncols=2, frameon=False, borderaxespad=0.2
    )
    trace_axes[-1].set_xlabel("time [ns]")
    trace_axes[-1].set_xlim(t_ns[0], t_ns[-1])

    # (c) mask with cracks, sensors and source
    ax = fig.add_subplot(gs[0, 3])
    m = mask.shape[-1]
    ax.imshow(mask, origin="lower", extent=(0, w_um, 0, h_um), cmap="Greys", vmin=0, vmax=1.6, interpolation="nearest")
    _draw_cracks(ax, cracks, "tab:red", 1.4, label="crack")
    ax.scatter(sensor_xy[:, 0] * 1e6, sensor_xy[:, 1] * 1e6, s=6, color="0.5", zorder=3, label="sensors")
    for k, (s, _) in enumerate(picks):
        ax.scatter(*(sensor_xy[s] * 1e6), s=45, color=colours[k], edgecolor="k", lw=0.6, zorder=4)
    src = lattice_xy[:, lattice_xy.shape[1] // 2, 0] * 1e6
    ax.scatter(*src, marker=">", s=70, color="gold", edgecolor="k", lw=0.6, zorder=5, label="source", clip_on=False)
    ax.set_title(f"(c) crack mask {m}x{m}, {100 * mask.mean():.1f} % cracked", loc="left")
    ax.set_xlabel("x [µm]")
    ax.set_ylabel("y [µm]")
    ax.set_xlim(0, w_um)
    ax.set_ylim(0, h_um)
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.17),
        ncols=3,
        fontsize=8,
        frameon=False,
        handletextpad=0.3,
        columnspacing=0.8,
    )

    # (b) snapshots of |u| on the lattice
    x = lattice_xy[0].ravel() * 1e6
    y = lattice_xy[1].ravel() * 1e6
    tri = Triangulation(x, y)
    mags = [np.hypot(s[0], s[1]).ravel() for s in snapshots]
    vmax = max(max(float(np.percentile(mg, 99.5)) for mg in mags), 1e-300)
    mscale, munit = _length_unit(vmax)
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=vmax / mscale)  # one shared scale; sqrt shows weak scattered waves
    snap_gs = gs[1:, :].subgridspec(2, 3)
    step_s = cfg.dt
    image = None
    snap_axes = []
    for k, (mg, step) in enumerate(zip(mags, snap_steps)):
        ax = fig.add_subplot(snap_gs[k // 3, k % 3])
        snap_axes.append(ax)
        image = ax.tripcolor(tri, mg / mscale, shading="gouraud", cmap="inferno", norm=norm, rasterized=True)
        _draw_cracks(ax, cracks, "cyan", 1.6)
        ax.scatter(*src, marker=">", s=45, color="gold", edgecolor="k", lw=0.5, zorder=5, clip_on=False)
        ax.set_aspect("equal")
        ax.set_xlim(0, w_um)
        ax.set_ylim(0, h_um)
        ax.set_title(f"(b{k + 1}) step {step}, t = {step * step_s * 1e9:.2f} ns", loc="left")
        if k % 3 == 0:
            ax.set_ylabel("y [µm]")
        else:
            ax.tick_params(labelleft=False)
        if k // 3 == 1:
            ax.set_xlabel("x [µm]")
        else:
            ax.tick_params(labelbottom=False)
    if image is not None:
        cb = fig.colorbar(image, ax=snap_axes, shrink=0.85, pad=0.01, extend="max")
        cb.set_label(f"displacement magnitude |u| [{munit}] (square-root colour scale)")
    return fig


# ---- atomic output -----------------------------------------------------------------------------


def _prepare_out_dir(out_dir) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"out_dir {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"out_dir {out} cannot be created: {err.strerror or err}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f"out_dir {out} is not writable")
    return out


def _choose_sample(group, sample) -> int:
    done = np.asarray(group["done"][:]).astype(bool)
    n = done.size
    if sample is None:
        if not done.any():
            raise InputError("the store has no finished samples to inspect")
        largest = np.asarray(group["max_crack_length_um"][:], dtype=np.float64)
        largest = np.where(done & np.isfinite(largest), largest, -np.inf)
        return int(np.argmax(largest))  # the first done sample with the largest crack
    if isinstance(sample, (bool, np.bool_)) or not isinstance(sample, (int, np.integer)):
        raise InputError(f"sample={sample!r} must be an integer sample index")
    if not 0 <= int(sample) < n:
        raise InputError(f"sample={int(sample)} is out of range (the store has samples 0..{n - 1})")
    if not done[int(sample)]:
        raise InputError(f"sample={int(sample)} is not finished (done = 0) in the store")
    return int(sample)


def inspect_store(path, out_dir, sample: int | None = None, device: str = "cpu") -> dict:
    """Summarise the store at ``path`` and draw one sample; writes ``summary.json`` and ``inspect.png``.

    ``sample``: the store index to draw; default the first finished sample with the largest crack.
    Returns the summary (also written as JSON).
    """
    from crackscope.data.wavefield_store import open_store
    from crackscope.physics.wavefield import sensor_nodes

    group = open_store(path)
    device = _check_device(device)
    index = _choose_sample(group, sample)
    out = _prepare_out_dir(out_dir)
    cfg = _config(group)

    summary = {
        "store": str(Path(path)),
        "plate_um": [cfg.width * 1e6, cfg.height * 1e6],
        "n_time": cfg.n_time,
        "mask_size": cfg.mask_size,
        **summarize_cracks(group),
    }

    # re-simulate the chosen sample up to the last snapshot
    every = snapshot_interval(cfg.n_steps)
    last_step = N_SNAPSHOTS * every
    n_time = min(cfg.n_time, math.ceil(last_step / cfg.record_every) + 1)
    res = resimulate_sample(group, index, device, snapshot_every=every, n_time=n_time)
    snaps = res.snapshots[0].double().cpu().numpy()  # (K, 2, R, C)
    keep = [k for k, s in enumerate(res.snapshot_steps) if 0 < s <= last_step][:N_SNAPSHOTS]
    stored = np.asarray(group["signals"][index], dtype=np.float32)
    again = res.signals[0].float().cpu().numpy()
    err = float(np.abs(again - stored[..., :n_time]).max())
    peak = float(np.abs(stored[..., :n_time]).max())
    cracks = cracks_from_store(group, index)
    lengths = np.asarray(group["crack_length_um"][index], dtype=np.float64)
    mask = (np.asarray(group["masks"][index]) > 0).astype(np.float64)
    summary["sample"] = {
        "index": index,
        "n_cracks": len(cracks),
        "crack_length_um": [float(v) for v in lengths[np.isfinite(lengths)]],
        "max_crack_length_um": float(np.nanmax(lengths)) if np.isfinite(lengths).any() else 0.0,
        "crack_pixel_fraction": float(mask.mean()),
        "snapshot_steps": [int(res.snapshot_steps[k]) for k in keep],
        "snapshot_times_ns": [float(res.snapshot_steps[k] * cfg.dt * 1e9) for k in keep],
        "resimulated_time_samples": int(n_time),
        "resimulation_max_abs_error_m": err,
        "resimulation_max_rel_error": err / peak if peak > 0 else err,
    }

    sensor_xy = np.asarray(
        group.attrs.get("sensor_xy_m")
        or [cfg.lattice().positions[:, r, c] for r, c in sensor_nodes(cfg.lattice(), cfg.sensor_grid)],
        dtype=np.float64,
    )
    time_s = np.arange(cfg.n_time) * cfg.dt * cfg.record_every
    title = (
        f"{Path(path).name}: sample #{index} ({summary['n_done']} of {summary['n_samples']} done)  |  "
        f"{len(cracks)} crack(s), longest "
        f"{summary['sample']['max_crack_length_um']:.2f} µm  |  plate {cfg.width * 1e6:g} x {cfg.height * 1e6:g} µm, "
        f"{cfg.lattice().n_nodes} lattice nodes"
    )
    fig = _make_figure(
        cfg=cfg,
        index=index,
        cracks=cracks,
        signals=stored,
        reference=np.asarray(group["reference"][...], dtype=np.float32),
        time_s=time_s,
        sensor_xy=sensor_xy,
        mask=mask,
        snapshots=snaps[keep],
        snap_steps=summary["sample"]["snapshot_steps"],
        lattice_xy=cfg.lattice().positions,
        title=title,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(out / "inspect.png", buf.getvalue())
    summary["figure"] = str(out / "inspect.png")
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode())
    return summary
