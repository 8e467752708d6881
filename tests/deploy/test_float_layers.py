"""The packed network's float layers outside the binary units: the compiled classifier (global
average pool, then Linear) against a hand-worked example and float64 NumPy, and the stem written
into a caller's buffer against PyTorch's own convolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crackscope import models
from crackscope.deploy.float_layers import pool_linear
from crackscope.deploy.packed import pack_model

pytestmark = pytest.mark.usefixtures("one_torch_thread", "one_numba_thread")


def test_pool_linear_on_a_hand_worked_example():
    # two channels of four pixels: means 2.5 and -1; logits 1 + 2 * 2.5 + 0.5 * -1 = 5.5 and
    # -2 - 1 * 2.5 + 4 * -1 = -8.5
    z = np.array([[[1, 2, 3, 4], [-1, -1, -1, -1]]], np.float32)
    weight = np.array([[2.0, 0.5], [-1.0, 4.0]], np.float32)
    bias = np.array([1.0, -2.0], np.float32)
    np.testing.assert_array_equal(pool_linear(z, weight, bias), [[5.5, -8.5]])


@pytest.mark.parametrize("shape", [(1, 64, 256), (3, 16, 63), (2, 64, 2500), (1, 5, 1)])
def test_pool_linear_matches_float64_numpy(shape):
    rng = np.random.default_rng(sum(shape))
    z = rng.standard_normal(shape).astype(np.float32)
    weight = rng.standard_normal((6, shape[1])).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    exact = z.astype(np.float64).mean(-1) @ weight.astype(np.float64).T + bias
    got = pool_linear(z, weight, bias)
    assert got.dtype == np.float32 and got.shape == (shape[0], 6)
    np.testing.assert_allclose(got, exact, rtol=0, atol=4 * np.finfo(np.float32).eps * np.abs(exact).max())


@pytest.mark.parametrize(
    ("name", "kwargs", "side"),
    [
        ("aoie_net_resnet20", {}, 37),  # 3 x 3 stem, stride 1
        ("aoie_net_resnet20", {"stem_stride": 4}, 64),  # patchify stem
        ("aoie_net_resnet18", {"width": 0.25}, 50),  # 7 x 7 stride 2 and a max-pool: copied
    ],
)
def test_the_stem_written_into_a_buffer_is_pytorchs_stem(name, kwargs, side):
    model = models.create(name, in_channels=1, classes=3, **kwargs).eval()
    packed = pack_model(model, {"kwargs": {"in_channels": 1, "classes": 3, **kwargs}})
    x = torch.rand(2, 1, side, side, generator=torch.Generator().manual_seed(side))
    with torch.no_grad():
        expected = packed.stem(x).numpy()
        shape, fill = packed._stem_fill(x)
        buffer = np.full(shape, np.nan, np.float32)
        fill(buffer)
    assert shape == expected.shape
    np.testing.assert_allclose(buffer, expected, rtol=1e-6, atol=1e-6)


def test_the_packed_classifier_matches_pytorchs_pool_and_linear():
    model = models.create("aoie_net_resnet20", in_channels=1, classes=6).eval()
    packed = pack_model(model, {"kwargs": {"in_channels": 1, "classes": 6}})
    z = np.random.default_rng(3).standard_normal((4, 64, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = packed.fc(torch.flatten(F.adaptive_avg_pool2d(torch.from_numpy(z), 1), 1))
    torch.testing.assert_close(packed._head(z), expected, rtol=1e-5, atol=1e-5)
