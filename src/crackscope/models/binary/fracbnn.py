"""FracBNN-style binary ResNets: the ReActNet unit with a BatchNorm in place of the RPReLU.

paper: Zhang et al. 2021 (FracBNN); AOIE-Net sections 1-2 and 3.3 (what FracBNN changes),
Table 1 (FracBNN is the ablation baseline, 88.2% on CIFAR-10), Tables 2-3.

Our reading of the AOIE-Net text: FracBNN keeps ReActNet's RSign binariser (AOIE-Net says it
"replaces the RSign function" of FracBNN with its adaptive one) and puts a BatchNorm after each
shortcut sum where ReActNet has RPReLU, to balance positive and negative activations (section
3.3; the introduction also speaks of a BN "after each shortcut"). Unit::

    BN_post(BN(conv(RSign(x), alpha_o sign(w))) + shortcut(x))

Not built: FracBNN's fractional (dual-precision, gated second-bit) activations and its binarised
thermometer-encoded input layer; AOIE-Net's ablation builds on the block structure only, and we
keep the first conv real like every other family. The weight binariser (mean|w|-scaled sign, as
ReActNet) is our choice; the AOIE-Net text does not state FracBNN's.
"""

from __future__ import annotations

from crackscope.models import register
from crackscope.models.binary.base import AOIE_PAPER, BlockKind, define_kind
from crackscope.models.binary.resnet import CifarResNet, ImageNetResNet

__all__ = ["FRACBNN", "FracBNNResNet20", "FracBNNResNet18"]

FRACBNN = define_kind(
    BlockKind(
        "fracbnn",
        conv="plain",
        weight="xnor",
        act="rsign",
        post="bn",
        summary="RSign + scaled sign weights, BN after the sum (FracBNN)",
    )
)
FRACBNN_PAPER = f"Zhang et al. 2021, FracBNN; {AOIE_PAPER}, section 3.3 and Table 1 (baseline row)"


@register("fracbnn_resnet20")
class FracBNNResNet20(CifarResNet):
    """FracBNN-style ResNet-20 (CIFAR skeleton, 16/32/64 channels, shortcut "A"); every unit is
    ``BN_post(BN(conv(RSign(x), alpha_o sign(w))) + shortcut(x))``.

    paper: Zhang et al. 2021 (FracBNN); AOIE-Net section 3.3 and Table 1 (the ablation baseline, 88.2%
    on CIFAR-10).
    Input (B, in_channels, H, W) with H, W >= 8 * stem_stride -> logits (B, classes).
    """

    paper = FRACBNN_PAPER

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(FRACBNN, in_channels, classes, width, shortcut, stem_stride)


@register("fracbnn_resnet18")
class FracBNNResNet18(ImageNetResNet):
    """FracBNN-style ResNet-18 (ImageNet skeleton, 64/128/256/512 channels, shortcut "B"); units as
    :class:`FracBNNResNet20`.

    paper: Zhang et al. 2021 (FracBNN); AOIE-Net section 3.3 and Table 3 (FracBNN row).
    Input (B, in_channels, H, W) with H, W >= 8 -> logits (B, classes); ``stem_stride`` must stay 1.
    """

    paper = FRACBNN_PAPER

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(FRACBNN, in_channels, classes, width, shortcut, stem_stride)
