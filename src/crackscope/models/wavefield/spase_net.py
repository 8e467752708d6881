"""SpAsE-Net: temporal 1-D convolutions per sensor, convolutional spatial fusion, transposed-conv predictor.

Wuttke et al. 2021 (SpAsE-Net, crack detection in solids from sparse sensor wave fields simulated with
the dynamic lattice element method), as summarised in Moreh et al., MicroCrackAttentionNeXt, section 2.
Three stages, shapes for the paper preset (T = 2000, 9 x 9 sensors, 36 x 36 mask)::

    input                                  (B, 2, 2000, 81)
    temporal: 4 x [conv (7, 1) + BN + act, max-pool]     -> (B, 64, 62, 81)   same weights for every sensor
    temporal collapse: conv (62, 1) + BN + act           -> (B, 128, 1, 81)
    reshape to the grid                    (B, 128, 9, 9)
    spatial fusion: 3 x [conv 3x3 + BN + act]            -> (B, 64, 9, 9)     fully convolutional
    predictor: 2 x [transposed conv 2x2 / 2 + BN + act]  -> (B, 16, 36, 36)
    1x1 conv                               (B, classes, 36, 36) logits

The text we have fixes only the three stages, the 1-D temporal convolutions and the focal loss; the
widths, kernel sizes and pooling factors are ours (pooling 4, 2, 2, 2 as in MicroCrackAttentionNeXt so
that the tiny preset's T = 200 still works). A mask size other than 4x the grid is reached by a
bilinear resize before the last 1x1 convolution.
"""

from __future__ import annotations

import torch
from torch import nn

from crackscope.models import register
from crackscope.models.wavefield.base import WaveFieldModel
from crackscope.nn import ConvNormAct, conv_stack


@register("spase_net")
class SpAsENet(WaveFieldModel):
    """SpAsE-Net baseline, trained with focal loss in the source.

    paper: Wuttke et al. 2021, SpAsE-Net (1-D temporal CNN, convolutional spatial fusion, transposed-conv
    predictor, focal loss).
    """

    paper = "Wuttke et al. 2021, SpAsE-Net"
    default_loss = "focal"

    def __init__(
        self,
        in_channels: int = 2,
        n_time: int = 2000,
        n_sensors: int = 81,
        sensor_grid: tuple[int, int] = (9, 9),
        mask_size: int = 36,
        classes: int = 1,
        activation: str = "relu",
        temporal_channels: tuple[int, ...] = (16, 32, 64, 64),
        temporal_pools: tuple[int, ...] = (4, 2, 2, 2),
        sensor_features: int = 128,
        fusion_channels: tuple[int, ...] = (128, 64, 64),
        predictor_channels: tuple[int, ...] = (32, 16),
    ):
        super().__init__(in_channels, n_time, n_sensors, sensor_grid, mask_size, classes, activation)
        layers, c, t = [], in_channels, n_time
        for width, pool in zip(temporal_channels, temporal_pools, strict=True):
            layers += [ConvNormAct(c, width, (7, 1), padding=(3, 0), activation=activation), nn.MaxPool2d((pool, 1))]
            c, t = width, t // pool
        self.temporal = nn.Sequential(*layers)
        self.collapse_kernel = self.time_after("temporal convolutions", t)
        self.collapse = ConvNormAct(c, sensor_features, (t, 1), activation=activation)

        self.fusion, c = conv_stack(sensor_features, fusion_channels, activation=activation, kernel_size=3, padding=1)
        self.predictor, c = conv_stack(
            c, predictor_channels, activation=activation, kernel_size=2, stride=2, transposed=True
        )
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.temporal(x)  # (B, 64, T', S)
        x = self.to_grid(self.collapse(x))  # (B, 128, 9, 9)
        x = self.predictor(self.fusion(x))  # (B, 16, 36, 36)
        return self.head(self.to_mask_size(x))
