"""A reference solver for the speed comparison of benchmarks/simulate.py (a helper it loads from this
file, not a study of its own): 2-D isotropic elastic velocity-stress FD in Devito.

Staggered grid (Virieux), explicit first-order-in-time leapfrog, a point force source at the
left-edge middle of the plate, no absorbing boundary (the plate has none either). Five fields are
updated per grid point and step: vx, vy, txx, tyy, txy. Only the speed matters here; the solver is
not meant to reproduce crackscope's wave field.

Devito reads DEVITO_LANGUAGE / DEVITO_ARCH / OMP_NUM_THREADS when it is imported, so call
:func:`configure_env` *before* importing this module's solver (``run`` does the import lazily).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field


def configure_env(threads: int) -> None:
    """Compiled C + OpenMP backend with gcc on ``threads`` threads (set before Devito is imported)."""
    os.environ.setdefault("DEVITO_LANGUAGE", "openmp")
    os.environ.setdefault("DEVITO_ARCH", "gcc")
    os.environ.setdefault("DEVITO_LOGGING", "WARNING")
    os.environ["OMP_NUM_THREADS"] = str(threads)


@dataclass
class DevitoResult:
    devito_version: str
    language: str
    compiler: str
    space_order: int
    grid_shape: list[int]
    grid_points: int
    spacing_m: list[float]
    n_steps: int
    dt_s: float
    threads: int
    compile_seconds: float
    nthreads_arg: int | None = None  # the OpenMP thread count the operator was given
    max_abs_vx: float | None = None  # sanity check: the source did excite the grid
    seconds: list[float] = field(default_factory=list)  # wall time of op.apply per repeat
    devito_reported_seconds: list[float] = field(default_factory=list)
    fields_per_point: int = 5

    @property
    def best_seconds(self) -> float:
        return min(self.seconds)

    @property
    def point_updates_per_s(self) -> float:
        return self.grid_points * self.n_steps / self.best_seconds

    def to_dict(self) -> dict:
        d = asdict(self)
        d["best_seconds"] = self.best_seconds
        d["point_updates_per_s"] = self.point_updates_per_s
        return d


def lame_plane_stress(E: float, nu: float) -> tuple[float, float]:
    """(lambda', mu) of a plane-stress plate: lambda' = E nu / (1 - nu^2), mu = E / (2 (1 + nu))."""
    return E * nu / (1.0 - nu * nu), E / (2.0 * (1.0 + nu))


def ricker(t, f0: float):
    import numpy as np

    t0 = 1.0 / f0
    a = (math.pi * f0 * (np.asarray(t) - t0)) ** 2
    return (1.0 - 2.0 * a) * np.exp(-a)


def run(
    shape: tuple[int, int],
    extent: tuple[float, float],
    n_steps: int,
    *,
    E: float = 210e9,
    nu: float = 0.3,
    rho: float = 7850.0,
    f0: float = 1.0e9,
    space_order: int = 4,
    threads: int = 2,
    repeats: int = 3,
    cfl: float = 0.5,
) -> DevitoResult:
    """Build, compile and time the operator; returns timings of ``op.apply`` only (not compilation)."""
    configure_env(threads)
    import warnings

    import numpy as np

    try:  # Devito builds SymPy matrices of non-Expr objects, which SymPy >= 1.9 warns about on every operator
        from sympy.utilities.exceptions import SymPyDeprecationWarning

        warnings.filterwarnings("ignore", category=SymPyDeprecationWarning)
    except ImportError:
        pass
    import devito
    from devito import (
        Eq,
        Grid,
        Operator,
        SparseTimeFunction,
        TensorTimeFunction,
        VectorTimeFunction,
        diag,
        div,
        grad,
        solve,
    )

    lam, mu = lame_plane_stress(E, nu)
    b = 1.0 / rho
    c_p = math.sqrt((lam + 2 * mu) / rho)

    grid = Grid(shape=shape, extent=extent, dtype=np.float32)
    h = min(grid.spacing)
    # Staggered leapfrog stability: dt <= h / (c_p sqrt(d) sum|w_k|); sum|w_k| = 1 (order 2), 7/6 (order 4).
    weight_sum = {2: 1.0, 4: 7.0 / 6.0}.get(space_order, 1.4)
    dt = cfl * h / (c_p * math.sqrt(2.0) * weight_sum)

    v = VectorTimeFunction(name="v", grid=grid, space_order=space_order, time_order=1)
    tau = TensorTimeFunction(name="t", grid=grid, space_order=space_order, time_order=1)

    # Point force (x direction) on the left edge, half-way up, like crackscope's source.
    src = SparseTimeFunction(name="src", grid=grid, npoint=1, nt=n_steps + 1)
    src.coordinates.data[0, :] = [2 * grid.spacing[0], extent[1] / 2]
    src.data[:, 0] = ricker(np.arange(n_steps + 1) * dt, f0).astype(np.float32)

    pde_v = v.dt - b * div(tau)
    pde_tau = tau.dt - lam * diag(div(v.forward)) - mu * (grad(v.forward) + grad(v.forward).transpose(inner=False))
    eqs = [Eq(v.forward, solve(pde_v, v.forward)), Eq(tau.forward, solve(pde_tau, tau.forward))]
    s = grid.stepping_dim.spacing
    eqs += src.inject(field=v.forward[0], expr=src * s * b)
    op = Operator(eqs, name="ElasticFwd")

    t0 = time.perf_counter()
    op.cfunction  # JIT-compile now so that no timed apply pays for it
    compile_s = time.perf_counter() - t0

    def reset():
        for f in (*v, *tau.values()):
            f.data_with_halo[:] = 0.0

    # Warm-up: a short apply (loads the shared object, spins up the OpenMP pool).
    op.apply(time_m=0, time_M=min(10, n_steps) - 1, dt=dt, nthreads=threads)
    res = DevitoResult(
        devito_version=devito.__version__,
        language=str(devito.configuration["language"]),
        compiler=type(devito.configuration["compiler"]).__name__,
        space_order=space_order,
        grid_shape=list(shape),
        grid_points=int(np.prod(shape)),
        spacing_m=[float(x) for x in grid.spacing],
        n_steps=n_steps,
        dt_s=float(dt),
        threads=threads,
        compile_seconds=compile_s,
        nthreads_arg=op.arguments(time_M=0, dt=dt, nthreads=threads).get("nthreads"),
    )
    for _ in range(repeats):
        reset()
        t0 = time.perf_counter()
        summary = op.apply(time_m=0, time_M=n_steps - 1, dt=dt, nthreads=threads)
        res.seconds.append(time.perf_counter() - t0)
        try:
            res.devito_reported_seconds.append(float(sum(sec.time for sec in summary.values())))
        except Exception:  # the summary's layout is not part of Devito's stable API
            pass
    vx = np.asarray(v[0].data[0])
    if not np.all(np.isfinite(vx)):
        raise FloatingPointError("Devito wave field is not finite (unstable time step?)")
    res.max_abs_vx = float(np.abs(vx).max())
    return res
