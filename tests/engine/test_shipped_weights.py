"""The shipped SD-saliency-900 models (weights/sd-saliency-900/) load from Python, reach the
issue's target on their held-out test split, export to ONNX, and predict at the original size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "src" / "crackscope" / "weights" / "sd-saliency-900"
SD_ROOT = ROOT / ".." / "shared" / "datasets" / "SD-saliency-900"


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    from crackscope.engine.surface import evaluate_surface_run

    out = tmp_path_factory.mktemp("shipped")
    result = {}
    for model in ("unet_cbam", "unet"):
        stems = json.loads((WEIGHTS / model / "split.json").read_text())["stems"]["test"]
        result[model] = evaluate_surface_run(WEIGHTS / model, SD_ROOT, out / model, stems=stems)
    return result


def test_unet_cbam_reaches_the_target_and_beats_unet(scores):
    cbam, plain = scores["unet_cbam"], scores["unet"]
    assert cbam["n_images"] == plain["n_images"] == 108  # the 15 % stratified test split, never trained on
    assert set(cbam["per_class"]) == {"In", "Pa", "Sc"}
    assert cbam["miou"] >= 0.87 and cbam["miou"] > plain["miou"]  # the target
    # an all-background prediction on the same images scores defect IoU 0 and mIoU < 0.5
    assert cbam["iou_defect"] > 0.7


def test_shipped_metrics_file_matches_a_fresh_evaluation(scores):
    saved = json.loads((WEIGHTS / "unet_cbam" / "metrics.json").read_text())
    for key in ("miou", "iou_defect", "precision", "recall", "accuracy"):
        assert saved[key] == pytest.approx(scores["unet_cbam"][key], abs=1e-9), key


def test_shipped_model_exports_and_predicts_at_original_size(tmp_path):
    from crackscope.deploy.export import export_onnx
    from crackscope.engine.runs import load_run
    from crackscope.engine.surface import predict_surface

    result = export_onnx(WEIGHTS / "unet_cbam", tmp_path / "model.onnx")
    assert result["input_shape"] == [[2, 1, 128, 128]] and result["max_abs_diff"] < 1e-4
    cfg, model, _ = load_run(WEIGHTS / "unet_cbam")
    assert cfg.model.name == "unet_cbam" and not model.training
    images = tmp_path / "images"
    images.mkdir()
    for name in ("In_1.bmp", "Pa_1.bmp", "Sc_1.bmp"):
        (images / name).write_bytes((SD_ROOT / "Source Images" / name).read_bytes())
    predict_surface(WEIGHTS / "unet_cbam", images, tmp_path / "pred")
    for stem in ("In_1", "Pa_1", "Sc_1"):
        mask = np.asarray(Image.open(tmp_path / "pred" / "masks" / f"{stem}.png"))
        assert mask.shape == (200, 200)
