"""docs/usage.md's Python example of a surface prediction, executed as written: on a DeepCrack photo
with the shipped weights/cracks/segmenter it gives the mask `crackscope predict` writes, the one at
the run's operating point (RUN/operating_point.json), not at the config's trainer.threshold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackscope.cli import main

ROOT = Path(__file__).resolve().parents[2]
SEGMENTER = ROOT / "src" / "crackscope" / "weights" / "cracks" / "segmenter"
PHOTO = ROOT / ".." / "shared" / "datasets" / "DeepCrack" / "train_img" / "11112.jpg"  # held out (test split)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _surface_prediction_example() -> str:
    """The ```python block of docs/usage.md that thresholds a surface prediction."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "usage.md").read_text(), flags=re.S)
    found = [b for b in blocks if "predict_probability(" in b and "mask = " in b]
    assert len(found) == 1, "docs/usage.md: expected one example that predicts a surface mask"
    return found[0]


@pytest.mark.skipif(not PHOTO.exists(), reason="needs ../shared/datasets/DeepCrack")
def test_the_usage_example_gives_the_mask_of_crackscope_predict(tmp_path, monkeypatch):
    example = _surface_prediction_example()
    assert 'folder("cracks/segmenter")' in example and '"crack.jpg"' in example
    monkeypatch.chdir(ROOT)  # the example's paths are relative to the project root
    namespace: dict = {}
    exec(compile(example.replace('"crack.jpg"', repr(str(PHOTO))), "docs/usage.md", "exec"), namespace)
    mask = namespace["mask"]

    assert main(["predict", "cracks/segmenter", "--data", str(PHOTO), "--out", str(tmp_path / "pred")]) == 0
    written = np.asarray(Image.open(tmp_path / "pred" / "masks" / f"{PHOTO.stem}.png"))
    assert written.shape == mask.shape == (384, 544)
    assert np.array_equal(written == 255, mask) and set(np.unique(written)) <= {0, 255}
    assert 0 < mask.sum() < mask.size  # a crack, found

    # the operating point, not trainer.threshold: on this photo they give other masks
    threshold = json.loads((SEGMENTER / "operating_point.json").read_text())["threshold"]
    assert f"{threshold:g} for `cracks/segmenter`" in (ROOT / "docs" / "usage.md").read_text()
    assert threshold != namespace["cfg"].trainer.threshold
    assert not np.array_equal(namespace["prob"] > namespace["cfg"].trainer.threshold, mask)
    assert np.array_equal(namespace["prob"] > threshold, mask)
