"""Bit-packed deployment of the binary ResNets: 1-bit weights on disk, XNOR/popcount inference.

:func:`pack_model` turns a trained binary ResNet (any ``crackscope.models.binary`` family built
on :class:`~crackscope.models.binary.ResNetSkeleton`: AOIE-Net, the Table 1 ablations, AdaBin,
FracBNN, ReActNet, IE-Net, BNN, XNOR) into a :class:`PackedResNet` whose binary units run on bits:

* every binary 3x3 convolution keeps only the SIGN BITS of its weights (1 bit each) and the two
  weight levels per output channel (beta_o +- alpha_o for adaptive weights, +-alpha_o for XNOR,
  +-1 for BNN);
* the real values in front of the convolution are turned into activation bits by one threshold
  per channel and plane: BatchNorm + adaptive activation (ABA-IO, DBN-IEB) fold into
  ``x >= t_c`` (``x <= t_c`` for a negative BN scale), RSign into ``x >= beta_c``, sign into
  ``x >= 0``; the two activation levels stay as two numbers per plane;
* the BatchNorm after each binary convolution is folded into the convolution's output; the layer
  after the residual sum (BN, Maxout, PAN = Maxout + BN, RPReLU, ReLU) becomes one per-channel
  ``pos * relu(u) - neg * relu(-u) + shift`` with ``u = z - pre_shift``;
* the stem convolution (its BN folded in), the global average pool and the classifier run in
  compiled code (:mod:`crackscope.deploy.float_layers`; the stem in float32, the classifier summed
  in float64); a stem of several layers and the real shortcuts run in float32 PyTorch, as in the
  trained model.

The convolution itself is :func:`crackscope.deploy.bitconv.binary_conv3x3`: integer XNOR/popcount
sums, exact, combined in float64. What differs from the training-time model is only float
rounding: the float32 convolutions and BatchNorm round differently, so an activation within a
rounding error of its threshold can take the other bit (see :func:`compare_with_model`, which
measures how often, and the largest logit difference).

Files: :func:`save_packed` writes a safetensors file (no pickle) holding two flat tensors, the bits
(``numpy.packbits``) and the float32 parameters, plus JSON metadata (registered model name and
constructor arguments, class names); :func:`load_packed` rebuilds the network from it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crackscope.allocator import keep_large_blocks
from crackscope.deploy import bitconv
from crackscope.deploy.float_layers import padded_input, pool_linear, stem_rows
from crackscope.deploy.pass_mode import PassModeChooser
from crackscope.errors import InputError
from crackscope.models.binary import MIN_SIDE
from crackscope.models.binary.resnet import PadShortcut
from crackscope.nn.input_norm import PerImageStandardize

__all__ = [
    "FORMAT",
    "PackedBinaryConv",
    "PackedPost",
    "PackedUnit",
    "PackedResNet",
    "pack_model",
    "save_packed",
    "load_packed",
    "packed_size_bits",
    "compare_with_model",
]

FORMAT = "crackscope-packed-binary-resnet/1"
# Largest activation per chunk of images (bytes): about one core's L2 cache, so that a layer's
# input and output stay near the core between the binary units. A whole batch of 32 NEU-CLS images
# (200 x 200 px) makes 82 MB float32 layers, and ran 1.6x slower per image than in chunks of 1-4
# images (2.6-10 MB; 2-vCPU Xeon, 2 MiB L2 per core). On a 2-vCPU AMD EPYC (1 MiB L2 per core),
# one thread, batch 32: 200 px in chunks of 1 image 464-494 ms against 714-798 in chunks of 3; 64 px
# in chunks of 8 (2 MiB) 52-62 ms against 69-94 in chunks of 32 (8 MiB) (docs/results/binary.md).
CHUNK_BYTES = 2 << 20


def _f32(t) -> torch.Tensor:
    return torch.as_tensor(t, dtype=torch.float32).detach().clone()


# --------------------------------------------------------------------------------------- weights
def _weight_bits_and_levels(conv) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sign bits (C_out, C_in, 3, 3) bool, level of bit 0 (C_out,), level of bit 1 (C_out,)),
    computed with the same float32 operations as the conv's own binariser (checked)."""
    from crackscope.nn.binary import BinaryConv2d

    if not isinstance(conv, BinaryConv2d) or conv.weight_mode == "real":
        raise InputError(f"cannot pack {type(conv).__name__}: not a binary-weight convolution")
    if (
        tuple(conv.kernel_size) != (3, 3)
        or tuple(conv.padding) != (1, 1)
        or tuple(conv.dilation) != (1, 1)
        or conv.groups != 1
        or conv.bias is not None
        or conv.stride[0] != conv.stride[1]
    ):
        raise InputError(
            "the packed runtime supports 3x3 binary convolutions with padding 1, one stride, "
            f"no groups and no bias (got {conv})"
        )
    w = conv.weight.detach()
    signs = torch.tensor([-1.0, 1.0]).view(1, 2)
    if conv.weight_mode == "adaptive":
        dims = tuple(range(1, w.dim()))
        beta = w.mean(dims, keepdim=True)
        alpha = ((w - beta).pow(2).mean(dims, keepdim=True) + 1e-12).sqrt()
        bits = (w - beta) / alpha >= 0
        levels = alpha.view(-1, 1) * signs + beta.view(-1, 1)
    elif conv.weight_mode == "xnor":
        alpha = w.abs().mean(tuple(range(1, w.dim())))
        bits = w >= 0
        levels = alpha.view(-1, 1) * signs
    else:  # sign
        bits = w >= 0
        levels = signs.expand(w.shape[0], 2).clone()
    rebuilt = torch.where(bits, levels[:, 1].view(-1, 1, 1, 1), levels[:, 0].view(-1, 1, 1, 1))
    if not torch.equal(rebuilt, conv.binary_weight().detach()):
        raise RuntimeError("packed weight levels do not reproduce the layer's binary weights")
    return bits, levels[:, 0].clone(), levels[:, 1].clone()


# ------------------------------------------------------------------------------------ activations
def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as float64 (scale, shift): bn(x) = scale * x + shift."""
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    return scale, bn.bias.detach().double() - bn.running_mean.double() * scale


def _threshold_plane(act, channels: int, bn: nn.BatchNorm2d | None = None):
    """(threshold (C,), direction (C,) +-1, level of bit 0, level of bit 1) of ``act(bn(x))``.

    Bit 1 (s = +1) where ``direction * (x - threshold) >= 0``.
    """
    from crackscope.nn.binary import AdaptiveBinaryActivation, RSign, SignActivation

    if isinstance(act, AdaptiveBinaryActivation):
        if act.channels != 1:
            raise InputError("the packed runtime needs one alpha/beta per activation layer (got per-channel)")
        alpha, beta = act.alpha.detach().double().item(), act.beta.detach().double().item()
        if alpha == 0:
            raise InputError("cannot pack an adaptive activation with alpha = 0")
        lo_hi = (act.alpha.detach() * torch.tensor([-1.0, 1.0]) + act.beta.detach()).tolist()
        # s = +1  <=>  (y - beta) / alpha >= 0  <=>  y >= beta (alpha > 0) or y <= beta (alpha < 0)
        y_threshold, y_direction = torch.full((channels,), beta, dtype=torch.float64), float(np.sign(alpha))
    elif isinstance(act, RSign):
        lo_hi = [-1.0, 1.0]
        y_threshold, y_direction = act.beta.detach().double().clone(), 1.0
    elif isinstance(act, SignActivation):
        lo_hi = [-1.0, 1.0]
        y_threshold, y_direction = torch.zeros(channels, dtype=torch.float64), 1.0
    else:
        raise InputError(f"cannot pack activation {type(act).__name__}")
    direction = torch.full((channels,), y_direction, dtype=torch.float64)
    if bn is None:
        return y_threshold, direction, lo_hi[0], lo_hi[1]
    scale, shift = _bn_affine(bn)  # y = scale * x + shift >= t  <=>  x >= (t - shift) / scale if scale > 0
    threshold = torch.where(scale != 0, (y_threshold - shift) / torch.where(scale != 0, scale, 1), 0.0)
    constant_bit = (y_direction * (shift - y_threshold)) >= 0  # scale == 0: y = shift everywhere
    threshold = torch.where(scale == 0, torch.where(constant_bit, -torch.inf, torch.inf), threshold)
    direction = torch.where(scale < 0, -direction, direction)
    direction = torch.where(scale == 0, torch.ones_like(direction), direction)
    return threshold, direction, lo_hi[0], lo_hi[1]


class PackedBinaryConv(nn.Module):
    """A binary 3x3 convolution operator and the BatchNorm after it, on bits.

    Buffers (saved): ``thresholds`` (P, C_in) float32 and ``below`` (P, ceil(C_in/8)) uint8, packed
    bits per channel (1: bit 1 where x <= threshold, a negative BN scale; 0: where x >= threshold);
    ``act_levels`` (P, 2) values of bit 0 / bit 1; ``weight_bits`` (S, ceil(C_out*C_in*9/8)) uint8
    (``numpy.packbits`` of the (C_out, C_in, 3, 3) signs) for S weight sets; ``weight_levels``
    (S, C_out, 2), the two weight values times the scale of the BatchNorm after the conv;
    ``plane_weights`` (P,) uint8, which weight set each plane uses; ``bn_shift`` (C_out,), that
    BatchNorm's shift. Input (N, C_in, H, W) float32 -> (N, C_out, ceil(H/s), ceil(W/s)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, planes: int, weight_sets: int):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        n_bits = out_channels * in_channels * 9
        self.register_buffer("thresholds", torch.zeros(planes, in_channels))
        self.register_buffer("below", torch.zeros(planes, -(-in_channels // 8), dtype=torch.uint8))
        self.register_buffer("act_levels", torch.zeros(planes, 2))
        self.register_buffer("weight_bits", torch.zeros(weight_sets, -(-n_bits // 8), dtype=torch.uint8))
        self.register_buffer("weight_levels", torch.zeros(weight_sets, out_channels, 2))
        self.register_buffer("plane_weights", torch.zeros(planes, dtype=torch.uint8))
        self.register_buffer("bn_shift", torch.zeros(out_channels))
        self._kernel = None

    def below_mask(self) -> torch.Tensor:
        """(P, C_in) bool: where bit 1 means x <= threshold."""
        bits = np.unpackbits(self.below.numpy(), axis=1, count=self.in_channels).astype(bool)
        return torch.from_numpy(bits)

    def signs(self, weight_set: int) -> np.ndarray:
        """The (C_out, C_in, 3, 3) bool weight signs (True = +1) of one weight set."""
        n_bits = self.out_channels * self.in_channels * 9
        bits = np.unpackbits(self.weight_bits[weight_set].numpy(), count=n_bits).astype(bool)
        return bits.reshape(self.out_channels, self.in_channels, 3, 3)

    def prepare(self, post: PackedPost | None = None) -> None:
        """Expand the stored bits into the kernel's operands, with the post-sum layer ``post`` fused
        into the kernel (call after loading new buffers; :class:`PackedUnit` passes its own)."""
        planes = self.thresholds.shape[0]
        signs = [self.signs(s) for s in range(self.weight_bits.shape[0])]
        words, acc, ones, const = [], [], [], []
        for p in range(planes):
            s = int(self.plane_weights[p])
            levels = self.weight_levels[s].double().numpy()
            a = self.act_levels[p].double().numpy()
            words.append(bitconv.pack_weight_rows(signs[s]))
            c = bitconv.conv_constants(signs[s], a[0], a[1], levels[:, 0], levels[:, 1])
            acc.append(c[0]), ones.append(c[1]), const.append(c[2])
        post_arrays = (post or PackedPost(self.out_channels, "identity")).arrays()
        # the BN scale is already in weight_levels; its shift is added by the kernel
        operands = bitconv.ConvOperands(
            np.stack(words),
            np.stack(acc),
            np.stack(ones),
            np.stack(const),
            self.bn_shift.double().numpy(),
            *post_arrays,
        )
        # (a plain tuple: a module kept as an attribute would join this one's state_dict)
        self._kernel = (operands, self.thresholds.numpy().astype(np.float32), self.below_mask().numpy(), post)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None, post=None) -> torch.Tensor:
        """Binary conv + BN of x; optionally fused: ``post(out + residual)`` (see
        :func:`~crackscope.deploy.bitconv.binary_conv3x3`; ``post`` is a :class:`PackedPost`)."""
        res = None if residual is None else residual.detach().contiguous().numpy()
        return torch.from_numpy(self.run(x.detach().contiguous().numpy(), res, post))

    def operands(self, post: PackedPost | None = None) -> tuple:
        """(ConvOperands, thresholds, below) with ``post`` fused, prepared on first use."""
        if self._kernel is None or post is not self._kernel[3]:
            self.prepare(post)
        return self._kernel[:3]

    def run(self, x: np.ndarray, residual: np.ndarray | None = None, post=None) -> np.ndarray:
        """:meth:`forward` on C-contiguous float32 arrays, without tensors in between."""
        operands, thresholds, below = self.operands(post)
        triples = bitconv.pack_row_triples(x, thresholds, below, self.stride)
        return operands.run(triples, self.stride, x.shape[2], x.shape[3], residual)

    @classmethod
    def from_modules(cls, op: nn.Module, bn: nn.BatchNorm2d) -> PackedBinaryConv:
        """Pack a binary conv operator (BinaryConv2d with its activation, ABAIO or DBNIEB) and its BN."""
        from crackscope.nn.binary import ABAIO, DBNIEB, BinaryConv2d

        if isinstance(op, DBNIEB):
            planes = [
                _threshold_plane(op.act1, op.conv.in_channels, op.bn1),
                _threshold_plane(op.act2, op.conv.in_channels, op.bn2),
            ]
            convs = [op.conv] if op.aba_io else [op.conv, op.conv2]
            plane_weights = [0, 0] if op.aba_io else [0, 1]
        elif isinstance(op, ABAIO):
            planes, convs, plane_weights = [_threshold_plane(op.act, op.conv.in_channels, op.bn)], [op.conv], [0]
        elif isinstance(op, BinaryConv2d):
            planes, convs, plane_weights = [_threshold_plane(op.act, op.in_channels)], [op], [0]
        else:
            raise InputError(f"cannot pack {type(op).__name__}: not a binary convolution operator")
        conv = convs[0]
        packed = cls(conv.in_channels, conv.out_channels, conv.stride[0], len(planes), len(convs))
        for p, (threshold, direction, lo, hi) in enumerate(planes):
            packed.thresholds[p] = threshold.float()
            packed.below[p] = torch.from_numpy(np.packbits((direction < 0).numpy()))
            packed.act_levels[p] = torch.tensor([lo, hi])
        scale, shift = _bn_affine(bn)
        for s, c in enumerate(convs):
            bits, lo, hi = _weight_bits_and_levels(c)
            packed.weight_bits[s] = torch.from_numpy(np.packbits(bits.numpy().reshape(-1)))
            packed.weight_levels[s] = (torch.stack([lo, hi], dim=1).double() * scale.view(-1, 1)).float()
        packed.plane_weights[:] = torch.tensor(plane_weights)
        packed.bn_shift[:] = shift.float()
        return packed


class PackedPost(nn.Module):
    """The layer after a binary unit's residual sum: ``pos * relu(u) - neg * relu(-u) + shift``,
    ``u = z - pre_shift``, per channel. Covers identity (pos = neg = 1), ReLU (neg = 0), BN, Maxout,
    PAN (Maxout then BN) and RPReLU; only the parameters a kind needs are stored (``kind``:
    "identity", "relu", "affine" = pos, neg, shift, or "shifted" = all four).
    Input (N, C, H, W) -> same shape; the unit fuses it into the convolution kernel."""

    KINDS = ("identity", "relu", "affine", "shifted")

    def __init__(self, channels: int, kind: str = "affine"):
        super().__init__()
        self.channels, self.kind = channels, kind
        if kind in ("affine", "shifted"):
            self.register_buffer("pos", torch.ones(channels))
            self.register_buffer("neg", torch.ones(channels))
            self.register_buffer("shift", torch.zeros(channels))
        if kind == "shifted":
            self.register_buffer("pre_shift", torch.zeros(channels))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pos, neg, pre_shift, shift) as float32 numpy arrays."""
        one, zero = np.ones(self.channels, np.float32), np.zeros(self.channels, np.float32)
        if self.kind in ("identity", "relu"):
            return one, (one if self.kind == "identity" else zero), zero, zero
        pre = self.pre_shift.numpy() if self.kind == "shifted" else zero
        return self.pos.numpy(), self.neg.numpy(), pre, self.shift.numpy()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        pos, neg, pre, shift = (torch.from_numpy(a).view(1, -1, 1, 1) for a in self.arrays())
        z = z - pre
        return pos * F.relu(z) - neg * F.relu(-z) + shift

    @classmethod
    def from_module(cls, post: nn.Module, channels: int) -> PackedPost:
        from crackscope.nn.binary import PAN, Maxout, RPReLU

        if isinstance(post, nn.Identity):
            return cls(channels, "identity")
        if isinstance(post, nn.ReLU):
            return cls(channels, "relu")
        packed = cls(channels, "shifted" if isinstance(post, RPReLU) else "affine")
        if isinstance(post, nn.BatchNorm2d):
            scale, shift = _bn_affine(post)
            packed.pos[:], packed.neg[:], packed.shift[:] = scale.float(), scale.float(), shift.float()
        elif isinstance(post, Maxout):
            packed.pos[:], packed.neg[:] = post.pos_scale.detach(), post.neg_scale.detach()
        elif isinstance(post, PAN) and isinstance(post.act, Maxout):
            scale, shift = _bn_affine(post.bn)
            packed.pos[:] = (scale * post.act.pos_scale.detach().double()).float()
            packed.neg[:] = (scale * post.act.neg_scale.detach().double()).float()
            packed.shift[:] = shift.float()
        elif isinstance(post, RPReLU):
            slope = post.prelu.weight.detach().expand(channels)
            packed.pos[:], packed.neg[:] = 1.0, slope
            packed.pre_shift[:], packed.shift[:] = post.gamma.detach(), post.zeta.detach()
        else:
            raise InputError(f"cannot pack the post-sum layer {type(post).__name__}")
        return packed


class PackedUnit(nn.Module):
    """``post(packed_conv(x) + shortcut(x))``, the bit-level form of a ``BinaryUnit``; the sum and
    ``post`` run inside the convolution kernel."""

    def __init__(self, conv: PackedBinaryConv, shortcut: nn.Module, post: PackedPost):
        super().__init__()
        self.conv, self.shortcut, self.post = conv, shortcut, post

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, residual=self.shortcut(x), post=self.post)

    def run(self, x: np.ndarray) -> np.ndarray:
        """:meth:`forward` on a C-contiguous float32 array; only a shortcut with weights goes through
        PyTorch (an option-A shortcut is a strided copy into zero channels, done here)."""
        if isinstance(self.shortcut, nn.Identity):
            residual = x
        elif isinstance(self.shortcut, PadShortcut):
            residual = _pad_shortcut(x, self.shortcut)
        else:
            residual = np.ascontiguousarray(self.shortcut(torch.from_numpy(x)).numpy())
        return self.conv.run(x, residual, self.post)


def _pad_shortcut(x: np.ndarray, shortcut: PadShortcut) -> np.ndarray:
    """:class:`~crackscope.models.binary.resnet.PadShortcut` on an array: the same values (a copy)
    without a tensor round trip, which cost about as much as the copy at 64 px."""
    s = shortcut.stride
    sub = x[:, :, ::s, ::s]
    out = np.zeros((x.shape[0], shortcut.front + x.shape[1] + shortcut.back, *sub.shape[2:]), np.float32)
    out[:, shortcut.front : shortcut.front + x.shape[1]] = sub
    return out


def _fold_stem(stem: nn.Sequential) -> nn.Sequential:
    """Stem conv + BN -> one conv with bias (float64 fold, stored float32); ReLU / max-pool kept."""
    import copy

    conv, bn, rest = stem[0], stem[1], list(stem)[2:]
    scale, shift = _bn_affine(bn)
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True)
    with torch.no_grad():
        folded.weight.copy_((conv.weight.double() * scale.view(-1, 1, 1, 1)).float())
        folded.bias.copy_(shift.float())
    return nn.Sequential(folded, *[copy.deepcopy(m) for m in rest])


class PackedResNet(nn.Module):
    """A binary ResNet on bits: folded stem -> packed units -> global average pool -> Linear.

    ``meta`` holds what rebuilds it (registered ``model`` name, constructor ``kwargs``, ``classes``
    names when known). Input (B, in_channels, H, W) float32 -> logits (B, classes). Inference only.
    A batch runs in chunks of :meth:`images_per_chunk` images; with several chunks and several
    threads (:func:`~crackscope.deploy.bitconv.thread_budget`), whole chunks run in parallel, one
    per thread (:func:`~crackscope.deploy.bitconv.map_on_threads`), with the same logits. A batch of
    one chunk on several threads runs with its layers split over the threads or wholly on one
    thread, whichever its recent passes of that shape ran faster (:mod:`crackscope.deploy.pass_mode`),
    with the same logits either way. Split, its binary units run as a team
    (:mod:`crackscope.deploy.team`: every thread takes work items from shared counters) when every
    shortcut is an identity or option A, else on numba's parallel kernels. ``pass_mode`` fixes the
    mode: "team", "parallel" (numba's parallel kernels) or "serial".
    """

    # "auto", "team", "parallel" or "serial": how a one-chunk batch uses several threads
    pass_mode = "auto"

    def __init__(
        self,
        stem: nn.Module,
        units: list[PackedUnit],
        fc: nn.Linear,
        in_channels: int,
        meta: dict,
        stem_stride: int = 1,
    ):
        super().__init__()
        self.stem, self.units, self.fc = stem, nn.Sequential(*units), fc
        self.in_channels, self.meta = in_channels, dict(meta)
        self.stem_stride = stem_stride  # the stem's down-sampling, for the input-size check
        # a model trained with per-image standardised input (model.input_norm): the same step first
        norm = self.meta.get("input_norm")
        if norm not in (None, "none", "per_image"):
            raise InputError(f"packed model: unknown input_norm {norm!r}")
        self.standardize = PerImageStandardize(self.meta["min_std"]) if norm == "per_image" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        min_side = MIN_SIDE * self.stem_stride
        if x.dim() != 4 or x.shape[1] != self.in_channels or min(x.shape[-2:]) < min_side:
            raise InputError(
                f"packed {self.meta.get('model', 'model')} expects (B, {self.in_channels}, H, W) "
                f"input with H, W >= {min_side} (got {tuple(x.shape)})"
            )
        keep_large_blocks()  # freed layer outputs stay mapped for the next call (crackscope.allocator)
        with torch.no_grad():
            chunk = self.images_per_chunk(x.shape[-2], x.shape[-1])
            if len(x) <= chunk:
                if self.pass_mode not in ("auto", "parallel", "serial", "team"):
                    raise InputError(f"pass_mode {self.pass_mode!r}: use 'auto', 'parallel', 'serial' or 'team'")
                threads = bitconv.thread_budget()
                if threads > 1 and self.pass_mode == "team":
                    return self._team_logits(x.float(), threads)
                if threads == 1 or self.pass_mode == "parallel":
                    return self._logits(x.float())
                if self.pass_mode == "serial":
                    with bitconv.one_thread():
                        return self._logits(x.float())
                return self._chooser().run((tuple(x.shape), threads), self._passes(x.float(), threads))
            parts = [x[i : i + chunk] for i in range(0, len(x), chunk)]
            threads = min(bitconv.thread_budget(), len(parts))
            if threads > 1:  # whole chunks in parallel, each on one thread (the same numbers)
                self._steps()  # built once, before the threads share them
                return torch.cat(bitconv.map_on_threads(lambda part: self._logits(part.float()), parts, threads))
            return torch.cat([self._logits(part.float()) for part in parts])

    @torch.no_grad()  # (grad mode is per thread: a chunk may run on a worker thread)
    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.standardize is not None:
            x = self.standardize(x)
        shape, fill = self._stem_fill(x)
        z = np.empty(shape, np.float32)
        fill(z)  # (as the team's pass fills its buffer: the same stem values)
        for step in self._steps():  # arrays from unit to unit: no tensor or module call in between
            z = step.run(z)
        return self._head(z)

    def _head(self, z: np.ndarray) -> torch.Tensor:
        """The classifier on the last unit's output ``z`` (N, C, H, W) or (N, C, H * W): global
        average pool, then Linear, in compiled code (:func:`~crackscope.deploy.float_layers.pool_linear`:
        2 µs where PyTorch's two calls took 15 µs at 64 px in a loop of their own)."""
        arrays = self.__dict__.get("_fc_arrays")
        if arrays is None:  # made once (prepare() after new weights makes them again)
            weight = np.ascontiguousarray(self.fc.weight.detach().numpy(), np.float32)
            bias = self.fc.bias
            bias = (
                np.zeros(len(weight), np.float32)
                if bias is None
                else np.ascontiguousarray(bias.detach().numpy(), np.float32)
            )
            arrays = self.__dict__["_fc_arrays"] = (weight, bias)
        return torch.from_numpy(pool_linear(z.reshape(z.shape[0], z.shape[1], -1), *arrays))

    @torch.no_grad()
    def _team_logits(self, x: torch.Tensor, threads: int) -> torch.Tensor:
        """:meth:`_logits` with the binary units run as a team (:mod:`crackscope.deploy.team`): the
        same values. A compiled stem runs in the team's first phase, its rows shared by the threads;
        a stem in PyTorch runs on one thread before it (into the plan's input buffer). The compiled
        classifier after it."""
        from crackscope.deploy import team

        if self.standardize is not None:
            x = self.standardize(x)
        stem = self._compiled_stem()
        plans = self.__dict__.get("_team_plans")
        if plans is None:
            plans = self.__dict__["_team_plans"] = {}
        key = (tuple(x.shape), threads)
        plan = plans.get(key)
        if stem is not None:
            image = x.detach().numpy()
            if plan is None:
                plan = team.TeamPlan(
                    self._team_units(), self._stem_shape(x.shape, stem), threads, stem=stem, input_shape=image.shape
                )
            fill = lambda buffer: np.copyto(buffer, image)  # noqa: E731  (the padded input's inside)
        else:
            shape, fill = self._stem_fill(x)
            if plan is None:
                plan = team.TeamPlan(self._team_units(), shape, threads)
        if key not in plans:
            if len(plans) >= 8:  # a few shapes at a time (each plan holds its buffers)
                plans.pop(next(iter(plans)))
            plans[key] = plan
        if stem is not None:
            return plan.run(fill, self._head)
        torch_threads = torch.get_num_threads()  # PyTorch's stem on one thread
        torch.set_num_threads(1)
        try:
            return plan.run(fill, self._head)
        finally:
            torch.set_num_threads(torch_threads)

    def _compiled_stem(self) -> tuple | None:
        """(weight (C_out, C_in, 3, 3), bias (C_out,) float32, padding) of a stem that is one
        zero-padded 3 x 3 convolution of stride 1, one padding for both axes, no groups and no
        dilation, which :func:`~crackscope.deploy.float_layers.stem_rows` computes; None for another
        stem (PyTorch runs it)."""
        if "_stem_ops" not in self.__dict__:
            conv, ops = self._stem_conv(), None
            if (
                conv is not None
                and len(set(conv.padding)) == 1
                and tuple(conv.kernel_size) == (3, 3)
                and tuple(conv.stride) == (1, 1)
                and conv.groups == 1
                and tuple(conv.dilation) == (1, 1)
            ):
                weight = np.ascontiguousarray(conv.weight.detach().numpy(), np.float32)
                bias = (
                    np.zeros(conv.out_channels, np.float32)
                    if conv.bias is None
                    else np.ascontiguousarray(conv.bias.detach().numpy(), np.float32)
                )
                ops = (weight, bias, int(conv.padding[0]))
            self.__dict__["_stem_ops"] = ops
        return self.__dict__["_stem_ops"]

    def _stem_conv(self) -> nn.Conv2d | None:
        """The stem's one zero-padded convolution, or None for a stem of several layers (looked up
        once: walking the modules on every call cost microseconds of a small pass)."""
        if "_stem_conv_found" not in self.__dict__:
            stem = list(self.stem)
            conv = stem[0] if len(stem) == 1 and isinstance(stem[0], nn.Conv2d) else None
            ok = conv is not None and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            self.__dict__["_stem_conv_found"] = conv if ok else None
        return self.__dict__["_stem_conv_found"]

    def _stem_shape(self, shape, stem: tuple) -> tuple:
        """The compiled stem's output shape for an input of ``shape`` (N, C, H, W)."""
        weight, _, pad = stem
        sides = [side + 2 * pad - 2 for side in shape[2:]]
        return (shape[0], weight.shape[0], *sides)

    def _stem_fill(self, x: torch.Tensor) -> tuple:
        """(the stem's output shape for ``x``, a function that writes that output into a float32
        buffer of the shape): the compiled stem where it can run it (the same function and values as
        a team pass); else PyTorch's, a stem of one convolution straight into the buffer (no output
        tensor to allocate and copy: about 20 µs of a 64-px pass), another stem copied."""
        stem = self._compiled_stem()
        if stem is not None:
            shape = self._stem_shape(x.shape, stem)
            weight, bias, pad = stem

            def fill(buffer: np.ndarray) -> None:
                padded = padded_input(x.detach().numpy(), pad)
                for b in range(shape[0]):
                    stem_rows(padded, weight, bias, b, 0, shape[2], buffer)

            return shape, fill
        conv = self._stem_conv()
        if conv is not None:
            sides = [
                (side + 2 * pad - k) // stride + 1
                for side, pad, k, stride in zip(x.shape[2:], conv.padding, conv.kernel_size, conv.stride)
            ]

            def fill(buffer: np.ndarray) -> None:
                torch.ops.aten.convolution.out(
                    x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, False, [0, 0],
                    conv.groups, out=torch.from_numpy(buffer),
                )  # fmt: skip

            return (x.shape[0], conv.out_channels, *sides), fill
        z = self.stem(x).numpy()
        return z.shape, lambda buffer: np.copyto(buffer, z)

    def _team_runs(self) -> bool:
        """Whether :mod:`crackscope.deploy.team` runs this network: every shortcut an identity or
        option A (an option-B shortcut has weights, run by PyTorch)."""
        if self.__dict__.get("_team_ok") is None:
            self.__dict__["_team_ok"] = all(
                isinstance(u.shortcut, nn.Identity)
                or (isinstance(u.shortcut, PadShortcut) and u.shortcut.stride == u.conv.stride)
                for u in self.units
            )
        return self.__dict__["_team_ok"]

    def _team_units(self) -> list:
        """The units as :class:`~crackscope.deploy.team.TeamPlan` takes them; InputError for a unit
        whose shortcut has weights (option B), which the team does not run."""
        if not self._team_runs():
            raise InputError("pass_mode 'team' runs networks with identity and option-A shortcuts only")
        units = []
        for unit in self.units:
            operands, thresholds, below = unit.conv.operands(unit.post)
            shortcut = unit.shortcut
            short = None if isinstance(shortcut, nn.Identity) else (shortcut.front, unit.conv.out_channels)
            units.append((operands, thresholds, below, unit.conv.stride, short))
        return units

    def _steps(self) -> list:
        """The units as they run: each run of consecutive units with an identity shortcut, stride 1
        and as many output as input channels (a stage after its first unit) as one
        :class:`~crackscope.deploy.bitconv.ResidualChain` (one compiled call, the same values),
        the others (a stage's first unit, with its real shortcut) one by one."""
        if self.__dict__.get("_step_cache") is None:
            steps, run = [], []

            def close_run():
                layers = [u.conv.operands(u.post) for u in run]
                if layers and bitconv.ResidualChain.chainable(layers):
                    steps.append(bitconv.ResidualChain(layers))
                else:
                    steps.extend(run)
                run.clear()

            for unit in self.units:
                conv = unit.conv
                if (
                    isinstance(unit.shortcut, nn.Identity)
                    and conv.stride == 1
                    and conv.in_channels == conv.out_channels
                    and (not run or run[0].conv.in_channels == conv.in_channels)
                ):
                    run.append(unit)
                else:
                    close_run()
                    steps.append(unit)
            close_run()
            self.__dict__["_step_cache"] = steps  # not a module attribute: no state_dict entry
        return self.__dict__["_step_cache"]

    def _chooser(self) -> PassModeChooser:
        """This network's :class:`~crackscope.deploy.pass_mode.PassModeChooser` (made on first use):
        of the team and one thread, or of numba's parallel kernels and one thread where the network
        does not run as a team."""
        if self.__dict__.get("_pass_chooser") is None:
            if self._team_runs():
                # Not numba's parallel kernels beside the team: their worker threads spin after each
                # parallel loop, and the team's passes that followed them ran slow, so a chooser of
                # three modes kept running the parallel kernels (64 px, batch 1, two threads: 1.09-1.15
                # ms median against the team's 0.92-0.93 alone). The fastest of the last 5 passes: the
                # first 3-4 team passes after another program ran (ONNX Runtime, 40 ms) took 1.4-2.2 ms
                # against 0.9, and the fastest of 3 then switched to one thread until the next probe
                # (docs/binary.md). One probe of one thread every 32 passes.
                chooser = PassModeChooser(window=5, probe_every=32, modes=("team", "serial"))
            else:
                chooser = PassModeChooser()
            self.__dict__["_pass_chooser"] = chooser
        return self.__dict__["_pass_chooser"]

    def _passes(self, x: torch.Tensor, threads: int) -> dict:
        """A one-chunk batch's pass in each mode the chooser may pick (the same logits)."""

        def serial():
            with bitconv.one_thread():
                return self._logits(x)

        return {"team": lambda: self._team_logits(x, threads), "parallel": lambda: self._logits(x), "serial": serial}

    def __getstate__(self) -> dict:
        """Pickled and copied without the compiled chains (rebuilt on the next call) and without
        the pass times (a copy may run on another machine)."""
        state = super().__getstate__()
        return {**state, "_step_cache": None, "_pass_chooser": None, "_team_plans": None}

    def images_per_chunk(self, height: int, width: int) -> int:
        """Images run through the network together: as many as keep the first stage's activation
        (float32, at the input side divided by the stem's strides; the largest activation, since
        later stages halve the side and double the width) within
        :data:`CHUNK_BYTES`, at least one. The bit convolutions do not depend on the chunking; the
        float PyTorch layers (stem, real shortcuts, classifier) may round differently per batch size."""
        if self.__dict__.get("_chunk_geometry") is None:  # (walking the modules cost 8 µs a call)
            first = next((m.in_channels for m in self.modules() if isinstance(m, PackedBinaryConv)), 1)
            down = 1  # the stem's down-sampling: its convolution's and pooling's strides
            for m in self.stem.modules():
                stride = getattr(m, "stride", 1)
                down *= int(stride[0] if isinstance(stride, (tuple, list)) else stride)
            self.__dict__["_chunk_geometry"] = (first, down)
        first, down = self.__dict__["_chunk_geometry"]
        pixels = -(-height // down) * -(-width // down)
        return max(1, CHUNK_BYTES // (4 * first * pixels))

    def prepare(self) -> PackedResNet:
        """Expand every unit's stored bits into its kernel operands (after loading new buffers)."""
        for unit in self.units:
            unit.conv.prepare(unit.post)
        self.__dict__["_step_cache"] = None  # the chains are built again from the new operands
        self.__dict__["_team_plans"] = None
        self.__dict__.pop("_stem_conv_found", None)  # the float layers are looked up again too
        self.__dict__.pop("_stem_ops", None)
        self.__dict__.pop("_fc_arrays", None)
        return self


def pack_model(model: nn.Module, meta: dict | None = None) -> PackedResNet:
    """Pack a trained binary ResNet (eval-mode statistics are used). InputError for a
    full-precision or otherwise unsupported model."""
    import copy

    from crackscope.models.binary import ResNetSkeleton
    from crackscope.models.binary.resnet import BinaryUnit
    from crackscope.nn.input_norm import StandardizedInput

    if isinstance(model, StandardizedInput):  # per-image standardised input: the net, behind the same step
        norm = {"input_norm": "per_image", "min_std": model.standardize.min_std}
        return pack_model(model.net, {**(meta or {}), **norm})
    if not isinstance(model, ResNetSkeleton) or not model.kind.binary:
        raise InputError(
            f"only binary ResNets can be packed (got {type(model).__name__}"
            f"{'' if not isinstance(model, ResNetSkeleton) else ', a full-precision network'})"
        )
    model = model.eval()
    units = []
    for stage in model.body:
        for block in stage:
            for unit in block:
                if not isinstance(unit, BinaryUnit):
                    raise InputError(f"cannot pack block {type(unit).__name__}")
                channels = unit.bn.num_features
                units.append(
                    PackedUnit(
                        PackedBinaryConv.from_modules(unit.conv, unit.bn),
                        copy.deepcopy(unit.shortcut).eval(),
                        PackedPost.from_module(unit.post, channels),
                    )
                )
    fc = copy.deepcopy(model.fc)
    meta = {"model": getattr(model, "name", type(model).__name__), **(meta or {})}
    return (
        PackedResNet(_fold_stem(model.stem), units, fc, model.in_channels, meta, getattr(model, "stem_stride", 1))
        .eval()
        .prepare()
    )


def packed_size_bits(packed: PackedResNet) -> dict:
    """Stored size of the packed network in bits: ``weight_sign_bits`` (the binary convolutions'
    packed weights), ``float32_values`` (thresholds, levels, folded BN/Maxout, stem, classifier) and
    ``total_bits``, every stored tensor byte counted (the file adds its JSON header)."""
    tensors = packed.state_dict()
    sign_bits = sum(t.numel() * 8 for k, t in tensors.items() if k.endswith("weight_bits"))
    float_values = sum(t.numel() for t in tensors.values() if t.dtype == torch.float32)
    total = sum(t.numel() * t.element_size() * 8 for t in tensors.values())
    return {"weight_sign_bits": sign_bits, "float32_values": float_values, "total_bits": total}


def _blobs(state: dict) -> dict[str, torch.Tensor]:
    """Concatenate the state's tensors by dtype (state_dict order) into one flat tensor each."""
    groups: dict[str, list[torch.Tensor]] = {}
    for t in state.values():
        groups.setdefault(str(t.dtype).removeprefix("torch."), []).append(t.reshape(-1))
    return {dtype: torch.cat(parts) for dtype, parts in groups.items()}


def _unblob(template: dict, blobs: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Inverse of :func:`_blobs` with the shapes of ``template`` (a freshly packed skeleton)."""
    offsets = {dtype: 0 for dtype in blobs}
    state = {}
    for key, t in template.items():
        dtype = str(t.dtype).removeprefix("torch.")
        blob, start = blobs.get(dtype), offsets.get(dtype, 0)
        if blob is None or start + t.numel() > blob.numel():
            raise InputError(f"{path} does not match the network it names (too few {dtype} values)")
        state[key] = blob[start : start + t.numel()].view(t.shape).clone()
        offsets[dtype] = start + t.numel()
    if any(offsets[d] != blobs[d].numel() for d in blobs):
        raise InputError(f"{path} does not match the network it names (values left over)")
    return state


def save_packed(packed: PackedResNet, path: str | Path) -> Path:
    """Write the packed network to ``path``, atomically: a safetensors file (no pickle) with one
    flat tensor per dtype (uint8: weight sign bits and threshold directions; float32: everything
    real) in state_dict order, and JSON metadata naming the network (which fixes the shapes)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(_blobs(packed.state_dict()), str(tmp), metadata={"format": FORMAT, "meta": json.dumps(packed.meta)})
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # an ordinary file, as open() would create it
    tmp.replace(path)
    return path


def load_packed(path: str | Path) -> PackedResNet:
    """Rebuild a :class:`PackedResNet` written by :func:`save_packed` (no pickle, no code run)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from crackscope import models

    path = Path(path)
    if not path.is_file():
        raise InputError(f"packed model {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        blobs = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for a damaged file
        raise InputError(f"{path} is not a packed crackscope model ({err})") from None
    if header.get("format") != FORMAT:
        raise InputError(
            f"{path} is not a packed crackscope model (format {header.get('format')!r}, expected {FORMAT!r})"
        )
    meta = json.loads(header["meta"])
    skeleton = models.create(meta["model"], **meta.get("kwargs", {}))
    packed = pack_model(skeleton.eval(), {k: v for k, v in meta.items() if k != "model"})
    packed.load_state_dict(_unblob(packed.state_dict(), blobs, path), strict=True)
    return packed.prepare()


def compare_with_model(model: nn.Module, packed: PackedResNet, x: torch.Tensor) -> dict:
    """Logits of the float model and of the packed one on ``x``: largest |difference|, whether the
    predicted classes agree, and the share of activation bits that differ (rounding near a
    threshold), per input batch."""
    model = model.eval()
    with torch.no_grad():
        expected = model(x)
    got = packed(x)
    flips, total = _bit_flips(model, packed, x)
    return {
        "max_abs_logit_diff": float((got - expected).abs().max()),
        "same_prediction": float((got.argmax(1) == expected.argmax(1)).float().mean()),
        "activation_bits_flipped": flips,
        "activation_bits": total,
    }


def _bit_flips(model, packed, x) -> tuple[int, int]:
    """Activation bits where the packed thresholds disagree with the model's own binariser, both fed
    the model's real-valued inputs to every binary conv (so disagreements do not compound)."""
    from crackscope.models.binary.resnet import BinaryUnit

    inputs = []
    hooks = [
        u.conv.register_forward_pre_hook(lambda m, a: inputs.append((m, a[0])))
        for u in model.modules()
        if isinstance(u, BinaryUnit)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    convs = [m for m in packed.modules() if isinstance(m, PackedBinaryConv)]
    flips = total = 0
    for (op, real), pc in zip(inputs, convs):
        for p, act_bits in enumerate(_model_activation_bits(op, real)):
            t = pc.thresholds[p].view(1, -1, 1, 1)
            d = 1.0 - 2.0 * pc.below_mask()[p].float().view(1, -1, 1, 1)
            mine = (real - t) * d >= 0
            flips += int((mine != act_bits).sum())
            total += act_bits.numel()
    return flips, total


def _model_activation_bits(op, x) -> list[torch.Tensor]:
    from crackscope.nn.binary import ABAIO, DBNIEB

    if isinstance(op, DBNIEB):
        a1, a2 = op.branch_activations(x)
        return [_upper_level(op.act1, a1), _upper_level(op.act2, a2)]
    if isinstance(op, ABAIO):
        return [_upper_level(op.act, op.binary_input(x))]
    return [_upper_level(op.act, op.act(x))]


def _upper_level(act, a: torch.Tensor) -> torch.Tensor:
    """Which entries of a binarised tensor took the s = +1 level."""
    from crackscope.nn.binary import AdaptiveBinaryActivation

    if isinstance(act, AdaptiveBinaryActivation):
        return a == (act.alpha.detach() + act.beta.detach()).view(1, -1, 1, 1)
    return a > 0
