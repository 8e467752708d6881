"""The shipped models of the paper's task (one notch per plate, the small preset): MicroCrackAttentionNeXt
as published (weights/wavefield/mcan-small) and MicroCrackAttentionNeXt-RC (weights/wavefield/
mcan-rc-small), each on fresh plates made from its own simulate.yaml with a seed never used in
training: it places the notches inside the sensor cells (DSC well above the cell oracle of the same
plates), its size columns rise from >0 to >4 µm, and its ONNX export matches PyTorch."""

import json
from pathlib import Path

import pytest

WEIGHTS = Path(__file__).resolve().parents[2] / "src" / "crackscope" / "weights" / "wavefield"
MODELS = [
    WEIGHTS / name for name in ("mcan-small", "mcan-rc-small") if (WEIGHTS / name / "model.safetensors").is_file()
]


@pytest.fixture(scope="module", params=MODELS, ids=lambda p: p.name)
def model(request):
    return request.param


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, cli, model):
    MODEL = model
    tmp = tmp_path_factory.mktemp(model.name)
    plates = tmp / "plates.zarr"
    made = cli(
        "simulate",
        "wavefield",
        "--config",
        MODEL / "simulate.yaml",
        "--samples",
        64,
        "--seed",
        4321,
        "--batch",
        32,
        "--out",
        plates,
    )
    assert made.returncode == 0, made.stderr
    out = cli("evaluate", MODEL, "--data", plates, "--out", tmp / "ev")
    assert out.returncode == 0, out.stderr
    return json.loads((tmp / "ev" / "metrics.json").read_text())


def test_both_models_are_shipped():
    for folder in MODELS:
        for name in ("config.yaml", "model.safetensors", "simulate.yaml", "operating_point.json", "README.md"):
            assert (folder / name).is_file(), folder / name


def test_places_notches_inside_the_cells(evaluated, model):
    MODEL = model
    m = evaluated
    assert m["n_samples"] == 64
    assert m["threshold"] == json.loads((MODEL / "operating_point.json").read_text())["threshold"]
    assert m["dsc"] > m["cell_oracle_dsc"] + 0.1
    by = m["by_crack_size"]
    assert by[">4"]["dsc"] > by[">0"]["dsc"]


def test_onnx_export_matches(tmp_path, model):
    from crackscope.deploy.export import export_onnx

    r = export_onnx(model, tmp_path / "model.onnx")
    assert r["max_abs_diff"] < 1e-3
