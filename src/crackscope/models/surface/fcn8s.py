"""FCN-8s (Long, Shelhamer, Darrell 2015): a VGG-style backbone whose coarse scores are fused with
the scores of pool4 (stride 16) and pool3 (stride 8) before the final 8x up-sampling.

For ``base_channels=32`` (the paper's VGG-16 uses 64; fc6/fc7 are 4096-wide 7x7/1x1 convs)::

    5 VGG stages [2, 2, 3, 3, 3] x (3x3 conv + BN + ReLU), max-pool /2 each   -> pool3 H/8, pool4 H/16, pool5 H/32
    fc6 3x3 conv, fc7 1x1 conv (fc_channels = 16 * base), dropout             H/32
    score_fr(fc7) -> up x2 + score_pool4 -> up x2 + score_pool3 -> up x8     (B, classes, H, W)

The up-samplings are learnable transposed convolutions initialised to bilinear interpolation, as
in the paper. Differences from the paper, for training from scratch on small data: BatchNorm after
every conv, narrower layers, a 3x3 fc6, and the paper's 100-pixel input padding replaced by the
pad-to-multiple-of-32 and crop of :class:`SurfaceModel`, which makes every fusion exactly aligned.
"""

from __future__ import annotations

import torch
from torch import nn

from crackscope.models import register
from crackscope.models.surface.base import SurfaceModel
from crackscope.nn import ConvNormAct, conv_stack

STAGE_CONVS = (2, 2, 3, 3, 3)
STAGE_WIDTHS = (1, 2, 4, 8, 8)  # times base_channels


def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Per-channel transposed conv (kernel 2f, stride f, padding f/2) initialised to bilinear interpolation."""
    kernel = 2 * factor
    up = nn.ConvTranspose2d(channels, channels, kernel, stride=factor, padding=factor // 2, bias=False)
    center = (kernel - 1) / 2
    ramp = 1 - (torch.arange(kernel, dtype=torch.float32) - center).abs() / factor
    weight = torch.zeros(channels, channels, kernel, kernel)
    for c in range(channels):
        weight[c, c] = ramp[:, None] * ramp[None, :]
    with torch.no_grad():
        up.weight.copy_(weight)
    return up


@register("fcn8s")
class FCN8s(SurfaceModel):
    """FCN-8s: fully convolutional VGG with 8x skip fusion of pool3 and pool4 scores.

    paper: Long, Shelhamer, Darrell 2015, "Fully Convolutional Networks for Semantic Segmentation".
    """

    paper = "Long et al. 2015, FCN-8s"
    stride = 32

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        base_channels: int = 32,
        fc_channels: int | None = None,
        dropout: float = 0.5,
    ):
        super().__init__(in_channels, classes)
        widths = [int(base_channels) * m for m in STAGE_WIDTHS]
        fc = int(fc_channels) if fc_channels is not None else 16 * int(base_channels)
        self.stages = nn.ModuleList()
        c = in_channels
        for n, width in zip(STAGE_CONVS, widths):
            stage, c = conv_stack(c, [width] * n, activation="relu", kernel_size=3, padding=1)
            self.stages.append(nn.Sequential(*stage, nn.MaxPool2d(2)))
        self.fc = nn.Sequential(
            ConvNormAct(c, fc, 3, padding=1), nn.Dropout2d(dropout), ConvNormAct(fc, fc, 1), nn.Dropout2d(dropout)
        )
        self.score_fr = nn.Conv2d(fc, classes, 1)
        self.score_pool4 = nn.Conv2d(widths[3], classes, 1)
        self.score_pool3 = nn.Conv2d(widths[2], classes, 1)
        self.up2_fr = bilinear_upsampler(classes, 2)
        self.up2_pool4 = bilinear_upsampler(classes, 2)
        self.up8 = bilinear_upsampler(classes, 8)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        pool3, pool4 = feats[2], feats[3]
        score = self.up2_fr(self.score_fr(self.fc(x)))  # H/16
        score = self.up2_pool4(score + self.score_pool4(pool4))  # H/8
        return self.up8(score + self.score_pool3(pool3))  # H
