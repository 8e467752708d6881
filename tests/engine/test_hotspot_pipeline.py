"""A new pipeline is one module and one register() call: docs/examples/hotspot_pipeline.py (the
worked example of docs/architecture.md) is registered, then trained, evaluated, predicted and
exported through the CLI exactly like crackscope's own pipelines, with no other file touched."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "hotspot_pipeline.py"
SPOT_K, NOISE_K, SIGMA_PX = 3.0, 0.25, 2.0  # hot-spot peak rise, pixel noise, spot width


def _frames(n: int, seed: int, size: int = 16):
    """Frames with 1-2 Gaussian hot spots in white noise; the mask is where a spot's own rise
    exceeds half its peak (the spot's full width at half maximum)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    frames = rng.normal(0.0, NOISE_K, (n, size, size))
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        for _ in range(int(rng.integers(1, 3))):
            cy, cx = rng.uniform(3, size - 3, 2)
            spot = SPOT_K * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * SIGMA_PX**2))
            frames[i] += spot
            masks[i] |= spot > SPOT_K / 2
    return frames.astype(np.float32), masks


def _dsc(pred: np.ndarray, true: np.ndarray) -> float:
    tp = np.sum(pred & true)
    return 2 * tp / (np.sum(pred) + np.sum(true))


@pytest.fixture(scope="module")
def hotspot():
    """The example module imported once (its import registers the pipeline); unregistered after."""
    from crackscope import models
    from crackscope.engine import pipelines

    spec = importlib.util.spec_from_file_location("hotspot_pipeline", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["hotspot_pipeline"] = module
    spec.loader.exec_module(module)
    yield module
    pipelines.REGISTRY.pop("hotspot", None)
    models._REGISTRY.pop("hotspot_net", None)
    sys.modules.pop("hotspot_pipeline", None)


def test_train_evaluate_predict_export_through_the_cli(hotspot, tmp_path):
    from crackscope.cli import app
    from crackscope.engine.evaluation import PROVENANCE_KEYS
    from crackscope.engine.runs import load_run, run_threshold

    cli = CliRunner()
    frames, masks = _frames(40, seed=0)
    np.savez(tmp_path / "train.npz", frames=frames, masks=masks)
    config = {
        "name": "hot",
        "pipeline": "hotspot",
        "out_dir": str(tmp_path / "runs"),
        "data": {"frames": str(tmp_path / "train.npz")},
        "model": {"name": "hotspot_net"},
        "loss": {"name": "dice"},
        "optimizer": {"name": "adam", "lr": 0.05},
        "trainer": {"max_epochs": 25},
    }
    (tmp_path / "hot.yaml").write_text(yaml.safe_dump(config))
    r = cli.invoke(app, ["train", "--config", str(tmp_path / "hot.yaml")])
    assert r.exit_code == 0, r.output
    run = tmp_path / "runs" / "hot"
    trained = json.loads((run / "metrics.json").read_text())
    assert trained["pipeline"] == "hotspot" and trained["subset"] == "given frames" and trained["n_samples"] == 8

    # evaluate on frames of another seed: every pixel scored, the template's provenance keys
    test_frames, test_masks = _frames(30, seed=1)
    np.savez(tmp_path / "test.npz", frames=test_frames, masks=test_masks)
    r = cli.invoke(app, ["evaluate", str(run), "--data", str(tmp_path / "test.npz"), "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    assert re.search(r"DSC 0\.\d{4}  IoU 0\.\d{4}  \(30 frames, all frames\)", r.output)
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert set(PROVENANCE_KEYS) <= set(m) and m["n_samples"] == 30 and m["subset"] == "all frames"
    # the independent reference: thresholding each noisy pixel at half the spot peak, no training
    rule = _dsc(test_frames > SPOT_K / 2, test_masks.astype(bool))
    assert m["dsc"] > rule - 0.05 and m["dsc"] > 0.8, (m["dsc"], rule)

    # predict: the mask is sigmoid(logits) > the run's threshold, recomputed here from the weights
    np.savez(tmp_path / "unlabelled.npz", frames=test_frames[:5])
    r = cli.invoke(
        app, ["predict", str(run), "--data", str(tmp_path / "unlabelled.npz"), "--out", str(tmp_path / "pred")]
    )
    assert r.exit_code == 0, r.output
    import torch

    cfg, model, _ = load_run(run)
    threshold = run_threshold(run, cfg)
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(test_frames[:5])[:, None]))[:, 0].numpy() > threshold
    got = np.load(tmp_path / "pred" / "predictions.npz")["mask"]
    np.testing.assert_array_equal(got, expected)

    # export: ONNX with free height and width, checked against PyTorch by the exporter itself
    r = cli.invoke(app, ["export", str(run), "--out", str(tmp_path / "hot.onnx")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "hot.onnx").is_file()


def test_the_registry_now_offers_it_everywhere(hotspot):
    from crackscope.engine import pipelines
    from crackscope.engine.config import TrainConfig

    assert "hotspot" in pipelines.trainable() and pipelines.get("hotspot").segments
    base = {"name": "r", "pipeline": "hotspot", "model": {"name": "hotspot_net"}, "loss": {"name": "dice"}}
    cfg = TrainConfig.model_validate({**base, "data": {"frames": "x.npz"}})
    assert type(cfg.data).__name__ == "HotSpotData" and cfg.monitor == "val/dsc"
    assert TrainConfig.model_validate(cfg.model_dump(mode="json")).data == cfg.data  # config.yaml round trip
    with pytest.raises(ValueError, match=r"data\.root"):
        TrainConfig.model_validate({**base, "data": {"root": "x"}})  # the hotspot section has no root


def test_architecture_doc_quotes_the_example_verbatim():
    """Every Python block of docs/architecture.md's worked example is a piece of the module."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    section = doc.split("## Worked example: adding a pipeline", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    source = EXAMPLE.read_text()
    assert len(blocks) >= 3
    for block in blocks:
        lines = [line for line in block.splitlines() if line.strip() and line.strip() != "..."]
        for line in lines:
            assert line.strip() in source, f"docs/architecture.md quotes a line the example does not have: {line!r}"
