"""The cascade's operating point (crackscope.deploy.operating_point, ``crackscope choose-operating-point``):
on hand-made marks and scores the threshold is the one worked out by hand from the rule (the highest
score at which the flagged cells keep the required share); on tiny runs the command writes what an
independent computation of the rule gives; bad input is one line, exit 2 and nothing written; and
benchmarks/cascade_deepcrack.py writes the same operating point through the library."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

from crackscope.cli import main
from crackscope.data.tiles import extract_tiles, tile_grid
from crackscope.deploy.cascade import load_classifier, load_segmenter, read_image, segment_all_tiles, to_channels
from crackscope.deploy.operating_point import ScreenedImage, kept_at, operating_points, oracle_windows

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
T = 32  # tile side of the hand-made images


class Marker:
    """A segmenter stub: the first channel of each window is its crack probability."""

    channels, threshold = 1, 0.5

    def __call__(self, tiles):
        return tiles[:, 0]


def _fill(a: np.ndarray, tile: int, n: int) -> None:
    """Set the first ``n`` pixels (row-major) of tile ``tile`` of a 2 x 4 grid of T-px cells."""
    y0, x0 = (tile // 4) * T, (tile % 4) * T
    cell = np.zeros(T * T, bool)
    cell[:n] = True
    a[y0 : y0 + T, x0 : x0 + T] |= cell.reshape(T, T)


def _screened(marked: np.ndarray, truth: np.ndarray, scores) -> ScreenedImage:
    base = segment_all_tiles(marked.astype(np.float32)[None], Marker(), tile=T, window=T, overlap=0.0)
    assert np.array_equal(base.mask, marked) and len(base.plan) == 8  # one window per cell
    return ScreenedImage(base, np.asarray(scores, dtype=np.float64), truth)


@pytest.fixture(scope="module")
def hand_made():
    """Two 64 x 128 images of 8 tiles each. Image 1: the segmenter marks 10, 0, 5, 85 pixels in tiles
    0-3 (none elsewhere); of them 10, 0, 5, 40 are cracks in the truth, which also has one crack
    pixel, unmarked, in tile 4. Image 2: nothing marked, no crack; one tile scored 0.95."""
    marked, truth = np.zeros((64, 128), bool), np.zeros((64, 128), bool)
    for tile, n in enumerate([10, 0, 5, 85]):
        _fill(marked, tile, n)
    for tile, n in enumerate([10, 0, 5, 40]):  # the first n of each tile's marked pixels
        _fill(truth, tile, n)
    truth[T, 0] = True  # tile 4 (row 1, column 0): a crack pixel the segmenter missed
    empty = np.zeros((64, 128), bool)
    return [
        _screened(marked, truth, [0.9, 0.8, 0.3, 0.6, 0.1, 0.2, 0.05, 0.7]),
        _screened(empty, empty, [0.95] + [0.01] * 7),
    ]


# Worked by hand. Marked pixels, by descending score: 10 (0.9), 0 (0.8), 0 (0.7), 85 (0.6), 5 (0.3)
# of 100 -> cumulative 10, 10, 10, 95, 100 %. Correct ones: 10, 0, 0, 40, 5 of 55 -> 18.2, 18.2,
# 18.2, 90.9, 100 %. (Image 2's 0.95 tile adds nothing.) The threshold is the lowest score needed.
@pytest.mark.parametrize(
    "share,want_all,want_true",
    [(0.05, 0.9, 0.9), (0.9, 0.6, 0.6), (0.94, 0.6, 0.3), (0.99, 0.3, 0.3)],
)
def test_the_threshold_is_the_lowest_score_that_keeps_the_share_worked_by_hand(hand_made, share, want_all, want_true):
    point = operating_points(hand_made, share)
    assert point["all"]["threshold"] == want_all and point["true"]["threshold"] == want_true
    assert (point["n_images"], point["n_tiles"], point["required_share"]) == (2, 16, share)
    assert point["crack_tile_fraction"] == 4 / 16  # tiles 0, 2, 3 and 4 of image 1 hold a true crack


def test_what_the_operating_point_keeps_flags_and_runs_worked_by_hand(hand_made):
    point = operating_points(hand_made, 0.94)
    # all at 0.6: tiles 0, 1, 3, 7 of image 1 and tile 0 of image 2 (0.95) flagged, 95 of 100 pixels kept
    assert point["all"]["share"] == pytest.approx(0.95)
    assert point["all"]["flagged_fraction"] == point["all"]["windows_fraction"] == 5 / 16  # a window per tile
    assert point["all"]["tile_recall"] == 2 / 4  # tiles 0 and 3 of the 4 with a true crack
    # true at 0.3: tile 2 too; all 55 correct pixels kept; tiles 0, 2, 3 of the 4 with a true crack
    assert point["true"]["share"] == 1.0 and point["true"]["flagged_fraction"] == 6 / 16
    assert point["true"]["tile_recall"] == 3 / 4
    curve = {c["threshold"]: c for c in point["curve"]}
    assert curve[0.5]["flagged_fraction"] == 5 / 16 and curve[0.05]["flagged_fraction"] == 9 / 16


def test_kept_at_any_threshold_worked_by_hand(hand_made):
    # at 0.75: tiles 0 (0.9) and 1 (0.8) of image 1 and tile 0 of image 2 (0.95): 10 of 100 marked pixels,
    # 10 of 55 correct ones, 3 of the 16 windows (one per tile)
    assert kept_at(hand_made, 0.75, "all") == pytest.approx((0.10, 3 / 16))
    assert kept_at(hand_made, 0.75) == pytest.approx((10 / 55, 3 / 16))
    assert kept_at(hand_made, 0.0, "all") == (1.0, 1.0)  # every tile flagged, every window run


def test_a_perfect_screen_flags_the_tiles_holding_most_pixels_first_worked_by_hand(hand_made):
    bases = [i.base for i in hand_made]
    oracle = oracle_windows(bases, [i.pixels["all"] for i in hand_made], 0.94)
    assert oracle["flagged_fraction"] == 2 / 16 and oracle["windows_fraction"] == 2 / 16  # 85 + 10 >= 94
    assert oracle["kept"] == pytest.approx(0.95)


def test_with_nothing_marked_every_tile_is_flagged():
    empty = np.zeros((64, 128), bool)
    point = operating_points([_screened(empty, empty, np.linspace(0.1, 0.8, 8))], 0.98)
    for key in ("all", "true"):
        assert point[key]["threshold"] == 0.0 and point[key]["flagged_fraction"] == 1.0


# ---- the command on tiny runs ---------------------------------------------------------------------------------
H, W, TILE = 128, 192, 64  # 2 x 3 tiles and windows of 64 px: the final region is the flagged cells
STEMS = {"train": ["r1", "r2"], "val": ["v1", "v2", "v3"], "test": ["t1", "t2"]}


def _dataset(root: Path) -> Path:
    """A DeepCrack-layout folder: RGB photos and 3-channel masks (cracks: a few lines) in train_img/lab."""
    rng = np.random.default_rng(3)
    (root / "train_img").mkdir(parents=True)
    (root / "train_lab").mkdir()
    for stem in [s for part in STEMS.values() for s in part]:
        mask = np.zeros((H, W), np.uint8)
        for _ in range(3):
            mask[rng.integers(0, H), rng.integers(0, W // 2) :] = 255
            mask[:, rng.integers(0, W)] = 255 * (rng.random() < 0.5)
        image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        image[mask > 0] //= 3  # cracks are dark
        Image.fromarray(image).save(root / "train_img" / f"{stem}.png")
        Image.fromarray(np.repeat(mask[..., None], 3, axis=-1)).save(root / "train_lab" / f"{stem}.png")
    return root


def _run(root: Path, name: str, pipeline: str, model: dict, geometry: dict, data: dict, split: dict) -> Path:
    """A run folder (config.yaml, model.safetensors, split.json) with untrained weights."""
    from crackscope.engine.config import dump_config, load_train_config
    from crackscope.engine.runs import build_model

    loss = {"name": "cross_entropy" if pipeline == "classify" else "dice"}
    cfg = load_train_config(None, base={"name": name, "pipeline": pipeline, "data": data, "model": model, "loss": loss})
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({**dump_config(cfg), "geometry": geometry}, sort_keys=False))
    torch.manual_seed(0)
    weights = {k: v.contiguous() for k, v in build_model(cfg, geometry).state_dict().items()}
    save_file(weights, str(run / "model.safetensors"))
    (run / "split.json").write_text(json.dumps(split))
    return run


def _truth(root: Path, stem: str) -> np.ndarray:
    return np.asarray(Image.open(root / "train_lab" / f"{stem}.png").convert("L")) >= 128


def _image(root: Path, stem: str) -> np.ndarray:
    return read_image(root / "train_img" / f"{stem}.png")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("operating_point")
    root = _dataset(base / "data")
    tiles = {"root": str(root), "format": "deepcrack-tiles", "channels": 1, "tiles": {"tile": TILE}}
    clf = _run(
        base / "runs",
        "clf",
        "classify",
        {"name": "aoie_net_resnet20", "width": 0.25},
        {"in_channels": 1, "classes": 2},
        tiles,
        {"classes": ["no_crack", "crack"], "stems": STEMS},
    )
    seg = _run(
        base / "runs",
        "seg",
        "surface",
        {"name": "unet", "base_channels": 2, "depth": 2},
        {"in_channels": 3, "classes": 1},
        {"root": str(root), "format": "deepcrack", "in_channels": 3},
        {"stems": STEMS},
    )
    # the untrained segmenter's probabilities sit close together: its threshold at their median
    # over the validation images marks about half of the pixels
    probs = [
        segment_all_tiles(_image(root, s), load_segmenter(seg), tile=TILE, window=TILE, overlap=0.0).probability
        for s in STEMS["val"]
    ]
    (seg / "operating_point.json").write_text(json.dumps({"threshold": float(np.median(np.concatenate(probs)))}))
    return {"root": root, "classifier": clf, "segmenter": seg, "base": base}


def _by_the_rule(tiny, share: float, key: str) -> float:
    """The highest tile score at which the flagged cells keep ``share`` of the ``key`` pixels, from
    the validation images, the segmenter's all-windows mask and the classifier's scores."""
    classifier, segmenter = load_classifier(tiny["classifier"]), load_segmenter(tiny["segmenter"])
    scores, pixels = [], []
    for stem in STEMS["val"]:
        image, truth = _image(tiny["root"], stem), _truth(tiny["root"], stem)
        marked = segment_all_tiles(image, segmenter, tile=TILE, window=TILE, overlap=0.0).mask
        wanted = marked & truth if key == "true" else marked
        grid = tile_grid(H, W, TILE)
        scores.append(classifier(extract_tiles(to_channels(image, 1), grid.origins, TILE)).numpy())
        pixels.append([int(wanted[y0:y1, x0:x1].sum()) for y0, y1, x0, x1 in grid.cells().tolist()])
    scores, pixels = np.concatenate(scores).astype(np.float64), np.concatenate(pixels)
    total = pixels.sum()
    assert total > 0, "the tiny segmenter marks nothing: the test would not test the rule"
    return max(float(v) for v in np.unique(scores) if pixels[scores >= v].sum() / total >= share)


def test_the_command_writes_the_threshold_the_rule_gives(tiny, tmp_path, cli):
    clf = tmp_path / "clf"
    shutil.copytree(tiny["classifier"], clf)
    done = cli(
        "choose-operating-point",
        clf,
        "--segmenter",
        tiny["segmenter"],
        "--target-share",
        "0.9",
        "--window",
        TILE,
        "--overlap",
        "0",
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    point = json.loads((clf / "operating_point.json").read_text())
    for key in ("all", "true"):
        assert point[key]["threshold"] == pytest.approx(_by_the_rule(tiny, 0.9, key), abs=1e-6)
        assert point[key]["share"] >= 0.9
    assert point["threshold"] == point["true"]["threshold"] and point["default"] == "true"
    assert (point["tile"], point["window"], point["overlap"], point["target_share"]) == (TILE, TILE, 0.0, 0.9)
    assert point["segmenter"] == str(tiny["segmenter"]) and point["n_images"] == 3
    assert f"true (written): threshold {point['threshold']:.4f}" in done.stdout
    # inspect-image now screens with it
    assert load_classifier(clf).threshold == point["threshold"] and load_classifier(clf).window == TILE


def test_the_other_criterion_and_a_margin(tiny, tmp_path):
    clf = tmp_path / "clf"
    shutil.copytree(tiny["classifier"], clf)
    args = ["choose-operating-point", str(clf), "--segmenter", str(tiny["segmenter"]), "--window", str(TILE)]
    assert main([*args, "--target-share", "0.8", "--margin", "0.1", "--criterion", "all"]) == 0
    point = json.loads((clf / "operating_point.json").read_text())
    assert point["required_share"] == pytest.approx(0.9) and point["default"] == "all"
    assert point["threshold"] == point["all"]["threshold"] == pytest.approx(_by_the_rule(tiny, 0.9, "all"), abs=1e-6)


@pytest.mark.parametrize(
    "change,extra,named",
    [
        (None, ["--target-share", "1.5"], "--target-share 1.5"),
        (None, ["--target-share", "0.95", "--margin", "0.1"], "--margin"),
        (None, ["--overlap", "0.7"], "--overlap"),
        (None, ["--window", "0"], "--window"),
        ("split", [], "do not share their val images"),
        ("no-segmenter", [], "no such run directory"),
        ("no-data", ["--data", "{base}/nowhere"], "nowhere"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tiny, tmp_path, capsys, change, extra, named):
    clf, seg = tmp_path / "clf", tiny["segmenter"]
    shutil.copytree(tiny["classifier"], clf)
    if change == "split":
        split = json.loads((clf / "split.json").read_text())
        split["stems"]["val"] = split["stems"]["val"][:2]
        (clf / "split.json").write_text(json.dumps(split))
    if change == "no-segmenter":
        seg = tmp_path / "missing"
    extra = [e.format(base=tmp_path) for e in extra]
    code = main(["choose-operating-point", str(clf), "--segmenter", str(seg), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and named in err[0], err
    assert not (clf / "operating_point.json").exists()
    assert sorted(p.name for p in clf.iterdir()) == ["config.yaml", "model.safetensors", "split.json"]


def test_bad_input_from_a_real_process_has_no_traceback(tiny, tmp_path, cli):
    done = cli("choose-operating-point", tiny["segmenter"], "--segmenter", tiny["segmenter"], timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: classifier {tiny['segmenter']} is a surface run, not an image classifier"
    ]


# ---- the benchmark goes through the library ---------------------------------------------------------------
def _metrics(run: Path, pipeline: str) -> None:
    if pipeline == "classify":
        m = {"n_images": 30, "accuracy": 0.5, "per_class": {"crack": {"recall": 0.5, "precision": 0.5}}}
    else:
        m = {"n_images": 2, "f1": 0.5, "iou_defect": 0.3, "precision": 0.5, "recall": 0.5, "threshold": 0.5}
    (run / "metrics.json").write_text(json.dumps(m))


def test_the_cascade_benchmark_writes_the_operating_point_the_command_chooses(tiny, tmp_path, cli):
    """A tiny smoke run of benchmarks/cascade_deepcrack.py (one 1 x 1 grid, one repeat) with --ship:
    its operating_point.json equals the command's with the same settings, and the shipped classifier
    folder has its packed twin and a README naming the command."""
    runs = {}
    for name in ("classifier", "segmenter"):
        runs[name] = tmp_path / name
        shutil.copytree(tiny[name], runs[name])
        _metrics(runs[name], "classify" if name == "classifier" else "surface")
    twin = tmp_path / "twin"
    shutil.copytree(tiny["classifier"], twin)
    settings = ["--target-share", "0.9", "--window", str(TILE), "--overlap", "0"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cascade_deepcrack.py"), "--classifier", str(runs["classifier"]),
         "--segmenter", str(runs["segmenter"]), "--grids", "1", "--repeats", "1", "--name", "smoke",
         "--out", str(tmp_path / "results"), "--ship", "--ship-to", str(tmp_path / "ship"), *settings],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
        env={**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert main(["choose-operating-point", str(twin), "--segmenter", str(runs["segmenter"].resolve()), *settings]) == 0
    written = json.loads((runs["classifier"] / "operating_point.json").read_text())
    assert written == json.loads((twin / "operating_point.json").read_text())
    result = json.loads((tmp_path / "results" / "smoke.json").read_text())
    assert result["operating_point"] == written and (tmp_path / "results" / "smoke.md").is_file()
    shipped = tmp_path / "ship" / "tile_classifier"
    assert sorted(p.name for p in shipped.iterdir()) == [
        "README.md",
        "config.yaml",
        "metrics.json",
        "model.packed.safetensors",
        "model.safetensors",
        "operating_point.json",
        "split.json",
    ]
    assert "crackscope choose-operating-point" in (shipped / "README.md").read_text()
    assert json.loads((shipped / "operating_point.json").read_text()) == written
    assert (tmp_path / "ship" / "segmenter" / "model.safetensors").read_bytes() == (
        runs["segmenter"] / "model.safetensors"
    ).read_bytes()


def test_pixel_counts_and_scores_by_hand():
    """3 marked pixels, 2 of them cracks, 1 crack missed: TP 2, FP 1, FN 1 -> P = R = F1 = 2/3, IoU 1/2."""
    from crackscope.deploy.operating_point import pixel_counts, pixel_scores

    pred = np.array([[1, 1, 1, 0]], dtype=bool)
    truth = np.array([[1, 1, 0, 1]], dtype=bool)
    c = pixel_counts(pred, truth)
    assert c.tolist() == [2, 1, 1]
    s = pixel_scores(c)
    assert s["precision"] == s["recall"] == s["f1"] == pytest.approx(2 / 3) and s["iou"] == 0.5
    assert pixel_scores(np.zeros(3, dtype=np.int64))["f1"] == 0.0


def test_chosen_on_survey_like_images_of_the_validation_photos(tmp_path):
    """--survey: the rule applied to survey mosaics of the validation photos (crack tiles among
    crack-free ones) instead of the photos. Photos of 512 x 512 with a crack down column 10 and
    one across row 300 give crack tiles and crack-free tiles; the threshold written is the rule's
    on the same mosaics."""
    from crackscope.data.survey_mosaics import survey_mosaics, tile_bank
    from crackscope.deploy.operating_point import RunPairs, choose_operating_point

    root, side = tmp_path / "data", 512
    (root / "train_img").mkdir(parents=True)
    (root / "train_lab").mkdir()
    rng = np.random.default_rng(0)
    stems = {"train": ["r1"], "val": ["v1", "v2", "v3"], "test": ["t1"]}
    for stem in [s for part in stems.values() for s in part]:
        mask = np.zeros((side, side), np.uint8)
        mask[:, 10], mask[300, :200] = 255, 255
        image = rng.integers(60, 256, (side, side, 3), dtype=np.uint8)
        image[mask > 0] //= 4
        Image.fromarray(image).save(root / "train_img" / f"{stem}.png")
        Image.fromarray(np.repeat(mask[..., None], 3, axis=-1)).save(root / "train_lab" / f"{stem}.png")
    tiles = {"root": str(root), "format": "deepcrack-tiles", "channels": 1, "tiles": {"tile": TILE}}
    clf = _run(
        tmp_path / "runs", "clf", "classify", {"name": "aoie_net_resnet20", "width": 0.25},
        {"in_channels": 1, "classes": 2}, tiles, {"classes": ["no_crack", "crack"], "stems": stems},
    )  # fmt: skip
    seg = _run(
        tmp_path / "runs", "seg", "surface", {"name": "unet", "base_channels": 2, "depth": 2},
        {"in_channels": 3, "classes": 1}, {"root": str(root), "format": "deepcrack", "in_channels": 3},
        {"stems": stems},
    )  # fmt: skip
    # the untrained segmenter's threshold at its median probability: it marks about half the pixels
    probs = [segment_all_tiles(RunPairs(seg)(s)[0], load_segmenter(seg), tile=TILE).probability for s in stems["val"]]
    (seg / "operating_point.json").write_text(json.dumps({"threshold": float(np.median(np.concatenate(probs)))}))
    point = choose_operating_point(
        clf, seg, target_share=0.9, criterion="all", tile=TILE, window=TILE, overlap=0.0, survey=2, survey_side=256
    )
    assert point["chosen_on"].startswith("survey-like images: 2 mosaics of 256 px") and point["n_images"] == 2
    # the rule, by hand, on the same mosaics: the highest tile score whose flagged cells keep 90 %
    classifier, segmenter = load_classifier(clf), load_segmenter(seg)
    scores, pixels = [], []
    for image, _, _ in survey_mosaics(tile_bank(RunPairs(seg), stems["val"]), 2, side=256):
        marked = segment_all_tiles(image, segmenter, tile=TILE, window=TILE, overlap=0.0).mask
        grid = tile_grid(256, 256, TILE)
        scores.append(classifier(extract_tiles(to_channels(image, 1), grid.origins, TILE)).numpy())
        pixels.append([int(marked[y0:y1, x0:x1].sum()) for y0, y1, x0, x1 in grid.cells().tolist()])
    scores, pixels = np.concatenate(scores).astype(np.float64), np.concatenate(pixels)
    assert pixels.sum() > 0
    rule = max(float(v) for v in np.unique(scores) if pixels[scores >= v].sum() / pixels.sum() >= 0.9)
    assert point["threshold"] == point["all"]["threshold"] == pytest.approx(rule, abs=1e-6)


def test_the_segmenter_may_be_a_shipped_name(tmp_path, capsys):
    """--segmenter cracks/segmenter reads the shipped folder (its split.json among it): the command
    gets past the split check to the next one (here a --data folder that does not exist)."""
    clf = tmp_path / "clf"
    shutil.copytree(ROOT / "src" / "crackscope" / "weights" / "cracks" / "tile_classifier", clf)
    args = ["choose-operating-point", str(clf), "--segmenter", "cracks/segmenter", "--data", str(tmp_path / "none")]
    before = (clf / "operating_point.json").read_bytes()
    assert main(args) == 2
    assert f"--data {tmp_path / 'none'}: no such folder" in capsys.readouterr().err
    assert (clf / "operating_point.json").read_bytes() == before  # nothing written


def test_the_survey_tile_bank_holds_tiles_of_that_part_only(tiny):
    """survey_tile_bank: the photos of the part both runs share (the fixture's split by hand), and
    tiles cut from those photos alone; a part they do not share is one clear error."""
    from crackscope.deploy.operating_point import survey_tile_bank
    from crackscope.errors import InputError

    for part in ("val", "test"):
        stems, bank = survey_tile_bank(part, tiny["segmenter"], tiny["classifier"])
        assert stems == STEMS[part]
        tiles = bank.crack + bank.sound
        assert tiles and {where.split("@")[0] for _, _, where in tiles} <= set(STEMS[part])
    with pytest.raises(InputError, match="share no holdout photo"):
        survey_tile_bank("holdout", tiny["segmenter"], tiny["classifier"])
