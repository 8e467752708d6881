"""The README's Python examples run as written (with its placeholder paths pointed at small data)
and do what they say: the wave-field example gives `crackscope evaluate`'s numbers, the surface
example `crackscope predict`'s mask, the fusion example Dempster's rule worked by hand."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / ".." / "shared" / "datasets"


def _python_blocks(section: str) -> list[str]:
    readme = (ROOT / "README.md").read_text()
    body = readme.split(f"### {section}", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def _run(code: str, replacements: dict[str, str], monkeypatch) -> dict:
    for placeholder, path in replacements.items():
        code = code.replace(placeholder, path)
    monkeypatch.chdir(ROOT)  # the wave-field example's simulate.yaml is named from the checkout
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


def test_wave_field_example_scores_like_evaluate(tmp_path, monkeypatch, capsys):
    import yaml

    from crackscope.data.wavefield_store import generate_wavefield_store
    from crackscope.physics.config import PlateConfig

    model = ROOT / "src" / "crackscope" / "weights" / "wavefield" / "mcan-rc-small"
    cfg = PlateConfig.model_validate(yaml.safe_load((model / "simulate.yaml").read_text()))
    generate_wavefield_store(tmp_path / "plates.zarr", cfg, 6, seed=7, batch=3)
    (block,) = _python_blocks("Wave field")
    ns = _run(block, {"plates.zarr": str(tmp_path / "plates.zarr"), "eval/": str(tmp_path / "eval")}, monkeypatch)
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert ns["result"]["dsc"] == written["dsc"] and written["n_samples"] == 6
    assert f"DSC {written['dsc']:.3f}" in capsys.readouterr().out


@pytest.mark.skipif(not (DATASETS / "SD-saliency-900").is_dir(), reason="needs the shared SD-saliency-900")
def test_surface_example_gives_the_mask_predict_writes(tmp_path, monkeypatch, cli):
    from PIL import Image

    (block,) = _python_blocks("Surface")
    ns = _run(block, {"DATASETS/": str(DATASETS) + "/"}, monkeypatch)
    image = DATASETS / "SD-saliency-900" / "Source Images" / "In_1.bmp"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "In_1.bmp").write_bytes(image.read_bytes())
    r = cli("predict", "sd-saliency-900/unet_cbam", "--data", tmp_path / "in", "--out", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    predicted = np.asarray(Image.open(tmp_path / "p" / "masks" / "In_1.png")) > 127
    assert ns["mask"].shape == predicted.shape
    assert np.mean(ns["mask"] != predicted) < 1e-3  # the same mask (bar resampling at the border)


def test_fusion_example_is_dempsters_rule(capsys, monkeypatch):
    (block,) = _python_blocks("Harmonics")
    _run(block, {}, monkeypatch)
    printed = np.array([float(v) for v in re.findall(r"[0-9.]+", capsys.readouterr().out)])
    # Bayesian masses: Dempster's rule is the normalised product, [.30, .12, .01] / .43
    np.testing.assert_allclose(printed, np.array([0.30, 0.12, 0.01]) / 0.43, rtol=1e-6)
    comment = re.search(r"# Dempster's rule: \[([0-9. ]+)\]", block).group(1)
    np.testing.assert_allclose([float(v) for v in comment.split()], printed, atol=5e-4)


@pytest.mark.skipif(not (DATASETS / "DeepCrack").is_dir(), reason="needs the shared DeepCrack")
def test_cascade_example_gives_the_mask_inspect_image_writes(tmp_path, monkeypatch, cli, capsys):
    from PIL import Image

    photo = sorted((DATASETS / "DeepCrack" / "train_img").glob("*.jpg"))[0]
    (block,) = _python_blocks("Binary classification and the crack cascade")
    ns = _run(block, {"photo.jpg": str(photo)}, monkeypatch)
    r = cli("inspect-image", photo, "--out", tmp_path / "report")  # the shipped pair, by default
    assert r.returncode == 0, r.stderr
    written = np.asarray(Image.open(tmp_path / "report" / "mask.png")) > 127
    np.testing.assert_array_equal(ns["result"].mask, written)
    assert f"{written.mean():.2%} crack pixels" in capsys.readouterr().out
