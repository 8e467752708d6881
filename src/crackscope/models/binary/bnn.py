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

from crackscope.models.binary import AOIE_PAPER, BlockKind, define_kind
from crackscope.models.binary.resnet import register_family

__all__ = ["BNN", "XNOR", "BNNResNet20", "BNNResNet18", "XNORResNet20", "XNORResNet18"]

BNN = define_kind(BlockKind("bnn", conv="plain", weight="sign", act="sign", post="none",
                            summary="sign activations, sign weights (BNN)"))
XNOR = define_kind(BlockKind("xnor", conv="plain", weight="xnor", act="sign", post="none",
                             summary="sign activations, mean|w|-scaled sign weights (XNOR-Net)"))
BNN_PAPER = f"Hubara et al. 2016, Binarized neural networks; {AOIE_PAPER}, Table 3 (BNN row)"
XNOR_PAPER = f"Rastegari et al. 2016, XNOR-Net; {AOIE_PAPER}, Table 3 (XNOR-Net row)"


BNNResNet20, BNNResNet18 = register_family(BNN, BNN_PAPER, "BNN")
XNORResNet20, XNORResNet18 = register_family(XNOR, XNOR_PAPER, "XNOR")
