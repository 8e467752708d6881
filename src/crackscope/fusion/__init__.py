"""Dempster–Shafer evidence fusion of classifier outputs (any classifier's probabilities).

Masses live on a frame of K labels, on the singletons {θ_k} and on the whole frame Θ
(ignorance); a softmax vector is a Bayesian mass (m(Θ) = 0). Every function accepts
:class:`MassFunction` objects or plain probability arrays, (K,) for one sample or (N, K) for a
batch (NumPy or torch; float64 inside). Arrays in give arrays out; bad masses (NaN/Inf, negative,
Σ != 1) and total conflict raise :class:`crackscope.errors.InputError`, never NaN.

* Dempster's rule (Dempster 1967; Shafer 1976):
      (m1 ⊕ m2)(A) = Σ_{B∩C=A} m1(B) m2(C) / (1 − K),   K = Σ_{B∩C=∅} m1(B) m2(C)
  -- :func:`combine_dempster`, :func:`conflict`.
* Jousselme distance (Jousselme, Grenier, Bossé 2001):
      d_J = sqrt(½ (m1 − m2)ᵀ D (m1 − m2)),  D[A, B] = |A∩B| / |A∪B|   -- :func:`jousselme_distance`.
* Murphy (2000): average the n masses, combine the average with itself n − 1 times
  -- :func:`murphy_combination`.
* Deng et al. (2004): weights ∝ Σ_{j≠i} (1 − d_J(m_i, m_j)), weighted average, combined with
  itself n − 1 times -- :func:`deng_combination`.
* Harmonics paper, sensitivity-weighted multi-harmonic rule: label weights λ(θ) ∝ Π_{i rejects θ} (1 − acc_i)
  (a harmonic rejects every label but its top one), m = m_1 ⊕ ... ⊕ m_n ⊕ λ
  -- :func:`sensitivity_weighted_combination`.
* Harmonics paper, conflict-weighted multi-sensor rule: c_ij = 1 − Pl_i(t_j) Pl_j(t_i) from the top labels
  t_i, sensor weight w_k ∝ Σ of the conflicts among the *other* sensors, weighted average combined
  with itself n − 1 times -- :func:`conflict_weighted_combination`.

The formulas, the choices made where the paper's equations were lost, and worked numeric examples
are in docs/fusion.md.

References: A. P. Dempster, Ann. Math. Statist. 38 (1967) 325-339. G. Shafer, A Mathematical
Theory of Evidence, Princeton (1976). C. K. Murphy, Decision Support Systems 29 (2000) 1-9.
Y. Deng, W. Shi, Z. Zhu, Q. Liu, Decision Support Systems 38 (2004) 489-493. A.-L. Jousselme,
D. Grenier, É. Bossé, Information Fusion 2 (2001) 91-101. Harmonics paper: "Multi-Harmonic Nonlinear
Ultrasonic Fusion with Deep Learning for Subtle Parameter Identification of Micro-Crack Groups",
sections 3.3-3.6.
"""

from crackscope.fusion.averaging import deng_combination, deng_credibility, murphy_combination, weighted_average
from crackscope.fusion.dempster import TOTAL_CONFLICT_TOLERANCE, combine_dempster, combine_with_itself, conflict
from crackscope.fusion.distance import jaccard_matrix, jousselme_distance
from crackscope.fusion.harmonics import harmonic_label_weights, sensitivity_weighted_combination, supported_labels
from crackscope.fusion.mass import (
    SUM_TOLERANCE,
    THETA,
    MassFunction,
    as_mass,
    discount,
    from_probabilities,
    vacuous,
)
from crackscope.fusion.sensors import (
    conflict_sensor_weights,
    conflict_weighted_combination,
    sensor_conflict,
    sensor_conflict_matrix,
)

__all__ = [
    "SUM_TOLERANCE",
    "THETA",
    "TOTAL_CONFLICT_TOLERANCE",
    "MassFunction",
    "as_mass",
    "combine_dempster",
    "combine_with_itself",
    "conflict",
    "conflict_sensor_weights",
    "conflict_weighted_combination",
    "deng_combination",
    "deng_credibility",
    "discount",
    "from_probabilities",
    "harmonic_label_weights",
    "jaccard_matrix",
    "jousselme_distance",
    "murphy_combination",
    "sensitivity_weighted_combination",
    "sensor_conflict",
    "sensor_conflict_matrix",
    "supported_labels",
    "vacuous",
    "weighted_average",
]
