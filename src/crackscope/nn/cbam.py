"""Convolutional Block Attention Module (Woo et al. 2018, "CBAM: Convolutional Block Attention Module").

A feature map F (B, C, H, W) is refined in two steps, channel attention first (eq. 1)::

    F'  = M_c(F)  * F        M_c: (B, C, 1, 1), broadcast over H x W
    F'' = M_s(F') * F'       M_s: (B, 1, H, W), broadcast over C

The channel map (eq. 2) passes the average- and the max-pooled descriptor through ONE shared MLP,
W0 (C -> C/r) + ReLU + W1 (C/r -> C), and sums them before the sigmoid::

    M_c(F) = sigmoid( MLP(AvgPool(F)) + MLP(MaxPool(F)) )

The spatial map (eq. 3) pools along the channel axis and applies one 7x7 convolution::

    M_s(F) = sigmoid( f7x7( [AvgPool_c(F); MaxPool_c(F)] ) )
"""

from __future__ import annotations

import torch
from torch import nn

from crackscope.errors import InputError

__all__ = ["ChannelAttention", "SpatialAttention", "CBAM"]


class ChannelAttention(nn.Module):
    """Channel map M_c of CBAM (Woo et al. 2018, eq. 2): shared MLP on avg- and max-pooled descriptors.

    The MLP is two 1x1 convolutions with biases, C -> max(min_hidden, C // reduction) -> C.
    ``forward`` returns the refined map M_c(F) * F; :meth:`attention` returns M_c(F) itself.
    """

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 1):
        super().__init__()
        if channels < 1 or reduction < 1:
            raise InputError(f"CBAM needs channels >= 1 and reduction >= 1 (got {channels}, {reduction})")
        hidden = max(min_hidden, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3), keepdim=True)
        mx = x.amax(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.mlp(avg) + self.mlp(mx))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class SpatialAttention(nn.Module):
    """Spatial map M_s of CBAM (Woo et al. 2018, eq. 3): [mean_c; max_c] -> k x k conv -> sigmoid.

    ``kernel_size`` is 7 in the paper; the convolution keeps its bias and is 'same'-padded so the
    map has the input's H x W. ``forward`` returns M_s(F) * F; :meth:`attention` returns M_s(F).
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise InputError(f"spatial attention kernel_size must be odd and positive (got {kernel_size})")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class CBAM(nn.Module):
    """Channel attention then spatial attention, in series (Woo et al. 2018, eq. 1).

    Parameters: 2 * C * h + h + C for the MLP (h = max(1, C // reduction)) plus 2 * k^2 + 1 for the
    spatial convolution (99 for k = 7).
    """

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(spatial_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))
