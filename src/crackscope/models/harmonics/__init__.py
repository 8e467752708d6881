"""Harmonic-signal classifiers: nonlinear ultrasonic harmonics (B, in_channels, length) -> logits (B, classes).

The harmonics paper ("Multi-Harmonic Nonlinear Ultrasonic Fusion with Deep Learning for Subtle Parameter
Identification of Micro-Crack Groups", sections 3.1 and 3.3) identifies the quantity and size of a
micro-crack group from the 2nd and 3rd harmonic responses (4760 time samples each) received by one
sensor. Every model here takes the same constructor keywords::

    in_channels, length=4760, classes=12, init="paper"

``classes=12`` is the paper's decoupled task (3 quantity x 4 size labels); single-parameter
identification (section 3.1) uses 3 or 4. A model returns raw logits; the paper applies a softmax and
trains with the MSE between that probability vector and the one-hot target (``default_loss``).

Registered here:

* ``harmonic_cnn1d`` -- the 1-D CNN of section 3.1 (Figure 5); ``in_channels=2`` is the two-channel
  data-level fusion of section 3.3 (Figure 9b).
* ``harmonic_cnn2d`` -- the data-level fusion 2-D CNN of section 3.3 (Figure 9a), a reconstruction
  (the paper's layer sizes do not fit together; see its module).
* ``harmonic_feature_fusion`` -- feature-level fusion (section 3.3, Figure 9c): one 1-D CNN per
  harmonic, FC outputs summed.

Initialisation (``init``):

* ``"paper"`` (default): the paper initialises "all convolutional kernel weights and FC neuron weights"
  from a normal distribution and sets every bias to 1. Read literally as N(0, 1), the FC layer's
  7104 inputs give logits with a standard deviation in the hundreds, so the softmax starts saturated
  (one-hot outputs, vanishing gradients under the MSE loss). We keep the normal distribution and the
  unit biases but scale each weight tensor to std ``1 / sqrt(fan_in)`` (LeCun normal), which keeps
  the pre-activation variance of order one layer after layer.
* ``"default"``: PyTorch's own initialisation of Conv/Linear (Kaiming-uniform, a = sqrt(5)).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from crackscope.errors import InputError
from crackscope.errors import require_positive_int as _positive_int
from crackscope.models.contract import NamedModel, check_input_shape

__all__ = ["HarmonicModel", "HarmonicCNN1D", "HarmonicCNN2D", "HarmonicFeatureFusion", "INITS", "init_weights"]

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
from crackscope.models.harmonics.cnn1d import HarmonicCNN1D  # noqa: E402
from crackscope.models.harmonics.cnn2d import HarmonicCNN2D  # noqa: E402
from crackscope.models.harmonics.feature_fusion import HarmonicFeatureFusion  # noqa: E402
