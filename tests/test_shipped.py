"""The shipped models by name (crackscope.shipped): every model folder of the package is registered,
each headline number is the one its folder's README reports (written when it was shipped), a name
goes wherever a run or model folder does and gives what the folder path gives, a shipped model is
never written into, and a wrong name is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackscope.cli import main
from crackscope.shipped import DATASETS, MODELS, PAIRS, describe, folder, label, resolve, weights_root

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "crackscope" / "weights"
NEU = ROOT / ".." / "shared" / "datasets" / "NEU-CLS"


def test_every_model_folder_of_the_package_is_registered_and_found_by_importlib_resources():
    on_disk = sorted(p.parent.relative_to(WEIGHTS).as_posix() for p in WEIGHTS.glob("*/*/model.safetensors"))
    assert on_disk == sorted(MODELS) and len(on_disk) == 12
    assert weights_root().resolve() == WEIGHTS.resolve()  # the editable install reads the checkout's folders
    for pair in PAIRS:
        assert folder(pair, "segmenter") == folder(f"{pair}/segmenter")
        assert folder(pair, "classifier") == folder(f"{pair}/tile_classifier")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_headline_number_is_the_one_the_models_readme_reports(name):
    row = describe(name)
    _, _, _, digits = MODELS[name].headline
    readme = (WEIGHTS / name / "README.md").read_text()
    assert f"{row['headline']['value']:.{digits}f}" in readme, (name, row["headline"])
    assert row["trained_on"] and all(d["licence"] for d in row["trained_on"])
    assert {d["dataset"] for d in row["trained_on"]} <= set(DATASETS)


def test_operating_points_are_those_of_the_folders():
    # hand-read from the folders' operating_point.json: 0.5 (segmenter), 0.3552 with 128-px windows
    # (classifier), 0.2576 with 128-px windows (the 1-bit screen)
    assert describe("cracks/segmenter")["operating_point"].startswith("probability >= 0.5 ")
    assert "0.355 " in describe("cracks/tile_classifier")["operating_point"]
    assert "0.258 " in describe("cracks/tile_classifier_1bit")["operating_point"]
    for name in ("cracks/tile_classifier", "cracks/tile_classifier_1bit"):
        assert "128-px windows" in describe(name)["operating_point"]
    assert "float ResNet-20" in describe("cracks/tile_classifier")["task"]
    assert "1-bit AOIE-Net" in describe("cracks/tile_classifier_1bit")["task"]
    assert describe("neu-cls/aoie_net")["operating_point"] == "the most probable class"
    assert describe("sd-saliency-900/unet_cbam")["operating_point"] == "probability >= 0.5"


def test_crackscope_models_lists_every_model_with_its_licence(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in MODELS:
        assert f"\n{name}" in f"\n{out}"
    f1 = json.loads((WEIGHTS / "cracks" / "segmenter" / "metrics.json").read_text())["f1"]  # what it must read
    assert "DeepCrack: no licence stated" in out and f"measured:        pixel F1 on held-out photos {f1:.4f}" in out
    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listed["models"]] == list(MODELS) and set(listed["pairs"]) == set(PAIRS)


def test_an_existing_folder_wins_over_a_name_and_shipped_folders_are_labelled_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve("cracks") == (folder("cracks/segmenter"), "cracks/segmenter")
    assert resolve("cracks", "classifier")[1] == "cracks/tile_classifier"
    (tmp_path / "cracks").mkdir()
    assert resolve("cracks") == (Path("cracks"), "cracks")
    assert label(folder("neu-cls/aoie_net")) == "neu-cls/aoie_net"


def test_a_wrong_name_is_one_line_exit_2(tmp_path, capsys):
    code = main(["predict", "sd-saliency-900/unet_cbamm", "--data", str(tmp_path), "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "unet_cbamm" in err
    assert not (tmp_path / "p").exists()


def test_the_bit_packed_runtime_on_the_full_precision_screen_names_the_1bit_one(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((128, 128, 3), 128, np.uint8)).save(photo)
    code = main(["inspect-image", str(photo), "--runtime", "packed", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "cracks/tile_classifier: --runtime packed needs a binary network" in err[0]
    assert err[0].endswith("the pair's 1-bit screen is cracks/tile_classifier_1bit")
    assert not (tmp_path / "out").exists()
    photo_args = [str(photo), "--classifier", "cracks/tile_classifier_1bit", "--runtime", "packed"]
    assert main(["inspect-image", *photo_args, "--out", str(tmp_path / "out1")]) == 0
    summary = json.loads((tmp_path / "out1" / "summary.json").read_text())
    assert summary["classifier"] == "cracks/tile_classifier_1bit"


def test_predict_by_name_writes_what_predict_by_folder_writes(tmp_path, crack_photos):
    photos = crack_photos()
    by_name, by_path = tmp_path / "by-name", tmp_path / "by-path"
    data = str(photos["wide"][0])
    assert main(["predict", "cracks/segmenter", "--data", data, "--out", str(by_name)]) == 0
    assert main(["predict", str(WEIGHTS / "cracks" / "segmenter"), "--data", data, "--out", str(by_path)]) == 0
    a, b = (np.asarray(Image.open(d / "masks" / "wide.png")) for d in (by_name, by_path))
    assert np.array_equal(a, b) and a.any()


@pytest.mark.skipif(not NEU.is_dir(), reason="needs ../shared/datasets/NEU-CLS")
def test_evaluate_by_name_scores_what_evaluate_by_folder_scores(tmp_path):
    data = tmp_path / "neu"
    data.mkdir()
    for path in sorted(NEU.glob("*_1*.bmp"))[:24]:  # a few images of every class
        (data / path.name).write_bytes(path.read_bytes())
    for run, out in (("neu-cls/aoie_net", "a"), (str(WEIGHTS / "neu-cls" / "aoie_net"), "b")):
        assert main(["evaluate", run, "--data", str(data), "--format", "neu-cls", "--out", str(tmp_path / out)]) == 0
    a, b = (json.loads((tmp_path / o / "metrics.json").read_text()) for o in "ab")
    assert a["accuracy"] == b["accuracy"] and a["n_images"] == b["n_images"] > 0


def test_export_of_a_shipped_model_writes_into_the_current_folder_never_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    package = folder("neu-cls/aoie_net")
    before = sorted(p.name for p in package.iterdir())
    assert main(["export", "neu-cls/aoie_net", "--format", "packed"]) == 0
    written = tmp_path / "export" / "neu-cls" / "aoie_net" / "model.packed.safetensors"
    assert written.is_file()
    assert sorted(p.name for p in package.iterdir()) == before
    # the packed twin shipped beside it: the same sign bits, and float32 parameters (thresholds,
    # levels, folded BatchNorm) equal up to the float32 rounding of the CPU that folds them (PyTorch's
    # kernels round differently on other CPUs: 3 ulps apart on an AMD EPYC)
    from safetensors.numpy import load_file

    shipped, fresh = load_file(str(package / "model.packed.safetensors")), load_file(str(written))
    assert shipped.keys() == fresh.keys() == {"float32", "uint8"}
    assert np.array_equal(shipped["uint8"], fresh["uint8"])
    np.testing.assert_array_max_ulp(shipped["float32"], fresh["float32"], maxulp=4)
