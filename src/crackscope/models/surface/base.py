"""The base class and shared pieces of crackscope's surface segmentation models (see the package docstring)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crackscope.errors import require_positive_int as _positive_int
from crackscope.models.contract import NamedModel, check_input_shape


class SurfaceModel(NamedModel, nn.Module):
    """Shared contract of the surface models: validated ``in_channels``/``classes``, pad-and-crop.

    Subclasses set ``stride`` (the total down-sampling factor) and implement :meth:`forward_padded`
    on an input whose H and W are multiples of it.
    """

    paper: str = ""
    default_loss: str = "ce_dice"
    stride: int = 1

    def __init__(self, in_channels: int = 3, classes: int = 1):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.classes = _positive_int("classes", classes)

    def check_input(self, x: torch.Tensor) -> None:
        check_input_shape(self.name, x, ("B", self.in_channels, "H", "W"), "batch, channels, height, width")

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % self.stride, -w % self.stride
        if not (pad_h or pad_w):  # no pad, no crop: an exported graph stays valid for any multiple of stride
            return self.forward_padded(x)
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return self.forward_padded(x)[..., :h, :w]


# Imported after SurfaceModel is defined: the model modules subclass it.
