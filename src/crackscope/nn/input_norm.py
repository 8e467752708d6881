"""Input normalisation that does not depend on one dataset's brightness.

A model trained on the photos of one camera learns their mean grey level and contrast; a darker or
flatter photo from another camera then looks like nothing it has seen. :class:`PerImageStandardize`
removes both before the first layer: each image's per-channel mean is subtracted (brightness and
colour cast) and the result divided by the image's standard deviation over all its channels and
pixels (contrast), floored at ``min_std`` so that a nearly uniform image (a tile of plain
concrete) is not blown up into noise. :class:`StandardizedInput` puts it in front of a model, so
training, evaluation, tiled inference and ONNX export all see the same normalisation.
"""

from __future__ import annotations

import torch
from torch import nn

from crackscope.errors import InputError

INPUT_NORMS = ("none", "per_image")
DEFAULT_MIN_STD = 0.03


class PerImageStandardize(nn.Module):
    """(B, C, H, W) -> (x - mean over H, W per channel) / max(std over C, H, W, ``min_std``), per image."""

    def __init__(self, min_std: float = DEFAULT_MIN_STD):
        super().__init__()
        if not min_std > 0:
            raise InputError(f"min_std={min_std!r} must be > 0")
        self.min_std = float(min_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=(2, 3), keepdim=True)
        std = centred.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
        return centred / std.clamp_min(self.min_std)

    def extra_repr(self) -> str:
        return f"min_std={self.min_std}"


class StandardizedInput(nn.Module):
    """``net`` applied to per-image standardised input; its weights are ``net.*``."""

    def __init__(self, net: nn.Module, min_std: float = DEFAULT_MIN_STD):
        super().__init__()
        self.standardize = PerImageStandardize(min_std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(x))


def with_input_norm(net: nn.Module, input_norm: str | None) -> nn.Module:
    """``net`` itself (``"none"``/``None``) or wrapped in :class:`StandardizedInput` (``"per_image"``)."""
    if input_norm in (None, "none"):
        return net
    if input_norm == "per_image":
        return StandardizedInput(net)
    raise InputError(f"model input_norm={input_norm!r} is not one of {', '.join(INPUT_NORMS)}")
