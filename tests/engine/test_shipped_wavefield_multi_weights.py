"""The shipped model of the small-multi benchmark (weights/wavefield/mcan-small-multi) on fresh plates
made from its own simulate.yaml with an unseen seed: it finds cracks (DSC far above a blind guess at the crack-pixel
fraction, ~0.02), its ONNX export matches PyTorch, and a store of another plate size is refused."""

import json
from pathlib import Path

import pytest

MODEL = Path(__file__).resolve().parents[2] / "src" / "crackscope" / "weights" / "wavefield" / "mcan-small-multi"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("fresh") / "plates.zarr"
    done = cli(
        "simulate",
        "wavefield",
        "--config",
        MODEL / "simulate.yaml",
        "--samples",
        48,
        "--seed",
        123,
        "--batch",
        16,
        "--out",
        out,
    )
    assert done.returncode == 0, done.stderr
    return out


def test_evaluate_on_fresh_plates_finds_cracks(fresh, tmp_path, cli):
    out = cli("evaluate", MODEL, "--data", fresh, "--out", tmp_path / "ev")
    assert out.returncode == 0, out.stderr
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    point = json.loads((MODEL / "operating_point.json").read_text())
    assert m["n_samples"] == 48 and m["threshold"] == point["threshold"]
    assert m["dsc"] > 0.15


def test_export_and_other_geometry(fresh, tmp_path, cli):
    from crackscope.deploy.export import export_onnx

    r = export_onnx(MODEL, tmp_path / "model.onnx")
    assert (
        r["max_abs_diff"] < 1e-3
        and r["threshold"] == json.loads((MODEL / "operating_point.json").read_text())["threshold"]
    )
    paper = tmp_path / "paper.zarr"
    made = cli(
        "simulate",
        "wavefield",
        "--preset",
        "paper",
        "--set",
        "n_time=250",
        "--set",
        "record_every=8",
        "--samples",
        2,
        "--batch",
        2,
        "--out",
        paper,
    )
    assert made.returncode == 0, made.stderr
    out = cli("predict", MODEL, "--data", paper, "--out", tmp_path / "pred")
    assert out.returncode == 2 and "width=" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "pred").exists()
