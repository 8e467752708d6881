"""Surface-defect data: SD-saliency-900 reader, folder format, size policy, splits, augmentation, errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crackscope.data.images import load_image
from crackscope.data.splits import stratified_split
from crackscope.data.surface import JointAugment, SurfaceSegmentationDataset, prepare_image, restore
from crackscope.errors import InputError

SD_ROOT = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "SD-saliency-900"


def _save(path: Path, array: np.ndarray, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)


# ---- SD-saliency-900 (real files) --------------------------------------------------------------
def test_sd_saliency_reads_real_pairs_with_class_from_prefix():
    full = SurfaceSegmentationDataset(SD_ROOT, format="sd-saliency-900")
    assert len(full) == 720
    assert Counter(full.classes) == {"In": 240, "Pa": 240, "Sc": 240}
    picks = [full.classes.index(c) + k for c in ("In", "Pa", "Sc") for k in (0, 1)]
    ds = SurfaceSegmentationDataset(SD_ROOT, format="sd-saliency-900", indices=picks, pad_multiple=1)
    assert len(ds) == 6
    for j in range(6):
        x, y = ds[j]
        assert ds.original_sizes[j] == (200, 200)
        assert x.shape == (1, 200, 200) and y.shape == (1, 200, 200)
        assert x.dtype == torch.float32 and y.dtype == torch.float32
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0
        assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
        assert ds.stems[j].split("_")[0] == ds.classes[j]
        assert ds.image_paths[j].parent.name == "Source Images"
        # pixels are exactly the BMP's
        raw = np.asarray(Image.open(ds.image_paths[j]).convert("L"), dtype=np.float32) / 255
        assert np.array_equal(x[0].numpy(), raw)


def test_sd_saliency_default_pads_to_multiple_of_32_and_restores():
    ds = SurfaceSegmentationDataset(SD_ROOT, format="sd-saliency-900", indices=[0], in_channels=3)
    x, y = ds[0]
    assert x.shape == (3, 224, 224) and y.shape == (1, 224, 224)
    back = restore(y, ds.meta(0))
    assert back.shape == (1, 200, 200)
    ref = (np.asarray(Image.open(ds.mask_paths[0]).convert("L")) >= 128).astype(np.float32)
    assert np.array_equal(back[0].numpy(), ref)


# ---- folder format ------------------------------------------------------------------------------
def test_folder_format_grey_rgb_and_antialiased_mask(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    yy, xx = np.mgrid[0:17, 0:23]
    rgb = np.stack([xx * 10, yy * 12, 255 - xx * 8], axis=-1).astype(np.uint8)  # smooth: JPEG keeps it
    _save(tmp_path / "images" / "a.png", grey)
    _save(tmp_path / "images" / "b.jpg", rgb, quality=95)
    (tmp_path / "images" / "notes.txt").write_text("ignored")
    aa = np.zeros((20, 30), dtype=np.uint8)
    aa[0, :4] = [127, 128, 129, 255]
    aa[5, 5] = 200
    aa[6, 6] = 1
    _save(tmp_path / "masks" / "a.png", aa)
    mb = np.zeros((17, 23, 3), dtype=np.uint8)  # RGB mask with equal channels is accepted
    mb[2:5, 3:9] = 255
    _save(tmp_path / "masks" / "b.png", mb)

    ds = SurfaceSegmentationDataset(tmp_path, format="folder", pad_multiple=1)
    assert ds.stems == ["a", "b"] and ds.classes == [None, None]
    assert ds.original_sizes == [(20, 30), (17, 23)]
    x, y = ds[0]
    assert x.shape == (1, 20, 30)
    assert np.array_equal(x[0].numpy(), grey.astype(np.float32) / 255)
    expected = np.zeros((20, 30), dtype=np.float32)
    expected[0, 1:4] = 1  # 127 -> 0, 128/129/255 -> 1
    expected[5, 5] = 1
    assert np.array_equal(y[0].numpy(), expected)

    x, y = ds[1]
    assert x.shape == (1, 17, 23) and y.shape == (1, 17, 23)
    assert float(y.sum()) == 18
    x3, _ = SurfaceSegmentationDataset(tmp_path, format="folder", in_channels=3, pad_multiple=1)[1]
    assert x3.shape == (3, 17, 23)
    assert np.abs(x3.numpy().transpose(1, 2, 0) * 255 - rgb).mean() < 6  # JPEG, near-lossless
    x3g, _ = SurfaceSegmentationDataset(tmp_path, format="folder", in_channels=3, pad_multiple=1)[0]
    assert torch.equal(x3g[0], x3g[1]) and torch.equal(x3g[1], x3g[2])  # grey replicated


def test_folder_resize_policy_gives_fixed_size_and_binary_mask(tmp_path):
    rng = np.random.default_rng(1)
    for stem, (h, w) in {"p": (40, 25), "q": (13, 50)}.items():
        _save(tmp_path / "images" / f"{stem}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        m = np.zeros((h, w), dtype=np.uint8)
        m[h // 4 : h // 2, w // 4 : w // 2] = 255
        _save(tmp_path / "masks" / f"{stem}.png", m)
    ds = SurfaceSegmentationDataset(tmp_path, format="folder", size=(32, 48), in_channels=3)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch[0].shape == (2, 3, 32, 48) and batch[1].shape == (2, 1, 32, 48)
    assert set(torch.unique(batch[1]).tolist()) == {0.0, 1.0}
    assert restore(batch[1][1], ds.meta(1), mode="nearest").shape == (1, 13, 50)


# ---- size policy round trip ---------------------------------------------------------------------
def test_pad_and_restore_round_trip_is_exact():
    rng = np.random.default_rng(2)
    img = rng.random((3, 37, 45)).astype(np.float32)
    x, meta = prepare_image(img)
    assert x.shape == (3, 64, 64) and meta["policy"] == "pad"
    # reflection: the first padded row mirrors the row above the last one
    assert np.array_equal(x[:, 37, :45].numpy(), img[:, 35])
    assert np.array_equal(x[:, :37, 45].numpy(), img[:, :, 43])
    back = restore(x, meta)
    assert back.shape == (3, 37, 45) and np.array_equal(back.numpy(), img)
    assert np.array_equal(restore(x.numpy()[None], meta)[0], img)  # numpy, batched


def test_resize_and_restore_round_trip_returns_original_size_and_content():
    yy, xx = np.mgrid[0:60, 0:90].astype(np.float32)
    img = (0.5 + 0.4 * np.sin(xx / 15) * np.cos(yy / 12))[None]  # smooth
    x, meta = prepare_image(img, size=64)
    assert x.shape == (1, 64, 64) and meta["policy"] == "resize"
    back = restore(x, meta)
    assert back.shape == (1, 60, 90)
    assert float((back - torch.from_numpy(img)).abs().max()) < 0.05
    hard = restore((x > 0.5), meta)
    assert hard.dtype == torch.bool and hard.shape == (1, 60, 90)


# ---- stratified split -----------------------------------------------------------------------------
def test_stratified_split_keeps_proportions_deterministic_and_disjoint():
    labels = ["In"] * 100 + ["Pa"] * 60 + ["Sc"] * 40
    s1 = stratified_split(labels, (0.7, 0.15, 0.15), seed=3)
    s2 = stratified_split(labels, (0.7, 0.15, 0.15), seed=3)
    s3 = stratified_split(labels, (0.7, 0.15, 0.15), seed=4)
    assert s1 == s2 and s1 != s3
    assert set(s1) == {"train", "val", "test"}
    all_idx = s1["train"] + s1["val"] + s1["test"]
    assert sorted(all_idx) == list(range(200))  # disjoint and complete
    assert Counter(labels[i] for i in s1["train"]) == {"In": 70, "Pa": 42, "Sc": 28}
    assert Counter(labels[i] for i in s1["val"]) == {"In": 15, "Pa": 9, "Sc": 6}
    assert Counter(labels[i] for i in s1["test"]) == {"In": 15, "Pa": 9, "Sc": 6}
    two = stratified_split([None] * 10, (0.8, 0.2), seed=0)
    assert len(two["train"]) == 8 and len(two["test"]) == 2
    with pytest.raises(InputError):
        stratified_split(labels, (0.5, 0.2), seed=0)


# ---- augmentation -------------------------------------------------------------------------------
def test_augmentation_keeps_image_and_mask_aligned_and_mask_binary():
    torch.manual_seed(0)
    mask = torch.zeros(1, 64, 64)
    mask[:, 10:30, 15:50] = 1
    mask[:, 40:55, 5:20] = 1
    geo = JointAugment(rotation_deg=40, hflip=0.5, vflip=0.5, brightness=0, contrast=0, p_rotate=1.0)
    flips = JointAugment(rotation_deg=0, hflip=0.5, vflip=0.5, brightness=0, contrast=0)
    for _ in range(8):
        img, msk = flips(mask.clone(), mask.clone())
        assert torch.equal(img, msk)  # flips: exactly identical
        img, msk = geo(mask.clone(), mask.clone())
        assert set(torch.unique(msk).tolist()) <= {0.0, 1.0}
        assert msk.sum() > 0
        # image resampled bilinear, mask nearest: they may differ only along edges
        assert float(((img >= 0.5).float() != msk).float().mean()) < 0.02
    full = JointAugment(brightness=0.3, contrast=0.3, p_jitter=1.0, p_rotate=1.0)
    img, msk = full(torch.rand(1, 64, 64), mask.clone())
    assert img.shape == (1, 64, 64) and 0 <= float(img.min()) and float(img.max()) <= 1
    assert set(torch.unique(msk).tolist()) <= {0.0, 1.0}


def test_dataset_with_augment_true_runs(tmp_path):
    _save(tmp_path / "images" / "a.png", np.full((32, 32, 3), 100, dtype=np.uint8))
    _save(tmp_path / "masks" / "a.png", np.eye(32, dtype=np.uint8) * 255)
    x, y = SurfaceSegmentationDataset(tmp_path, format="folder", augment=True, in_channels=3)[0]
    assert x.shape == (3, 32, 32) and set(torch.unique(y).tolist()) <= {0.0, 1.0}


# ---- bad input ----------------------------------------------------------------------------------
def _pair(root: Path, stem: str, h: int = 16, w: int = 16, mh: int | None = None) -> None:
    _save(root / "images" / f"{stem}.png", np.zeros((h, w), dtype=np.uint8))
    _save(root / "masks" / f"{stem}.png", np.zeros((mh or h, w), dtype=np.uint8))


def test_corrupt_image_raises_input_error_naming_file(tmp_path):
    _pair(tmp_path, "good")
    (tmp_path / "images" / "broken.png").write_bytes(b"this is not a png")
    _save(tmp_path / "masks" / "broken.png", np.zeros((16, 16), dtype=np.uint8))
    with pytest.raises(InputError, match="broken.png"):
        SurfaceSegmentationDataset(tmp_path, format="folder")


def test_truncated_image_raises_on_read_naming_file(tmp_path):
    _pair(tmp_path, "cut", 64, 64)
    p = tmp_path / "images" / "cut.png"
    _save(p, np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(InputError, match="cut.png"):
        SurfaceSegmentationDataset(tmp_path, format="folder")[0]
    with pytest.raises(InputError, match="cut.png"):
        load_image(p)


def test_missing_mask_raises_input_error_naming_image(tmp_path):
    _pair(tmp_path, "ok")
    _save(tmp_path / "images" / "lonely.jpg", np.zeros((16, 16), dtype=np.uint8))
    with pytest.raises(InputError, match="lonely.jpg"):
        SurfaceSegmentationDataset(tmp_path, format="folder")


def test_mask_of_other_size_raises_input_error_naming_files(tmp_path):
    _pair(tmp_path, "skew", 16, 16, mh=20)
    with pytest.raises(InputError, match="skew.png"):
        SurfaceSegmentationDataset(tmp_path, format="folder")


def test_empty_folder_and_unknown_format_raise_input_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(InputError, match="images"):
        SurfaceSegmentationDataset(tmp_path, format="folder")
    with pytest.raises(InputError, match="Source Images"):
        SurfaceSegmentationDataset(tmp_path, format="sd-saliency-900")
    with pytest.raises(InputError, match="voc"):
        SurfaceSegmentationDataset(tmp_path, format="voc")
    with pytest.raises(InputError, match="nowhere"):
        SurfaceSegmentationDataset(tmp_path / "nowhere", format="folder")


def test_dataloader_workers_and_pickling(tmp_path):
    for k in range(4):
        _pair(tmp_path, f"s{k}", 24, 24)
    ds = SurfaceSegmentationDataset(tmp_path, format="folder", augment=True)
    batches = list(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2))
    assert [b[0].shape for b in batches] == [(2, 1, 32, 32)] * 2
