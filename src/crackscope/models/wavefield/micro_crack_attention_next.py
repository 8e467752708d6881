"""MicroCrackAttentionNeXt: an asymmetric encoder-decoder with axial attention for wave-field data.

Moreh et al., "MicroCrackAttentionNeXt: Advancing Microcrack Detection in Wave Field Analysis
Using Deep Neural Networks through Feature Visualization", section 3.2 and Figure 2. Shapes below
are for the paper preset (T = 2000, 9 x 9 sensors, 36 x 36 mask)::

    input                      (B, 2, 2000, 81)
    max-pool (4, 1)            (B, 2, 500, 81)
    4 encoder blocks           (B, 16, 250, 81) -> (B, 32, 125, 81) -> (B, 64, 62, 81) -> (B, 128, 31, 81)
    bottleneck conv (31, 1)    (B, 128, 1, 81)       kernel = time left after the encoder
    reshape to the grid        (B, 128, 9, 9)
    1x1 conv                   (B, 16, 9, 9)
    transposed conv + BN       (B, 8, 18, 18)
    transposed conv + BN       (B, 8, 36, 36)
    1x1 conv                   (B, classes, 36, 36)  logits; the sigmoid lives in the loss

The convolutions of the encoder have kernels (3, 1): they mix time only, never sensors, so temporal
features are learnt first and spatial ones only in the decoder (section 3.2, last paragraph).

Attention (the paper names an "AttentionLayer" computing self-attention over the temporal and
spatial dimensions, added back through a residual connection, without giving its form): here
:class:`~crackscope.nn.AxialAttention`, attention along time for every sensor, then along the sensors
for every time step, then a position-wise MLP, each pre-LayerNorm and residual. Axial attention keeps
the cost at T^2*S + S^2*T instead of (T*S)^2 (20 250 tokens in block 1). Everything else in the paper
fixes about 0.62 M parameters (the bottleneck alone is 128*128*31 = 0.51 M); the reported total is
1.136 M, so the four attention layers hold about 0.52 M = 24 * (16^2 + 32^2 + 64^2 + 128^2). With
q/k/v/out projections at width C on both axes (8 C^2) and an MLP of ratio 8 (16 C^2) the model has
1.14 M parameters at T = 2000 (``mlp_ratio`` changes that; 4 gives 0.96 M).

Decoder up-sampling (``upsample``): the paper's ``"transposed"`` (kernel 2, stride 2) gives every
output pixel exactly one parent cell, so each 4 x 4 patch of the mask is drawn from one sensor's
features with one of four fixed sub-kernels per layer: the checkerboard of Odena et al. (2016).
``"bilinear"`` replaces each by bilinear x2 resizing and a 3 x 3 convolution (their
"resize-convolution"), which shares neighbouring cells; the channel widths are the paper's.

Sensor position (``sensor_position``, off by default as in the paper): every layer before
``to_grid`` treats the 81 sensors alike (the convolutions mix time only, attention compares sensors
by content), and the paper's decoder gives each 4 x 4 patch one sensor's features; the network only
knows where a sensor is from its signal. Once the intact reference is subtracted that is gone, so
``sensor_position=True`` appends two constant channels with each sensor's grid column and row
(:meth:`WaveFieldModel.append_sensor_position`) to the input.

Input stem (``stem``): the paper's ``"maxpool"`` keeps the largest of every ``input_pool`` time
samples. At T = 2000 over the paper plate's 38 ns that leaves 77 ps per sample; a store recorded
at T = 250 keeps 305 ps after pooling, coarser than the crack-position differences in arrival time
between neighbouring sensors. ``"conv"`` replaces the pooling by a strided (input_pool, 1)
convolution to ``channels[0]`` channels + BN + activation, which keeps the waveform inside each
window as channels.

Delay-and-sum channel (``das_channel``, off by default; not in the paper): the record also says,
without training, where a scatterer is: :class:`~crackscope.models.wavefield.delay_and_sum_layer.DelayAndSumImage`
images the scattered field at the travel times source -> pixel -> sensor, at the mask's
resolution, finer than the sensor grid. With ``das_channel=True`` that image (peak 1 per plate) is
joined to the decoder's 8 channels at mask size and mixed by one more 3 x 3 convolution + BN +
activation before the last 1 x 1 convolution. It needs ``acquisition``, the plates' geometry,
which training takes from the store (``store_acquisition``) and writes into the run's config;
``das_mode`` and ``das_window_transits`` choose the waves and the early record it uses.

Other grids and mask sizes: the two transposed convolutions always up-sample 4x (9 x 9 -> 36 x 36);
when that is not ``mask_size`` (or the grid is not square) the 8-channel map is resized bilinearly to
mask_size x mask_size before the last 1x1 convolution. The bottleneck kernel is derived from
``n_time`` (tiny preset: T = 200 -> kernel 3; small: T = 1000 -> 15).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from crackscope.errors import InputError
from crackscope.models import register
from crackscope.models.wavefield.base import WaveFieldModel
from crackscope.models.wavefield.delay_and_sum_layer import DelayAndSumImage
from crackscope.nn import AxialAttention, ConvNormAct, SqueezeExcite


class EncoderBlock(nn.Module):
    """Two (3, 1) convs + BN + act, squeeze-excite, max-pool (2, 1), GroupNorm, residual attention."""

    def __init__(
        self, in_channels: int, out_channels: int, activation: str, head_dim: int, mlp_ratio: int, se_reduction: int
    ):
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, (3, 1), padding=(1, 0), activation=activation)
        self.conv2 = ConvNormAct(out_channels, out_channels, (3, 1), padding=(1, 0), activation=activation)
        self.se = SqueezeExcite(out_channels, se_reduction, activation)
        self.pool = nn.MaxPool2d((2, 1))
        self.norm = nn.GroupNorm(math.gcd(8, out_channels), out_channels)
        self.attention = AxialAttention(out_channels, head_dim, mlp_ratio, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(self.conv2(self.conv1(x)))
        x = self.norm(self.pool(x))
        return self.attention(x)  # x + attention(x): the residual connection is inside the layer


UPSAMPLE_MODES = ("transposed", "bilinear")
STEMS = ("maxpool", "conv")


def upsample_block(in_channels: int, out_channels: int, mode: str, activation: str) -> nn.Module:
    """x2 spatial up-sampling + BN + activation: the paper's transposed convolution (kernel 2,
    stride 2) or bilinear resizing followed by a 3 x 3 convolution (no checkerboard)."""
    if mode == "transposed":
        return ConvNormAct(in_channels, out_channels, 2, stride=2, transposed=True, activation=activation)
    if mode == "bilinear":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            ConvNormAct(in_channels, out_channels, 3, padding=1, activation=activation),
        )
    raise InputError(f"upsample={mode!r} is not one of {', '.join(UPSAMPLE_MODES)}")


@register("micro_crack_attention_next")
class MicroCrackAttentionNeXt(WaveFieldModel):
    """MicroCrackAttentionNeXt: temporal conv + attention encoder, transposed-conv decoder on the grid.

    paper: Moreh et al., MicroCrackAttentionNeXt, section 3.2 / Figure 2 (1.136 M parameters, DSC 0.86;
    best with GELU and the combined weighted Dice loss, Table 1).
    """

    paper = "Moreh et al., MicroCrackAttentionNeXt (section 3.2, Figure 2)"
    default_loss = "combined_weighted_dice"

    def __init__(
        self,
        in_channels: int = 2,
        n_time: int = 2000,
        n_sensors: int = 81,
        sensor_grid: tuple[int, int] = (9, 9),
        mask_size: int = 36,
        classes: int = 1,
        activation: str = "relu",
        channels: tuple[int, ...] = (16, 32, 64, 128),
        input_pool: int = 4,
        head_dim: int = 16,
        mlp_ratio: int = 8,
        se_reduction: int = 8,
        upsample: str = "transposed",
        sensor_position: bool = False,
        stem: str = "maxpool",
        das_channel: bool = False,
        das_mode: str = "sp",
        das_window_transits: float | None = 1.5,
        acquisition: dict | None = None,
    ):
        super().__init__(in_channels, n_time, n_sensors, sensor_grid, mask_size, classes, activation)
        self.sensor_position = bool(sensor_position)
        self.das_channel = bool(das_channel)
        if self.das_channel:
            if in_channels < 2:
                raise InputError(f"das_channel needs the x and y displacements as input (in_channels={in_channels})")
            self.das = DelayAndSumImage(acquisition, n_time, mask_size, das_mode, das_window_transits)
        c = in_channels + 2 * self.sensor_position
        if stem == "maxpool":
            self.input_pool = nn.MaxPool2d((input_pool, 1))
        elif stem == "conv":  # keeps the waveform inside each window as channels instead of its maximum
            self.input_pool = ConvNormAct(
                c, channels[0], (input_pool, 1), stride=(input_pool, 1), activation=activation
            )
        else:
            raise InputError(f"stem={stem!r} is not one of {', '.join(STEMS)}")
        self.stem = stem
        t = n_time // input_pool
        blocks = []
        if stem == "conv":
            c = channels[0]
        for width in channels:
            blocks.append(EncoderBlock(c, width, activation, head_dim, mlp_ratio, se_reduction))
            c, t = width, t // 2
        self.encoder = nn.Sequential(*blocks)
        self.bottleneck_kernel = self.time_after("encoder", t)
        self.bottleneck = ConvNormAct(c, c, (self.bottleneck_kernel, 1), activation=activation)
        self.reduce = nn.Conv2d(c, 16, 1)
        self.up1 = upsample_block(16, 8, upsample, activation)
        self.up2 = upsample_block(8, 8, upsample, activation)
        if self.das_channel:
            self.das_fuse = ConvNormAct(8 + 1, 8, 3, padding=1, activation=activation)
        self.head = nn.Conv2d(8, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        prior = self.das(x) if self.das_channel else None  # (B, 1, 36, 36), from the record as given
        if self.sensor_position:
            x = self.append_sensor_position(x)  # (B, 4, T, S)
        x = self.input_pool(x)  # (B, 2, T/4, S); stem "conv": (B, 16, T/4, S)
        x = self.encoder(x)  # (B, 128, T/64, S)
        x = self.bottleneck(x)  # (B, 128, 1, S)
        x = self.to_grid(x)  # (B, 128, 9, 9)
        x = self.reduce(x)  # (B, 16, 9, 9)
        x = self.to_mask_size(self.up2(self.up1(x)))  # (B, 8, 36, 36)
        if prior is not None:
            x = self.das_fuse(torch.cat([x, prior], dim=1))
        return self.head(x)
