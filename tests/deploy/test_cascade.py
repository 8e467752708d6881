"""The tile cascade (crackscope.deploy.cascade) and ``crackscope inspect-image``: stitching covers
every pixel once, the segmenter sees exactly the flagged tiles, flag-everything equals the all-tiles
baseline, flag-nothing never calls the segmenter, loaders refuse the wrong runs, and the command
writes its report files or, on bad input, one line, exit 2 and nothing."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

from crackscope.cli import main
from crackscope.deploy.cascade import (
    ClassifierEnsemble,
    TileClassifier,
    inspect_image,
    load_classifier,
    load_segmenter,
    segment_all_tiles,
    to_channels,
    write_ensemble,
)
from crackscope.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "src" / "crackscope" / "weights" / "deepcrack"
DEEPCRACK = ROOT / ".." / "shared" / "datasets" / "DeepCrack"
H, W, T = 70, 100, 32  # tiles: rows at 0, 32, 38 and columns at 0, 32, 64, 68 -> 12 tiles


class Recorder:
    """A segmenter stub: records the tiles it is given and returns their first channel."""

    def __init__(self, channels=1):
        self.channels, self.threshold, self.calls = channels, 0.5, []

    def __call__(self, tiles):
        self.calls.append(tiles.clone())
        return tiles[:, 0]


def _constant(p):
    return lambda tiles: torch.full((len(tiles),), float(p))


def _image(seed=0, channels=1):
    return np.random.default_rng(seed).random((channels, H, W)).astype(np.float32)


# ---- stitching and the cascade with stub models ---------------------------------------------------------
def test_segmenter_sees_exactly_the_flagged_tiles_and_cells_are_stitched_once():
    image = _image()
    flag = {1, 6, 11}  # tiles (0, 1), (1, 2), (2, 3)

    def classifier(tiles):
        return torch.tensor([0.9 if k in flag else 0.1 for k in range(len(tiles))])

    seg = Recorder()
    r = inspect_image(image, classifier, seg, tile=T, threshold=0.5, batch_size=2, overlap=0)  # stitched tiles
    assert r.n_tiles == 12 and r.flagged.tolist() == [k in flag for k in range(12)]
    got = torch.cat(seg.calls)
    assert [len(c) for c in seg.calls] == [2, 1]  # batched
    windows = [image[:, y : y + T, x : x + T] for y, x in ((0, 32), (32, 64), (38, 68))]
    assert all(np.array_equal(got[k].numpy(), windows[k]) for k in range(3))
    # the stub returns the pixels: flagged cells hold the image, every other pixel is 0
    expected = np.zeros((H, W), dtype=np.float32)
    for y0, y1, x0, x1 in ((0, 32, 32, 64), (32, 64, 64, 96), (64, 70, 96, 100)):
        expected[y0:y1, x0:x1] = image[0, y0:y1, x0:x1]
    assert np.array_equal(r.probability, expected)
    assert np.array_equal(r.mask, expected > 0.5)


def test_all_tiles_stitch_every_pixel_exactly_once():
    image = _image(1)
    r = segment_all_tiles(image, Recorder(), tile=T, overlap=0)
    assert np.array_equal(r.probability, image[0])  # each pixel from exactly one tile that contains it
    assert r.mode == "all-tiles" and r.n_flagged == 12 and np.isnan(r.tile_probability).all()


def test_flag_everything_equals_all_tiles_with_a_real_network():
    torch.manual_seed(0)
    from crackscope.models import create

    net = create("unet", in_channels=3, classes=1, base_channels=2, depth=2).eval()
    from crackscope.deploy.cascade import TileSegmenter

    seg = TileSegmenter(net, channels=3, threshold=0.5)
    image = _image(2, channels=3)
    every = inspect_image(image, _constant(1.0), seg, tile=T, threshold=0.5)
    base = segment_all_tiles(image, seg, tile=T)
    assert every.n_flagged == every.n_tiles == 12
    assert np.array_equal(every.probability, base.probability) and np.array_equal(every.mask, base.mask)
    assert 0 < base.probability.min() and base.probability.max() < 1  # a sigmoid everywhere, nothing left at 0


def test_the_tile_defaults_to_the_classifiers_own_as_inspect_image_command_takes_it():
    """A classifier trained on 32-px tiles is given 32-px tiles with no tile= (the grid the CLI uses,
    the tile its operating point was chosen for); one without a tile side gets DEFAULT_TILE (64)."""
    from crackscope.deploy.cascade import DEFAULT_TILE, TileClassifier

    sides = []

    def logits(x):
        sides.append(tuple(x.shape[-2:]))
        return torch.zeros(len(x), 2)

    image = np.random.default_rng(0).random((1, 96, 160)).astype(np.float32)
    r = inspect_image(image, TileClassifier(logits, channels=1, tile=32), Recorder(), threshold=0.5)
    assert r.n_tiles == 3 * 5 and set(sides) == {(32, 32)}
    sides.clear()
    r = inspect_image(image, TileClassifier(logits, channels=1), Recorder(), threshold=0.5)
    assert DEFAULT_TILE == 64 and r.n_tiles == 2 * 3 and set(sides) == {(64, 64)}


def test_flag_nothing_gives_an_empty_mask_and_never_calls_the_segmenter():
    def never(tiles):
        raise AssertionError("the segmenter must not run")

    r = inspect_image(_image(3), _constant(0.2), never, tile=T, threshold=0.5)
    assert r.n_flagged == 0 and not r.mask.any() and not r.probability.any()
    assert r.tile_probability.tolist() == pytest.approx([0.2] * 12)
    assert set(r.timings) == {"classify_s", "segment_s", "stitch_s", "total_s"}


def test_threshold_flags_at_or_above_it_and_the_rows_name_every_tile():
    probs = torch.linspace(0, 1, 12)
    r = inspect_image(_image(4), lambda t: probs, Recorder(), tile=T, threshold=float(probs[6]))
    assert r.flagged.tolist() == [False] * 6 + [True] * 6
    rows = r.tile_rows()
    assert [(d["row"], d["col"], d["y0"], d["x0"]) for d in rows[:5]] == [
        (0, 0, 0, 0),
        (0, 1, 0, 32),
        (0, 2, 0, 64),
        (0, 3, 0, 68),
        (1, 0, 32, 0),
    ]
    assert rows[-1]["flagged"] == 1 and rows[0]["flagged"] == 0


def test_tile_classifier_resizes_and_takes_the_crack_softmax():
    seen = []

    def logits(x):
        seen.append(tuple(x.shape))
        return torch.stack([torch.zeros(len(x)), x.mean((1, 2, 3)) * 10], 1)

    clf = TileClassifier(logits, crack_index=1, channels=1, input_size=(16, 16), batch_size=5)
    tiles = torch.rand(12, 1, 32, 32)
    p = clf(tiles)
    assert seen == [(5, 1, 16, 16), (5, 1, 16, 16), (2, 1, 16, 16)]
    assert torch.allclose(p, torch.sigmoid(tiles.mean((1, 2, 3)) * 10), atol=1e-4)  # 2-class softmax = sigmoid


def test_colour_to_grey_is_pillows_conversion_and_grey_for_colour_is_refused():
    # every 8-bit colour once: a 4096 x 4096 image
    levels = np.arange(2**24, dtype=np.uint32)
    rgb = np.stack([levels >> 16, (levels >> 8) & 255, levels & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
    grey = to_channels(rgb.transpose(2, 0, 1).astype(np.float32) / 255, 1)
    pillow = np.asarray(Image.fromarray(rgb).convert("L"))
    assert np.array_equal(grey[0].numpy(), pillow.astype(np.float32) / 255)
    with pytest.raises(InputError, match="greyscale"):
        to_channels(np.zeros((1, 8, 8), np.float32), 3)
    with pytest.raises(InputError, match=r"\(C, H, W\)"):
        to_channels(np.zeros((4, 8, 8), np.float32), 3)


def test_bad_classifier_output_is_an_input_error_and_small_images_are_padded():
    with pytest.raises(InputError, match="one crack probability per tile"):
        inspect_image(_image(), lambda t: torch.ones(3), Recorder(), tile=T)
    small = inspect_image(_image(), _constant(1), Recorder(), tile=80)  # padded, not refused (issue 21)
    assert small.n_tiles == 2 and small.probability.shape == (H, W)  # 80 rows padded from 70; columns 0 and 20
    with pytest.raises(InputError, match="classifier is needed"):
        inspect_image(_image(), None, Recorder(), tile=T)


# ---- runs on disk: loaders and the command line ---------------------------------------------------------
def _run(
    root: Path, name: str, pipeline: str, model: dict, geometry: dict, data: dict, classes=None, seed: int = 0
) -> Path:
    """A minimal run folder (config.yaml, model.safetensors, split.json) with untrained weights."""
    from crackscope.engine.config import dump_config, load_train_config
    from crackscope.engine.runs import build_model

    cfg = load_train_config(
        None,
        base={
            "name": name,
            "pipeline": pipeline,
            "data": data,
            "model": model,
            "loss": {"name": "cross_entropy" if pipeline == "classify" else "dice"},
        },
    )
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({**dump_config(cfg), "geometry": geometry}, sort_keys=False))
    torch.manual_seed(seed)
    save_file(
        {k: v.contiguous() for k, v in build_model(cfg, geometry).state_dict().items()}, str(run / "model.safetensors")
    )
    (run / "split.json").write_text(json.dumps({"classes": classes} if classes else {}))
    return run


def _tile_data(root: Path) -> dict:  # the data settings of the tiny tile classifier runs
    return {"root": str(root), "format": "deepcrack-tiles", "size": 16, "channels": 1, "tiles": {"tile": T}}


def _tile_classifier(tiles: dict) -> tuple:
    """(model, geometry, data, classes) of a tiny crack / no-crack AOIE-Net run."""
    return {"name": "aoie_net_resnet20", "width": 0.25}, {"in_channels": 1, "classes": 2}, tiles, ["no_crack", "crack"]


def _float_classifier(tiles: dict) -> tuple:
    """(model, geometry, data, classes) of a tiny full-precision crack / no-crack ResNet-20 run."""
    model = {"name": "resnet20", "width": 0.25, "stem_stride": 2}
    return model, {"in_channels": 1, "classes": 2}, tiles, ["no_crack", "crack"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cascade_runs")
    tiles = _tile_data(root)
    surface = {"root": str(root), "format": "deepcrack", "in_channels": 3}
    tiny_unet = {"name": "unet", "base_channels": 2, "depth": 2}
    out = {
        "classifier": _run(root, "clf", "classify", *_tile_classifier(tiles)),
        "three_classes": _run(
            root,
            "clf3",
            "classify",
            {"name": "resnet20", "width": 0.25},
            {"in_channels": 1, "classes": 3},
            {**tiles, "format": "folder", "tiles": None},
            ["a", "b", "c"],
        ),
        "segmenter": _run(root, "seg", "surface", tiny_unet, {"in_channels": 3, "classes": 1}, surface),
    }
    # the same architecture with other initial weights: an ensemble's second member
    out["classifier_b"] = _run(root, "clf_b", "classify", *_tile_classifier(tiles), seed=1)
    out["float_classifier"] = _run(root, "clf_float", "classify", *_float_classifier(tiles))
    (out["classifier"] / "operating_point.json").write_text(json.dumps({"threshold": 0.25}))
    images = root / "images"
    images.mkdir()
    rgb = np.random.default_rng(6).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(images / "big.png")
    Image.fromarray(rgb[..., 0]).save(images / "grey.png")
    Image.fromarray(rgb[:20, :30]).save(images / "small.png")
    (images / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    out["images"] = images
    return out


def test_onnx_runtime_gives_pytorchs_probabilities_and_is_the_default_for_full_precision_screens(runs, tmp_path):
    import shutil

    from crackscope.deploy.export import export_onnx

    float_run = runs["float_classifier"]
    eager = load_classifier(float_run, runtime="torch")
    default = load_classifier(float_run)
    assert (default.runtime, eager.runtime, load_classifier(runs["classifier"]).runtime) == ("onnx", "torch", "torch")
    assert default.logits_fn.source == "exported at load"  # the run has no export of its own
    tiles = torch.rand(12, 1, T, T, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(default(tiles), eager(tiles), atol=1e-5, rtol=0)
    # an export of the same weights is read, not made again; one of other weights is not used
    run = tmp_path / "clf_float"
    shutil.copytree(float_run, run)
    export_onnx(run)
    assert load_classifier(run, runtime="onnx").logits_fn.source == str(run / "export" / "model.onnx")
    other = _run(tmp_path, "other", "classify", *_float_classifier(_tile_data(tmp_path)), seed=5)
    shutil.copy(other / "model.safetensors", run / "model.safetensors")  # retrained in place
    retrained = load_classifier(run, runtime="onnx")
    assert retrained.logits_fn.source == "exported at load"
    torch.testing.assert_close(retrained(tiles), load_classifier(run, runtime="torch")(tiles), atol=1e-5, rtol=0)
    assert not torch.allclose(retrained(tiles), default(tiles), atol=1e-3)


def test_loaders_take_the_run_settings_and_refuse_the_wrong_runs(runs):
    clf = load_classifier(runs["classifier"])
    assert (clf.tile, clf.threshold, clf.channels, clf.input_size, clf.crack_index) == (T, 0.25, 1, (16, 16), 1)
    seg = load_segmenter(runs["segmenter"])
    assert seg.channels == 3 and seg.threshold == 0.5
    with pytest.raises(InputError, match="is a surface run, not an image classifier"):
        load_classifier(runs["segmenter"])
    with pytest.raises(InputError, match="3 classes"):
        load_classifier(runs["three_classes"])
    with pytest.raises(InputError, match="is a classify run, not an image segmentation model"):
        load_segmenter(runs["classifier"])


def test_packed_runtime_flags_the_same_tiles_as_pytorch(runs):
    torch_clf = load_classifier(runs["classifier"])
    packed = load_classifier(runs["classifier"], runtime="packed")
    assert packed.logits_fn is not torch_clf.logits_fn and type(packed.logits_fn).__name__ == "PackedResNet"
    tiles = torch.rand(12, 1, T, T, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(packed(tiles), torch_clf(tiles), atol=1e-4)
    with pytest.raises(InputError, match="--runtime 'tensorrt'"):
        load_classifier(runs["classifier"], runtime="tensorrt")
    with pytest.raises(InputError, match="3 classes"):  # checked before anything is packed
        load_classifier(runs["three_classes"], runtime="packed")


def test_an_ensemble_screens_with_the_mean_of_its_members_probabilities(runs, tmp_path):
    out = write_ensemble(tmp_path / "ens", [runs["classifier"], runs["classifier_b"]])
    assert sorted(p.name for p in out.iterdir()) == ["ensemble.json", "members", "split.json"]
    assert not (out / "members" / "0" / "operating_point.json").exists()  # the member's threshold is not the ensemble's
    (out / "operating_point.json").write_text(json.dumps({"threshold": 0.4, "window": 2 * T, "overlap": 0.0}))
    tiles = torch.rand(10, 1, T, T, generator=torch.Generator().manual_seed(3))
    a, b = load_classifier(runs["classifier"])(tiles), load_classifier(runs["classifier_b"])(tiles)
    assert not torch.allclose(a, b, atol=1e-3)  # two different screens
    for runtime in ("torch", "packed"):
        ens = load_classifier(out, runtime=runtime)
        assert isinstance(ens, ClassifierEnsemble) and len(ens.members) == 2
        assert (ens.tile, ens.channels, ens.threshold, ens.window, ens.overlap) == (T, 1, 0.4, 2 * T, 0.0)
        torch.testing.assert_close(ens(tiles), (a + b) / 2, atol=1e-4, rtol=0)
    # the cascade takes it as any classifier: its threshold and windows are the defaults
    result = inspect_image(_image(), load_classifier(out), Recorder())
    assert result.threshold == 0.4 and result.plan.window == 2 * T
    np.testing.assert_array_equal(result.flagged, result.tile_probability >= np.float32(0.4))


def test_bad_ensembles_are_one_line_and_leave_nothing_behind(runs, tmp_path):
    with pytest.raises(InputError, match="two or more"):
        write_ensemble(tmp_path / "one", [runs["classifier"]])
    with pytest.raises(InputError, match="3 classes"):
        write_ensemble(tmp_path / "three", [runs["classifier"], runs["three_classes"]])
    other = tmp_path / "other_split"
    shutil.copytree(runs["classifier_b"], other)
    (other / "split.json").write_text(json.dumps({"classes": ["no_crack", "crack"], "stems": {"val": ["x"]}}))
    with pytest.raises(InputError, match="another split"):
        write_ensemble(tmp_path / "mixed", [runs["classifier"], other])
    wide = _run(tmp_path, "wide", "classify", *_tile_classifier({**_tile_data(tmp_path), "tiles": {"tile": 2 * T}}))
    with pytest.raises(InputError, match=f"takes {2 * T}-px tiles .* members must agree"):
        write_ensemble(tmp_path / "mixed_tiles", [runs["classifier"], wide])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other_split", "wide"]  # nothing half-written
    ens = write_ensemble(tmp_path / "ens", [runs["classifier"], runs["classifier_b"]])
    with pytest.raises(InputError, match="exists"):
        write_ensemble(ens, [runs["classifier"], runs["classifier_b"]])
    with pytest.raises(InputError, match="is an ensemble itself"):
        write_ensemble(tmp_path / "nested", [ens, runs["classifier"]])
    spec = json.loads((ens / "ensemble.json").read_text())
    (ens / "ensemble.json").write_text(json.dumps({**spec, "members": ["members/0", "members/9"]}))
    with pytest.raises(InputError, match="members/9 is not a folder"):
        load_classifier(ens)
    shutil.copytree(wide, ens / "members" / "1", dirs_exist_ok=True)  # a member swapped for one of other tiles
    (ens / "ensemble.json").write_text(json.dumps(spec))
    with pytest.raises(InputError, match="members must agree"):
        load_classifier(ens)
    (ens / "ensemble.json").write_text("{not json")
    with pytest.raises(InputError, match="not a tile classifier ensemble"):
        load_classifier(ens)


def test_the_ensemble_command_writes_a_folder_inspect_image_takes(runs, tmp_path, cli):
    done = cli("ensemble", runs["classifier"], runs["classifier_b"], "--out", tmp_path / "ens")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "ens" / "ensemble.json").read_text())["members"] == ["members/0", "members/1"]
    again = cli("ensemble", runs["classifier"], runs["classifier_b"], "--out", tmp_path / "ens")
    assert again.returncode == 2 and again.stderr.strip().splitlines() == [
        f"error: --out {tmp_path / 'ens'} exists; choose a new folder"
    ]
    report = tmp_path / "report"
    done = cli(
        "inspect-image",
        runs["images"] / "big.png",
        "--classifier",
        tmp_path / "ens",
        "--segmenter",
        runs["segmenter"],
        "--out",
        report,
        "--runtime",
        "packed",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((report / "summary.json").read_text())
    assert summary["tiles"] == 12 and summary["threshold"] == 0.5  # no operating point chosen yet


def test_inspect_image_command_writes_mask_overlay_tiles_and_summary(runs, tmp_path, cli):
    out = tmp_path / "report"
    done = cli(
        "inspect-image",
        runs["images"] / "big.png",
        "--classifier",
        runs["classifier"],
        "--segmenter",
        runs["segmenter"],
        "--out",
        out,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "of 12 tiles of 32 px" in done.stdout
    mask = np.asarray(Image.open(out / "mask.png"))
    overlay = np.asarray(Image.open(out / "overlay.png"))
    assert mask.shape == (H, W) and set(np.unique(mask)) <= {0, 255} and overlay.shape == (H, W, 3)
    with open(out / "tiles.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["row", "col", "y0", "x0", "probability", "flagged", "followed"] and len(rows) == 12
    summary = json.loads((out / "summary.json").read_text())
    flagged = [r for r in rows if r["flagged"] == "1"]
    assert summary["flagged"] == len(flagged) and summary["tiles"] == 12 and summary["threshold"] == 0.25
    assert all(float(r["probability"]) >= 0.25 for r in flagged)  # the run's operating point was used
    assert (summary["height"], summary["width"], summary["crack_pixels"]) == (H, W, int((mask == 255).sum()))
    # the final region holds the flagged cells; the windows (T px, the default) that ran reach at most
    # into the neighbours of a flagged cell, so a cell [row * T, (row + 1) * T) x [col * T, (col + 1) * T)
    # with no flagged cell among its 8 neighbours (and itself) is background
    assert len(flagged) / 12 <= summary["segmented_fraction"] <= 1
    marked = {(int(r["row"]), int(r["col"])) for r in flagged}
    for r in rows:
        i, j = int(r["row"]), int(r["col"])
        if not any((i + a, j + b) in marked for a in (-1, 0, 1) for b in (-1, 0, 1)):
            assert not mask[i * T : (i + 1) * T, j * T : (j + 1) * T].any()


def test_the_windows_an_operating_point_was_chosen_for_are_the_defaults(runs, tmp_path):
    """operating_point.json may record the window and overlap its threshold was chosen for; then
    inspect-image uses them unless --window / --overlap say otherwise (else: the tile side, 0.25)."""
    clf = tmp_path / "clf"
    shutil.copytree(runs["classifier"], clf)
    (clf / "operating_point.json").write_text(json.dumps({"threshold": 0.25, "window": 48, "overlap": 0.0}))
    assert (load_classifier(clf).window, load_classifier(clf).overlap) == (48, 0.0)
    # the Python API takes the same defaults as the command line
    r = inspect_image(runs["images"] / "big.png", load_classifier(clf), load_segmenter(runs["segmenter"]), tile=T)
    assert (r.plan.window, r.plan.overlap, r.threshold) == (48, 0, 0.25)
    argv = ["inspect-image", str(runs["images"] / "big.png"), "--segmenter", str(runs["segmenter"])]
    cases = [((), clf, (48, 0)), (("--overlap", "0.5"), clf, (48, 24)), (("--window", "40"), clf, (40, 0))]
    cases.append(((), runs["classifier"], (T, 8)))  # no window recorded: the tile side and 25 %
    for k, (extra, classifier, (window, overlap_px)) in enumerate(cases):
        out = tmp_path / f"r{k}"
        assert main([*argv, "--classifier", str(classifier), "--out", str(out), *extra]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert (summary["window"], summary["overlap_px"], summary["threshold"]) == (window, overlap_px, 0.25)


def test_inspect_image_all_tiles_needs_no_classifier_and_packed_runs(runs, tmp_path, capsys):
    out = tmp_path / "all"
    assert (
        main(
            [
                "inspect-image",
                str(runs["images"] / "big.png"),
                "--segmenter",
                str(runs["segmenter"]),
                "--out",
                str(out),
                "--all-tiles",
                "--tile",
                "32",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "all-tiles" and summary["flagged"] == 12 and summary["classifier"] is None
    assert {r["probability"] for r in csv.DictReader(open(out / "tiles.csv"))} == {""}
    packed = tmp_path / "packed"
    assert (
        main(
            [
                "inspect-image",
                str(runs["images"] / "big.png"),
                "--segmenter",
                str(runs["segmenter"]),
                "--classifier",
                str(runs["classifier"]),
                "--runtime",
                "packed",
                "--out",
                str(packed),
            ]
        )
        == 0
    )
    assert json.loads((packed / "summary.json").read_text())["classifier_runtime"] == "packed"


BAD = [
    ("missing image", lambda r: ["nowhere.png"], "nowhere.png"),
    ("corrupt image", lambda r: [r["images"] / "corrupt.png"], "corrupt.png"),
    (
        "classifier is a segmenter",
        lambda r: [r["images"] / "big.png", "--classifier", r["segmenter"]],
        "is a surface run, not an image classifier",
    ),
    ("three-class classifier", lambda r: [r["images"] / "big.png", "--classifier", r["three_classes"]], "3 classes"),
    (
        "segmenter is a classifier",
        lambda r: [r["images"] / "big.png", "--segmenter", r["classifier"]],
        "is a classify run, not an image segmentation model",
    ),
    ("grey image, colour segmenter", lambda r: [r["images"] / "grey.png"], "greyscale"),
    ("bad threshold", lambda r: [r["images"] / "big.png", "--threshold", "1.5"], "--threshold"),
    (
        "neither a folder nor a shipped name",
        lambda r: [r["images"] / "big.png", "--segmenter", "cracks/no-such-model"],
        "no such run directory, model folder or shipped model",
    ),
]


@pytest.mark.parametrize("problem,args,named", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(runs, tmp_path, capsys, problem, args, named):
    given = [str(a) if a is not None else None for a in args(runs)]
    opts = {"--classifier": str(runs["classifier"]), "--segmenter": str(runs["segmenter"])}
    image, rest = given[0], given[1:]
    for key, value in zip(rest[::2], rest[1::2]):
        opts[key] = value
    argv = ["inspect-image", image, "--out", str(tmp_path / "out")]
    for key, value in opts.items():
        if value is not None:
            argv += [key, value]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and named in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_bad_input_from_a_real_process_has_no_traceback(runs, tmp_path, cli):
    done = cli(
        "inspect-image",
        runs["images"] / "corrupt.png",
        "--classifier",
        runs["classifier"],
        "--segmenter",
        runs["segmenter"],
        "--out",
        tmp_path / "out",
        timeout=300,
    )
    assert done.returncode == 2 and "corrupt.png" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# ---- the shipped DeepCrack models ---------------------------------------------------------------------------------
def test_shipped_models_share_one_split_and_screen_a_held_out_image():
    from crackscope.data.images import load_mask
    from crackscope.deploy.cascade import read_image

    clf, seg = load_classifier(SHIPPED / "tile_classifier"), load_segmenter(SHIPPED / "segmenter")
    stems = [json.loads((SHIPPED / m / "split.json").read_text())["stems"] for m in ("tile_classifier", "segmenter")]
    assert stems[0] == stems[1] and len(stems[0]["test"]) == 59
    assert not set(stems[0]["test"]) & (set(stems[0]["train"]) | set(stems[0]["val"]))
    op = json.loads((SHIPPED / "tile_classifier" / "operating_point.json").read_text())
    assert op["chosen_on"] == "validation" and clf.threshold == op[op["default"]]["threshold"] and clf.tile == 64
    stem = stems[0]["test"][0]  # a held-out image: 11112
    image = read_image(DEEPCRACK / "train_img" / f"{stem}.jpg")
    truth = load_mask(DEEPCRACK / "train_lab" / f"{stem}.png")[0] > 0
    r = inspect_image(image, clf, seg, tile=64, threshold=clf.threshold)
    base = segment_all_tiles(image, seg, tile=64)
    assert 0 < r.n_flagged < r.n_tiles == 54
    covered = np.zeros_like(truth)
    for (y0, y1, x0, x1), flagged in zip(r.grid.cells().tolist(), r.flagged):
        covered[y0:y1, x0:x1] = flagged
    assert r.region[covered].all()  # segmented as in the baseline: the flagged cells and more
    assert np.allclose(r.probability, np.where(r.region, base.probability, 0.0), atol=1e-5)
    assert (truth & covered).sum() >= 0.95 * truth.sum()  # the flagged tiles hold this image's cracks
    packed = load_classifier(SHIPPED / "tile_classifier", runtime="packed")  # the shipped packed file
    tiles = torch.rand(16, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(packed(tiles), clf(tiles), atol=1e-4)


# ---- the array contract (issue 21, item 5) ------------------------------------------------------------------------
def test_integer_arrays_and_floats_outside_0_1_are_refused_in_one_line_naming_them():
    from crackscope.deploy.cascade import overlay_cascade

    image = _image(5)  # float32 in [0, 1)
    eight_bit = np.round(image * 255).astype(np.uint8)
    for call in (
        lambda x: inspect_image(x, _constant(1.0), Recorder(), tile=T),
        lambda x: segment_all_tiles(x, Recorder(), tile=T),
        lambda x: to_channels(x, 1),
    ):
        for bad, named in (
            (eight_bit, r"dtype uint8 \(values 0\.\.255\)"),  # silently an empty mask before
            (torch.from_numpy(eight_bit.astype(np.int64)), "dtype int64"),
            (eight_bit > 127, "dtype bool"),
            (eight_bit.astype(np.float32), r"float32 image with values in \[0, 255\]"),
            (np.where(np.arange(W) == 3, -0.25, image).astype(np.float32), r"values in \[-0\.25, "),
            (np.where(image > 0.5, np.nan, image), "NaN or infinite"),
        ):
            with pytest.raises(InputError, match=named) as err:
                call(bad)
            assert "\n" not in str(err.value) and "[0, 1]" in str(err.value)
    r = segment_all_tiles(image, Recorder(), tile=T)
    with pytest.raises(InputError, match="dtype uint8"):
        overlay_cascade(eight_bit, r)
    # what the message says to do works, and float64 and tensors in [0, 1] are taken as before
    converted = segment_all_tiles(eight_bit / 255, Recorder(), tile=T)
    assert np.allclose(converted.probability, eight_bit[0] / 255, atol=1e-6)
    assert np.array_equal(segment_all_tiles(torch.from_numpy(image), Recorder(), tile=T).probability, r.probability)
    assert np.array_equal(segment_all_tiles(image.astype(np.float64), Recorder(), tile=T).probability, r.probability)


# ---- crack measurements in the report (issue 21, item 3) ---------------------------------------------------------
def test_overlay_labels_the_given_cracks_with_box_and_length():
    from crackscope.analysis.crack_measure import measure_cracks
    from crackscope.deploy.cascade import overlay_cascade

    image = np.zeros((1, H, W), dtype=np.float32)
    image[0, 50:53, 20:80] = 1.0  # a 60 x 3 crack in the lower half: its label goes above the box
    r = segment_all_tiles(image, Recorder(), tile=T)
    cracks = measure_cracks(r.mask, mm_per_pixel=0.5)
    assert len(cracks) == 1
    plain, labelled = overlay_cascade(image, r), overlay_cascade(image, r, cracks=cracks)
    c, cyan = cracks[0], (0, 230, 255)
    assert (labelled[c["y1"] - 1, c["x0"] : c["x1"]] == cyan).all()  # the box's bottom edge
    assert (labelled[c["y0"] : c["y1"], c["x1"] - 1] == cyan).all()  # and its right edge
    assert not (plain == cyan).all(-1).any()
    text = (labelled != plain).any(-1)[: c["y0"]]  # the label "#1 29.x mm" above the box
    assert text.sum() > 20


def _synthetic_cracked_photo(path: Path) -> None:
    """A 192 x 128 grey 'concrete' texture with two dark drawn cracks, 3-4 px wide."""
    from PIL import ImageDraw, ImageFilter

    rng = np.random.default_rng(0)
    base = (150 + 20 * rng.standard_normal((128, 192))).clip(0, 255)
    rgb = np.stack([base, base * 0.97, base * 0.93], -1).astype(np.uint8)
    img = Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(0.7))
    draw = ImageDraw.Draw(img)
    draw.line([(10, 20), (60, 35), (110, 30), (180, 60)], fill=(40, 38, 35), width=4)
    draw.line([(40, 110), (70, 80), (90, 70)], fill=(45, 42, 40), width=3)
    img.save(path)


def test_inspect_image_measures_the_cracks_in_mm_with_the_shipped_models(tmp_path, cli):
    from crackscope.analysis.crack_measure import CRACK_COLUMNS, MM_COLUMNS, measure_cracks

    _synthetic_cracked_photo(tmp_path / "photo.png")
    out = tmp_path / "report"
    done = cli(
        "inspect-image",
        tmp_path / "photo.png",
        "--classifier",
        SHIPPED / "tile_classifier",
        "--segmenter",
        SHIPPED / "segmenter",
        "--mm-per-pixel",
        "0.5",
        "--out",
        out,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "cracks.csv",
        "mask.png",
        "overlay.png",
        "summary.json",
        "tiles.csv",
    ]
    with open(out / "cracks.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(CRACK_COLUMNS) + list(MM_COLUMNS)
    mask = np.asarray(Image.open(out / "mask.png")) > 0
    summary = json.loads((out / "summary.json").read_text())
    cracks = summary["cracks"]
    assert len(rows) == cracks["count"] >= 1 and cracks["mm_per_pixel"] == 0.5 and cracks["connectivity"] == 8
    assert f"{cracks['count']} cracks" in done.stdout
    lengths = [float(r["length_px"]) for r in rows]
    assert lengths == sorted(lengths, reverse=True) and [int(r["index"]) for r in rows] == list(range(1, len(rows) + 1))
    for r in rows:
        assert float(r["length_mm"]) == pytest.approx(float(r["length_px"]) * 0.5, rel=1e-5)
        assert float(r["max_width_mm"]) == pytest.approx(float(r["max_width_px"]) * 0.5, rel=1e-5)
        assert float(r["mean_width_mm"]) == pytest.approx(float(r["mean_width_px"]) * 0.5, rel=1e-5)
        assert float(r["area_mm2"]) == pytest.approx(int(r["area_px"]) * 0.25, rel=1e-5)
        y0, x0, y1, x1 = (int(r[k]) for k in ("y0", "x0", "y1", "x1"))
        assert mask[y0:y1, x0:x1].any() and not mask[y0:y1, x0:x1].all()
    # the rows are the measurements of the written mask; the areas add up to its crack pixels
    again = measure_cracks(mask, mm_per_pixel=0.5)
    assert [int(r["area_px"]) for r in rows] == [c["area_px"] for c in again]
    assert [float(r["length_px"]) for r in rows] == pytest.approx([c["length_px"] for c in again], rel=1e-5)
    assert sum(int(r["area_px"]) for r in rows) == cracks["total_area_px"] == summary["crack_pixels"] == mask.sum()
    assert cracks["total_length_mm"] == pytest.approx(sum(lengths) * 0.5, rel=1e-4)
    assert [c["index"] for c in cracks["largest"]] == list(range(1, min(5, len(rows)) + 1))
    # the drawn cracks are found, as a few long components (tile borders may cut them)
    assert cracks["total_length_px"] > 100 and lengths[0] > 25


@pytest.mark.parametrize("value", ["0", "-0.5", "nan"])
def test_a_bad_mm_per_pixel_is_one_line_exit_2_and_writes_nothing(runs, tmp_path, capsys, value):
    argv = ["inspect-image", str(runs["images"] / "big.png"), "--classifier", str(runs["classifier"])]
    argv += ["--segmenter", str(runs["segmenter"]), "--out", str(tmp_path / "out"), "--mm-per-pixel", value]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "--mm-per-pixel" in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_without_mm_per_pixel_cracks_csv_has_pixel_columns_only_even_when_empty(runs, tmp_path):
    out = tmp_path / "px"
    argv = ["inspect-image", str(runs["images"] / "big.png"), "--segmenter", str(runs["segmenter"])]
    assert main(argv + ["--classifier", str(runs["classifier"]), "--threshold", "1", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["flagged"] == 0 and summary["cracks"]["count"] == 0 and summary["cracks"]["mm_per_pixel"] is None
    assert (out / "cracks.csv").read_text().splitlines() == [
        "index,length_px,max_width_px,mean_width_px,area_px,y0,x0,y1,x1"
    ]


# ---- tiled inference: overlapping windows, blending, any size, --scale, folders (issue 21, item 2) ----------------
class BoxNet:
    """A fully convolutional stand-in for a segmenter with a strong window-edge effect: the crack
    probability is a sigmoid of the 5 x 5 mean darkness, zero-padded, so within 2 px of a window's
    edge it sees darkness 0 beyond it. Each window is run alone, so a window's output does not
    depend on what else is in its batch (the condition for the cascade's exact equality)."""

    channels, threshold, halo = 1, 0.5, 2

    def __init__(self):
        self.windows = []

    @staticmethod
    def whole(x: torch.Tensor) -> torch.Tensor:  # (N, C, h, w) -> (N, h, w)
        dark = 1 - x[:, :1].float()
        box = torch.nn.functional.avg_pool2d(dark, 5, stride=1, padding=2, count_include_pad=True)
        return torch.sigmoid(12 * (box - 0.4))[:, 0]

    def __call__(self, tiles):
        self.windows.extend(t.clone() for t in tiles)
        return torch.cat([self.whole(t[None]) for t in tiles])


def _cracked(h, w, seed=0):
    """A grey (1, h, w) texture around 0.75 with a 3-px dark horizontal crack and a diagonal one."""
    rng = np.random.default_rng(seed)
    x = (0.75 + 0.05 * rng.standard_normal((h, w))).clip(0, 1).astype(np.float32)
    x[h // 2 - 1 : h // 2 + 2, :] = 0.1
    for i in range(min(h, w)):
        x[i, max(i - 1, 0) : i + 2] = 0.15
    return x[None]


def test_blending_weights_are_a_partition_of_unity_with_raised_cosine_ramps():
    from crackscope.deploy.tiling import plan_windows, ramp

    # by hand: over an overlap of 4 px the falling window weighs cos^2 and the rising one sin^2 of
    # pi/2 (j + 1/2) / 4, j = 0..3: 0.038, 0.309, 0.691, 0.962 rising; the two sum to 1
    assert ramp(4) == pytest.approx(np.sin(np.pi / 16 * np.array([1, 3, 5, 7])) ** 2)
    assert ramp(4) == pytest.approx([0.0381, 0.3087, 0.6913, 0.9619], abs=1e-4)
    assert ramp(4) + ramp(4)[::-1] == pytest.approx(np.ones(4))
    plan = plan_windows(40, 40, 16, 0.25)  # 4 px overlap, stride 12: windows at 0, 12, 24 -> canvas 40, no padding
    assert plan.ys == (0, 12, 24) and plan.canvas == (40, 40) and plan.overlap == 4
    first, middle, last = (plan.y_profiles[k] for k in range(3))
    assert first.tolist() == pytest.approx([1] * 12 + list(ramp(4)[::-1]))  # the image border is not tapered
    assert middle.tolist() == pytest.approx(list(ramp(4)) + [1] * 8 + list(ramp(4)[::-1]))
    assert last.tolist() == pytest.approx(list(ramp(4)) + [1] * 12)
    assert plan.weight(4) == pytest.approx(np.outer(middle, middle))  # separable: window (1, 1)
    for h, w, window, overlap in [(40, 40, 16, 0.25), (70, 100, 32, 0.25), (384, 544, 64, 0.25), (97, 61, 32, 0.5)]:
        plan = plan_windows(h, w, window, overlap)
        assert plan.canvas[0] >= h and plan.canvas[1] >= w and plan.canvas[0] - h < window - plan.overlap
        assert np.abs(plan.weight_sum() - 1).max() < 1e-6  # sum_k w_k = 1 on the whole canvas
        assert all((plan.weight(k) > 0).all() for k in range(len(plan)))  # so the supports are whole windows
    # overlap 0: the stitched tiling, each pixel from exactly one window with weight 1
    plan = plan_windows(70, 100, 32, 0)
    assert plan.ys == (0, 32, 38) and plan.xs == (0, 32, 64, 68) and plan.canvas == (70, 100)
    assert np.array_equal(plan.weight_sum(), np.ones((70, 100)))


def test_blended_windows_match_one_pass_over_the_whole_image_and_show_no_seam():
    """A crack crossing window borders: blending is within a bound set by the weights of the
    window-edge pixels of the one-pass result, while stitching without overlap shows the seam."""
    from crackscope.deploy.tiling import plan_windows

    window, overlap = 32, 0.25  # 8 px overlap, stride 24
    h, w = 32 + 24 * 3, 32 + 24 * 4  # 104 x 128: the windows tile it exactly, nothing padded
    image = _cracked(h, w)
    whole = BoxNet.whole(torch.from_numpy(image)[None])[0].numpy()
    blended = segment_all_tiles(image, BoxNet(), tile=32, window=window, overlap=overlap).probability
    stitched = segment_all_tiles(image, BoxNet(), tile=32, window=window, overlap=0).probability
    plan = plan_windows(h, w, window, overlap)
    assert plan.canvas == (h, w)
    # Bound: a window's output equals the one-pass output except within BoxNet.halo px of its edges
    # inside the image (zero padding there instead of image). The blend is sum_k w_k p_k with
    # sum_k w_k = 1 and |p_k - p| <= 1, so |blend - p| <= sum of the weights of the windows for
    # which the pixel is such an edge pixel. Those weights are ramp values at j < halo:
    # sin^2(pi/2 * 1.5 / 8) = 0.084 at most, one window per axis: the bound is <= 0.17.
    tainted = np.zeros((h, w))
    for k, (y, x) in enumerate(plan.origins.tolist()):
        edge = np.zeros((window, window), bool)
        if y > 0:
            edge[: BoxNet.halo] = True
        if y + window < h:
            edge[-BoxNet.halo :] = True
        if x > 0:
            edge[:, : BoxNet.halo] = True
        if x + window < w:
            edge[:, -BoxNet.halo :] = True
        tainted[y : y + window, x : x + window] += plan.weight(k) * edge
    error = np.abs(blended - whole)
    assert (error <= tainted + 1e-6).all() and tainted.max() < 0.17
    assert error.max() < 0.05  # in fact: the edge effect (up to ~0.8 here) times a weight below 0.085
    # stitching without overlap takes each pixel from one window, edge effect and all
    assert np.abs(stitched - whole).max() > 0.3 > 6 * error.max()
    # along the crack's middle row, across every vertical window border (24, 32, 48, 56, ...), the step
    # from one pixel to the next is the one-pass step up to the blending error: no seam
    row, borders = h // 2, sorted({x for x in plan.xs[1:]} | {x + window for x in plan.xs[:-1]})
    step = lambda p: p[row, borders] - p[row, [b - 1 for b in borders]]  # noqa: E731
    assert np.abs(step(blended) - step(whole)).max() <= 2 * error[row].max() + 1e-6 < 0.05
    # stitched tiles: at their borders (32, 64, 96) the crack dips by ~0.5 and its mask breaks there
    assert (np.abs((stitched - whole)[row, [32, 64, 96]]) > 0.4).all()
    inner = slice(BoxNet.halo, w - BoxNet.halo)  # (the one-pass run also sees zeros beyond the image)
    assert (whole[row, inner] > 0.5).all() and (blended[row, inner] > 0.5).all()
    assert not (stitched[row, inner] > 0.5).all()


@pytest.mark.parametrize(
    "window,overlap,scale", [(48, 0.25, 1.0), (32, 0.5, 1.0), (48, 0.0, 1.0), (32, 0.25, 1.7), (48, 0.25, 0.6)]
)
def test_the_cascade_mask_equals_full_segmentation_inside_flagged_tiles_exactly(window, overlap, scale):
    from crackscope.deploy.tiling import windows_touching

    image = _cracked(150, 200, seed=1)

    def classifier(tiles):  # an isolated tile, a chain, the border-aligned last row / column ...
        return torch.tensor([1.0 if k % 7 in (0, 3, 4) or k == len(tiles) - 1 else 0.0 for k in range(len(tiles))])

    seg, every = BoxNet(), BoxNet()
    r = inspect_image(image, classifier, seg, tile=32, window=window, overlap=overlap, scale=scale, batch_size=5)
    full = segment_all_tiles(image, every, tile=32, window=window, overlap=overlap, scale=scale, batch_size=7)
    assert r.probability.shape == full.probability.shape == (150, 200)
    assert 0 < r.n_flagged < r.n_tiles and r.windows_segmented < full.windows_segmented == len(full.plan)
    inside = np.zeros((150, 200), bool)
    for (y0, y1, x0, x1), f in zip(r.cells().tolist(), r.flagged):
        inside[y0:y1, x0:x1] |= f
    # kept: the flagged cells and beyond them wherever nothing skipped would have changed the value
    region = r.region
    assert region.shape == (150, 200) and region[inside].all()
    assert np.array_equal(r.probability[region], full.probability[region])  # bit for bit
    assert np.array_equal(r.mask[region], full.mask[region]) and r.mask[inside].any()
    assert not r.probability[~region].any() and not r.mask[~region].any()  # elsewhere: nothing
    if scale == 1.0:  # the segmenter saw exactly the windows meeting a flagged cell ...
        need = np.zeros((150, 200), bool)
        need[inside] = True
        ran = windows_touching(r.plan, need)
        assert r.windows_segmented == len(ran) == len(seg.windows)
        # ... and the region is, pixel by pixel, where every window of nonzero weight ran
        weighs = np.zeros((len(r.plan), *r.plan.canvas), bool)
        for k, (y, x) in enumerate(r.plan.origins.tolist()):
            weighs[k, y : y + window, x : x + window] = r.plan.weight(k) > 0
        skipped = np.setdiff1d(np.arange(len(r.plan)), ran)
        assert np.array_equal(region, ~weighs[skipped].any(0)[:150, :200])
        if window > 32:  # windows larger than a tile: the parts of theirs that no skipped window reaches
            assert region.sum() > inside.sum()
    else:  # resampling back reads a few pixels around each: the region stays inside the windows that ran
        assert inside.sum() <= region.sum() < 150 * 200
    # the cells partition the image at its own size, whatever the scale
    cover = np.zeros((150, 200), int)
    for y0, y1, x0, x1 in r.cells().tolist():
        cover[y0:y1, x0:x1] += 1
    assert (cover == 1).all()


def test_the_cascade_equals_full_segmentation_with_a_real_network_one_window_per_call():
    from crackscope.deploy.cascade import TileSegmenter
    from crackscope.models import create

    torch.manual_seed(0)
    net = create("unet", in_channels=3, classes=1, base_channels=2, depth=2).eval()
    image = _image(7, channels=3)
    flags = lambda tiles: torch.tensor([float(k in (1, 6, 11)) for k in range(len(tiles))])  # noqa: E731
    for batch in (1, 64):
        seg = TileSegmenter(net, channels=3, threshold=0.5, batch_size=batch)
        r = inspect_image(image, flags, seg, tile=T, batch_size=batch)
        full = segment_all_tiles(image, seg, tile=T, batch_size=batch)
        inside = r.region
        for (y0, y1, x0, x1), f in zip(r.cells().tolist(), r.flagged):
            assert inside[y0:y1, x0:x1].all() or not f
        if batch == 1:  # each window alone in its call: the same computation, the same bits
            assert np.array_equal(r.probability[inside], full.probability[inside])
        else:  # other batches may round differently inside the network
            assert np.allclose(r.probability[inside], full.probability[inside], atol=1e-6)
        assert not r.probability[~inside].any()


def test_images_of_any_size_are_reflect_padded_and_cropped_back():
    image = _cracked(20, 30)
    seg = Recorder()
    r = segment_all_tiles(image, seg, tile=64)  # smaller than one tile and one window
    assert r.probability.shape == (20, 30) and r.n_tiles == 1 and r.windows_segmented == 1
    assert np.array_equal(r.probability, image[0])  # the identity segmenter: the crop of the padded window
    window = seg.calls[0][0, 0].numpy()
    assert window.shape == (64, 64) and np.array_equal(window[:20, :30], image[0])
    assert np.array_equal(window[20:22, :30], image[0, [18, 17]])  # reflected, not the border repeated
    r = inspect_image(image, _constant(0.9), BoxNet(), tile=64, threshold=0.5)
    assert r.n_flagged == 1 and r.mask.shape == (20, 30) and r.mask[10, 2:].all()  # the crack across it
    for h, w in ((1, 1), (5, 200), (65, 64), (129, 97)):
        x = np.random.default_rng(h).random((3, h, w)).astype(np.float32)
        p = segment_all_tiles(x, Recorder(channels=3), tile=64).probability
        assert p.shape == (h, w) and np.allclose(p, x[0], atol=1e-6)


@pytest.mark.parametrize("scale", [2.5, 0.4])
def test_scale_resamples_the_image_and_the_mask_back_to_its_own_size(scale):
    yy, xx = np.mgrid[0:70, 0:100].astype(np.float32)
    image = ((yy / 69 + xx / 99) / 2)[None]  # a smooth ramp in [0, 1]: resampling keeps it
    seg = Recorder()
    r = segment_all_tiles(image, seg, tile=T, scale=scale)
    hs, ws = round(70 * scale), round(100 * scale)
    assert r.scaled_size == (hs, ws) and r.scale == scale and r.probability.shape == r.mask.shape == (70, 100)
    assert r.plan.height == hs and r.plan.width == ws and r.grid.height == max(hs, T)
    assert all(c.shape[-2:] == (T, T) for c in seg.calls) and sum(map(len, seg.calls)) == len(r.plan)
    assert np.abs(r.probability - image[0]).max() < 0.02  # identity segmenter: the round trip returns the image
    s = r.summary()
    assert (s["height"], s["width"], s["scale"], s["scaled_size"]) == (70, 100, scale, [hs, ws])
    with pytest.raises(InputError, match="scale"):
        segment_all_tiles(image, seg, tile=T, scale=0)
    with pytest.raises(InputError, match="overlap"):
        segment_all_tiles(image, seg, tile=T, overlap=0.6)


def test_small_images_and_scale_from_the_command_line(runs, tmp_path):
    out = tmp_path / "small"
    argv = ["inspect-image", str(runs["images"] / "small.png"), "--segmenter", str(runs["segmenter"])]
    assert main(argv + ["--classifier", str(runs["classifier"]), "--threshold", "0", "--out", str(out)]) == 0
    assert np.asarray(Image.open(out / "mask.png")).shape == (20, 30)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["tiles"], summary["flagged"], summary["windows_segmented"]) == (1, 1, 1)
    argv = ["inspect-image", str(runs["images"] / "big.png"), "--segmenter", str(runs["segmenter"]), "--all-tiles"]
    scaled = tmp_path / "scaled"
    opts = ["--scale", "1.5", "--window", "48", "--overlap", "0.5", "--batch", "3", "--out", str(scaled)]
    assert main(argv + opts) == 0
    summary = json.loads((scaled / "summary.json").read_text())
    assert np.asarray(Image.open(scaled / "mask.png")).shape == (H, W)
    assert summary["scaled_size"] == [105, 150] and (summary["window"], summary["overlap_px"]) == (48, 24)
    assert summary["windows"] == summary["windows_segmented"] == 4 * 6  # 105 -> 120 (24 px stride), 150 -> 168


def test_a_folder_is_inspected_image_by_image_with_a_summary_and_the_unusable_ones_skipped(runs, tmp_path, capsys):
    out = tmp_path / "folder"
    argv = ["inspect-image", str(runs["images"]), "--segmenter", str(runs["segmenter"]), "--out", str(out)]
    assert main(argv + ["--classifier", str(runs["classifier"]), "--mm-per-pixel", "0.5"]) == 0
    captured = capsys.readouterr()
    assert "2 of 4 images inspected, 2 skipped" in captured.out
    assert "skipped: cannot read image" in captured.err and "greyscale" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["big", "index.html", "skipped.txt", "small", "summary.csv"]
    for name in ("big", "small"):
        assert sorted(p.name for p in (out / name).iterdir()) == sorted(
            ["mask.png", "overlay.png", "tiles.csv", "cracks.csv", "summary.json"]
        )
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "file",
        "output",
        "width",
        "height",
        "tiles",
        "flagged",
        "flagged_fraction",
        "windows_segmented",
        "crack_pixels",
        "crack_count",
        "total_length_px",
        "max_width_px",
        "total_length_mm",
        "max_width_mm",
        "time_s",
    ]
    assert [(r["output"], r["width"], r["height"]) for r in rows] == [("big", "100", "70"), ("small", "30", "20")]
    for r in rows:  # each row is its image's summary.json
        s = json.loads((out / r["output"] / "summary.json").read_text())
        assert int(r["crack_pixels"]) == s["crack_pixels"] and int(r["crack_count"]) == s["cracks"]["count"]
        assert float(r["flagged_fraction"]) == s["flagged_fraction"] and float(r["time_s"]) > 0
    skipped = (out / "skipped.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in skipped] == [str(runs["images"] / n) for n in ("corrupt.png", "grey.png")]


BAD_OPTIONS = [
    (["--overlap", "0.6"], "--overlap"),
    (["--overlap", "-0.1"], "--overlap"),
    (["--scale", "0"], "--scale"),
    (["--scale", "nan"], "--scale"),
    (["--scale", "100"], "--scale"),
    (["--window", "0"], "--window"),
    (["--batch", "0"], "--batch"),
    (["--tile", "0"], "--tile"),
    (["--threshold", "2"], "--threshold"),
    (["--mm-per-pixel", "-1"], "--mm-per-pixel"),
]


@pytest.mark.parametrize("target", ["image", "folder"])
@pytest.mark.parametrize("opts,named", BAD_OPTIONS, ids=[" ".join(b[0]) for b in BAD_OPTIONS])
def test_bad_options_for_an_image_or_a_folder_are_one_line_exit_2_and_write_nothing(
    runs, tmp_path, capsys, target, opts, named
):
    source = runs["images"] / "big.png" if target == "image" else runs["images"]
    argv = [
        "inspect-image",
        str(source),
        "--classifier",
        str(runs["classifier"]),
        "--segmenter",
        str(runs["segmenter"]),
    ]
    code = main(argv + ["--out", str(tmp_path / "out"), *opts])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and named in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_a_folder_with_no_usable_image_is_one_line_exit_2_and_writes_nothing(runs, tmp_path, capsys):
    empty, broken = tmp_path / "empty", tmp_path / "broken"
    empty.mkdir()
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not an image")
    (broken / "notes.txt").write_text("not an image either, and not listed")
    opts = ["--classifier", str(runs["classifier"]), "--segmenter", str(runs["segmenter"])]
    for folder, named, lines in ((empty, "no image files found", 1), (broken, "none of the 1 images could be used", 2)):
        code = main(["inspect-image", str(folder), *opts, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2 and named in err and str(folder) in err, err
        assert len(err.strip().splitlines()) == lines and "Traceback" not in err  # "skipped: ..." lines, the error
        assert not (tmp_path / "out").exists()


def test_standardised_input_uses_the_whole_images_statistics_in_every_window():
    """A pixel-wise network (1 x 1 convolutions) behind per-image standardisation: on the whole
    image in one call its output at a pixel depends on that pixel and the image's mean and std
    only, so segmenting windows must give exactly that whatever the window, overlap or flags. A
    window standardised with its own statistics (the model called on it alone) would not."""
    from crackscope.deploy.cascade import TileSegmenter
    from crackscope.nn.input_norm import StandardizedInput

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.Tanh(), torch.nn.Conv2d(4, 1, 1))
    seg = TileSegmenter(StandardizedInput(net).eval(), channels=3, threshold=0.5)
    image = np.random.default_rng(3).random((3, 90, 130)).astype(np.float32)
    image[:, :, :40] *= 0.3  # a dark left part: its windows' own statistics differ from the image's
    x = torch.from_numpy(image)
    mean = x.mean(dim=(1, 2), keepdim=True)  # by hand: per channel mean, one std over all of it
    std = (x - mean).pow(2).mean().sqrt()
    with torch.no_grad():
        whole = torch.sigmoid(net(((x - mean) / std)[None]))[0, 0].numpy()
    for window, overlap in ((32, 0.0), (48, 0.25)):
        full = segment_all_tiles(image, seg, tile=32, window=window, overlap=overlap)
        np.testing.assert_allclose(full.probability, whole, atol=2e-6)
        flags = lambda t: torch.tensor([float(k % 3 == 0) for k in range(len(t))])  # noqa: E731
        r = inspect_image(image, flags, seg, tile=32, window=window, overlap=overlap)
        np.testing.assert_allclose(r.probability[r.region], whole[r.region], atol=2e-6)
    # each 32-px window standardised on its own is visibly different
    alone = seg(x[None, :, :32, :32])[0].numpy()
    assert np.abs(alone - whole[:32, :32]).max() > 0.01
