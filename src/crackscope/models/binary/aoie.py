"""AOIE-Net: its binary unit (:class:`AOIEUnit`), its ResNets and the ablation path of its Table 1.

paper: AOIE-Net, section 3 (Fig. 2: DBN-IEB with ABA-IO; Fig. 5: PAN), section 4.1 and Table 1
(ablation on CIFAR-10 ResNet-20: FracBNN 88.2% -> +ABA-IO 88.5 -> +DBN-IEB 88.6 -> +PAN 88.7 ->
AOIE-Net 90.6), Tables 2-4.

AOIE-Net unit (the FracBNN unit with its two changes; :class:`AOIEUnit` reads beside section 3)::

    PAN(BN(conv(a_1 + a_2, w_b)) + shortcut(x)),   a_k = ABA_k(BN_k(x)),   PAN = BN(Maxout(.))

* DBN-IEB (section 3.1): two branches BN_k -> adaptive binary activation_k (eq. 8) whose BN biases
  act as learnable thresholds; with ABA-IO (section 3.2, eq. 1) the two binary activations are
  merged and go through ONE adaptive-binary-weight conv (eqs. 4-6).
* PAN (section 3.3): a non-linearity before the BN that FracBNN puts after the shortcut sum;
  Maxout, as the paper chooses.

Ablation (``aoie_ablation_*``, flags on the FracBNN base, every Table 1 row in ``TABLE1_ROWS``):

* no flag: exactly the FracBNN unit (RSign + scaled sign weights, BN after the sum);
* ``aba_io`` alone: the RSign-bound conv becomes BN -> adaptive activation -> adaptive-weight conv
  (:class:`~crackscope.nn.binary.ABAIO`, one branch);
* ``dbn_ieb`` alone: the dual-BN block WITHOUT ABA-IO, one conv per branch (Fig. 2(b));
* ``dbn_ieb`` + ``aba_io``: the dual-BN block sharing one conv (Fig. 2);
* ``pan``: BN after the sum -> Maxout then BN.

All three flags give the AOIE-Net kind, hence :class:`AOIEUnit`; the partial rows are generic
:class:`~crackscope.models.binary.resnet.BinaryUnit` built from their kind's fields.

Reconstructions (not fixed by the text): the merge of the two branches is a sum and the branch BN
biases start at +-0.5 (see :class:`~crackscope.nn.binary.DBNIEB`); activations are binarised
with one alpha/beta pair per layer (AdaBin's default); the BN after each binary conv is kept in
every variant; weights are binarised in AdaBin form whenever ABA-IO or DBN-IEB is on. Table 1's
FLOPs (0.207 G for FracBNN, 0.185 G with ABA-IO, 0.374 G for AOIE-Net) cannot be reproduced from
the text (a binary ResNet-20 at 32x32 is far below 0.2 GFLOPs) and are not mutually consistent
(ABA-IO should lower, not raise, the DBN-IEB row); :mod:`.complexity` counts what is built here.
"""

from __future__ import annotations

import torch

from crackscope.errors import InputError
from crackscope.models import register
from crackscope.models.binary.base import AOIE_PAPER, BlockKind, define_kind
from crackscope.models.binary.fracbnn import FRACBNN
from crackscope.models.binary.resnet import BinaryUnit, CifarResNet, ImageNetResNet, register_unit
from crackscope.nn.binary import DBNIEB, PAN

__all__ = [
    "AOIE_NET",
    "TABLE1_ROWS",
    "ablation_kind",
    "AOIEUnit",
    "AOIENetResNet20",
    "AOIENetResNet18",
    "AOIEAblationResNet20",
    "AOIEAblationResNet18",
]

# The name of AOIE-Net's block for ``variant="aoie_net"`` and the all-flags ablation row; its fields
# describe :class:`AOIEUnit` (which registers itself as the unit of this kind) for code that inspects
# ``model.kind``.
AOIE_NET = define_kind(
    BlockKind(
        "aoie_net",
        conv="dbnieb",
        weight="adaptive",
        aba_io=True,
        post="pan",
        summary="DBN-IEB with ABA-IO (one shared conv), PAN = Maxout + BN (AOIE-Net)",
    )
)


@register_unit(AOIE_NET)
class AOIEUnit(BinaryUnit):
    """AOIE-Net's binary unit: DBN-IEB with ABA-IO, a real shortcut, then PAN (paper: section 3).

    ::

        x --+-- BN_1 -- ABA_1 (eq. 8) --+                                     DBN-IEB, section 3.1
            |                           sum -- BWConv(W_b, .) -- BN --+      ABA-IO, section 3.2, eq. 1
            +-- BN_2 -- ABA_2 (eq. 8) --+                             |
            +-- shortcut (real) ------------------------------------- + -- Maxout -- BN -->   PAN, section 3.3

    Step by step, as the paper builds it (``conv`` is a :class:`~crackscope.nn.binary.DBNIEB`):

    1. Section 3.1 (Fig. 2, Fig. 3): the input goes through two parallel BatchNorms, BN_1 and BN_2;
       their data-adaptive biases replace IE-Net's learnable RSign thresholds.
    2. Section 3.2, eq. 8: each branch is binarised by the adaptive binary activation
       a_b = alpha_a Sign(Htanh((a - beta_a) / alpha_a)) + beta_a, values {beta_a - alpha_a,
       beta_a + alpha_a} (eqs. 2, 10); init alpha_a = 1, beta_a = 0 (plain sign at the start);
       backward: the clipped straight-through estimator of eq. 7, gradients of alpha_a, beta_a as eq. 9.
    3. Section 3.2, eq. 1 (ABA-IO): the branches only binarise; their binary activations are merged
       (X_APA = a_1 + a_2) and go through ONE binary-weight 3x3 convolution O = BWConv(W_b, X_APA),
       instead of one convolution per branch (Fig. 2(b), IE-Net's form).
    4. Section 3.2, eqs. 4-6: the weights are binarised per output channel as
       w_b = alpha_w sign(w - beta_w) + beta_w, beta_w = mean(w), alpha_w = ||w - beta_w||_2 / sqrt(c k k).
    5. BN(O) plus the real-valued shortcut of x (the FracBNN layout).
    6. Section 3.3 (Fig. 5), PAN: Maxout (AdaBin's non-linearity, chosen over PReLU/RPReLU) and then
       BatchNorm after the sum, where FracBNN has the BatchNorm alone.

    Reconstructions (the text leaves them open): the merge is a sum, the branch BN biases start at
    +0.5 / -0.5, one (alpha_a, beta_a) pair per layer, the BN after the conv and the shortcut layout
    (see :mod:`.resnet`). State-dict keys (the shipped weights load by them): ``conv.bn1``,
    ``conv.bn2``, ``conv.act1``, ``conv.act2``, ``conv.conv``, ``bn``, ``shortcut`` (option "B"
    only), ``post.act`` (Maxout), ``post.bn``.

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str = "A"):
        super().__init__(AOIE_NET, in_channels, out_channels, stride, shortcut)

    def make_conv(self, in_channels: int, out_channels: int, stride: int) -> DBNIEB:
        """Steps 1-4: DBN-IEB (section 3.1) with ABA-IO (section 3.2): one shared adaptive-weight 3x3 conv."""
        return DBNIEB(
            in_channels, out_channels, kernel_size=3, stride=stride, padding=1, aba_io=True, weight_mode="adaptive"
        )

    def make_post(self, channels: int) -> PAN:
        """Step 6: PAN (section 3.3), Maxout then BatchNorm."""
        return PAN(channels, nonlinearity="maxout")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.conv(x)  # steps 1-4: O = BWConv(W_b, ABA_1(BN_1(x)) + ABA_2(BN_2(x))), eqs. 1, 4-6, 8
        return self.post(self.bn(o) + self.shortcut(x))  # steps 5-6: BN(Maxout(BN(O) + shortcut(x)))


# Table 1 of the paper, row label -> ablation flags on the FracBNN base.
TABLE1_ROWS = {
    "FracBNN": dict(aba_io=False, dbn_ieb=False, pan=False),
    "FracBNN + ABA-IO": dict(aba_io=True, dbn_ieb=False, pan=False),
    "FracBNN + DBN-IEB": dict(aba_io=False, dbn_ieb=True, pan=False),
    "FracBNN + PAN": dict(aba_io=False, dbn_ieb=False, pan=True),
    "AOIE-Net": dict(aba_io=True, dbn_ieb=True, pan=True),
}


def _flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False (got {value!r})")
    return value


def ablation_kind(aba_io: bool = True, dbn_ieb: bool = True, pan: bool = True) -> BlockKind:
    """The block kind of FracBNN with the chosen AOIE-Net modules (see the module docstring).

    No flag gives the FracBNN kind, all three the AOIE-Net kind; the others are named
    "fracbnn+aba_io", "fracbnn+dbn_ieb+pan", ... and are also selectable as ``variant``.
    """
    flags = {"aba_io": _flag("aba_io", aba_io), "dbn_ieb": _flag("dbn_ieb", dbn_ieb), "pan": _flag("pan", pan)}
    if not any(flags.values()):
        return FRACBNN
    if all(flags.values()):
        return AOIE_NET
    adaptive = aba_io or dbn_ieb
    conv = "dbnieb" if dbn_ieb else ("abaio" if aba_io else "plain")
    name = "+".join(["fracbnn"] + [k for k, v in flags.items() if v])
    return define_kind(
        BlockKind(
            name,
            conv=conv,
            weight="adaptive" if adaptive else FRACBNN.weight,
            act=None if adaptive else FRACBNN.act,
            aba_io=aba_io,
            post="pan" if pan else FRACBNN.post,
            summary=f"Table 1 ablation: {name}",
        )
    )


for _row in TABLE1_ROWS.values():  # make every row selectable by name
    ablation_kind(**_row)
for _extra in (dict(aba_io=True, dbn_ieb=False, pan=True), dict(aba_io=False, dbn_ieb=True, pan=True)):
    ablation_kind(**_extra)

AOIE_NET_PAPER = f"{AOIE_PAPER}, sections 3.1-3.3 (Figs. 2, 5), Tables 1-4"
ABLATION_PAPER = f"{AOIE_PAPER}, section 4.1, Table 1 (ablation on ResNet-20, CIFAR-10)"


@register("aoie_net_resnet20")
class AOIENetResNet20(CifarResNet):
    """AOIE-Net on ResNet-20: the CIFAR skeleton (16/32/64 channels, shortcut "A"), every unit an :class:`AOIEUnit`.

    paper: AOIE-Net sections 3.1-3.3 (the unit), section 4.1 and Tables 1-2 (ResNet-20 on CIFAR-10,
    90.6%), Table 4 (NEU-CLS, 99.4%).
    Input (B, in_channels, H, W) with H, W >= 8 * stem_stride -> logits (B, classes).
    """

    paper = AOIE_NET_PAPER

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(AOIE_NET, in_channels, classes, width, shortcut, stem_stride)


@register("aoie_net_resnet18")
class AOIENetResNet18(ImageNetResNet):
    """AOIE-Net on ResNet-18: the ImageNet skeleton (64-512 channels, shortcut "B"), every unit an :class:`AOIEUnit`.

    paper: AOIE-Net sections 3.1-3.3 (the unit), Tables 3-4.
    Input (B, in_channels, H, W) with H, W >= 8 -> logits (B, classes).

    Table 3's 26.6 Mbit equals the ReActNet-A/FracBNN (MobileNet-like) rows, so the paper's ImageNet
    backbone is probably not ResNet-18; this is the same block on the ResNet-18 skeleton.
    """

    paper = AOIE_NET_PAPER

    def __init__(self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None):
        super().__init__(AOIE_NET, in_channels, classes, width, shortcut)


@register("aoie_ablation_resnet20")
class AOIEAblationResNet20(CifarResNet):
    """ResNet-20 FracBNN + the chosen AOIE-Net modules (Table 1 rows). paper: AOIE-Net section 4.1, Table 1."""

    paper = ABLATION_PAPER

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 10,
        width: float = 1.0,
        aba_io: bool = True,
        dbn_ieb: bool = True,
        pan: bool = True,
        shortcut=None,
        stem_stride: int = 1,
    ):
        super().__init__(ablation_kind(aba_io, dbn_ieb, pan), in_channels, classes, width, shortcut, stem_stride)


@register("aoie_ablation_resnet18")
class AOIEAblationResNet18(ImageNetResNet):
    """ResNet-18 FracBNN + the chosen AOIE-Net modules. paper: AOIE-Net section 4.1, Table 1 (on ResNet-20)."""

    paper = ABLATION_PAPER

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 10,
        width: float = 1.0,
        aba_io: bool = True,
        dbn_ieb: bool = True,
        pan: bool = True,
        shortcut=None,
    ):
        super().__init__(ablation_kind(aba_io, dbn_ieb, pan), in_channels, classes, width, shortcut)
