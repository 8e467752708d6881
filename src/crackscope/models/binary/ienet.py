"""IE-Net-style binary ResNets: dual-branch information enhancement with one binary conv per branch.

paper: Ding et al. 2022 (IE-Net); AOIE-Net sections 1-2 (IE-Net's information-enhanced binary
convolution: several binary activations with learnable thresholds, each with its own binary
convolution), section 3.2 / Fig. 2(b) (the bound, dual-convolution form) and Tables 2 and 4
(IE-Net rows; Table 4 puts its FLOPs at about twice AOIE-Net's).

Reconstruction (the stand-in is the DBN-IEB WITHOUT ABA-IO, Fig. 2(b)): two branches
BN_k -> adaptive binary activation_k, each followed by its own binary conv, outputs summed
(:class:`~crackscope.nn.binary.DBNIEB` with ``aba_io=False``); the BN biases take the role of
IE-Net's learnable RSign thresholds. IE-Net's own RSign-based branches are not reproduced. Since
AOIE-Net notes that IE-Net keeps a "traditional" structure rather than FracBNN's, the sum is
followed by ReActNet's RPReLU, not FracBNN's BN. Unit::

    RPReLU(BN(conv_1(a_1) + conv_2(a_2)) + shortcut(x))
"""

from __future__ import annotations

from crackscope.models import register
from crackscope.models.binary.base import AOIE_PAPER, BlockKind, define_kind
from crackscope.models.binary.resnet import CifarResNet, ImageNetResNet

__all__ = ["IENET", "IENetResNet20", "IENetResNet18"]

IENET = define_kind(
    BlockKind(
        "ienet",
        conv="dbnieb",
        weight="adaptive",
        aba_io=False,
        post="rprelu",
        summary="dual-BN information enhancement with two binary convs, RPReLU (IE-Net)",
    )
)
IENET_PAPER = f"Ding et al. 2022, IE-Net; {AOIE_PAPER}, section 3.2 (Fig. 2b) and Tables 2, 4 (IE-Net rows)"


@register("ienet_resnet20")
class IENetResNet20(CifarResNet):
    """IE-Net-style ResNet-20 (CIFAR skeleton, 16/32/64 channels, shortcut "A"); every unit is
    ``RPReLU(BN(conv_1(a_1) + conv_2(a_2)) + shortcut(x))``.

    paper: Ding et al. 2022 (IE-Net); AOIE-Net section 3.2 (Fig. 2(b), the bound dual-conv form) and
    Tables 2, 4 (IE-Net rows).
    Input (B, in_channels, H, W) with H, W >= 8 * stem_stride -> logits (B, classes).
    """

    paper = IENET_PAPER

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(IENET, in_channels, classes, width, shortcut, stem_stride)


@register("ienet_resnet18")
class IENetResNet18(ImageNetResNet):
    """IE-Net-style ResNet-18 (ImageNet skeleton, 64/128/256/512 channels, shortcut "B"); units as
    :class:`IENetResNet20`.

    paper: Ding et al. 2022 (IE-Net); AOIE-Net section 3.2 (Fig. 2(b)).
    Input (B, in_channels, H, W) with H, W >= 8 -> logits (B, classes); ``stem_stride`` must stay 1.
    """

    paper = IENET_PAPER

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(IENET, in_channels, classes, width, shortcut, stem_stride)
