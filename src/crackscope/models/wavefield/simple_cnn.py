"""SimpleCNN (SCNN): 1-D convolutions over time, 2-D convolutions over the sensor grid, transposed-conv decoder.

Moreh et al. 2022 (deep neural networks for crack detection and localisation from spatio-temporal
wave-field data; the SCNN baseline beside ResNet18), as summarised in Moreh et al.,
MicroCrackAttentionNeXt, section 2. Shapes for the paper preset::

    input                                          (B, 2, 2000, 81)
    max-pool (4, 1)                                (B, 2, 500, 81)
    3 x [conv (5, 1) + BN + act, max-pool (2, 1)]  -> (B, 64, 62, 81)
    temporal collapse: conv (62, 1) + BN + act     -> (B, 64, 1, 81)
    reshape to the grid                            (B, 64, 9, 9)
    2 x [conv 3x3 + BN + act]                      -> (B, 32, 9, 9)
    2 x [transposed conv 2x2 / 2 + BN + act]       -> (B, 8, 36, 36)
    1x1 conv                                       (B, classes, 36, 36) logits

Widths and kernel sizes are ours (the summary fixes the 1-D-then-2-D order and the decoder type).
"""

from __future__ import annotations

import torch
from torch import nn

from crackscope.models import register
from crackscope.models.wavefield.base import WaveFieldModel
from crackscope.nn import ConvNormAct, conv_stack


@register("simple_cnn")
class SimpleCNN(WaveFieldModel):
    """SimpleCNN baseline: temporal 1-D convs, spatial 2-D convs, transposed-conv decoder.

    paper: Moreh et al. 2022, SimpleCNN (SCNN) baseline for crack detection from wave-field data.
    """

    paper = "Moreh et al. 2022, SimpleCNN (SCNN)"
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
        temporal_channels: tuple[int, ...] = (16, 32, 64),
        spatial_channels: tuple[int, ...] = (64, 32),
        decoder_channels: tuple[int, ...] = (16, 8),
        input_pool: int = 4,
    ):
        super().__init__(in_channels, n_time, n_sensors, sensor_grid, mask_size, classes, activation)
        layers, c, t = [nn.MaxPool2d((input_pool, 1))], in_channels, n_time // input_pool
        for width in temporal_channels:
            layers += [ConvNormAct(c, width, (5, 1), padding=(2, 0), activation=activation), nn.MaxPool2d((2, 1))]
            c, t = width, t // 2
        self.temporal = nn.Sequential(*layers)
        self.collapse_kernel = self.time_after("temporal convolutions", t)
        self.collapse = ConvNormAct(c, c, (t, 1), activation=activation)

        self.spatial, c = conv_stack(c, spatial_channels, activation=activation, kernel_size=3, padding=1)
        self.decoder, c = conv_stack(
            c, decoder_channels, activation=activation, kernel_size=2, stride=2, transposed=True
        )
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.collapse(self.temporal(x))  # (B, 64, 1, S)
        x = self.spatial(self.to_grid(x))  # (B, 32, 9, 9)
        x = self.decoder(x)  # (B, 8, 36, 36)
        return self.head(self.to_mask_size(x))
