"""Data-level fusion 2-D CNN: the 2nd and 3rd harmonics stacked as a one-channel (2, length) image.

The harmonics paper, section 3.3, Figure 9a. What the paper states: each sample is the (2, 4760) stack of the two
harmonics, fed "through a single channel"; layers Conv2d(1, 36, 2, 1) (in, out, kernel, stride), then
Maxpool2d(6), then FC(4758, 12); valid padding; other hyperparameters as in the 1-D CNN (ReLU after
the convolution, softmax output, normal weights with unit biases, MSE loss).

These sizes do not fit together. A 2 x 2 valid convolution of a (1, 2, 4760) input gives
(36, 1, 4759); a 6 x 6 pooling window cannot be applied to a height of 1; and no pooling of that map
flattens to 4758 features (4758 = 2 * 3 * 13 * 61 is not a multiple of the 36 filters).

What we build -- the stated layers, with the pooling applied where it can act (the time axis)::

    input (B, 2, L), reshaped               (B, 1, 2, L)
    Conv2d(1, 36, kernel (2, 2), stride 1)  (B, 36, 1, L - 1)           valid padding
    ReLU, MaxPool2d((1, 6), stride (1, 6))  (B, 36, 1, (L - 1) // 6)    = (B, 36, 1, 793) for L = 4760
    Flatten, Linear(36 * 793 = 28548, classes)

So the convolution mixes the two harmonics (kernel height 2) and two neighbouring time samples, and
the "6" of the paper's pool is kept as kernel and stride along time. ``filters`` and ``pool`` expose
the 36 and the 6. ``in_channels`` is the number of stacked harmonic rows (2 in the paper; any >= 2
works, the convolution then leaves ``in_channels - 1`` rows).
"""

from __future__ import annotations

import torch
from torch import nn

from crackscope.errors import require_positive_int as _positive_int
from crackscope.models import register
from crackscope.models.harmonics.base import HARMONICS_PAPER, HarmonicModel, init_weights

KERNEL = (2, 2)


@register("harmonic_cnn2d")
class HarmonicCNN2D(HarmonicModel):
    """2-D CNN on the stacked harmonics (a reconstruction of the paper's Figure 9a network, see module).

    paper: the harmonics paper, section 3.3 (Figure 9a), data-level fusion.
    """

    paper = f"{HARMONICS_PAPER} (section 3.3, Figure 9a; layer sizes reconstructed)"
    min_in_channels = KERNEL[0]

    def __init__(
        self,
        in_channels: int = 2,
        length: int = 4760,
        classes: int = 12,
        init: str = "paper",
        filters: int = 36,
        pool: int = 6,
    ):
        super().__init__(in_channels, length, classes, init)
        self.filters = _positive_int("filters", filters)
        self.pool_size = _positive_int("pool", pool)
        self.conv = nn.Conv2d(1, filters, KERNEL, stride=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d((1, pool), stride=(1, pool))
        self.rows_out = in_channels - KERNEL[0] + 1
        n = self.size_after("convolution", length - KERNEL[1] + 1)
        self.time_out = self.size_after(f"max-pooling by {pool}", n // pool)
        self.fc = nn.Linear(filters * self.rows_out * self.time_out, classes)
        init_weights(self, init)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, rows, length) -> the flattened FC input (B, filters * (rows - 1) * time_out); no shape check."""
        x = self.pool(self.act(self.conv(x.unsqueeze(1))))
        return torch.flatten(x, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.fc(self.features(x))
