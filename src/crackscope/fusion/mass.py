"""Mass functions (basic probability assignments, BPAs) on a frame of K labels.

The frame of discernment Θ = {θ_1, ..., θ_K} holds K mutually exclusive labels. A mass function
here may put mass on the K singletons {θ_k} and on the whole frame Θ (ignorance):

    m(θ_k) >= 0,   m(Θ) >= 0,   Σ_k m(θ_k) + m(Θ) = 1

Those are the focal elements a classifier's output needs: a softmax vector is a *Bayesian* mass
(m(Θ) = 0), and discounting it by a reliability moves mass to Θ. Other subsets are not modelled.

A :class:`MassFunction` is either one mass (``singletons`` of shape (K,), ``theta`` 0-d) or a
batch of N masses on the same frame (``singletons`` (N, K), ``theta`` (N,)), one per test sample.
Every value is float64; torch tensors are accepted and converted (no torch import here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from crackscope.errors import InputError

__all__ = [
    "SUM_TOLERANCE",
    "THETA",
    "MassFunction",
    "from_probabilities",
    "vacuous",
    "discount",
    "as_mass",
    "to_float_array",
]

SUM_TOLERANCE = 1e-6
"""How far Σ m may be from 1 before a mass is refused (within it, the masses are rescaled to 1)."""

THETA = "Θ"
"""Name of the whole frame (ignorance) in messages and :meth:`MassFunction.to_dict`."""


def to_float_array(x: Any, what: str) -> np.ndarray:
    """``x`` as a float64 NumPy array; torch tensors are detached and copied to the CPU first."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().double().numpy()
    try:
        return np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{what} must be numeric (got {x!r})") from err


def _where(row: int | None) -> str:
    return "" if row is None else f" in row {row}"


def _first_bad(bad: np.ndarray) -> tuple[int | None, int]:
    """(row or None, column) of the first True entry of a 1-D or 2-D boolean array."""
    index = np.argwhere(bad)[0]
    return (None, int(index[0])) if bad.ndim == 1 else (int(index[0]), int(index[1]))


def _check_masses(all_masses: np.ndarray, labels: tuple[str, ...], renormalise: bool) -> np.ndarray:
    """Validate (..., K+1) masses (singletons then Θ) and return them scaled to sum exactly to 1."""
    names = (*labels, THETA)
    for bad, problem in ((~np.isfinite(all_masses), "not finite"), (all_masses < 0, "negative")):
        if bad.any():
            row, col = _first_bad(bad)
            value = all_masses[col] if row is None else all_masses[row, col]
            raise InputError(
                f"mass on {names[col]!r}{_where(row)} is {float(value)!r} ({problem}); masses must be finite and >= 0"
            )
    totals = all_masses.sum(axis=-1)
    if renormalise:
        bad = np.atleast_1d(totals <= 0)
        if bad.any():
            row = None if totals.ndim == 0 else int(np.flatnonzero(bad)[0])
            raise InputError(f"masses{_where(row)} sum to 0; nothing to renormalise")
    else:
        off = np.atleast_1d(np.abs(totals - 1.0) > SUM_TOLERANCE)
        if off.any():
            row = None if totals.ndim == 0 else int(np.flatnonzero(off)[0])
            total = totals if row is None else totals[row]
            raise InputError(
                f"masses{_where(row)} sum to {float(total):.9g}, not 1 (tolerance {SUM_TOLERANCE:g}); "
                "pass renormalise=True to rescale them"
            )
    return all_masses / totals[..., None]


class MassFunction:
    """Masses on the K singletons of a frame and on the whole frame Θ; one mass or a batch.

    ``MassFunction(singletons, theta=0.0, labels=None, renormalise=False)``:

    * ``singletons`` -- (K,) for one mass or (N, K) for a batch, K >= 2; numbers or a tensor.
    * ``theta`` -- mass on Θ: a number, or (N,) for a batch (a number is used for every row).
    * ``labels`` -- K distinct label names (default ``"0"`` ... ``"K-1"``).
    * ``renormalise`` -- rescale any non-negative masses to sum 1 instead of refusing a sum
      farther than :data:`SUM_TOLERANCE` from 1.

    NaN/Inf, negative masses and a sum other than 1 raise :class:`~crackscope.errors.InputError`
    naming the label (and the row of a batch). The stored arrays are read-only float64:
    ``singletons`` (..., K) and ``theta`` (...) -- a 0-d array for one mass (``float(m.theta)``).
    """

    __slots__ = ("singletons", "theta", "labels")

    def __init__(
        self, singletons: Any, theta: Any = 0.0, labels: Sequence[str] | None = None, *, renormalise: bool = False
    ):
        s = to_float_array(singletons, "singleton masses")
        if s.ndim not in (1, 2) or s.shape[-1] < 2:
            raise InputError(
                f"singleton masses must have shape (K,) or (N, K) with K >= 2 labels (got shape {s.shape})"
            )
        t = to_float_array(theta, "mass on Θ")
        try:
            t = np.broadcast_to(t, s.shape[:-1])
        except ValueError as err:
            raise InputError(f"mass on Θ must be a number or have shape {s.shape[:-1]} (got shape {t.shape})") from err
        names = _check_labels(labels, s.shape[-1])
        checked = _check_masses(np.concatenate([s, t[..., None]], axis=-1), names, renormalise)
        singletons_, theta_ = checked[..., :-1], checked[..., -1]
        singletons_.flags.writeable = False
        theta_.flags.writeable = False
        object.__setattr__(self, "singletons", singletons_)
        object.__setattr__(self, "theta", theta_)
        object.__setattr__(self, "labels", names)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("MassFunction is immutable")

    @property
    def n_labels(self) -> int:
        """K, the number of labels in the frame."""
        return self.singletons.shape[-1]

    @property
    def batched(self) -> bool:
        """True for a batch of N masses ((N, K) singletons)."""
        return self.singletons.ndim == 2

    def __len__(self) -> int:
        if not self.batched:
            raise TypeError("a single MassFunction has no len(); it is not a batch")
        return self.singletons.shape[0]

    def __getitem__(self, row: int) -> MassFunction:
        """Row ``row`` of a batch, as a single mass."""
        if not self.batched:
            raise TypeError("a single MassFunction cannot be indexed; it is not a batch")
        return MassFunction(self.singletons[row], self.theta[row], self.labels)

    def pignistic(self) -> np.ndarray:
        """Smets' pignistic probabilities BetP(θ_k) = m(θ_k) + m(Θ) / K, shape (..., K)."""
        return self.singletons + self.theta[..., None] / self.n_labels

    def plausibility(self) -> np.ndarray:
        """Pl(θ_k) = m(θ_k) + m(Θ), the mass that does not contradict θ_k; shape (..., K)."""
        return self.singletons + self.theta[..., None]

    def decision(self) -> np.ndarray | int:
        """Index of the label with the largest pignistic probability (per row for a batch)."""
        best = np.argmax(self.pignistic(), axis=-1)
        return int(best) if best.ndim == 0 else best

    def to_dict(self) -> dict[str, float]:
        """``{label: mass, ..., "Θ": mass}`` of a single mass."""
        if self.batched:
            raise TypeError("to_dict() needs a single mass; index the batch first")
        return {**{k: float(v) for k, v in zip(self.labels, self.singletons)}, THETA: float(self.theta)}

    def __repr__(self) -> str:
        if self.batched:
            return f"MassFunction(batch of {len(self)}, labels={list(self.labels)})"
        return f"MassFunction({self.to_dict()})"


def _check_labels(labels: Sequence[str] | None, k: int) -> tuple[str, ...]:
    if labels is None:
        return tuple(str(i) for i in range(k))
    names = tuple(labels)
    if len(names) != k:
        raise InputError(f"labels must name the {k} singleton masses (got {len(names)} labels: {list(names)})")
    if len(set(names)) != k:
        raise InputError(f"labels must be distinct (got {list(names)})")
    if THETA in names:
        raise InputError(f"{THETA!r} names the whole frame and cannot be a label")
    return names


def from_probabilities(p: Any, labels: Sequence[str] | None = None, *, renormalise: bool = False) -> MassFunction:
    """Bayesian mass m(θ_k) = p_k, m(Θ) = 0 from class probabilities (e.g. a softmax output).

    ``p`` is (K,) for one sample or (N, K) for a batch, NumPy or torch. The probabilities must
    sum to 1 within :data:`SUM_TOLERANCE` unless ``renormalise=True`` (then p / Σ p).
    """
    return MassFunction(p, 0.0, labels, renormalise=renormalise)


def vacuous(labels: Sequence[str] | int) -> MassFunction:
    """The vacuous mass m(Θ) = 1 (total ignorance), the neutral element of Dempster's rule.

    ``labels`` is the label names or the number of labels K.
    """
    names = [str(i) for i in range(labels)] if isinstance(labels, int) else list(labels)
    return MassFunction(np.zeros(len(names)), 1.0, names)


def discount(mass: MassFunction, reliability: float) -> MassFunction:
    """Shafer's discounting by a reliability α in [0, 1]: m'(θ_k) = α m(θ_k), m'(Θ) = 1 − α + α m(Θ).

    α = 1 keeps the mass; α = 0 gives the vacuous mass.
    """
    alpha = float(reliability)
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"reliability must be in [0, 1] (got {reliability!r})")
    return MassFunction(alpha * mass.singletons, 1.0 - alpha + alpha * mass.theta, mass.labels)


def as_mass(x: Any, labels: Sequence[str] | None = None) -> MassFunction:
    """``x`` if it is a :class:`MassFunction`, else a Bayesian mass from the (K,)/(N, K) array ``x``."""
    if isinstance(x, MassFunction):
        return x
    return from_probabilities(x, labels)
