"""Surface-defect segmentation models: an image (B, in_channels, H, W) -> mask logits (B, classes, H, W).

Every model takes the same constructor keywords, smp-style, plus its own width options::

    in_channels=3, classes=1

and accepts ANY H, W. A network that down-samples by ``stride`` (16 or 32) needs sides divisible
by it, so :class:`SurfaceModel` pads the input on the bottom and right edges with replicated
border pixels up to the next multiple of ``stride``, runs the network, and crops the logits back
to (H, W): the output pixel (i, j) always belongs to input pixel (i, j). The source paper (Zhang,
U-Net + CBAM on SD-saliency-900) compares the five registered here: ``unet``, ``unet_cbam``,
``segnet``, ``fcn8s``, ``deeplabv3plus``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crackscope.errors import require_positive_int as _positive_int
from crackscope.models.contract import NamedModel, check_input_shape

__all__ = ["SurfaceModel", "UNet", "UNetCBAM", "SegNet", "FCN8s", "DeepLabV3Plus"]


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
from crackscope.models.surface.deeplabv3plus import DeepLabV3Plus  # noqa: E402
from crackscope.models.surface.fcn8s import FCN8s  # noqa: E402
from crackscope.models.surface.segnet import SegNet  # noqa: E402
from crackscope.models.surface.unet import UNet, UNetCBAM  # noqa: E402
