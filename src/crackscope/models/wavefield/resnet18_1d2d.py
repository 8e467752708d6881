"""ResNet18 (1-D then 2-D): ResNet-18-style residual stages over time, then over the sensor grid.

Moreh et al. 2022 (the ResNet18 encoder that beat their SimpleCNN: precision 0.92, recall 0.719,
DSC 0.744), as summarised in Moreh et al., MicroCrackAttentionNeXt, section 2: 1-D convolutions
extract temporal features, 2-D convolutions spatial ones, and transposed convolutions decode the mask.
The ResNet-18 layout (He et al. 2016, Table 1): a 7-wide stem with stride 2 and a 3-wide max-pool,
then four stages of two basic blocks (two 3-wide convs + identity or 1x1 projection shortcut) with
doubling widths, 1 + 16 + 1 = 18 weighted layers. Here stages 1-2 are temporal (kernels (3, 1)),
the time axis is then collapsed by a conv spanning what is left of it, and stages 3-4 are 2-D (3x3)
on the sensor grid without striding (9 x 9 is already small). Shapes for the paper preset, width 32::

    input                                   (B, 2, 2000, 81)
    max-pool (4, 1)                         (B, 2, 500, 81)
    stem conv (7, 1) / 2 + max-pool (3, 1) / 2   -> (B, 32, 125, 81)
    stage 1: 2 basic blocks (3, 1)          (B, 32, 125, 81)
    stage 2: 2 basic blocks (3, 1), / 2     (B, 64, 63, 81)
    temporal collapse conv (63, 1)          (B, 128, 1, 81) -> grid (B, 128, 9, 9)
    stage 3: 2 basic blocks 3x3             (B, 128, 9, 9)
    stage 4: 2 basic blocks 3x3             (B, 256, 9, 9)
    1x1 conv, 2 x transposed conv 2x2 / 2   (B, 8, 36, 36) -> 1x1 conv -> (B, classes, 36, 36)

The input max-pool and the base width 32 (ResNet-18 uses 64) are ours, to keep CPU cost moderate.
"""

from __future__ import annotations

import torch
from torch import nn

from crackscope.models import register
from crackscope.models.wavefield.base import WaveFieldModel
from crackscope.nn import ConvNormAct, conv_stack
from crackscope.nn import activation as make_activation


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016, Fig. 2): act(BN(conv(act(BN(conv(x))))) + shortcut(x))."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: tuple[int, int], stride: tuple[int, int], activation: str
    ):
        super().__init__()
        padding = (kernel[0] // 2, kernel[1] // 2)
        self.conv1 = ConvNormAct(in_channels, out_channels, kernel, stride, padding, activation=activation)
        self.conv2 = ConvNormAct(out_channels, out_channels, kernel, 1, padding, activation=None)
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels and stride == (1, 1)
            else ConvNormAct(in_channels, out_channels, 1, stride, activation=None)
        )
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


def _stage(in_channels: int, out_channels: int, kernel, stride, activation: str) -> nn.Sequential:
    return nn.Sequential(
        BasicBlock(in_channels, out_channels, kernel, stride, activation),
        BasicBlock(out_channels, out_channels, kernel, (1, 1), activation),
    )


@register("resnet18_1d2d")
class ResNet18_1D2D(WaveFieldModel):
    """ResNet18 baseline: two temporal residual stages, temporal collapse, two spatial residual stages.

    paper: Moreh et al. 2022, ResNet18 encoder with transposed-conv decoder (1-D temporal then 2-D spatial).
    """

    paper = "Moreh et al. 2022, ResNet18 (1-D temporal + 2-D spatial convolutions)"
    default_loss = "dice"

    def __init__(
        self,
        in_channels: int = 2,
        n_time: int = 2000,
        n_sensors: int = 81,
        sensor_grid: tuple[int, int] = (9, 9),
        mask_size: int = 36,
        classes: int = 1,
        activation: str = "relu",
        width: int = 32,
        input_pool: int = 4,
        decoder_channels: tuple[int, ...] = (32, 16, 8),
    ):
        super().__init__(in_channels, n_time, n_sensors, sensor_grid, mask_size, classes, activation)
        w = width
        self.input_pool = nn.MaxPool2d((input_pool, 1))
        self.stem = nn.Sequential(
            ConvNormAct(in_channels, w, (7, 1), (2, 1), (3, 0), activation=activation),
            nn.MaxPool2d((3, 1), (2, 1), (1, 0)),
        )
        self.stage1 = _stage(w, w, (3, 1), (1, 1), activation)
        self.stage2 = _stage(w, 2 * w, (3, 1), (2, 1), activation)
        t = n_time // input_pool
        for _ in range(3):  # stem conv, stem pool, stage 2: each (t + 1) // 2 with padding 3, 1, 1
            t = (t + 1) // 2
        self.collapse_kernel = self.time_after("temporal stages", t)
        self.collapse = ConvNormAct(2 * w, 4 * w, (t, 1), activation=activation)
        self.stage3 = _stage(4 * w, 4 * w, (3, 3), (1, 1), activation)
        self.stage4 = _stage(4 * w, 8 * w, (3, 3), (1, 1), activation)

        c0, *ups = decoder_channels
        upsample, c = conv_stack(c0, ups, activation=activation, kernel_size=2, stride=2, transposed=True)
        self.decoder = nn.Sequential(nn.Conv2d(8 * w, c0, 1), *upsample)
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.stem(self.input_pool(x))  # (B, w, T/16, S)
        x = self.stage2(self.stage1(x))  # (B, 2w, T/32, S)
        x = self.to_grid(self.collapse(x))  # (B, 4w, 9, 9)
        x = self.decoder(self.stage4(self.stage3(x)))  # (B, 8, 36, 36)
        return self.head(self.to_mask_size(x))
