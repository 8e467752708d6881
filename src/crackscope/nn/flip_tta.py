"""Flip test-time augmentation of a segmentation network: the probability map averaged over
mirrored copies of the input, each mirrored back before averaging.

A crack has no preferred side, so a segmenter's probability should not change when the photo is
mirrored; averaging over mirrors removes what it learnt of one orientation only. The groups:

* ``"none"``: the input as it is (one pass);
* ``"flip"``: the four mirrors of the rectangle (identity, left-right, up-down, both; four passes);
* ``"d8"``: those four and their transposes, the eight symmetries of the square (eight passes).
  A transpose swaps height and width, so the network must be fully convolutional and take both
  sides (``prepare_image`` pads both to the same multiple).

Averaged are probabilities (after the sigmoid), not logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["TTA_MODES", "flip_average", "passes"]

TTA_MODES = ("none", "flip", "d8")
_MIRRORS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def passes(mode: str) -> int:
    """How many network passes ``mode`` costs per input."""
    return {"none": 1, "flip": 4, "d8": 8}[mode]


def flip_average(probability: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode: str) -> torch.Tensor:
    """``probability`` (a map (N, C, H, W) -> (N, K, H, W)) averaged over the symmetries ``mode`` of
    :data:`TTA_MODES` applied to ``x``, each output mapped back by the inverse symmetry."""
    if mode not in TTA_MODES:
        raise ValueError(f"tta {mode!r} is not one of {', '.join(TTA_MODES)}")
    if mode == "none":
        return probability(x)
    total = None
    for transpose in (False, True) if mode == "d8" else (False,):
        for dims in _MIRRORS:
            y = x.flip(dims) if dims else x
            y = y.transpose(-1, -2) if transpose else y
            p = probability(y)
            p = p.transpose(-1, -2) if transpose else p
            p = p.flip(dims) if dims else p
            total = p if total is None else total + p
    return total / passes(mode)
