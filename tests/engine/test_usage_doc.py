"""docs/usage.md's Python example of a surface prediction, executed as written: on a DeepCrack photo
with the shipped weights/cracks/segmenter it gives the mask `crackscope predict` writes, the one at
the run's operating point (RUN/operating_point.json), which wins over the config's trainer.threshold."""

from __future__ import annotations

import json
import re
import shutil
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

    threshold = json.loads((SEGMENTER / "operating_point.json").read_text())["threshold"]
    assert f"{threshold:g} for `cracks/segmenter`" in (ROOT / "docs" / "usage.md").read_text()
    assert np.array_equal(namespace["prob"] > threshold, mask)


@pytest.mark.skipif(not PHOTO.exists(), reason="needs ../shared/datasets/DeepCrack")
def test_the_operating_point_not_the_config_threshold_makes_the_mask(tmp_path):
    """A copy of the shipped folder whose operating_point.json says 0.3 while its config says 0.5:
    run_threshold and `crackscope predict` both take the 0.3, which on this photo gives another mask."""
    from crackscope.data.surface import load_image
    from crackscope.engine.runs import load_run, run_threshold
    from crackscope.engine.surface import predict_probability

    run = tmp_path / "segmenter"
    shutil.copytree(SEGMENTER, run)
    point = json.loads((run / "operating_point.json").read_text())
    (run / "operating_point.json").write_text(json.dumps({**point, "threshold": 0.3}))
    cfg, model, _ = load_run(run)
    assert cfg.trainer.threshold == 0.5 and run_threshold(run, cfg) == 0.3
    prob = predict_probability(model, load_image(PHOTO, cfg.data.in_channels), cfg.data.size)
    assert main(["predict", str(run), "--data", str(PHOTO), "--out", str(tmp_path / "pred")]) == 0
    written = np.asarray(Image.open(tmp_path / "pred" / "masks" / f"{PHOTO.stem}.png")) == 255
    assert np.array_equal(written, prob > 0.3)
    assert not np.array_equal(written, prob > 0.5)
