"""benchmarks/camera_shift_cracks.py's reference row: what half the resolution costs a perfect
segmenter, against hand-worked bilinear resampling."""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import camera_shift_cracks as shift  # noqa: E402


def test_half_resolution_keeps_even_aligned_bands_and_loses_one_pixel_lines():
    """Halving with an antialiased bilinear filter weighs four input columns 1/8, 3/8, 3/8, 1/8.
    A 1-px line reaches at most 3/8 at half size and stays below 0.5 when enlarged again: lost
    (fn = its pixels). A band of 2 or 8 columns starting at an even column reaches 6/8 or more in the
    half-size columns it covers, and enlarging again puts exactly its own columns above 0.5: kept
    whole (tp = its pixels, nothing else)."""
    line = np.zeros((32, 40), bool)
    line[:, 17] = True
    assert shift.half_resolution_counts(line) == (0, 0, 32)
    for first, width in ((8, 2), (20, 8)):
        band = np.zeros((32, 40), bool)
        band[:, first : first + width] = True
        assert shift.half_resolution_counts(band) == (32 * width, 0, 0)
