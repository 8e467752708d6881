"""Image-classification data: NEU-CLS (flat and per-class folders), class folders, CIFAR-10 batches
(with a restricted unpickler), resizing, augmentation, stratified splits, errors."""

from __future__ import annotations

import json
import os
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crackscope.data.classification import NEU_CLS_CLASSES, ImageClassificationDataset, detect_format, read_cifar_batch
from crackscope.data.splits import stratified_split, write_split
from crackscope.errors import InputError

NEU_ROOT = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "NEU-CLS"
NEU_ORDER = ["Cr", "In", "Pa", "PS", "RS", "Sc"]


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# ---- NEU-CLS, the real development portion ----------------------------------------------------------
@pytest.mark.skipif(not NEU_ROOT.is_dir(), reason="shared NEU-CLS data not present")
def test_neu_cls_real_counts_classes_and_pixels():
    full = ImageClassificationDataset(NEU_ROOT)
    assert full.format == "neu-cls"
    assert full.classes == NEU_ORDER
    assert len(full) == 1440
    assert np.bincount(full.targets, minlength=6).tolist() == [240] * 6  # README: 240 per class
    assert full.targets.dtype == np.int64
    for f, t, s in zip(full.files, full.targets, full.stems):
        assert f.name.split("_")[0] == full.classes[t] and s == f.stem

    picks = [int(np.flatnonzero(full.targets == k)[0]) for k in range(6)]
    ds = ImageClassificationDataset(NEU_ROOT, format="neu-cls", indices=picks)
    for j in range(6):
        x, y = ds[j]
        assert y.dtype == torch.int64 and int(y) == j
        assert x.dtype == torch.float32 and x.shape == (1, 200, 200)
        with Image.open(ds.files[j]) as im:
            assert im.size == (200, 200) and im.convert("L").mode == "L"
            raw = np.asarray(im.convert("L"), dtype=np.float32) / 255
        assert np.array_equal(x[0].numpy(), raw)

    rgb = ImageClassificationDataset(NEU_ROOT, indices=picks[:1], channels=3, size=64)
    x, _ = rgb[0]
    assert x.shape == (3, 64, 64) and torch.equal(x[0], x[1]) and torch.equal(x[0], x[2])
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


# ---- one folder per class --------------------------------------------------------------------------
def test_folder_format_pixels_and_natural_class_order(tmp_path):
    rng = np.random.default_rng(1)
    grey = {c: rng.integers(0, 256, (6, 9), dtype=np.uint8) for c in ("class1", "class2", "class10")}
    for c, a in grey.items():
        _save(tmp_path / c / "img_2.png", a)
        _save(tmp_path / c / "img_10.png", 255 - a)
    colour = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    _save(tmp_path / "class2" / "img_1.png", colour)

    ds = ImageClassificationDataset(tmp_path)
    assert ds.format == "folder" and detect_format(tmp_path) == "folder"
    assert ds.classes == ["class1", "class2", "class10"]
    assert ds.targets.tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert ds.stems == [
        "class1/img_2",
        "class1/img_10",
        "class2/img_1",
        "class2/img_2",
        "class2/img_10",
        "class10/img_2",
        "class10/img_10",
    ]
    assert [f.parent.name for f in ds.files] == [ds.classes[t] for t in ds.targets]
    x, y = ds[0]
    assert int(y) == 0 and np.array_equal(x.numpy(), grey["class1"][None] / np.float32(255))
    x, _ = ds[1]
    assert np.array_equal(x.numpy(), (255 - grey["class1"])[None] / np.float32(255))
    # colour to grey: ITU-R 601 luminance (R 0.299, G 0.587, B 0.114)
    x, y = ds[2]
    lum = colour.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255
    assert int(y) == 1 and x.shape == (1, 5, 4) and np.abs(x[0].numpy() - lum).max() <= 1 / 255 + 1e-6

    rgb = ImageClassificationDataset(tmp_path, format="folder", channels=3, indices=[2, 5])
    x, _ = rgb[0]
    assert np.array_equal(x.numpy(), colour.transpose(2, 0, 1) / np.float32(255))
    x, y = rgb[1]
    assert int(y) == 2 and x.shape == (3, 6, 9) and np.array_equal(x[2].numpy(), grey["class10"] / np.float32(255))

    batch = next(
        iter(
            torch.utils.data.DataLoader(
                ImageClassificationDataset(tmp_path, size=(8, 12), indices=[0, 2, 6]), batch_size=3
            )
        )
    )
    assert batch[0].shape == (3, 1, 8, 12) and batch[1].dtype == torch.int64
    assert batch[1].tolist() == [0, 1, 2]


def test_resize_keeps_a_constant_image_constant(tmp_path):
    _save(tmp_path / "a" / "x.png", np.full((40, 30), 77, np.uint8))
    _save(tmp_path / "b" / "y.png", np.full((10, 10), 200, np.uint8))
    ds = ImageClassificationDataset(tmp_path, size=16)
    for i, v in ((0, 77), (1, 200)):
        x, _ = ds[i]
        assert x.shape == (1, 16, 16)
        assert torch.allclose(x, torch.full_like(x, v / 255), atol=1e-6)


def _neu_images(n=2):
    rng = np.random.default_rng(2)
    return {f"{p}_{k}": rng.integers(0, 256, (8, 8), dtype=np.uint8) for p in NEU_ORDER for k in range(1, n + 1)}


def test_neu_folder_variant_maps_to_the_flat_classes(tmp_path):
    images = _neu_images()
    folders = {
        "Cr": "crazing",
        "In": "Inclusion",
        "Pa": "patches",
        "PS": "pitted_surface",
        "RS": "Rolled-in Scale",
        "Sc": "Sc",
    }
    for stem, a in images.items():
        _save(tmp_path / "flat" / f"{stem}.bmp", a)
        _save(tmp_path / "tree" / folders[stem.split("_")[0]] / f"{stem}.bmp", a)
    flat = ImageClassificationDataset(tmp_path / "flat")
    tree = ImageClassificationDataset(tmp_path / "tree")
    assert flat.format == tree.format == "neu-cls"
    assert flat.classes == tree.classes == NEU_ORDER and set(NEU_CLS_CLASSES) == set(NEU_ORDER)
    by_stem_flat = {f.stem: flat.classes[t] for f, t in zip(flat.files, flat.targets)}
    by_stem_tree = {f.stem: tree.classes[t] for f, t in zip(tree.files, tree.targets)}
    assert by_stem_flat == by_stem_tree == {s: s.split("_")[0] for s in images}
    assert tree.stems[0] == "crazing/Cr_1"
    x, y = tree[tree.stems.index("pitted_surface/PS_2")]
    assert int(y) == 3 and np.array_equal(x[0].numpy(), images["PS_2"] / np.float32(255))
    # a subset of the six class folders is read with format="neu-cls" (auto would say "folder")
    sub = tmp_path / "sub"
    _save(sub / "scratches" / "Sc_1.bmp", images["Sc_1"])
    _save(sub / "inclusion" / "In_1.bmp", images["In_1"])
    assert detect_format(sub) == "folder"
    ds = ImageClassificationDataset(sub, format="neu-cls")
    assert ds.classes == NEU_ORDER and ds.targets.tolist() == [1, 5]


# ---- augmentation ----------------------------------------------------------------------------------
def _dihedral(a: torch.Tensor) -> list[torch.Tensor]:
    return [torch.rot90(b, k, dims=(-2, -1)) for b in (a, a.flip(-1)) for k in range(4)]


def test_augment_is_a_seeded_flip_or_quarter_turn(tmp_path):
    rng = np.random.default_rng(3)
    _save(tmp_path / "a" / "sq.png", rng.integers(0, 256, (6, 6), dtype=np.uint8))
    _save(tmp_path / "a" / "wide.png", rng.integers(0, 256, (4, 7), dtype=np.uint8))
    plain = ImageClassificationDataset(tmp_path)
    aug = ImageClassificationDataset(tmp_path, augment=True, seed=5)
    again = ImageClassificationDataset(tmp_path, augment=True, seed=5)
    seen = set()
    for epoch in range(12):
        aug.set_epoch(epoch)
        again.set_epoch(epoch)
        for i in range(2):
            x0, y0 = plain[i]
            x, y = aug[i]
            assert int(y) == int(y0) and torch.equal(x, again[i][0])
            options = _dihedral(x0) if i == 0 else [x0, x0.flip(-1), x0.flip(-2), x0.flip(-1).flip(-2)]
            hits = [k for k, o in enumerate(options) if o.shape == x.shape and torch.equal(o, x)]
            assert hits, (epoch, i)
            if i == 0:
                seen.add(hits[0])
    assert len(seen) >= 4  # several of the 8 orientations occur in 12 epochs
    other = ImageClassificationDataset(tmp_path, augment=True, seed=6)
    draws = []
    for epoch in range(12):
        aug.set_epoch(epoch)
        other.set_epoch(epoch)
        draws.append(torch.equal(aug[0][0], other[0][0]))
    assert not all(draws)


def _padded_crop(image: np.ndarray, dy: int, dx: int, hflip: bool, pad: int = 4) -> np.ndarray:
    """Pixel by pixel: out[y, x] = image[y + dy - pad, x' + dx - pad] (0 outside), x' mirrored when flipped."""
    h, w = image.shape[-2:]
    out = np.zeros_like(image)
    for y in range(h):
        for x in range(w):
            xs = (w - 1 - x) if hflip else x
            sy, sx = y + dy - pad, xs + dx - pad
            if 0 <= sy < h and 0 <= sx < w:
                out[..., y, x] = image[..., sy, sx]
    return out


def test_crop_flip_is_a_seeded_shift_within_4_pixels_and_a_horizontal_flip(tmp_path):
    # every pixel distinct and non-zero, so the shift and the flip can be read off the output
    image = (1 + np.arange(6 * 7).reshape(6, 7) * 5).astype(np.uint8)
    _save(tmp_path / "a" / "img.png", image)
    plain = ImageClassificationDataset(tmp_path)
    aug = ImageClassificationDataset(tmp_path, augment="crop_flip", seed=5)
    again = ImageClassificationDataset(tmp_path, augment="crop_flip", seed=5)
    x0 = plain[0][0].numpy()
    candidates = {(dy, dx, f): _padded_crop(x0, dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)}
    seen = set()
    for epoch in range(40):
        aug.set_epoch(epoch)
        again.set_epoch(epoch)
        x = aug[0][0]
        assert x.shape == (1, 6, 7) and torch.equal(x, again[0][0])
        hits = [k for k, c in candidates.items() if np.array_equal(c, x.numpy())]
        assert len(hits) == 1, (epoch, hits)
        seen.add(hits[0])
    assert {f for _, _, f in seen} == {False, True}  # both orientations
    assert len({(dy, dx) for dy, dx, _ in seen}) >= 20  # many of the 81 offsets in 40 draws
    with pytest.raises(InputError, match="crop_flip"):
        ImageClassificationDataset(tmp_path, augment="crop")


def test_camera_augment_flips_then_changes_exposure_contrast_and_more_seeded_per_epoch(tmp_path):
    """augment="camera": the seeded flips / quarter turns of "flips_rotations" (the same draws), then
    CameraAugment's photometric changes from (seed, epoch, item, 1). Reproducible, different from
    epoch to epoch, in [0, 1], labels untouched; a change of exposure and contrast shows as a spread
    of tile means and standard deviations that the plain tile does not have."""
    from crackscope.data.camera_augment import CameraAugment

    rng = np.random.default_rng(0)
    image = (96 + 64 * rng.random((16, 16))).astype(np.uint8)
    image[7:9, :] = 20  # a dark crack across
    _save(tmp_path / "crack" / "t.png", image)
    flips = ImageClassificationDataset(tmp_path, augment="flips_rotations", seed=2)
    cam = ImageClassificationDataset(tmp_path, augment="camera", seed=2)
    again = ImageClassificationDataset(tmp_path, augment="camera", seed=2)
    means, stds = [], []
    for epoch in range(12):
        for d in (flips, cam, again):
            d.set_epoch(epoch)
        x, y = cam[0]
        assert torch.equal(x, again[0][0]) and int(y) == 0 and x.shape == (1, 16, 16)
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        expected = CameraAugment().photometric(flips[0][0], np.random.default_rng([2, epoch, 0, 1]))
        assert torch.equal(x, expected)
        means.append(float(x.mean()))
        stds.append(float(x.std()))
    plain = ImageClassificationDataset(tmp_path)[0][0]
    assert np.ptp(means) > 0.1 and np.ptp(stds) > 0.03  # exposure and contrast vary by epoch
    assert float(plain.mean()) not in means


# ---- CIFAR-10 python batches -----------------------------------------------------------------------
CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def _write_cifar(folder: Path, n_per_batch: int = 3, seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Fake CIFAR-10 batches laid out as the real ones (protocol-2 pickles of dicts with bytes keys)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        d = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n_per_batch)],
        }
        raw = pickle.dumps(d, protocol=2)
        if name == "data_batch_1":  # numpy 1.x (as in the real files) names the module numpy.core
            raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        (folder / name).write_bytes(raw)
        written[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"num_cases_per_batch": n_per_batch, b"label_names": CIFAR_NAMES, b"num_vis": 3072}, f, protocol=2)
    return written


def test_cifar10_batches_read_exactly(tmp_path):
    written = _write_cifar(tmp_path / "cifar-10-batches-py")
    train = ImageClassificationDataset(tmp_path, channels=3)  # auto, batches in the standard subfolder
    assert train.format == "cifar10" and train.files is None and len(train) == 15
    assert train.classes == [n.decode() for n in CIFAR_NAMES]
    assert train.targets.tolist() == sum((written[f"data_batch_{k}"][1] for k in range(1, 6)), [])
    for i in (0, 4, 14):
        name, row = f"data_batch_{i // 3 + 1}", i % 3
        assert train.stems[i] == f"{name}/{row}"
        x, y = train[i]
        expected = written[name][0][row].reshape(3, 32, 32).astype(np.float32) / 255
        assert x.dtype == torch.float32 and np.array_equal(x.numpy(), expected)
        assert int(y) == written[name][1][row]

    test = ImageClassificationDataset(tmp_path / "cifar-10-batches-py", format="cifar10", split="test", indices=[2, 0])
    assert test.stems == ["test_batch/2", "test_batch/0"]
    x, y = test[0]
    rgb = written["test_batch"][0][2].reshape(3, 32, 32).astype(np.float64)
    lum = np.tensordot([0.299, 0.587, 0.114], rgb, axes=1) / 255
    assert x.shape == (1, 32, 32) and np.abs(x[0].numpy() - lum).max() <= 1 / 255 + 1e-6
    assert int(y) == written["test_batch"][1][2]
    pixels, labels = read_cifar_batch(tmp_path / "cifar-10-batches-py" / "data_batch_1")
    assert pixels.shape == (3, 3, 32, 32) and labels.dtype == np.int64


class _Shell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Exec:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("payload", [_Shell, _Exec])
def test_cifar10_malicious_pickle_is_refused_and_not_run(tmp_path, payload):
    folder = tmp_path / "cifar"
    _write_cifar(folder)
    marker = tmp_path / "pwned"
    evil = {b"labels": [0], b"data": np.zeros((1, 3072), np.uint8), b"x": payload(marker)}
    (folder / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(InputError, match="data_batch_3"):
        ImageClassificationDataset(folder)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, words",
    [
        ({b"data": np.zeros((2, 3072), np.uint8)}, "labels"),
        ({b"data": np.zeros((2, 3, 32, 32), np.uint8), b"labels": [0, 1]}, "data"),
        ({b"data": np.zeros((2, 3072), np.float64), b"labels": [0, 1]}, "data"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "labels"),
        ([1, 2, 3], "list"),
        (b"not a pickle at all", "invalid load key"),
    ],
)
def test_cifar10_wrong_batch_content_is_named(tmp_path, content, words):
    folder = tmp_path / "cifar"
    _write_cifar(folder)
    raw = content if isinstance(content, bytes) else pickle.dumps(content, protocol=2)
    (folder / "data_batch_2").write_bytes(raw)
    with pytest.raises(InputError, match=f"data_batch_2.*{words}"):
        ImageClassificationDataset(folder)


def test_cifar10_missing_batch_is_named(tmp_path):
    folder = tmp_path / "cifar"
    _write_cifar(folder)
    (folder / "data_batch_4").unlink()
    with pytest.raises(InputError, match="data_batch_4"):
        ImageClassificationDataset(folder)
    assert len(ImageClassificationDataset(folder, split="test")) == 3


# ---- stratified split ------------------------------------------------------------------------------
def test_stratified_split_proportions_disjoint_deterministic():
    counts = {0: 10, 1: 7, 2: 25, 3: 3, 4: 240}
    targets = np.repeat(np.array(list(counts)), list(counts.values()))
    targets = targets[np.random.default_rng(0).permutation(targets.size)]
    for fractions in ((0.8, 0.2), (0.6, 0.2, 0.2)):
        split = stratified_split(targets, fractions, seed=0)
        names = ["train", "test"] if len(fractions) == 2 else ["train", "val", "test"]
        assert list(split) == names
        all_idx = sum(split.values(), [])
        assert sorted(all_idx) == list(range(targets.size))  # disjoint and complete
        for name, f in zip(names, fractions):
            assert all(isinstance(i, int) for i in split[name])
            got = Counter(targets[split[name]].tolist())
            for c, n in counts.items():
                assert np.floor(f * n) <= got[c] <= np.ceil(f * n), (name, c)
        assert stratified_split(targets, fractions, seed=0) == split
        assert stratified_split(list(targets), fractions, seed=0) == split
        assert stratified_split(targets, fractions, seed=1) != split
    exact = stratified_split(targets, (0.8, 0.2), seed=3)
    assert Counter(targets[exact["train"]].tolist()) == {0: 8, 1: 6, 2: 20, 3: 2, 4: 192}
    assert Counter(targets[exact["test"]].tolist()) == {0: 2, 1: 1, 2: 5, 3: 1, 4: 48}


def test_split_record_with_stems(tmp_path):
    for c in ("a", "b"):
        for k in range(5):
            _save(tmp_path / "data" / c / f"{k}.png", np.full((2, 2), k, np.uint8))
    ds = ImageClassificationDataset(tmp_path / "data")
    split = stratified_split(ds.targets, (0.8, 0.2), seed=0)
    rec = json.loads(write_split(tmp_path / "split.json", split, stems=ds.stems, seed=0).read_text())
    assert rec["indices"] == split and rec["seed"] == 0
    assert sorted(rec["stems"]["train"] + rec["stems"]["test"]) == sorted(ds.stems)
    assert Counter(s.split("/")[0] for s in rec["stems"]["test"]) == {"a": 1, "b": 1}
    train = ImageClassificationDataset(tmp_path / "data", indices=split["train"])
    assert train.stems == rec["stems"]["train"]


# ---- errors ----------------------------------------------------------------------------------------
def test_errors_name_the_bad_path_or_value(tmp_path):
    with pytest.raises(InputError, match="nowhere"):
        ImageClassificationDataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images.*empty"):
        ImageClassificationDataset(tmp_path / "empty")

    neu = tmp_path / "neu"
    _save(neu / "Cr_1.bmp", np.zeros((4, 4), np.uint8))
    _save(neu / "Zz_7.bmp", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="Zz_7.bmp.*'Zz'"):
        ImageClassificationDataset(neu)
    bad_dir = tmp_path / "neu_tree"
    _save(bad_dir / "crazing" / "Cr_1.bmp", np.zeros((4, 4), np.uint8))
    _save(bad_dir / "rust" / "R_1.bmp", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="rust"):
        ImageClassificationDataset(bad_dir, format="neu-cls")
    wrong = tmp_path / "neu_wrong"
    _save(wrong / "crazing" / "Sc_1.bmp", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="Sc_1.bmp"):
        ImageClassificationDataset(wrong, format="neu-cls")

    tree = tmp_path / "tree"
    _save(tree / "ok" / "a.png", np.zeros((4, 4), np.uint8))
    (tree / "hollow").mkdir()
    (tree / "hollow" / "notes.txt").write_text("no images here")
    with pytest.raises(InputError, match="hollow"):
        ImageClassificationDataset(tree)
    (tree / "hollow" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = ImageClassificationDataset(tree)
    with pytest.raises(InputError, match="broken.png"):
        ds[0]

    good = tmp_path / "good"
    _save(good / "a" / "x.png", np.zeros((4, 4), np.uint8))
    for kw, words in [
        ({"size": 0}, "size"),
        ({"size": "big"}, "size"),
        ({"size": (4, -1)}, "size"),
        ({"channels": 2}, "channels"),
        ({"channels": True}, "channels"),
        ({"format": "imagenet"}, "imagenet"),
        ({"split": "test"}, "split"),
        ({"indices": [3]}, "index 3"),
        ({"augment": "yes"}, "augment"),
        ({"seed": -1}, "seed"),
    ]:
        with pytest.raises(InputError, match=words):
            ImageClassificationDataset(good, **kw)
    with pytest.raises(InputError, match="fractions"):
        stratified_split([0, 1], (0.5, 0.6))
    with pytest.raises(InputError, match="targets"):
        stratified_split([0.5, 1.5], (0.8, 0.2))
