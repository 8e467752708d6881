"""Surface-defect segmentation models (U-Net, U-Net + CBAM, SegNet, FCN-8s, DeepLabv3+) and CBAM.

Expected values come from the definitions, not from running the models: CBAM's equations (Woo et al.
2018, eqs. 1-3) written out directly here, its parameter count 2*C*h + h + C + 2*7*7 + 1, and the
contract that logits have the input's height and width for any size.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from crackscope.errors import InputError
from crackscope.models import available, create
from crackscope.models.surface import FCN8s, SegNet, SurfaceModel, UNet, UNetCBAM
from crackscope.nn import CBAM, ChannelAttention, SpatialAttention

NAMES = ("unet", "unet_cbam", "segnet", "fcn8s", "deeplabv3plus")
SMALL = {
    "unet": {"base_channels": 4},
    "unet_cbam": {"base_channels": 4},
    "segnet": {"base_channels": 4},
    "fcn8s": {"base_channels": 4},
    "deeplabv3plus": {"base_channels": 4, "aspp_channels": 8, "low_level_channels": 4, "decoder_channels": 8},
}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --- CBAM -------------------------------------------------------------------------------------------


def _direct_cbam(x, w0, b0, w1, b1, wk, bk):
    """CBAM written out from eqs. 1-3 with explicit weights (MLP as matrices, one 7x7 kernel)."""

    def mlp(v):  # v (B, C)
        return F.relu(v @ w0.T + b0) @ w1.T + b1

    mc = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))[:, :, None, None]
    f1 = mc * x
    pooled = torch.stack([f1.mean(dim=1), f1.amax(dim=1)], dim=1)
    ms = torch.sigmoid(F.conv2d(pooled, wk, bk, padding=wk.shape[-1] // 2))
    return ms * f1


def test_cbam_matches_direct_formula():
    c, r = 32, 16
    cbam = CBAM(c, reduction=r)
    x = torch.randn(2, c, 9, 11)
    w0, b0 = cbam.channel.mlp[0].weight[:, :, 0, 0], cbam.channel.mlp[0].bias
    w1, b1 = cbam.channel.mlp[2].weight[:, :, 0, 0], cbam.channel.mlp[2].bias
    assert w0.shape == (c // r, c) and w1.shape == (c, c // r)
    wk, bk = cbam.spatial.conv.weight, cbam.spatial.conv.bias
    assert wk.shape == (1, 2, 7, 7)
    torch.testing.assert_close(cbam(x), _direct_cbam(x, w0, b0, w1, b1, wk, bk))


def test_cbam_with_zero_weights_scales_by_sigmoid_of_biases():
    c = 16
    cbam = CBAM(c)
    with torch.no_grad():
        for p in cbam.parameters():
            p.zero_()
        cbam.channel.mlp[2].bias.copy_(torch.linspace(-1, 1, c))
        cbam.spatial.conv.bias.fill_(0.3)
    x = torch.randn(2, c, 5, 6)
    # MLP(avg) + MLP(max) = 2 * b1 (both descriptors pass the same MLP); spatial map = sigmoid(0.3).
    expected = x * torch.sigmoid(2 * torch.linspace(-1, 1, c))[None, :, None, None] * torch.sigmoid(torch.tensor(0.3))
    torch.testing.assert_close(cbam(x), expected)


def test_channel_attention_uses_avg_and_max_through_one_shared_mlp():
    c = 8
    att = ChannelAttention(c, reduction=4)
    assert sum(isinstance(m, nn.Conv2d) for m in att.modules()) == 2  # one MLP, not two
    x = torch.randn(3, c, 4, 7)
    calls = []
    handle = att.mlp.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].detach().clone()))
    y = att.attention(x)
    handle.remove()
    assert len(calls) == 2
    torch.testing.assert_close(calls[0].flatten(1), x.mean(dim=(2, 3)))
    torch.testing.assert_close(calls[1].flatten(1), x.amax(dim=(2, 3)))
    torch.testing.assert_close(y, torch.sigmoid(att.mlp(calls[0]) + att.mlp(calls[1])))


def test_spatial_attention_pools_mean_and_max_over_channels():
    att = SpatialAttention(7)
    with torch.no_grad():
        att.conv.weight.zero_()
        att.conv.weight[0, 0, 3, 3] = 1.0  # centre tap on the mean map
        att.conv.weight[0, 1, 3, 3] = -2.0  # centre tap on the max map
        att.conv.bias.fill_(0.5)
    x = torch.randn(2, 5, 6, 6)
    ms = torch.sigmoid(x.mean(dim=1, keepdim=True) - 2 * x.amax(dim=1, keepdim=True) + 0.5)
    torch.testing.assert_close(att(x), x * ms)


def test_cbam_parameter_count_and_gradients():
    c, r = 64, 16
    cbam = CBAM(c, r)
    h = c // r
    assert n_params(cbam) == 2 * c * h + h + c + 2 * 49 + 1
    x = torch.randn(2, c, 8, 8, requires_grad=True)
    cbam(x).sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in cbam.parameters())


# --- the models ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_registry_creates_models(name):
    assert name in available()
    model = create(name, in_channels=1, classes=1, **SMALL[name])
    assert isinstance(model, SurfaceModel)
    assert model.in_channels == 1 and model.classes == 1


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("in_channels,classes", [(1, 1), (3, 2)])
def test_output_has_input_size(name, in_channels, classes):
    model = create(name, in_channels=in_channels, classes=classes, **SMALL[name]).eval()
    with torch.no_grad():
        for h, w in [(200, 200), (203, 157), (64, 96), (37, 45)]:
            y = model(torch.randn(2, in_channels, h, w))
            assert y.shape == (2, classes, h, w)
            assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradients_flow(name):
    model = create(name, in_channels=3, classes=1, **SMALL[name]).train()
    x = torch.randn(2, 3, 45, 61, requires_grad=True)
    model(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_padding_is_cropped_from_the_bottom_right():
    """A pixel's logit must not depend on where the padding goes: crop keeps the top-left H x W."""
    model = UNet(in_channels=1, base_channels=4, depth=2).eval()
    x = torch.randn(1, 1, 13, 10)
    padded = F.pad(x, (0, 2, 0, 3), mode="replicate")  # 16 x 12, multiples of 4
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded)[..., :13, :10])


def _cbam_params(c: int, r: int = 16) -> int:
    h = max(1, c // r)
    return 2 * c * h + h + c + 2 * 7 * 7 + 1


@pytest.mark.parametrize("base,depth", [(32, 4), (8, 3)])
def test_unet_cbam_is_unet_plus_cbam(base, depth):
    unet, cbam = UNet(base_channels=base, depth=depth), UNetCBAM(base_channels=base, depth=depth)
    widths = [base * 2**i for i in range(depth + 1)]
    encoder = sum(_cbam_params(c) for c in widths)  # after every encoder double conv (+ bottleneck)
    decoder = sum(_cbam_params(c) for c in widths[:-1])  # after every decoder up-sampling
    assert n_params(cbam) == n_params(unet) + encoder + decoder
    # Every non-CBAM tensor has the same name and shape in both.
    plain = {k: v.shape for k, v in unet.state_dict().items()}
    shared = {k: v.shape for k, v in cbam.state_dict().items() if "attention" not in k}
    assert shared == plain
    assert sum(isinstance(m, CBAM) for m in cbam.modules()) == 2 * depth + 1
    assert not any(isinstance(m, CBAM) for m in unet.modules())


def _unet_params(in_channels: int, classes: int, base: int, depth: int) -> int:
    """Counted from the architecture: double conv = 2 x (3x3 conv without bias + BN), transposed 2x2 conv."""

    def double(cin, cout):
        return 9 * cin * cout + 2 * cout + 9 * cout * cout + 2 * cout

    widths = [base * 2**i for i in range(depth + 1)]
    total, c = 0, in_channels
    for w in widths:
        total, c = total + double(c, w), w
    for w in reversed(widths[:-1]):
        total, c = total + 4 * c * w + w + double(2 * w, w), w
    return total + c * classes + classes


def test_base_parameter_counts_are_small():
    counts = {name: n_params(create(name)) for name in NAMES}
    assert counts["unet"] == _unet_params(3, 1, 32, 4)
    assert n_params(UNet(in_channels=1, classes=2, base_channels=8, depth=3)) == _unet_params(1, 2, 8, 3)
    assert all(1_000_000 < n < 10_000_000 for n in counts.values()), counts


def test_segnet_uses_max_unpooling_indices():
    model = SegNet(in_channels=1, base_channels=4)
    assert model.pool.return_indices  # the indices drive max_unpool_2x2 (tested below against MaxUnpool2d)


def test_fcn8s_upsampler_starts_bilinear():
    model = FCN8s(in_channels=1, classes=1, base_channels=4)
    x = torch.rand(1, 1, 6, 6)
    up = model.up8(x)
    assert up.shape == (1, 1, 48, 48)
    # Interior pixels of a constant map stay constant under bilinear interpolation.
    ones = model.up8(torch.ones(1, 1, 6, 6))
    torch.testing.assert_close(ones[..., 8:-8, 8:-8], torch.ones_like(ones[..., 8:-8, 8:-8]))


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_raises_input_error(name):
    with pytest.raises(InputError, match="no_such_option"):
        create(name, no_such_option=3)


@pytest.mark.parametrize("bad", [{"in_channels": 0}, {"classes": -1}, {"in_channels": 1.5}])
def test_bad_channels_raise_input_error(bad):
    with pytest.raises(InputError):
        create("unet", **bad)


def test_wrong_input_channels_raise_input_error():
    model = create("segnet", in_channels=1, base_channels=4)
    with pytest.raises(InputError, match=r"\(B, 1, H, W\)"):
        model(torch.randn(1, 3, 32, 32))


def test_unet_cbam_overfits_a_fixed_batch():
    model = create("unet_cbam", in_channels=1, classes=1, base_channels=4, depth=2)
    x = torch.randn(4, 1, 24, 24)
    target = (torch.rand(4, 1, 24, 24) > 0.7).float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_segnet_unpooling_equals_torch_max_unpool():
    from crackscope.models.surface.segnet import max_unpool_2x2

    x = torch.randn(3, 5, 8, 12, generator=torch.Generator().manual_seed(0))
    x[0, 0, :2, :2] = 1.0  # a tie: the index MaxPool2d picks decides, as in MaxUnpool2d
    pooled, idx = torch.nn.MaxPool2d(2, return_indices=True)(x)
    assert torch.equal(max_unpool_2x2(pooled, idx), torch.nn.MaxUnpool2d(2)(pooled, idx))
