"""ReActNet-style binary ResNets: RSign before each binary conv, RPReLU after each shortcut sum.

paper: Liu et al. 2020 (ReActNet); AOIE-Net sections 1-2 (RSign with a learnable threshold, the
PReLU replaced by the shifted RPReLU) and Table 3 (ReActNet-A row).

Unit: ``RPReLU(BN(conv(RSign(x), alpha_o sign(w))) + shortcut(x))`` with per-channel RSign
thresholds (ApproxSign STE) and mean|w|-scaled sign weights (ReActNet's real-valued channel
scale). Reconstruction: ReActNet-A itself is a MobileNet-v1-like network; here the ReActNet block
is placed on the shared ResNet-20 / ResNet-18 skeletons (like ReActNet's own ResNet-18 variant).
"""

from __future__ import annotations

from crackscope.models import register
from crackscope.models.binary.base import AOIE_PAPER, BlockKind, define_kind
from crackscope.models.binary.resnet import CifarResNet, ImageNetResNet

__all__ = ["REACTNET", "ReActNetResNet20", "ReActNetResNet18"]

REACTNET = define_kind(
    BlockKind(
        "reactnet",
        conv="plain",
        weight="xnor",
        act="rsign",
        post="rprelu",
        summary="RSign + scaled sign weights, RPReLU after the sum (ReActNet)",
    )
)
REACTNET_PAPER = f"Liu et al. 2020, ReActNet; {AOIE_PAPER}, sections 1-2 and Table 3 (ReActNet-A row)"


@register("reactnet_resnet20")
class ReActNetResNet20(CifarResNet):
    """ReActNet-style ResNet-20 (CIFAR skeleton, 16/32/64 channels, shortcut "A"); every unit is
    ``RPReLU(BN(conv(RSign(x), alpha_o sign(w))) + shortcut(x))``.

    paper: Liu et al. 2020 (ReActNet: RSign, RPReLU); AOIE-Net sections 1-2 (what ReActNet changes).
    Input (B, in_channels, H, W) with H, W >= 8 * stem_stride -> logits (B, classes).
    """

    paper = REACTNET_PAPER

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(REACTNET, in_channels, classes, width, shortcut, stem_stride)


@register("reactnet_resnet18")
class ReActNetResNet18(ImageNetResNet):
    """ReActNet-style ResNet-18 (ImageNet skeleton, 64/128/256/512 channels, shortcut "B"); units as
    :class:`ReActNetResNet20`.

    paper: Liu et al. 2020 (ReActNet); AOIE-Net Table 3 (ReActNet-A row).
    ReActNet-A itself is MobileNet-like; this is the ReActNet block on the ResNet-18 skeleton.
    Input (B, in_channels, H, W) with H, W >= 8 -> logits (B, classes); ``stem_stride`` must stay 1.
    """

    paper = REACTNET_PAPER

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(REACTNET, in_channels, classes, width, shortcut, stem_stride)
