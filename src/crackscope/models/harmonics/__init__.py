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

from crackscope.models.harmonics.base import (
    HARMONICS_PAPER,
    INITS,
    HarmonicModel,
    init_weights,
)
from crackscope.models.harmonics.cnn1d import HarmonicCNN1D
from crackscope.models.harmonics.cnn2d import HarmonicCNN2D
from crackscope.models.harmonics.feature_fusion import HarmonicFeatureFusion

__all__ = [
    "HARMONICS_PAPER",
    "HarmonicModel",
    "HarmonicCNN1D",
    "HarmonicCNN2D",
    "HarmonicFeatureFusion",
    "INITS",
    "init_weights",
]
