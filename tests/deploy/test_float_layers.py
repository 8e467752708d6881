"""The packed network's float layers outside the binary units: the compiled classifier (global
average pool, then Linear) against a hand-worked example and float64 NumPy, and the compiled stem
against a hand-worked example, a float64 convolution by its definition, and PyTorch's stem."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crackscope import models
from crackscope.deploy.float_layers import padded_input, pool_linear, stem_rows
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


def test_stem_rows_on_a_hand_worked_example():
    # the input 1..9 in a 3 x 3 grid, one output channel, a 3 x 3 kernel of ones with a 2 at the
    # centre, bias 0.5, zero padding 1: the centre output is 0.5 + 45 + 5 = 50.5; the corner (0, 0)
    # sees 1 (at the centre), 2, 4 and 5: 0.5 + 2 * 1 + 2 + 4 + 5 = 13.5
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)
    weight = np.ones((1, 1, 3, 3), np.float32)
    weight[0, 0, 1, 1] = 2.0
    out = np.zeros((1, 1, 3, 3), np.float32)
    stem_rows(padded_input(x, 1), weight, np.array([0.5], np.float32), 0, 0, 3, out)
    assert out[0, 0, 1, 1] == 50.5 and out[0, 0, 0, 0] == 13.5
    # the bottom middle sees 4 .. 9 and its centre 8 twice: 0.5 + 39 + 8 = 47.5
    assert out[0, 0, 2, 1] == 47.5


def _conv_by_definition(x, weight, bias, stride, pad):
    """out[b, o, y, x] = bias[o] + sum over i, ky, kx of weight * input, in float64, zero padding."""
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    p = np.zeros((n, c_in, h + 2 * pad, w + 2 * pad))
    p[:, :, pad : pad + h, pad : pad + w] = x
    h_out, w_out = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    out = np.zeros((n, c_out, h_out, w_out)) + bias.astype(np.float64)[None, :, None, None]
    for ky in range(kh):
        for kx in range(kw):
            patch = p[:, :, ky : ky + stride * (h_out - 1) + 1 : stride, kx : kx + stride * (w_out - 1) + 1 : stride]
            out += np.einsum("nihw,oi->nohw", patch, weight[:, :, ky, kx].astype(np.float64))
    return out


@pytest.mark.parametrize(("c_in", "c_out", "pad", "side"), [(1, 16, 1, 64), (3, 8, 1, 21), (2, 4, 0, 20), (1, 5, 2, 9)])
def test_stem_rows_is_the_convolution_by_its_definition_and_writes_only_its_rows(c_in, c_out, pad, side):
    rng = np.random.default_rng(side + pad)
    x = rng.standard_normal((2, c_in, side, side + 3)).astype(np.float32)
    weight = rng.standard_normal((c_out, c_in, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    exact = _conv_by_definition(x, weight, bias, 1, pad)
    out = np.full(exact.shape, np.nan, np.float32)
    padded = padded_input(x, pad)
    h_out = exact.shape[2]
    half = h_out // 2
    stem_rows(padded, weight, bias, 1, half, h_out - half, out)  # image 1, its lower rows
    assert np.isnan(out[0]).all() and np.isnan(out[1, :, :half]).all()  # nothing else written
    for b, y0, rows in ((1, 0, half), (0, 0, h_out)):
        stem_rows(padded, weight, bias, b, y0, rows, out)
    # float32 products and sums: within a few roundings of the sum of |terms|
    scale = _conv_by_definition(np.abs(x), np.abs(weight), np.abs(bias), 1, pad)
    assert np.all(np.abs(out - exact) <= 8 * np.finfo(np.float32).eps * scale)


@pytest.mark.parametrize(
    ("name", "kwargs", "side"),
    [
        ("aoie_net_resnet20", {}, 37),  # 3 x 3 stem, stride 1: compiled
        ("aoie_net_resnet20", {"stem_stride": 4}, 64),  # patchify stem: PyTorch's, into the buffer
        ("aoie_net_resnet18", {"width": 0.25}, 50),  # 7 x 7 stride 2 and a max-pool: PyTorch's, copied
    ],
)
def test_the_stem_written_into_a_buffer_is_pytorchs_stem(name, kwargs, side):
    model = models.create(name, in_channels=1, classes=3, **kwargs).eval()
    packed = pack_model(model, {"kwargs": {"in_channels": 1, "classes": 3, **kwargs}})
    assert (packed._compiled_stem() is None) == bool(kwargs)
    # an input that requires grad (a user's tensor from a graph) is read as its values
    x = torch.rand(2, 1, side, side, generator=torch.Generator().manual_seed(side)).requires_grad_()
    with torch.no_grad():
        expected = packed.stem(x).numpy()
        shape, fill = packed._stem_fill(x)
        buffer = np.full(shape, np.nan, np.float32)
        fill(buffer)
    assert shape == expected.shape
    # PyTorch's float32 sums round in their own order: within a few roundings of the largest output
    np.testing.assert_allclose(buffer, expected, rtol=0, atol=8 * np.finfo(np.float32).eps * np.abs(expected).max())


def test_the_packed_classifier_matches_pytorchs_pool_and_linear():
    model = models.create("aoie_net_resnet20", in_channels=1, classes=6).eval()
    packed = pack_model(model, {"kwargs": {"in_channels": 1, "classes": 6}})
    z = np.random.default_rng(3).standard_normal((4, 64, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = packed.fc(torch.flatten(F.adaptive_avg_pool2d(torch.from_numpy(z), 1), 1))
    torch.testing.assert_close(packed._head(z), expected, rtol=1e-5, atol=1e-5)
