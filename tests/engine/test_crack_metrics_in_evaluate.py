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
