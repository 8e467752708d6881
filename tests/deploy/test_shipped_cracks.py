"""The shipped crack models for other people's photos (weights/cracks/, trained on DeepCrack and
Crack500): one split shared by both models, operating points chosen on validation images only,
recorded metrics equal to a fresh evaluation of the held-out images, the input standardisation's
promise (a photo at half the exposure gives the same mask), and the cascade on a held-out photo of
each dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crackscope.data.images import load_image
from crackscope.deploy.cascade import inspect_image, load_classifier, load_segmenter, segment_all_tiles
from crackscope.engine.runs import load_run
from crackscope.engine.surface import evaluate_surface_run, predict_probability, surface_dataset

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "src" / "crackscope" / "weights" / "cracks"
SHARED = ROOT / ".." / "shared" / "datasets"
DATA = {"deepcrack": SHARED / "DeepCrack", "crack500": SHARED / "Crack500"}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _split(model: str) -> dict:
    return json.loads((SHIPPED / model / "split.json").read_text())["stems"]


def test_both_models_share_one_split_and_chose_their_thresholds_on_validation_images():
    seg, clf = _split("segmenter"), _split("tile_classifier")
    assert seg == clf
    for part in ("train", "val", "test"):
        assert {s.split("/", 1)[0] for s in seg[part]} == {"deepcrack", "crack500"}
    assert not set(seg["test"]) & (set(seg["train"]) | set(seg["val"]))
    point = json.loads((SHIPPED / "segmenter" / "operating_point.json").read_text())
    assert point["chosen_on"] == "validation split" and point["n_images"] == len(seg["val"])
    assert load_segmenter(SHIPPED / "segmenter").threshold == point["threshold"]
    op = json.loads((SHIPPED / "tile_classifier" / "operating_point.json").read_text())
    # the classifier's: on survey-like images made of those validation photos (choose_operating_point --survey 20)
    assert op["chosen_on"] == "survey-like images: 20 mosaics of 1024 px from the validation photos"
    assert op["n_images"] == 20 and op["tile"] == op["window"] == 128 and op["overlap"] == 0


@pytest.mark.parametrize("name", sorted(DATA))
def test_recorded_metrics_equal_a_fresh_evaluation_of_the_held_out_images(name, tmp_path):
    recorded = json.loads((SHIPPED / "segmenter" / "metrics.json").read_text())["per_class"][name]
    fresh = evaluate_surface_run(SHIPPED / "segmenter", DATA[name], tmp_path)  # its test part, by the split
    assert fresh["subset"] == "test split" and fresh["n_images"] == recorded["n_images"]
    for key in ("f1", "precision", "recall", "iou_defect"):
        assert fresh[key] == pytest.approx(recorded[key], abs=1e-9), key


def test_half_the_exposure_gives_the_same_crack_probability():
    """Per-image standardisation: x and 0.5 x reach the network as the same input (a pure gain is
    divided out), so the probability agrees up to float rounding; the DeepCrack-only model has no
    such normalisation and changes."""
    cfg, model, _ = load_run(SHIPPED / "segmenter")
    stem = _split("segmenter")["test"][-1].split("/", 1)[1]  # a held-out Crack500 photo
    ds = surface_dataset(cfg.data, root=DATA["crack500"], format="crack500", stems=[stem])
    image = load_image(ds.image_paths[0], 3)
    bright = predict_probability(model, image, None)
    dark = predict_probability(model, image * np.float32(0.5), None)
    assert np.abs(bright - dark).max() < 1e-3
    assert ((bright > 0.5) != (dark > 0.5)).mean() < 1e-4


@pytest.mark.parametrize("name", sorted(DATA))
def test_the_cascade_segments_flagged_tiles_as_full_segmentation_does(name):
    from crackscope.data.images import load_mask
    from crackscope.data.tiles import extract_tiles
    from crackscope.deploy.cascade import to_channels

    clf, seg = load_classifier(SHIPPED / "tile_classifier"), load_segmenter(SHIPPED / "segmenter")
    stem = next(s for s in _split("segmenter")["test"] if s.startswith(f"{name}/")).split("/", 1)[1]
    cfg = load_run(SHIPPED / "segmenter")[0]
    ds = surface_dataset(cfg.data, root=DATA[name], format=name, stems=[stem])
    image = load_image(ds.image_paths[0], 3)
    truth = load_mask(ds.mask_paths[0])[0] > 0
    t = clf.tile  # 128: the classifier screens the segmentation windows themselves
    r = inspect_image(image, clf, seg, tile=t, threshold=clf.threshold, window=t, overlap=0.25)
    base = segment_all_tiles(image, seg, tile=t, window=t, overlap=0.25)
    assert 0 < r.n_flagged < r.n_tiles
    covered = np.zeros_like(truth)
    for (y0, y1, x0, x1), flagged in zip(r.grid.cells().tolist(), r.flagged):
        covered[y0:y1, x0:x1] = flagged
        if flagged:  # the same windows, batched with others: equal up to PyTorch's float rounding per batch
            np.testing.assert_allclose(
                r.probability[y0:y1, x0:x1], base.probability[y0:y1, x0:x1], rtol=1e-4, atol=1e-6
            )
    assert (truth & covered).sum() >= 0.9 * truth.sum()  # the flagged tiles hold most of this photo's cracks
    # the screen runs in ONNX Runtime from its shipped graph (made from these weights), as PyTorch runs it
    assert clf.runtime == "onnx" and clf.logits_fn.source == str(SHIPPED / "tile_classifier" / "model.onnx")
    tiles = extract_tiles(to_channels(image, 1), r.grid.origins, t)
    eager = load_classifier(SHIPPED / "tile_classifier", runtime="torch")
    torch.testing.assert_close(clf(tiles), eager(tiles), atol=1e-5, rtol=0)
    # the 1-bit screen kept for --runtime packed: its shipped packed file gives its PyTorch probabilities
    one_bit = load_classifier(SHIPPED / "tile_classifier_1bit")
    packed = load_classifier(SHIPPED / "tile_classifier_1bit", runtime="packed")
    assert one_bit.tile == packed.tile == t and _split("tile_classifier_1bit") == _split("tile_classifier")
    tiles = torch.rand(16, 1, t, t, generator=torch.Generator().manual_seed(3))
    gap = (packed(tiles) - one_bit(tiles)).abs()
    # equal up to PyTorch's float32 rounding: on a CPU whose float kernels round differently from the
    # one the file was packed on, an activation within a rounding error of its threshold can take the
    # other bit and move that tile's probability by about 0.01 (an AMD EPYC: 1 tile of these 16)
    assert int((gap <= 1e-4).sum()) >= 15 and float(gap.max()) <= 0.05


def test_the_tile_classifier_flags_the_same_tiles_at_half_the_exposure_or_contrast():
    """Each tile is standardised before the network (model.input_norm): a gain, or a contrast change
    about a grey level, divides out of every tile whose standard deviation stays above the 0.03 floor
    (std >= 0.08 as taken, so >= 0.04 after halving). It does so up to the 8-bit grey conversion, and
    a 1-bit network may flip at such a rounding, so the flags of those tiles of a held-out photo of
    each dataset that are not near a tie (probability at least 0.15 from the threshold) must agree on
    95 % or more, not all. The operating point records its windows."""
    from crackscope.data.tiles import extract_tiles, tile_grid
    from crackscope.deploy.cascade import to_channels

    clf = load_classifier(SHIPPED / "tile_classifier")
    op = json.loads((SHIPPED / "tile_classifier" / "operating_point.json").read_text())
    assert (clf.window, clf.overlap) == (op["window"], op["overlap"])
    cfg = load_run(SHIPPED / "segmenter")[0]
    agree = []
    for name in sorted(DATA):
        stem = next(s for s in _split("segmenter")["test"] if s.startswith(f"{name}/")).split("/", 1)[1]
        image = load_image(surface_dataset(cfg.data, root=DATA[name], format=name, stems=[stem]).image_paths[0], 3)
        grid = tile_grid(*image.shape[1:], 64)
        tiles = extract_tiles(to_channels(image, 1), grid.origins, 64)
        p = clf(tiles).numpy()
        textured = (tiles.flatten(1).std(1).numpy() >= 0.08) & (np.abs(p - clf.threshold) >= 0.15)
        as_taken = p >= clf.threshold
        assert textured.any() and 0 < as_taken.sum() < len(grid)
        for changed in (image * 0.5, (image - image.mean()) * 0.5 + image.mean()):
            x = to_channels(changed.astype(np.float32), 1)
            flags = clf(extract_tiles(x, grid.origins, 64)).numpy() >= clf.threshold
            agree.append((flags == as_taken)[textured])
    assert np.concatenate(agree).mean() >= 0.95


def test_recorded_masks_are_the_held_out_photos_segmented_at_the_operating_point():
    """engine.surface.recorded_masks against the files read directly: the first test stem of
    split.json, its mask file thresholded at 128 (DeepCrack's RGB labels), and the model's
    probability at operating_point.json's threshold."""
    from crackscope.engine.surface import recorded_masks

    threshold, masks = recorded_masks(SHIPPED / "segmenter", "test")
    assert threshold == json.loads((SHIPPED / "segmenter" / "operating_point.json").read_text())["threshold"]
    stem, label, predicted = next(masks)
    source, name = _split("segmenter")["test"][0].split("/", 1)
    assert stem == f"{source}/{name}"
    cfg, model, _ = load_run(SHIPPED / "segmenter")
    ds = surface_dataset(cfg.data, root=DATA[source], format=source, stems=[name])
    with Image.open(ds.mask_paths[0]) as m:
        assert np.array_equal(label, np.asarray(m.convert("L")) >= 128)
    image = load_image(ds.image_paths[0], 3)
    assert np.array_equal(predicted, predict_probability(model, image, None) >= threshold)
    assert predicted.shape == label.shape and label.any()
