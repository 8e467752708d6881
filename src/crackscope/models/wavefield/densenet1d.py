"""1D-DenseNet: a densely connected temporal encoder and a transposed-convolution decoder.

Moreh et al. 2024 (encoder backbones x decoders for crack detection from seismic wave fields; the
best pair was a 1-D DenseNet encoder with transposed-convolution decoding, 1.393 M parameters,
accuracy 83.68 %), as summarised in Moreh et al., MicroCrackAttentionNeXt, section 2. The dense
blocks follow DenseNet-BC (Huang et al. 2017, section 3): each layer is BN-act-conv 1x1 (to
``bn_size * growth`` channels) then BN-act-conv (3, 1) (``growth`` new channels) and sees the
concatenation of all earlier feature maps of its block; transitions halve the channels (1x1 conv)
and the time axis (average pool (2, 1)). All convolutions mix time only. Shapes, paper preset::

    input                                      (B, 2, 2000, 81)
    max-pool (4, 1), stem conv (7, 1) / 2      (B, 32, 250, 81)
    dense block 1 + transition                 (B, 64, 125, 81)
    dense block 2 + transition                 (B, 80, 62, 81)
    dense block 3 + transition                 (B, 88, 31, 81)
    dense block 4, BN + act                    (B, 184, 31, 81)
    temporal collapse conv (31, 1) + BN + act  (B, 192, 1, 81) -> grid (B, 192, 9, 9)
    1x1 conv, 2 x transposed conv 2x2 / 2      (B, 8, 36, 36) -> 1x1 conv -> (B, classes, 36, 36)

Growth 24, 4 layers per block and 192 sensor features give 1.41 M parameters at T = 2000 (the
published size is 1.393 M); the exact block configuration is ours (the summary gives only the size and the
encoder/decoder types). The collapse kernel is derived from ``n_time``.
"""

from __future__ import annotations

import torch
from torch import nn

from crackscope.models import register
from crackscope.models.wavefield.base import WaveFieldModel
from crackscope.nn import ConvNormAct
from crackscope.nn import activation as make_activation


class DenseLayer(nn.Module):
    """DenseNet-BC layer: BN-act-conv1x1 -> BN-act-conv(3, 1); returns ``growth`` new channels."""

    def __init__(self, in_channels: int, growth: int, bn_size: int, activation: str):
        super().__init__()
        self.layers = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            make_activation(activation),
            nn.Conv2d(in_channels, bn_size * growth, 1, bias=False),
            nn.BatchNorm2d(bn_size * growth),
            make_activation(activation),
            nn.Conv2d(bn_size * growth, growth, (3, 1), padding=(1, 0), bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.layers(x)], dim=1)


class Transition(nn.Sequential):
    """BN-act-conv1x1 (channels * compression) -> average pool (2, 1) over time."""

    def __init__(self, in_channels: int, out_channels: int, activation: str):
        super().__init__(
            nn.BatchNorm2d(in_channels),
            make_activation(activation),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.AvgPool2d((2, 1)),
        )


@register("densenet1d")
class DenseNet1D(WaveFieldModel):
    """1D-DenseNet encoder (temporal dense blocks) with a transposed-convolution decoder.

    paper: Moreh et al. 2024, 1D-DenseNet encoder + transposed-convolution decoder (1.393 M parameters).
    """

    paper = "Moreh et al. 2024, 1D-DenseNet encoder with transposed-convolution decoder"
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
        growth: int = 24,
        block_layers: tuple[int, ...] = (4, 4, 4, 4),
        bn_size: int = 4,
        stem_channels: int = 32,
        compression: float = 0.5,
        sensor_features: int = 192,
        input_pool: int = 4,
    ):
        super().__init__(in_channels, n_time, n_sensors, sensor_grid, mask_size, classes, activation)
        stem = ConvNormAct(in_channels, stem_channels, (7, 1), (2, 1), (3, 0), activation=activation)
        layers: list[nn.Module] = [nn.MaxPool2d((input_pool, 1)), stem]
        c, t = stem_channels, (n_time // input_pool + 1) // 2
        for i, n_layers in enumerate(block_layers):
            for _ in range(n_layers):
                layers.append(DenseLayer(c, growth, bn_size, activation))
                c += growth
            if i < len(block_layers) - 1:
                layers.append(Transition(c, int(c * compression), activation))
                c, t = int(c * compression), t // 2
        layers += [nn.BatchNorm2d(c), make_activation(activation)]
        self.encoder = nn.Sequential(*layers)
        self.collapse_kernel = self.time_after("dense blocks", t)
        self.collapse = ConvNormAct(c, sensor_features, (t, 1), activation=activation)

        self.decoder = nn.Sequential(
            nn.Conv2d(sensor_features, 16, 1),
            ConvNormAct(16, 8, 2, stride=2, transposed=True, activation=activation),
            ConvNormAct(8, 8, 2, stride=2, transposed=True, activation=activation),
        )
        self.head = nn.Conv2d(8, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.collapse(self.encoder(x))  # (B, F, 1, S)
        x = self.decoder(self.to_grid(x))  # (B, 8, 36, 36)
        return self.head(self.to_mask_size(x))
