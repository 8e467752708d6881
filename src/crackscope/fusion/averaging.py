"""Averaging-based combinations that tame conflicting evidence (Murphy 2000; Deng et al. 2004).

Both replace the n masses by one weighted-average evidence (WAE)

    m̄(A) = Σ_i w_i m_i(A),   Σ_i w_i = 1,

and combine it with itself by Dempster's rule n − 1 times (n copies: m̄ ⊕ m̄ ⊕ ... ⊕ m̄).

* Murphy: equal weights w_i = 1/n.
  Murphy, "Combining belief functions when evidence conflicts", Decision Support Systems 29
  (2000) 1-9.
* Deng et al.: weights from how much each mass is supported by the others,
      Sim_ij = 1 − d_J(m_i, m_j)         (similarity, Jousselme distance)
      Sup_i  = Σ_{j != i} Sim_ij          (support)
      w_i    = Sup_i / Σ_j Sup_j          (credibility)
  (equal weights when every support is 0, i.e. all masses pairwise at distance 1).
  Deng, Shi, Zhu, Liu, "Combining belief functions based on distance of evidence", Decision
  Support Systems 38 (2004) 489-493.

With batches every row gets its own weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from crackscope.fusion._common import batch_shape, output, prepare
from crackscope.fusion.dempster import TOTAL_CONFLICT_TOLERANCE, combine_with_itself
from crackscope.fusion.distance import jousselme_distance
from crackscope.fusion.mass import MassFunction

__all__ = ["weighted_average", "murphy_combination", "deng_combination", "deng_credibility"]


def weighted_average(masses: Sequence[MassFunction], weights: np.ndarray) -> MassFunction:
    """m̄ = Σ_i w_i m_i; ``weights`` is (n,) or (n, N) (per row of a batch) and sums to 1 over i."""
    w = np.asarray(weights, dtype=np.float64)
    singletons = sum(w[i][..., None] * m.singletons for i, m in enumerate(masses))
    theta = sum(w[i] * m.theta for i, m in enumerate(masses))
    return MassFunction(singletons, theta, masses[0].labels)


def murphy_combination(masses: Sequence[Any], *, tol: float = TOTAL_CONFLICT_TOLERANCE) -> MassFunction | np.ndarray:
    """Murphy's rule: the plain average m̄ = (1/n) Σ m_i combined with itself n − 1 times.

    ``masses`` is a sequence of n MassFunctions or probability arrays ((K,) or (N, K) each).
    Returns a MassFunction if any input was one, else an array of the inputs' shape.
    """
    items, wants_mass = prepare(masses, "murphy_combination")
    n = len(items)
    average = weighted_average(items, np.full(n, 1.0 / n))
    return output(combine_with_itself(average, n, tol), wants_mass)


def deng_credibility(masses: Sequence[Any]) -> np.ndarray:
    """Deng et al.'s credibility weights w_i = Sup_i / Σ_j Sup_j, shape (n,) or (n, N).

    Sup_i = Σ_{j != i} (1 − d_J(m_i, m_j)). Rows where every support is 0 get equal weights.
    """
    items, _ = prepare(masses, "deng_credibility")
    n = len(items)
    support = np.zeros((n, *batch_shape(items)))
    for i in range(n):
        for j in range(i + 1, n):
            similarity = 1.0 - np.asarray(jousselme_distance(items[i], items[j]))
            support[i] += similarity
            support[j] += similarity
    total = support.sum(axis=0)
    safe_total = np.where(total > 0, total, 1.0)
    return np.where(total > 0, support / safe_total, 1.0 / n)


def deng_combination(masses: Sequence[Any], *, tol: float = TOTAL_CONFLICT_TOLERANCE) -> MassFunction | np.ndarray:
    """Deng et al.'s rule: the credibility-weighted average combined with itself n − 1 times.

    Same arguments and result type as :func:`murphy_combination`.
    """
    items, wants_mass = prepare(masses, "deng_combination")
    average = weighted_average(items, deng_credibility(items))
    return output(combine_with_itself(average, len(items), tol), wants_mass)
