"""benchmarks/crack_length_photos.py's figures against hand-worked masks and sums."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import crack_length_photos as lengths  # noqa: E402


def test_figures_of_two_bands_are_their_summed_length_and_the_wider_width():
    """A horizontal band 5 px wide, 60 px long and one 3 px wide, 40 px long: the skeleton of each
    runs along its middle row and stops about half its width inside each end, so the total length is
    100 px less at most 8 px, and the widest crack is 5 px."""
    mask = np.zeros((40, 100), dtype=bool)
    mask[5:10, 10:70] = True
    mask[25:28, 20:60] = True
    total, widest = lengths.figures(mask)
    assert 92 <= total <= 100
    assert widest == pytest.approx(5.0, abs=0.5)
    assert lengths.figures(np.zeros((8, 8), dtype=bool)) == (0.0, 0.0)


def test_summary_pools_lengths_and_errs_per_labelled_photo():
    rows = [  # labelled 100 px, found 110; labelled 200, found 150; no label, 20 px of false crack
        {
            "label_length_px": 100.0,
            "predicted_length_px": 110.0,
            "label_max_width_px": 4.0,
            "predicted_max_width_px": 5.0,
        },
        {
            "label_length_px": 200.0,
            "predicted_length_px": 150.0,
            "label_max_width_px": 6.0,
            "predicted_max_width_px": 4.0,
        },
        {"label_length_px": 0.0, "predicted_length_px": 20.0, "label_max_width_px": 0.0, "predicted_max_width_px": 3.0},
    ]
    s = lengths.summarise(rows)
    assert s["images"] == 3 and s["label_length_px"] == 300.0
    assert s["length_ratio"] == pytest.approx(280.0 / 300.0)
    assert s["median_relative_length_error"] == pytest.approx((0.10 - 0.25) / 2)
    assert s["mean_abs_relative_length_error"] == pytest.approx((0.10 + 0.25) / 2)
    assert s["median_max_width_error_px"] == pytest.approx((1.0 - 2.0) / 2)
