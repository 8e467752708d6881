"""Clapping (contact-nonlinear) crack bonds on top of the linear lattice solver.

A micro-crack does not cut the bonds it crosses: each becomes a *contact bond*. With the bond's
elongation along its direction n, ``delta = n . (u_j - u_i)`` (positive = opening), full normal
stiffness ``k``, tension stiffness ``k_t = r k`` (``0 <= r < 1``) and initial gap ``g >= 0`` (the
crack faces touch only once the bond is shortened by g), the bond's normal tension is

    f(delta) = k_t delta                              for delta >  -g   (faces apart)
    f(delta) = k_t delta + (k - k_t) (delta + g)      for delta <= -g   (faces in contact)

continuous, with f(0) = 0. Relative to the linear bond ``k delta`` that the solver already applies,
the correction tension is

    c(delta) = f(delta) - k delta = -(k - k_t) (delta - min(delta + g, 0)) = -(k - k_t) max(delta, -g),

i.e. a clipped ramp. With g = 0 it is a half-wave rectifier (bilinear law): a sinusoidal delta
gives the fundamental, a static offset and EVEN harmonics only. g > 0 moves the kink off the
rest state, the clipping becomes asymmetric and ODD harmonics (3rd) appear as well.

Only the normal spring follows the contact law; the bond's shear spring is kept as it is (a rough,
interlocked crack whose faces cannot slide freely). That keeps the force a continuous function of
the displacements (switching the shear spring with the contact state would make it jump) and
conservative: the bond's normal energy is the piecewise quadratic whose derivative is f. For
steel (nu = 0.3) the shear spring is 1.9 % of the normal one, so this choice barely matters.

Stability: the tangent stiffness of a contact bond lies between k_t and k, so the plate's
stiffness is never larger than the intact lattice's; the potential stays convex with a gradient
Lipschitz constant no larger than the linear one, and the linear stability limit
dt < 2 / omega_max (which the configured dt already satisfies, with margin cfl < 1) still holds.

Implementation: the linear solver (numba kernel or torch) advances every plate with all bonds
intact; then this module adds, bond by bond, the correction ``c(delta_n) n`` (pre-scaled by
dt^2/m and by the node's damping factor, exactly as a point force) to u_{n+1}, with delta_n taken
from u_n. The update is the same central-difference step as if c had been part of F_int(u_n).
Only the few crack bonds are visited: a serial numba loop (or torch index_add on other devices).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from crackscope.physics.cracks import Crack, bonds_crossing
from crackscope.physics.kernels import HAVE_NUMBA
from crackscope.physics.lattice import TriangularLattice
from crackscope.physics.solver import LatticeSolver


def contact_tension(delta, k: float, tension_ratio: float, gap: float):
    """Normal tension f(delta) [N] of a contact bond (positive = pulling its ends together)."""
    delta = np.asarray(delta, dtype=np.float64)
    k_t = tension_ratio * k
    return np.where(delta > -gap, k_t * delta, k_t * delta + (k - k_t) * (delta + gap))


def contact_correction(delta, k: float, tension_ratio: float, gap: float):
    """Correction tension c(delta) = f(delta) - k delta = -(k - k_t) max(delta, -gap) [N]."""
    delta = np.asarray(delta, dtype=np.float64)
    return -(1.0 - tension_ratio) * k * np.maximum(delta, -gap)


@dataclass(frozen=True)
class CrackBonds:
    """The lattice bonds crossed by cracks, one entry per (plate, bond)."""

    plate: np.ndarray  # (E,) int64 plate index in the batch
    node_i: np.ndarray  # (E, 2) int64 (row, col) of the bond's first node
    node_j: np.ndarray  # (E, 2) int64 (row, col) of the second node
    direction: np.ndarray  # (E, 2) float64 unit vector from i to j
    crack: np.ndarray  # (E,) int64 index of the crack (within its plate) that crosses the bond

    def __len__(self) -> int:
        return int(self.plate.size)

    def count(self, batch: int) -> np.ndarray:
        """(batch,) number of contact bonds per plate."""
        return np.bincount(self.plate, minlength=batch)


@lru_cache(maxsize=8)
def _family_geometry(lattice: TriangularLattice):
    """Per family: end positions (r, c, 2), node indices of both ends, the rows' y and the direction."""
    rows, cols = np.indices(lattice.shape)
    out = []
    for fam in lattice.families:
        p_i = np.moveaxis(fam.first(lattice.positions), 0, -1)
        p_j = np.moveaxis(fam.second(lattice.positions), 0, -1)
        ends = np.stack([fam.first(rows), fam.first(cols), fam.second(rows), fam.second(cols)], axis=-1)
        out.append((p_i, p_j, ends, p_i[:, 0, 1].copy(), fam.direction))
    return out


def bonds_crossed(lattice: TriangularLattice, crack: Crack) -> list[tuple[int, int, int, int, float, float]]:
    """Every bond (r_i, c_i, r_j, c_j, n_x, n_y) that ``crack`` properly crosses, in a fixed order."""
    a = lattice.spacing
    out = []
    for p_i, p_j, ends, row_y, direction in _family_geometry(lattice):
        for seg in crack.segments:
            found = bonds_crossing(p_i, p_j, row_y, seg, a)
            if found is None:
                continue
            block, hit = found
            for r_i, c_i, r_j, c_j in ends[block][hit].tolist():
                out.append((r_i, c_i, r_j, c_j, float(direction[0]), float(direction[1])))
    return list(dict.fromkeys(out))  # a kinked crack may cross one bond with two segments


def crack_bonds(lattice: TriangularLattice, cracks_per_plate: Sequence[Sequence[Crack]]) -> CrackBonds:
    """The contact bonds of a batch of plates (see :class:`CrackBonds`)."""
    plate, ni, nj, dirs, which = [], [], [], [], []
    for b, cracks in enumerate(cracks_per_plate):
        for k, crack in enumerate(cracks):
            for r_i, c_i, r_j, c_j, nx, ny in bonds_crossed(lattice, crack):
                plate.append(b)
                ni.append((r_i, c_i))
                nj.append((r_j, c_j))
                dirs.append((nx, ny))
                which.append(k)
    return CrackBonds(
        plate=np.asarray(plate, dtype=np.int64),
        node_i=np.asarray(ni, dtype=np.int64).reshape(-1, 2),
        node_j=np.asarray(nj, dtype=np.int64).reshape(-1, 2),
        direction=np.asarray(dirs, dtype=np.float64).reshape(-1, 2),
        crack=np.asarray(which, dtype=np.int64),
    )


def _apply_contact(u_old, u_new, plate, idx_i, idx_j, nx, ny, gain_i, gain_j, stiff, gap):
    """u_new += dt^2/m * gain * c(delta(u_old)) n on both ends of every contact bond (flat padded state).

    u_old, u_new: (B, 2, P); stiff = (k - k_t) dt^2/m; gap [m]. Serial, so bonds sharing a node
    accumulate in a fixed order.
    """
    for e in range(plate.shape[0]):
        b, i, j = plate[e], idx_i[e], idx_j[e]
        d = nx[e] * (u_old[b, 0, j] - u_old[b, 0, i]) + ny[e] * (u_old[b, 1, j] - u_old[b, 1, i])
        t = -stiff * max(d, -gap)
        fx, fy = t * nx[e], t * ny[e]
        u_new[b, 0, i] += gain_i[e] * fx
        u_new[b, 1, i] += gain_i[e] * fy
        u_new[b, 0, j] -= gain_j[e] * fx
        u_new[b, 1, j] -= gain_j[e] * fy


if HAVE_NUMBA:
    from numba import njit

    apply_contact_inplace = njit(cache=True, nogil=True)(_apply_contact)
else:  # pragma: no cover
    apply_contact_inplace = _apply_contact


class ContactLatticeSolver(LatticeSolver):
    """A :class:`LatticeSolver` whose crack bonds follow the contact law, with a signed source per plate.

    ``contact``: the plates' :class:`CrackBonds`; ``tension_ratio`` r and ``gap`` g [m] as in the
    module doc. The linear bonds are all intact (``bond_weights`` is not used). ``step(source=...)``
    applies the point force ``sign_b * (fx, fy)`` at ``source_node`` of plate b (``source_sign`` (B,),
    e.g. +1 / -1 for pulse inversion).
    """

    def __init__(
        self,
        lattice: TriangularLattice,
        k_normal: float,
        k_shear: float,
        mass: float,
        dt: float,
        batch: int,
        *,
        contact: CrackBonds,
        tension_ratio: float,
        gap: float,
        source_node: tuple[int, int],
        source_sign: Sequence[float],
        damping=0.0,
        device="cpu",
        dtype=torch.float32,
        backend: str = "auto",
    ):
        super().__init__(
            lattice,
            k_normal,
            k_shear,
            mass,
            dt,
            batch,
            bond_weights=None,
            damping=damping,
            device=device,
            dtype=dtype,
            backend=backend,
        )
        scale = dt * dt / mass
        self.stiff = (1.0 - tension_ratio) * k_normal * scale
        self.gap = float(gap)
        width = lattice.n_cols + 2
        gain = np.broadcast_to(self._damp_next.cpu().numpy().astype(np.float64), lattice.shape)
        ci, cj = contact.node_i, contact.node_j
        self._np = self.backend == "numba"
        npdt = np.float64 if dtype == torch.float64 else np.float32
        self._plate = np.ascontiguousarray(contact.plate, dtype=np.int64)
        self._idx_i = np.ascontiguousarray((ci[:, 0] + 1) * width + ci[:, 1] + 1, dtype=np.int64)
        self._idx_j = np.ascontiguousarray((cj[:, 0] + 1) * width + cj[:, 1] + 1, dtype=np.int64)
        self._nx = np.ascontiguousarray(contact.direction[:, 0], dtype=npdt)
        self._ny = np.ascontiguousarray(contact.direction[:, 1], dtype=npdt)
        self._gain_i = np.ascontiguousarray(gain[ci[:, 0], ci[:, 1]] if len(contact) else np.zeros(0), dtype=npdt)
        self._gain_j = np.ascontiguousarray(gain[cj[:, 0], cj[:, 1]] if len(contact) else np.zeros(0), dtype=npdt)
        self._stiff_np, self._gap_np = npdt(self.stiff), npdt(self.gap)
        self.n_contact = len(contact)
        if not self._np:
            dev = self.device
            self._t = {
                k: torch.as_tensor(getattr(self, "_" + k), device=dev)
                for k in ("plate", "idx_i", "idx_j", "nx", "ny", "gain_i", "gain_j")
            }
        r, c = source_node
        self._src = (r, c)
        self._src_gain = float(gain[r, c])
        self._src_sign = torch.as_tensor(np.asarray(source_sign, dtype=np.float64), dtype=dtype, device=self.device)
        if self._src_sign.shape != (batch,):
            raise ValueError(f"source_sign needs one sign per plate ({batch}), got shape {tuple(self._src_sign.shape)}")

    def step(self, scaled_external_force=None, *, point_force=None, source: tuple[float, float] | None = None) -> None:
        """Advance one step; ``source`` = (fx, fy) pre-scaled by dt^2/m, applied with each plate's sign."""
        super().step(scaled_external_force, point_force=point_force)
        # After the swap u holds u_{n+1} and u_prev holds u_n.
        if source is not None and (source[0] != 0.0 or source[1] != 0.0):
            r, c = self._src
            self.u[:, 0, r, c] += self._src_sign * (source[0] * self._src_gain)
            self.u[:, 1, r, c] += self._src_sign * (source[1] * self._src_gain)
        if self.n_contact:
            self._contact()

    def _contact(self) -> None:
        batch = self._u_pad.shape[0]
        new = self._u_pad.view(batch, 2, -1)
        old = self._u_prev_pad.view(batch, 2, -1)
        if self._np:
            apply_contact_inplace(
                old.numpy(),
                new.numpy(),
                self._plate,
                self._idx_i,
                self._idx_j,
                self._nx,
                self._ny,
                self._gain_i,
                self._gain_j,
                self._stiff_np,
                self._gap_np,
            )
            return
        t = self._t
        ui = old[t["plate"], :, t["idx_i"]]  # (E, 2)
        uj = old[t["plate"], :, t["idx_j"]]
        d = t["nx"] * (uj[:, 0] - ui[:, 0]) + t["ny"] * (uj[:, 1] - ui[:, 1])
        tension = -self.stiff * torch.clamp(d, min=-self.gap)
        fx, fy = tension * t["nx"], tension * t["ny"]
        zero, one = torch.zeros_like(t["plate"]), torch.ones_like(t["plate"])
        for comp, val in ((zero, fx), (one, fy)):
            new.index_put_((t["plate"], comp, t["idx_i"]), val * t["gain_i"], accumulate=True)
            new.index_put_((t["plate"], comp, t["idx_j"]), -val * t["gain_j"], accumulate=True)
