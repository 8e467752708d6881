"""The shipped NEU-CLS classifiers (weights/neu-cls/): they load, their metrics file matches a fresh
evaluation on their held-out test split, and the bit-packed AOIE-Net shipped beside the float one
gives the same classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "src" / "crackscope" / "weights" / "neu-cls"
NEU = ROOT / ".." / "shared" / "datasets" / "NEU-CLS"

pytestmark = pytest.mark.usefixtures("one_torch_thread", "one_numba_thread")


def _test_images(model_dir: Path, limit: int | None = None):
    from crackscope.data.classification import ImageClassificationDataset
    from crackscope.engine.runs import load_run

    cfg, model, _ = load_run(model_dir)
    split = json.loads((model_dir / "split.json").read_text())
    indices = split["test"][:limit] if limit else split["test"]
    ds = ImageClassificationDataset(
        NEU, format="neu-cls", indices=indices, size=cfg.data.size, channels=cfg.data.channels
    )
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([int(ds[i][1]) for i in range(len(ds))])
    return model, x, y


@pytest.mark.parametrize("name", ["aoie_net", "resnet20"])
def test_shipped_metrics_match_a_fresh_evaluation_of_the_held_out_split(name):
    saved = json.loads((WEIGHTS / name / "metrics.json").read_text())
    model, x, y = _test_images(WEIGHTS / name)
    assert len(y) == saved["n_images"] == 288  # 20 % of 1,440, stratified: 48 per class
    assert torch.bincount(y).tolist() == [48] * 6
    # in chunks of 4 (as below): 288 native-size (200 x 200) images at once need gigabytes, and on one thread
    # chunks of 32 (82 MB activations, far beyond the caches) took 2.7x longer per image than chunks of 4
    with torch.no_grad():
        predicted = torch.cat([model(chunk).argmax(1) for chunk in x.split(4)])
    accuracy = int((predicted == y).sum()) / len(y)
    assert accuracy == pytest.approx(saved["accuracy"], abs=1e-9)
    assert accuracy > 0.9  # six balanced classes: chance is 1/6
    f1 = []  # macro F1 by hand: mean over classes of 2PR / (P + R)
    for c in range(6):
        tp = int(((predicted == c) & (y == c)).sum())
        p = tp / max(int((predicted == c).sum()), 1)
        r = tp / int((y == c).sum())
        f1.append(0.0 if p + r == 0 else 2 * p * r / (p + r))
    assert sum(f1) / 6 == pytest.approx(saved["f1"], abs=1e-9)


def test_shipped_packed_aoie_net_classifies_like_the_float_model():
    from crackscope.deploy.packed import load_packed

    model, x, _ = _test_images(WEIGHTS / "aoie_net", limit=48)
    packed = load_packed(WEIGHTS / "aoie_net" / "model.packed.safetensors")
    assert packed.meta["classes"] == ["Cr", "In", "Pa", "PS", "RS", "Sc"]
    with torch.no_grad():
        expected = torch.cat([model(chunk) for chunk in x.split(4)])
    got = packed(x)
    assert torch.equal(got.argmax(1), expected.argmax(1))
    float_bytes = (WEIGHTS / "aoie_net" / "model.safetensors").stat().st_size
    assert (WEIGHTS / "aoie_net" / "model.packed.safetensors").stat().st_size * 20 <= float_bytes
