"""The base class and shared pieces of crackscope's wave-field segmentation models (see the package docstring)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crackscope.errors import InputError
from crackscope.errors import require_positive_int as _positive_int
from crackscope.models.contract import NamedModel, check_input_shape
from crackscope.nn import activation as make_activation


class WaveFieldModel(NamedModel, nn.Module):
    """Shared contract of the wave-field models: validated configuration, input check, grid reshape."""

    paper: str = ""
    default_loss: str = "dice"

    def __init__(
        self,
        in_channels: int = 2,
        n_time: int = 2000,
        n_sensors: int = 81,
        sensor_grid: tuple[int, int] = (9, 9),
        mask_size: int = 36,
        classes: int = 1,
        activation: str = "relu",
    ):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.n_time = _positive_int("n_time", n_time)
        self.n_sensors = _positive_int("n_sensors", n_sensors)
        self.mask_size = _positive_int("mask_size", mask_size)
        self.classes = _positive_int("classes", classes)
        grid = (sensor_grid, sensor_grid) if isinstance(sensor_grid, int) else sensor_grid
        if not (
            isinstance(grid, (tuple, list))
            and len(grid) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in grid)
        ):
            raise InputError(
                f"sensor_grid must be (rows, columns) or one side, positive integers (got {sensor_grid!r})"
            )
        ny, nx = grid
        if ny * nx != n_sensors:
            raise InputError(f"sensor_grid {ny}x{nx} has {ny * nx} sensors but n_sensors is {n_sensors}")
        self.sensor_grid = (ny, nx)
        make_activation(activation)  # fail early, naming a bad value
        self.activation = activation

    def expected_input_shape(self) -> tuple[str | int, ...]:
        return ("B", self.in_channels, self.n_time, self.n_sensors)

    def check_input(self, x: torch.Tensor) -> None:
        """InputError naming the expected and the actual shape unless x is (B, C, T, S) as configured."""
        check_input_shape(self.name, x, self.expected_input_shape(), "batch, channels, time, sensors")

    def time_after(self, name: str, t: int, need: int = 1) -> int:
        """``t`` if at least ``need`` time samples survive the down-sampling, else InputError naming n_time."""
        if t < need:
            raise InputError(
                f"n_time={self.n_time} is too short for {self.name}: "
                f"the {name} leaves {t} time samples (needs >= {need})"
            )
        return t

    def to_grid(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, 1, S) sensor features -> (B, C, ny, nx) on the sensor grid (row 0 = bottom)."""
        return x.reshape(x.shape[0], x.shape[1], *self.sensor_grid)

    def append_sensor_position(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, S) -> (B, C + 2, T, S): two constant channels holding each sensor's column and row
        on the grid, scaled to [-1, 1] (sensor s = row * nx + column, row 0 = bottom). Without them a
        network whose layers treat every sensor alike cannot tell where a sensor is once the intact
        field (which differs from sensor to sensor) has been subtracted."""
        ny, nx = self.sensor_grid
        row, col = torch.meshgrid(
            torch.linspace(-1, 1, ny, device=x.device, dtype=x.dtype)
            if ny > 1
            else torch.zeros(1, device=x.device, dtype=x.dtype),
            torch.linspace(-1, 1, nx, device=x.device, dtype=x.dtype)
            if nx > 1
            else torch.zeros(1, device=x.device, dtype=x.dtype),
            indexing="ij",
        )
        position = torch.stack([col.reshape(-1), row.reshape(-1)])[None, :, None, :]  # (1, 2, 1, S)
        return torch.cat([x, position.expand(x.shape[0], 2, x.shape[2], x.shape[3])], dim=1)

    def to_mask_size(self, x: torch.Tensor) -> torch.Tensor:
        """Bilinear resize of (B, C, h, w) to (mask_size, mask_size); identity when it already is."""
        if tuple(x.shape[-2:]) == (self.mask_size, self.mask_size):
            return x
        return F.interpolate(x, size=(self.mask_size, self.mask_size), mode="bilinear", align_corners=False)


# Imported after WaveFieldModel is defined: the model modules subclass it.
