"""The tile cascade (crackscope.deploy.cascade) and ``crackscope inspect-image``: stitching covers
every pixel once, the segmenter sees exactly the flagged tiles, flag-everything equals the all-tiles
baseline, flag-nothing never calls the segmenter, loaders refuse the wrong runs, and the command
writes its report files or, on bad input, one line, exit 2 and nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file

from crackscope.cli import main
from crackscope.deploy.cascade import (
    TileClassifier,
    inspect_image,
    load_classifier,
    load_segmenter,
    segment_all_tiles,
    to_channels,
)
from crackscope.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "weights" / "deepcrack"
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
    r = inspect_image(image, classifier, seg, tile=T, threshold=0.5, batch_size=2)
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
    r = segment_all_tiles(image, Recorder(), tile=T)
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


def test_bad_classifier_output_and_small_images_are_input_errors():
    with pytest.raises(InputError, match="one crack probability per tile"):
        inspect_image(_image(), lambda t: torch.ones(3), Recorder(), tile=T)
    with pytest.raises(InputError, match="smaller than one 80 x 80 tile"):
        inspect_image(_image(), _constant(1), Recorder(), tile=80)
    with pytest.raises(InputError, match="classifier is needed"):
        inspect_image(_image(), None, Recorder(), tile=T)


# ---- runs on disk: loaders and the command line ---------------------------------------------------------
def _run(root: Path, name: str, pipeline: str, model: dict, geometry: dict, data: dict, classes=None) -> Path:
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
    torch.manual_seed(0)
    save_file(
        {k: v.contiguous() for k, v in build_model(cfg, geometry).state_dict().items()}, str(run / "model.safetensors")
    )
    (run / "split.json").write_text(json.dumps({"classes": classes} if classes else {}))
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cascade_runs")
    tiles = {"root": str(root), "format": "deepcrack-tiles", "size": 16, "channels": 1, "tiles": {"tile": T}}
    surface = {"root": str(root), "format": "deepcrack", "in_channels": 3}
    tiny_unet = {"name": "unet", "base_channels": 2, "depth": 2}
    out = {
        "classifier": _run(
            root,
            "clf",
            "classify",
            {"name": "aoie_net_resnet20", "width": 0.25},
            {"in_channels": 1, "classes": 2},
            tiles,
            ["no_crack", "crack"],
        ),
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


def test_loaders_take_the_run_settings_and_refuse_the_wrong_runs(runs):
    clf = load_classifier(runs["classifier"])
    assert (clf.tile, clf.threshold, clf.channels, clf.input_size, clf.crack_index) == (T, 0.25, 1, (16, 16), 1)
    seg = load_segmenter(runs["segmenter"])
    assert seg.channels == 3 and seg.threshold == 0.5
    with pytest.raises(InputError, match="is a surface run, not an image classifier"):
        load_classifier(runs["segmenter"])
    with pytest.raises(InputError, match="3 classes"):
        load_classifier(runs["three_classes"])
    with pytest.raises(InputError, match="is a classify run, not a surface segmentation model"):
        load_segmenter(runs["classifier"])


def test_packed_runtime_flags_the_same_tiles_as_pytorch(runs):
    torch_clf = load_classifier(runs["classifier"])
    packed = load_classifier(runs["classifier"], runtime="packed")
    assert packed.logits_fn is not torch_clf.logits_fn and type(packed.logits_fn).__name__ == "PackedResNet"
    tiles = torch.rand(12, 1, T, T, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(packed(tiles), torch_clf(tiles), atol=1e-4)
    with pytest.raises(InputError, match="--runtime 'onnx'"):
        load_classifier(runs["classifier"], runtime="onnx")
    with pytest.raises(InputError, match="3 classes"):  # checked before anything is packed
        load_classifier(runs["three_classes"], runtime="packed")


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
    assert list(rows[0]) == ["row", "col", "y0", "x0", "probability", "flagged"] and len(rows) == 12
    summary = json.loads((out / "summary.json").read_text())
    flagged = [r for r in rows if r["flagged"] == "1"]
    assert summary["flagged"] == len(flagged) and summary["tiles"] == 12 and summary["threshold"] == 0.25
    assert all(float(r["probability"]) >= 0.25 for r in flagged)  # the run's operating point was used
    assert (summary["height"], summary["width"], summary["crack_pixels"]) == (H, W, int((mask == 255).sum()))
    # unflagged cells, [row * T, (row + 1) * T) x [col * T, (col + 1) * T) clipped to the image, are background
    for r in rows:
        if r["flagged"] == "0":
            y0, x0 = int(r["row"]) * T, int(r["col"]) * T
            assert not mask[y0 : y0 + T, x0 : x0 + T].any()


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
    ("smaller than a tile", lambda r: [r["images"] / "small.png"], "smaller than one 32 x 32 tile"),
    (
        "classifier is a segmenter",
        lambda r: [r["images"] / "big.png", "--classifier", r["segmenter"]],
        "is a surface run, not an image classifier",
    ),
    ("three-class classifier", lambda r: [r["images"] / "big.png", "--classifier", r["three_classes"]], "3 classes"),
    (
        "segmenter is a classifier",
        lambda r: [r["images"] / "big.png", "--segmenter", r["classifier"]],
        "is a classify run, not a surface segmentation model",
    ),
    ("grey image, colour segmenter", lambda r: [r["images"] / "grey.png"], "greyscale"),
    ("bad threshold", lambda r: [r["images"] / "big.png", "--threshold", "1.5"], "--threshold"),
    ("no classifier", lambda r: [r["images"] / "big.png", "--classifier", None], "--classifier is required"),
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
        want = base.probability[y0:y1, x0:x1] if flagged else 0.0
        assert np.allclose(r.probability[y0:y1, x0:x1], want, atol=1e-5)  # segmented cells as in the baseline
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
