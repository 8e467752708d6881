"""What every crackscope model shares, whatever its pipeline: its name and a one-line input check."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from crackscope.errors import InputError


class NamedModel:
    """Mixin for ``nn.Module`` models: ``name`` is the registry name (or the class name)."""

    @property
    def name(self) -> str:
        return getattr(self, "model_name", type(self).__name__)


def check_input_shape(model: str, x, expected: Sequence[int | str], axes: str) -> None:
    """InputError unless ``x`` is a tensor shaped like ``expected``.

    ``expected`` holds one entry per dimension: an int must match exactly, a letter (``"B"``,
    ``"H"``, ...) stands for any size (at least 1 except for the leading batch). ``axes`` names the
    dimensions for the message, e.g. ``"batch, harmonics, time"``.
    """
    shape = f"({', '.join(str(e) for e in expected)})"
    ok = (
        isinstance(x, torch.Tensor)
        and x.ndim == len(expected)
        and all(d == e if isinstance(e, int) else (i == 0 or d >= 1) for i, (d, e) in enumerate(zip(x.shape, expected)))
    )
    if not ok:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"{model} expects input of shape {shape} = ({axes}), got {got}")
