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

from crackscope.models.surface.base import (
    SurfaceModel,
)
from crackscope.models.surface.deeplabv3plus import DeepLabV3Plus
from crackscope.models.surface.fcn8s import FCN8s
from crackscope.models.surface.segnet import SegNet
from crackscope.models.surface.unet import UNet, UNetCBAM

__all__ = ["SurfaceModel", "UNet", "UNetCBAM", "SegNet", "FCN8s", "DeepLabV3Plus"]
