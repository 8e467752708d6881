"""Wave-field segmentation models and the model registry.

Expected values come from the papers and the data contract, not from running the models: the
published parameter counts (MicroCrackAttentionNeXt 1.136 M, 1D-DenseNet 1.393 M), the bottleneck
kernel T/64 of section 3.2 (31 for T = 2000), the (B, classes, mask, mask) output contract and the
row-major-from-bottom-left sensor order.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from crackscope import models
from crackscope.errors import InputError
from crackscope.models import available, create, register
from crackscope.models.wavefield import (
    DenseNet1D,
    MicroCrackAttentionNeXt,
    ResNet18_1D2D,
    SimpleCNN,
    SpAsENet,
    WaveFieldModel,
)
from crackscope.nn import AxialAttention, SqueezeExcite, activation

WAVEFIELD = {
    "micro_crack_attention_next": MicroCrackAttentionNeXt,
    "spase_net": SpAsENet,
    "densenet1d": DenseNet1D,
    "simple_cnn": SimpleCNN,
    "resnet18_1d2d": ResNet18_1D2D,
}
PRESET_T = {"tiny": 200, "small": 1000, "paper": 2000}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---- shapes and sizes ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", WAVEFIELD)
@pytest.mark.parametrize("preset", PRESET_T)
def test_output_shape_for_each_preset(name, preset):
    t = PRESET_T[preset]
    model = create(name, n_time=t)
    out = model(torch.randn(2, 2, t, 81))
    assert out.shape == (2, 1, 36, 36)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", WAVEFIELD)
def test_other_grid_mask_and_classes(name):
    model = create(name, n_time=200, n_sensors=48, sensor_grid=(6, 8), mask_size=20, classes=3, in_channels=1)
    assert model(torch.randn(2, 1, 200, 48)).shape == (2, 3, 20, 20)
    square = create(name, n_time=200, n_sensors=25, sensor_grid=5, mask_size=20)  # one side for a square grid
    assert square(torch.randn(2, 2, 200, 25)).shape == (2, 1, 20, 20)


@pytest.mark.parametrize(("name", "published"), [("micro_crack_attention_next", 1.136e6), ("densenet1d", 1.393e6)])
def test_parameter_count_matches_the_paper(name, published):
    assert abs(n_params(create(name, n_time=2000)) - published) <= 0.10 * published


@pytest.mark.parametrize(("n_time", "kernel"), [(2000, 31), (1000, 15), (200, 3)])
def test_bottleneck_kernel_spans_the_time_left(n_time, kernel):
    # section 3.2: T/4 after the input pool, halved by each of the four blocks (2000 -> 31)
    model = MicroCrackAttentionNeXt(n_time=n_time)
    assert model.bottleneck[0].kernel_size == (kernel, 1)
    assert model.bottleneck(model.encoder(model.input_pool(torch.randn(1, 2, n_time, 81)))).shape == (1, 128, 1, 81)


def test_micro_crack_attention_next_layout():
    model = MicroCrackAttentionNeXt()
    convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 1)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (2, 16),
        (16, 16),
        (16, 32),
        (32, 32),
        (32, 64),
        (64, 64),
        (64, 128),
        (128, 128),
    ]
    assert all(c.padding == (1, 0) for c in convs)
    assert sum(isinstance(m, SqueezeExcite) for m in model.modules()) == 4
    assert sum(isinstance(m, AxialAttention) for m in model.modules()) == 4
    assert sum(isinstance(m, nn.GroupNorm) for m in model.modules()) == 4
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(u.in_channels, u.out_channels) for u in ups] == [(16, 8), (8, 8)]


def test_sensor_order_is_row_major_from_bottom_left():
    model = SimpleCNN(n_time=200, n_sensors=12, sensor_grid=(3, 4))
    features = torch.arange(12.0).view(1, 1, 1, 12)
    grid = model.to_grid(features)
    iy, ix = 2, 1
    assert grid[0, 0, iy, ix] == iy * 4 + ix


# ---- activations and errors ---------------------------------------------------------------------
@pytest.mark.parametrize("act", ["relu", "gelu", "elu", "selu"])
@pytest.mark.parametrize("name", WAVEFIELD)
def test_every_activation_builds_and_runs(name, act):
    model = create(name, n_time=200, activation=act)
    kinds = {type(m) for m in model.modules()} & {nn.ReLU, nn.GELU, nn.ELU, nn.SELU}
    assert kinds == {type(activation(act))}
    assert model(torch.randn(2, 2, 200, 81)).shape == (2, 1, 36, 36)


def test_bad_activation_is_named():
    with pytest.raises(InputError, match="'swish'"):
        activation("swish")
    for name in WAVEFIELD:
        with pytest.raises(InputError, match="'tanh'"):
            create(name, n_time=200, activation="tanh")


@pytest.mark.parametrize("name", WAVEFIELD)
def test_wrong_input_shape_names_expected_and_actual(name):
    model = create(name, n_time=200)
    with pytest.raises(InputError) as err:
        model(torch.randn(2, 2, 100, 81))
    assert "(B, 2, 200, 81)" in str(err.value) and "(2, 2, 100, 81)" in str(err.value)
    with pytest.raises(InputError, match=r"\(2, 200, 81\)"):
        model(torch.randn(2, 200, 81))
    with pytest.raises(InputError, match=r"\(2, 81, 200, 2\)"):  # the store's (S, T) order, not transposed
        model(torch.randn(2, 81, 200, 2))


def test_bad_configuration_is_named():
    with pytest.raises(InputError, match="n_sensors"):
        SimpleCNN(n_sensors=80)
    with pytest.raises(InputError, match="n_time=32"):
        MicroCrackAttentionNeXt(n_time=32)
    with pytest.raises(InputError, match="sensor_grid"):
        SpAsENet(sensor_grid=(9, 9, 1))


def test_papers_and_default_losses():
    assert MicroCrackAttentionNeXt.default_loss == "combined_weighted_dice"
    assert SpAsENet.default_loss == "focal"
    for cls in WAVEFIELD.values():
        assert cls.paper and cls.default_loss and "paper:" in cls.__doc__


# ---- registry -----------------------------------------------------------------------------------
def test_registry_round_trip(monkeypatch):
    assert set(WAVEFIELD) <= set(available())
    for name, cls in WAVEFIELD.items():
        model = create(name, n_time=200)
        assert type(model) is cls and issubclass(cls, WaveFieldModel)

    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))

    @register("test_only_linear")
    class Tiny(nn.Module):
        def __init__(self, width: int = 3):
            super().__init__()
            self.layer = nn.Linear(width, 1)

    assert "test_only_linear" in available()
    assert create("test_only_linear", width=5).layer.in_features == 5
    with pytest.raises(ValueError, match="already registered"):
        register("test_only_linear")(type("Other", (nn.Module,), {}))


def test_unknown_model_and_option_are_named():
    with pytest.raises(InputError) as err:
        create("unet3000")
    assert "'unet3000'" in str(err.value) and "micro_crack_attention_next" in str(err.value)
    with pytest.raises(InputError, match="depth"):
        create("simple_cnn", depth=3)


def test_creatable_by_name_from_fresh_interpreter():
    code = "from crackscope.models import create; m = create('spase_net', n_time=200); print(type(m).__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "crackscope.models.wavefield.spase_net"


# ---- attention ----------------------------------------------------------------------------------
def test_axial_attention_matches_naive_attention_and_keeps_axes_apart():
    layer = AxialAttention(8, head_dim=4, mlp_ratio=2).eval()
    x = torch.randn(2, 5, 7, 8)  # channels-last (B, T, S, C)
    attn = layer.time

    # naive multi-head attention over time for one sensor
    s = 3
    q, k, v = attn.qkv(x[:, :, s]).chunk(3, dim=-1)  # (B, T, C) each
    heads = [
        torch.softmax(qh @ kh.transpose(1, 2) / 2.0, dim=-1) @ vh  # head_dim 4 -> scale 1/2
        for qh, kh, vh in zip(q.split(4, -1), k.split(4, -1), v.split(4, -1))
    ]
    expected = attn.proj(torch.cat(heads, dim=-1))
    assert torch.allclose(attn(x, axis=1)[:, :, s], expected, atol=1e-5)

    # time attention never mixes sensors; sensor attention never mixes time steps
    x2 = x.clone()
    x2[:, 2, 4] += 1.0
    dt = (attn(x2, axis=1) - attn(x, axis=1)).abs().amax(dim=(0, 3))
    assert dt[:, 4].max() > 0 and dt[:, [0, 1, 2, 3, 5, 6]].max() == 0
    ds = (layer.sensor(x2, axis=2) - layer.sensor(x, axis=2)).abs().amax(dim=(0, 3))
    assert ds[2].max() > 0 and ds[[0, 1, 3, 4]].max() == 0

    # the layer keeps (B, C, T, S) and the residual path: zeroed projections give the identity
    y = torch.randn(2, 8, 5, 7)
    for lin in (layer.time.proj, layer.sensor.proj, layer.mlp[-1]):
        nn.init.zeros_(lin.weight), nn.init.zeros_(lin.bias)
    assert torch.equal(layer(y), y)


# ---- learning -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", WAVEFIELD)
def test_gradient_reaches_the_first_layer(name):
    model = create(name, n_time=200)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    model(torch.randn(2, 2, 200, 81)).square().mean().backward()
    grad = first.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_overfits_one_fixed_batch():
    model = MicroCrackAttentionNeXt(n_time=200)
    x = torch.randn(2, 2, 200, 81)
    y = (torch.rand(2, 1, 36, 36) < 0.5).float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def _patches(y: torch.Tensor, grid: int = 9) -> torch.Tensor:
    """(B, 1, 36, 36) -> (B, 81, 16): the 4 x 4 mask patch of each grid cell, row-major from bottom-left."""
    b, _, h, w = y.shape
    p = h // grid
    return y.reshape(b, grid, p, grid, p).permute(0, 1, 3, 2, 4).reshape(b, grid * grid, p * p)


@pytest.mark.parametrize(
    "options, equivariant", [({}, True), ({"sensor_position": True}, False), ({"upsample": "bilinear"}, False)]
)
def test_mcan_sensor_permutation_equivariance(options, equivariant):
    """The paper's layout treats sensors alike: convolutions mix time only, attention compares sensors
    by content and each transposed-convolution patch has one parent cell, so permuting the sensors
    permutes the 4 x 4 mask patches the same way. Sensor-position channels or the bilinear decoder
    (which mixes neighbouring cells) break that symmetry, which is their purpose."""
    torch.manual_seed(0)
    model = MicroCrackAttentionNeXt(n_time=200, activation="gelu", **options).eval()
    x = torch.randn(2, 2, 200, 81)
    perm = torch.randperm(81)
    with torch.no_grad():
        y, y_perm = _patches(model(x)), _patches(model(x[..., perm]))
    assert torch.allclose(y[:, perm], y_perm, atol=1e-5) == equivariant


def test_mcan_bad_upsample_is_named():
    with pytest.raises(InputError, match="upsample='nearest'"):
        MicroCrackAttentionNeXt(n_time=200, upsample="nearest")
