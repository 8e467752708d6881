"""The harmonics paper's conflict-weighted multi-sensor rule.

Conflict between sensors i and j, from their most-supported ("top") labels t_i, t_j and the
plausibilities Pl(θ) = m(θ) + m(Θ) (equal to the masses for Bayesian masses):

    c_ij = 1 − Pl_i(t_j) · Pl_j(t_i)                                    in [0, 1]

* Tops agree (t_i = t_j = t):   c_ij = 1 − m_i(t) m_j(t); the smaller the product of the two
  top supports, the larger the conflict.
* Tops differ (t_i != t_j):     with the support ratios r_i = m_i(t_i) / m_i(t_j) >= 1 and
  r_j = m_j(t_j) / m_j(t_i) >= 1 (each sensor's support for its own top over its support for the
  other's), c_ij = 1 − m_i(t_i) m_j(t_j) / (r_i r_j) = 1 − m_i(t_j) m_j(t_i): the larger the
  ratios, the larger the conflict; it reaches 1 when either sensor gives the other's top 0.

Ties for the top: the tied label that gives the least conflict is used. A sensor's total
conflict is C_k = Σ_{j != k} c_kj and S = Σ_{i<j} c_ij; its weight is the conflict *among the
other sensors*, normalised:

    w_k = (S − C_k) / ((n − 2) S)          (n >= 3; Σ_k w_k = 1)

so w_k < w_l exactly when C_k > C_l (the sensor in more conflict with the others weighs less),
and for three sensors w_k = c_ij / (c_12 + c_13 + c_23) with {i, j} the other two, as in the
paper. Equal weights when n <= 2 (conflict among "the others" is then undefined) or S = 0.
The weighted-average evidence m̄ = Σ_k w_k m_k is combined with itself by Dempster's rule
``combinations`` times (default n − 1, i.e. n copies, as Murphy and Deng et al. do).

Paper: "Multi-Harmonic Nonlinear Ultrasonic Fusion with Deep Learning for Subtle Parameter
Identification of Micro-Crack Groups", section 3.6 (conflict from the labels each sensor
supports most; products of top supports when the tops agree, support ratios when they differ;
weights by normalising the conflicts; weighted average fused by the classical Dempster rule).
The paper's own conflict function is unbounded and its equations did not survive extraction; the
bounded c_ij above is ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from crackscope.errors import InputError
from crackscope.fusion._common import batch_shape, output, prepare
from crackscope.fusion.averaging import weighted_average
from crackscope.fusion.dempster import TOTAL_CONFLICT_TOLERANCE, combine_with_itself
from crackscope.fusion.harmonics import supported_labels
from crackscope.fusion.mass import MassFunction

__all__ = ["sensor_conflict", "sensor_conflict_matrix", "conflict_sensor_weights", "conflict_weighted_combination"]


def _best_at_tops(of: MassFunction, tops_of: MassFunction) -> np.ndarray:
    """Pl_of(t) at the top label t of ``tops_of`` (the largest over tied tops), shape (...)."""
    at_tops = np.where(supported_labels(tops_of), of.plausibility(), -np.inf)
    return at_tops.max(axis=-1)


def sensor_conflict(m1: Any, m2: Any) -> float | np.ndarray:
    """c_12 = 1 − Pl_1(t_2) Pl_2(t_1) from the two sensors' top labels t_1, t_2; in [0, 1].

    A float for two single masses, an (N,) array when either is a batch.
    """
    (a, b), _ = prepare((m1, m2), "sensor_conflict", minimum=2)
    c = np.clip(1.0 - _best_at_tops(a, b) * _best_at_tops(b, a), 0.0, 1.0)
    return float(c) if c.ndim == 0 else c


def sensor_conflict_matrix(masses: Sequence[Any]) -> np.ndarray:
    """Pairwise c_ij, shape (n, n) or (N, n, n) for batches; zero diagonal, symmetric."""
    items, _ = prepare(masses, "sensor_conflict_matrix")
    n = len(items)
    c = np.zeros((*batch_shape(items), n, n))
    for i in range(n):
        for j in range(i + 1, n):
            c[..., i, j] = c[..., j, i] = sensor_conflict(items[i], items[j])
    return c


def conflict_sensor_weights(masses: Sequence[Any]) -> np.ndarray:
    """w_k = (S − C_k) / ((n − 2) S), shape (n,) or (n, N); equal weights for n <= 2 or S = 0."""
    c = sensor_conflict_matrix(masses)
    n = c.shape[-1]
    per_sensor = c.sum(axis=-1)  # C_k, (..., n)
    total = per_sensor.sum(axis=-1, keepdims=True) / 2.0  # S, (..., 1)
    if n <= 2:
        weights = np.full(per_sensor.shape, 1.0 / n)
    else:
        safe = np.where(total > 0, total, 1.0)
        weights = np.where(total > 0, (total - per_sensor) / ((n - 2) * safe), 1.0 / n)
    return np.moveaxis(weights, -1, 0)


def conflict_weighted_combination(
    masses: Sequence[Any], *, combinations: int | None = None, tol: float = TOTAL_CONFLICT_TOLERANCE
) -> MassFunction | np.ndarray:
    """The paper's multi-sensor rule: m̄ = Σ_k w_k m_k (conflict weights) combined with itself.

    ``masses``: n MassFunctions or probability arrays ((K,) or (N, K)), one per sensor.
    ``combinations``: how many times m̄ is combined with itself (default n − 1). Returns a
    MassFunction if any input was one, else an array of the inputs' shape.
    """
    items, wants_mass = prepare(masses, "conflict_weighted_combination")
    times = len(items) - 1 if combinations is None else combinations
    if isinstance(times, bool) or not isinstance(times, (int, np.integer)) or times < 0:
        raise InputError(f"combinations must be an integer >= 0 (got {combinations!r})")
    average = weighted_average(items, conflict_sensor_weights(items))
    return output(combine_with_itself(average, int(times) + 1, tol), wants_mass)
