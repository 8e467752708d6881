"""AdaBin-style binary ResNets: adaptive binary weights and activations, Maxout after each sum.

paper: Tu et al. 2022 (AdaBin); AOIE-Net sections 1-2, 3.2 (the binarisation form AOIE-Net takes
from AdaBin, eqs. 2-10) and 3.3 (Maxout), Tables 2 and 4 (AdaBin rows).

Unit: ``Maxout(BN(conv(a_b, w_b)) + shortcut(x))`` with the adaptive activation
a_b = alpha * sign((x - beta)/alpha) + beta (one learnable alpha, beta per layer, eq. 8) and the
adaptive weight w_b = alpha_o sign(w - beta_o) + beta_o (per output channel mean / std, eqs. 4-6).
Reconstruction: the block order follows the AdaBin/IR-Net CIFAR ResNet code layout (a real shortcut
around every binary conv); AdaBin's exact ImageNet backbone (ReActNet-based) is not reproduced.
"""

from __future__ import annotations

from crackscope.models import register
from crackscope.models.binary.base import AOIE_PAPER, BlockKind, define_kind
from crackscope.models.binary.resnet import CifarResNet, ImageNetResNet

__all__ = ["ADABIN", "AdaBinResNet20", "AdaBinResNet18"]

ADABIN = define_kind(
    BlockKind(
        "adabin",
        conv="plain",
        weight="adaptive",
        act="adaptive",
        post="maxout",
        summary="adaptive binary weights and activations, Maxout after the sum (AdaBin)",
    )
)
ADABIN_PAPER = f"Tu et al. 2022, AdaBin; {AOIE_PAPER}, sections 3.2-3.3 and Tables 2, 4 (AdaBin rows)"


@register("adabin_resnet20")
class AdaBinResNet20(CifarResNet):
    """AdaBin-style ResNet-20 (CIFAR skeleton, 16/32/64 channels, shortcut "A"); every unit is
    ``Maxout(BN(conv(a_b, w_b)) + shortcut(x))``.

    paper: Tu et al. 2022 (AdaBin); AOIE-Net section 3.2 (eqs. 4-6 weights, eq. 8 activations), section
    3.3 (Maxout) and Tables 2, 4 (AdaBin rows).
    Input (B, in_channels, H, W) with H, W >= 8 * stem_stride -> logits (B, classes).
    """

    paper = ADABIN_PAPER

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(ADABIN, in_channels, classes, width, shortcut, stem_stride)


@register("adabin_resnet18")
class AdaBinResNet18(ImageNetResNet):
    """AdaBin-style ResNet-18 (ImageNet skeleton, 64/128/256/512 channels, shortcut "B"); units as
    :class:`AdaBinResNet20`.

    paper: Tu et al. 2022 (AdaBin); AOIE-Net sections 3.2-3.3.
    AdaBin's own ImageNet backbone (ReActNet-based) is not reproduced.
    Input (B, in_channels, H, W) with H, W >= 8 -> logits (B, classes); ``stem_stride`` must stay 1.
    """

    paper = ADABIN_PAPER

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(ADABIN, in_channels, classes, width, shortcut, stem_stride)
