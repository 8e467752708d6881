"""The harmonics paper's 1-D CNN for harmonic signals (section 3.1, Figure 5; two-channel variant:
section 3.3, Figure 9b).

Layers and shapes for the paper's length of 4760::

    input                              (B, C, 4760)      C = 1 (one harmonic) or 2 (2nd + 3rd)
    Conv1d(C, 12, kernel 3, stride 1)  (B, 12, 4758)     valid padding
    ReLU, MaxPool1d(4, stride 4)       (B, 12, 1189)
    Conv1d(12, 24, kernel 3, stride 1) (B, 24, 1187)
    ReLU, MaxPool1d(4, stride 4)       (B, 24, 296)
    Flatten, Linear(7104, classes)     (B, classes)      logits; the paper applies a softmax

Pooling stride: section 3.1 annotates the pools as "Maxpool1d (4, 2)" (kernel 4, stride 2), while the
Figure 9b network is given as "Maxpool1d (4)" (stride = kernel). Both state FC input 7104, and only
stride 4 yields it: 24 x 296 = 7104, whereas stride 2 would leave 24 x 1187 = 28488 features. We use
kernel 4 with stride 4. The FC input size is computed from ``length``, so any length >= 26 works.
"""

from __future__ import annotations

import torch
from torch import nn

from crackscope.models import register
from crackscope.models.harmonics.base import HARMONICS_PAPER, HarmonicModel, init_weights

KERNEL, POOL = 3, 4
WIDTHS = (12, 24)


@register("harmonic_cnn1d")
class HarmonicCNN1D(HarmonicModel):
    """1-D CNN on one harmonic (``in_channels=1``) or on the 2nd and 3rd harmonics as channels (``2``).

    paper: the harmonics paper, section 3.1 (Figure 5) and section 3.3 (Figure 9b).
    """

    paper = f"{HARMONICS_PAPER} (section 3.1, Figure 5; section 3.3, Figure 9b)"

    def __init__(self, in_channels: int = 1, length: int = 4760, classes: int = 12, init: str = "paper"):
        super().__init__(in_channels, length, classes, init)
        self.conv1 = nn.Conv1d(in_channels, WIDTHS[0], KERNEL, stride=1)
        self.pool1 = nn.MaxPool1d(POOL, stride=POOL)
        self.conv2 = nn.Conv1d(WIDTHS[0], WIDTHS[1], KERNEL, stride=1)
        self.pool2 = nn.MaxPool1d(POOL, stride=POOL)
        self.act = nn.ReLU()
        n = self.size_after("first convolution", length - KERNEL + 1)
        n = self.size_after("first max-pooling", n // POOL, need=KERNEL)
        n = self.size_after("second convolution", n - KERNEL + 1)
        self.time_out = self.size_after("second max-pooling", n // POOL)
        self.fc = nn.Linear(WIDTHS[1] * self.time_out, classes)
        init_weights(self, init)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, length) -> the flattened FC input (B, 24 * time_out); no shape check."""
        x = self.pool1(self.act(self.conv1(x)))
        x = self.pool2(self.act(self.conv2(x)))
        return torch.flatten(x, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.fc(self.features(x))
