"""U-Net (Ronneberger et al. 2015) and U-Net + CBAM (the source paper: Zhang, sections 3.2-3.3).

Shapes for ``base_channels=32, depth=4`` and an input padded to (H, W), multiples of 16::

    encoder  4 x [double conv (3x3 + BN + ReLU) x 2, (CBAM), max-pool 2]   32, 64, 128, 256 channels
    bottleneck   double conv, (CBAM)                                        512 channels, H/16
    decoder  4 x [transposed conv 2x2 / 2, (CBAM), concat skip, double conv] 256 ... 32 channels
    head     1x1 conv                                                       (B, classes, H, W)

``unet_cbam`` applies CBAM (Woo et al. 2018) after every encoder double convolution (Module 1,
section 3.2: conv, conv, CBAM, then down-sampling) and after every decoder up-sampling (Module 2,
section 3.3: up-sample, CBAM, then convolutions); ``unet`` has identities in those places, so the
two differ by exactly the CBAM parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from crackscope.errors import InputError
from crackscope.models import register
from crackscope.models.surface.base import SurfaceModel
from crackscope.nn import CBAM, conv_stack


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 conv + BN + ReLU, the U-Net block."""
    return conv_stack(in_channels, (out_channels, out_channels), activation="relu", kernel_size=3, padding=1)[0]


@register("unet")
class UNet(SurfaceModel):
    """U-Net: a contracting path of double convolutions and an expanding path with skip concatenation.

    paper: Ronneberger et al. 2015, "U-Net: Convolutional Networks for Biomedical Image Segmentation".
    """

    paper = "Ronneberger et al. 2015, U-Net"

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        base_channels: int = 32,
        depth: int = 4,
        cbam: bool = False,
        cbam_reduction: int = 16,
    ):
        super().__init__(in_channels, classes)
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 6:
            raise InputError(f"depth must be an integer in 1..6 (got {depth!r})")
        base_channels = int(base_channels)
        self.stride = 2**depth
        widths = [base_channels * 2**i for i in range(depth + 1)]

        def attention(channels: int) -> nn.Module:
            return CBAM(channels, cbam_reduction) if cbam else nn.Identity()

        self.encoder = nn.ModuleList()
        self.encoder_attention = nn.ModuleList()
        c = in_channels
        for width in widths:  # the last one is the bottleneck
            self.encoder.append(double_conv(c, width))
            self.encoder_attention.append(attention(width))
            c = width
        self.pool = nn.MaxPool2d(2)

        self.up = nn.ModuleList()
        self.up_attention = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c, width, 2, stride=2))
            self.up_attention.append(attention(width))
            self.decoder.append(double_conv(2 * width, width))
            c = width
        self.head = nn.Conv2d(c, classes, 1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, (block, att) in enumerate(zip(self.encoder, self.encoder_attention)):
            x = att(block(x if i == 0 else self.pool(x)))
            skips.append(x)
        skips.pop()  # the bottleneck output is x itself
        for up, att, block in zip(self.up, self.up_attention, self.decoder):
            x = block(torch.cat([skips.pop(), att(up(x))], dim=1))
        return self.head(x)


@register("unet_cbam")
class UNetCBAM(UNet):
    """U-Net with CBAM after each encoder double convolution and each decoder up-sampling.

    paper: the source paper, "A Novel Defect Segmentation Model via Integrating Enhanced U-Net with
    Convolutional Block Attention Mechanisms", sections 3.2 (Module 1) and 3.3 (Module 2).
    """

    paper = "Zhang, U-Net + CBAM (source paper, sections 3.2-3.3)"

    def __init__(
        self, in_channels: int = 3, classes: int = 1, base_channels: int = 32, depth: int = 4, cbam_reduction: int = 16
    ):
        super().__init__(in_channels, classes, base_channels, depth, cbam=True, cbam_reduction=cbam_reduction)
