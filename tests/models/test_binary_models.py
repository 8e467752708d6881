"""Binary classification networks of the AOIE-Net study (crackscope.models.binary) and their complexity.

Expected numbers are worked out by hand from the layer sizes (in the helpers and comments), never
taken from the code under test:

* ResNet-20 (option-A shortcuts, no conv biases): stem 3x3 conv C*16*9 + BN 2*16; stage widths
  16/32/64, 3 basic blocks of two 3x3 convs + two BNs; FC 64*classes + classes. For C=3, 10 classes:
  432 + 32 + 14,016 + 51,072 + 203,520 + 650 = 269,722 (He et al.'s "0.27M").
* Its 3x3 convs inside the stages: 6*2304 + (4608 + 5*9216) + (18432 + 5*36864) = 267,264 weights.
* MACs at 32x32: stem 32*32*16*27 = 442,368; stage 1: 6 convs of 32*32*16*144; stages 2 and 3:
  one conv of 16*16*32*144 (8*8*64*288) + 5 of 16*16*32*288 (8*8*64*576); FC 640 -> 40,551,040.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from crackscope.errors import InputError
from crackscope.models import available, create
from crackscope.models.binary import TABLE1_ROWS, VARIANTS, BinaryClassifier, ResNetSkeleton
from crackscope.models.binary.complexity import complexity, count_parameters
from crackscope.nn.binary import ABAIO, DBNIEB, PAN, BinaryConv2d

FAMILIES = ("bnn", "xnor", "reactnet", "fracbnn", "adabin", "ienet", "aoie_net", "aoie_ablation")
BINARY20 = tuple(f"{f}_resnet20" for f in FAMILIES) + ("binary_resnet20",)
BINARY18 = tuple(f"{f}_resnet18" for f in FAMILIES) + ("binary_resnet18",)
ALL = ("resnet20", "resnet18") + BINARY20 + BINARY18
SMALL18 = dict(width=0.25)  # 16/32/64/128 channels keep the ResNet-18 tests fast


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def small(name: str, **kw):
    return create(name, **({**SMALL18, **kw} if name.endswith("18") else kw))


# ---------------------------------------------------------------------------- hand counts


def resnet20_params_by_hand(c_in: int, classes: int) -> int:
    def conv(i, o):
        return i * o * 9

    def bn(ch):
        return 2 * ch

    n = conv(c_in, 16) + bn(16)
    c = 16
    for width in (16, 32, 64):
        for _ in range(3):
            n += conv(c, width) + bn(width) + conv(width, width) + bn(width)
            c = width
    return n + 64 * classes + classes


def resnet20_macs_by_hand(c_in: int, side: int, classes: int) -> tuple[int, int, int]:
    """(stem MACs, MACs of the 18 stage convs, FC MACs) for a side x side input."""
    stem = side * side * 16 * c_in * 9
    body, c, s = 0, 16, side
    for i, width in enumerate((16, 32, 64)):
        for j in range(3):
            if i > 0 and j == 0:
                s = (s + 1) // 2
            body += s * s * width * c * 9 + s * s * width * width * 9
            c = width
    return stem, body, 64 * classes


def test_resnet20_parameters_by_hand():
    assert resnet20_params_by_hand(3, 10) == 269_722  # the hand sum in the module docstring
    for c_in, classes in ((3, 10), (1, 6)):
        model = create("resnet20", in_channels=c_in, classes=classes)
        assert sum(p.numel() for p in model.parameters()) == resnet20_params_by_hand(c_in, classes)


def test_resnet18_parameters_match_torchvision_count():
    # torchvision's resnet18 (1000 classes) has 11,689,512 parameters; 1000 -> 10 classes drops 512*990 + 990
    model = create("resnet18", classes=10)
    assert sum(p.numel() for p in model.parameters()) == 11_689_512 - 990 * 513


def test_resnet20_flops_by_hand():
    stem, body, fc = resnet20_macs_by_hand(3, 32, 10)
    assert (stem, body, fc) == (442_368, 40_108_032, 640)
    c = complexity(create("resnet20"), 32)
    assert (c.flops, c.bops, c.params_binary) == (40_551_040, 0, 0)
    assert c.memory_mbit == pytest.approx(269_722 * 32 / 1e6)


def test_binary_resnet20_complexity_by_hand():
    stem, body, fc = resnet20_macs_by_hand(3, 32, 10)
    c = complexity(create("xnor_resnet20"), 32)
    assert (c.flops, c.bops) == (stem + fc, body)
    assert c.params_binary == 267_264 and c.params_total == 269_722  # same layers as resnet20
    assert c.flops_equiv == pytest.approx(stem + fc + body / 64)
    assert c.memory_mbit == pytest.approx((267_264 + 32 * (269_722 - 267_264)) / 1e6)
    # AOIE-Net: one shared conv on two summed binary planes -> 2 bit-planes (1 under merged_planes=1)
    aoie = create("aoie_net_resnet20")
    assert complexity(aoie, 32).bops == 2 * body
    assert complexity(aoie, 32, merged_planes=1).bops == body
    assert complexity(create("ienet_resnet20"), 32).bops == 2 * body
    assert count_parameters(create("ienet_resnet20"))[1] == 2 * 267_264  # one conv per branch


def test_complexity_of_tiny_hand_net():
    # binary 3x3 conv 2 -> 4 (sign input), real 1x1 conv 4 -> 3 with bias, 8x8 input
    net = nn.Sequential(BinaryConv2d(2, 4, 3, padding=1, activation="sign"), nn.Conv2d(4, 3, 1))
    c = complexity(net, 8, in_channels=2)
    assert c.bops == 8 * 8 * 4 * 2 * 9 == 4608
    assert c.flops == 8 * 8 * 3 * 4 == 768
    assert (c.params_total, c.params_binary, c.params_real) == (72 + 15, 72, 15)
    assert c.flops_equiv == 768 + 4608 / 64 == 840
    assert c.memory_mbit == pytest.approx((72 * 1 + 15 * 32) / 1e6)
    assert [lc.binary for lc in c.layers] == [True, False]

    # stride 2, odd input 9x7 -> 5x4 outputs; a Linear on top; a binary-weight conv on REAL input
    net = nn.Sequential(
        BinaryConv2d(2, 4, 3, stride=2, padding=1, activation="adaptive"),
        BinaryConv2d(4, 4, 1),
        nn.Flatten(),
        nn.Linear(4 * 5 * 4, 5),
    )
    c = complexity(net, (9, 7), in_channels=2)
    assert c.bops == 5 * 4 * 4 * 2 * 9
    assert c.flops == 5 * 4 * 4 * 4 + 80 * 5  # the unbinarised-input conv counts as real
    assert c.params_binary == 72 + 16
    assert c.params_real == 2 + 80 * 5 + 5  # adaptive alpha, beta; Linear


@pytest.mark.parametrize("aba_io, binary_params, bops_planes", [(True, 72, 2), (False, 144, 2)])
def test_complexity_of_dual_bn_block(aba_io, binary_params, bops_planes):
    block = DBNIEB(2, 4, 3, aba_io=aba_io)
    c = complexity(block, 8, in_channels=2)
    assert c.params_binary == binary_params
    assert c.params_real == 2 * 2 * 2 + 2 * 2  # two BN(2) affine, two (alpha, beta)
    assert c.bops == bops_planes * 8 * 8 * 4 * 2 * 9 and c.flops == 0
    assert complexity(ABAIO(2, 4, 3), 8, in_channels=2).bops == 8 * 8 * 4 * 2 * 9


def test_complexity_restores_mode_and_rejects_bad_size():
    model = create("fracbnn_resnet20", width=0.25)
    model.train()
    complexity(model, 16)
    assert model.training
    with pytest.raises(InputError, match="0"):
        complexity(model, 0)
    with pytest.raises(InputError, match="merged_planes"):
        complexity(model, 16, merged_planes=0)


def test_aoie_net_memory_far_below_full_precision():
    binary, real = complexity(create("aoie_net_resnet20"), 32), complexity(create("resnet20"), 32)
    assert real.memory_mbit / binary.memory_mbit > 10
    assert real.flops_equiv / binary.flops_equiv > 10


# ---------------------------------------------------------------------------- shapes, registry


@pytest.mark.parametrize("name", ALL)
def test_registered_and_documented(name):
    assert name in available()
    model = small(name)
    assert isinstance(model, ResNetSkeleton) and isinstance(model, BinaryClassifier)
    assert "Binary information enhancement network" in model.paper and "paper:" in type(model).__doc__
    assert model.default_loss == "cross_entropy"
    assert model.kind.binary == (name not in ("resnet20", "resnet18"))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_output_shape(name, in_channels):
    model = small(name, in_channels=in_channels, classes=6).eval()
    with torch.no_grad():
        for side in (32, 64):
            y = model(torch.randn(2, in_channels, side, side))
            assert y.shape == (2, 6) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["aoie_net_resnet20", "aoie_net_resnet18", "resnet18"])
def test_small_and_odd_sizes(name):
    model = small(name, in_channels=1, classes=3).eval()
    with torch.no_grad():
        for h, w in ((8, 8), (33, 47)):
            assert model(torch.randn(1, 1, h, w)).shape == (1, 3)


# ---------------------------------------------------------------------------- binary internals


def _spy_binary_convs(model, monkeypatch):
    """Record (input, weight) of every BinaryConv2d._conv_forward call."""
    calls = {}
    for mod in model.modules():
        if isinstance(mod, BinaryConv2d):
            original = mod._conv_forward

            def spy(x, weight, bias, _m=mod, _orig=original):
                calls.setdefault(_m, []).append((x.detach().clone(), weight.detach().clone()))
                return _orig(x, weight, bias)

            monkeypatch.setattr(mod, "_conv_forward", spy)
    return calls


@pytest.mark.parametrize("name", BINARY20 + ("aoie_net_resnet18",))
def test_binary_convs_see_two_level_weights_and_binary_inputs(name, monkeypatch):
    model = small(name, width=0.5 if name.endswith("20") else 0.25).eval()
    merged = {m.conv for m in model.modules() if isinstance(m, DBNIEB) and m.aba_io}
    convs = [m for m in model.modules() if isinstance(m, BinaryConv2d)]
    calls = _spy_binary_convs(model, monkeypatch)
    with torch.no_grad():
        model(torch.randn(2, 3, 16, 16))
    assert set(calls) == set(convs) and len(convs) > 0
    for conv, seen in calls.items():
        for x, w in seen:
            for o in range(w.shape[0]):  # two values per output channel (all three weight modes)
                assert torch.unique(w[o]).numel() == 2
            # sign/RSign: {-1, +1}; adaptive (one alpha, beta per layer): 2 levels; summed pair: <= 4
            assert torch.unique(x).numel() <= (4 if conv in merged else 2)
            if conv.weight_mode in ("sign",):
                assert set(torch.unique(w).tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("name", BINARY20 + BINARY18)
def test_first_conv_and_classifier_are_real(name):
    model = small(name)
    assert type(model.stem[0]) is nn.Conv2d and type(model.fc) is nn.Linear
    convs = [m for m in model.modules() if isinstance(m, BinaryConv2d)]
    # every 3x3 conv of the stages is binary: 18 (ResNet-20) or 16 (ResNet-18), two per unit without ABA-IO
    n = 18 if name.endswith("20") else 16
    double = model.kind.conv == "dbnieb" and not model.kind.aba_io
    assert len(convs) == (2 * n if double else n)
    assert all(c.kernel_size == (3, 3) and c.weight_mode != "real" for c in convs)
    real_convs = [m for m in model.modules() if type(m) is nn.Conv2d]
    assert all(c is model.stem[0] or c.kernel_size == (1, 1) for c in real_convs)  # stem + 1x1 shortcuts
    layers = {lc.name: lc for lc in complexity(model, 16).layers}
    assert not layers["stem.0"].binary and not layers["fc"].binary


@pytest.mark.parametrize(
    "name, kw",
    [(n, {}) for n in BINARY20 + ("resnet20",)]
    + [("aoie_ablation_resnet20", row) for row in TABLE1_ROWS.values()]
    + [("aoie_net_resnet18", {}), ("ienet_resnet18", {})],
)
def test_one_training_step(name, kw):
    model = small(name, in_channels=1, classes=4, width=0.5 if name.endswith("20") else 0.25, **kw).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 3])
    loss = F.cross_entropy(model(x), y)
    assert torch.isfinite(loss)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


# ---------------------------------------------------------------------------- variants, ablation


def test_table1_rows():
    params = {row: count_parameters(create("aoie_ablation_resnet20", **flags)) for row, flags in TABLE1_ROWS.items()}
    assert params["FracBNN"] == count_parameters(create("fracbnn_resnet20"))
    assert params["AOIE-Net"] == count_parameters(create("aoie_net_resnet20"))
    assert create("aoie_ablation_resnet20", aba_io=False, dbn_ieb=False, pan=False).variant == "fracbnn"
    assert create("aoie_ablation_resnet20").variant == "aoie_net"
    # binary weights: one 3x3 conv per unit except DBN-IEB without ABA-IO (two)
    for row, (_, binary, _) in params.items():
        assert binary == (2 if row == "FracBNN + DBN-IEB" else 1) * 267_264
    model = create("aoie_ablation_resnet20", aba_io=True, dbn_ieb=False, pan=True)
    unit = model.body[0][0][0]
    assert isinstance(unit.conv, ABAIO) and isinstance(unit.post, PAN)


def test_generic_variant_matches_family():
    for variant in ("bnn", "fracbnn", "aoie_net", "fracbnn+pan"):
        assert variant in VARIANTS
        a = create("binary_resnet20", variant=variant)
        assert a.variant == variant
    assert count_parameters(create("binary_resnet20", variant="adabin")) == count_parameters(create("adabin_resnet20"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(classes=0), "classes.*0"),
        (dict(in_channels=0), "in_channels.*0"),
        (dict(width=0), "width.*0"),
        (dict(width=-1.5), "width.*-1.5"),
        (dict(shortcut="C"), "shortcut.*'C'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        create("aoie_net_resnet20", **kwargs)


def test_bad_variant_flags_and_inputs():
    with pytest.raises(InputError, match="'nope'"):
        create("binary_resnet20", variant="nope")
    with pytest.raises(InputError, match="pan.*'yes'"):
        create("aoie_ablation_resnet20", pan="yes")
    with pytest.raises(InputError, match="unknown model"):
        create("aoie_net_resnet99")
    model = create("adabin_resnet20", in_channels=1)
    with pytest.raises(InputError, match=r"\(2, 3, 32, 32\)"):
        model(torch.randn(2, 3, 32, 32))
    with pytest.raises(InputError, match="H, W >= 8"):
        model(torch.randn(2, 1, 7, 32))


def test_width_multiplier_scales_channels():
    model = create("aoie_net_resnet20", width=0.5)
    assert model.stem[0].out_channels == 8 and model.fc.in_features == 32
    assert math.isclose(model.width, 0.5)


def test_patchify_stem_is_one_convolution_per_non_overlapping_window():
    model = create("aoie_net_resnet20", in_channels=1, classes=2, width=0.5, stem_stride=4).eval()
    x = torch.rand(2, 1, 64, 48, generator=torch.Generator().manual_seed(0))
    conv = model.stem[0]
    # by hand: output pixel (i, j) is the 4 x 4 window starting at (4i, 4j) dotted with the kernel
    windows = x.unfold(2, 4, 4).unfold(3, 4, 4)  # (B, C, 16, 12, 4, 4)
    by_hand = torch.einsum("bcijkl,ockl->boij", windows, conv.weight)
    torch.testing.assert_close(conv(x), by_hand, rtol=1e-5, atol=1e-6)
    seen = []
    model.body.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    assert model(x).shape == (2, 2) and seen == [(2, 8, 16, 12)]
    # three stages halve twice more: the smallest input is 4 x 8 = 32 pixels a side
    with pytest.raises(InputError, match="H, W >= 32"):
        model(torch.rand(1, 1, 31, 64))
    for resnet18 in ("aoie_net_resnet18", "xnor_resnet18"):  # an ImageNet stem is not patchified
        with pytest.raises(InputError, match="stem_stride"):
            create(resnet18, stem_stride=4)
    with pytest.raises(InputError, match="stem_stride.*0"):
        create("resnet20", stem_stride=0)
    assert create("aoie_ablation_resnet20", pan=False, stem_stride=2).stem[0].stride == (2, 2)
