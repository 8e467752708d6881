"""Reusable layers: activations, conv blocks, squeeze-and-excitation, attention."""

from crackscope.nn.cbam import CBAM, ChannelAttention, SpatialAttention
from crackscope.nn.layers import ACTIVATIONS, AxialAttention, ConvNormAct, SqueezeExcite, activation, conv_stack

__all__ = ["ACTIVATIONS", "activation", "ConvNormAct", "conv_stack", "SqueezeExcite", "AxialAttention",
           "CBAM", "ChannelAttention", "SpatialAttention"]
