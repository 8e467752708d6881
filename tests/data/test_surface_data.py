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


# ---- Crack500 (real files) ----------------------------------------------------------------------
CRACK500_ROOT = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "Crack500"
needs_crack500 = pytest.mark.skipif(
    not (CRACK500_ROOT / "train_img").is_dir(), reason=f"Crack500 not found at {CRACK500_ROOT}"
)


@needs_crack500
def test_crack500_reads_real_pairs_with_mask_suffix_and_binary_masks():
    full = SurfaceSegmentationDataset(CRACK500_ROOT, format="crack500", in_channels=3)
    assert len(full) == 286 and full.classes == [None] * 286
    ds = SurfaceSegmentationDataset(CRACK500_ROOT, format="crack500", indices=[0, 1, 2], in_channels=3, pad_multiple=1)
    grey_levels = set()
    for j in range(3):
        x, y = ds[j]
        # the label stem is the image stem + "_mask"
        assert ds.mask_paths[j].name == f"{ds.stems[j]}_mask.png"
        assert ds.image_paths[j].name == f"{ds.stems[j]}.jpg" and ds.image_paths[j].parent.name == "train_img"
        assert ds.original_sizes[j] == (360, 640)
        assert x.shape == (3, 360, 640) and y.shape == (1, 360, 640)
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        # anti-aliased RGB masks with equal channels, crack = value >= 128
        raw = np.asarray(Image.open(ds.mask_paths[j]))
        assert raw.shape == (360, 640, 3) and (raw[..., 0] == raw[..., 1]).all() and (raw[..., 0] == raw[..., 2]).all()
        grey_levels |= set(np.unique(raw[..., 0]).tolist())
        assert np.array_equal(y[0].numpy(), (raw[..., 0] >= 128).astype(np.float32))
        assert 0 < float(y.sum()) < y.numel()
    assert grey_levels - {0, 255}, "the masks should be anti-aliased (the threshold matters)"
    # the default size policy pads 360 up to 384
    padded, _ = SurfaceSegmentationDataset(CRACK500_ROOT, format="crack500", indices=[0], in_channels=3)[0]
    assert padded.shape == (3, 384, 640)


@needs_crack500
def test_crack500_groups_keep_bursts_of_one_crack_together():
    from crackscope.data.splits import group_split
    from crackscope.data.surface import crack500_bursts

    stems = ["20160222_081113", "20160222_081111", "20160222_081130", "20160223_081131", "IMG_2917"]
    # 081113 is 2 s after 081111 (one burst); 081130 is 17 s later; the next day starts a new one
    assert crack500_bursts(stems) == {
        "20160222_081111": "20160222_081111",
        "20160222_081113": "20160222_081111",
        "20160222_081130": "20160222_081130",
        "20160223_081131": "20160223_081131",
        "IMG_2917": "IMG_2917",
    }
    full = SurfaceSegmentationDataset(CRACK500_ROOT, format="crack500")
    group = dict(zip(full.stems, full.groups))
    assert group["20160222_081113"] == group["20160222_081111"] == "20160222_081111"
    # groups do not depend on which pairs are selected
    i = full.stems.index("20160222_081113")
    assert SurfaceSegmentationDataset(CRACK500_ROOT, format="crack500", indices=[i]).groups == ["20160222_081111"]
    split = group_split(full.groups, (0.7, 0.15, 0.15), seed=0)
    part = {k: {full.groups[i] for i in v} for k, v in split.items()}
    assert not (part["train"] & part["val"]) and not (part["train"] & part["test"]) and not (part["val"] & part["test"])


@needs_crack500
def test_crack500_missing_label_is_one_line_naming_the_mask(tmp_path):
    import shutil

    names = sorted(p.stem for p in (CRACK500_ROOT / "train_img").glob("*.jpg"))[:2]
    for d in ("train_img", "train_lab"):
        (tmp_path / d).mkdir()
    for s in names:
        shutil.copy(CRACK500_ROOT / "train_img" / f"{s}.jpg", tmp_path / "train_img")
    shutil.copy(CRACK500_ROOT / "train_lab" / f"{names[0]}_mask.png", tmp_path / "train_lab")
    assert len(SurfaceSegmentationDataset(tmp_path, format="crack500", indices=[0])) == 1
    with pytest.raises(InputError) as err:
        SurfaceSegmentationDataset(tmp_path, format="crack500")
    msg = str(err.value)
    assert "\n" not in msg and f"{names[1]}_mask" in msg and f"{names[1]}.jpg" in msg and "train_lab" in msg
    # a mask named like the image (the folder / DeepCrack convention) is not taken for a Crack500 label
    shutil.copy(CRACK500_ROOT / "train_lab" / f"{names[0]}_mask.png", tmp_path / "train_lab" / f"{names[1]}.png")
    with pytest.raises(InputError, match=f"{names[1]}_mask"):
        SurfaceSegmentationDataset(tmp_path, format="crack500")


CRACKPATCHES = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "CrackPatches"


def test_crackpatches_reads_both_parts_with_jpeg_masks_and_photo_groups(tmp_path):
    """train/ and valid/ are one set of pairs; the JPEG masks are cut at 128 (compression noise
    around 0 and 255 stays on its side); patches <photo>-<k> are grouped by photo."""
    rng = np.random.default_rng(0)
    for part, stems in (("train", ["A_1-1", "A_1-2", "B-1"]), ("valid", ["C-4"])):
        for stem in stems:
            mask = np.zeros((40, 48), np.uint8)
            mask[10:14, :] = 255
            noisy = np.clip(mask.astype(int) + rng.integers(-30, 30, mask.shape), 0, 255).astype(np.uint8)
            _save(tmp_path / part / f"{stem}.jpg", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), quality=90)
            _save(tmp_path / f"{part}_lab" / f"{stem}.jpg", noisy, quality=75)
    ds = SurfaceSegmentationDataset(tmp_path, format="crackpatches", in_channels=3, pad_multiple=1)
    assert ds.stems == ["A_1-1", "A_1-2", "B-1", "C-4"] and ds.groups == ["A_1", "A_1", "B", "C"]
    _, y = ds[3]
    expected = np.zeros((40, 48), np.float32)
    expected[10:14, :] = 1
    assert np.array_equal(y[0].numpy(), expected)
    _save(tmp_path / "valid" / "B-1.jpg", np.zeros((40, 48, 3), np.uint8))
    _save(tmp_path / "valid_lab" / "B-1.jpg", np.zeros((40, 48), np.uint8))
    with pytest.raises(InputError, match="image 'B-1' is in more than one of its folders"):
        SurfaceSegmentationDataset(tmp_path, format="crackpatches")


@pytest.mark.skipif(not CRACKPATCHES.is_dir(), reason="needs ../shared/datasets/CrackPatches")
def test_crackpatches_real_surfaces():
    counts = {"GAPs384": 942 + 157, "AigleRN-TRIMM": 152 + 39, "ShadowCrack": 406 + 140}  # its README
    for name, n in counts.items():
        ds = SurfaceSegmentationDataset(CRACKPATCHES / name, format="crackpatches", in_channels=3, pad_multiple=1)
        assert len(ds) == n
        _, y = ds[0]
        assert 0 < float(y.sum()) < y.numel()  # every patch holds a crack
