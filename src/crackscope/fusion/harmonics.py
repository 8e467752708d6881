"""The harmonics paper's sensitivity-weighted multi-harmonic rule (Dempster's rule with label weights).

Each harmonic (source) i gives a mass m_i over the same labels and has a weight w_i in [0, 1],
its mean validation accuracy: w_i = acc_i, so 1 − w_i is its validation error rate. (Any other
reliability in [0, 1] can be passed instead.)

1. Harmonic i *supports* the labels with its largest singleton mass (ties: all of them; a source
   with no singleton mass supports every label) and *rejects* every other label.
2. Label weight: each rejecting harmonic multiplies it by its error rate 1 − w_i,
       λ̃(θ_k) = Π_{i rejects θ_k} (1 − w_i),
   so a label every harmonic supports keeps 1, and the penalties compound when several
   harmonics reject it. Normalised: λ(θ_k) = λ̃(θ_k) / Σ_j λ̃(θ_j).
3. The label weights enter Dempster's combination once, as one more (Bayesian) body of evidence:
       m = m_1 ⊕ ... ⊕ m_n ⊕ λ,   i.e. for Bayesian masses
       m(θ_k) = λ(θ_k) Π_i m_i(θ_k) / Σ_j λ(θ_j) Π_i m_i(θ_j).
   (With mass on Θ the combined Θ mass is shared out in proportion to λ; the result is Bayesian.)

Properties (exact, for Bayesian masses): every weight 0 gives plain Dempster; when all harmonics
support the same label t, the rule keeps Dempster's ratios between the other labels and multiplies
t's odds against each of them by 1 / Π_i (1 − w_i), so the decision equals Dempster's (t) and m(t)
is at least Dempster's -- the masses differ from plain Dempster unless every weight is 0. Equal
accuracies do *not* reduce it to Dempster: labels rejected by more harmonics are still penalised.

Paper: "Multi-Harmonic Nonlinear Ultrasonic Fusion with Deep Learning for Subtle Parameter
Identification of Micro-Crack Groups", section 3.4 (weights from mean identification accuracy,
labels not supported by a harmonic penalised by 1 − ω, four support categories for two harmonics,
weights normalised and inserted into Dempster's rule, result normalised).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from crackscope.errors import InputError
from crackscope.fusion._common import first_row, output, prepare
from crackscope.fusion.dempster import TOTAL_CONFLICT_TOLERANCE, orthogonal_sum
from crackscope.fusion.mass import MassFunction, to_float_array

__all__ = ["supported_labels", "harmonic_label_weights", "sensitivity_weighted_combination"]


def supported_labels(mass: MassFunction) -> np.ndarray:
    """Boolean (..., K): True where the source's singleton mass is its largest (ties all True)."""
    return mass.singletons >= mass.singletons.max(axis=-1, keepdims=True)


def _check_accuracies(accuracies: Any, n: int) -> np.ndarray:
    acc = to_float_array(accuracies, "accuracies")
    if acc.shape != (n,):
        raise InputError(f"accuracies must hold one number per source ({n}) (got shape {acc.shape})")
    for i, a in enumerate(acc):
        if not (np.isfinite(a) and 0.0 <= a <= 1.0):
            raise InputError(f"accuracies[{i}] must be a fraction in [0, 1] (got {float(a)!r}); pass 0.93, not 93")
    return acc


def harmonic_label_weights(masses: Sequence[Any], accuracies: Any) -> np.ndarray:
    """Normalised label weights λ(θ_k) ∝ Π_{i rejects θ_k} (1 − acc_i), shape (K,) or (N, K).

    Raises :class:`~crackscope.errors.InputError` when every label is rejected by a source with
    accuracy 1 (all weights 0): such sources vetoing each other are in total conflict.
    """
    items, _ = prepare(masses, "harmonic_label_weights")
    acc = _check_accuracies(accuracies, len(items))
    weights = np.ones(np.broadcast_shapes(*(m.singletons.shape for m in items)))
    for m, a in zip(items, acc):
        weights = weights * np.where(supported_labels(m), 1.0, 1.0 - a)
    total = weights.sum(axis=-1)
    if np.any(total <= 0):
        raise InputError(
            f"total conflict{first_row(total <= 0)}: every label is rejected by a source with accuracy 1; "
            "pass accuracies below 1 (e.g. (correct + 1) / (total + 2))"
        )
    return weights / total[..., None]


def sensitivity_weighted_combination(
    masses: Sequence[Any], accuracies: Any, *, tol: float = TOTAL_CONFLICT_TOLERANCE
) -> MassFunction | np.ndarray:
    """The paper's multi-harmonic rule: m_1 ⊕ ... ⊕ m_n ⊕ λ with the label weights λ above.

    ``masses``: n MassFunctions or probability arrays ((K,) or (N, K)), one per harmonic;
    ``accuracies``: n mean validation accuracies in [0, 1]. Returns a MassFunction if any input
    was one, else an array of the inputs' shape. Total conflict raises InputError (row named).
    """
    items, wants_mass = prepare(masses, "sensitivity_weighted_combination")
    label_weights = MassFunction(harmonic_label_weights(items, accuracies), 0.0, items[0].labels)
    result = items[0]
    for m in [*items[1:], label_weights]:
        result = orthogonal_sum(result, m, tol)
    return output(result, wants_mass)
