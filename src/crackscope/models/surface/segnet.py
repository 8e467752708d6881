"""SegNet (Badrinarayanan et al. 2017): VGG-style encoder, decoder up-sampled by max-unpooling indices.

Each encoder stage is a stack of 3x3 conv + BN + ReLU followed by a 2x2 max-pool that remembers
where each maximum came from; the mirrored decoder stage places its input back at those positions
(``MaxUnpool2d``, zeros elsewhere) and densifies the sparse map with 3x3 convolutions. Stages for
``base_channels=32`` (the paper's VGG-16 uses 64)::

    encoder  [2, 2, 3, 3, 3] convs, widths 32, 64, 128, 256, 256, pool /2 each -> H/32
    decoder  unpool then the mirrored convs, 256 ... 32 channels -> H
    head     3x3 conv to classes (logits; the paper's softmax lives in the loss)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crackscope.models import register
from crackscope.models.surface.base import SurfaceModel
from crackscope.nn import conv_stack

STAGE_CONVS = (2, 2, 3, 3, 3)
STAGE_WIDTHS = (1, 2, 4, 8, 8)  # times base_channels


@register("segnet")
class SegNet(SurfaceModel):
    """SegNet encoder-decoder with pooling-index up-sampling.

    paper: Badrinarayanan, Kendall, Cipolla 2017, "SegNet: A Deep Convolutional Encoder-Decoder
    Architecture for Image Segmentation".
    """

    paper = "Badrinarayanan et al. 2017, SegNet"
    stride = 32

    def __init__(self, in_channels: int = 3, classes: int = 1, base_channels: int = 32):
        super().__init__(in_channels, classes)
        widths = [int(base_channels) * m for m in STAGE_WIDTHS]
        conv = dict(activation="relu", kernel_size=3, padding=1)
        self.encoder = nn.ModuleList()
        c = in_channels
        for n, width in zip(STAGE_CONVS, widths):
            stage, c = conv_stack(c, [width] * n, **conv)
            self.encoder.append(stage)
        self.pool = nn.MaxPool2d(2, return_indices=True)

        # Decoder stage i mirrors encoder stage i: n convs, the last one down to the next stage's width.
        self.decoder = nn.ModuleList()
        outs = [widths[0]] + widths[:-1]
        for n, width, out in reversed(list(zip(STAGE_CONVS, widths, outs))):
            stage, c = conv_stack(c, [width] * (n - 1) + [out], **conv)
            self.decoder.append(stage)
        self.head = nn.Conv2d(c, classes, 3, padding=1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        indices = []
        for stage in self.encoder:
            x, idx = self.pool(stage(x))
            indices.append(idx)
        for stage in self.decoder:
            x = stage(max_unpool_2x2(x, indices.pop()))
        return self.head(x)


def max_unpool_2x2(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``nn.MaxUnpool2d(2)`` written with element-wise ops: each pooled value goes back to the
    position its max came from, zeros elsewhere. Equal to MaxUnpool2d for a 2x2/stride-2 pooling of
    an even-sized input, and exportable to ONNX (MaxUnpool's traced shape checks are not, in
    torch 2.13). ``indices`` are flat positions in the (2h, 2w) input plane, as MaxPool2d returns."""
    width = 2 * x.shape[-1]
    # which of the 4 cells of its 2x2 window each max came from: 2 * (row parity) + column parity
    cell = torch.div(indices, width, rounding_mode="floor") % 2 * 2 + indices % 2
    up = F.interpolate(x, scale_factor=2.0, mode="nearest")
    cell_up = F.interpolate(cell.to(x.dtype), scale_factor=2.0, mode="nearest")
    h2, w2 = up.shape[-2], up.shape[-1]
    rows = torch.arange(h2, device=x.device) % 2
    cols = torch.arange(w2, device=x.device) % 2
    here = (rows[:, None] * 2 + cols[None, :]).to(x.dtype)
    return torch.where(cell_up == here, up, torch.zeros_like(up))
