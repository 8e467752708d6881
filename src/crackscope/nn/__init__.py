"""Reusable layers: activations, conv blocks, squeeze-and-excitation, attention."""

from crackscope.nn.layers import ACTIVATIONS, AxialAttention, ConvNormAct, SqueezeExcite, activation

__all__ = ["ACTIVATIONS", "activation", "ConvNormAct", "SqueezeExcite", "AxialAttention"]
