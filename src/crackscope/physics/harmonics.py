"""simulate_harmonics: micro-crack groups with clapping cracks, probed by a tone burst; 2nd/3rd harmonics.

Per plate of the batch (see ``docs/harmonics.md`` for the formulas):

1. a group of ``n`` straight micro-cracks of one length: by default (``crack_layout = "nested"``)
   the first ``n`` cracks of the site's one fixed random layout, shortened to the group's size;
   with ``"random"`` a fresh random layout per plate (centre uniform in the crack region,
   orientation uniform in [0, pi)); never two crossing each other or the same bond;
2. every bond a crack crosses becomes a contact bond (:mod:`crackscope.physics.contact`);
3. the plate is driven by a Hann tone burst ``+F`` (and, for pulse inversion, in a second run by
   ``-F``); the three sensors record the x displacement;
4. the 2nd harmonic is the Gaussian band-pass around 2 f0 of the even part (x+ + x-)/2, the 3rd
   the band-pass around 3 f0 of the odd part (x+ - x-)/2; the same extraction applied to the
   intact plate (same lattice, no contact bonds) is subtracted (baseline leakage removal);
5. the band-limited harmonics are evaluated on 4760 samples spanning the record (exact spectral
   resampling of the band-passed signal), and A1, A2, A3 are spectral peak amplitudes.

All plates of a call, their -F twins and the intact baseline plate advance together in one
batched solver; each plate's numbers do not depend on what else is in the batch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from crackscope.errors import InputError
from crackscope.physics.contact import ContactLatticeSolver, bonds_crossed, crack_bonds
from crackscope.physics.cracks import Crack, check_crack_lists, segments_cross
from crackscope.physics.harmonics_config import (
    HARMONIC_LENGTH,
    LABEL_NAMES,
    SENSOR_NAMES,
    HarmonicsConfig,
    label_of,
)
from crackscope.physics.sources import tone_burst
from crackscope.physics.wavefield import sponge_damping

# Bump whenever a change to the physics changes the numbers: stores record it, resume checks it.
HARMONICS_SIMULATOR_VERSION = "harmonics-2 (contact bonds, pulse inversion, Gaussian band-pass, nested layouts)"
MAX_ATTEMPTS_PER_CRACK = 200


@dataclass
class HarmonicsResult:
    """Output of :func:`simulate_harmonics` (B plates, 3 sensors a/b/c, T recorded samples per run)."""

    harmonics: np.ndarray  # (B, 3, 2, 4760) float32: [.., 0, :] 2nd, [.., 1, :] 3rd harmonic u_x [m]
    signals: np.ndarray  # (B, 3, P, T) float32 raw u_x [m]; P = 2 (+F, -F) for pulse inversion, else 1
    amplitudes: np.ndarray  # (B, 3, 3) float32 A1, A2, A3 per sensor [m] (see spectral_amplitude)
    labels: np.ndarray  # (B,) int64 label index into LABEL_NAMES, -1 outside the class ranges
    label_names: tuple[str, ...]
    n_cracks: np.ndarray  # (B,) int64
    crack_size_um: np.ndarray  # (B,) float64
    time: np.ndarray  # (4760,) [s] times of the harmonic samples
    signal_time: np.ndarray  # (T,) [s] times of the raw records
    sensor_xy: np.ndarray  # (3, 2) [m] the lattice nodes used as sensors a, b, c
    sensor_names: tuple[str, ...]
    frequency: float  # f0 [Hz]
    dt: float  # integration step [s]
    n_steps: int
    n_nodes: int
    contact_bonds: np.ndarray  # (B,) contact bonds per plate
    cracks: list[list[Crack]] = field(default_factory=list)
    baseline_signal: np.ndarray | None = None  # (3, T) the intact plate's +F record


# ---- crack groups -----------------------------------------------------------------------------


def _check_count_and_size(n_cracks, crack_size_um, cfg: HarmonicsConfig, index: int | None = None) -> tuple[int, float]:
    where = "" if index is None else f" (plate {index})"
    if isinstance(n_cracks, (bool, np.bool_)) or not isinstance(n_cracks, (int, np.integer)):
        raise InputError(f"n_cracks={n_cracks!r}{where} must be a whole number of cracks")
    if n_cracks < 0:
        raise InputError(f"n_cracks={n_cracks!r}{where} is negative")
    try:
        size = float(crack_size_um)
    except (TypeError, ValueError):
        raise InputError(f"crack_size_um={crack_size_um!r}{where} is not a number") from None
    if not math.isfinite(size) or size <= 0:
        raise InputError(f"crack_size_um={crack_size_um!r}{where} must be a positive length in µm")
    a_um = cfg.lattice_spacing * 1e6
    if size < a_um:
        raise InputError(
            f"crack_size_um={size:g}{where} is below one lattice spacing ({a_um:g} µm) and may cross no bond"
        )
    x0, y0, x1, y1 = cfg.crack_region
    room = min(x1 - x0, y1 - y0) * 1e6
    if size > room:
        raise InputError(f"crack_size_um={size:g}{where} does not fit in the {room:.3g} µm crack region")
    # A crack blocks a band about one spacing wide along its length. A crude bound, refused at once:
    # more than 60 % of the region covered (random placement jams below it for long cracks,
    # e.g. 25 x 2 µm in the tiny region, 36 %; 200 x 0.4 µm there, 58 %, still fit).
    area = (x1 - x0) * (y1 - y0) * 1e12
    if n_cracks * size * a_um > 0.6 * area:
        raise InputError(
            f"n_cracks={int(n_cracks)} cracks of crack_size_um={size:g}{where} cannot fit without overlapping "
            f"in the {area:.3g} µm^2 crack region"
        )
    return int(n_cracks), size


def _crosses_any(seg: np.ndarray, others: np.ndarray) -> bool:
    """Whether segment (2, 2) properly crosses any of ``others`` (K, 2, 2)."""
    return bool(others.shape[0]) and bool(segments_cross(others[:, 0], others[:, 1], seg).any())


def place_crack_group(
    cfg: HarmonicsConfig,
    n_cracks: int,
    crack_size_um: float,
    rng: np.random.Generator,
    min_size_um: float | None = None,
) -> list[Crack]:
    """``n_cracks`` straight cracks of length ``crack_size_um`` placed at random in the crack region.

    Each centre is uniform over the positions that keep the whole crack inside the region, each
    orientation uniform in [0, pi). A candidate is rejected when it crosses an earlier crack or a
    bond an earlier crack already crosses, or (with ``min_size_um``) when the same crack shortened
    about its centre to ``min_size_um`` would cross no bond; after ``MAX_ATTEMPTS_PER_CRACK``
    rejections in a row the group is declared impossible (InputError).
    """
    n_cracks, size = _check_count_and_size(n_cracks, crack_size_um, cfg)
    lattice = cfg.lattice()
    length = size * 1e-6
    x0, y0, x1, y1 = cfg.crack_region
    segs = np.zeros((0, 2, 2))
    taken: set[tuple[int, int, int, int]] = set()
    cracks: list[Crack] = []
    for k in range(n_cracks):
        for _ in range(MAX_ATTEMPTS_PER_CRACK):
            theta = rng.uniform(0.0, math.pi)
            hx, hy = 0.5 * length * abs(math.cos(theta)), 0.5 * length * abs(math.sin(theta))
            cx, cy = rng.uniform(x0 + hx, x1 - hx), rng.uniform(y0 + hy, y1 - hy)
            dx, dy = 0.5 * length * math.cos(theta), 0.5 * length * math.sin(theta)
            seg = np.array([[cx - dx, cy - dy], [cx + dx, cy + dy]])
            if _crosses_any(seg, segs):
                continue
            crack = Crack(tuple(seg[0]), tuple(seg[1]))
            bonds = {b[:4] for b in bonds_crossed(lattice, crack)}
            if not bonds or bonds & taken:
                continue
            if min_size_um is not None and not bonds_crossed(lattice, shorten(crack, min_size_um)):
                continue
            taken |= bonds
            segs = np.concatenate([segs, seg[None]])
            cracks.append(crack)
            break
        else:
            raise InputError(
                f"n_cracks={n_cracks} cracks of crack_size_um={size:g} could not be placed without "
                f"overlapping in the crack region (crack {k + 1} found no room)"
            )
    return cracks


def shorten(crack: Crack, size_um: float) -> Crack:
    """The straight ``crack`` scaled about its centre to length ``size_um`` (same centre and orientation)."""
    (xa, ya), (xb, yb) = crack.points
    cx, cy = 0.5 * (xa + xb), 0.5 * (ya + yb)
    f = size_um / crack.length_um
    return Crack((cx + f * (xa - cx), cy + f * (ya - cy)), (cx + f * (xb - cx), cy + f * (yb - cy)))


@functools.lru_cache(maxsize=8)
def site_layout(cfg: HarmonicsConfig) -> tuple[Crack, ...]:
    """The fixed crack layout of the site (``crack_layout = "nested"``).

    ``crack_count_edges[-1]`` cracks of the largest size ``crack_size_edges_um[-1]`` placed by
    :func:`place_crack_group` with ``default_rng(SeedSequence([layout_seed]))``, each also crossing
    at least one bond when shortened to the smallest size ``crack_size_edges_um[0]``.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(cfg.layout_seed)]))
    return tuple(
        place_crack_group(
            cfg, cfg.crack_count_edges[-1], cfg.crack_size_edges_um[-1], rng, min_size_um=cfg.crack_size_edges_um[0]
        )
    )


def check_groups_fit(cfg: HarmonicsConfig) -> None:
    """InputError naming the class edges unless the densest labelled group fits the crack region.

    The densest group is ``crack_count_edges[-1]`` cracks of ``crack_size_edges_um[-1]``; for the
    nested layout this also builds :func:`site_layout`, so a store is refused before it is created.
    """
    n, size = cfg.crack_count_edges[-1], cfg.crack_size_edges_um[-1]
    try:
        _check_count_and_size(n, size, cfg)
        if cfg.crack_layout == "nested":
            site_layout(cfg)
    except InputError as err:
        raise InputError(
            f"crack_count_edges={list(cfg.crack_count_edges)} with crack_size_edges_um="
            f"{list(cfg.crack_size_edges_um)}: the densest group does not fit ({err})"
        ) from None


def crack_group(cfg: HarmonicsConfig, n_cracks: int, crack_size_um: float, rng: np.random.Generator) -> list[Crack]:
    """The group of ``n_cracks`` cracks of length ``crack_size_um`` that ``cfg.crack_layout`` prescribes.

    ``random``: :func:`place_crack_group` with ``rng``. ``nested``: the first ``n_cracks`` cracks of
    :func:`site_layout`, shortened about their centres to ``crack_size_um`` (``rng`` is not used).
    Shortening keeps the nested groups valid: a sub-segment of a crack can only cross what the whole
    crack crosses, so no two cracks cross each other or share a bond at any size up to the layout's.
    """
    n_cracks, size = _check_count_and_size(n_cracks, crack_size_um, cfg)
    if cfg.crack_layout == "random":
        return place_crack_group(cfg, n_cracks, size, rng)
    n_max, size_max = cfg.crack_count_edges[-1], cfg.crack_size_edges_um[-1]
    if n_cracks > n_max:
        raise InputError(
            f"n_cracks={n_cracks} exceeds the nested layout's {n_max} cracks (crack_count_edges[-1]); "
            "raise it or use crack_layout=random"
        )
    if size > size_max:
        raise InputError(
            f"crack_size_um={size:g} exceeds the nested layout's {size_max:g} µm "
            "(crack_size_edges_um[-1]); raise it or use crack_layout=random"
        )
    group = [shorten(c, size) for c in site_layout(cfg)[:n_cracks]]
    lattice = cfg.lattice()
    for k, crack in enumerate(group):
        if not bonds_crossed(lattice, crack):
            raise InputError(f"crack_size_um={size:g} is too short: crack {k + 1} of the nested layout crosses no bond")
    return group


def plate_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of plate ``index`` of a :func:`simulate_harmonics` call with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


# ---- signal processing (numpy only) -----------------------------------------------------------


def _padded_length(n: int) -> int:
    """Zero-padded FFT length for an n-sample record: >= 2n, so the circular filter never wraps."""
    return 2 * n


def gaussian_band(freqs: np.ndarray, center_hz: float, sigma_hz: float) -> np.ndarray:
    """Zero-phase Gaussian band-pass gain exp(-(f - fc)^2 / (2 sigma^2)) at the rFFT frequencies."""
    return np.exp(-0.5 * ((freqs - center_hz) / sigma_hz) ** 2)


def bandpass(x: np.ndarray, dt: float, center_hz: float, sigma_hz: float, out_length: int | None = None) -> np.ndarray:
    """Band-pass ``x`` (..., T) sampled every ``dt`` around ``center_hz``, zero phase, FFT domain.

    The record is zero-padded to L = 2T, multiplied by :func:`gaussian_band` and transformed back.
    ``out_length`` = M returns the same band-limited signal evaluated at M samples spanning the
    record window [0, T dt) (spacing T dt / M) instead of the native T samples: the filtered
    spectrum is a trigonometric polynomial, so this spectral resampling adds no interpolation
    error as long as the band lies below the new Nyquist frequency M / (2 T dt).
    """
    x = np.asarray(x, dtype=np.float64)
    t = x.shape[-1]
    n_pad = _padded_length(t)
    spec = np.fft.rfft(x, n=n_pad, axis=-1) * gaussian_band(np.fft.rfftfreq(n_pad, dt), center_hz, sigma_hz)
    if out_length is None:
        return np.fft.irfft(spec, n=n_pad, axis=-1)[..., :t]
    n_out = 2 * out_length  # the padded window holds 2T samples of the old grid, 2M of the new one
    bins = n_out // 2 + 1
    if spec.shape[-1] >= bins:
        spec = spec[..., :bins]
    else:
        spec = np.concatenate([spec, np.zeros((*spec.shape[:-1], bins - spec.shape[-1]), dtype=spec.dtype)], axis=-1)
    return np.fft.irfft(spec, n=n_out, axis=-1)[..., :out_length] * (n_out / n_pad)


def spectral_amplitude(x: np.ndarray, dt: float, center_hz: float, half_width_hz: float) -> np.ndarray:
    """Peak single-sided spectral amplitude of ``x`` (..., T) in [center - hw, center + hw].

    A = max_f 2 |X(f)| / T with X the DFT of the record zero-padded to 4T (finer frequency grid):
    a sinusoid of amplitude a filling the record gives A = a; a burst gives a times the fraction
    of the record it fills. Units: those of x.
    """
    x = np.asarray(x, dtype=np.float64)
    t = x.shape[-1]
    n_pad = 4 * t
    freqs = np.fft.rfftfreq(n_pad, dt)
    band = (freqs >= center_hz - half_width_hz) & (freqs <= center_hz + half_width_hz)
    spec = np.abs(np.fft.rfft(x, n=n_pad, axis=-1)[..., band])
    return 2.0 * spec.max(axis=-1) / t


def end_taper(n: int, dt: float, taper_s: float) -> np.ndarray:
    """(n,) window: 1, then a raised-cosine fade to 0 over the last ``taper_s`` seconds of the record.

    A record cut while the plate still rings has a rectangular end; its sinc sidelobes would leak
    about 1/(pi f0 T_record) of the fundamental into the 2 f0 and 3 f0 bands. The smooth fade makes
    that leakage decay like 1/f^3 instead.
    """
    w = np.ones(n)
    m = int(round(taper_s / dt))
    if m > 0:
        k = np.arange(m, 0, -1) - 1  # m-1 .. 0 samples before the end
        w[n - m :] = np.sin(0.5 * np.pi * k / m) ** 2
    return w


def extract_harmonics(
    plus: np.ndarray,
    minus: np.ndarray | None,
    intact: np.ndarray,
    dt: float,
    f0: float,
    sigma_hz: float,
    out_length: int | None = None,
) -> np.ndarray:
    """(..., 2, T or out_length) 2nd and 3rd harmonics with the intact plate's leakage removed.

    ``plus``/``minus``: records of the +F / -F runs (..., T); ``minus=None`` means plain band-pass
    of the +F run. ``intact``: the intact plate's +F record (T,) or broadcastable; its -F record is
    exactly its negative (a linear update is sign-symmetric in floating point), so its even part is
    zero and its odd part is ``intact`` itself.
    """
    if minus is None:
        even, odd, even0, odd0 = plus, plus, intact, intact
    else:
        even, odd = 0.5 * (plus + minus), 0.5 * (plus - minus)
        even0, odd0 = np.zeros_like(intact), intact
    h2 = bandpass(even, dt, 2 * f0, sigma_hz, out_length) - bandpass(even0, dt, 2 * f0, sigma_hz, out_length)
    h3 = bandpass(odd, dt, 3 * f0, sigma_hz, out_length) - bandpass(odd0, dt, 3 * f0, sigma_hz, out_length)
    return np.stack([h2, h3], axis=-2)


# ---- simulation ---------------------------------------------------------------------------------


def sensor_nodes(cfg: HarmonicsConfig) -> list[tuple[int, int]]:
    """(row, col) of the nodes nearest the sensors a, b, c."""
    lattice = cfg.lattice()
    nodes = [lattice.nearest_node(fx * cfg.width, fy * cfg.height) for fx, fy in cfg.sensor_xy_fraction]
    if len(set(nodes)) < len(nodes):
        raise InputError(f"sensor_xy_fraction={cfg.sensor_xy_fraction} puts two sensors on the same lattice node")
    return nodes


def run_plates(
    cfg: HarmonicsConfig, groups: Sequence[Sequence[Crack]], signs: Sequence[float], device="cpu", backend: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Raw u_x records (len(groups), 3, T) of plates with the given crack groups and source signs.

    Returns (records, contact bonds per plate).
    """
    lattice = cfg.lattice()
    springs = cfg.springs
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    batch = len(groups)
    bonds = crack_bonds(lattice, groups)
    src = lattice.source_node()
    solver = ContactLatticeSolver(
        lattice,
        springs.k_normal,
        springs.k_shear,
        springs.node_mass,
        cfg.dt,
        batch,
        contact=bonds,
        tension_ratio=cfg.tension_stiffness_ratio,
        gap=cfg.crack_gap,
        source_node=src,
        source_sign=signs,
        damping=sponge_damping(cfg, lattice),
        device=device,
        dtype=dtype,
        backend=backend,
    )
    n_steps, dt = cfg.n_steps, cfg.dt
    amplitude = cfg.source_peak_force * tone_burst(np.arange(n_steps + 1) * dt, cfg.frequency, cfg.tone_burst_cycles)
    theta = math.radians(cfg.source_direction_deg)
    scale = dt * dt / springs.node_mass
    src_x = (amplitude * math.cos(theta) * scale).tolist()
    src_y = (amplitude * math.sin(theta) * scale).tolist()
    last_forced = int(np.nonzero(amplitude)[0].max()) if np.any(amplitude) else -1
    nodes = sensor_nodes(cfg)
    index = solver.padded_index([r for r, _ in nodes], [c for _, c in nodes])
    recorded = torch.empty((cfg.n_time, batch, 2, len(nodes)), dtype=dtype, device=solver.device)
    for n in range(n_steps + 1):
        if n % cfg.record_every == 0:
            solver.read_nodes(index, out=recorded[n // cfg.record_every])
        if n == n_steps:
            break
        solver.step(source=(src_x[n], src_y[n]) if n <= last_forced else None)
    ux = recorded[:, :, 0, :].permute(1, 2, 0).contiguous()  # (B, 3, T)
    return ux.cpu().numpy(), bonds.count(batch)


def simulate_crack_groups(
    cfg: HarmonicsConfig,
    groups: Sequence[Sequence[Crack]],
    device="cpu",
    backend: str = "auto",
    crack_size_um: Sequence[float] | None = None,
) -> HarmonicsResult:
    """Simulate one plate per crack group (lists of :class:`Crack`, empty = no crack) and extract harmonics."""
    groups = check_crack_lists(groups, cfg.width, cfg.height, what="groups")
    batch = len(groups)
    if crack_size_um is not None and len(crack_size_um) != batch:
        raise InputError(f"crack_size_um={list(crack_size_um)!r} needs one size per crack group ({batch})")
    pulse_inversion = cfg.extraction == "pulse_inversion"
    runs = [*groups, *groups] if pulse_inversion else list(groups)
    signs = [1.0] * batch + ([-1.0] * batch if pulse_inversion else [])
    records, n_bonds = run_plates(cfg, [*runs, []], [*signs, 1.0], device=device, backend=backend)
    # The raw records are returned as simulated; the analysis uses them faded out at the end.
    raw = records
    records = records.astype(np.float64) * end_taper(
        cfg.n_time, cfg.dt * cfg.record_every, cfg.taper_periods / cfg.frequency
    )
    intact = records[-1]  # (3, T)
    plus = records[:batch]
    minus = records[batch : 2 * batch] if pulse_inversion else None
    f0 = cfg.frequency
    dt_rec = cfg.dt * cfg.record_every
    sigma = cfg.bandpass_sigma_fraction * f0
    native = extract_harmonics(plus, minus, intact, dt_rec, f0, sigma)  # (B, 3, 2, T)
    resampled = extract_harmonics(plus, minus, intact, dt_rec, f0, sigma, HARMONIC_LENGTH)
    a1 = spectral_amplitude(plus, dt_rec, f0, 0.5 * f0)
    a2 = spectral_amplitude(native[:, :, 0], dt_rec, 2 * f0, 0.5 * f0)
    a3 = spectral_amplitude(native[:, :, 1], dt_rec, 3 * f0, 0.5 * f0)
    raw_plus = raw[:batch]
    signals = np.stack([raw_plus, raw[batch : 2 * batch]], axis=2) if pulse_inversion else raw_plus[:, :, None]
    t = cfg.n_time
    lattice = cfg.lattice()
    nodes = sensor_nodes(cfg)
    n_cracks = np.array([len(g) for g in groups], dtype=np.int64)
    if crack_size_um is None:
        crack_size_um = [float(np.mean([c.length_um for c in g])) if g else 0.0 for g in groups]
    sizes = np.asarray(crack_size_um, dtype=np.float64)
    return HarmonicsResult(
        harmonics=resampled.astype(np.float32),
        signals=signals.astype(np.float32),
        amplitudes=np.stack([a1, a2, a3], axis=-1).astype(np.float32),
        labels=np.array([label_of(int(n), float(s), cfg) for n, s in zip(n_cracks, sizes)], dtype=np.int64),
        label_names=LABEL_NAMES,
        n_cracks=n_cracks,
        crack_size_um=sizes,
        time=np.arange(HARMONIC_LENGTH) * (t * dt_rec / HARMONIC_LENGTH),
        signal_time=np.arange(t) * dt_rec,
        sensor_xy=np.stack([lattice.positions[:, r, c] for r, c in nodes]),
        sensor_names=SENSOR_NAMES,
        frequency=f0,
        dt=cfg.dt,
        n_steps=cfg.n_steps,
        n_nodes=lattice.n_nodes,
        contact_bonds=n_bonds[:batch].astype(np.int64),
        cracks=groups,
        baseline_signal=raw[-1].astype(np.float32),
    )


def simulate_harmonics(
    cfg: HarmonicsConfig,
    n_cracks: Sequence[int],
    crack_size_um: Sequence[float] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    *,
    backend: str = "auto",
) -> HarmonicsResult:
    """Simulate one plate per entry of ``n_cracks`` (cracks in the group) and ``crack_size_um`` (their length).

    ``crack_size_um=None`` uses ``cfg.default_crack_size_um`` for every plate. Plate b's group is
    placed with :func:`plate_rng` ``(seed, b)``. ``n_cracks = 0`` gives a plate without cracks (its
    harmonics are exactly zero). Bad input raises :class:`~crackscope.errors.InputError`.
    """
    if isinstance(n_cracks, (int, np.integer)):
        n_cracks = [n_cracks]
    n_cracks = list(n_cracks)
    if not n_cracks:
        raise InputError("n_cracks is empty: give one crack count per plate")
    if crack_size_um is None:
        crack_size_um = [cfg.default_crack_size_um] * len(n_cracks)
    elif isinstance(crack_size_um, (int, float, np.floating, np.integer)):
        crack_size_um = [crack_size_um]
    crack_size_um = list(crack_size_um)
    if len(crack_size_um) != len(n_cracks):
        raise InputError(
            f"n_cracks has {len(n_cracks)} entries but crack_size_um={crack_size_um!r} has "
            f"{len(crack_size_um)}; give one size per plate"
        )
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed={seed!r} must be a non-negative integer")
    checked = [_check_count_and_size(n, s, cfg, b) for b, (n, s) in enumerate(zip(n_cracks, crack_size_um))]
    groups = []
    for b, (n, s) in enumerate(checked):
        try:
            groups.append(crack_group(cfg, n, s, plate_rng(seed, b)))
        except InputError as err:
            raise InputError(f"{err} (plate {b})") from None
    return simulate_crack_groups(cfg, groups, device=device, backend=backend, crack_size_um=[s for _, s in checked])
