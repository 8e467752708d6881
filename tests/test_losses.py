"""Losses: registry, hand-worked values, reference formulas, empty masks and numerical stability."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crackscope import losses
from crackscope.errors import InputError

NAMES = ["bce", "cross_entropy", "focal", "dice", "weighted_dice", "combined_weighted_dice", "ce_dice"]
BINARY_NAMES = [*NAMES, "ce_cldice"]  # ce_cldice: binary segmentation only


def logit(p):
    p = torch.as_tensor(p, dtype=torch.float64)
    return torch.log(p) - torch.log1p(-p)


def np_softmax(x, axis=1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ------------------------------------------------------------------------------ registry


def test_available_and_aliases():
    assert set(NAMES) <= set(losses.available())
    assert {"fl", "dl", "wdl", "cwdl"} <= set(losses.available(include_aliases=True))
    for alias, name in [
        ("FL", "focal"),
        ("DL", "dice"),
        ("WDL", "weighted_dice"),
        ("CWDL", "combined_weighted_dice"),
        ("CE", "cross_entropy"),
    ]:
        assert type(losses.create(alias)) is type(losses.create(name))


def test_create_passes_parameters():
    loss = losses.create("focal", alpha=0.5, gamma=1.0)
    assert (loss.alpha, loss.gamma) == (0.5, 1.0)
    assert losses.create("CWDL", alpha=0.3).alpha == 0.3


@pytest.mark.parametrize(
    "name, kw, needle",
    [
        ("nope", {}, "'nope'"),
        ("dice", {"gamma": 2}, "'gamma'"),
        ("focal", {"alpha": 1.5}, "1.5"),
        ("focal", {"gamma": -1}, "-1"),
        ("dice", {"smooth": -0.1}, "-0.1"),
        ("weighted_dice", {"class_weights": [1, -2]}, "-2"),
        ("weighted_dice", {"class_weights": "median"}, "median"),
        ("ce_dice", {"alpha": "x"}, "'x'"),
    ],
)
def test_bad_names_and_parameters_raise_input_error(name, kw, needle):
    with pytest.raises(InputError, match=needle):
        losses.create(name, **kw)


def test_register_new_and_duplicate():
    @losses.register("my_test_loss")
    class MyLoss(torch.nn.Module):
        def __init__(self, scale: float = 1.0):
            super().__init__()
            self.scale = scale

    try:
        assert "my_test_loss" in losses.available()
        assert losses.create("MY_TEST_LOSS", scale=2.0).scale == 2.0
        with pytest.raises(ValueError):
            losses.register("dice")(MyLoss)
        with pytest.raises(ValueError):
            losses.register("cwdl")(MyLoss)
    finally:
        losses._REGISTRY.pop("my_test_loss")


# ------------------------------------------------------------------------------ input forms


def test_bad_inputs_raise_input_error():
    dice = losses.create("dice")
    with pytest.raises(InputError, match="shape"):
        dice(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        dice(torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 2.0))
    with pytest.raises(InputError, match="integer"):
        dice(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(InputError, match=r"\[0, 2\]"):
        dice(torch.zeros(2, 3, 4, 4), torch.full((2, 4, 4), 3))
    with pytest.raises(InputError, match="3 classes"):
        losses.create("weighted_dice", class_weights=[1, 2])(
            torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)
        )


@pytest.mark.parametrize("name", BINARY_NAMES)
def test_binary_target_with_or_without_channel(name):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1, 6, 6, generator=g)
    y = (torch.rand(3, 1, 6, 6, generator=g) > 0.7).float()
    loss = losses.create(name)
    assert torch.allclose(loss(x, y), loss(x, y[:, 0]))
    assert torch.allclose(loss(x, y), loss(x, y.to(torch.uint8)))


def test_cross_entropy_matches_torch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 5, 3, 3, generator=g)
    t = torch.randint(0, 5, (4, 3, 3), generator=g)
    w = [0.5, 1.0, 2.0, 0.1, 3.0]
    assert torch.allclose(losses.create("ce")(x, t), F.cross_entropy(x, t))
    assert torch.allclose(losses.create("bce")(x, t), F.cross_entropy(x, t))  # multi-class bce -> CE
    assert torch.allclose(losses.create("ce", class_weights=w)(x, t), F.cross_entropy(x, t, weight=torch.tensor(w)))
    # classification: (B, C) logits with (B,) labels; (B,) logits with (B,) binary labels
    xc, tc = torch.randn(6, 12, generator=g), torch.randint(0, 12, (6,), generator=g)
    assert torch.allclose(losses.create("bce")(xc, tc), F.cross_entropy(xc, tc))
    xb, tb = torch.randn(6, generator=g), (torch.rand(6, generator=g) > 0.5).float()
    assert torch.allclose(losses.create("bce")(xb, tb), F.binary_cross_entropy_with_logits(xb, tb))
    assert torch.allclose(losses.create("bce")(xb[:, None], tb), F.binary_cross_entropy_with_logits(xb, tb))


def test_binary_weighted_bce_by_hand():
    p = torch.tensor([0.8, 0.3, 0.6])
    y = torch.tensor([1.0, 1.0, 0.0])
    loss = losses.create("bce", class_weights=[1.0, 3.0])(logit(p).float(), y)
    ref = (3 * -math.log(0.8) + 3 * -math.log(0.3) + 1 * -math.log(0.4)) / 7
    assert loss.item() == pytest.approx(ref, rel=1e-5)


# ------------------------------------------------------------------------------ Dice


def test_dice_2x2_hand_example():
    p = torch.tensor([[[[0.9, 0.2], [0.6, 0.1]]]], dtype=torch.float64)
    y = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    x = logit(p)
    # |X∩Y| = 0.9 + 0.6 = 1.5, |X| = 1.8, |Y| = 2
    assert losses.create("dice", smooth=0)(x, y).item() == pytest.approx(1 - 3.0 / 3.8, abs=1e-12)
    assert losses.create("dice", smooth=1)(x, y).item() == pytest.approx(1 - 4.0 / 4.8, abs=1e-12)


def test_dice_multiclass_matches_per_class_hand_computation():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    t = torch.randint(0, 3, (2, 4, 4), generator=g)
    p, tt = np_softmax(x.numpy()), t.numpy()
    for smooth in (0.0, 1.0):
        per_class = []
        for c in range(3):
            yc = (tt == c).astype(float)
            inter, size = (p[:, c] * yc).sum(), p[:, c].sum() + yc.sum()
            per_class.append((2 * inter + smooth) / (size + smooth))
        ref = 1 - np.mean(per_class)
        assert losses.create("dice", smooth=smooth)(x, t).item() == pytest.approx(ref, abs=1e-12)


def test_dice_per_sample():
    p = torch.tensor([[[[0.9, 0.2]]], [[[0.5, 0.5]]]], dtype=torch.float64)
    y = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 0.0]]]])
    d1 = 1 - (2 * 0.9) / (1.1 + 1.0)
    d2 = 1 - 0.0 / 1.0
    loss = losses.create("dice", smooth=0, per_sample=True)(logit(p), y)
    assert loss.item() == pytest.approx((d1 + d2) / 2, abs=1e-12)


def test_dice_binary_is_foreground_of_two_class_form():
    """Binary Dice scores the crack channel only: equal to weighted Dice with weights [0, 1]."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 1, 5, 5, generator=g)
    y = (torch.rand(3, 1, 5, 5, generator=g) > 0.6).float()
    assert torch.allclose(losses.create("dice")(x, y), losses.create("wdl", class_weights=[0, 1])(x, y))


# ------------------------------------------------------------------------------ weighted Dice


def test_weighted_dice_hand_example_fixed_weights():
    p = torch.tensor([[[[0.9, 0.2], [0.6, 0.1]]]], dtype=torch.float64)
    y = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    # background: p0 = [0.1, 0.8, 0.4, 0.9], y0 = [0, 1, 0, 1]: I0 = 1.7, S0 = 2.2 + 2 = 4.2
    # crack:      I1 = 1.5, S1 = 1.8 + 2 = 3.8
    w0, w1 = 1.0, 3.0
    ref = 1 - (2 * (w0 * 1.7 + w1 * 1.5)) / (w0 * 4.2 + w1 * 3.8)
    loss = losses.create("weighted_dice", class_weights=[w0, w1], smooth=0)(logit(p), y)
    assert loss.item() == pytest.approx(ref, abs=1e-12)


def test_weighted_dice_inverse_frequency_default():
    p = torch.tensor([[[[0.9, 0.2], [0.6, 0.1]]]], dtype=torch.float64)
    y = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    # n_bg = 3, n_crack = 1, N = 4, K = 2: w = 4 / (2 (n + 1)) = [0.5, 1.0]
    i0, s0 = 0.8 + 0.4 + 0.9, (0.1 + 0.8 + 0.4 + 0.9) + 3
    i1, s1 = 0.9, (0.9 + 0.2 + 0.6 + 0.1) + 1
    ref = 1 - (2 * (0.5 * i0 + 1.0 * i1) + 1) / (0.5 * s0 + 1.0 * s1 + 1)
    loss = losses.create("weighted_dice")(logit(p), y)
    assert loss.item() == pytest.approx(ref, abs=1e-12)
    assert losses.create("weighted_dice", class_weights="inverse_frequency")(logit(p), y).item() == pytest.approx(ref)


def test_weighted_dice_multiclass_uniform_weights():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64)
    t = torch.randint(0, 4, (2, 3, 3), generator=g)
    p, tt = np_softmax(x.numpy()), t.numpy()
    y = np.stack([(tt == c) for c in range(4)], 1).astype(float)
    ref = 1 - (2 * (p * y).sum() + 1) / ((p + y).sum() + 1)
    assert losses.create("wdl", class_weights=[1, 1, 1, 1])(x, t).item() == pytest.approx(ref, abs=1e-12)


# ------------------------------------------------------------------------------ focal


def np_focal_binary(x, y, alpha, gamma):
    p = 1 / (1 + np.exp(-x))
    pt = np.where(y == 1, p, 1 - p)
    at = np.where(y == 1, alpha, 1 - alpha)
    return np.mean(-at * (1 - pt) ** gamma * np.log(pt))


def test_focal_matches_numpy_formula_binary():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 1, 6, 6, generator=g, dtype=torch.float64) * 3
    y = (torch.rand(4, 1, 6, 6, generator=g) > 0.8).double()
    for alpha, gamma in [(0.25, 2.0), (0.5, 0.5), (0.9, 3.0)]:
        ref = np_focal_binary(x.numpy(), y.numpy(), alpha, gamma)
        got = losses.create("focal", alpha=alpha, gamma=gamma)(x, y).item()
        assert got == pytest.approx(ref, rel=1e-10)


def test_focal_gamma_zero_is_alpha_weighted_bce():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3, 1, 5, 5, generator=g)
    y = (torch.rand(3, 1, 5, 5, generator=g) > 0.7).float()
    bce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    ref = ((0.25 * y + 0.75 * (1 - y)) * bce).mean()
    assert torch.allclose(losses.create("focal", gamma=0.0)(x, y), ref)
    assert torch.allclose(losses.create("focal", alpha=None, gamma=0.0)(x, y), F.binary_cross_entropy_with_logits(x, y))


def test_focal_multiclass_matches_numpy_formula():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 4, 5, 5, generator=g, dtype=torch.float64) * 2
    t = torch.randint(0, 4, (3, 5, 5), generator=g)
    p = np_softmax(x.numpy())
    pt = np.take_along_axis(p, t.numpy()[:, None], 1)[:, 0]
    per_class = np.array([0.1, 0.2, 0.3, 0.4])
    for alpha, at in [
        (None, 1.0),
        (per_class.tolist(), per_class[t.numpy()]),
        (0.25, np.where(t.numpy() == 0, 0.75, 0.25)),
    ]:
        ref = np.mean(-at * (1 - pt) ** 2 * np.log(pt))
        got = losses.create("focal", alpha=alpha, gamma=2.0)(x, t).item()
        assert got == pytest.approx(ref, rel=1e-10)
    # classification form (B, C) with (B,)
    xc, tc = x[:, :, 0, 0], t[:, 0, 0]
    ref_c = losses.create("focal", alpha=None)(xc[:, :, None, None], tc[:, None, None])
    assert torch.allclose(losses.create("focal", alpha=None)(xc, tc), ref_c)


def test_focal_binary_equals_two_class_softmax_form():
    """sigmoid(x) = softmax([0, x])[1], and the scalar alpha weights class 0 by 1 - alpha."""
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    t = torch.randint(0, 2, (2, 4, 4), generator=g)
    two = torch.cat([torch.zeros_like(x), x], 1)
    focal = losses.create("focal")
    assert torch.allclose(focal(x, t.double()), focal(two, t))


# ------------------------------------------------------------------------------ combined


def test_combined_losses_are_their_definitions():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 1, 6, 6, generator=g)
    y = (torch.rand(2, 1, 6, 6, generator=g) > 0.8).float()
    ce, dice, wdl = losses.create("ce")(x, y), losses.create("dice")(x, y), losses.create("wdl")(x, y)
    assert torch.allclose(losses.create("cwdl")(x, y), 0.5 * wdl + 0.5 * ce)
    assert torch.allclose(losses.create("cwdl", alpha=0.8)(x, y), 0.8 * wdl + 0.2 * ce)
    assert torch.allclose(losses.create("ce_dice")(x, y), 0.7 * ce + 0.3 * dice)
    assert torch.allclose(losses.create("ce_dice", alpha=1.0)(x, y), ce)
    wdl_w = losses.create("wdl", class_weights=[1, 4], smooth=0.5)(x, y)
    cwdl_w = losses.create("cwdl", alpha=0.5, class_weights=[1, 4], smooth=0.5)(x, y)
    assert torch.allclose(cwdl_w, 0.5 * wdl_w + 0.5 * ce)


# ------------------------------------------------------------------------------ empty masks, stability


@pytest.mark.parametrize("name", BINARY_NAMES)
def test_perfect_empty_mask(name):
    x = torch.full((2, 1, 36, 36), -1e4, requires_grad=True)
    y = torch.zeros(2, 1, 36, 36)
    loss = losses.create(name)(x, y)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", ["dice", "weighted_dice"])
def test_empty_vs_empty_without_smoothing(name):
    x = torch.full((2, 1, 4, 4), -1e4, requires_grad=True)
    loss = losses.create(name, smooth=0.0)(x, torch.zeros(2, 1, 4, 4))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", BINARY_NAMES)
def test_empty_mask_with_false_alarms_is_finite(name):
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(10), requires_grad=True)
    loss = losses.create(name)(x, torch.zeros(2, 1, 8, 8))
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert torch.isfinite(x.grad).all()


EXTREME_CASES = (
    [(n, {}) for n in NAMES]
    + [(n, {"smooth": 0.0}) for n in ("dice", "weighted_dice", "combined_weighted_dice", "ce_dice")]
    + [("focal", {"gamma": 0.5}), ("focal", {"gamma": 0.0})]
)


@pytest.mark.parametrize("name, kw", EXTREME_CASES)
@pytest.mark.parametrize("multiclass", [False, True])
def test_extreme_logits_give_finite_loss_and_gradients(name, kw, multiclass):
    g = torch.Generator().manual_seed(11)
    if multiclass:
        x = (torch.randint(0, 2, (2, 3, 6, 6), generator=g).float() * 2 - 1) * 1e4
        y = torch.randint(0, 3, (2, 6, 6), generator=g)
    else:
        x = (torch.randint(0, 2, (2, 1, 6, 6), generator=g).float() * 2 - 1) * 1e4
        y = torch.randint(0, 2, (2, 1, 6, 6), generator=g).float()
    x.requires_grad_(True)
    loss = losses.create(name, **kw)(x, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()


def test_confidently_wrong_bce_is_large_not_inf():
    x = torch.full((1, 1, 2, 2), 1e4)
    loss = losses.create("bce")(x, torch.zeros(1, 1, 2, 2))
    assert loss.item() == pytest.approx(1e4)


@pytest.mark.parametrize("name", BINARY_NAMES)
def test_gradients_finite_and_descend(name):
    g = torch.Generator().manual_seed(12)
    x = torch.randn(2, 1, 8, 8, generator=g, requires_grad=True)
    y = (torch.rand(2, 1, 8, 8, generator=g) > 0.8).float()
    loss_fn = losses.create(name)
    loss = loss_fn(x, y)
    loss.backward()
    assert torch.isfinite(x.grad).all()
    with torch.no_grad():
        after = loss_fn(x - 1.0 * x.grad / x.grad.abs().max(), y)
    assert after < loss


def test_half_precision_input_is_promoted():
    x = torch.randn(2, 1, 4, 4).half()
    y = (torch.rand(2, 1, 4, 4) > 0.5).float()
    assert losses.create("cwdl")(x, y).dtype == torch.float32


def test_softmax_mse_by_hand():
    from crackscope import losses

    # logits (0, ln 3) -> softmax (1/4, 3/4); target class 0 -> ((1/4 - 1)^2 + (3/4)^2) / 2 = 9/16
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0]])
    target = torch.tensor([0, 0])
    # second sample: softmax (3/4, 1/4), target 0 -> ((1/4)^2 + (1/4)^2) / 2 = 1/16
    assert losses.create("softmax_mse")(logits, target).item() == pytest.approx((9 / 16 + 1 / 16) / 2)


# ------------------------------------------------------------------------------ clDice (Shit et al. 2021)


def band(rows, height=24, width=20):
    """A 0/1 map (1, 1, H, W) with the given rows set across the whole width."""
    x = torch.zeros(1, 1, height, width)
    x[..., rows, :] = 1.0
    return x


@pytest.mark.parametrize("width, centre", [(1, [10]), (3, [11]), (5, [12]), (7, [13]), (4, [11, 12])])
def test_soft_skeleton_of_a_band_is_its_centre_line(width, centre):
    # a band across the image erodes only from above and below (outside the image never erodes):
    # erosion k leaves rows 10+k .. 9+width-k, and the opening removes the last non-empty one
    skel = losses.soft_skeleton(band(slice(10, 10 + width)), iterations=5)
    assert torch.equal(skel, band(centre))


def test_cldice_by_hand():
    loss = losses.create("ce_cldice", smooth=0.0)
    line = band([12])
    assert loss.cldice(line, line).item() == pytest.approx(1.0)
    # a thick band over a thin crack: its centre line lies on the crack and covers all of it, so
    # clDice is 1 where the pixel Dice is 2 * 20 / (100 + 20) = 1/3
    thick = band(slice(10, 15))
    assert loss.cldice(thick, line).item() == pytest.approx(1.0)
    # half the crack found (a 1-px segment on it): Tprec = 1, Tsens = 1/2, clDice = 2/3
    half = torch.zeros_like(line)
    half[..., 12, :10] = 1.0
    assert loss.cldice(half, line).item() == pytest.approx(2 / 3)
    # a parallel line 3 px off: no centre-line pixel of either lies on the other
    assert loss.cldice(band([15]), line).item() == pytest.approx(0.0, abs=1e-12)


def test_ce_cldice_is_its_definition():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 1, 16, 16, generator=g, dtype=torch.float64)
    y = (torch.rand(2, 1, 16, 16, generator=g) > 0.8).double()
    loss = losses.create("ce_cldice", alpha=0.6, beta=0.25, iterations=3, smooth=1.0)
    ce = F.binary_cross_entropy_with_logits(x, y)
    dice = losses.create("dice", smooth=1.0)(x, y)
    p = torch.sigmoid(x)

    def skel(m):  # Algorithm 1 of the paper, written out with the 3x3 cross erosion
        def erode(a):
            pad = F.pad(a, (1, 1, 1, 1), value=float("inf"))
            c = pad[..., 1:-1, 1:-1]
            return torch.stack(
                [c, pad[..., :-2, 1:-1], pad[..., 2:, 1:-1], pad[..., 1:-1, :-2], pad[..., 1:-1, 2:]]
            ).amin(0)

        def dilate(a):
            return F.max_pool2d(a, 3, 1, 1)

        s = torch.relu(m - dilate(erode(m)))
        for _ in range(3):
            m = erode(m)
            d = torch.relu(m - dilate(erode(m)))
            s = s + torch.relu(d - s * d)
        return s

    tprec = ((skel(p) * y).sum() + 1) / (skel(p).sum() + 1)
    tsens = ((skel(y) * p).sum() + 1) / (skel(y).sum() + 1)
    cl = 2 * tprec * tsens / (tprec + tsens)
    expected = 0.6 * ce + 0.4 * (0.75 * dice + 0.25 * (1 - cl))
    assert loss(x, y).item() == pytest.approx(expected.item(), rel=1e-10)


def test_ce_cldice_bad_input():
    with pytest.raises(InputError, match="iterations"):
        losses.create("ce_cldice", iterations=0)
    with pytest.raises(InputError, match="beta"):
        losses.create("ce_cldice", beta=2)
    with pytest.raises(InputError, match=r"\(2, 3, 4, 4\)"):
        losses.create("ce_cldice")(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))


@pytest.mark.parametrize("kw", [{}, {"smooth": 0.0}])
def test_ce_cldice_extreme_logits_give_finite_loss_and_gradients(kw):
    g = torch.Generator().manual_seed(11)
    x = ((torch.randint(0, 2, (2, 1, 12, 12), generator=g).float() * 2 - 1) * 1e4).requires_grad_(True)
    y = torch.randint(0, 2, (2, 1, 12, 12), generator=g).float()
    loss = losses.create("ce_cldice", **kw)(x, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()
