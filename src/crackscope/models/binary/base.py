"""The base class and shared pieces of crackscope's binary classifiers (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from crackscope.errors import InputError
from crackscope.errors import require_positive_int as _positive_int
from crackscope.models.contract import NamedModel, check_input_shape

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
