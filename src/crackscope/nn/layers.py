"""Small, named, reusable layers shared by the models.

* :func:`activation` builds the non-linearity a config names (``relu``, ``gelu``, ``elu``, ``selu``:
  the four studied in MicroCrackAttentionNeXt, Moreh et al., section 3.3.1).
* :class:`ConvNormAct`: convolution (or transposed convolution) + BatchNorm + activation.
* :class:`SqueezeExcite`: channel recalibration (Hu et al. 2018, "Squeeze-and-Excitation Networks").
* :class:`AxialAttention`: self-attention along the time axis and along the sensor axis of a
  (B, C, T, S) feature map, the attention layer of MicroCrackAttentionNeXt.

Feature maps are (B, C, H, W) throughout; the wave-field models use H = time, W = sensors, so a
kernel (k, 1) is a 1-D convolution over time applied to every sensor with shared weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crackscope.errors import InputError

__all__ = ["ACTIVATIONS", "activation", "ConvNormAct", "SqueezeExcite", "AxialAttention"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU, "selu": nn.SELU}


def activation(name: str) -> nn.Module:
    """A new activation module for ``name`` (relu | gelu | elu | selu); InputError names a bad one."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise InputError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


_activation = activation  # the classes below take an ``activation`` argument that shadows the factory


class ConvNormAct(nn.Sequential):
    """Conv2d (or ConvTranspose2d with ``transposed=True``) -> BatchNorm2d -> activation.

    ``norm=False`` drops the BatchNorm (the convolution then keeps its bias); ``activation=None``
    drops the non-linearity.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        activation: str | None = "relu",
        norm: bool = True,
        transposed: bool = False,
    ):
        conv_cls = nn.ConvTranspose2d if transposed else nn.Conv2d
        layers: list[nn.Module] = [
            conv_cls(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=not norm)
        ]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels))
        if activation is not None:
            layers.append(_activation(activation))
        super().__init__(*layers)


def conv_stack(in_channels: int, widths, *, activation: str | None, **conv_kw) -> tuple[nn.Sequential, int]:
    """``ConvNormAct`` layers in series through ``widths``; returns (the stack, its output channels)."""
    layers, channels = [], in_channels
    for width in widths:
        layers.append(ConvNormAct(channels, width, activation=activation, **conv_kw))
        channels = width
    return nn.Sequential(*layers), channels


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation (Hu et al. 2018, eqs. 2-4): rescale each channel by a gate in (0, 1).

    Squeeze: global average over H x W; excite: C -> C/reduction -> C with the activation between
    and a sigmoid at the end; the input is multiplied by the per-channel gate.
    """

    def __init__(self, channels: int, reduction: int = 8, activation: str = "relu", min_hidden: int = 4):
        super().__init__()
        hidden = max(min_hidden, channels // reduction)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.act = _activation(activation)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


class _AxisSelfAttention(nn.Module):
    """Multi-head self-attention along one axis of a channels-last (B, T, S, C) tensor."""

    def __init__(self, channels: int, head_dim: int):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        if channels % self.heads:
            raise InputError(f"attention channels {channels} are not divisible into {self.heads} heads")
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        """x (B, T, S, C); ``axis`` 1 attends over time (one sequence per sensor), 2 over sensors."""
        B, T, S, C = x.shape
        h, d = self.heads, C // self.heads
        qkv = self.qkv(x).view(B, T, S, 3, h, d)
        if axis == 1:
            q, k, v = qkv.permute(3, 0, 2, 4, 1, 5).reshape(3, B * S, h, T, d)
            y = F.scaled_dot_product_attention(q, k, v).view(B, S, h, T, d).permute(0, 3, 1, 2, 4)
        else:
            q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).reshape(3, B * T, h, S, d)
            y = F.scaled_dot_product_attention(q, k, v).view(B, T, h, S, d).permute(0, 1, 3, 2, 4)
        return self.proj(y.reshape(B, T, S, C))


class AxialAttention(nn.Module):
    """Self-attention over the temporal and the spatial (sensor) dimension of a (B, C, T, S) map.

    Full attention over all T x S positions would cost (T*S)^2 (250*81 = 20 250 tokens in the first
    block of MicroCrackAttentionNeXt); axial attention (Ho et al. 2019, "Axial Attention in
    Multidimensional Transformers") factorises it into attention along time for every sensor
    (T^2 * S) and along sensors for every time step (S^2 * T), so every position still reaches every
    other in two hops. Exact form, channels-last, each sub-layer pre-LayerNorm and residual::

        x = x + Attn_time(LN(x))      # heads of head_dim channels, q/k/v/out projections C -> C
        x = x + Attn_sensor(LN(x))
        x = x + MLP(LN(x))            # C -> mlp_ratio*C -> C with the model's activation

    The residual connections are inside, so the layer returns the input plus the attention output
    (MicroCrackAttentionNeXt, section 3.2). Parameters: (8 + 2*mlp_ratio) * C^2 + O(C).
    """

    def __init__(self, channels: int, head_dim: int = 16, mlp_ratio: int = 8, activation: str = "relu"):
        super().__init__()
        self.norm_time = nn.LayerNorm(channels)
        self.time = _AxisSelfAttention(channels, head_dim)
        self.norm_sensor = nn.LayerNorm(channels)
        self.sensor = _AxisSelfAttention(channels, head_dim)
        self.norm_mlp = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear(channels, mlp_ratio * channels),
            _activation(activation),
            nn.Linear(mlp_ratio * channels, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, T, S, C)
        x = x + self.time(self.norm_time(x), axis=1)
        x = x + self.sensor(self.norm_sensor(x), axis=2)
        x = x + self.mlp(self.norm_mlp(x))
        return x.permute(0, 3, 1, 2)
