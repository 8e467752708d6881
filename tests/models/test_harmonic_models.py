"""Harmonic-signal classifiers of the harmonics paper (sections 3.1 and 3.3): 1-D CNN, 2-D CNN, feature fusion.

Expected values come from the layer definitions, worked out by hand: for length 4760 the 1-D CNN
goes 4760 -> 4758 (conv 3) -> 1189 (pool 4/4) -> 1187 (conv 3) -> 296 (pool 4/4), so its FC takes
24 * 296 = 7104 inputs as the paper states; the 2-D reconstruction goes (2, 4760) -> (1, 4759) (2x2
conv) -> (1, 793) (pool 1x6), so its FC takes 36 * 793 = 28548 inputs.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from crackscope.errors import InputError
from crackscope.models import available, create
from crackscope.models.harmonics import HarmonicCNN1D, HarmonicCNN2D, HarmonicFeatureFusion, HarmonicModel

NAMES = ("harmonic_cnn1d", "harmonic_cnn2d", "harmonic_feature_fusion")
CHANNELS = {"harmonic_cnn1d": 1, "harmonic_cnn2d": 2, "harmonic_feature_fusion": 2}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cnn1d_fc_inputs(length: int) -> int:
    t = (length - 2) // 4  # conv 3 (valid), pool 4 stride 4
    t = (t - 2) // 4
    return 24 * t


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_paper_and_loss(name):
    assert name in available()
    model = create(name)
    assert isinstance(model, HarmonicModel)
    assert "Multi-Harmonic Nonlinear Ultrasonic Fusion" in model.paper
    assert model.default_loss == "softmax_mse"
    assert (model.in_channels, model.length, model.classes, model.init) == (CHANNELS[name], 4760, 12, "paper")


@pytest.mark.parametrize(
    "name,in_channels",
    [("harmonic_cnn1d", 1), ("harmonic_cnn1d", 2), ("harmonic_cnn2d", 2), ("harmonic_feature_fusion", 2)],
)
@pytest.mark.parametrize("length,classes", [(4760, 12), (1000, 3), (26, 4)])
def test_output_shape(name, in_channels, length, classes):
    model = create(name, in_channels=in_channels, length=length, classes=classes).eval()
    with torch.no_grad():
        y = model(torch.randn(3, in_channels, length))
    assert y.shape == (3, classes)
    assert torch.isfinite(y).all()


def test_cnn1d_fc_takes_7104_inputs_at_the_paper_length():
    assert cnn1d_fc_inputs(4760) == 24 * 296 == 7104
    for in_channels in (1, 2):
        model = HarmonicCNN1D(in_channels=in_channels)
        assert model.fc.in_features == 7104 and model.fc.out_features == 12
        assert model.features(torch.zeros(1, in_channels, 4760)).shape == (1, 7104)
    assert HarmonicCNN1D(length=1000).fc.in_features == cnn1d_fc_inputs(1000) == 24 * 61


def test_cnn1d_parameter_count():
    for in_channels, classes in [(1, 12), (2, 12), (1, 3), (1, 4)]:
        expected = (in_channels * 12 * 3 + 12) + (12 * 24 * 3 + 24) + (7104 * classes + classes)
        assert n_params(HarmonicCNN1D(in_channels=in_channels, classes=classes)) == expected


def test_cnn1d_matches_functional_definition():
    """Conv(3) - ReLU - MaxPool(4, stride 4) - Conv(3) - ReLU - MaxPool(4, stride 4) - Flatten - FC."""
    model = HarmonicCNN1D(in_channels=2, length=300, classes=5)
    x = torch.randn(4, 2, 300)
    h = F.max_pool1d(F.relu(F.conv1d(x, model.conv1.weight, model.conv1.bias)), 4, 4)
    h = F.max_pool1d(F.relu(F.conv1d(h, model.conv2.weight, model.conv2.bias)), 4, 4)
    assert h.shape == (4, 24, 18)  # 300 -> 298 -> 74 -> 72 -> 18
    torch.testing.assert_close(model(x), h.flatten(1) @ model.fc.weight.T + model.fc.bias)


def test_cnn2d_reconstruction_shapes_and_parameters():
    model = HarmonicCNN2D()
    assert model.conv.in_channels == 1 and model.conv.out_channels == 36 and model.conv.kernel_size == (2, 2)
    assert (model.rows_out, model.time_out) == (1, 793) and 4759 // 6 == 793
    assert model.fc.in_features == 36 * 793 == 28548
    assert n_params(model) == (36 * 1 * 2 * 2 + 36) + (28548 * 12 + 12)
    assert HarmonicCNN2D(length=1000).fc.in_features == 36 * (999 // 6)
    assert HarmonicCNN2D(in_channels=3, length=100, filters=8, pool=5).fc.in_features == 8 * 2 * (99 // 5)


def test_cnn2d_matches_functional_definition():
    """(B, 2, L) as a one-channel image: 2x2 valid conv - ReLU - max-pool (1, 6) along time - FC."""
    model = HarmonicCNN2D(length=130, classes=7)
    x = torch.randn(3, 2, 130)
    h = F.relu(F.conv2d(x[:, None], model.conv.weight, model.conv.bias))
    assert h.shape == (3, 36, 1, 129)
    h = F.max_pool2d(h, (1, 6), (1, 6))
    assert h.shape == (3, 36, 1, 21)
    torch.testing.assert_close(model(x), h.flatten(1) @ model.fc.weight.T + model.fc.bias)


def test_feature_fusion_is_the_sum_of_its_branches():
    model = HarmonicFeatureFusion(length=500, classes=12).eval()
    assert len(model.branches) == 2 and all(isinstance(b, HarmonicCNN1D) for b in model.branches)
    assert all(b.in_channels == 1 for b in model.branches)
    assert not torch.equal(model.branches[0].fc.weight, model.branches[1].fc.weight)  # independent
    assert n_params(model) == 2 * n_params(HarmonicCNN1D(length=500))
    x = torch.randn(4, 2, 500)
    with torch.no_grad():
        expected = model.branches[0](x[:, :1]) + model.branches[1](x[:, 1:2])
        torch.testing.assert_close(model(x), expected)
        # Channel 1 reaches branch 1 only: changing it moves the output by branch 1's change alone.
        x2 = x.clone()
        x2[:, 1] = torch.randn(4, 500)
        torch.testing.assert_close(model(x2) - model(x), model.branches[1](x2[:, 1:2]) - model.branches[1](x[:, 1:2]))
    assert HarmonicFeatureFusion().branches[0].fc.in_features == 7104


@pytest.mark.parametrize("name", NAMES)
def test_paper_init_normal_weights_unit_biases(name):
    model = create(name)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    assert layers
    for m in layers:
        assert torch.equal(m.bias, torch.ones_like(m.bias))
        fan_in = m.weight[0].numel()
        if m.weight.numel() >= 5000:  # enough draws for the sample std to be within a few per cent
            assert abs(m.weight.std().item() * math.sqrt(fan_in) - 1) < 0.05
            assert abs(m.weight.mean().item()) * math.sqrt(fan_in) < 0.05
    # Scaled by 1/sqrt(fan_in), the logits start moderate: a literal N(0, 1) FC over 7104 inputs
    # would spread them by hundreds and saturate the softmax.
    with torch.no_grad():
        y = model.eval()(torch.randn(8, model.in_channels, 4760))
    assert y.std(dim=1).max() < 10


@pytest.mark.parametrize("name", NAMES)
def test_default_init_is_pytorchs(name):
    model = create(name, init="default")
    biases = [m.bias for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    assert not any(torch.equal(b, torch.ones_like(b)) for b in biases)
    fc = model.branches[0].fc if name == "harmonic_feature_fusion" else model.fc
    bound = 1 / math.sqrt(fc.in_features)  # kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), ...)
    assert fc.weight.abs().max() <= bound


@pytest.mark.parametrize("name", NAMES)
def test_gradients_flow_and_a_batch_is_learned(name):
    model = create(name, length=128, classes=4).train()
    x = torch.randn(8, CHANNELS[name], 128)
    target = torch.arange(8) % 4
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        # The paper's loss: MSE between the softmax output and the one-hot target.
        loss = F.mse_loss(model(x).softmax(dim=1), F.one_hot(target, 4).float())
        loss.backward()
        if not losses:
            assert all(p.grad is not None for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    "name,shape,expected",
    [
        ("harmonic_cnn1d", (2, 2, 4760), r"\(B, 1, 4760\)"),
        ("harmonic_cnn1d", (2, 1, 4000), r"\(B, 1, 4760\)"),
        ("harmonic_cnn1d", (1, 4760), r"\(B, 1, 4760\)"),
        ("harmonic_cnn2d", (2, 1, 4760), r"\(B, 2, 4760\)"),
        ("harmonic_cnn2d", (2, 1, 2, 4760), r"\(B, 2, 4760\)"),
        ("harmonic_feature_fusion", (2, 3, 4760), r"\(B, 2, 4760\)"),
    ],
)
def test_bad_input_shape_raises_input_error(name, shape, expected):
    model = create(name)
    with pytest.raises(InputError, match=expected) as err:
        model(torch.randn(*shape))
    assert str(tuple(shape)) in str(err.value)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_raises_input_error(name):
    with pytest.raises(InputError, match="no_such_option"):
        create(name, no_such_option=3)


@pytest.mark.parametrize(
    "name,bad,match",
    [
        ("harmonic_cnn1d", {"init": "xavier"}, "init"),
        ("harmonic_cnn1d", {"classes": 0}, "classes"),
        ("harmonic_cnn1d", {"in_channels": 1.5}, "in_channels"),
        ("harmonic_cnn1d", {"length": 25}, "length=25"),  # 25 -> 23 -> 5 -> 3 -> 0 samples
        ("harmonic_cnn2d", {"in_channels": 1}, "in_channels"),
        ("harmonic_cnn2d", {"length": 6}, "length=6"),
        ("harmonic_cnn2d", {"pool": 0}, "pool"),
        ("harmonic_feature_fusion", {"length": 0}, "length"),
    ],
)
def test_bad_options_raise_input_error(name, bad, match):
    with pytest.raises(InputError, match=match):
        create(name, **bad)
