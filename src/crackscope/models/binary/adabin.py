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

from crackscope.models.binary import AOIE_PAPER, BlockKind, define_kind
from crackscope.models.binary.resnet import register_family

__all__ = ["ADABIN", "AdaBinResNet20", "AdaBinResNet18"]

ADABIN = define_kind(BlockKind("adabin", conv="plain", weight="adaptive", act="adaptive", post="maxout",
                               summary="adaptive binary weights and activations, Maxout after the sum (AdaBin)"))
ADABIN_PAPER = f"Tu et al. 2022, AdaBin; {AOIE_PAPER}, sections 3.2-3.3 and Tables 2, 4 (AdaBin rows)"


AdaBinResNet20, AdaBinResNet18 = register_family(ADABIN, ADABIN_PAPER, "AdaBin")
