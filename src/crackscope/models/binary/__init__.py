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

from crackscope.models.binary.adabin import AdaBinResNet18, AdaBinResNet20
from crackscope.models.binary.aoie import (
    TABLE1_ROWS,
    AOIEAblationResNet18,
    AOIEAblationResNet20,
    AOIENetResNet18,
    AOIENetResNet20,
    ablation_kind,
)
from crackscope.models.binary.base import (
    ACTS,
    AOIE_PAPER,
    CONV_KINDS,
    MIN_SIDE,
    POST_KINDS,
    VARIANTS,
    WEIGHTS,
    BinaryClassifier,
    BlockKind,
    block_kind,
    define_kind,
)
from crackscope.models.binary.bnn import BNNResNet18, BNNResNet20, XNORResNet18, XNORResNet20
from crackscope.models.binary.fracbnn import FracBNNResNet18, FracBNNResNet20
from crackscope.models.binary.ienet import IENetResNet18, IENetResNet20
from crackscope.models.binary.reactnet import ReActNetResNet18, ReActNetResNet20
from crackscope.models.binary.resnet import (
    BinaryResNet18,
    BinaryResNet20,
    CifarResNet,
    ImageNetResNet,
    ResNet18,
    ResNet20,
    ResNetSkeleton,
)

__all__ = [
    "AOIE_PAPER",
    "BlockKind",
    "BinaryClassifier",
    "VARIANTS",
    "define_kind",
    "block_kind",
    "MIN_SIDE",
    "ACTS",
    "CONV_KINDS",
    "POST_KINDS",
    "WEIGHTS",
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
