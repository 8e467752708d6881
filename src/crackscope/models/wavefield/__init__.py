"""Wave-field segmentation models: sensor signals (B, in_channels, T, S) -> crack-mask logits.

Every model takes the same constructor keywords (all with defaults, the paper preset's values)::

    in_channels=2, n_time=2000, n_sensors=81, sensor_grid=(9, 9), mask_size=36, classes=1,
    activation="relu"

and maps an input (B, in_channels, n_time, n_sensors), sensors flattened row-major from the
bottom-left (s = iy * nx + ix), to logits (B, classes, mask_size, mask_size) whose row 0 is the
bottom of the plate, like the masks. :class:`WaveFieldModel` holds that shared contract; the
modules below it hold one published architecture each and register it by name.
"""

from crackscope.models.wavefield.base import (
    WaveFieldModel,
)
from crackscope.models.wavefield.densenet1d import DenseNet1D
from crackscope.models.wavefield.micro_crack_attention_next import MicroCrackAttentionNeXt
from crackscope.models.wavefield.resnet18_1d2d import ResNet18_1D2D
from crackscope.models.wavefield.simple_cnn import SimpleCNN
from crackscope.models.wavefield.spase_net import SpAsENet

__all__ = ["WaveFieldModel", "MicroCrackAttentionNeXt", "SpAsENet", "DenseNet1D", "SimpleCNN", "ResNet18_1D2D"]
