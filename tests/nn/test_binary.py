"""Binary building blocks of AOIE-Net (crackscope.nn.binary) against hand-worked values.

Expected numbers are worked out by hand in the comments or computed here by an independent
reference (numpy / explicit torch.where formulas), never taken from the code under test.
Gradients are checked against closed forms derived by hand from the documented STEs:

* weights (identity STE on u = (w - beta)/alpha, alpha and beta differentiated as functions of w),
  one output channel of n entries, mask m_j = dsign/du (1 for identity, 1_{|u|<=1} for htanh):
  dL/dw_i = m_i G_i + (1/n) sum_j G_j (1 - m_j) + (u_i/n) sum_j G_j (s_j - m_j u_j)
  (uses d beta/dw_i = 1/n and d alpha/dw_i = u_i/n).
* activations a_b = alpha g(x) + beta, x = (a - beta)/alpha, g' = 1_{|x|<=1}:
  da = g'(x), dbeta = 1 - g'(x), dalpha = g(x) - x g'(x).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from crackscope.errors import InputError
from crackscope.nn import (
    ABAIO,
    DBNIEB,
    PAN,
    AdaptiveBinaryActivation,
    BinaryConv2d,
    Maxout,
    RPReLU,
    RSign,
    adaptive_binary_weight,
    sign_ste,
    xnor_binary_weight,
)


def np_sign(x):
    return np.where(x >= 0, 1.0, -1.0)


def levels_per_channel(t: torch.Tensor) -> list[int]:
    """Number of distinct values in each slice t[o] along dim 0."""
    return [int(torch.unique(t[o]).numel()) for o in range(t.shape[0])]


# ---------------------------------------------------------------------------------- sign / STE


def test_sign_of_zero_is_plus_one():
    x = torch.tensor([-2.0, -1e-30, -0.0, 0.0, 1e-30, 3.0])
    assert sign_ste(x).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "ste, expected",
    [
        ("identity", [1, 1, 1, 1, 1, 1, 1]),
        ("htanh", [0, 1, 1, 1, 1, 1, 0]),  # 1_{|x| <= 1}, window closed
        ("bireal", [0, 0, 1, 2, 1, 0, 0]),  # (2 - 2|x|) 1_{|x| <= 1}
    ],
)
def test_sign_ste_gradients(ste, expected):
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], requires_grad=True)
    sign_ste(x, ste).sum().backward()
    assert x.grad.tolist() == expected


def test_unknown_ste_rejected():
    with pytest.raises(InputError):
        sign_ste(torch.zeros(2), "tanh")


# ---------------------------------------------------------------------------- adaptive weights

# channel 0: [1, 2, 3, 6]; beta = 3, deviations (-2, -1, 0, 3), alpha = sqrt(14/4) = sqrt(3.5),
#            signs (-1, -1, +1, +1) (the 0 deviation -> +1): balanced split.
# channel 1: [0, 0, 0, 4]; beta = 1, deviations (-1, -1, -1, 3), alpha = sqrt(12/4) = sqrt(3),
#            signs (-1, -1, -1, +1): unbalanced, m = mean(s) = -1/2.
W_HAND = np.array([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 4.0]]).reshape(2, 1, 2, 2)


def test_adaptive_weight_hand_values():
    wb = adaptive_binary_weight(torch.tensor(W_HAND)).numpy().reshape(2, 4)
    r35, r3 = np.sqrt(3.5), np.sqrt(3.0)
    np.testing.assert_allclose(wb[0], [3 - r35, 3 - r35, 3 + r35, 3 + r35], rtol=1e-9)
    np.testing.assert_allclose(wb[1], [1 - r3, 1 - r3, 1 - r3, 1 + r3], rtol=1e-9)
    # the same with the generic numpy formula alpha*sign(w - beta) + beta
    w = W_HAND.reshape(2, 4)
    beta, alpha = w.mean(1, keepdims=True), w.std(1, keepdims=True)  # population std (ddof=0)
    np.testing.assert_allclose(wb, alpha * np_sign(w - beta) + beta, rtol=1e-9)


def test_adaptive_weight_moments():
    w = W_HAND.reshape(2, 4)
    beta, alpha = w.mean(1), w.std(1)
    wb = adaptive_binary_weight(torch.tensor(W_HAND)).reshape(2, 4)
    assert levels_per_channel(wb) == [2, 2]
    wb = wb.numpy()
    # always: the mean squared deviation about beta is kept, alpha^2 = mean((w - beta)^2)
    np.testing.assert_allclose(((wb - beta[:, None]) ** 2).mean(1), ((w - beta[:, None]) ** 2).mean(1), rtol=1e-9)
    np.testing.assert_allclose(((wb - beta[:, None]) ** 2).mean(1), [3.5, 3.0], rtol=1e-9)
    # balanced channel 0: mean = beta, std = alpha exactly
    np.testing.assert_allclose([wb[0].mean(), wb[0].std()], [beta[0], alpha[0]], rtol=1e-9)
    # unbalanced channel 1 (m = -1/2): mean = beta + alpha m, std = alpha sqrt(1 - m^2) = 1.5
    np.testing.assert_allclose(wb[1].mean(), 1 - np.sqrt(3) / 2, rtol=1e-9)
    np.testing.assert_allclose(wb[1].std(), 1.5, rtol=1e-9)
    assert abs(wb[1].mean() - beta[1]) > 0.5  # so "mean = beta" is NOT a general property


def _hand_weight_grad(w, g, mask_fn):
    """Closed-form dL/dw of L = sum(G * w_b) per output channel (see module docstring)."""
    out = np.empty_like(w)
    for o in range(w.shape[0]):
        wo, go = w[o].ravel(), g[o].ravel()
        n = wo.size
        beta = wo.mean()
        u = (wo - beta) / wo.std()
        s, m = np_sign(u), mask_fn(u)
        out[o] = (m * go + (go * (1 - m)).sum() / n + u / n * (go * (s - m * u)).sum()).reshape(w[o].shape)
    return out


@pytest.mark.parametrize(
    "ste, mask_fn",
    [
        ("identity", lambda u: np.ones_like(u)),
        ("htanh", lambda u: (np.abs(u) <= 1).astype(float)),
    ],
)
def test_adaptive_weight_ste_gradient(ste, mask_fn):
    rng = np.random.default_rng(0)
    w, g = rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(3, 2, 3, 3))
    wt = torch.tensor(w, requires_grad=True)
    (adaptive_binary_weight(wt, ste) * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(wt.grad.numpy(), _hand_weight_grad(w, g, mask_fn), rtol=1e-9, atol=1e-12)


def test_xnor_weight_values_and_gradient():
    w = np.array([[0.5, -1.5, 2.0, -0.25], [-0.1, 0.3, 0.2, 0.4]]).reshape(2, 1, 2, 2)
    g = np.array([[1.0, 2.0, -1.0, 0.5], [0.3, -0.2, 0.1, 1.0]]).reshape(2, 1, 2, 2)
    wt = torch.tensor(w, requires_grad=True)
    wb = xnor_binary_weight(wt)
    # channel 0: alpha = (0.5 + 1.5 + 2 + 0.25)/4 = 1.0625; channel 1: alpha = 1.0/4 = 0.25
    np.testing.assert_allclose(
        wb.detach().numpy().reshape(2, 4), [[1.0625, -1.0625, 1.0625, -1.0625], [-0.25, 0.25, 0.25, 0.25]], rtol=1e-12
    )
    (wb * torch.tensor(g)).sum().backward()
    # dL/dw_i = alpha 1_{|w_i|<=1} G_i + sign(w_i)/n sum_j G_j sign(w_j)
    wf, gf = w.reshape(2, 4), g.reshape(2, 4)
    alpha = np.abs(wf).mean(1, keepdims=True)
    expected = alpha * (np.abs(wf) <= 1) * gf + np_sign(wf) / 4 * (gf * np_sign(wf)).sum(1, keepdims=True)
    np.testing.assert_allclose(wt.grad.numpy().reshape(2, 4), expected, rtol=1e-12)


# ------------------------------------------------------------------------- adaptive activation


def test_activation_initial_state_is_sign():
    act = AdaptiveBinaryActivation(channels=3)
    assert act.alpha.tolist() == [1.0, 1.0, 1.0] and act.beta.tolist() == [0.0, 0.0, 0.0]
    a = torch.tensor([[-5.0, -1.0, -0.3, 0.0, 0.2, 1.0, 7.0]]).repeat(2, 3, 1)  # (2, 3, 7)
    np.testing.assert_array_equal(act(a).detach().numpy(), np_sign(a.numpy()))


def test_activation_two_levels_per_channel():
    act = AdaptiveBinaryActivation(channels=2).double()
    with torch.no_grad():
        act.alpha.copy_(torch.tensor([0.5, 2.0]))
        act.beta.copy_(torch.tensor([0.25, -1.0]))
    a = torch.randn(4, 2, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3
    out = act(a).detach()
    alpha, beta = np.array([0.5, 2.0])[None, :, None, None], np.array([0.25, -1.0])[None, :, None, None]
    np.testing.assert_allclose(out.numpy(), alpha * np_sign((a.numpy() - beta) / alpha) + beta, rtol=1e-12)
    assert levels_per_channel(out.transpose(0, 1)) == [2, 2]
    assert sorted(torch.unique(out[:, 0]).tolist()) == [-0.25, 0.75]
    assert sorted(torch.unique(out[:, 1]).tolist()) == [-3.0, 1.0]


def test_activation_gradients_hand_worked():
    act = AdaptiveBinaryActivation(channels=2).double()
    with torch.no_grad():
        act.alpha.copy_(torch.tensor([0.5, 2.0]))
        act.beta.copy_(torch.tensor([0.25, -1.0]))
    # channel 0: x = (a - 0.25)/0.5 = (-2.5, -1, 0, 0.5, 1, 3.5)   (|x| = 1 lies inside the window)
    # channel 1: x = (a + 1)/2      = (-3, -1.5, -0.5, 0.25, 1, 2)
    a = torch.tensor(
        [[[-1.0, -0.25, 0.25, 0.5, 0.75, 2.0], [-7.0, -4.0, -2.0, -0.5, 1.0, 3.0]]],
        dtype=torch.float64,
        requires_grad=True,
    )
    act(a).sum().backward()  # upstream gradient G = 1
    # channel 0: g = (-1,-1,1,1,1,1), g' = (0,1,1,1,1,0)
    #   da = g'; dbeta = sum(1 - g') = 2; dalpha = sum(g - x g') = -1 + 0 + 1 + 0.5 + 0 + 1 = 1.5
    # channel 1: g = (-1,-1,-1,1,1,1), g' = (0,0,1,1,1,0)
    #   dbeta = 3; dalpha = -1 - 1 + (-1 + 0.5) + (1 - 0.25) + (1 - 1) + 1 = -0.75
    assert a.grad.tolist() == [[[0, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 0]]]
    np.testing.assert_allclose(act.beta.grad.numpy(), [2.0, 3.0], rtol=1e-12)
    np.testing.assert_allclose(act.alpha.grad.numpy(), [1.5, -0.75], rtol=1e-12)


def test_activation_gradients_random_upstream():
    rng = np.random.default_rng(2)
    a_np, g_np = rng.normal(size=(3, 4, 5)) * 2, rng.normal(size=(3, 4, 5))
    alpha, beta = 0.75, 0.25  # exact in binary floating point
    act = AdaptiveBinaryActivation(alpha_init=alpha, beta_init=beta).double()  # layer-wise pair
    a = torch.tensor(a_np, requires_grad=True)
    (act(a) * torch.tensor(g_np)).sum().backward()
    x = (a_np - beta) / alpha
    gp = (np.abs(x) <= 1).astype(float)
    np.testing.assert_allclose(a.grad.numpy(), g_np * gp, rtol=1e-12)
    np.testing.assert_allclose(act.beta.grad.item(), (g_np * (1 - gp)).sum(), rtol=1e-10)
    np.testing.assert_allclose(act.alpha.grad.item(), (g_np * (np_sign(x) - x * gp)).sum(), rtol=1e-10)


def test_activation_channel_mismatch_rejected():
    with pytest.raises(InputError):
        AdaptiveBinaryActivation(channels=3)(torch.zeros(1, 4, 2, 2))


# ------------------------------------------------------------------ RSign / RPReLU / Maxout


def test_rsign_threshold_and_gradient():
    rs = RSign(2, ste="htanh").double()
    with torch.no_grad():
        rs.beta.copy_(torch.tensor([0.25, -1.0]))
    x = torch.tensor([[[-1.0, 0.2, 0.25, 2.0], [-3.0, -1.0, -0.5, 0.5]]], dtype=torch.float64, requires_grad=True)
    out = rs(x)
    # x - beta: ch0 (-1.25, -0.05, 0, 1.75) -> (-1, -1, +1, +1); ch1 (-2, 0, 0.5, 1.5) -> (-1, +1, +1, +1)
    assert out.tolist() == [[[-1, -1, 1, 1], [-1, 1, 1, 1]]]
    out.sum().backward()
    assert x.grad.tolist() == [[[0, 1, 1, 0], [0, 1, 1, 0]]]
    assert rs.beta.grad.tolist() == [-2.0, -2.0]


def test_rprelu_and_maxout_hand_values():
    x = torch.tensor([[[-2.0, 0.0, 3.0]]])
    rp = RPReLU(1)
    with torch.no_grad():
        rp.gamma.fill_(1.0)
        rp.zeta.fill_(0.5)
    # x - 1 = (-3, -1, 2) -> PReLU(0.25) = (-0.75, -0.25, 2) -> + 0.5
    np.testing.assert_allclose(rp(x).detach().numpy().ravel(), [-0.25, 0.25, 2.5])
    mx = Maxout(1)
    np.testing.assert_allclose(mx(x).detach().numpy().ravel(), [-0.5, 0.0, 3.0])  # init pos 1, neg 0.25
    with torch.no_grad():
        mx.pos_scale.fill_(2.0)
        mx.neg_scale.fill_(0.5)
    np.testing.assert_allclose(mx(x).detach().numpy().ravel(), [-1.0, 0.0, 6.0])


# --------------------------------------------------------------------------------- BinaryConv2d


def _ref_adaptive_weight(w: torch.Tensor) -> torch.Tensor:
    beta = w.mean(dim=(1, 2, 3), keepdim=True)
    alpha = w.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
    return torch.where(w - beta >= 0, beta + alpha, beta - alpha)


def test_binary_conv_matches_reference():
    torch.manual_seed(0)
    conv = BinaryConv2d(3, 4, 3, stride=2, padding=1, activation="adaptive", act_per_channel=True).double()
    assert isinstance(conv, nn.Conv2d)
    alpha, beta = (
        torch.tensor([0.5, 1.5, 0.8], dtype=torch.float64),
        torch.tensor([0.1, -0.4, 0.0], dtype=torch.float64),
    )
    with torch.no_grad():
        conv.act.alpha.copy_(alpha)
        conv.act.beta.copy_(beta)
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    al, be = alpha.view(1, 3, 1, 1), beta.view(1, 3, 1, 1)
    xb = torch.where(x - be >= 0, be + al, be - al)
    wb = _ref_adaptive_weight(conv.weight.detach())
    expected = F.conv2d(xb, wb, stride=2, padding=1)
    out = conv(x)
    assert out.shape == (2, 4, 4, 4)
    torch.testing.assert_close(out.detach(), expected, rtol=1e-10, atol=1e-10)
    assert levels_per_channel(conv.binary_weight().detach()) == [2, 2, 2, 2]


@pytest.mark.parametrize("mode", ["xnor", "sign", "real"])
def test_binary_conv_other_weight_modes(mode):
    torch.manual_seed(1)
    conv = BinaryConv2d(2, 3, 3, padding=1, weight_mode=mode, activation="sign").double()
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    w = conv.weight.detach()
    sw = torch.where(w >= 0, 1.0, -1.0).to(w.dtype)
    ref_w = {"xnor": w.abs().mean(dim=(1, 2, 3), keepdim=True) * sw, "sign": sw, "real": w}[mode]
    expected = F.conv2d(torch.where(x >= 0, 1.0, -1.0).to(x.dtype), ref_w, padding=1)
    torch.testing.assert_close(conv(x).detach(), expected, rtol=1e-10, atol=1e-10)


def test_binary_conv_bad_options_rejected():
    with pytest.raises(InputError):
        BinaryConv2d(2, 2, 3, weight_mode="ternary")
    with pytest.raises(InputError):
        BinaryConv2d(2, 2, 3, activation="relu")


# -------------------------------------------------------------------------- DBN-IEB / ABA-IO / PAN

BLOCKS = {
    "dbnieb_abaio": lambda s, pc: DBNIEB(4, 6, stride=s, per_channel=pc),
    "dbnieb_dualconv": lambda s, pc: DBNIEB(4, 6, stride=s, aba_io=False, per_channel=pc),
    "abaio": lambda s, pc: ABAIO(4, 6, stride=s, per_channel=pc),
}
N_CONVS = {"dbnieb_abaio": 1, "dbnieb_dualconv": 2, "abaio": 1}


@pytest.fixture
def conv_spy(monkeypatch):
    """Records (input, weight) of every F.conv2d call."""
    calls, real = [], F.conv2d

    def spy(x, w, *args, **kwargs):
        calls.append((x.detach().clone(), w.detach().clone()))
        return real(x, w, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d", spy)
    return calls


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_shapes_and_binary_convolutions(name, stride, per_channel, conv_spy):
    torch.manual_seed(0)
    block = BLOCKS[name](stride, per_channel)
    out = block(torch.randn(2, 4, 6, 6) * 2 + 1)
    assert out.shape == (2, 6, 6 // stride, 6 // stride)
    assert len(conv_spy) == N_CONVS[name]
    for x_seen, w_seen in conv_spy:
        assert levels_per_channel(w_seen) == [2] * 6  # binary weights, two values per output channel
        # conv input: one binary activation (<= 2 levels per channel) or the sum of two (<= 4)
        max_levels = 4 if name == "dbnieb_abaio" else 2
        assert max(levels_per_channel(x_seen.transpose(0, 1))) <= max_levels


def test_dbnieb_merged_input_is_sum_of_two_binary_branches(conv_spy):
    torch.manual_seed(3)
    block = DBNIEB(3, 5)
    x = torch.randn(2, 3, 5, 5)
    block(x)
    a1, a2 = block.branch_activations(x)
    for a in (a1, a2):
        assert set(torch.unique(a).tolist()) == {-1.0, 1.0}  # initial alpha = 1, beta = 0
    assert not torch.equal(a1, a2)  # BN biases +-0.5 break the symmetry of the branches
    torch.testing.assert_close(conv_spy[0][0], a1 + a2)
    # at initialisation the merged activation is a ternary code of the standardised input:
    # xhat < -0.5 -> -2, -0.5 <= xhat < 0.5 -> 0, xhat >= 0.5 -> +2
    xhat = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / torch.sqrt(
        x.var(dim=(0, 2, 3), keepdim=True, unbiased=False) + 1e-5
    )
    expected = torch.where(xhat >= 0.5, 2.0, torch.where(xhat >= -0.5, 0.0, -2.0))
    mismatch = (conv_spy[0][0] != expected) & ((xhat.abs() - 0.5).abs() > 1e-5)
    assert not mismatch.any()


def test_pan_order_and_values():
    pan = PAN(3)
    assert [type(m) for m in pan] == [Maxout, nn.BatchNorm2d]  # non-linearity BEFORE BatchNorm
    with torch.no_grad():
        pan.act.pos_scale.copy_(torch.tensor([1.0, 2.0, 0.5]))
        pan.act.neg_scale.copy_(torch.tensor([0.25, 0.1, -0.3]))
        pan.bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3]))
        pan.bn.running_var.copy_(torch.tensor([1.5, 0.5, 2.0]))
        pan.bn.weight.copy_(torch.tensor([1.0, 0.5, 2.0]))
        pan.bn.bias.copy_(torch.tensor([0.0, 0.1, -0.1]))
    pan.eval()
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(4))
    p, n = torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1), torch.tensor([0.25, 0.1, -0.3]).view(1, 3, 1, 1)
    y = torch.where(x >= 0, p * x, n * x)
    rm, rv = torch.tensor([0.1, -0.2, 0.3]).view(1, 3, 1, 1), torch.tensor([1.5, 0.5, 2.0]).view(1, 3, 1, 1)
    gw, gb = torch.tensor([1.0, 0.5, 2.0]).view(1, 3, 1, 1), torch.tensor([0.0, 0.1, -0.1]).view(1, 3, 1, 1)
    torch.testing.assert_close(pan(x).detach(), (y - rm) / torch.sqrt(rv + 1e-5) * gw + gb)
    for kind in ("rprelu", "prelu", "none"):
        assert PAN(3, kind)(x).shape == x.shape
    with pytest.raises(InputError):
        PAN(3, "gelu")


ALL_BLOCKS = {
    **{k: (lambda f=f: f(1, True)) for k, f in BLOCKS.items()},
    "pan_maxout": lambda: PAN(4),
    "pan_rprelu": lambda: PAN(4, "rprelu"),
}


@pytest.mark.parametrize("name", list(ALL_BLOCKS))
def test_block_eval_deterministic_and_gradients_reach_every_parameter(name):
    torch.manual_seed(5)
    block = ALL_BLOCKS[name]()
    x = torch.randn(4, 4, 5, 5) * 1.5 + 0.3
    out = block(x)  # train mode: batch statistics, updates the running ones
    (out * torch.randn_like(out)).sum().backward()
    for pname, p in block.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
    block.eval()
    with torch.no_grad():
        y1, y2 = block(x), block(x)
        y_first = block(x[:1])
    assert torch.equal(y1, y2)
    torch.testing.assert_close(y_first, y1[:1])  # eval output of a sample does not depend on the batch
