"""Geometry of a regular triangular lattice filling a rectangular plate.

Nodes sit in rows ``r = 0..R-1`` at height ``y_r = y0 + r h`` (``h = a sqrt(3)/2``); even rows
start at ``x = 0`` and odd rows at ``x = a/2``, ``C`` nodes per row. ``R`` is odd and the rows are
centred on the plate, so the lattice is mirror-symmetric about ``y = height/2``. Every node is
bonded to its six nearest neighbours; bonds to nodes outside the plate do not exist, which makes
the edges traction-free.

Bonds are grouped in five *families*, each a pair of strided slices of the (R, C) node grid with
one direction ``n``; forces are then evaluated by slicing, without index lists:

=========  =======================  =======================  =========
family     first node i             second node j            direction
=========  =======================  =======================  =========
east       (all rows, c)            (same row, c+1)          0 deg
even_ne    (even row 2k, c)         (2k+1, c)                60 deg
even_nw    (even row 2k, c+1)       (2k+1, c)                120 deg
odd_ne     (odd row 2k+1, c)        (2k+2, c+1)              60 deg
odd_nw     (odd row 2k+1, c)        (2k+2, c)                120 deg
=========  =======================  =======================  =========
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from crackscope.errors import InputError

SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True)
class BondFamily:
    name: str
    rows_i: slice
    cols_i: slice
    rows_j: slice
    cols_j: slice
    direction: tuple[float, float]

    def first(self, grid):
        """The i-end view of any array whose last two axes are (R, C)."""
        return grid[..., self.rows_i, self.cols_i]

    def second(self, grid):
        return grid[..., self.rows_j, self.cols_j]


@dataclass(frozen=True)
class TriangularLattice:
    """Node positions and bond families of a triangular lattice of spacing ``spacing`` [m]."""

    width: float
    height: float
    spacing: float

    def __post_init__(self):
        if self.n_cols < 3 or self.n_rows < 3:
            raise InputError(
                f"lattice_spacing={self.spacing!r} m is too coarse for a {self.width!r} x "
                f"{self.height!r} m plate (need at least 3 nodes per side)"
            )

    @property
    def row_spacing(self) -> float:
        return self.spacing * SQRT3 / 2.0

    @cached_property
    def n_rows(self) -> int:
        half = max(int(round(self.height / (2.0 * self.row_spacing))), 1)
        while 2 * half * self.row_spacing > self.height * (1 + 1e-9) and half > 1:
            half -= 1
        return 2 * half + 1

    @cached_property
    def n_cols(self) -> int:
        return int(math.floor((self.width - self.spacing / 2.0) / self.spacing + 1e-9)) + 1

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.n_cols)

    @property
    def n_nodes(self) -> int:
        return self.n_rows * self.n_cols

    @cached_property
    def y0(self) -> float:
        return (self.height - (self.n_rows - 1) * self.row_spacing) / 2.0

    @cached_property
    def positions(self) -> np.ndarray:
        """(2, R, C) node coordinates [m], x then y, from the plate's lower-left corner."""
        r = np.arange(self.n_rows)[:, None]
        c = np.arange(self.n_cols)[None, :]
        x = c * self.spacing + (r % 2) * (self.spacing / 2.0)
        y = self.y0 + r * self.row_spacing + 0.0 * c
        return np.stack([np.broadcast_to(x, self.shape), y]).astype(np.float64)

    @cached_property
    def families(self) -> tuple[BondFamily, ...]:
        R, C = self.shape
        c60, s60 = 0.5, SQRT3 / 2.0
        return (
            BondFamily("east", slice(None), slice(0, C - 1), slice(None), slice(1, C), (1.0, 0.0)),
            BondFamily("even_ne", slice(0, R - 1, 2), slice(None), slice(1, R, 2), slice(None), (c60, s60)),
            BondFamily("even_nw", slice(0, R - 1, 2), slice(1, C), slice(1, R, 2), slice(0, C - 1), (-c60, s60)),
            BondFamily("odd_ne", slice(1, R - 1, 2), slice(0, C - 1), slice(2, R, 2), slice(1, C), (c60, s60)),
            BondFamily("odd_nw", slice(1, R - 1, 2), slice(None), slice(2, R, 2), slice(None), (-c60, s60)),
        )

    def nearest_node(self, x: float, y: float) -> tuple[int, int]:
        """(row, col) of the node nearest to (x, y) [m]."""
        d2 = (self.positions[0] - x) ** 2 + (self.positions[1] - y) ** 2
        r, c = np.unravel_index(int(np.argmin(d2)), self.shape)
        return int(r), int(c)

    def source_node(self) -> tuple[int, int]:
        """The left-edge node on the middle row (the plate's mirror line)."""
        return (self.n_rows - 1) // 2, 0

    def n_bonds(self) -> int:
        ones = np.ones(self.shape)
        return int(sum(f.first(ones).size for f in self.families))


def bond_stiffness_matrix(direction, k_normal: float, k_shear: float) -> np.ndarray:
    """2x2 matrix A with bond force A @ (u_j - u_i) on node i: normal plus shear spring."""
    n = np.asarray(direction, dtype=np.float64)
    return (k_normal - k_shear) * np.outer(n, n) + k_shear * np.eye(2)


BOND_DIRECTIONS = ((1.0, 0.0), (0.5, SQRT3 / 2.0), (-0.5, SQRT3 / 2.0))


def dynamical_matrix(k: np.ndarray, spacing: float, k_normal: float, k_shear: float, mass: float) -> np.ndarray:
    """(..., 2, 2) dynamical matrix D(k) [rad^2/s^2] of the infinite lattice for wave vectors k (..., 2) [1/m].

    Plane waves u = U exp(i(k.x - w t)) solve w^2 U = D(k) U with
    D(k) = 2/m sum_d (1 - cos(a k.n_d)) A_d over the three bond directions n_d.
    """
    k = np.asarray(k, dtype=np.float64)
    dyn = np.zeros((*k.shape[:-1], 2, 2))
    for d in BOND_DIRECTIONS:
        phase = spacing * (k[..., 0] * d[0] + k[..., 1] * d[1])
        dyn += (2.0 / mass) * (1.0 - np.cos(phase))[..., None, None] * bond_stiffness_matrix(d, k_normal, k_shear)
    return dyn


def max_angular_frequency(spacing: float, k_normal: float, k_shear: float, mass: float) -> float:
    """Highest angular frequency [rad/s] of the infinite lattice, from its dispersion relation.

    A finite plate or a cut bond only removes springs (positive semi-definite terms) from the
    stiffness, so by the Rayleigh quotient its highest frequency is never larger.
    """
    g = np.linspace(-2 * np.pi / spacing, 2 * np.pi / spacing, 241)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    special = np.array(
        [
            [4 * np.pi / (3 * spacing), 0.0],
            [0.0, 2 * np.pi / (SQRT3 * spacing)],
            [np.pi / spacing, np.pi / (SQRT3 * spacing)],
        ]
    )
    dyn = dynamical_matrix(np.concatenate([grid, special]), spacing, k_normal, k_shear, mass)
    return float(np.sqrt(np.linalg.eigvalsh(dyn)[:, -1].max()))


def critical_time_step(spacing: float, k_normal: float, k_shear: float, mass: float) -> float:
    """Stability limit [s] of explicit central differences: dt < 2 / omega_max."""
    return 2.0 / max_angular_frequency(spacing, k_normal, k_shear, mass)
