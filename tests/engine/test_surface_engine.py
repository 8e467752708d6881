"""The surface pipeline through the one engine, on a small synthetic SD-saliency-900-style dataset:
training learns, the run directory and split contract, metrics against a hand computation,
resume after a kill, evaluate / predict / export from the command line, and bad input."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file

from crackscope.engine.config import load_train_config
from crackscope.engine.surface import surface_summary, surface_table
from crackscope.engine.train import train
from crackscope.errors import InputError

SIZE = 40  # pixels; padded to 64 by the default policy


# In-process runs and the CLI runs (OMP_NUM_THREADS=1) both on one thread: multi-threaded float
# reductions may be reordered when other jobs share the cores, and resume is compared bit for bit.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _defect_image(rng, h=SIZE, w=SIZE):
    """A dark textured plate with one bright rectangular defect; the mask is the rectangle."""
    image = 0.25 + 0.05 * rng.standard_normal((h, w))
    mask = np.zeros((h, w), dtype=bool)
    y0, x0 = rng.integers(2, h // 2), rng.integers(2, w // 2)
    mask[y0 : y0 + rng.integers(6, h // 2), x0 : x0 + rng.integers(6, w // 2)] = True
    image[mask] += 0.5
    return (np.clip(image, 0, 1) * 255).astype(np.uint8), mask


def _write_sd_layout(root: Path, per_class: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "Source Images").mkdir(parents=True)
    (root / "Ground truth").mkdir()
    for cls in ("In", "Pa", "Sc"):
        for k in range(1, per_class + 1):
            image, mask = _defect_image(rng)
            Image.fromarray(image).save(root / "Source Images" / f"{cls}_{k}.bmp")
            Image.fromarray(mask.astype(np.uint8) * 255).save(root / "Ground truth" / f"{cls}_{k}.png")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return _write_sd_layout(tmp_path_factory.mktemp("sd") / "SD-like", per_class=8)


def _cfg(root, out_dir, name="run", epochs=10, **trainer):
    return {
        "name": name,
        "pipeline": "surface",
        "seed": 1,
        "out_dir": str(out_dir),
        "data": {"root": str(root), "split": [0.5, 0.25, 0.25], "batch_size": 2},
        "model": {"name": "unet", "base_channels": 8, "depth": 2},
        "loss": {"name": "ce_dice"},
        "optimizer": {"lr": 0.003},
        "trainer": {
            "max_epochs": epochs,
            "lr_plateau_patience": 3,
            "early_stopping_patience": 6,
            "keep_epoch_checkpoints": 2,
            **trainer,
        },
    }


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("surface_runs")
    return train(load_train_config(None, base=_cfg(dataset, out)), progress=False)


def test_surface_summary_by_hand():
    # TP=3, FP=1, FN=2, TN=10 in one image and nothing but background in another (TN=4)
    counts = torch.tensor([[3, 1, 2, 10], [0, 0, 0, 4]])
    s = surface_summary(counts)
    assert s["iou_defect"] == pytest.approx(3 / 6)
    assert s["iou_background"] == pytest.approx(14 / 17)
    assert s["miou"] == pytest.approx((3 / 6 + 14 / 17) / 2)
    assert s["accuracy"] == pytest.approx(17 / 20)
    assert s["precision"] == pytest.approx(3 / 4) and s["recall"] == pytest.approx(3 / 5)
    assert s["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2)) and s["n_images"] == 2


def test_training_learns_and_writes_the_run_contract(trained, dataset):
    for name in (
        "config.yaml",
        "split.json",
        "model.safetensors",
        "metrics.json",
        "figures/examples.png",
        "checkpoints/last.ckpt",
    ):
        assert (trained / name).exists(), name
    epochs_run = json.loads((trained / "metrics.json").read_text())["epochs_run"]
    kept = sorted(p.name for p in (trained / "checkpoints").glob("epoch*.ckpt"))
    assert kept == [f"epoch{e:03d}.ckpt" for e in (epochs_run - 2, epochs_run - 1)]  # the newest two only
    split = json.loads((trained / "split.json").read_text())
    stems = split["stems"]
    every = sorted(p.stem for p in (dataset / "Source Images").iterdir())
    assert sorted(stems["train"] + stems["val"] + stems["test"]) == every  # disjoint and complete
    for part, n in (("train", 4), ("val", 2), ("test", 2)):  # stratified: 8 per class at 0.5/0.25/0.25
        for cls in ("In", "Pa", "Sc"):
            assert sum(s.startswith(cls) for s in stems[part]) == n, (part, cls)
    m = json.loads((trained / "metrics.json").read_text())
    assert m["n_images"] == 6 and m["subset"] == "given stems" and set(m["per_class"]) == {"In", "Pa", "Sc"}
    # an all-background guess scores mIoU < 0.5 here (defect IoU 0); the bright rectangles are easy
    assert m["miou"] > 0.8 and m["iou_defect"] > 0.6, m
    cfg = yaml.safe_load((trained / "config.yaml").read_text())
    assert cfg["geometry"] == {"in_channels": 1, "classes": 1} and cfg["data"]["kind"] == "surface"


def test_metrics_equal_a_hand_computation_at_original_size(trained, dataset):
    from crackscope.engine.runs import load_run

    _, model, _ = load_run(trained)
    stems = json.loads((trained / "split.json").read_text())["stems"]["test"]
    tp = fp = fn = tn = 0
    per_class = {}
    for stem in stems:
        image = np.asarray(Image.open(dataset / "Source Images" / f"{stem}.bmp"), dtype=np.float32) / 255
        truth = np.asarray(Image.open(dataset / "Ground truth" / f"{stem}.png")) >= 128
        padded = np.pad(image, ((0, 64 - SIZE), (0, 64 - SIZE)), mode="reflect")  # the documented pad policy
        with torch.no_grad():
            logit = model(torch.from_numpy(padded)[None, None])[0, 0, :SIZE, :SIZE].numpy()
        pred = logit > 0  # sigmoid(logit) > 0.5
        c = np.array([(pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum(), (~pred & ~truth).sum()])
        per_class[stem[:2]] = per_class.get(stem[:2], 0) + c
        tp, fp, fn, tn = np.array([tp, fp, fn, tn]) + c
    m = json.loads((trained / "metrics.json").read_text())
    assert m["iou_defect"] == pytest.approx(tp / (tp + fp + fn))
    assert m["miou"] == pytest.approx((tp / (tp + fp + fn) + tn / (tn + fp + fn)) / 2)
    assert m["precision"] == pytest.approx(tp / (tp + fp)) and m["recall"] == pytest.approx(tp / (tp + fn))
    assert m["accuracy"] == pytest.approx((tp + tn) / (tp + fp + fn + tn))
    c = per_class["Pa"]
    assert m["per_class"]["Pa"]["iou_defect"] == pytest.approx(c[0] / (c[0] + c[1] + c[2]))


def test_resume_after_kill_matches_an_uninterrupted_run_with_augmentation(dataset, tmp_path, cli, killed_training):
    base = _cfg(dataset, tmp_path / "runs", epochs=2)
    # reference: the same command uninterrupted, also in a fresh process (see test_engine.py)
    straight_file = tmp_path / "straight.yaml"
    straight_file.write_text(yaml.safe_dump({**base, "name": "straight"}))
    assert cli("train", "--config", straight_file).returncode == 0
    straight = tmp_path / "runs" / "straight"
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(yaml.safe_dump({**base, "name": "killed"}))
    killed = killed_training(cfg_file, epochs=1)  # SIGKILLed right after epoch 1's checkpoints
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = cli("train", "--config", cfg_file, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    wa = load_file(str(straight / "model.safetensors"))
    wb = load_file(str(tmp_path / "runs" / "killed" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((tmp_path / "runs" / "killed" / "metrics.json").read_text())
    assert a["miou"] == b["miou"] and a["best_epoch"] == b["best_epoch"]


def test_evaluate_folder_format_from_the_command_line(trained, tmp_path, cli):
    rng = np.random.default_rng(5)
    root = tmp_path / "mine"
    for k, (h, w) in enumerate([(40, 40), (37, 53), (64, 30)]):
        image, mask = _defect_image(rng, h, w)
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(exist_ok=True)
        Image.fromarray(np.stack([image] * 3, -1)).save(root / "images" / f"part{k}.png")
        # anti-aliased edge values below 128 stay background
        Image.fromarray(np.where(mask, 255, 90).astype(np.uint8)).save(root / "masks" / f"part{k}.png")
    out = cli("evaluate", trained, "--data", root, "--format", "folder", "--out", tmp_path / "ev")
    assert out.returncode == 0, out.stderr
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["n_images"] == 3 and m["subset"] == "all pairs" and m["format"] == "folder" and "per_class" not in m
    assert "mIoU" in out.stdout
    (root / "masks" / "part1.png").unlink()
    bad = cli("evaluate", trained, "--data", root, "--format", "folder", "--out", tmp_path / "ev2")
    assert bad.returncode == 2 and "part1" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ev2").exists()


def test_predict_writes_masks_at_original_size_and_skips_bad_files(trained, tmp_path, cli):
    rng = np.random.default_rng(7)
    folder = tmp_path / "inbox"
    folder.mkdir()
    sizes = {"a": (40, 40), "b": (37, 53), "c": (70, 25)}
    for stem, (h, w) in sizes.items():
        Image.fromarray(_defect_image(rng, h, w)[0]).save(folder / f"{stem}.png")
    (folder / "broken.png").write_bytes(b"not a png at all")
    out = cli("predict", trained, "--data", folder, "--out", tmp_path / "pred")
    assert out.returncode == 0, out.stderr
    assert "broken.png" in out.stderr and "skipped 1" in out.stdout
    for stem, (h, w) in sizes.items():
        mask = np.asarray(Image.open(tmp_path / "pred" / "masks" / f"{stem}.png"))
        assert mask.shape == (h, w) and set(np.unique(mask)) <= {0, 255}
        overlay = np.asarray(Image.open(tmp_path / "pred" / "overlays" / f"{stem}.png"))
        assert overlay.shape == (h, w, 3)
    assert "broken" in (tmp_path / "pred" / "skipped.txt").read_text()
    assert len((tmp_path / "pred" / "predictions.csv").read_text().splitlines()) == 4
    empty = tmp_path / "empty"
    empty.mkdir()
    none = cli("predict", trained, "--data", empty, "--out", tmp_path / "pred2")
    assert none.returncode == 2 and "no image files" in none.stderr and "Traceback" not in none.stderr


@pytest.mark.parametrize("name", ["unet", "unet_cbam", "segnet", "fcn8s", "deeplabv3plus"])
def test_onnx_export_matches_pytorch_for_any_multiple_of_32(name, tmp_path):
    from crackscope import models
    from crackscope.deploy.export import export_onnx

    torch.manual_seed(0)
    model = models.create(name, in_channels=1, classes=1, base_channels=8)
    with torch.no_grad():  # batch-norm statistics of real activations, so eval-mode outputs are not constant
        for _ in range(3):
            model(torch.rand(4, 1, 64, 64))
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 64, 64)).std() > 0  # a non-trivial parity check
    folder = tmp_path / name
    folder.mkdir()
    cfg = {
        "name": name,
        "pipeline": "surface",
        "data": {"root": str(tmp_path)},
        "model": {"name": name, "base_channels": 8},
        "loss": {"name": "ce_dice"},
        "geometry": {"in_channels": 1, "classes": 1},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    result = export_onnx(folder)
    assert result["input_shape"] == [[2, 1, 224, 224], [1, 1, 256, 192]]  # traced at one size, checked at two
    assert result["max_abs_diff"] < 1e-4


def test_surface_config_errors_name_the_value(dataset, tmp_path, cli):
    from crackscope.errors import InputError

    with pytest.raises(InputError, match="split"):
        load_train_config(
            None, base={**_cfg(dataset, tmp_path), "data": {"root": str(dataset), "split": [0.9, 0.9, 0]}}
        )
    with pytest.raises(InputError, match="kind"):
        load_train_config(
            None,
            base={
                **_cfg(dataset, tmp_path),
                "pipeline": "wavefield",
                "data": {"kind": "surface", "root": str(dataset)},
            },
        )
    cfg_file = tmp_path / "bad.yaml"
    cfg_file.write_text(yaml.safe_dump({**_cfg(dataset, tmp_path), "data": {"root": str(tmp_path / "nowhere")}}))
    out = cli("train", "--config", cfg_file)
    assert out.returncode == 2 and "nowhere" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "run").exists()


def test_surface_table_layout():
    rows = [
        {
            "model": "unet_cbam",
            "accuracy": 0.9,
            "precision": 0.8,
            "recall": 0.7,
            "miou": 0.85,
            "iou_defect": 0.75,
            "f1": 0.86,
            "parameters": 1234,
            "epochs_run": 10,
            "weights_epoch": 7,
        }
    ]
    table = surface_table(rows)
    assert table.splitlines()[0].startswith("| model | accuracy | precision | recall | mIoU")
    assert "| unet_cbam | 0.9000 | 0.8000 | 0.7000 | 0.8500 | 0.7500 | 0.8600 | 1,234 | 10 (7) |" in table


def test_choose_threshold_picks_the_best_validation_f1_and_every_command_uses_it(dataset, tmp_path):
    """trainer.choose_threshold for the surface pipeline: RUN/operating_point.json holds the grid
    threshold whose pixel F1 over the validation images (recomputed here by hand, in numpy) is
    highest, and evaluate and predict score with it."""
    from crackscope.data.images import load_image, load_mask
    from crackscope.engine.runs import load_run
    from crackscope.engine.surface import predict_probability, predict_surface, surface_dataset
    from crackscope.metrics import THRESHOLD_GRID

    run = train(load_train_config(None, base=_cfg(dataset, tmp_path, epochs=2, choose_threshold=True)), progress=False)
    point = json.loads((run / "operating_point.json").read_text())
    cfg, model, _ = load_run(run)
    val = json.loads((run / "split.json").read_text())["stems"]["val"]
    ds = surface_dataset(cfg.data, root=dataset, stems=val)
    probs = [predict_probability(model, load_image(p, cfg.data.in_channels), cfg.data.size) for p in ds.image_paths]
    masks = [load_mask(p)[0] > 0 for p in ds.mask_paths]
    f1 = []
    for t in THRESHOLD_GRID:
        tp = sum(int(((p > t) & m).sum()) for p, m in zip(probs, masks))
        fp = sum(int(((p > t) & ~m).sum()) for p, m in zip(probs, masks))
        fn = sum(int((~(p > t) & m).sum()) for p, m in zip(probs, masks))
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
    best = int(np.argmax(f1))  # the first (lowest) threshold among equals
    assert point["threshold"] == THRESHOLD_GRID[best] and point["dsc"] == pytest.approx(f1[best])
    assert point["n_images"] == len(val) and point["chosen_on"] == "validation split"
    assert json.loads((run / "metrics.json").read_text())["threshold"] == point["threshold"]
    one = ds.image_paths[0]
    predict_surface(run, one, tmp_path / "pred")
    mask = np.asarray(Image.open(tmp_path / "pred" / "masks" / f"{one.stem}.png")) > 0
    assert np.array_equal(mask, probs[0] > point["threshold"])


def test_choose_threshold_is_refused_for_classification():
    with pytest.raises(InputError, match="segmentation pipelines"):
        load_train_config(
            None,
            base={
                "name": "c",
                "pipeline": "classify",
                "data": {"root": "x"},
                "model": {"name": "resnet20"},
                "loss": {"name": "ce"},
                "trainer": {"choose_threshold": True},
            },
        )
