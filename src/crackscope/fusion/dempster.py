"""Dempster's rule of combination (orthogonal sum) on singleton + Θ frames.

For two masses m1, m2 the unnormalised products that land on each focal element are

    q(θ_k) = m1(θ_k) m2(θ_k) + m1(θ_k) m2(Θ) + m1(Θ) m2(θ_k)
    q(Θ)   = m1(Θ) m2(Θ)

(the intersections {θ_k}∩{θ_k}, {θ_k}∩Θ, Θ∩{θ_k}, Θ∩Θ). Every other product, m1(θ_j) m2(θ_k)
with j != k, lands on the empty set; its total is the conflict coefficient

    K = Σ_{j != k} m1(θ_j) m2(θ_k) = 1 − Σ_k q(θ_k) − q(Θ),

and Dempster's rule renormalises by the agreement 1 − K:  (m1 ⊕ m2)(A) = q(A) / (1 − K).
The rule is commutative and associative, and the vacuous mass m(Θ) = 1 is its neutral element.
When K = 1 (no product survives) the rule is undefined: :class:`~crackscope.errors.InputError`.

Dempster, "Upper and lower probabilities induced by a multivalued mapping", Ann. Math. Statist.
38 (1967) 325-339; Shafer, "A Mathematical Theory of Evidence", Princeton (1976).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crackscope.errors import InputError
from crackscope.fusion._common import first_row, output, prepare
from crackscope.fusion.mass import MassFunction

__all__ = ["TOTAL_CONFLICT_TOLERANCE", "conflict", "combine_dempster", "combine_with_itself"]

TOTAL_CONFLICT_TOLERANCE = 1e-12
"""Agreement 1 − K at or below which two masses count as totally conflicting (K = 1)."""


def _products(m1: MassFunction, m2: MassFunction) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalised q(θ_k) (..., K) and q(Θ) (...) of the orthogonal sum."""
    q_singletons = (
        m1.singletons * m2.singletons + m1.singletons * m2.theta[..., None] + m1.theta[..., None] * m2.singletons
    )
    return q_singletons, m1.theta * m2.theta


def orthogonal_sum(m1: MassFunction, m2: MassFunction, tol: float = TOTAL_CONFLICT_TOLERANCE) -> MassFunction:
    """m1 ⊕ m2 for two MassFunctions on the same frame (no coercion; see :func:`combine_dempster`)."""
    q_singletons, q_theta = _products(m1, m2)
    agreement = q_singletons.sum(axis=-1) + q_theta  # 1 − K, summed from the surviving products
    total = agreement <= tol
    if np.any(total):
        k = float(1.0 - np.min(agreement))
        raise InputError(
            f"total conflict{first_row(total)}: conflict coefficient K = {k!r} (1 − K <= {tol:g}); "
            "Dempster's rule is undefined when the sources share no label"
        )
    return MassFunction(q_singletons / agreement[..., None], q_theta / agreement, m1.labels)


def conflict(m1: Any, m2: Any) -> float | np.ndarray:
    """Conflict coefficient K = Σ_{j != k} m1(θ_j) m2(θ_k) between two masses, in [0, 1].

    A float for two single masses, an (N,) array when either is a batch. K = 0 when the masses
    cannot contradict each other, K = 1 when every pair of their focal elements is disjoint.
    """
    (a, b), _ = prepare((m1, m2), "conflict", minimum=2)
    q_singletons, q_theta = _products(a, b)
    k = np.clip(1.0 - (q_singletons.sum(axis=-1) + q_theta), 0.0, 1.0)
    return float(k) if k.ndim == 0 else k


def combine_dempster(*masses: Any, tol: float = TOTAL_CONFLICT_TOLERANCE) -> MassFunction | np.ndarray:
    """Dempster's orthogonal sum m1 ⊕ m2 ⊕ ... ⊕ mn of any number of masses.

    Each argument is a :class:`MassFunction` or an array of probabilities ((K,) or (N, K),
    NumPy or torch). Batches are combined row by row; a single mass is used for every row. The
    result is a MassFunction if any argument was one, else an array of the inputs' shape.
    Total conflict (1 − K <= ``tol``) in any row raises :class:`~crackscope.errors.InputError`
    naming the row.
    """
    if len(masses) == 1 and _is_sequence_of_masses(masses[0]):
        raise InputError("combine_dempster takes the masses as separate arguments: combine_dempster(*masses)")
    items, wants_mass = prepare(masses, "combine_dempster")
    result = items[0]
    for m in items[1:]:
        result = orthogonal_sum(result, m, tol)
    return output(result, wants_mass)


def _is_sequence_of_masses(x: Any) -> bool:
    """True for a list/tuple of masses (a likely ``combine_dempster(list)`` slip), not of numbers."""
    return isinstance(x, (list, tuple)) and any(isinstance(e, MassFunction) or np.ndim(e) > 0 for e in x)


def combine_with_itself(mass: MassFunction, copies: int, tol: float = TOTAL_CONFLICT_TOLERANCE) -> MassFunction:
    """m ⊕ m ⊕ ... ⊕ m with ``copies`` copies of m (``copies − 1`` combinations; 1 returns m)."""
    if copies < 1:
        raise InputError(f"copies must be >= 1 (got {copies!r})")
    result = mass
    for _ in range(copies - 1):
        result = orthogonal_sum(result, mass, tol)
    return result
