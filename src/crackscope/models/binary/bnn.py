"""BNN- and XNOR-Net-style binary ResNets: plain sign activations, sign or scaled-sign weights.

paper: Hubara/Courbariaux et al. 2016 (BNN) and Rastegari et al. 2016 (XNOR-Net); AOIE-Net,
sections 1-2 and Table 3 (the BNN and XNOR-Net rows), as the earliest baselines.

Each binary 3x3 convolution binarises its input with sign(x) in {-1, +1} (clipped-identity
"htanh" STE) and its weight with

* ``bnn``: sign(w) in {-1, +1} (no scaling);
* ``xnor``: alpha_o * sign(w), alpha_o = mean |w| over output channel o (XNOR-Net's weight scale;
  XNOR-Net's per-position activation scale K is not used, as in most re-implementations).

Reconstruction: neither original paper has this skeleton. BNN had no residual network and
XNOR-Net shortcut pairs of convolutions; here both use the shared binary unit
``BN(conv(x)) + shortcut(x)`` with nothing after the sum (a Bi-Real-style real shortcut around
every binary conv), so that all families differ only in the binariser and the post-sum layer.
"""

from __future__ import annotations

from crackscope.models import register
from crackscope.models.binary.base import AOIE_PAPER, BlockKind, define_kind
from crackscope.models.binary.resnet import CifarResNet, ImageNetResNet

__all__ = ["BNN", "XNOR", "BNNResNet20", "BNNResNet18", "XNORResNet20", "XNORResNet18"]

BNN = define_kind(
    BlockKind(
        "bnn", conv="plain", weight="sign", act="sign", post="none", summary="sign activations, sign weights (BNN)"
    )
)
XNOR = define_kind(
    BlockKind(
        "xnor",
        conv="plain",
        weight="xnor",
        act="sign",
        post="none",
        summary="sign activations, mean|w|-scaled sign weights (XNOR-Net)",
    )
)
BNN_PAPER = f"Hubara et al. 2016, Binarized neural networks; {AOIE_PAPER}, Table 3 (BNN row)"
XNOR_PAPER = f"Rastegari et al. 2016, XNOR-Net; {AOIE_PAPER}, Table 3 (XNOR-Net row)"


@register("bnn_resnet20")
class BNNResNet20(CifarResNet):
    """BNN-style ResNet-20 (CIFAR skeleton, 16/32/64 channels, shortcut "A"); every unit is
    ``BN(conv(sign(x), sign(w))) + shortcut(x)``.

    paper: Hubara et al. 2016 (BNN); AOIE-Net Table 3 (BNN row).
    Input (B, in_channels, H, W) with H, W >= 8 * stem_stride -> logits (B, classes).
    """

    paper = BNN_PAPER

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(BNN, in_channels, classes, width, shortcut, stem_stride)


@register("bnn_resnet18")
class BNNResNet18(ImageNetResNet):
    """BNN-style ResNet-18 (ImageNet skeleton, 64/128/256/512 channels, shortcut "B"); units as
    :class:`BNNResNet20`.

    paper: Hubara et al. 2016 (BNN); AOIE-Net Table 3 (BNN row, an ImageNet baseline).
    Input (B, in_channels, H, W) with H, W >= 8 -> logits (B, classes); ``stem_stride`` must stay 1.
    """

    paper = BNN_PAPER

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(BNN, in_channels, classes, width, shortcut, stem_stride)


@register("xnor_resnet20")
class XNORResNet20(CifarResNet):
    """XNOR-Net-style ResNet-20 (CIFAR skeleton, 16/32/64 channels, shortcut "A"); every unit is
    ``BN(conv(sign(x), alpha_o sign(w))) + shortcut(x)``.

    paper: Rastegari et al. 2016 (XNOR-Net), section 3.1 (binary weights, alpha = mean |w|); AOIE-Net Table 3.
    Input (B, in_channels, H, W) with H, W >= 8 * stem_stride -> logits (B, classes).
    """

    paper = XNOR_PAPER

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(XNOR, in_channels, classes, width, shortcut, stem_stride)


@register("xnor_resnet18")
class XNORResNet18(ImageNetResNet):
    """XNOR-Net-style ResNet-18 (ImageNet skeleton, 64/128/256/512 channels, shortcut "B"); units as
    :class:`XNORResNet20`.

    paper: Rastegari et al. 2016 (XNOR-Net); AOIE-Net Table 3 (XNOR-Net row, 51.2% top-1 on ImageNet).
    Input (B, in_channels, H, W) with H, W >= 8 -> logits (B, classes); ``stem_stride`` must stay 1.
    """

    paper = XNOR_PAPER

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(XNOR, in_channels, classes, width, shortcut, stem_stride)
