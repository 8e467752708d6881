"""A surface run on several datasets at once (``data.sources``): each source read in its own
layout and split as a one-source run splits it, training on camera-robust crops of images of
different sizes, the threshold chosen on the validation images of every source, and evaluation
of one source scoring that source's held-out images only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackscope.engine.config import load_train_config
from crackscope.engine.surface import make_surface_split
from crackscope.engine.train import train
from crackscope.errors import InputError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cracks(root: Path, n: int, h: int, w: int, seed: int, dark: float, layout: str = "folder") -> Path:
    """Grey photos of brightness ``dark`` + 0.4 with a darker crack line each, in the ``folder``
    layout or in Crack500's (``train_img/IMG_<k>.jpg``, ``train_lab/IMG_<k>_mask.png``)."""
    rng = np.random.default_rng(seed)
    images, masks = ("images", "masks") if layout == "folder" else ("train_img", "train_lab")
    for d in (images, masks):
        (root / d).mkdir(parents=True)
    for k in range(n):
        mask = np.zeros((h, w), dtype=bool)
        if rng.random() < 0.5:
            mask[:, rng.integers(3, w - 6) :][:, :3] = True
        else:
            mask[rng.integers(3, h - 6) :][:3] = True
        image = dark + 0.4 + 0.03 * rng.standard_normal((h, w)) - 0.3 * mask
        stem, suffix = (f"c{k}", "") if layout == "folder" else (f"IMG_{k}", "_mask")
        Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(root / images / f"{stem}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / masks / f"{stem}{suffix}.png")
    return root


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory):
    base = tmp_path_factory.mktemp("sources")
    return _cracks(base / "bright", 8, 40, 48, 0, 0.4), _cracks(base / "dark", 8, 36, 56, 1, 0.0, "crack500")


def _cfg(sources, out_dir, **data):
    return {
        "name": "both",
        "pipeline": "surface",
        "seed": 2,
        "out_dir": str(out_dir),
        "data": {
            "sources": [
                {"name": n, "root": str(r), "format": "crack500" if n == "dark" else "folder"} for n, r in sources
            ],
            "split": [0.5, 0.25, 0.25],
            "augment": "camera",
            "crop": 32,
            "batch_size": 4,
            **data,
        },
        "model": {"name": "unet", "base_channels": 4, "depth": 2, "input_norm": "per_image"},
        "loss": {"name": "ce_dice"},
        "trainer": {"max_epochs": 2, "choose_threshold": True},
    }


def test_each_source_is_split_as_a_run_on_it_alone_would_split_it():
    sources = [("deepcrack", SHARED / "DeepCrack", "deepcrack"), ("crack500", SHARED / "Crack500", "crack500")]
    base = {"name": "x", "pipeline": "surface", "model": {"name": "unet"}, "loss": {"name": "bce"}}
    both = load_train_config(
        None,
        base={
            **base,
            "data": {
                "sources": [{"name": n, "root": str(r), "format": f} for n, r, f in sources],
                "split": [0.7, 0.1, 0.2],
                "augment": "camera",
                "crop": 64,
            },
        },
    )
    joined = make_surface_split(both.data, 0, Path("/nonexistent"))
    for name, root, fmt in sources:
        one = load_train_config(
            None, base={**base, "data": {"root": str(root), "format": fmt, "split": [0.7, 0.1, 0.2], "batch_size": 1}}
        )
        alone = make_surface_split(one.data, 0, Path("/nonexistent"))
        for part in ("train", "val", "test"):
            mine = [s.split("/", 1)[1] for s in joined["stems"][part] if s.startswith(f"{name}/")]
            assert mine == alone["stems"][part], (name, part)
    assert sum(len(v) for v in joined["stems"].values()) == 300 + 286


def test_training_on_two_sources_of_different_sizes(two_sources, tmp_path, cli):
    sources = [("bright", two_sources[0]), ("dark", two_sources[1])]
    run = train(load_train_config(None, base=_cfg(sources, tmp_path)), progress=False)
    split = json.loads((run / "split.json").read_text())["stems"]
    for part, n in (("train", 4), ("val", 2), ("test", 2)):
        for name in ("bright", "dark"):
            assert sum(s.startswith(f"{name}/") for s in split[part]) == n, (part, name)
    point = json.loads((run / "operating_point.json").read_text())
    assert point["n_images"] == 4 and point["data"] == "bright+dark"  # validation images of both
    m = json.loads((run / "metrics.json").read_text())
    assert m["n_images"] == 4 and set(m["per_class"]) == {"bright", "dark"} and m["data"] == "bright+dark"
    # evaluating one source scores its held-out images only, at their own size
    out = cli("evaluate", run, "--data", two_sources[1], "--out", tmp_path / "ev")  # its format: the source's
    assert out.returncode == 0, out.stderr
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert ev["subset"] == "test split" and ev["n_images"] == 2
    # the cascade segments with windows of the training crop's side unless told otherwise
    from crackscope.deploy.cascade import load_segmenter

    assert load_segmenter(run).window == 32
    image = two_sources[1] / "train_img" / "IMG_0.png"
    out = cli("inspect-image", image, "--segmenter", run, "--all-tiles", "--out", tmp_path / "insp")
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "insp" / "summary.json").read_text())
    assert summary["window"] == 32, summary
    # the per-image standardisation is part of the exported graph
    from crackscope.deploy.export import export_onnx

    assert export_onnx(run)["max_abs_diff"] < 1e-4


@pytest.mark.parametrize(
    "data, word",
    [
        ({"root": "x"}, "not both"),
        ({"sources": None}, "not both or neither"),
        ({"crop": None}, "crop"),
        ({"augment": True, "crop": None, "camera": {"p_blur": 0.1}}, "data.camera"),
        ({"sources": [{"name": "a", "root": "x", "format": "folder"}] * 2}, "distinct"),
    ],
)
def test_config_errors_name_the_setting(two_sources, tmp_path, data, word):
    sources = [("bright", two_sources[0]), ("dark", two_sources[1])]
    raw = _cfg(sources, tmp_path)
    raw["data"] = {k: v for k, v in {**raw["data"], **data}.items() if v is not None}
    with pytest.raises(InputError, match=word):
        load_train_config(None, base=raw)


def test_sources_of_different_sizes_need_crops(two_sources, tmp_path, cli):
    sources = [("bright", two_sources[0]), ("dark", two_sources[1])]
    raw = _cfg(sources, tmp_path)
    raw["data"] = {k: v for k, v in raw["data"].items() if k not in ("augment", "crop")}
    with pytest.raises(InputError, match="cannot share a batch"):
        make_surface_split(load_train_config(None, base=raw).data, 0, tmp_path / "nowhere")


# ---- the cascade's tile classifier on several datasets ---------------------------------------------
def _tile_cfg(**data):
    return load_train_config(
        None,
        base={
            "name": "t",
            "pipeline": "classify",
            "data": {"format": "deepcrack-tiles", "split": [0.7, 0.1, 0.2], "tiles": {"tile": 64}, **data},
            "model": {"name": "resnet20"},
            "loss": {"name": "cross_entropy"},
        },
    )


def test_tiles_of_a_crack500_photo_count_its_mask_pixels():
    from crackscope.data.tiles import CrackTileDataset

    root = SHARED / "Crack500"
    stem = sorted(p.stem for p in (root / "train_img").glob("*.jpg"))[0]
    ds = CrackTileDataset(root, tile=64, sources=[("crack500", root, "crack500")], images=[f"crack500/{stem}"])
    mask = np.asarray(Image.open(root / "train_lab" / f"{stem}_mask.png").convert("L")) >= 128
    h, w = mask.shape  # 360 x 640: rows start 0, 64, ..., 256 and 296 (the last aligned to the border)
    assert ds.image_stems == [f"crack500/{stem}"] and len(ds) == 6 * 10
    for i in range(len(ds)):
        y, x = ds.origins[i].tolist()
        assert y + 64 <= h and x + 64 <= w
        assert ds.crack_pixels[i] == int(mask[y : y + 64, x : x + 64].sum())
        assert ds.targets[i] == int(ds.crack_pixels[i] >= 1)
    assert sorted({int(y) for y, _ in ds.origins.tolist()}) == [0, 64, 128, 192, 256, 296]


def test_tile_sources_are_split_as_the_segmenter_of_the_same_sources():
    from crackscope.engine.classify import make_tile_split

    sources = [
        {"name": "deepcrack", "root": str(SHARED / "DeepCrack"), "format": "deepcrack"},
        {"name": "crack500", "root": str(SHARED / "Crack500"), "format": "crack500"},
    ]
    tiles = make_tile_split(_tile_cfg(sources=sources).data, 0)
    surface = load_train_config(
        None,
        base={
            "name": "s",
            "pipeline": "surface",
            "data": {"sources": sources, "split": [0.7, 0.1, 0.2], "augment": "camera", "crop": 64},
            "model": {"name": "unet"},
            "loss": {"name": "bce"},
        },
    )
    assert tiles["stems"] == make_surface_split(surface.data, 0, Path("/nonexistent"))["stems"]
    # one DeepCrack root alone: the tile split of before, by source photo
    alone = make_tile_split(_tile_cfg(root=str(SHARED / "DeepCrack")).data, 0)["stems"]
    for part in ("train", "val", "test"):
        assert [s.split("/", 1)[1] for s in tiles["stems"][part] if s.startswith("deepcrack/")] == alone[part]


def test_tile_sources_config_errors():
    with pytest.raises(InputError, match="deepcrack-tiles only"):
        _tile_cfg(format="folder", tiles=None, sources=[{"name": "a", "root": "x", "format": "folder"}])
    with pytest.raises(InputError, match="not both"):
        _tile_cfg(root="x", sources=[{"name": "a", "root": "x", "format": "folder"}])
