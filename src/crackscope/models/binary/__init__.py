"""Binary (1-bit weight / 1-bit activation) image classifiers of the AOIE-Net study and its baselines.

Image (B, in_channels, H, W) -> logits (B, classes), any H, W >= 8 (global average pooling before
the classifier). Every registered model takes the constructor keywords::

    in_channels=3, classes=10, width=1.0, shortcut=None

``in_channels=1`` for grey NEU-CLS images, 3 for CIFAR-10 / ImageNet; ``width`` scales every
channel count (16/32/64 or 64/128/256/512, rounded, at least 1); ``shortcut`` picks the
down-sampling shortcut ("A" parameter-free, "B" with a real 1x1 convolution; see ``resnet``).

Paper: "Binary information enhancement network for efficient steel defects detection and
classification" (AOIE-Net; Wu, Chen, Su, Chen and Cheng 2025). Section 3 describes the blocks
(built in :mod:`crackscope.nn.binary`), section 4 compares them on ResNet-20 for CIFAR-10
(Tables 1, 2), on ResNet-18-class networks for ImageNet (Table 3) and on NEU-CLS (Table 4).

One skeleton per depth (:mod:`.resnet`): a CIFAR-style ResNet-20 (3x3 stem, 3 stages of 16/32/64
channels, 3 basic blocks each) and an ImageNet-style ResNet-18 (7x7 stride-2 stem + 3x3 max-pool,
4 stages of 64/128/256/512, 2 basic blocks each). A :class:`BlockKind` says how its blocks are
built; one module per family defines the kind and registers a ResNet-20 and a ResNet-18:

==============================  =====================================================================
``resnet20``, ``resnet18``      full precision (He et al. 2016), :mod:`.resnet`
``bnn_*``, ``xnor_*``           sign activations with sign / scaled-sign weights, :mod:`.bnn`
``reactnet_*``                  RSign + RPReLU, :mod:`.reactnet`
``fracbnn_*``                   RSign + BN after the shortcut sum, :mod:`.fracbnn`
``adabin_*``                    adaptive binary weights/activations + Maxout, :mod:`.adabin`
``ienet_*``                     DBN-IEB without ABA-IO (two binary convs), :mod:`.ienet`
``aoie_net_*``                  DBN-IEB with ABA-IO + PAN (Maxout, BN), :mod:`.aoie`
``aoie_ablation_*``             Table 1 rows: FracBNN + any of aba_io / dbn_ieb / pan, :mod:`.aoie`
``binary_resnet20/18``          any kind by name (``variant=``), :mod:`.resnet`
==============================  =====================================================================

Conventions shared by all binary variants (as in the BNN literature): the first convolution, its
BatchNorm, the final fully connected layer and every shortcut (identity, parameter-free "A" or the
real 1x1 "B" down-sampling) stay full precision; every 3x3 convolution inside the residual stages
is binary. :mod:`.complexity` counts parameters, FLOPs, BOPs and memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from crackscope.errors import InputError
from crackscope.errors import require_positive_int as _positive_int
from crackscope.models.contract import NamedModel, check_input_shape

__all__ = ["AOIE_PAPER", "BlockKind", "BinaryClassifier", "VARIANTS", "define_kind", "block_kind", "MIN_SIDE"]

AOIE_PAPER = (
    "Binary information enhancement network for efficient steel defects detection and "
    "classification (AOIE-Net, Wu et al. 2025)"
)
MIN_SIDE = 8

CONV_KINDS = ("real", "plain", "abaio", "dbnieb")
POST_KINDS = ("relu", "none", "bn", "rprelu", "maxout", "pan")
WEIGHTS = ("sign", "xnor", "adaptive")
ACTS = (None, "sign", "rsign", "adaptive")


@dataclass(frozen=True)
class BlockKind:
    """How the residual blocks of a skeleton are built.

    ``conv``: "real" (full-precision basic block), or for the binary unit ``post(BN(conv(x)) +
    shortcut(x))`` one of "plain" (a :class:`~crackscope.nn.binary.BinaryConv2d` that binarises its
    own input with ``act`` and its weight with ``weight``), "abaio" (BN -> adaptive activation ->
    binary conv, :class:`~crackscope.nn.binary.ABAIO`) or "dbnieb" (dual-BN information enhancement,
    :class:`~crackscope.nn.binary.DBNIEB`; ``aba_io`` True shares one conv on the summed binary
    activations, False gives each branch its own conv). ``post``: the layer after the residual sum.
    """

    name: str
    conv: str
    weight: str = "adaptive"
    act: str | None = None
    aba_io: bool = True
    post: str = "none"
    summary: str = ""

    def __post_init__(self):
        if self.conv not in CONV_KINDS:
            raise InputError(f"conv must be one of {CONV_KINDS} (got {self.conv!r})")
        if self.post not in POST_KINDS:
            raise InputError(f"post must be one of {POST_KINDS} (got {self.post!r})")
        if self.weight not in WEIGHTS:
            raise InputError(f"weight must be one of {WEIGHTS} (got {self.weight!r})")
        if self.act not in ACTS:
            raise InputError(f"act must be one of {ACTS} (got {self.act!r})")
        if self.conv == "plain" and self.act is None:
            raise InputError(f"block kind {self.name!r}: a 'plain' binary conv needs an activation binariser")

    @property
    def binary(self) -> bool:
        return self.conv != "real"


VARIANTS: dict[str, BlockKind] = {}


def define_kind(kind: BlockKind) -> BlockKind:
    """Make ``kind`` selectable by name (``binary_resnet20(variant=kind.name)``); returns it."""
    known = VARIANTS.get(kind.name)
    if known is not None and known != kind:
        raise ValueError(f"block kind {kind.name!r} is already defined differently")
    VARIANTS[kind.name] = kind
    return kind


def block_kind(variant) -> BlockKind:
    """The :class:`BlockKind` named ``variant`` (or ``variant`` itself); InputError naming it if unknown."""
    if isinstance(variant, BlockKind):
        return variant
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise InputError(f"unknown variant {variant!r}; choose one of: {', '.join(sorted(VARIANTS))}")
    return VARIANTS[variant]


def _positive_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise InputError(f"{name} must be a positive number (got {value!r})")
    return float(value)


class BinaryClassifier(NamedModel, nn.Module):
    """Shared contract of the binary classifiers: validated ``in_channels``/``classes``/``width``,
    input check (B, in_channels, H, W) with H, W >= 8, logits (B, classes)."""

    paper: str = AOIE_PAPER
    default_loss: str = "cross_entropy"
    min_side: int = MIN_SIDE

    def __init__(self, in_channels: int = 3, classes: int = 10, width: float = 1.0):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.classes = _positive_int("classes", classes)
        self.width = _positive_float("width", width)

    def scaled(self, channels: int) -> int:
        """``channels`` times the width multiplier, rounded, at least 1."""
        return max(1, int(round(channels * self.width)))

    def check_input(self, x: torch.Tensor) -> None:
        """InputError naming the expected and actual shape unless x is (B, in_channels, H>=8, W>=8)."""
        check_input_shape(self.name, x, ("B", self.in_channels, "H", "W"), "batch, channels, height, width")
        if min(x.shape[-2:]) < self.min_side:
            raise InputError(f"{self.name} needs H, W >= {self.min_side} (got {tuple(x.shape[-2:])})")


# Imported after the base is defined: the family modules subclass the skeletons.
from crackscope.models.binary.adabin import AdaBinResNet18, AdaBinResNet20  # noqa: E402
from crackscope.models.binary.aoie import (  # noqa: E402
    TABLE1_ROWS,
    AOIEAblationResNet18,
    AOIEAblationResNet20,
    AOIENetResNet18,
    AOIENetResNet20,
    ablation_kind,
)
from crackscope.models.binary.bnn import BNNResNet18, BNNResNet20, XNORResNet18, XNORResNet20  # noqa: E402
from crackscope.models.binary.fracbnn import FracBNNResNet18, FracBNNResNet20  # noqa: E402
from crackscope.models.binary.ienet import IENetResNet18, IENetResNet20  # noqa: E402
from crackscope.models.binary.reactnet import ReActNetResNet18, ReActNetResNet20  # noqa: E402
from crackscope.models.binary.resnet import (  # noqa: E402
    BinaryResNet18,
    BinaryResNet20,
    CifarResNet,
    ImageNetResNet,
    ResNet18,
    ResNet20,
    ResNetSkeleton,
)

__all__ += [
    "ResNetSkeleton",
    "CifarResNet",
    "ImageNetResNet",
    "ResNet20",
    "ResNet18",
    "BinaryResNet20",
    "BinaryResNet18",
    "BNNResNet20",
    "BNNResNet18",
    "XNORResNet20",
    "XNORResNet18",
    "ReActNetResNet20",
    "ReActNetResNet18",
    "FracBNNResNet20",
    "FracBNNResNet18",
    "AdaBinResNet20",
    "AdaBinResNet18",
    "IENetResNet20",
    "IENetResNet18",
    "AOIENetResNet20",
    "AOIENetResNet18",
    "AOIEAblationResNet20",
    "AOIEAblationResNet18",
    "TABLE1_ROWS",
    "ablation_kind",
]
