"""Binary building blocks of AOIE-Net (adaptive binary weights/activations, DBN-IEB, ABA-IO, PAN).

Source: "Binary information enhancement network for efficient steel defects detection and
classification" (AOIE-Net), sections 3.1-3.3, which takes the binarisation form of AdaBin
(Tu et al. 2022). Baseline pieces (XNOR/BNN weights, ReActNet RSign/RPReLU) are included so the
comparison networks can be assembled from the same blocks.

Sign convention
    ``sign(x) = +1 for x >= 0 (also for -0.0), -1 otherwise``. Every binariser here therefore
    produces exactly two values per channel, {beta - alpha, beta + alpha} (or {-alpha, +alpha}).

Adaptive binary weights (sec. 3.2, eqs. 4-6), per output channel o over its n = c*k*k entries::

    beta_o  = mean(w_o)                                       (eq. 4)
    alpha_o = sqrt(mean((w_o - beta_o)^2) + eps)               (eq. 5: population std; eps=1e-12)
    w_b     = alpha_o * sign((w - beta_o) / alpha_o) + beta_o  (eq. 6)

    Backward: d sign(u)/du := 1 (identity straight-through estimator on the standardised weight
    u = (w - beta)/alpha), and autograd differentiates alpha and beta as the functions of w they are.
    For one channel with upstream gradient G and s = sign(u) this gives exactly
    dL/dw_i = G_i + (u_i / n) * sum_j G_j (s_j - u_j).  (``ste="htanh"`` clips it to |u| <= 1.)

    What holds for the binarised channel: two levels beta +- alpha, and
    mean((w_b - beta)^2) = alpha^2 = mean((w - beta)^2) (+eps) always; mean(w_b) = beta and
    std(w_b) = alpha only when the split is balanced (as many w >= beta as w < beta); in general
    mean(w_b) = beta + alpha*m and std(w_b) = alpha*sqrt(1 - m^2) with m = mean(s).

Adaptive binary activations (sec. 3.2, eqs. 7-10), learnable alpha, beta (one pair per layer by
default, as in AdaBin; per input channel with ``channels=C``), initialised alpha = 1, beta = 0 so
that the layer starts as sign(a)::

    a_b = alpha * g(x) + beta,   x = (a - beta) / alpha,   g(x) = sign(htanh(x)) = sign(x)   (eq. 8)

    Backward: g'(x) := 1_{|x| <= 1} (the htanh STE, eq. 7). By the chain rule (summed over the
    positions that share the parameter)::

        da_b/da     = g'(x)                   (1 inside the clip window, 0 outside; eq. 7)
        da_b/dbeta  = 1 - g'(x)
        da_b/dalpha = g(x) - x * g'(x)

    Eq. (9) as printed has a/alpha in the alpha-gradient; the chain rule gives (a - beta)/alpha, which
    is what autograd computes here (the two agree at the initial beta = 0).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from crackscope.errors import InputError

__all__ = [
    "STE_MODES",
    "WEIGHT_MODES",
    "sign_ste",
    "adaptive_binary_weight",
    "xnor_binary_weight",
    "sign_binary_weight",
    "binary_activation",
    "AdaptiveBinaryActivation",
    "SignActivation",
    "RSign",
    "RPReLU",
    "Maxout",
    "BinaryConv2d",
    "ABAIO",
    "DBNIEB",
    "PAN",
]

STE_MODES = ("identity", "htanh", "bireal")
WEIGHT_MODES = ("adaptive", "xnor", "sign", "real")


class _SignSTE(torch.autograd.Function):
    """Forward sign(x) with sign(0) = +1; backward one of the straight-through estimators."""

    @staticmethod
    def forward(ctx, x, ste):
        ctx.save_for_backward(x)
        ctx.ste = ste
        return (x >= 0).to(x.dtype) * 2 - 1

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if ctx.ste == "identity":
            return grad, None
        inside = (x.abs() <= 1).to(grad.dtype)
        if ctx.ste == "htanh":
            return grad * inside, None
        return grad * inside * (2 - 2 * x.abs()), None  # bireal


def sign_ste(x: torch.Tensor, ste: str = "htanh") -> torch.Tensor:
    """sign(x) in {-1, +1} (sign(0) = +1), same shape as x, with a straight-through gradient.

    ``ste``: ``"identity"`` (dsign/dx := 1), ``"htanh"`` (:= 1_{|x|<=1}, BNN / AOIE-Net eq. 7) or
    ``"bireal"`` (:= (2 - 2|x|) 1_{|x|<=1}, the piecewise-quadratic ApproxSign of Bi-Real/ReActNet).
    """
    if ste not in STE_MODES:
        raise InputError(f"ste must be one of {STE_MODES} (got {ste!r})")
    return _SignSTE.apply(x, ste)


def _reduce_dims(w: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(1, w.dim()))


def adaptive_binary_weight(w: torch.Tensor, ste: str = "identity", eps: float = 1e-12) -> torch.Tensor:
    """AOIE-Net/AdaBin adaptive binary weight (sec. 3.2, eqs. 4-6), w: (C_out, C_in/groups, kH, kW).

    Per output channel beta = mean, alpha = population std; returns alpha*sign((w-beta)/alpha)+beta,
    same shape as w. Gradient: see the module docstring (identity STE on (w-beta)/alpha by default).
    """
    dims = _reduce_dims(w)
    beta = w.mean(dims, keepdim=True)
    alpha = ((w - beta).pow(2).mean(dims, keepdim=True) + eps).sqrt()
    return alpha * sign_ste((w - beta) / alpha, ste) + beta


def xnor_binary_weight(w: torch.Tensor, ste: str = "htanh") -> torch.Tensor:
    """XNOR-Net weight (Rastegari et al. 2016): alpha*sign(w), alpha = mean|w| per output channel.

    Same shape as w; autograd flows through alpha, the sign uses ``ste`` (clipped identity default).
    """
    return w.abs().mean(_reduce_dims(w), keepdim=True) * sign_ste(w, ste)


def sign_binary_weight(w: torch.Tensor, ste: str = "htanh") -> torch.Tensor:
    """BNN weight (Courbariaux/Hubara et al. 2016): sign(w) in {-1, +1}, clipped-identity STE."""
    return sign_ste(w, ste)


def _channel_view(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(C,) or (1,) parameter -> broadcastable against x of shape (N, C, ...)."""
    return p.view(1, -1, *([1] * (x.dim() - 2)))


def _check_channels(name: str, channels: int, x: torch.Tensor) -> None:
    if channels != 1 and (x.dim() < 2 or x.shape[1] != channels):
        raise InputError(f"{name} has {channels} channels but got input of shape {tuple(x.shape)}")


class AdaptiveBinaryActivation(nn.Module):
    """Adaptive binary activation of AOIE-Net (sec. 3.2, eqs. 7-10; AdaBin form).

    a_b = alpha * sign(htanh((a - beta)/alpha)) + beta, values in {beta - alpha, beta + alpha}.
    ``channels=1`` (default): one learnable (alpha, beta) for the layer; ``channels=C``: one pair per
    channel of dim 1. Init alpha = 1, beta = 0 (output = sign(a)). Input (N, C, ...) -> same shape.
    Gradients (htanh STE) are listed in the module docstring. alpha is expected to stay positive.
    """

    def __init__(self, channels: int = 1, alpha_init: float = 1.0, beta_init: float = 0.0):
        super().__init__()
        if channels < 1 or alpha_init <= 0:
            raise InputError(f"need channels >= 1 and alpha_init > 0 (got {channels}, {alpha_init})")
        self.channels = channels
        self.alpha = nn.Parameter(torch.full((channels,), float(alpha_init)))
        self.beta = nn.Parameter(torch.full((channels,), float(beta_init)))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        _check_channels("AdaptiveBinaryActivation", self.channels, a)
        alpha, beta = _channel_view(self.alpha, a), _channel_view(self.beta, a)
        return alpha * sign_ste((a - beta) / alpha, "htanh") + beta

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class SignActivation(nn.Module):
    """Plain binary activation sign(x) in {-1, +1} (BNN / XNOR-Net baselines), any shape -> same shape."""

    def __init__(self, ste: str = "htanh"):
        super().__init__()
        sign_ste(torch.zeros(1), ste)  # validate
        self.ste = ste

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sign_ste(x, self.ste)


class RSign(nn.Module):
    """ReActNet RSign (Liu et al. 2020): sign(x - beta_c), learnable per-channel threshold beta_c (init 0).

    Input (N, C, ...) -> same shape, values in {-1, +1}. Default STE is ReActNet's ApproxSign
    (``"bireal"``); ``"htanh"`` gives the clipped identity.
    """

    def __init__(self, channels: int, ste: str = "bireal"):
        super().__init__()
        sign_ste(torch.zeros(1), ste)
        self.channels, self.ste = channels, ste
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels("RSign", self.channels, x)
        return sign_ste(x - _channel_view(self.beta, x), self.ste)


class RPReLU(nn.Module):
    """ReActNet RPReLU (Liu et al. 2020): PReLU(x - gamma_c) + zeta_c, per-channel gamma, zeta (init 0)
    and PReLU slope (init 0.25). Input (N, C, ...) -> same shape."""

    def __init__(self, channels: int, slope_init: float = 0.25):
        super().__init__()
        self.channels = channels
        self.gamma = nn.Parameter(torch.zeros(channels))
        self.zeta = nn.Parameter(torch.zeros(channels))
        self.prelu = nn.PReLU(channels, init=slope_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels("RPReLU", self.channels, x)
        return self.prelu(x - _channel_view(self.gamma, x)) + _channel_view(self.zeta, x)


class Maxout(nn.Module):
    """Maxout non-linearity of AdaBin, used by AOIE-Net's PAN (sec. 3.3).

    y = pos_c * ReLU(x) - neg_c * ReLU(-x) with learnable per-channel slopes (init pos = 1,
    neg = 0.25 as in AdaBin), i.e. a PReLU with a learnable positive slope as well.
    Input (N, C, ...) -> same shape.
    """

    def __init__(self, channels: int, pos_init: float = 1.0, neg_init: float = 0.25):
        super().__init__()
        self.channels = channels
        self.pos_scale = nn.Parameter(torch.full((channels,), float(pos_init)))
        self.neg_scale = nn.Parameter(torch.full((channels,), float(neg_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels("Maxout", self.channels, x)
        return _channel_view(self.pos_scale, x) * F.relu(x) - _channel_view(self.neg_scale, x) * F.relu(-x)


def binary_activation(kind, channels: int = 1) -> nn.Module:
    """Activation binariser by name: None/"none" (identity), "adaptive", "sign", "rsign", or a module.

    ``channels`` sizes the per-channel parameters (RSign always per channel; "adaptive" per channel
    when channels > 1, layer-wise when 1)."""
    if isinstance(kind, nn.Module):
        return kind
    if kind is None or kind == "none":
        return nn.Identity()
    if kind == "adaptive":
        return AdaptiveBinaryActivation(channels)
    if kind == "sign":
        return SignActivation()
    if kind == "rsign":
        return RSign(channels)
    raise InputError(f"activation must be None, 'adaptive', 'sign', 'rsign' or a module (got {kind!r})")


_WEIGHT_FN = {"adaptive": adaptive_binary_weight, "xnor": xnor_binary_weight, "sign": sign_binary_weight}
_DEFAULT_WEIGHT_STE = {"adaptive": "identity", "xnor": "htanh", "sign": "htanh", "real": "identity"}


class BinaryConv2d(nn.Conv2d):
    """Binary-weight convolution, O = BWConv(W_b, X_b) (AOIE-Net sec. 3.2, eq. 1).

    ``weight_mode``: "adaptive" (eqs. 4-6, default), "xnor", "sign" (BNN) or "real" (no weight
    binarisation); ``weight_ste`` overrides the mode's default STE ("identity" for adaptive, "htanh"
    otherwise). ``activation`` binarises the input first: None (input used as given, e.g. already
    binarised by ABA-IO), "adaptive" (eq. 8), "sign", "rsign" or a module; ``act_per_channel`` makes
    adaptive alpha/beta per input channel. Input (N, C_in, H, W) -> (N, C_out, H', W') as nn.Conv2d;
    bias off by default. :meth:`binary_weight` returns the weight the forward pass uses.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = False,
        *,
        weight_mode: str = "adaptive",
        weight_ste: str | None = None,
        activation=None,
        act_per_channel: bool = False,
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        if weight_mode not in WEIGHT_MODES:
            raise InputError(f"weight_mode must be one of {WEIGHT_MODES} (got {weight_mode!r})")
        self.weight_mode = weight_mode
        self.weight_ste = weight_ste or _DEFAULT_WEIGHT_STE[weight_mode]
        sign_ste(torch.zeros(1), self.weight_ste)
        per_channel = in_channels if (act_per_channel or activation == "rsign") else 1
        self.act = binary_activation(activation, per_channel)

    def binary_weight(self) -> torch.Tensor:
        if self.weight_mode == "real":
            return self.weight
        return _WEIGHT_FN[self.weight_mode](self.weight, self.weight_ste)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.act(x), self.binary_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, weight_mode={self.weight_mode}, weight_ste={self.weight_ste}"


def _same_padding(kernel_size: int, padding):
    return kernel_size // 2 if padding is None else padding


class ABAIO(nn.Module):
    """Adaptive Binary Activation Independent Optimisation, one branch (AOIE-Net sec. 3.2).

    BatchNorm -> adaptive binary activation (eq. 8) -> binary-weight conv (eq. 1) that does NOT
    binarise its input again: activation binarisation is a separate, independently optimised step.
    Input (N, C_in, H, W) -> (N, C_out, H', W'); padding defaults to kernel_size // 2.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding=None,
        *,
        per_channel: bool = False,
        weight_mode: str = "adaptive",
    ):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.act = AdaptiveBinaryActivation(in_channels if per_channel else 1)
        self.conv = BinaryConv2d(
            in_channels, out_channels, kernel_size, stride, _same_padding(kernel_size, padding), weight_mode=weight_mode
        )

    def binary_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.binary_input(x))


class DBNIEB(nn.Module):
    """Binary activation Information Enhancement Block with dual BN (AOIE-Net sec. 3.1, Fig. 2).

    Two branches BN_k -> adaptive binary activation_k (k = 1, 2); the BN bias plays the role of
    IE-Net's learnable RSign threshold. With ``aba_io=True`` (AOIE-Net, sec. 3.2) the two binary
    activations are merged by element-wise sum and go through ONE binary-weight conv (eq. 1):
    out = BWConv(W_b, a_1 + a_2) (= BWConv(W_b, a_1) + BWConv(W_b, a_2) by linearity, so the sum is
    still two binary planes). With ``aba_io=False`` (Fig. 2(b), IE-Net style) each branch has its
    own binary conv and the outputs are summed: twice the convolution cost.

    The paper's text does not give the merge operator or the branch initialisation; we sum (it keeps
    C_in, consistent with the small parameter increase reported) and start the BN biases at
    +branch_bias / -branch_bias so the branches are not identical (identical branches would get
    identical gradients and never separate). Input (N, C_in, H, W) -> (N, C_out, H', W').
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding=None,
        *,
        aba_io: bool = True,
        branch_bias: float = 0.5,
        per_channel: bool = False,
        weight_mode: str = "adaptive",
    ):
        super().__init__()
        self.aba_io = aba_io
        act_ch = in_channels if per_channel else 1
        self.bn1, self.bn2 = nn.BatchNorm2d(in_channels), nn.BatchNorm2d(in_channels)
        with torch.no_grad():
            self.bn1.bias.fill_(branch_bias)
            self.bn2.bias.fill_(-branch_bias)
        self.act1, self.act2 = AdaptiveBinaryActivation(act_ch), AdaptiveBinaryActivation(act_ch)
        conv_args = (in_channels, out_channels, kernel_size, stride, _same_padding(kernel_size, padding))
        self.conv = BinaryConv2d(*conv_args, weight_mode=weight_mode)
        self.conv2 = None if aba_io else BinaryConv2d(*conv_args, weight_mode=weight_mode)

    def branch_activations(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two binary activations (each (N, C_in, H, W), two levels per alpha/beta pair)."""
        return self.act1(self.bn1(x)), self.act2(self.bn2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a1, a2 = self.branch_activations(x)
        if self.aba_io:
            return self.conv(a1 + a2)
        return self.conv(a1) + self.conv2(a2)


class PAN(nn.Sequential):
    """Pre-activated network structure (AOIE-Net sec. 3.3, Fig. 5): non-linearity, then BatchNorm.

    Placed where FracBNN has a lone BN after the (conv + shortcut) sum. ``nonlinearity``: "maxout"
    (the paper's choice), "rprelu", "prelu", "none" (plain FracBNN BN) or a module.
    Input (N, C, H, W) -> same shape.
    """

    def __init__(self, channels: int, nonlinearity="maxout"):
        if isinstance(nonlinearity, nn.Module):
            act = nonlinearity
        else:
            makers = {"maxout": Maxout, "rprelu": RPReLU, "prelu": nn.PReLU, "none": lambda c: nn.Identity()}
            if nonlinearity not in makers:
                raise InputError(f"nonlinearity must be one of {tuple(makers)} or a module (got {nonlinearity!r})")
            act = makers[nonlinearity](channels)
        super().__init__(OrderedDict(act=act, bn=nn.BatchNorm2d(channels)))
