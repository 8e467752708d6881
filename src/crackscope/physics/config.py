"""PlateConfig: every parameter of a wave-field simulation, validated, with presets.

Presets (all keep the 9x9 sensor grid and the 36x36 mask; steel, plane stress):

===========  ==========  =======  =====  ===============  ==========  ======  =====  ============
preset       plate [µm]  nodes    T      crack length     width [µm]  cracks  kinks  crack pixels
===========  ==========  =======  =====  ===============  ==========  ======  =====  ============
paper        36 x 36     37 260   2000   0.4-12.8 unif.   4 - 10      1       no     4.9 %
small        18 x 18     9 270    1000   0.4-6.4 unif.    2 - 5       1       no     5.0 %
paper-multi  36 x 36     37 260   2000   0.4-12.8 log-u.  0 (lines)   1 - 24  25 %   5.1 %
small-multi  18 x 18     9 270    1000   0.4-6.4 log-u.   0 (lines)   1 - 6   25 %   1.7 %
tiny         7.2 x 7.2   1 476    200    0.4-3.2 log-u.   0 (lines)   1 - 3   25 %   1.5 %
===========  ==========  =======  =====  ===============  ==========  ======  =====  ============

All use a lattice spacing a = 0.2 µm. ``paper`` is the task of the MicroCrackAttentionNeXt paper as
documented: one rectangular crack (a notch) per plate, 0.4-12.8 µm long, crack pixels about 5 % of
the mask. The paper gives neither widths nor the length distribution; a notch of uniform length in
[0.4, 12.8] µm and uniform width in [4, 10] µm covers 4.9 % of the mask on average (1 µm pixels),
where log-uniform lengths would need notches wider than they are long, and line cracks cover 0.7 %.
``small`` is the same task at half the scale in every length (plate, crack, width, 0.5 µm pixels),
so a mask looks the same; its waves keep the paper's wavelength. The ``-multi`` presets are the
harder benchmark crackscope started from: many one-pixel-wide line cracks, log-uniform lengths
(equal numbers per doubling), a quarter of them kinked. Crack-pixel fractions are means over
600-1000 random plates.

Why these sizes: a straight segment longer than the lattice spacing cannot fit inside one lattice
triangle, so with a = 0.2 µm even the paper's smallest crack (0.4 µm = 2a) always cuts bonds. The
paper plate of 36 µm gives 1 µm mask pixels, so a 12.8 µm crack spans ~13 pixels and the >1..>4 µm
size classes are resolved; the shear wavelength at the default centre frequency is 15a = 3 µm.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from crackscope.errors import InputError
from crackscope.physics.cracks import CrackDistribution
from crackscope.physics.lattice import TriangularLattice, critical_time_step
from crackscope.physics.material import (
    LatticeSprings,
    calibrate_springs,
    check_poisson_ratio,
    wave_speeds,
)

MIN_SPACINGS_PER_WAVELENGTH = 10.0
DEFAULT_SPACINGS_PER_WAVELENGTH = 15.0


def _lattice_poisson_ratio(v: float) -> float:
    try:
        return check_poisson_ratio(v)
    except InputError:
        raise ValueError("outside the range the spring lattice supports (-1 < nu <= 1/3)") from None


# Poisson's ratio of a config field: the normal + shear spring lattice needs -1 < nu <= 1/3.
LatticePoissonRatio = Annotated[float, AfterValidator(_lattice_poisson_ratio)]


class CrackSampling(BaseModel):
    """How the dataset generator draws random cracks for each plate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count_min: int = Field(1, ge=0, description="fewest cracks per plate")
    count_max: int = Field(4, ge=0, description="most cracks per plate")
    length_um_min: float = Field(0.4, gt=0, description="shortest crack [µm]")
    length_um_max: float = Field(12.8, gt=0, description="longest crack [µm]")
    length_distribution: Literal["log-uniform", "uniform"] = "log-uniform"
    kink_probability: float = Field(0.25, ge=0, le=1, description="chance a crack is kinked (2 segments)")
    kink_angle_deg_max: float = Field(60.0, ge=15, le=90)
    edge_margin: float = Field(0.0, ge=0, description="keep cracks this far inside the plate [m]")
    width_um_min: float = Field(0.0, ge=0, description="narrowest crack band [µm]; 0 = a line crack")
    width_um_max: float = Field(0.0, ge=0, description="widest crack band [µm], uniform in [min, max]")

    @model_validator(mode="after")
    def _ranges(self):
        if self.count_max < self.count_min:
            raise ValueError(f"count_max={self.count_max} is below count_min={self.count_min}")
        if self.length_um_max < self.length_um_min:
            raise ValueError(f"length_um_max={self.length_um_max} is below length_um_min={self.length_um_min}")
        if self.width_um_max < self.width_um_min:
            raise ValueError(f"width_um_max={self.width_um_max} is below width_um_min={self.width_um_min}")
        return self

    def distribution(self) -> CrackDistribution:
        return CrackDistribution(**self.model_dump())


class LatticePlateProperties:
    """Quantities derived from a lattice plate's material and spacing, shared by every plate config
    (fields needed: youngs_modulus, poisson_ratio, density, thickness, lattice_spacing,
    center_frequency). ``default_spacings_per_wavelength``: lattice spacings per shear wavelength
    at the default source frequency."""

    default_spacings_per_wavelength: ClassVar[float] = DEFAULT_SPACINGS_PER_WAVELENGTH

    @property
    def wave_speeds(self) -> tuple[float, float]:
        """(c_p, c_s) [m/s] of the continuum plate in plane stress."""
        return wave_speeds(self.youngs_modulus, self.poisson_ratio, self.density)

    @property
    def frequency(self) -> float:
        """Source centre frequency f0 [Hz]."""
        if self.center_frequency is not None:
            return self.center_frequency
        return self.wave_speeds[1] / (self.default_spacings_per_wavelength * self.lattice_spacing)

    @property
    def springs(self) -> LatticeSprings:
        return calibrate_springs(
            self.youngs_modulus, self.poisson_ratio, self.density, self.thickness, self.lattice_spacing
        )

    @property
    def stability_limit(self) -> float:
        """Largest stable central-difference time step [s]."""
        s = self.springs
        return _critical_dt(self.lattice_spacing, s.k_normal, s.k_shear, s.node_mass)

    def lattice(self) -> TriangularLattice:
        return TriangularLattice(self.width, self.height, self.lattice_spacing)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides):
        """A named preset of the class (``paper``, ``small`` or ``tiny``), with fields overridden."""
        presets = cls.presets()
        if name not in presets:
            raise InputError(f"unknown preset {name!r}; choose one of {', '.join(presets)}")
        return cls.model_validate({**presets[name], **overrides})

    @classmethod
    def presets(cls) -> dict[str, dict]:  # pragma: no cover - every config class overrides it
        raise NotImplementedError

    def replace(self, **changes):
        """A validated copy with some fields changed."""
        return type(self).model_validate({**self.model_dump(), **changes})


def load_preset_config(cls, preset: str | None, path, overrides, what: str):
    """``cls`` from a preset, a YAML file (which may name its own ``preset``) and ``key=value``
    overrides. Precedence: overrides > file > preset (the argument, else the file's ``preset:``,
    else paper)."""
    from crackscope.config import apply_overrides, load_yaml, validate

    data = load_yaml(path) if path else {}
    source = f"config file {path}" if path else what
    name = preset or data.pop("preset", None) or "paper"
    data.pop("preset", None)
    presets = cls.presets()
    if name not in presets:
        raise InputError(f"{source}: unknown preset {name!r}; choose one of {', '.join(presets)}")
    return validate(cls, apply_overrides(_merge(presets[name], data), list(overrides)), source)


class PlateConfig(LatticePlateProperties, BaseModel):
    """A 2-D linear-elastic plate in plane stress, simulated as a triangular spring lattice. SI units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    youngs_modulus: float = Field(210e9, gt=0, description="Young's modulus E [Pa]")
    poisson_ratio: LatticePoissonRatio = Field(0.3, description="Poisson's ratio nu, -1 < nu <= 1/3")
    density: float = Field(7850.0, gt=0, description="density rho [kg/m^3]")
    thickness: float = Field(0.2e-6, gt=0, description="plate thickness t [m]")
    width: float = Field(36e-6, gt=0, description="plate width along x [m]")
    height: float = Field(36e-6, gt=0, description="plate height along y [m]")
    lattice_spacing: float = Field(0.2e-6, gt=0, description="distance between neighbouring particles a [m]")
    n_time: int = Field(2000, gt=1, description="recorded time samples T")
    record_every: int = Field(1, ge=1, description="integration steps per recorded sample")
    time_step: float | None = Field(None, gt=0, description="integration step [s]; None = cfl * stability limit")
    cfl: float = Field(0.6, gt=0, le=1, description="time step as a fraction of the stability limit")
    source_peak_force: float = Field(1000.0, description="peak point force [N] (the paper's 1000 N)")
    source_waveform: Literal["ricker", "tone_burst"] = "ricker"
    center_frequency: float | None = Field(
        None, gt=0, description="source centre frequency f0 [Hz]; None = c_s / (15 a)"
    )
    tone_burst_cycles: float = Field(5.0, gt=0)
    source_direction_deg: float = Field(0.0, description="force direction, 0 = +x (into the plate)")
    damping: float = Field(0.0, ge=0, description="mass-proportional damping coefficient [1/s]")
    sponge_width: float = Field(0.0, ge=0, description="absorbing layer along top, bottom, right edges [m]; 0 = off")
    sponge_strength: float = Field(1.0, ge=0, description="sponge peak damping in units of 2*pi*f0")
    sensor_grid: int = Field(9, ge=1, description="sensors per side of the uniform grid")
    mask_size: int = Field(36, ge=1, description="mask pixels per side")
    dtype: Literal["float32", "float64"] = "float32"
    cracks: CrackSampling = CrackSampling()

    @model_validator(mode="after")
    def _physics(self):
        if self.lattice_spacing * 5 > min(self.width, self.height):
            raise ValueError(
                f"lattice_spacing={self.lattice_spacing!r} m leaves fewer than 5 spacings across the plate"
            )
        _, c_s = self.wave_speeds
        spacings = c_s / self.frequency / self.lattice_spacing
        if spacings < MIN_SPACINGS_PER_WAVELENGTH:
            raise ValueError(
                f"center_frequency={self.frequency:.4g} Hz gives a shear wavelength of only {spacings:.3g} lattice "
                f"spacings (need >= {MIN_SPACINGS_PER_WAVELENGTH:g}; "
                f"use f0 <= {c_s / (10 * self.lattice_spacing):.4g} Hz)"
            )
        dt_max = self.stability_limit
        if self.time_step is not None and self.time_step > dt_max:
            raise ValueError(f"time_step={self.time_step!r} s is above the lattice's stability limit {dt_max:.4g} s")
        room = min(self.width, self.height) - 2 * self.cracks.edge_margin
        longest, widest = self.cracks.length_um_max * 1e-6, self.cracks.width_um_max * 1e-6
        if longest > room:
            raise ValueError(f"cracks.length_um_max={self.cracks.length_um_max} µm does not fit in the plate")
        if widest > room:
            raise ValueError(
                f"cracks.width_um_max={self.cracks.width_um_max} µm is wider than the plate ({room * 1e6:.4g} µm)"
            )
        if widest > 0 and math.hypot(longest, widest) > room:
            raise ValueError(
                f"cracks of {self.cracks.length_um_max} x {self.cracks.width_um_max} µm do not fit in the plate at "
                f"every angle (their diagonal is above {room * 1e6:.4g} µm)"
            )
        return self

    # ---- derived quantities -------------------------------------------------------------------

    @property
    def dt(self) -> float:
        """Integration time step [s]."""
        return self.time_step if self.time_step is not None else self.cfl * self.stability_limit

    @property
    def n_steps(self) -> int:
        """Integration steps to record ``n_time`` samples (the first at t = 0)."""
        return (self.n_time - 1) * self.record_every

    @classmethod
    def presets(cls) -> dict[str, dict]:
        """``paper`` (the paper's task), ``small`` (the same at CPU scale), ``paper-multi`` and
        ``small-multi`` (many line cracks per plate) or ``tiny`` (tests)."""
        return PRESETS


def load_plate_config(preset: str | None = None, path=None, overrides: list[str] | tuple[str, ...] = ()) -> PlateConfig:
    """PlateConfig from a preset, a YAML file and ``key=value`` overrides (see :func:`load_preset_config`)."""
    return load_preset_config(PlateConfig, preset, path, overrides, "plate config")


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@lru_cache(maxsize=64)
def _critical_dt(spacing: float, k_n: float, k_s: float, mass: float) -> float:
    return critical_time_step(spacing, k_n, k_s, mass)


def _plate(side_um: float, n_time: int, **cracks) -> dict:
    """A square plate preset of ``side_um`` µm recorded for ``n_time`` steps, with its crack sampling."""
    return dict(width=side_um * 1e-6, height=side_um * 1e-6, n_time=n_time, cracks=cracks)


# one straight notch per plate, uniform length and width (the paper's task)
_NOTCH = dict(count_min=1, count_max=1, length_distribution="uniform", kink_probability=0.0)

PRESETS: dict[str, dict] = {
    "paper": _plate(36, 2000, **_NOTCH, length_um_min=0.4, length_um_max=12.8, width_um_min=4.0, width_um_max=10.0),
    "small": _plate(18, 1000, **_NOTCH, length_um_min=0.4, length_um_max=6.4, width_um_min=2.0, width_um_max=5.0),
    "paper-multi": _plate(36, 2000, count_min=1, count_max=24, length_um_min=0.4, length_um_max=12.8),
    "small-multi": _plate(18, 1000, count_min=1, count_max=6, length_um_min=0.4, length_um_max=6.4),
    "tiny": _plate(7.2, 200, count_min=1, count_max=3, length_um_min=0.4, length_um_max=3.2),
}
