"""Shared plumbing: coerce several masses onto one frame and shape the result like the inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from crackscope.errors import InputError
from crackscope.fusion.mass import MassFunction, as_mass, to_float_array


def prepare(masses: Sequence[Any], what: str = "masses", minimum: int = 1) -> tuple[list[MassFunction], bool]:
    """The masses as :class:`MassFunction` objects on one frame, and whether any input was one.

    Plain arrays ((K,) or (N, K) probabilities) take the labels of the first MassFunction given.
    All masses must have the same K (and labels); batch sizes must be equal, or 1 for a single
    mass, which is then used for every row.
    """
    items = list(masses)
    if len(items) < minimum:
        raise InputError(f"{what}: need at least {minimum} mass{'es' if minimum > 1 else ''} (got {len(items)})")
    labels = next((m.labels for m in items if isinstance(m, MassFunction)), None)
    wants_mass = labels is not None
    converted = []
    for i, item in enumerate(items):
        if not isinstance(item, MassFunction) and labels is not None:
            k = to_float_array(item, f"{what}[{i}]").shape[-1:]
            if k != (len(labels),):
                raise InputError(
                    f"{what}[{i}] has {k[0] if k else 0} labels; the frame has {len(labels)} ({list(labels)})"
                )
        try:
            converted.append(as_mass(item, labels))
        except InputError as err:
            raise InputError(f"{what}[{i}]: {err}") from err
    first = converted[0]
    for i, m in enumerate(converted[1:], start=1):
        if m.labels != first.labels:
            raise InputError(f"{what}[{i}] is on the frame {list(m.labels)}, {what}[0] on {list(first.labels)}")
    sizes = {len(m) for m in converted if m.batched}
    if len(sizes) > 1:
        raise InputError(f"{what}: batch sizes differ ({sorted(sizes)}); give every batch the same N rows")
    return converted, wants_mass


def output(result: MassFunction, wants_mass: bool) -> MassFunction | np.ndarray:
    """``result`` itself, or its singleton masses when every input was a plain array.

    Plain-array inputs are Bayesian masses, and every rule here maps Bayesian masses to a
    Bayesian mass, so nothing is lost: the returned array has the inputs' shape (K,) or (N, K).
    """
    if wants_mass:
        return result
    return np.array(result.singletons)


def first_row(bad: np.ndarray) -> str:
    """`` in row i`` for the first True entry of a batch flag array, '' for a 0-d flag."""
    bad = np.asarray(bad)
    if bad.ndim == 0:
        return ""
    rows = np.flatnonzero(bad)
    more = f" (and {len(rows) - 1} more rows)" if len(rows) > 1 else ""
    return f" in row {int(rows[0])}{more}"


def batch_shape(masses: Sequence[MassFunction]) -> tuple[int, ...]:
    """() when every mass is single, else (N,)."""
    return np.broadcast_shapes(*(m.theta.shape for m in masses))
