"""The base class and shared pieces of crackscope's harmonic-signal classifiers (see the package docstring)."""

from __future__ import annotations

import math

import torch
from torch import nn

from crackscope.errors import InputError
from crackscope.errors import require_positive_int as _positive_int
from crackscope.models.contract import NamedModel, check_input_shape

HARMONICS_PAPER = (
    "Multi-Harmonic Nonlinear Ultrasonic Fusion with Deep Learning for Subtle Parameter "
    "Identification of Micro-Crack Groups"
)
INITS = ("paper", "default")


def init_weights(module: nn.Module, init: str) -> None:
    """Initialise every Conv/Linear layer inside ``module`` by the scheme ``init`` (see module docstring)."""
    if init == "default":
        return  # the layers were just built with PyTorch's initialisation
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()  # in_features, or in_channels x kernel size
            with torch.no_grad():
                m.weight.normal_(0.0, 1.0 / math.sqrt(fan_in))
                if m.bias is not None:
                    m.bias.fill_(1.0)


class HarmonicModel(NamedModel, nn.Module):
    """Shared contract of the harmonic classifiers: validated configuration and input check."""

    paper: str = ""
    # The paper trains with the MSE between softmax(logits) and one-hot targets (crackscope.losses).
    default_loss: str = "softmax_mse"
    min_in_channels: int = 1

    def __init__(self, in_channels: int = 1, length: int = 4760, classes: int = 12, init: str = "paper"):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        if in_channels < self.min_in_channels:
            raise InputError(f"{self.name} needs in_channels >= {self.min_in_channels} (got {in_channels})")
        self.length = _positive_int("length", length)
        self.classes = _positive_int("classes", classes)
        if init not in INITS:
            raise InputError(f"init={init!r} is not one of: {', '.join(INITS)}")
        self.init = init

    def check_input(self, x: torch.Tensor) -> None:
        """InputError naming the expected and the actual shape unless x is (B, in_channels, length)."""
        check_input_shape(self.name, x, ("B", self.in_channels, self.length), "batch, harmonics, time")

    def size_after(self, what: str, n: int, need: int = 1) -> int:
        """``n`` if at least ``need`` samples survive ``what``, else InputError naming ``length``."""
        if n < need:
            raise InputError(
                f"length={self.length} is too short for {self.name}: the {what} leaves {n} samples (needs >= {need})"
            )
        return n


# Imported after HarmonicModel is defined: the model modules subclass it.
