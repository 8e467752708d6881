"""Segmentation and classification losses shared by every crackscope pipeline; one registry.

Every loss takes raw LOGITS (the sigmoid/softmax lives here) and a target, in one of three forms:

* binary segmentation: logits (B, 1, H, W); target (B, 1, H, W) or (B, H, W), float in [0, 1]
  (1 = crack / defect). Any trailing shape works, including (B,) / (B, 1) for binary labels.
* multi-class segmentation: logits (B, C, H, W), C >= 2; target (B, H, W) integer class indices.
* classification: logits (B, C) with target (B,) — the multi-class case without spatial axes.

Probabilities and their logarithms are always formed with ``logsigmoid`` / ``log_softmax``, never
``log(sigmoid(x))``, so logits of +-1e4 give finite losses and gradients; inputs are promoted to
float32 at least.

Dice smoothing. With sums I = sum(p * y) and S = sum(p) + sum(y) the Dice score is
(2 I + smooth) / (S + smooth), ``smooth`` = 1 by default. An empty target predicted empty gives
I = S = 0 and a score of exactly 1 (loss 0): empty-vs-empty counts as perfect, also with
``smooth=0``, where 0 / 0 is defined as 1. By default the
sums run over the whole batch and all pixels ("batch Dice"); ``per_sample=True`` scores each
sample alone and averages the losses.

Names (case-insensitive; the MicroCrackAttentionNeXt paper's abbreviations are aliases):
``bce``, ``cross_entropy`` (``ce``), ``focal`` (``fl``), ``dice`` (``dl``), ``weighted_dice``
(``wdl``), ``combined_weighted_dice`` (``cwdl``), ``ce_dice``, ``ce_cldice``, ``softmax_mse``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crackscope.errors import InputError

__all__ = [
    "available",
    "create",
    "register",
    "CrossEntropyLoss",
    "FocalLoss",
    "DiceLoss",
    "WeightedDiceLoss",
    "CombinedWeightedDiceLoss",
    "CEDiceLoss",
    "CEClDiceLoss",
    "soft_skeleton",
]

_REGISTRY: dict[str, type[nn.Module]] = {}
_ALIASES = {
    "ce": "cross_entropy",
    "fl": "focal",
    "dl": "dice",
    "wdl": "weighted_dice",
    "cwdl": "combined_weighted_dice",
}


def register(*names: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make the loss available to :func:`create` under ``names`` (lower case)."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        for name in names:
            key = name.lower()
            if key in _REGISTRY or key in _ALIASES:
                raise ValueError(f"loss name {name!r} is already registered")
            _REGISTRY[key] = cls
        return cls

    return deco


def available(include_aliases: bool = False) -> list[str]:
    """Registered loss names, sorted; with ``include_aliases`` also the short aliases."""
    names = set(_REGISTRY)
    if include_aliases:
        names |= set(_ALIASES)
    return sorted(names)


def create(name: str, **kw) -> nn.Module:
    """Build the loss registered as ``name`` (or an alias) with keyword parameters ``kw``.

    Raises :class:`InputError` naming the value for an unknown name, an unknown parameter or a
    parameter out of range.
    """
    if not isinstance(name, str):
        raise InputError(f"loss name must be a string, got {name!r}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _REGISTRY:
        raise InputError(f"unknown loss {name!r}; available: {', '.join(available(True))}")
    cls = _REGISTRY[key]
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for k in kw:
        if k not in params:
            raise InputError(f"loss {name!r} has no parameter {k!r}; parameters: {', '.join(params)}")
    return cls(**kw)


# --------------------------------------------------------------------------------------------
# parameter checks and input normalisation


def _check_fraction(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0:
        raise InputError(f"{name} must be in [0, 1], got {value!r}")
    return v


def _check_nonneg(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a non-negative number, got {value!r}") from None
    if not (math.isfinite(v) and v >= 0.0):
        raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def _check_weights(name: str, value) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        w = tuple(float(x) for x in value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a list of non-negative numbers, got {value!r}") from None
    if not w or any(not (math.isfinite(x) and x >= 0.0) for x in w) or sum(w) == 0.0:
        raise InputError(f"{name} must be non-negative, finite and not all zero, got {value!r}")
    return w


@dataclass
class _Batch:
    """Normalised loss input: logits (B, C, N) float; target (B, 1, N) float if binary else (B, N) long."""

    logits: Tensor
    target: Tensor
    binary: bool

    @property
    def num_classes(self) -> int:
        """Classes as the class-wise losses see them: 2 (background, crack) for binary input."""
        return 2 if self.binary else self.logits.shape[1]


def _prepare(logits: Tensor, target: Tensor) -> _Batch:
    if not torch.is_tensor(logits) or not logits.is_floating_point():
        raise InputError(f"logits must be a floating-point tensor, got {getattr(logits, 'dtype', type(logits))}")
    if not torch.is_tensor(target):
        raise InputError(f"target must be a tensor, got {type(target).__name__}")
    if logits.ndim == 1:
        logits = logits[:, None]
    if logits.ndim < 2 or logits.shape[0] == 0:
        raise InputError(f"logits must have shape (B, C, ...), got {tuple(logits.shape)}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    b, c, spatial = logits.shape[0], logits.shape[1], tuple(logits.shape[2:])
    no_channel = (b, *spatial)
    if c == 1:
        if tuple(target.shape) == tuple(logits.shape):
            t = target
        elif tuple(target.shape) == no_channel:
            t = target.unsqueeze(1)
        else:
            raise InputError(f"binary target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
        t = t.to(logits.dtype)
        if bool(((t < 0) | (t > 1)).any()):
            raise InputError("binary target values must lie in [0, 1]")
        return _Batch(logits.reshape(b, 1, -1), t.reshape(b, 1, -1), True)
    if tuple(target.shape) == no_channel:
        t = target
    elif tuple(target.shape) == (b, 1, *spatial):
        t = target.squeeze(1)
    else:
        raise InputError(
            f"multi-class target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)};"
            " expected (B, ...) class indices"
        )
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise InputError(f"multi-class target must hold integer class indices, got dtype {t.dtype}")
    t = t.long()
    if bool(((t < 0) | (t >= c)).any()):
        raise InputError(f"multi-class target indices must lie in [0, {c - 1}]")
    return _Batch(logits.reshape(b, c, -1), t.reshape(b, -1), False)


def _class_probs(batch: _Batch) -> tuple[Tensor, Tensor]:
    """Class probabilities and one-hot targets, both (B, K, N); binary input becomes K = 2."""
    if batch.binary:
        x, y = batch.logits, batch.target
        return torch.cat([torch.sigmoid(-x), torch.sigmoid(x)], 1), torch.cat([1 - y, y], 1)
    p = torch.softmax(batch.logits, dim=1)
    y = F.one_hot(batch.target, batch.logits.shape[1]).permute(0, 2, 1).to(p.dtype)
    return p, y


def _weights_tensor(weights: tuple[float, ...], k: int, like: Tensor, name: str) -> Tensor:
    if len(weights) != k:
        raise InputError(f"{name} has {len(weights)} entries but the input has {k} classes")
    return torch.tensor(weights, dtype=like.dtype, device=like.device)


# --------------------------------------------------------------------------------------------
# losses


class _Loss(nn.Module):
    """Base: ``forward(logits, target)`` normalises the input and calls ``_compute``."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self._compute(_prepare(logits, target))

    def _compute(self, batch: _Batch) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _cross_entropy(batch: _Batch, class_weights: tuple[float, ...] | None) -> Tensor:
    if batch.binary:
        x, y = batch.logits, batch.target
        loss = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        if class_weights is None:
            return loss.mean()
        w0, w1 = _weights_tensor(class_weights, 2, x, "class_weights")
        w = w1 * y + w0 * (1 - y)
    else:
        logp = F.log_softmax(batch.logits, dim=1)
        loss = -logp.gather(1, batch.target[:, None]).squeeze(1)
        if class_weights is None:
            return loss.mean()
        w = _weights_tensor(class_weights, batch.num_classes, logp, "class_weights")[batch.target]
    return (w * loss).sum() / w.sum().clamp_min(torch.finfo(loss.dtype).tiny)


@register("bce", "cross_entropy")
class CrossEntropyLoss(_Loss):
    """Cross-entropy: binary (sigmoid) for one logit channel, categorical (softmax) for C >= 2.

    Binary: -[y log p + (1 - y) log(1 - p)] with log p = logsigmoid(x); multi-class:
    -log softmax(x)_t. Mean over all pixels; with ``class_weights`` (w_c, one per class, binary:
    [background, crack]) the weighted mean sum(w_t l) / sum(w_t), as ``torch.nn.CrossEntropyLoss``.
    """

    def __init__(self, class_weights: Sequence[float] | None = None):
        super().__init__()
        self.class_weights = _check_weights("class_weights", class_weights)

    def _compute(self, batch: _Batch) -> Tensor:
        return _cross_entropy(batch, self.class_weights)


@register("focal")
class FocalLoss(_Loss):
    """Focal loss (Lin et al. 2017, eq. 5): FL = -alpha_t (1 - p_t)^gamma log p_t, mean over pixels.

    Binary: alpha_t = alpha for crack pixels and 1 - alpha for background. For soft targets y the
    loss is the y-weighted mix of the two cases, -alpha y (1-p)^g log p - (1-alpha)(1-y) p^g
    log(1-p). Multi-class: p_t = softmax(x)_t; a scalar alpha weights class 0 (background) by
    1 - alpha and every other class by alpha, so sigmoid logit x gives the same loss as the
    two-class logits [0, x]. A list gives one alpha per class (binary: [background, crack]);
    ``None`` switches weighting off. (1 - p_t)^gamma is evaluated as exp(gamma log(1 - p_t)) with log(1 - p_t) from
    logsigmoid / a logsumexp over the other classes, so it stays finite and differentiable for
    saturated logits and any gamma >= 0. With gamma = 0 the loss is alpha-weighted cross-entropy.
    """

    def __init__(self, alpha: float | Sequence[float] | None = 0.25, gamma: float = 2.0):
        super().__init__()
        if alpha is None or isinstance(alpha, (int, float)):
            self.alpha = None if alpha is None else _check_fraction("alpha", alpha)
        else:
            self.alpha = _check_weights("alpha", alpha)
        self.gamma = _check_nonneg("gamma", gamma)

    def _compute(self, batch: _Batch) -> Tensor:
        g = self.gamma
        if batch.binary:
            x, y = batch.logits, batch.target
            log_p, log_q = F.logsigmoid(x), F.logsigmoid(-x)  # log p, log(1 - p)
            if isinstance(self.alpha, tuple):
                a_neg, a_pos = _weights_tensor(self.alpha, 2, x, "alpha")
            elif self.alpha is None:
                a_neg = a_pos = 1.0
            else:
                a_neg, a_pos = 1.0 - self.alpha, self.alpha
            pos = -a_pos * torch.exp(g * log_q) * log_p
            neg = -a_neg * torch.exp(g * log_p) * log_q
            return (y * pos + (1 - y) * neg).mean()
        logp = F.log_softmax(batch.logits, dim=1)
        t = batch.target[:, None]
        log_pt = logp.gather(1, t).squeeze(1)
        others = logp.scatter(1, t, float("-inf"))
        log_1m_pt = torch.logsumexp(others, dim=1)
        loss = -torch.exp(g * log_1m_pt) * log_pt
        if self.alpha is not None:
            if isinstance(self.alpha, tuple):
                a = _weights_tensor(self.alpha, batch.num_classes, logp, "alpha")
            else:
                a = torch.full((batch.num_classes,), self.alpha, dtype=logp.dtype, device=logp.device)
                a[0] = 1.0 - self.alpha
            loss = a[batch.target] * loss
        return loss.mean()


def _dice_sums(p: Tensor, y: Tensor, per_sample: bool) -> tuple[Tensor, Tensor]:
    """Intersection sum(p y) and size sum(p) + sum(y) per class: (K,) or (B, K) if per_sample."""
    dims = (2,) if per_sample else (0, 2)
    return (p * y).sum(dims), (p + y).sum(dims)


def _dice_score(num: Tensor, den: Tensor) -> Tensor:
    """num / den with 0 / 0 (empty vs empty, smooth = 0) defined as a perfect score of 1."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.ones_like(num))


@register("dice")
class DiceLoss(_Loss):
    """Soft Dice loss 1 - (2|X∩Y| + smooth) / (|X| + |Y| + smooth) with |X∩Y| = sum(p y).

    Binary input scores the foreground (crack) probability p = sigmoid(x) only; multi-class input
    scores every class of softmax(x) against its one-hot target and averages the C losses. See the
    module docstring for the smoothing and empty-mask convention.
    """

    def __init__(self, smooth: float = 1.0, per_sample: bool = False):
        super().__init__()
        self.smooth = _check_nonneg("smooth", smooth)
        self.per_sample = bool(per_sample)

    def _compute(self, batch: _Batch) -> Tensor:
        if batch.binary:
            p, y = torch.sigmoid(batch.logits), batch.target
        else:
            p, y = _class_probs(batch)
        inter, size = _dice_sums(p, y, self.per_sample)
        score = _dice_score(2 * inter + self.smooth, size + self.smooth)
        return 1 - score.mean()


@register("weighted_dice")
class WeightedDiceLoss(_Loss):
    """Weighted (generalised) Dice loss: 1 - (2 sum_c w_c I_c + smooth) / (sum_c w_c S_c + smooth).

    I_c = sum(p_c y_c) and S_c = sum(p_c) + sum(y_c) per class c; binary input counts background
    and crack as two classes. ``class_weights`` is a list (one weight per class) or ``None`` for
    inverse-frequency weights recomputed on every batch from the target,
    w_c = N / (K (n_c + 1)) with n_c pixels of class c out of N and K classes (the +1 keeps a
    class absent from the batch finite). The MicroCrackAttentionNeXt paper (Moreh et al.) names
    this loss without giving its weights; its equation squares the predictions in the denominator,
    crackscope keeps the linear |X| + |Y| of the plain Dice loss.
    """

    def __init__(self, class_weights: Sequence[float] | None = None, smooth: float = 1.0, per_sample: bool = False):
        super().__init__()
        if isinstance(class_weights, str):
            if class_weights != "inverse_frequency":
                raise InputError(f"class_weights must be a list or 'inverse_frequency', got {class_weights!r}")
            class_weights = None
        self.class_weights = _check_weights("class_weights", class_weights)
        self.smooth = _check_nonneg("smooth", smooth)
        self.per_sample = bool(per_sample)

    def _compute(self, batch: _Batch) -> Tensor:
        p, y = _class_probs(batch)
        inter, size = _dice_sums(p, y, self.per_sample)
        k = p.shape[1]
        if self.class_weights is None:
            n_c = y.sum((2,) if self.per_sample else (0, 2)).detach()
            n = n_c.sum(-1, keepdim=True)
            w = n / (k * (n_c + 1))
        else:
            w = _weights_tensor(self.class_weights, k, p, "class_weights")
        score = _dice_score(2 * (w * inter).sum(-1) + self.smooth, (w * size).sum(-1) + self.smooth)
        return 1 - score.mean()


@register("combined_weighted_dice")
class CombinedWeightedDiceLoss(_Loss):
    """CWDL = alpha * WDL + (1 - alpha) * CE (Moreh et al., MicroCrackAttentionNeXt, eq. 9).

    The paper's best loss; it gives no value for alpha or the class weights, so alpha = 0.5 and
    inverse-frequency weights (see :class:`WeightedDiceLoss`) are crackscope's defaults. CE is the
    unweighted cross-entropy of :class:`CrossEntropyLoss`.
    """

    def __init__(self, alpha: float = 0.5, class_weights: Sequence[float] | None = None, smooth: float = 1.0):
        super().__init__()
        self.alpha = _check_fraction("alpha", alpha)
        self.wdl = WeightedDiceLoss(class_weights=class_weights, smooth=smooth)

    def _compute(self, batch: _Batch) -> Tensor:
        return self.alpha * self.wdl._compute(batch) + (1 - self.alpha) * _cross_entropy(batch, None)


@register("ce_dice")
class CEDiceLoss(_Loss):
    """alpha * CE + (1 - alpha) * Dice, alpha = 0.7 by default (the surface pipeline's U-Net+CBAM loss)."""

    def __init__(self, alpha: float = 0.7, smooth: float = 1.0):
        super().__init__()
        self.alpha = _check_fraction("alpha", alpha)
        self.dice = DiceLoss(smooth=smooth)

    def _compute(self, batch: _Batch) -> Tensor:
        return self.alpha * _cross_entropy(batch, None) + (1 - self.alpha) * self.dice._compute(batch)


def _soft_erode(x: Tensor) -> Tensor:
    """Grey-level erosion by the 3 x 3 cross (min over each pixel and its 4 neighbours); outside the
    image counts as +inf, so the image edge erodes nothing."""
    return torch.minimum(-F.max_pool2d(-x, (3, 1), 1, (1, 0)), -F.max_pool2d(-x, (1, 3), 1, (0, 1)))


def _soft_dilate(x: Tensor) -> Tensor:
    """Grey-level dilation by the 3 x 3 square."""
    return F.max_pool2d(x, 3, 1, 1)


def soft_skeleton(x: Tensor, iterations: int) -> Tensor:
    """Soft skeleton of maps ``x`` (B, 1, H, W) in [0, 1] (Shit et al. 2021, clDice, Algorithm 1):
    the part of each erosion that an opening removes, accumulated over ``iterations`` erosions.
    On a 0/1 map it is the morphological skeleton by the 3 x 3 cross, for structures at most
    2 * iterations + 1 px wide; it is differentiable (min/max pooling) for probabilities."""
    skel = F.relu(x - _soft_dilate(_soft_erode(x)))
    for _ in range(iterations):
        x = _soft_erode(x)
        delta = F.relu(x - _soft_dilate(_soft_erode(x)))
        skel = skel + F.relu(delta - skel * delta)
    return skel


@register("ce_cldice")
class CEClDiceLoss(_Loss):
    """alpha * CE + (1 - alpha) * ((1 - beta) * Dice + beta * (1 - clDice)), for thin structures.

    clDice (Shit et al., CVPR 2021, eqs. 1-3) scores the centre lines: with S_P, S_L the soft
    skeletons (:func:`soft_skeleton`) of the crack probability P and of the label L,
    Tprec = sum(S_P L) / sum(S_P) (how much of the predicted centre line lies on a crack) and
    Tsens = sum(S_L P) / sum(S_L) (how much of the labelled centre line is found), and
    clDice = 2 Tprec Tsens / (Tprec + Tsens). It does not reward a thick band over a thin crack,
    and it penalises a crack found in pieces in proportion to the centre line missed, which the
    pixel Dice hardly sees on 1-2 px cracks. Sums run over the batch and are smoothed as the Dice
    score is (``smooth``; with 0, a map without a centre line has Tprec or Tsens 1). Binary
    segmentation only: logits (B, 1, H, W). ``iterations`` erosions
    find centre lines of cracks up to 2 * iterations + 1 px wide.
    """

    def __init__(self, alpha: float = 0.7, beta: float = 0.5, iterations: int = 10, smooth: float = 1.0):
        super().__init__()
        self.alpha = _check_fraction("alpha", alpha)
        self.beta = _check_fraction("beta", beta)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise InputError(f"iterations must be an integer >= 1, got {iterations!r}")
        self.iterations = iterations
        self.smooth = _check_nonneg("smooth", smooth)
        self.dice = DiceLoss(smooth=smooth)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        batch = _prepare(logits, target)
        if not batch.binary or logits.ndim != 4:
            raise InputError(f"ce_cldice takes binary segmentation logits (B, 1, H, W), got {tuple(logits.shape)}")
        p = torch.sigmoid(batch.logits).reshape(logits.shape)
        y = batch.target.reshape(logits.shape)
        score = self.cldice(p, y)
        dice = self.dice._compute(batch)
        return self.alpha * _cross_entropy(batch, None) + (1 - self.alpha) * (
            (1 - self.beta) * dice + self.beta * (1 - score)
        )

    def cldice(self, p: Tensor, y: Tensor) -> Tensor:
        """clDice of probabilities ``p`` against the label ``y``, both (B, 1, H, W) in [0, 1]."""
        skel_p, skel_y = soft_skeleton(p, self.iterations), soft_skeleton(y, self.iterations)
        tprec = _dice_score((skel_p * y).sum() + self.smooth, skel_p.sum() + self.smooth)
        tsens = _dice_score((skel_y * p).sum() + self.smooth, skel_y.sum() + self.smooth)
        both = tprec + tsens  # 0 only where neither centre line touches the other: clDice 0
        return 2 * tprec * tsens / torch.where(both > 0, both, torch.ones_like(both))


@register("softmax_mse")
class SoftmaxMSELoss(_Loss):
    """Mean squared error between the class probabilities and the one-hot target,
    mean over samples, classes (and positions): (1 / (B K)) sum (p_k - y_k)^2 with p = softmax(x)
    (binary input: K = 2 with p = (1 - sigmoid(x), sigmoid(x))). The harmonics paper (1-D CNNs on
    nonlinear-ultrasonic harmonics, section 3.1) trains its classifiers this way."""

    def _compute(self, batch: _Batch) -> Tensor:
        p, y = _class_probs(batch)
        return ((p - y) ** 2).mean()
