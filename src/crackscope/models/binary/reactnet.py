"""ReActNet-style binary ResNets: RSign before each binary conv, RPReLU after each shortcut sum.

paper: Liu et al. 2020 (ReActNet); AOIE-Net sections 1-2 (RSign with a learnable threshold, the
PReLU replaced by the shifted RPReLU) and Table 3 (ReActNet-A row).

Unit: ``RPReLU(BN(conv(RSign(x), alpha_o sign(w))) + shortcut(x))`` with per-channel RSign
thresholds (ApproxSign STE) and mean|w|-scaled sign weights (ReActNet's real-valued channel
scale). Reconstruction: ReActNet-A itself is a MobileNet-v1-like network; here the ReActNet block
is placed on the shared ResNet-20 / ResNet-18 skeletons (like ReActNet's own ResNet-18 variant).
"""

from __future__ import annotations

from crackscope.models.binary import AOIE_PAPER, BlockKind, define_kind
from crackscope.models.binary.resnet import register_family

__all__ = ["REACTNET", "ReActNetResNet20", "ReActNetResNet18"]

REACTNET = define_kind(BlockKind("reactnet", conv="plain", weight="xnor", act="rsign", post="rprelu",
                                 summary="RSign + scaled sign weights, RPReLU after the sum (ReActNet)"))
REACTNET_PAPER = f"Liu et al. 2020, ReActNet; {AOIE_PAPER}, sections 1-2 and Table 3 (ReActNet-A row)"


ReActNetResNet20, ReActNetResNet18 = register_family(REACTNET, REACTNET_PAPER, "ReActNet")
