"""Reusable layers: activations, conv blocks, squeeze-and-excitation, attention, binary (BNN) blocks."""

from crackscope.nn.binary import (
    ABAIO,
    DBNIEB,
    PAN,
    AdaptiveBinaryActivation,
    BinaryConv2d,
    Maxout,
    RPReLU,
    RSign,
    SignActivation,
    adaptive_binary_weight,
    binary_activation,
    sign_binary_weight,
    sign_ste,
    xnor_binary_weight,
)
from crackscope.nn.cbam import CBAM, ChannelAttention, SpatialAttention
from crackscope.nn.layers import ACTIVATIONS, AxialAttention, ConvNormAct, SqueezeExcite, activation, conv_stack

__all__ = [
    "ACTIVATIONS",
    "activation",
    "ConvNormAct",
    "conv_stack",
    "SqueezeExcite",
    "AxialAttention",
    "CBAM",
    "ChannelAttention",
    "SpatialAttention",
    "sign_ste",
    "adaptive_binary_weight",
    "xnor_binary_weight",
    "sign_binary_weight",
    "binary_activation",
    "AdaptiveBinaryActivation",
    "SignActivation",
    "RSign",
    "RPReLU",
    "Maxout",
    "BinaryConv2d",
    "ABAIO",
    "DBNIEB",
    "PAN",
]
