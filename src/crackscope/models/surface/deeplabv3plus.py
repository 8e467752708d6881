"""DeepLabv3+ (Chen et al. 2018): atrous spatial pyramid pooling on a ResNet backbone, and a decoder
that fuses the up-sampled ASPP output with low-level (stride 4) backbone features.

For ``base_channels=32`` (the paper uses ResNet-101 / Xception, 256-wide ASPP)::

    stem      3x3 conv /2 + 3x3 conv, max-pool /2                              H/4
    layer1-4  ResNet-18-style basic blocks [2, 2, 2, 2], widths 32, 64, 128, 256;
              layer2, layer3 stride 2, layer4 dilation 2 (output stride 16)     H/16
    ASPP      1x1, three 3x3 atrous convs (rates 6, 12, 18), image pooling -> concat -> 1x1
    decoder   ASPP up x4 (bilinear) + 1x1-reduced layer1 features -> 2 x 3x3 conv -> 1x1 to classes
    output    bilinear up x4                                                    (B, classes, H, W)

The backbone is plain torch (no torchvision) and trains from scratch; the input is padded to a
multiple of 16 by :class:`SurfaceModel` so every up-sampling is an exact factor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crackscope.models import register
from crackscope.models.surface.base import SurfaceModel
from crackscope.nn import ConvNormAct


def atrous_conv(
    in_channels: int, out_channels: int, dilation: int = 1, stride: int = 1, activation: str | None = "relu"
) -> nn.Sequential:
    """3x3 conv with ``dilation`` ('same' padding) + BN (+ ReLU); ConvNormAct with a dilation."""
    layers = [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if activation is not None:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): two 3x3 conv + BN, identity or 1x1 projection shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = atrous_conv(in_channels, out_channels, dilation, stride)
        self.conv2 = atrous_conv(out_channels, out_channels, dilation, activation=None)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and in_channels == out_channels
            else ConvNormAct(in_channels, out_channels, 1, stride=stride, activation=None)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNetBackbone(nn.Module):
    """ResNet-18-style feature extractor returning (low-level stride-4 features, stride-16 features)."""

    def __init__(self, in_channels: int, base_channels: int = 32, blocks=(2, 2, 2, 2)):
        super().__init__()
        b = base_channels
        self.stem = nn.Sequential(
            ConvNormAct(in_channels, b, 3, stride=2, padding=1),
            ConvNormAct(b, b, 3, padding=1),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        widths = [b, 2 * b, 4 * b, 8 * b]
        strides, dilations = (1, 2, 2, 1), (1, 1, 1, 2)
        layers, c = [], b
        for n, width, stride, dilation in zip(blocks, widths, strides, dilations):
            layer = [BasicBlock(c, width, stride, dilation)] + [
                BasicBlock(width, width, 1, dilation) for _ in range(n - 1)
            ]
            layers.append(nn.Sequential(*layer))
            c = width
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.low_channels, self.out_channels = widths[0], widths[-1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layer1(self.stem(x))
        return low, self.layer4(self.layer3(self.layer2(low)))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabv3, Chen et al. 2017, section 3.3).

    Parallel branches: a 1x1 conv, 3x3 convs with dilation ``rates``, and global average pooling
    (1x1 conv, broadcast back to H x W); concatenated and projected by a 1x1 conv.
    """

    def __init__(self, in_channels: int, out_channels: int, rates=(6, 12, 18), dropout: float = 0.1):
        super().__init__()
        self.branches = nn.ModuleList([ConvNormAct(in_channels, out_channels, 1)])
        self.branches.extend(atrous_conv(in_channels, out_channels, rate) for rate in rates)
        # No BatchNorm on the pooled 1x1 map: with batch 1 it would have a single value per channel.
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvNormAct(in_channels, out_channels, 1, norm=False))
        self.project = nn.Sequential(ConvNormAct((len(rates) + 2) * out_channels, out_channels, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.image_pool(x).expand(-1, -1, *x.shape[-2:])
        outs = [branch(x) for branch in self.branches] + [pooled]
        return self.project(torch.cat(outs, dim=1))


@register("deeplabv3plus")
class DeepLabV3Plus(SurfaceModel):
    """DeepLabv3+: ASPP encoder at output stride 16, decoder with low-level features at stride 4.

    paper: Chen et al. 2018, "Encoder-Decoder with Atrous Separable Convolution for Semantic Image
    Segmentation" (ASPP: Chen et al. 2017, "Rethinking Atrous Convolution").
    """

    paper = "Chen et al. 2018, DeepLabv3+"
    stride = 16

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        base_channels: int = 32,
        aspp_channels: int = 128,
        atrous_rates: tuple[int, ...] = (6, 12, 18),
        low_level_channels: int = 48,
        decoder_channels: int = 128,
    ):
        super().__init__(in_channels, classes)
        self.backbone = ResNetBackbone(in_channels, int(base_channels))
        self.aspp = ASPP(self.backbone.out_channels, aspp_channels, tuple(atrous_rates))
        self.low_level = ConvNormAct(self.backbone.low_channels, low_level_channels, 1)
        self.decoder = nn.Sequential(
            ConvNormAct(aspp_channels + low_level_channels, decoder_channels, 3, padding=1),
            ConvNormAct(decoder_channels, decoder_channels, 3, padding=1),
        )
        self.head = nn.Conv2d(decoder_channels, classes, 1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        low, high = self.backbone(x)
        high = F.interpolate(self.aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=False)
        x = self.decoder(torch.cat([high, self.low_level(low)], dim=1))
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)
