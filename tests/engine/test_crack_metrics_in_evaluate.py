"""`crackscope evaluate` of a crack segmenter reports the crack literature's ODS / OIS F-measure
next to the pixel metrics, and they obey what their definitions imply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEGMENTER = ROOT / "src" / "crackscope" / "weights" / "deepcrack" / "segmenter"
DEEPCRACK = ROOT / ".." / "shared" / "datasets" / "DeepCrack"


@pytest.mark.skipif(not DEEPCRACK.is_dir(), reason="needs ../shared/datasets/DeepCrack")
def test_ods_ois_of_the_shipped_segmenter_on_held_out_images(tmp_path):
    from crackscope.engine.surface import evaluate_surface_run

    stems = json.loads((SEGMENTER / "split.json").read_text())["stems"]["test"][:4]
    r = evaluate_surface_run(SEGMENTER, DEEPCRACK, tmp_path, stems=stems)
    assert r["n_images"] == 4 and json.loads((tmp_path / "metrics.json").read_text())["ods_f_2px"] == r["ods_f_2px"]
    # ODS is the best F over a grid that holds the model's own threshold (0.5): never below its pixel F1
    assert r["threshold"] == 0.5 and r["ods_f_0px"] >= r["f1"] - 1e-9
    assert 0 < r["ois_f_0px"] <= 1 and 0 < r["ois_f_2px"] <= 1
    # a tolerance only adds matches in both precision and recall at every threshold: F cannot fall
    assert r["ods_f_2px"] >= r["ods_f_0px"] - 1e-9
    # false alarms: the crack-free pixels are those > 16 px from every labelled crack pixel, counted
    # here with a brute-force distance from each pixel to the nearest crack pixel's centre
    import numpy as np
    from PIL import Image

    sound = 0
    for stem in stems:
        label = np.asarray(Image.open(DEEPCRACK / "train_lab" / f"{stem}.png").convert("L")) > 127
        ys, xs = np.nonzero(label)
        step = 4  # every 4th row and column, scaled up: the brute force over all pixels is slow
        gy, gx = np.mgrid[0 : label.shape[0] : step, 0 : label.shape[1] : step]
        d2 = np.full(gy.shape, np.inf)
        for y, x in zip(ys, xs):
            d2 = np.minimum(d2, (gy - y) ** 2 + (gx - x) ** 2)
        sound += (d2 > 16**2).sum() * step * step
    fa = r["false_alarms"]
    assert fa["sound_px"] == pytest.approx(sound, rel=0.02)
    assert fa["false_px_per_megapixel"] == pytest.approx(fa["false_px"] / fa["sound_px"] * 1e6)
    assert 0 <= fa["false_tiles"] <= fa["sound_tiles"]
