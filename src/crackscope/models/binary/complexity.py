"""Parameters, FLOPs, BOPs and memory of (binary) networks, counted by forward hooks on a dummy input.

paper: AOIE-Net section 4 (Table 1 and Table 4 FLOPs, Table 3 memory in Mbit) and the conventions
of the BNN literature it compares against (Bi-Real Net / ReActNet / XNOR-Net tables).

Conventions:

* Only convolutions (``nn.Conv2d``, including :class:`~crackscope.nn.binary.BinaryConv2d`) and
  ``nn.Linear`` layers are counted; BatchNorm, activations, pooling, shortcuts' element-wise sums
  and biases are left out, as in those tables. One multiply-accumulate = one operation:
  conv MACs per sample = C_out * H_out * W_out * (C_in / groups) * kH * kW, linear = in * out.
* A layer is BINARY when its weight is binarised (a BinaryConv2d with ``weight_mode`` other than
  "real") AND its input is binary: the conv binarises its own input (``activation`` set), or it
  is the conv of an :class:`~crackscope.nn.binary.ABAIO` / :class:`~crackscope.nn.binary.DBNIEB`
  branch. Its MACs are BOPs (binary operations: XNOR + popcount). Every other layer (first conv,
  classifier, real 1x1 shortcut convs, binary-weight convs on real input) counts as FLOPs.
* The DBN-IEB with ABA-IO feeds ONE conv with the sum of two binary activations; that sum has up
  to four levels, i.e. two bit-planes, and conv(W_b, a_1 + a_2) = conv(W_b, a_1) + conv(W_b, a_2)
  costs two binary convolutions: ``merged_planes=2`` (default) BOPs per MAC. ``merged_planes=1``
  counts it as a single binary convolution, the reading under which the paper reports ABA-IO as
  halving the cost of the dual-branch block. The real per-channel terms of adaptive binarisation
  (alpha, beta of weights and activations) are not counted (small, and foldable into the BN).
* "Equivalent FLOPs" = FLOPs + BOPs / 64 (a 64-bit word does 64 binary MACs per operation; Bi-Real
  Net / ReActNet convention).
* Parameters: binary = entries of binarised conv weights; real = all other parameters (first
  conv, classifier, BN affine, shortcut convs, learnable thresholds / slopes / alpha, beta).
  BN running statistics (buffers) are not parameters. Memory in Mbit (1 Mbit = 10^6 bits) =
  (binary * 1 + real * 32) / 10^6; ResNet-18 (11,689,512 parameters) gives 374.1 Mbit, the value of
  the paper's Table 3.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from crackscope.errors import InputError
from crackscope.errors import require_positive_int as _positive_int
from crackscope.nn.binary import ABAIO, DBNIEB, BinaryConv2d

__all__ = [
    "BOPS_PER_FLOP",
    "BITS_REAL",
    "BITS_BINARY",
    "LayerCost",
    "Complexity",
    "complexity",
    "count_parameters",
    "binary_weights",
]

BOPS_PER_FLOP = 64
BITS_REAL = 32
BITS_BINARY = 1


@dataclass(frozen=True)
class LayerCost:
    """One call of a conv/linear layer: ``macs`` per sample, ``planes`` binary input bit-planes (0 = real)."""

    name: str
    macs: int
    planes: int

    @property
    def binary(self) -> bool:
        return self.planes > 0


@dataclass(frozen=True)
class Complexity:
    """Counts for one sample of shape ``input_shape`` (C, H, W); see the module docstring."""

    input_shape: tuple[int, int, int]
    params_total: int
    params_binary: int
    params_real: int
    flops: int
    bops: int
    layers: tuple[LayerCost, ...] = field(default=(), repr=False)

    @property
    def flops_equiv(self) -> float:
        """FLOPs + BOPs / 64."""
        return self.flops + self.bops / BOPS_PER_FLOP

    @property
    def memory_bits(self) -> int:
        return self.params_binary * BITS_BINARY + self.params_real * BITS_REAL

    @property
    def memory_mbit(self) -> float:
        return self.memory_bits / 1e6

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("layers")
        d.update(flops_equiv=self.flops_equiv, memory_mbit=self.memory_mbit)
        return d


def binary_weights(model: nn.Module) -> list[nn.Parameter]:
    """The weight parameters that are binarised in the forward pass (each listed once)."""
    seen, out = set(), []
    for m in model.modules():
        if isinstance(m, BinaryConv2d) and m.weight_mode != "real" and id(m.weight) not in seen:
            seen.add(id(m.weight))
            out.append(m.weight)
    return out


def count_parameters(model: nn.Module) -> tuple[int, int, int]:
    """(total, binary, real) parameter counts; shared parameters counted once."""
    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    binary = sum(p.numel() for p in binary_weights(model))
    return total, binary, total - binary


def _input_planes(model: nn.Module, merged_planes: int) -> dict[int, int]:
    """id(conv) -> binary input bit-planes for every binarised-weight conv of ``model`` (0 = real input)."""
    planes: dict[int, int] = {}
    for m in model.modules():
        if isinstance(m, DBNIEB):
            planes[id(m.conv)] = merged_planes if m.aba_io else 1
            if m.conv2 is not None:
                planes[id(m.conv2)] = 1
        elif isinstance(m, ABAIO):
            planes[id(m.conv)] = 1
    for m in model.modules():
        if isinstance(m, BinaryConv2d) and id(m) not in planes:
            planes[id(m)] = 0 if isinstance(m.act, nn.Identity) else 1
        if isinstance(m, BinaryConv2d) and m.weight_mode == "real":
            planes[id(m)] = 0
    return planes


def complexity(model: nn.Module, size=32, in_channels: int | None = None, *, merged_planes: int = 2) -> Complexity:
    """Count parameters, FLOPs and BOPs of ``model`` for one input of ``size`` (H = W, or (H, W)).

    ``in_channels`` defaults to ``model.in_channels``. Runs one forward pass in eval mode under
    ``no_grad`` on a dummy input and restores the model's train/eval mode.
    """
    hw = (size, size) if not isinstance(size, (tuple, list)) else tuple(size)
    if len(hw) != 2:
        raise InputError(f"size must be one side or (H, W) (got {size!r})")
    h, w = (_positive_int("size", s) for s in hw)
    c = in_channels if in_channels is not None else getattr(model, "in_channels", None)
    if c is None:
        raise InputError("in_channels is needed for a model without an in_channels attribute")
    c = _positive_int("in_channels", c)
    merged_planes = _positive_int("merged_planes", merged_planes)

    planes = _input_planes(model, merged_planes)
    names = {id(m): n for n, m in model.named_modules()}
    layers: list[LayerCost] = []

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            per_out = (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
        else:
            per_out = module.in_features
        macs = output.numel() // output.shape[0] * per_out
        layers.append(LayerCost(names.get(id(module), type(module).__name__), int(macs), planes.get(id(module), 0)))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            param = next(model.parameters(), None)
            dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
            device = param.device if param is not None else None
            x = torch.randn(1, c, h, w, generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dtype)
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    total, binary, real = count_parameters(model)
    flops = sum(lc.macs for lc in layers if not lc.binary)
    bops = sum(lc.macs * lc.planes for lc in layers if lc.binary)
    return Complexity((c, h, w), total, binary, real, flops, bops, tuple(layers))
