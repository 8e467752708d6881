"""Jousselme's distance between two masses on a singleton + Θ frame.

With the masses written as vectors over the focal elements ({θ_1}, ..., {θ_K}, Θ),

    d_J(m1, m2) = sqrt( ½ (m1 − m2)ᵀ D (m1 − m2) ),    D[A, B] = |A ∩ B| / |A ∪ B|   (Jaccard)

so on this frame D[{θ_j}, {θ_k}] = 1 if j = k else 0, D[{θ_k}, Θ] = 1/K and D[Θ, Θ] = 1.
d_J is 0 for identical masses and 1 for two certain, different singletons; it lies in [0, 1].

Jousselme, Grenier, Bossé, "A new distance between two bodies of evidence", Information Fusion
2 (2001) 91-101.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crackscope.fusion._common import prepare

__all__ = ["jaccard_matrix", "jousselme_distance"]


def jaccard_matrix(n_labels: int) -> np.ndarray:
    """The (K+1, K+1) matrix |A ∩ B| / |A ∪ B| over the focal elements {θ_1}, ..., {θ_K}, Θ."""
    d = np.eye(n_labels + 1)
    d[:n_labels, n_labels] = d[n_labels, :n_labels] = 1.0 / n_labels  # |{θ_k} ∩ Θ| / |Θ| = 1/K
    return d


def jousselme_distance(m1: Any, m2: Any) -> float | np.ndarray:
    """d_J(m1, m2) = sqrt(½ (m1 − m2)ᵀ D (m1 − m2)) with the Jaccard matrix D; in [0, 1].

    A float for two single masses, an (N,) array when either is a batch.
    """
    (a, b), _ = prepare((m1, m2), "jousselme_distance", minimum=2)
    diff = np.concatenate([a.singletons - b.singletons, (a.theta - b.theta)[..., None]], axis=-1)
    quadratic = np.einsum("...i,ij,...j->...", diff, jaccard_matrix(a.n_labels), diff)
    d = np.sqrt(np.clip(0.5 * quadratic, 0.0, 1.0))
    return float(d) if d.ndim == 0 else d
