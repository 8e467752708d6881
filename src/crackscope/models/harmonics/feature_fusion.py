"""Feature-level fusion: one independent 1-D CNN per harmonic, their FC outputs summed.

The harmonics paper, section 3.3, Figure 9c: the 2nd and 3rd harmonics go through two independent, identical 1-D
CNNs (the section 3.1 network, each with its own FC(7104, 12)), and the two FC outputs are summed
algebraically before the softmax. Input (B, 2, length): channel 0 is the 2nd harmonic, channel 1 the
3rd. ``in_channels=N`` builds N branches, one per channel.
"""

from __future__ import annotations

import torch
from torch import nn

from crackscope.models import register
from crackscope.models.harmonics.base import HARMONICS_PAPER, HarmonicModel
from crackscope.models.harmonics.cnn1d import HarmonicCNN1D


@register("harmonic_feature_fusion")
class HarmonicFeatureFusion(HarmonicModel):
    """Sum of per-harmonic :class:`HarmonicCNN1D` logits: ``branches[c]`` sees channel ``c`` only.

    paper: the harmonics paper, section 3.3 (Figure 9c), feature-level fusion.
    """

    paper = f"{HARMONICS_PAPER} (section 3.3, Figure 9c)"

    def __init__(self, in_channels: int = 2, length: int = 4760, classes: int = 12, init: str = "paper"):
        super().__init__(in_channels, length, classes, init)
        # Each branch initialises itself (paper or default), drawing from the global RNG in turn.
        self.branches = nn.ModuleList(HarmonicCNN1D(1, length, classes, init) for _ in range(in_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        out = self.branches[0](x[:, 0:1])
        for c in range(1, self.in_channels):
            out = out + self.branches[c](x[:, c : c + 1])
        return out
