"""ResNet-20 / ResNet-18 skeletons whose blocks are set by a :class:`BlockKind`; full-precision ResNets.

paper: He et al. 2016 (ResNet); used by AOIE-Net (section 4) as the CIFAR-10 backbone (ResNet-20,
Tables 1-2, full-precision row 91.7%) and as the ImageNet reference (ResNet-18, Table 3, 374.1 Mbit).

Layers (``width`` = 1; C = in_channels)::

    ResNet-20 (CIFAR)                             ResNet-18 (ImageNet)
    conv3x3(C, 16) + BN [+ ReLU]                  conv7x7/2(C, 64) + BN [+ ReLU] + maxpool3x3/2
    stage 16: 3 blocks                            stage 64: 2 blocks
    stage 32: 3 blocks, first stride 2            stage 128/256/512: 2 blocks, first stride 2
    stage 64: 3 blocks, first stride 2
    global average pool, Linear(64, classes)      global average pool, Linear(512, classes)

Blocks:

* full precision (``conv="real"``): the basic block ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x)).
* binary (every other kind): two "units", each ``post(BN(binary_conv(x)) + shortcut(x))``, i.e. a
  real-valued shortcut around EACH binary 3x3 convolution (the Bi-Real / ReActNet / FracBNN /
  AdaBin layout). The unit that changes stride or width gets the down-sampling shortcut. A block
  written out as its own class beside its paper (AOIE-Net's :class:`~crackscope.models.binary.aoie.AOIEUnit`,
  registered for its kind with :func:`register_unit`) is used for its kind; every other kind gets
  the generic :class:`BinaryUnit`, whose ``binary_conv`` and ``post`` come from the kind's fields.

Shortcuts (always real-valued):

* "A" (default for ResNet-20, as He et al.'s CIFAR ResNets and the IR-Net/AdaBin CIFAR code):
  parameter-free, strided subsampling ``x[:, :, ::s, ::s]`` and zero channels appended (split
  front/back). It keeps the full-precision ResNet-20 at 269,722 parameters for 10 classes.
* "B" (default for ResNet-18): a real 1x1 convolution + BN. Full precision: stride-2 1x1 conv
  (He et al. / torchvision). Binary: 2x2 average pooling (ceil mode) followed by a stride-1 1x1
  conv (Bi-Real / ReActNet), so the down-sampling costs 4x fewer real FLOPs.

Reconstructions (choices the AOIE-Net text leaves open): the per-conv shortcut layout, the
shortcut options above, and the stems: the binary variants omit the ReLU after the stem BN (the
next unit binarises its input and the real shortcut carries the BN output; Bi-Real/ReActNet-style),
the full-precision ones keep it. The full-precision layouts are He et al.'s exactly.
Outputs of a stride-2 unit have ceil(H/2) rows, matching the 3x3/pad-1 convolution, so odd sizes
work; any H, W >= 8 is accepted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crackscope.errors import InputError
from crackscope.models import register
from crackscope.models.binary.base import BinaryClassifier, BlockKind, block_kind, define_kind
from crackscope.nn.binary import ABAIO, DBNIEB, PAN, BinaryConv2d, Maxout, RPReLU

__all__ = [
    "REAL",
    "SHORTCUTS",
    "ResNetSkeleton",
    "CifarResNet",
    "ImageNetResNet",
    "ResNet20",
    "ResNet18",
    "BinaryResNet20",
    "BinaryResNet18",
    "BinaryUnit",
    "BasicBlock",
    "PadShortcut",
    "register_unit",
]

REAL = define_kind(BlockKind("real", conv="real", post="relu", summary="full-precision ResNet basic block"))
SHORTCUTS = ("A", "B")
RESNET_PAPER = "He et al. 2016, Deep residual learning for image recognition"


class PadShortcut(nn.Module):
    """Option-A shortcut: ``x[:, :, ::stride, ::stride]`` then zero channels up to ``out_channels``.

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)); no parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if out_channels < in_channels:
            raise InputError(f"option-A shortcut cannot shrink {in_channels} to {out_channels} channels")
        self.stride = stride
        extra = out_channels - in_channels
        self.front, self.back = extra // 2, extra - extra // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.front or self.back:
            x = F.pad(x, (0, 0, 0, 0, self.front, self.back))
        return x


def make_shortcut(kind: str, in_channels: int, out_channels: int, stride: int, binary: bool) -> nn.Module:
    """Identity when shapes agree; otherwise option "A" or "B" (see the module docstring)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind == "A":
        return PadShortcut(in_channels, out_channels, stride)
    if not binary:
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))
    layers = [nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)] if stride > 1 else []
    return nn.Sequential(*layers, nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))


class BinaryUnit(nn.Module):
    """``post(BN(binary_conv(x)) + shortcut(x))``: one binary 3x3 conv with its own real shortcut.

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)). Submodules ``conv`` (the binary
    3x3 operator, padding 1), ``bn``, ``shortcut`` (see :func:`make_shortcut`) and ``post`` (the
    layer after the sum), in this order; :mod:`crackscope.deploy.packed` folds exactly these four.

    This generic unit builds ``conv`` and ``post`` from the fields of ``kind`` (the baselines and
    the Table 1 ablation rows). A block written out for its paper subclasses it, overrides
    :meth:`make_conv` and :meth:`make_post`, and is registered for its kind with
    :func:`register_unit` (AOIE-Net: :class:`~crackscope.models.binary.aoie.AOIEUnit`).
    """

    def __init__(self, kind: BlockKind, in_channels: int, out_channels: int, stride: int, shortcut: str):
        super().__init__()
        self.kind = kind
        self.conv = self.make_conv(in_channels, out_channels, stride)
        self.bn = nn.BatchNorm2d(out_channels)
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride, binary=True)
        self.post = self.make_post(out_channels)

    def make_conv(self, in_channels: int, out_channels: int, stride: int) -> nn.Module:
        """The binary 3x3 (padding 1) convolution operator named by ``kind.conv``."""
        kind = self.kind
        args = (in_channels, out_channels, 3, stride, 1)
        if kind.conv == "plain":
            return BinaryConv2d(*args, weight_mode=kind.weight, activation=kind.act)
        if kind.conv == "abaio":
            return ABAIO(*args, weight_mode=kind.weight)
        if kind.conv == "dbnieb":
            return DBNIEB(*args, aba_io=kind.aba_io, weight_mode=kind.weight)
        raise InputError(f"block kind {kind.name!r} has no binary convolution (conv={kind.conv!r})")

    def make_post(self, channels: int) -> nn.Module:
        """The layer after the residual sum named by ``kind.post``."""
        makers = {
            "none": lambda c: nn.Identity(),
            "relu": lambda c: nn.ReLU(),
            "bn": nn.BatchNorm2d,
            "rprelu": RPReLU,
            "maxout": Maxout,
            "pan": lambda c: PAN(c, "maxout"),
        }
        return makers[self.kind.post](channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.bn(self.conv(x)) + self.shortcut(x))


# Block kinds whose unit is written out as its own class (filled by register_unit).
UNITS: dict[BlockKind, type[BinaryUnit]] = {}


def register_unit(kind: BlockKind):
    """Class decorator: build the binary units of ``kind`` with this :class:`BinaryUnit` subclass.

    The class is called as ``cls(in_channels, out_channels, stride, shortcut)``; every network of
    that kind (its named model, ``binary_resnet20/18(variant=kind.name)``, the matching ablation
    row) then has the same unit class.
    """

    def decorator(cls: type[BinaryUnit]) -> type[BinaryUnit]:
        known = UNITS.get(kind)
        if known is not None and known is not cls:
            raise ValueError(f"block kind {kind.name!r} already has the unit {known.__qualname__}")
        UNITS[kind] = cls
        return cls

    return decorator


def make_unit(kind: BlockKind, in_channels: int, out_channels: int, stride: int, shortcut: str) -> BinaryUnit:
    """The unit class registered for ``kind`` if any, else the generic :class:`BinaryUnit` of ``kind``."""
    unit = UNITS.get(kind)
    if unit is not None:
        return unit(in_channels, out_channels, stride, shortcut)
    return BinaryUnit(kind, in_channels, out_channels, stride, shortcut)


class BasicBlock(nn.Module):
    """Full-precision ResNet basic block: ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride, binary=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def make_block(kind: BlockKind, in_channels: int, out_channels: int, stride: int, shortcut: str) -> nn.Module:
    if not kind.binary:
        return BasicBlock(in_channels, out_channels, stride, shortcut)
    return nn.Sequential(
        make_unit(kind, in_channels, out_channels, stride, shortcut),
        make_unit(kind, out_channels, out_channels, 1, shortcut),
    )


class ResNetSkeleton(BinaryClassifier):
    """Stem -> residual stages of ``kind`` blocks -> global average pool -> real Linear.

    Subclasses set ``stages`` (channels per stage), ``blocks`` (per stage), ``layout`` ("cifar" or
    "imagenet") and ``default_shortcut``. Attributes: ``stem`` (``stem[0]`` is the real first
    conv), ``body`` (one Sequential per stage), ``fc`` (the real classifier), ``kind``/``variant``.
    """

    stages: tuple[int, ...] = ()
    blocks: int = 0
    layout: str = "cifar"
    default_shortcut: str = "A"

    def __init__(
        self, kind, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(in_channels, classes, width)
        if self.layout != "cifar" and stem_stride != 1:
            raise InputError(f"stem_stride applies to the ResNet-20 (CIFAR) stem only (got {stem_stride})")
        if not isinstance(stem_stride, int) or stem_stride < 1:
            raise InputError(f"stem_stride must be an integer >= 1 (got {stem_stride!r})")
        self.stem_stride = stem_stride
        self.min_side = self.min_side * stem_stride
        self.kind = block_kind(kind)
        self.variant = self.kind.name
        shortcut = self.default_shortcut if shortcut is None else shortcut
        if shortcut not in SHORTCUTS:
            raise InputError(f"shortcut must be one of {SHORTCUTS} (got {shortcut!r})")
        self.shortcut_type = shortcut
        widths = [self.scaled(c) for c in self.stages]
        self.stem = self._stem(widths[0])
        stages, c_in = [], widths[0]
        for i, c_out in enumerate(widths):
            blocks = []
            for j in range(self.blocks):
                blocks.append(make_block(self.kind, c_in, c_out, 2 if (i > 0 and j == 0) else 1, shortcut))
                c_in = c_out
            stages.append(nn.Sequential(*blocks))
        self.body = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, self.classes)

    def _stem(self, channels: int) -> nn.Sequential:
        relu = [] if self.kind.binary else [nn.ReLU()]
        if self.layout == "cifar" and self.stem_stride > 1:  # patchify: one s x s window per output pixel
            return nn.Sequential(
                nn.Conv2d(self.in_channels, channels, self.stem_stride, self.stem_stride, 0, bias=False),
                nn.BatchNorm2d(channels),
                *relu,
            )
        if self.layout == "cifar":
            return nn.Sequential(
                nn.Conv2d(self.in_channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels), *relu
            )
        return nn.Sequential(
            nn.Conv2d(self.in_channels, channels, 7, 2, 3, bias=False),
            nn.BatchNorm2d(channels),
            *relu,
            nn.MaxPool2d(3, 2, 1),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> pooled features (B, channels of the last stage); no input check."""
        return torch.flatten(self.pool(self.body(self.stem(x))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.fc(self.features(x))


class CifarResNet(ResNetSkeleton):
    """CIFAR-style ResNet-20 skeleton: 3x3 stem, stages 16/32/64 x 3 basic blocks, shortcut "A"."""

    stages = (16, 32, 64)
    blocks = 3
    layout = "cifar"
    default_shortcut = "A"


class ImageNetResNet(ResNetSkeleton):
    """ImageNet-style ResNet-18 skeleton: 7x7/2 stem + max-pool, stages 64/128/256/512 x 2, shortcut "B"."""

    stages = (64, 128, 256, 512)
    blocks = 2
    layout = "imagenet"
    default_shortcut = "B"


@register("resnet20")
class ResNet20(CifarResNet):
    """Full-precision ResNet-20 (32-bit weights and activations), AOIE-Net Table 2's reference row.

    paper: He et al. 2016, section 4.2 (CIFAR-10 ResNets, option-A shortcuts); AOIE-Net Table 2.
    """

    paper = f"{RESNET_PAPER}; {BinaryClassifier.paper}, Table 2 (ResNet-20, W/A 32/32)"

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None, stem_stride: int = 1
    ):
        super().__init__(REAL, in_channels, classes, width, shortcut, stem_stride)


@register("resnet18")
class ResNet18(ImageNetResNet):
    """Full-precision ResNet-18, AOIE-Net Table 3's reference row (374.1 Mbit for 1000 classes).

    paper: He et al. 2016, Table 1 (18-layer); AOIE-Net Table 3.
    """

    paper = f"{RESNET_PAPER}; {BinaryClassifier.paper}, Table 3 (ResNet-18, W/A 32/32)"

    def __init__(self, in_channels: int = 3, classes: int = 10, width: float = 1.0, shortcut=None):
        super().__init__(REAL, in_channels, classes, width, shortcut)


@register("binary_resnet20")
class BinaryResNet20(CifarResNet):
    """ResNet-20 with the block kind named ``variant`` (see ``crackscope.models.binary.VARIANTS``).

    paper: AOIE-Net section 4.1 (ResNet-20 on CIFAR-10); the kinds cite their own sources.
    """

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, variant: str = "aoie_net", shortcut=None
    ):
        super().__init__(block_kind(variant), in_channels, classes, width, shortcut)


@register("binary_resnet18")
class BinaryResNet18(ImageNetResNet):
    """ResNet-18 with the block kind named ``variant`` (see ``crackscope.models.binary.VARIANTS``).

    paper: AOIE-Net section 4.2 (ImageNet, Table 3); the kinds cite their own sources.
    """

    def __init__(
        self, in_channels: int = 3, classes: int = 10, width: float = 1.0, variant: str = "aoie_net", shortcut=None
    ):
        super().__init__(block_kind(variant), in_channels, classes, width, shortcut)
