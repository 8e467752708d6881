"""Flip test-time augmentation against maps worked out by hand."""

import pytest
import torch

from crackscope.nn.flip_tta import TTA_MODES, flip_average, passes


def _ramp(n=2, h=4, w=6):
    return torch.arange(n * h * w, dtype=torch.float64).reshape(n, 1, h, w)


def test_a_pointwise_map_is_unchanged_by_every_mode():
    """A map that treats every pixel alike commutes with every mirror: the average is the map itself."""
    x = _ramp()
    for mode in TTA_MODES:
        torch.testing.assert_close(flip_average(torch.sigmoid, x, mode), torch.sigmoid(x))


def test_flip_averages_a_one_sided_map_over_its_mirrors():
    """A running sum along the width (left to right) is not mirror-symmetric. Averaged over the four
    mirrors of the rectangle, each pixel gets the mean of its sum from the left and from the right
    (an up-down mirror leaves a row-wise sum as it is): (left + right) / 2 = (row total + x) / 2."""
    x = _ramp()
    got = flip_average(lambda t: t.cumsum(-1), x, "flip")
    expected = (x.sum(-1, keepdim=True) + x) / 2
    torch.testing.assert_close(got, expected)


def test_d8_also_averages_over_the_transposes():
    """On a square input the eight symmetries make a running sum along the width into the mean of
    the running sums in all four directions: (row total + column total + 2x) / 4."""
    x = _ramp(1, 5, 5)
    got = flip_average(lambda t: t.cumsum(-1), x, "d8")
    expected = (x.sum(-1, keepdim=True) + x.sum(-2, keepdim=True) + 2 * x) / 4
    torch.testing.assert_close(got, expected)


def test_each_mode_costs_its_passes_and_a_bad_mode_is_named():
    calls = []

    def count(t):
        calls.append(tuple(t.shape))
        return t

    for mode in TTA_MODES:
        calls.clear()
        flip_average(count, _ramp(1, 4, 6), mode)
        assert len(calls) == passes(mode) == {"none": 1, "flip": 4, "d8": 8}[mode]
    assert sorted(set(calls)) == [(1, 1, 4, 6), (1, 1, 6, 4)]  # d8 transposes half of its passes
    with pytest.raises(ValueError, match="tta 'd4' is not one of none, flip, d8"):
        flip_average(count, _ramp(), "d4")


def test_the_cascade_segmenter_and_predict_probability_average_over_the_mirrors():
    """The cascade's TileSegmenter and the surface pipeline's predict_probability apply the mode
    they are given: with a network whose logit is a running sum along the width, "flip" gives the
    sigmoid of that sum averaged with the sigmoid of the sum from the right."""
    import numpy as np

    from crackscope.deploy.cascade import TileSegmenter
    from crackscope.engine.surface import predict_probability

    net = lambda t: t[:, :1].cumsum(-1) / 10  # noqa: E731
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    left, right = x.cumsum(-1) / 10, x.flip(-1).cumsum(-1).flip(-1) / 10
    expected = ((torch.sigmoid(left) + torch.sigmoid(right)) / 2)[:, 0]
    torch.testing.assert_close(TileSegmenter(net, channels=1, tta="flip")(x), expected)
    torch.testing.assert_close(TileSegmenter(net, channels=1)(x), torch.sigmoid(left)[:, 0])
    got = predict_probability(net, x[0].numpy(), None, tta="flip")
    np.testing.assert_allclose(got, expected[0].numpy(), rtol=1e-5, atol=1e-6)
