"""AOIE-Net binary ResNets and the ablation path of its Table 1 (FracBNN + ABA-IO / DBN-IEB / PAN).

paper: AOIE-Net, section 3 (Fig. 2: DBN-IEB with ABA-IO; Fig. 5: PAN), section 4.1 and Table 1
(ablation on CIFAR-10 ResNet-20: FracBNN 88.2% -> +ABA-IO 88.5 -> +DBN-IEB 88.6 -> +PAN 88.7 ->
AOIE-Net 90.6), Tables 2-4.

AOIE-Net unit (the FracBNN unit with its two changes)::

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

Reconstructions (not fixed by the text): the merge of the two branches is a sum and the branch BN
biases start at +-0.5 (see :class:`~crackscope.nn.binary.DBNIEB`); activations are binarised
with one alpha/beta pair per layer (AdaBin's default); the BN after each binary conv is kept in
every variant; weights are binarised in AdaBin form whenever ABA-IO or DBN-IEB is on. Table 1's
FLOPs (0.207 G for FracBNN, 0.185 G with ABA-IO, 0.374 G for AOIE-Net) cannot be reproduced from
the text (a binary ResNet-20 at 32x32 is far below 0.2 GFLOPs) and are not mutually consistent
(ABA-IO should lower, not raise, the DBN-IEB row); :mod:`.complexity` counts what is built here.
"""

from __future__ import annotations

from crackscope.errors import InputError
from crackscope.models import register
from crackscope.models.binary import AOIE_PAPER, BlockKind, define_kind
from crackscope.models.binary.fracbnn import FRACBNN
from crackscope.models.binary.resnet import CifarResNet, ImageNetResNet

__all__ = ["AOIE_NET", "TABLE1_ROWS", "ablation_kind", "AOIENetResNet20", "AOIENetResNet18",
           "AOIEAblationResNet20", "AOIEAblationResNet18"]

AOIE_NET = define_kind(BlockKind("aoie_net", conv="dbnieb", weight="adaptive", aba_io=True, post="pan",
                                 summary="DBN-IEB with ABA-IO (one shared conv), PAN = Maxout + BN (AOIE-Net)"))

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
    return define_kind(BlockKind(name, conv=conv, weight="adaptive" if adaptive else FRACBNN.weight,
                                 act=None if adaptive else FRACBNN.act, aba_io=aba_io,
                                 post="pan" if pan else FRACBNN.post,
                                 summary=f"Table 1 ablation: {name}"))


for _row in TABLE1_ROWS.values():  # make every row selectable by name
    ablation_kind(**_row)
for _extra in (dict(aba_io=True, dbn_ieb=False, pan=True), dict(aba_io=False, dbn_ieb=True, pan=True)):
    ablation_kind(**_extra)

AOIE_NET_PAPER = f"{AOIE_PAPER}, sections 3.1-3.3 (Figs. 2, 5), Tables 1-4"
ABLATION_PAPER = f"{AOIE_PAPER}, section 4.1, Table 1 (ablation on ResNet-20, CIFAR-10)"


@register("aoie_net_resnet20")
class AOIENetResNet20(CifarResNet):
    """AOIE-Net on ResNet-20 (DBN-IEB + ABA-IO + PAN). paper: AOIE-Net sections 3.1-3.3, Tables 1-2 (90.6%)."""

    paper = AOIE_NET_PAPER

    def __init__(self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None,
                 stem_stride: int = 1):
        super().__init__(AOIE_NET, in_channels, classes, width, shortcut, stem_stride)


@register("aoie_net_resnet18")
class AOIENetResNet18(ImageNetResNet):
    """AOIE-Net blocks on ResNet-18. paper: AOIE-Net sections 3.1-3.3, Tables 3-4.

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

    def __init__(self, in_channels: int = 3, classes: int = 10, width: float = 1.0, aba_io: bool = True,
                 dbn_ieb: bool = True, pan: bool = True, shortcut=None, stem_stride: int = 1):
        super().__init__(ablation_kind(aba_io, dbn_ieb, pan), in_channels, classes, width, shortcut, stem_stride)


@register("aoie_ablation_resnet18")
class AOIEAblationResNet18(ImageNetResNet):
    """ResNet-18 FracBNN + the chosen AOIE-Net modules. paper: AOIE-Net section 4.1, Table 1 (on ResNet-20)."""

    paper = ABLATION_PAPER

    def __init__(self, in_channels: int = 3, classes: int = 10, width: float = 1.0, aba_io: bool = True,
                 dbn_ieb: bool = True, pan: bool = True, shortcut=None):
        super().__init__(ablation_kind(aba_io, dbn_ieb, pan), in_channels, classes, width, shortcut)
