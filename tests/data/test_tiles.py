"""DeepCrack for the cascade: the ``deepcrack`` surface format, the tile grid, tile labels worked out
by hand, and splits that keep every tile of an image (and every crop of a photo) in one part."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crackscope.data.splits import group_split
from crackscope.data.surface import SurfaceSegmentationDataset
from crackscope.data.tiles import (
    CrackTileDataset,
    box_counts,
    extract_tiles,
    resize_tiles,
    stitch,
    tile_crack_pixels,
    tile_grid,
    tile_starts,
)
from crackscope.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DEEPCRACK = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "DeepCrack"


def _pair(root: Path, stem: str, image: np.ndarray, mask: np.ndarray) -> None:
    """A DeepCrack-style pair: PNG image (lossless, so pixels can be compared) and an RGB mask."""
    (root / "train_img").mkdir(parents=True, exist_ok=True)
    (root / "train_lab").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "train_img" / f"{stem}.png")
    Image.fromarray(np.repeat(mask[..., None], 3, axis=-1)).save(root / "train_lab" / f"{stem}.png")


def _fake_deepcrack(root: Path, stems, h=70, w=100, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for stem in stems:
        mask = np.zeros((h, w), dtype=np.uint8)
        mask[rng.integers(0, h), :] = 255  # one horizontal crack per image
        _pair(root, stem, rng.integers(0, 256, (h, w, 3), dtype=np.uint8), mask)
    return root


# ---- the grid ------------------------------------------------------------------------------------------
def test_tile_starts_align_the_last_tile_to_the_border():
    assert tile_starts(544, 64) == [0, 64, 128, 192, 256, 320, 384, 448, 480]
    assert tile_starts(384, 64) == [0, 64, 128, 192, 256, 320]
    assert tile_starts(64, 64) == [0]
    assert tile_starts(100, 64, stride=32) == [0, 32, 36]
    with pytest.raises(InputError, match="smaller than one tile"):
        tile_starts(63, 64)
    with pytest.raises(InputError, match="stride"):
        tile_starts(100, 64, stride=0)


@pytest.mark.parametrize("h,w,t", [(384, 544, 64), (70, 100, 32), (64, 64, 64), (65, 129, 64), (7, 5, 3)])
def test_cells_cover_every_pixel_exactly_once_inside_their_tile(h, w, t):
    grid = tile_grid(h, w, t)
    cover = np.zeros((h, w), dtype=np.int64)
    for (y0, y1, x0, x1), (oy, ox) in zip(grid.cells().tolist(), grid.origins.tolist()):
        cover[y0:y1, x0:x1] += 1
        assert oy <= y0 < y1 <= oy + t and ox <= x0 < x1 <= ox + t  # the cell lies in the tile's window
        assert oy + t <= h and ox + t <= w  # windows hold real pixels only
    assert (cover == 1).all()
    assert len(grid) == len(range(0, h, t)) * len(range(0, w, t))


def test_cutting_then_stitching_gives_the_image_back():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((1, 70, 100)).astype(np.float32))
    grid = tile_grid(70, 100, 32)
    tiles = extract_tiles(image, grid.origins, 32)
    assert tiles.shape == (len(grid), 1, 32, 32)
    assert np.array_equal(stitch(tiles[:, 0], grid), image[0].numpy())
    part = [0, 5, 11]  # only these tiles: their cells come back, the rest stays 0
    out = stitch(tiles[part, 0], grid, part)
    expected = np.zeros((70, 100), dtype=np.float32)
    for y0, y1, x0, x1 in grid.cells()[part].tolist():
        expected[y0:y1, x0:x1] = image[0, y0:y1, x0:x1].numpy()
    assert np.array_equal(out, expected)


def test_resize_tiles_is_the_per_image_resize_of_training():
    from crackscope.data.classification import resize_image

    x = torch.rand(5, 1, 64, 64)
    batch = resize_tiles(x, 16)
    assert batch.shape == (5, 1, 16, 16)
    for k in range(5):
        assert torch.allclose(batch[k], resize_image(x[k], 16), atol=1e-6)


# ---- labels worked out by hand -------------------------------------------------------------------------
def test_tile_labels_match_a_hand_worked_mask(tmp_path):
    # 70 x 100 image, tiles of 32: row starts 0, 32, 38; column starts 0, 32, 64, 68
    mask = np.zeros((70, 100), dtype=np.uint8)
    mask[5, 5] = 255  # only tile (0, 0)
    mask[40, 70] = 200  # rows 1 (32..63) and 2 (38..69) x columns 2 (64..95) and 3 (68..99)
    mask[45, 72] = 128  # the same four tiles: 128 is a crack pixel
    mask[10, 50] = 127  # anti-aliased edge below 128: background
    mask[60, 10] = 130  # rows 1 and 2 x column 0
    _pair(tmp_path, "a", np.zeros((70, 100, 3), dtype=np.uint8), mask)
    ds = CrackTileDataset(tmp_path, tile=32)
    assert len(ds) == 12 and ds.classes == ["no_crack", "crack"]
    by_origin = {tuple(o): (int(c), int(t)) for o, c, t in zip(ds.origins.tolist(), ds.crack_pixels, ds.targets)}
    expected_counts = {(0, 0): 1, (32, 64): 2, (32, 68): 2, (38, 64): 2, (38, 68): 2, (32, 0): 1, (38, 0): 1}
    for origin, (count, target) in by_origin.items():
        assert count == expected_counts.get(origin, 0), origin
        assert target == int(origin in expected_counts), origin
    assert ds.stems[0] == "a/y0x0" and ds.meta(11)["image"] == "a"
    two = CrackTileDataset(tmp_path, tile=32, min_crack_pixels=2)
    assert sorted(tuple(o) for o, t in zip(two.origins.tolist(), two.targets) if t) == [
        (32, 64),
        (32, 68),
        (38, 64),
        (38, 68),
    ]


def test_tile_items_are_the_image_windows_grey_and_resized(tmp_path):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (70, 100, 3), dtype=np.uint8)
    _pair(tmp_path, "a", rgb, np.zeros((70, 100), dtype=np.uint8))
    grey = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255
    ds = CrackTileDataset(tmp_path, tile=32, channels=1)
    k = ds.stems.index("a/y38x68")
    x, y = ds[k]
    assert int(y) == 0 and x.shape == (1, 32, 32)
    assert np.array_equal(x[0].numpy(), grey[38:70, 68:100])
    small, _ = CrackTileDataset(tmp_path, tile=32, size=16, channels=3)[k]
    window = torch.from_numpy(rgb[38:70, 68:100].transpose(2, 0, 1).astype(np.float32) / 255)
    assert torch.allclose(small, resize_tiles(window[None], 16)[0], atol=1e-6)


def test_real_deepcrack_tiles_match_the_masks_read_directly():
    ds = CrackTileDataset(DEEPCRACK, tile=64, images=["11111", "11116-1"])
    assert ds.image_stems == ["11111", "11116-1"] and len(ds) == 2 * 6 * 9
    for k, stem in enumerate(ds.image_stems):
        m = np.asarray(Image.open(DEEPCRACK / "train_lab" / f"{stem}.png").convert("L")) >= 128
        assert m.shape == (384, 544)
        mine = ds.image_index == k
        for (y, x), count in zip(ds.origins[mine].tolist(), ds.crack_pixels[mine]):
            assert count == m[y : y + 64, x : x + 64].sum()
    assert 0 < ds.targets.sum() < len(ds)
    with pytest.raises(InputError, match="no deepcrack image 'nope'"):
        CrackTileDataset(DEEPCRACK, images=["nope"])


def test_small_image_and_bad_options_are_named(tmp_path):
    _pair(tmp_path, "tiny", np.zeros((20, 30, 3), dtype=np.uint8), np.zeros((20, 30), dtype=np.uint8))
    with pytest.raises(InputError, match="tiny.png .*smaller than one 32 x 32 tile"):
        CrackTileDataset(tmp_path, tile=32)
    for kw, word in (
        ({"tile": 0}, "tile"),
        ({"min_crack_pixels": 0}, "min_crack_pixels"),
        ({"channels": 2}, "channels"),
    ):
        with pytest.raises(InputError, match=word):
            CrackTileDataset(tmp_path, **kw)
    mask = np.zeros((5, 5), dtype=bool)
    with pytest.raises(InputError, match="does not match"):
        tile_crack_pixels(mask, tile_grid(6, 6, 3))


# ---- the deepcrack surface format and splits by source photo ------------------------------------------------
def test_deepcrack_surface_format_thresholds_rgb_masks_at_128(tmp_path):
    mask = np.zeros((70, 100), dtype=np.uint8)
    mask[3, :4] = [127, 128, 129, 255]
    _pair(tmp_path, "11116-2", np.full((70, 100, 3), 90, dtype=np.uint8), mask)
    _pair(tmp_path, "11116", np.full((70, 100, 3), 90, dtype=np.uint8), mask)
    ds = SurfaceSegmentationDataset(tmp_path, format="deepcrack", in_channels=3, pad_multiple=1)
    assert ds.stems == ["11116", "11116-2"] and ds.groups == ["11116", "11116"] and ds.classes == [None, None]
    x, y = ds[1]
    assert x.shape == (3, 70, 100) and y.shape == (1, 70, 100)
    assert y[0, 3, :4].tolist() == [0.0, 1.0, 1.0, 1.0] and float(y.sum()) == 3


def test_group_split_never_splits_a_group_and_hits_the_fractions():
    groups = [f"g{k // 3}" if k < 60 else f"s{k}" for k in range(100)]  # 20 triples and 40 singles
    a = group_split(groups, (0.7, 0.1, 0.2), seed=5)
    assert a == group_split(groups, (0.7, 0.1, 0.2), seed=5) != group_split(groups, (0.7, 0.1, 0.2), seed=6)
    assert sorted(a["train"] + a["val"] + a["test"]) == list(range(100))
    part_of = {i: p for p, idx in a.items() for i in idx}
    for g in set(groups):
        assert len({part_of[i] for i, h in enumerate(groups) if h == g}) == 1, g
    for p, f in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        assert abs(len(a[p]) - 100 * f) <= 3  # within one group of the target
    with pytest.raises(InputError, match="fractions"):
        group_split(groups, (0.7, 0.7))


def test_tile_split_keeps_images_and_photos_together_and_equals_the_segmenter_split(tmp_path):
    from crackscope.engine.classify import ClassificationDataModule, make_classification_split
    from crackscope.engine.config import load_train_config
    from crackscope.engine.surface import make_surface_split

    stems = ["1", "1-1", "1-2", "2", "3", "3-1", "4", "5", "6", "6-1", "7", "8", "9", "10"]
    root = _fake_deepcrack(tmp_path / "dc", stems, h=64, w=96)
    common = {"seed": 3, "out_dir": str(tmp_path / "runs")}
    tiles_cfg = load_train_config(
        None,
        base={
            "name": "t",
            "pipeline": "classify",
            **common,
            "model": {"name": "resnet20"},
            "loss": {"name": "cross_entropy"},
            "data": {"root": str(root), "format": "deepcrack-tiles", "split": [0.6, 0.2, 0.2], "tiles": {"tile": 32}},
        },
    )
    seg_cfg = load_train_config(
        None,
        base={
            "name": "s",
            "pipeline": "surface",
            **common,
            "model": {"name": "unet"},
            "loss": {"name": "dice"},
            "data": {"root": str(root), "format": "deepcrack", "split": [0.6, 0.2, 0.2]},
        },
    )
    split = make_classification_split(tiles_cfg.data, 3, tmp_path / "t")
    seg = make_surface_split(seg_cfg.data, 3, tmp_path / "s")
    assert split["stems"] == seg["stems"] and split["unit"] == "image"
    part_of = {s: p for p, ss in split["stems"].items() for s in ss}
    assert set(part_of) == set(stems)
    for photo in ("1", "3", "6"):
        assert len({p for s, p in part_of.items() if s.split("-")[0] == photo}) == 1
    module = ClassificationDataModule(tiles_cfg.data, 3, split)
    seen = {}
    for part in ("train", "val", "test"):
        ds = module._loader(part).dataset
        assert split["tiles"][part]["total"] == len(ds) == 6 * len(split["stems"][part])  # 2 x 3 tiles per image
        for stem in ds.stems:
            image = stem.split("/")[0]
            assert part_of[image] == part and seen.setdefault(stem, part) == part
    assert len(seen) == 6 * len(stems)


def test_tile_config_is_validated_and_a_three_part_run_config_reloads(tmp_path):
    import yaml
    from pydantic import ValidationError

    from crackscope.engine.config import TrainConfig, dump_config, load_train_config

    base = {
        "name": "t",
        "pipeline": "classify",
        "model": {"name": "resnet20"},
        "loss": {"name": "cross_entropy"},
        "data": {
            "root": str(tmp_path),
            "format": "deepcrack-tiles",
            "split": [0.7, 0.1, 0.2],
            "tiles": {"tile": 48, "min_crack_pixels": 3},
        },
    }
    cfg = load_train_config(None, base=base)
    assert (cfg.data.tiles.tile, cfg.data.tiles.stride, cfg.data.tiles.min_crack_pixels) == (48, None, 3)
    # the resolved config.yaml of a three-part split lists the default val_fraction: it must load again
    again = TrainConfig.model_validate(yaml.safe_load(yaml.safe_dump(dump_config(cfg))))
    assert dump_config(again) == dump_config(cfg)
    for bad, word in (
        ({"format": "folder"}, "deepcrack-tiles only"),
        ({"tiles": {"tile": 0}}, "tile"),
        ({"val_fraction": 0.3}, "val_fraction"),
    ):
        with pytest.raises((ValidationError, InputError), match=word):
            load_train_config(None, base={**base, "data": {**base["data"], **bad}})


# ---- hard negatives drawn into training tiles ----------------------------------------------------------------
NEUTRAL_CAMERA = {  # every photometric change off: the camera augmentation leaves a tile as it is
    "brightness": 0.0,
    "contrast": (1.0, 1.0),
    "gamma": (1.0, 1.0),
    "gradient": 0.0,
    "channel_gain": 0.0,
    "saturation": (1.0, 1.0),
    "p_grey": 0.0,
    "p_blur": 0.0,
    "p_noise": 0.0,
    "p_jpeg": 0.0,
}


def test_hard_negatives_darken_training_tiles_and_keep_their_labels(tmp_path):
    """With the photometric changes neutral, augment='camera' gives the flipped and turned tile
    exactly (as augment='flips_rotations' does); with p_hard_negative 1 and only joints (dark
    grooves), every tile is that tile darkened along a groove, never brightened, labels unchanged."""
    root = _fake_deepcrack(tmp_path, ["a", "b"], h=64, w=96)
    flips = CrackTileDataset(root, tile=32, augment="flips_rotations", seed=4)
    plain = CrackTileDataset(root, tile=32, augment="camera", seed=4, camera=NEUTRAL_CAMERA)
    joints = CrackTileDataset(
        root,
        tile=32,
        augment="camera",
        seed=4,
        camera={**NEUTRAL_CAMERA, "p_hard_negative": 1.0, "hard_negative_kinds": ["joint"]},
    )
    assert 0 < flips.targets.sum() < len(flips)
    for i in range(len(flips)):
        (x, y), (xp, yp), (xj, yj) = flips[i], plain[i], joints[i]
        assert int(y) == int(yp) == int(yj)
        assert torch.allclose(x, xp, atol=1e-6)
        darker = x - xj
        assert darker.min() >= -1e-6 and darker.max() > 0.05  # a groove: darker somewhere, brighter nowhere


def test_camera_options_of_a_classifier_are_checked(tmp_path):
    from pydantic import ValidationError

    from crackscope.engine.config import load_train_config

    root = _fake_deepcrack(tmp_path, ["a"], h=64, w=96)
    with pytest.raises(InputError, match="p_sound"):
        CrackTileDataset(root, tile=32, augment="camera", camera={"p_sound": 0.2})
    with pytest.raises(InputError, match="augment='camera' only"):
        CrackTileDataset(root, tile=32, augment="flips_rotations", camera={"p_hard_negative": 0.2})
    with pytest.raises(InputError, match="p_hard_negative=1.5"):
        CrackTileDataset(root, tile=32, augment="camera", camera={"p_hard_negative": 1.5})
    data = {"root": str(root), "format": "deepcrack-tiles", "split": [0.7, 0.1, 0.2], "augment": "camera"}
    base = {"name": "t", "pipeline": "classify", "model": {"name": "resnet20"}, "loss": {"name": "cross_entropy"}}
    cfg = load_train_config(None, base={**base, "data": {**data, "camera": {"p_hard_negative": 0.25}}})
    assert cfg.data.camera == {"p_hard_negative": 0.25}
    cfg = load_train_config(None, base={**base, "data": {**data, "camera": {"p_synthetic_crack": 0.25}}})
    assert cfg.data.camera == {"p_synthetic_crack": 0.25}  # crack tiles: labels from masks, drawn cracks count
    neu = {"root": "x", "format": "neu-cls", "augment": "camera", "camera": {"p_synthetic_crack": 0.25}}
    with pytest.raises((ValidationError, InputError), match="p_synthetic_crack"):
        load_train_config(None, base={**base, "data": neu})
    for bad, word in (
        ({"camera": {"p_sound": 0.1}}, "p_sound"),
        ({"augment": True, "camera": {}}, "augment: camera"),
    ):
        with pytest.raises((ValidationError, InputError), match=word):
            load_train_config(None, base={**base, "data": {**data, **bad}})


def test_drawn_hairlines_make_crack_tiles_by_the_tiles_own_rule(tmp_path):
    """p_synthetic_crack = 1 on crack-free 64-px tiles of a flat grey photo: every tile gets a dark
    thin crack, and its label is crack exactly when the drawn pixels (the mask draw_hairline gives
    for the same draw) reach min_crack_pixels; p = 0 gives the tiles and labels of no option."""
    from crackscope.data.synthetic_cracks import draw_hairline, random_hairline

    _pair(tmp_path, "a", np.full((128, 192, 3), 128, np.uint8), np.zeros((128, 192), np.uint8))
    root = tmp_path
    flat = NEUTRAL_CAMERA
    drawn = CrackTileDataset(
        root, tile=64, min_crack_pixels=60, augment="camera", camera={**flat, "p_synthetic_crack": 1.0}
    )
    plain = CrackTileDataset(root, tile=64, min_crack_pixels=60, augment="camera", camera=flat)
    labels = []
    for i in range(len(drawn)):
        (x, y), (xp, yp) = drawn[i], plain[i]
        assert int(yp) == 0 and float((xp - xp.mean()).abs().max()) < 0.02
        rng = np.random.default_rng([drawn.seed, drawn.epoch, i, 3])
        rng.random()
        _, mask = draw_hairline(torch.zeros(1, 64, 64), random_hairline((64, 64), rng))
        assert int(y) == int(mask.sum() >= 60)
        assert float((xp - x).min()) > -0.02 and float((xp - x)[0][torch.from_numpy(mask)].mean()) > 0.05
        labels.append(int(y))
    assert 0 < sum(labels) < len(labels)  # both labels occur: the rule, not a constant, decides


def test_box_counts_against_counting_by_hand():
    mask = np.zeros((6, 8), bool)
    mask[[0, 2, 2, 5], [0, 3, 7, 7]] = True  # four pixels: (0,0), (2,3), (2,7), (5,7)
    boxes = np.array([[0, 6, 0, 8], [0, 3, 0, 4], [2, 3, 3, 8], [3, 6, 0, 7], [1, 1, 0, 8]])
    # whole mask 4; top-left 3 x 4 holds (0,0), (2,3); row 2 from column 3 holds (2,3), (2,7);
    # rows 3-5 before column 7 hold none; an empty box holds none
    assert box_counts(mask, boxes).tolist() == [4, 2, 2, 0, 0]
