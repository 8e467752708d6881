"""Explicit central-difference time stepping of the triangular spring lattice, batched in torch.

Equation of motion per node (mass m, mass-proportional damping alpha):

    m u'' + alpha m u' = F_int(u) + f_ext,

    u_{n+1} = [2 u_n - (1 - alpha dt/2) u_{n-1} + dt^2/m (F_int(u_n) + f_ext,n)] / (1 + alpha dt/2).

F_int sums, over every bond (i, j) of direction n, the force A (u_j - u_i) on i and its opposite
on j, with A = (k_n - k_s) n n^T + k_s I (normal + shear spring). Bonds cut by a crack carry a
weight 0. All plates of a batch step together; the same code runs on CPU and CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from crackscope.physics.lattice import BondFamily, TriangularLattice, bond_stiffness_matrix


@dataclass
class _FamilyTerm:
    family: BondFamily
    a_xx: float
    a_xy: float
    a_yy: float
    weight: torch.Tensor | None  # (B, 1, r, c) 1 = intact bond, 0 = cut; None = all intact


class LatticeSolver:
    """State (u_n, u_{n-1}) of a batch of plates and the update that advances it by dt.

    ``bond_weights`` maps family name -> (B, r, c) array of 0/1 (missing = all bonds intact);
    ``damping`` is alpha [1/s], a scalar or an (R, C) field (the sponge layer). ``backend``:
    "torch" (sliced tensor ops; any device), "numba" (fused CPU kernel, see
    :mod:`crackscope.physics.kernels`) or "auto" (numba on CPU when available, else torch).
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
        bond_weights: dict[str, np.ndarray] | None = None,
        damping: float | np.ndarray = 0.0,
        device="cpu",
        dtype=torch.float32,
        backend: str = "auto",
    ):
        from crackscope.physics import kernels

        self.lattice, self.dt, self.mass = lattice, dt, mass
        self.k_normal, self.k_shear = k_normal, k_shear
        self.device, self.dtype = torch.device(device), dtype
        # The exponentially small precursors ahead of a wave front are subnormal numbers, which are
        # 10-100x slower on x86 CPUs; flushing them to zero changes nothing measurable.
        torch.set_flush_denormal(True)
        if backend not in ("auto", "torch", "numba"):
            raise ValueError(f"backend must be auto, torch or numba, got {backend!r}")
        on_cpu = self.device.type == "cpu"
        if backend == "numba" and not (on_cpu and kernels.HAVE_NUMBA):
            raise ValueError("the numba backend needs numba and a CPU device")
        self.backend = "numba" if backend != "torch" and on_cpu and kernels.HAVE_NUMBA else "torch"
        scale = dt * dt / mass
        bond_weights = bond_weights or {}
        self.terms = []
        for fam in lattice.families:
            a = bond_stiffness_matrix(fam.direction, k_normal, k_shear) * scale
            w = bond_weights.get(fam.name)
            if w is not None:
                w = torch.as_tensor(np.asarray(w), dtype=dtype, device=self.device).unsqueeze(1)
            self.terms.append(_FamilyTerm(fam, float(a[0, 0]), float(a[0, 1]), float(a[1, 1]), w))
        rows, cols = lattice.shape
        # Both backends keep the state padded by one zero node; u and u_prev are interior views.
        self._u_pad = torch.zeros((batch, 2, rows + 2, cols + 2), dtype=dtype, device=self.device)
        self._u_prev_pad = torch.zeros_like(self._u_pad)
        alpha = np.broadcast_to(np.asarray(damping, dtype=np.float64), lattice.shape)
        self._damped = bool(np.any(alpha != 0))
        c = alpha * dt / 2.0
        self._damp_prev = torch.as_tensor(1.0 - c, dtype=dtype, device=self.device)
        self._damp_next = torch.as_tensor(1.0 / (1.0 + c), dtype=dtype, device=self.device)
        if self.backend == "numba":
            npdt = np.float64 if dtype == torch.float64 else np.float32
            self._weights = np.ascontiguousarray(
                kernels.neighbour_weights(lattice, bond_weights or None, batch), dtype=npdt
            )
            coef = [bond_stiffness_matrix(d, k_normal, k_shear) * scale for d in kernels.NEIGHBOUR_DIRECTIONS]
            self._coef = np.array([[a[0, 0], a[0, 1], a[1, 1]] for a in coef], dtype=npdt)
            self._two = npdt(2.0)
            self._damp_prev_np = np.ascontiguousarray(self._damp_prev.numpy())
            self._damp_next_np = np.ascontiguousarray(self._damp_next.numpy())
        self.steps_done = 0

    def padded_index(self, rows, cols) -> torch.Tensor:
        """Flat indices of nodes (rows, cols) in the padded state, for :meth:`read_nodes`."""
        width = self.lattice.n_cols + 2
        return torch.as_tensor([(r + 1) * width + c + 1 for r, c in zip(rows, cols)], device=self.device)

    def read_nodes(self, padded_index: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Displacements u_n (B, 2, N) of the nodes given by :meth:`padded_index` (one gather)."""
        flat = self._u_pad.view(self._u_pad.shape[0], 2, -1)
        return (
            torch.index_select(flat, 2, padded_index, out=out)
            if out is not None
            else flat.index_select(2, padded_index)
        )

    @property
    def u(self) -> torch.Tensor:
        """Displacements u_n [m], (B, 2, R, C)."""
        return self._u_pad[:, :, 1:-1, 1:-1]

    @u.setter
    def u(self, value: torch.Tensor) -> None:
        self._u_pad[:, :, 1:-1, 1:-1] = value

    @property
    def u_prev(self) -> torch.Tensor:
        """Displacements u_{n-1} [m], (B, 2, R, C)."""
        return self._u_prev_pad[:, :, 1:-1, 1:-1]

    @u_prev.setter
    def u_prev(self, value: torch.Tensor) -> None:
        self._u_prev_pad[:, :, 1:-1, 1:-1] = value

    def scaled_internal_force(self, u: torch.Tensor) -> torch.Tensor:
        """dt^2/m * F_int(u), for u of shape (B, 2, R, C)."""
        f = torch.zeros_like(u)
        for t in self.terms:
            fam = t.family
            d = fam.second(u) - fam.first(u)
            dx, dy = d[:, 0:1], d[:, 1:2]
            if t.a_xy == 0.0:
                fb = torch.cat([t.a_xx * dx, t.a_yy * dy], dim=1)
            else:
                fb = torch.cat([t.a_xx * dx + t.a_xy * dy, t.a_xy * dx + t.a_yy * dy], dim=1)
            if t.weight is not None:
                fb = fb * t.weight
            fam.first(f).add_(fb)
            fam.second(f).sub_(fb)
        return f

    def step(
        self,
        scaled_external_force: torch.Tensor | None = None,
        *,
        point_force: tuple[int, int, float, float] | None = None,
    ) -> None:
        """Advance one time step.

        External forces come pre-scaled by dt^2/m: a field (B, 2, R, C), and/or ``point_force`` =
        (row, col, fx, fy) applied at one node of every plate.
        """
        if self.backend == "numba":
            from crackscope.physics import kernels

            if self._damped:
                kernels.step_damped_inplace(
                    self._u_pad.numpy(),
                    self._u_prev_pad.numpy(),
                    self._weights,
                    self._coef,
                    self._two,
                    self._damp_prev_np,
                    self._damp_next_np,
                )
            else:
                kernels.step_inplace(
                    self._u_pad.numpy(), self._u_prev_pad.numpy(), self._weights, self._coef, self._two
                )
            if scaled_external_force is not None:
                force = scaled_external_force * self._damp_next if self._damped else scaled_external_force
                self.u_prev.add_(force)
            if point_force is not None:
                r, c, fx, fy = point_force
                gain = float(self._damp_next[r, c]) if self._damped else 1.0
                self.u_prev[:, 0, r, c] += fx * gain
                self.u_prev[:, 1, r, c] += fy * gain
        else:
            acc = self.scaled_internal_force(self.u)
            if scaled_external_force is not None:
                acc = acc + scaled_external_force
            if point_force is not None:
                r, c, fx, fy = point_force
                acc[:, 0, r, c] += fx
                acc[:, 1, r, c] += fy
            if self._damped:
                u_next = (2.0 * self.u - self._damp_prev * self.u_prev + acc) * self._damp_next
            else:
                u_next = 2.0 * self.u - self.u_prev + acc
            self.u_prev = u_next
        # the buffer that now holds u_{n+1} becomes u; the old u becomes u_prev
        self._u_pad, self._u_prev_pad = self._u_prev_pad, self._u_pad
        self.steps_done += 1

    def stiffness_times(self, u: torch.Tensor) -> torch.Tensor:
        """K u [N]: the lattice's stiffness matrix applied to displacements u (B, 2, R, C)."""
        return -self.scaled_internal_force(u) * (self.mass / self.dt**2)

    def potential_energy(self, u: torch.Tensor) -> torch.Tensor:
        """Strain energy 1/2 u^T K u [J] per plate."""
        return 0.5 * (u * self.stiffness_times(u)).sum(dim=(1, 2, 3))

    def energy(self) -> torch.Tensor:
        """Discrete total energy [J] per plate, exactly conserved by undamped central differences.

        E_{n-1/2} = m/2 |(u_n - u_{n-1})/dt|^2 + 1/2 u_n^T K u_{n-1}; it follows from multiplying the
        update by (u_{n+1} - u_{n-1}) and needs K symmetric (every bond acts equally on both ends).
        """
        v = (self.u - self.u_prev) / self.dt
        kinetic = 0.5 * self.mass * v.pow(2).sum(dim=(1, 2, 3))
        return kinetic + 0.5 * (self.u * self.stiffness_times(self.u_prev)).sum(dim=(1, 2, 3))
