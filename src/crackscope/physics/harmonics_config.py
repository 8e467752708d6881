"""HarmonicsConfig: every parameter of a nonlinear-harmonics simulation, validated, with presets.

The plate is a steel plane-stress lattice of spacing a = 0.2 µm (as the wave-field presets), free
on every edge. A Hann tone burst of ``tone_burst_cycles`` cycles at f0 is applied as a point force
at the middle of the left edge; the micro-crack group lies in ``crack_region_fraction`` of the
plate and three sensors a, b, c record the x displacement. See ``docs/harmonics.md``.

Presets (f0 = c_s / (24 a) = 668 MHz, i.e. 24 spacings per shear wavelength at f0 and 8 at 3 f0;
12-cycle burst; one recorded sample per step; quantity classes A/B/C and size classes D/E/F/G,
counts inclusive):

========  ============  =======  =====  ==========================  =============================
preset    plate [µm]    nodes    steps  cracks A | B | C            sizes D | E | F | G [µm]
========  ============  =======  =====  ==========================  =============================
paper     48 x 38.4     53 040   1 874  30-119 | 120-209 | 210-300  0.4-0.6|0.6-0.8|0.8-1.0|1.0-1.2
small     24 x 19.2     13 320   1 718  8-29 | 30-51 | 52-74        same
tiny      12 x 9.6      3 300    1 562  2-7 | 8-13 | 14-19          same
========  ============  =======  =====  ==========================  =============================

The paper preset keeps the paper's largest group (300 micro-cracks; "210 to 300" is one of its
ranges); small and tiny scale the counts down roughly with the crack region's area.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crackscope.errors import InputError
from crackscope.physics.config import LatticePlateProperties, LatticePoissonRatio, load_preset_config

HARMONIC_LENGTH = 4760  # samples per harmonic response, the paper's input length
QUANTITY_CLASSES = ("A", "B", "C")
SIZE_CLASSES = ("D", "E", "F", "G")
LABEL_NAMES = tuple(q + s for q in QUANTITY_CLASSES for s in SIZE_CLASSES)  # AD, AE, ..., CG
SENSOR_NAMES = ("a", "b", "c")
DEFAULT_SPACINGS_PER_WAVELENGTH = 24.0
MIN_TONE_BURST_CYCLES = 10.0


class HarmonicsConfig(LatticePlateProperties, BaseModel):
    """A cracked plate probed by a tone burst, its contact-nonlinear micro-cracks and three sensors. SI units."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    default_spacings_per_wavelength: ClassVar[float] = DEFAULT_SPACINGS_PER_WAVELENGTH

    # ---- plate and lattice (as PlateConfig) ---------------------------------------------------
    youngs_modulus: float = Field(210e9, gt=0, description="Young's modulus E [Pa]")
    poisson_ratio: LatticePoissonRatio = Field(0.3, description="Poisson's ratio nu, -1 < nu <= 1/3")
    density: float = Field(7850.0, gt=0, description="density rho [kg/m^3]")
    thickness: float = Field(0.2e-6, gt=0, description="plate thickness t [m]")
    width: float = Field(48e-6, gt=0, description="plate width along x [m]")
    height: float = Field(38.4e-6, gt=0, description="plate height along y [m]")
    lattice_spacing: float = Field(0.2e-6, gt=0, description="distance between neighbouring particles a [m]")
    cfl: float = Field(0.6, gt=0, le=1, description="time step as a fraction of the stability limit")
    dtype: Literal["float32", "float64"] = "float32"
    damping: float = Field(0.0, ge=0, description="mass-proportional damping coefficient [1/s]")
    sponge_width: float = Field(0.0, ge=0, description="absorbing layer along top, bottom, right edges [m]; 0 = off")
    sponge_strength: float = Field(1.0, ge=0, description="sponge peak damping in units of 2*pi*f0")

    # ---- excitation and recording -------------------------------------------------------------
    center_frequency: float | None = Field(None, gt=0, description="tone-burst frequency f0 [Hz]; None = c_s / (24 a)")
    tone_burst_cycles: float = Field(12.0, ge=MIN_TONE_BURST_CYCLES, description="cycles of the Hann-windowed burst")
    source_peak_force: float = Field(
        2e-5, gt=0, description="peak point force [N] (gives peak strains ~1e-4 in the crack region)"
    )
    source_direction_deg: float = Field(0.0, description="force direction, 0 = +x (into the plate)")
    record_periods: float = Field(24.0, gt=0, description="recording length in periods 1/f0 (from t = 0)")
    record_every: int = Field(1, ge=1, description="integration steps per recorded sample")
    sensor_xy_fraction: tuple[tuple[float, float], tuple[float, float], tuple[float, float]] = Field(
        ((0.85, 0.5), (0.5, 0.9), (0.15, 0.8)),
        description="sensors a, b, c as (x / width, y / height); each snaps to its nearest node",
    )

    # ---- contact law of the crack bonds ---------------------------------------------------------
    tension_stiffness_ratio: float = Field(0.1, ge=0, lt=1, description="r = k_t / k of a crack bond in tension")
    crack_gap: float = Field(5.0e-12, ge=0, description="initial gap g [m] a crack bond must close before contact")

    # ---- crack group and labels ---------------------------------------------------------------
    crack_region_fraction: tuple[float, float, float, float] = Field(
        (0.3, 0.2, 0.7, 0.8), description="crack-group region (x0, y0, x1, y1) as fractions of width/height"
    )
    crack_count_edges: tuple[int, int, int, int] = Field(
        (30, 120, 210, 300), description="quantity classes A=[e0,e1), B=[e1,e2), C=[e2,e3] [cracks]"
    )
    crack_size_edges_um: tuple[float, float, float, float, float] = Field(
        (0.4, 0.6, 0.8, 1.0, 1.2), description="size classes D..G = [e0,e1), ..., [e3,e4] crack length [µm]"
    )
    default_crack_size_um: float = Field(0.8, gt=0, description="crack length [µm] when none is given")
    crack_layout: Literal["nested", "random"] = Field(
        "nested",
        description="nested: every group is the first n cracks of one fixed layout of the site, "
        "shortened about their centres to the group's size; random: a fresh layout per plate",
    )
    layout_seed: int = Field(0, ge=0, description="seed of the site's fixed crack layout (crack_layout=nested)")

    # ---- harmonic extraction ----------------------------------------------------------------
    extraction: Literal["pulse_inversion", "bandpass"] = Field(
        "pulse_inversion", description="pulse_inversion: +A and -A runs; bandpass: the +A run only"
    )
    bandpass_sigma_fraction: float = Field(0.25, gt=0, le=0.5, description="Gaussian band-pass std, in units of f0")
    taper_periods: float = Field(4.0, ge=0, description="raised-cosine fade-out over the record's last periods 1/f0")

    @model_validator(mode="after")
    def _physics(self):
        if self.lattice_spacing * 10 > min(self.width, self.height):
            raise ValueError(
                f"lattice_spacing={self.lattice_spacing!r} m leaves fewer than 10 spacings across the plate"
            )
        _, c_s = self.wave_speeds
        spacings = c_s / (3.0 * self.frequency) / self.lattice_spacing
        if spacings < 6.0:
            raise ValueError(
                f"center_frequency={self.frequency:.4g} Hz puts the 3rd harmonic at only {spacings:.3g} lattice "
                f"spacings per shear wavelength (need >= 6; use f0 <= {c_s / (18 * self.lattice_spacing):.4g} Hz)"
            )
        x0, y0, x1, y1 = self.crack_region_fraction
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(
                f"crack_region_fraction={self.crack_region_fraction} must satisfy 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1"
            )
        for name, (fx, fy) in zip(SENSOR_NAMES, self.sensor_xy_fraction):
            if not (0 <= fx <= 1 and 0 <= fy <= 1):
                raise ValueError(f"sensor {name} at {(fx, fy)} lies outside the plate (fractions must be in [0, 1])")
        e = self.crack_count_edges
        if not (0 <= e[0] < e[1] < e[2] <= e[3]):
            raise ValueError(f"crack_count_edges={e} must be non-negative and increasing")
        s = self.crack_size_edges_um
        if not all(s[i] < s[i + 1] for i in range(4)) or s[0] <= 0:
            raise ValueError(f"crack_size_edges_um={s} must be positive and increasing")
        if s[0] * 1e-6 < self.lattice_spacing:
            raise ValueError(
                f"crack_size_edges_um[0]={s[0]} µm is below one lattice spacing "
                f"({self.lattice_spacing * 1e6:g} µm); such a crack may cross no bond"
            )
        region = min((x1 - x0) * self.width, (y1 - y0) * self.height)
        if s[-1] * 1e-6 > region:
            raise ValueError(
                f"crack_size_edges_um[-1]={s[-1]} µm does not fit in the crack region ({region * 1e6:.3g} µm)"
            )
        nyquist = HARMONIC_LENGTH / (2.0 * self.n_time * self.record_every * self.dt)
        if nyquist < 4.0 * self.frequency or 1.0 / (2 * self.record_every * self.dt) < 4.0 * self.frequency:
            raise ValueError(
                "record_periods/record_every sample the 3rd harmonic too coarsely "
                f"(the record and its {HARMONIC_LENGTH}-sample resampling need a Nyquist frequency >= 4 f0)"
            )
        if self.taper_periods >= self.record_periods:
            raise ValueError(
                f"taper_periods={self.taper_periods} must be shorter than record_periods={self.record_periods}"
            )
        if self.n_steps * self.dt < self.tone_burst_cycles / self.frequency:
            raise ValueError(
                f"record_periods={self.record_periods} is shorter than the tone burst ({self.tone_burst_cycles} cycles)"
            )
        return self

    # ---- derived quantities -------------------------------------------------------------------
    @property
    def dt(self) -> float:
        """Integration time step [s] (the contact law only softens the lattice, so the linear limit holds)."""
        return self.cfl * self.stability_limit

    @property
    def n_time(self) -> int:
        """Recorded samples T per run."""
        return int(math.ceil(self.record_periods / self.frequency / (self.dt * self.record_every))) + 1

    @property
    def n_steps(self) -> int:
        return (self.n_time - 1) * self.record_every

    @property
    def crack_region(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) [m] of the crack-group region."""
        x0, y0, x1, y1 = self.crack_region_fraction
        return x0 * self.width, y0 * self.height, x1 * self.width, y1 * self.height

    @property
    def count_range(self) -> tuple[int, int]:
        return self.crack_count_edges[0], self.crack_count_edges[-1]

    @classmethod
    def presets(cls) -> dict[str, dict]:
        """``paper`` (the paper's crack counts), ``small`` (CPU experiments) or ``tiny`` (tests)."""
        return PRESETS


def quantity_class(n_cracks: int, cfg: HarmonicsConfig) -> int:
    """0, 1, 2 for A, B, C; -1 outside ``crack_count_edges`` (e.g. an intact plate)."""
    e = cfg.crack_count_edges
    if n_cracks < e[0] or n_cracks > e[3]:
        return -1
    return 0 if n_cracks < e[1] else 1 if n_cracks < e[2] else 2


def size_class(crack_size_um: float, cfg: HarmonicsConfig) -> int:
    """0..3 for D..G; -1 outside ``crack_size_edges_um``."""
    e = cfg.crack_size_edges_um
    if not (e[0] <= crack_size_um <= e[4]):
        return -1
    for k in range(3):
        if crack_size_um < e[k + 1]:
            return k
    return 3


def label_of(n_cracks: int, crack_size_um: float, cfg: HarmonicsConfig) -> int:
    """Label index 0..11 (``LABEL_NAMES[i]``: AD, AE, AF, AG, BD, ..., CG), or -1 outside the class ranges."""
    q, s = quantity_class(n_cracks, cfg), size_class(crack_size_um, cfg)
    return -1 if q < 0 or s < 0 else 4 * q + s


def label_ranges(label: int, cfg: HarmonicsConfig) -> tuple[tuple[int, int], tuple[float, float]]:
    """((n_lo, n_hi), (size_lo_um, size_hi_um)) of a label, counts inclusive (n_hi = last allowed count)."""
    if not 0 <= label < len(LABEL_NAMES):
        raise InputError(f"label={label!r} is not one of 0..{len(LABEL_NAMES) - 1}")
    q, s = divmod(label, 4)
    e = cfg.crack_count_edges
    n_hi = e[q + 1] - 1 if q < 2 else e[3]
    return (e[q], n_hi), (cfg.crack_size_edges_um[s], cfg.crack_size_edges_um[s + 1])


def load_harmonics_config(
    preset: str | None = None, path=None, overrides: list[str] | tuple[str, ...] = ()
) -> HarmonicsConfig:
    """HarmonicsConfig from a preset, a YAML file and ``key=value`` overrides (see ``load_preset_config``)."""
    return load_preset_config(HarmonicsConfig, preset, path, overrides, "harmonics config")


PRESETS: dict[str, dict] = {
    "paper": dict(width=48e-6, height=38.4e-6, record_periods=24.0, crack_count_edges=(30, 120, 210, 300)),
    "small": dict(width=24e-6, height=19.2e-6, record_periods=22.0, crack_count_edges=(8, 30, 52, 74)),
    "tiny": dict(width=12e-6, height=9.6e-6, record_periods=20.0, crack_count_edges=(2, 8, 14, 19)),
}
