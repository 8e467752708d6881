"""The image-classification pipeline ("classify") through the one engine, on a tiny synthetic
class-folder dataset (dark / mid / bright 32 x 32 images, trivially separable): training learns,
the split contract, metrics against hand computations, the step learning-rate schedule, resume
after a kill, evaluate / predict from the command line and bad input."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from crackscope.cli import main
from crackscope.engine.config import load_train_config
from crackscope.engine.module import lr_multiplier
from crackscope.engine.train import train
from crackscope.errors import InputError
from crackscope.metrics import ClassificationMetrics, accuracy_interval, classification_summary

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIDE = 32
LEVELS = {"bright": 0.8, "dark": 0.2, "mid": 0.5}  # folder name -> mean grey level
PER_CLASS = 24
EPOCHS = 10


def _image(rng, level, h=SIDE, w=SIDE) -> np.ndarray:
    return (np.clip(level + 0.08 * rng.standard_normal((h, w)), 0, 1) * 255).astype(np.uint8)


def _write_folder(root: Path, per_class: int, seed: int, levels=LEVELS) -> Path:
    rng = np.random.default_rng(seed)
    for cls, level in levels.items():
        (root / cls).mkdir(parents=True)
        for k in range(per_class):
            Image.fromarray(_image(rng, level)).save(root / cls / f"{cls}{k}.png")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return _write_folder(tmp_path_factory.mktemp("cls") / "levels", PER_CLASS, seed=0)


def _cfg(root, out_dir, name="run"):
    return {
        "name": name,
        "pipeline": "classify",
        "seed": 1,
        "out_dir": str(out_dir),
        "data": {"root": str(root), "format": "folder", "val_fraction": 0.2, "batch_size": 8},
        "model": {"name": "resnet20", "width": 0.25},
        "loss": {"name": "cross_entropy"},
        "optimizer": {"lr": 0.01},
        "trainer": {"max_epochs": EPOCHS, "lr_step_epochs": [8], "lr_step_factor": 0.1, "keep_epoch_checkpoints": 2},
    }


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("cls_runs")
    return train(load_train_config(None, base=_cfg(dataset, out)), progress=False)


# ---- metrics and schedule by hand ----------------------------------------------------------------
def test_classification_metrics_equal_a_hand_computation():
    true = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    pred = np.array([0, 0, 1, 2, 1, 1, 0, 2, 2, 2, 1, 1])
    k = 4  # class 3 never occurs: left out of the macro mean
    cm = np.zeros((k, k), dtype=int)
    for t, p in zip(true, pred):
        cm[t, p] += 1
    s = classification_summary(torch.from_numpy(cm), ["a", "b", "c", "d"])
    assert s["confusion"] == cm.tolist() and s["n_images"] == 12 and s["errors"] == 5  # 7 of 12 on the diagonal
    assert s["accuracy"] == pytest.approx(np.mean(true == pred))
    precision = [2 / 3, 2 / 5, 3 / 4]  # column-wise: predicted 0 three times (2 right), 1 five times, 2 four
    recall = [2 / 4, 2 / 3, 3 / 5]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall)]
    assert s["precision"] == pytest.approx(np.mean(precision)) and s["recall"] == pytest.approx(np.mean(recall))
    assert s["f1"] == pytest.approx(np.mean(f1))
    assert s["per_class"]["b"] == pytest.approx({"precision": 2 / 5, "recall": 2 / 3, "f1": f1[1], "support": 3})
    assert s["per_class"]["d"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    # a class that occurs but is never predicted: precision 0 (and it counts in the macro mean)
    s2 = classification_summary(torch.tensor([[3, 1], [2, 0]]))
    assert s2["per_class"]["1"]["precision"] == 0 and s2["precision"] == pytest.approx((3 / 5 + 0) / 2)
    # the torchmetrics accumulator over two batches of logits gives the same summary
    logits = torch.nn.functional.one_hot(torch.from_numpy(pred), k).float()
    acc = ClassificationMetrics(k, ["a", "b", "c", "d"])
    acc.update(logits[:5], torch.from_numpy(true[:5]))
    acc.update(logits[5:], torch.from_numpy(true[5:]))
    assert acc.compute() == s


def _binomial_tail(k: int, n: int, p: float, upper: bool) -> float:
    """P(X >= k) (upper) or P(X <= k) for X ~ Binomial(n, p), summed term by term."""
    ks = range(k, n + 1) if upper else range(0, k + 1)
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in ks)


@pytest.mark.parametrize("correct, n", [(5, 10), (286, 288), (287, 288), (358, 360), (1, 7)])
def test_accuracy_interval_is_the_exact_clopper_pearson_interval(correct, n):
    lo, hi = accuracy_interval(correct, n)
    # its defining property: at the lower end seeing >= correct, at the upper end <= correct, has chance 2.5 %
    assert _binomial_tail(correct, n, lo, upper=True) == pytest.approx(0.025, rel=1e-6)
    assert _binomial_tail(correct, n, hi, upper=False) == pytest.approx(0.025, rel=1e-6)
    assert lo < correct / n < hi


def test_accuracy_interval_at_the_ends_and_a_textbook_value():
    # all right / all wrong: P(X = n) = p^n = 2.5 % gives the closed form (0.025)^(1/n)
    assert accuracy_interval(10, 10) == pytest.approx((0.025**0.1, 1.0))
    assert accuracy_interval(0, 10) == pytest.approx((0.0, 1 - 0.025**0.1))
    assert accuracy_interval(5, 10) == pytest.approx((0.1871, 0.8129), abs=1e-4)  # the usual 5-of-10 example
    assert accuracy_interval(5, 10, confidence=0.5)[1] < 0.8129  # narrower at lower confidence
    for bad in ((11, 10), (-1, 10), (0, 0), (2.0, 10)):
        with pytest.raises(InputError, match="correct <= n"):
            accuracy_interval(*bad)
    with pytest.raises(InputError, match="confidence"):
        accuracy_interval(5, 10, confidence=1.0)
    assert classification_summary(torch.tensor([[3, 1], [0, 4]]))["accuracy_interval_95"] == pytest.approx(
        list(accuracy_interval(7, 8))
    )


def test_step_and_decay_schedules_by_hand():
    lr = 1e-3  # the NEU-CLS paper: 90 epochs, divided by 10 after 45
    step = {"step_epochs": [45], "step_factor": 0.1, "max_epochs": 90}
    assert [lr * lr_multiplier(e, **step) for e in (0, 44, 45, 89)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])
    assert lr_multiplier(70, step_epochs=[30, 60], step_factor=0.5) == 0.25
    cosine = {"decay": "cosine", "max_epochs": 300}  # the CIFAR-10 paper: to 0 over 300 epochs
    assert [lr_multiplier(e, **cosine) for e in (0, 150, 300)] == pytest.approx([1, 0.5, 0], abs=1e-12)
    assert lr_multiplier(75, **cosine) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert lr_multiplier(30, decay="linear", max_epochs=120) == pytest.approx(0.75)


def _scheduled_task(lr=0.02, **schedule):
    from crackscope.engine.module import TrainingTask

    model = torch.nn.Linear(2, 2)
    return TrainingTask(model, torch.nn.CrossEntropyLoss(), lr=lr, **schedule).configure_optimizers()


def _lrs_over_epochs(configured: dict, epochs: int) -> list[float]:
    """The rate of each epoch as Lightning drives an "epoch" scheduler: one step after each epoch."""
    opt, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert configured["lr_scheduler"]["interval"] == "epoch"
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return lrs


def test_the_lr_schedule_is_torchs_lambdalr_with_the_formulas_values_and_resumes_from_its_state():
    e_max = 12
    cosine = _scheduled_task(lr_decay="cosine", max_epochs=e_max)
    assert isinstance(cosine["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.LambdaLR)
    formula = [0.02 * (1 + math.cos(math.pi * e / e_max)) / 2 for e in range(e_max)]
    assert _lrs_over_epochs(cosine, e_max) == pytest.approx(formula, rel=1e-15, abs=0)
    linear = _lrs_over_epochs(_scheduled_task(lr_decay="linear", max_epochs=e_max), e_max)
    assert linear == pytest.approx([0.02 * (1 - e / e_max) for e in range(e_max)], rel=1e-15, abs=0)
    step = _lrs_over_epochs(_scheduled_task(lr_step_epochs=[3, 7], lr_step_factor=0.5, max_epochs=e_max), 9)
    assert step == pytest.approx([0.02] * 3 + [0.01] * 4 + [0.005] * 2, rel=1e-15, abs=0)
    # resumed from a saved state (what a checkpoint holds): the same rates from there on, bit for bit
    first = _scheduled_task(lr_decay="cosine", max_epochs=e_max)
    _lrs_over_epochs(first, 5)
    second = _scheduled_task(lr_decay="cosine", max_epochs=e_max)
    second["lr_scheduler"]["scheduler"].load_state_dict(first["lr_scheduler"]["scheduler"].state_dict())
    second["optimizer"].load_state_dict(first["optimizer"].state_dict())
    assert _lrs_over_epochs(second, e_max - 5) == _lrs_over_epochs(first, e_max - 5) == formula[5:]
    # no schedule: a plain optimizer; a plateau schedule: ReduceLROnPlateau on val/loss, as before
    from crackscope.engine.module import TrainingTask

    plain = TrainingTask(torch.nn.Linear(2, 2), torch.nn.CrossEntropyLoss()).configure_optimizers()
    assert isinstance(plain, torch.optim.Adam)
    plateau = _scheduled_task(lr_plateau_patience=2)
    assert isinstance(plateau["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)


class _Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_its_cosine_schedule_from_new_and_from_older_checkpoints(dataset, tmp_path):
    """Trained 2 of 4 epochs, interrupted after the epoch's checkpoint, resumed: every epoch ran at
    lr0 (1 + cos(pi e / 4)) / 2. Also from a checkpoint as crackscope wrote them before its schedule
    was a LambdaLR (no scheduler state; the optimizer at the interrupted epoch's rate)."""
    import shutil

    from lightning.pytorch.callbacks import Checkpoint

    class InterruptAfter(Checkpoint):  # a Checkpoint: runs after the run's own checkpoint writers
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                raise _Interrupt

    epochs, lr0 = 4, 0.01
    base = _cfg(dataset, tmp_path / "runs", name="cos")
    base["trainer"] = {"max_epochs": epochs, "lr_decay": "cosine"}
    cfg = load_train_config(None, base=base)
    with pytest.raises(_Interrupt):
        train(cfg, progress=False, callbacks=[InterruptAfter()])
    run = tmp_path / "runs" / "cos"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["lr_schedulers"][0]["last_epoch"] == 2  # stepped before the checkpoint
    older = tmp_path / "older"  # the same run as an older crackscope would have checkpointed it
    shutil.copytree(run, older)
    ckpt["lr_schedulers"] = []
    for group in ckpt["optimizer_states"][0]["param_groups"]:
        group.pop("initial_lr")
        group["lr"] = lr0 * (1 + math.cos(math.pi * 1 / epochs)) / 2  # set at the start of epoch 1
    torch.save(ckpt, older / "checkpoints" / "last.ckpt")

    formula = {e: lr0 * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)}
    for checkpointed in ("now", "before"):
        if checkpointed == "before":  # in the run's own directory: a resume checks the config's out_dir
            shutil.rmtree(run)
            shutil.copytree(older, run)
        train(cfg, resume=True, progress=False)
        lrs = {}
        for log in ("metrics.csv", "resume1/metrics.csv"):
            rows = [r.split(",") for r in (run / "logs" / log).read_text().splitlines()]
            col, epoch = rows[0].index("train/lr"), rows[0].index("epoch")
            lrs.update({int(r[epoch]): float(r[col]) for r in rows[1:] if r[col]})
        assert sorted(lrs) == [0, 2, 3]  # epoch 1's rate is not logged: interrupted in its epoch-end hooks
        assert lrs == pytest.approx({e: formula[e] for e in lrs}, rel=1e-6, abs=0), checkpointed  # float32 in the CSV
        assert json.loads((run / "metrics.json").read_text())["n_images"] > 0


def test_schedule_and_split_options_are_validated(dataset, tmp_path):
    base = _cfg(dataset, tmp_path)
    with pytest.raises(InputError, match="one learning-rate schedule"):
        load_train_config(None, base={**base, "trainer": {"lr_step_epochs": [5], "lr_decay": "cosine"}})
    with pytest.raises(InputError, match="lr_step_epochs"):
        load_train_config(None, base={**base, "trainer": {"lr_step_epochs": [5, 5]}})
    with pytest.raises(InputError, match="val_fraction"):
        load_train_config(
            None, base={**base, "data": {"root": str(dataset), "split": [0.7, 0.1, 0.2], "val_fraction": 0.2}}
        )
    cfg = load_train_config(None, base={**base, "pipeline": "surface", "data": {"root": str(dataset)}, "trainer": {}})
    assert cfg.trainer.lr_step_epochs is None and cfg.trainer.lr_decay is None and cfg.monitor == "val/miou"


# ---- training through the engine -------------------------------------------------------------------
def test_training_learns_and_writes_the_run_contract(trained):
    for name in (
        "config.yaml",
        "split.json",
        "model.safetensors",
        "metrics.json",
        "figures/confusion.png",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
    ):
        assert (trained / name).exists(), name
    m = json.loads((trained / "metrics.json").read_text())
    # chance is 1/3; the grey levels are easy
    assert m["accuracy"] >= 0.9 and m["f1"] >= 0.9, m
    assert m["n_images"] == 15 and m["classes"] == ["bright", "dark", "mid"] and m["subset"] == "given stems"
    assert np.asarray(m["confusion"]).sum(1).tolist() == [5, 5, 5] and set(m["per_class"]) == set(LEVELS)
    assert m["dataset"] == {"train": 45, "val": 12, "test": 15} and m["epochs_run"] == EPOCHS
    cfg = yaml.safe_load((trained / "config.yaml").read_text())
    assert cfg["geometry"] == {"in_channels": 1, "classes": 3} and cfg["data"]["kind"] == "classify"
    # the step schedule as trained: lr 0.01 for epochs 0..7, 0.001 from epoch 8
    rows = [r.split(",") for r in (trained / "logs" / "metrics.csv").read_text().splitlines()]
    col = rows[0].index("train/lr")
    lrs = {int(r[0]): float(r[col]) for r in rows[1:] if r[col]}
    assert [lrs[e] for e in range(EPOCHS)] == pytest.approx([0.01] * 8 + [0.001] * 2)


def test_split_is_stratified_disjoint_and_keeps_the_8_2_test_part(trained, dataset):
    from crackscope.data.classification import ImageClassificationDataset
    from crackscope.data.splits import stratified_split

    split = json.loads((trained / "split.json").read_text())
    stems = split["stems"]
    every = sorted(f"{p.parent.name}/{p.stem}" for p in dataset.glob("*/*.png"))
    assert sorted(stems["train"] + stems["val"] + stems["test"]) == every  # disjoint and complete
    # 24 per class: test 20% -> 4.8 -> 5; val 20% of the remaining 19 -> 3.8 -> 4; train 15
    for part, n in (("train", 15), ("val", 4), ("test", 5)):
        for cls in LEVELS:
            assert sum(s.startswith(cls + "/") for s in stems[part]) == n, (part, cls)
    ds = ImageClassificationDataset(dataset, "folder")
    assert stems["test"] == [ds.stems[i] for i in stratified_split(ds.targets, (0.8, 0.2), seed=1)["test"]]
    assert split["seed"] == 1 and split["format"] == "folder" and split["classes"] == ["bright", "dark", "mid"]


def test_metrics_json_equals_a_hand_computation_on_the_test_images(trained, dataset):
    from crackscope.engine.runs import load_run

    _, model, _ = load_run(trained)
    classes = ["bright", "dark", "mid"]
    cm = np.zeros((3, 3), dtype=int)
    for stem in json.loads((trained / "split.json").read_text())["stems"]["test"]:
        image = np.asarray(Image.open(dataset / f"{stem}.png"), dtype=np.float32) / 255
        with torch.no_grad():
            pred = int(model(torch.from_numpy(image)[None, None]).argmax())
        cm[classes.index(stem.split("/")[0]), pred] += 1
    m = json.loads((trained / "metrics.json").read_text())
    assert m["confusion"] == cm.tolist()
    tp = np.diag(cm)
    precision = np.where(cm.sum(0) > 0, tp / np.maximum(cm.sum(0), 1), 0.0)
    recall = tp / cm.sum(1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    assert m["accuracy"] == pytest.approx(tp.sum() / cm.sum())
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((precision.mean(), recall.mean(), f1.mean()))


def test_resume_after_kill_matches_an_uninterrupted_run(dataset, tmp_path, cli, killed_training):
    # reference: the same config uninterrupted, also in a fresh process (see test_engine.py)
    straight_file = tmp_path / "straight.yaml"
    straight_file.write_text(yaml.safe_dump(_cfg(dataset, tmp_path / "runs", name="straight")))
    assert cli("train", "--config", straight_file).returncode == 0
    trained = tmp_path / "runs" / "straight"
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(yaml.safe_dump(_cfg(dataset, tmp_path / "runs", name="killed")))
    killed = killed_training(cfg_file, epochs=1)  # SIGKILLed right after epoch 1's checkpoints
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = cli("train", "--config", cfg_file, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    wa = load_file(str(trained / "model.safetensors"))
    wb = load_file(str(tmp_path / "runs" / "killed" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # augmentation and the lr step replayed exactly
    a = json.loads((trained / "metrics.json").read_text())
    b = json.loads((tmp_path / "runs" / "killed" / "metrics.json").read_text())
    assert a["confusion"] == b["confusion"] and a["best_epoch"] == b["best_epoch"]


def test_compiled_training_matches_eager_training_and_keeps_plain_weight_names(dataset, tmp_path):
    # reference: the same two optimizer steps without torch.compile (the eager semantics)
    def run(name, compiled):
        cfg = _cfg(dataset, tmp_path, name=name)
        cfg["trainer"] = {"max_epochs": 1, "limit_train_batches": 2, "compile": compiled}
        return load_file(str(train(load_train_config(None, base=cfg), progress=False) / "model.safetensors"))

    eager, compiled = run("eager", False), run("compiled", True)
    assert list(compiled) == list(eager)  # no "_orig_mod." prefix: the run loads like any other
    for k in eager:
        torch.testing.assert_close(compiled[k], eager[k], rtol=1e-4, atol=1e-5, msg=k)


def _checkpoint_weights(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


def test_the_run_keeps_the_best_validation_epoch_or_the_last_one_as_configured(trained, dataset, tmp_path):
    kept = load_file(str(trained / "model.safetensors"))
    best = _checkpoint_weights(trained / "checkpoints" / "best.ckpt")
    assert all(torch.equal(kept[k], best[k]) for k in best)
    m = json.loads((trained / "metrics.json").read_text())
    assert (
        m["weights_epoch"]
        == m["best_epoch"]
        == torch.load(trained / "checkpoints" / "best.ckpt", weights_only=True)["epoch"]
    )
    cfg = _cfg(dataset, tmp_path, name="fixed_schedule")
    cfg["trainer"].update(max_epochs=3, weights="last", lr_step_epochs=None)
    run = train(load_train_config(None, base=cfg), progress=False)
    kept = load_file(str(run / "model.safetensors"))
    last = _checkpoint_weights(run / "checkpoints" / "last.ckpt")
    assert all(torch.equal(kept[k], last[k]) for k in last)
    assert json.loads((run / "metrics.json").read_text())["weights_epoch"] == 2  # 0-based: the third epoch


def test_without_validation_the_whole_training_part_trains_and_the_last_epoch_is_kept(trained, dataset, tmp_path):
    # the paper's 8:2 protocol: nothing held out of the training part
    cfg = _cfg(dataset, tmp_path, name="no_val")
    cfg["data"]["val_fraction"] = 0
    with pytest.raises(InputError, match="val_fraction 0 leaves no validation images.*trainer.weights=best"):
        load_train_config(None, base=cfg)
    cfg["trainer"].update(max_epochs=2, weights="last", lr_step_epochs=None)
    with pytest.raises(InputError, match="early_stopping_patience"):
        load_train_config(None, base={**cfg, "trainer": {**cfg["trainer"], "early_stopping_patience": 2}})
    run = train(load_train_config(None, base=cfg), progress=False)
    split = json.loads((run / "split.json").read_text())
    with_val = json.loads((trained / "split.json").read_text())
    # the same test part as with a validation hold-out (same seed); its train + val are now all train
    assert split["stems"]["test"] == with_val["stems"]["test"] and split["stems"]["val"] == []
    assert sorted(split["stems"]["train"]) == sorted(with_val["stems"]["train"] + with_val["stems"]["val"])
    m = json.loads((run / "metrics.json").read_text())
    assert m["dataset"] == {"train": 57, "val": 0, "test": 15} and m["best_epoch"] is None
    assert m["weights_epoch"] == 1 and not (run / "checkpoints" / "best.ckpt").exists()
    kept, last = load_file(str(run / "model.safetensors")), _checkpoint_weights(run / "checkpoints" / "last.ckpt")
    assert all(torch.equal(kept[k], last[k]) for k in last)
    header = (run / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "train/loss" in header and not any(h.startswith("val/") for h in header)  # no validation ran


def test_split_seed_fixes_the_split_while_the_training_seed_changes(trained, dataset, tmp_path):
    # several training seeds on one test split: split_seed draws the split, seed everything else
    from crackscope.data.classification import ImageClassificationDataset
    from crackscope.data.splits import stratified_split

    cfg = _cfg(dataset, tmp_path, name="seed2_split1")
    cfg.update(seed=2, split_seed=1)
    cfg["trainer"].update(max_epochs=1, lr_step_epochs=None)
    run = train(load_train_config(None, base=cfg), progress=False)
    split, reference = (json.loads((r / "split.json").read_text()) for r in (run, trained))
    assert split["stems"] == reference["stems"] and split["seed"] == 1  # the seed-1 run's split
    ds = ImageClassificationDataset(dataset, "folder")
    seed2_test = [ds.stems[i] for i in stratified_split(ds.targets, (0.8, 0.2), seed=2)["test"]]
    assert split["stems"]["test"] != seed2_test  # not the split that seed 2 alone would draw
    written = yaml.safe_load((run / "config.yaml").read_text())
    assert written["seed"] == 2 and written["split_seed"] == 1
    with pytest.raises(InputError, match="split_seed"):
        load_train_config(None, base={**cfg, "split_seed": -1})


def test_resume_accepts_other_runtime_knobs_but_not_a_different_model(trained):
    from crackscope.engine.train import _prepare

    saved = yaml.safe_load((trained / "config.yaml").read_text())
    saved.pop("geometry")
    _prepare(load_train_config(None, base={**saved, "trainer": {**saved["trainer"], "compile": True}}), resume=True)
    # a run started on a GPU with loader workers may be finished on this CPU without them
    started_elsewhere = {
        **saved,
        "trainer": {**saved["trainer"], "accelerator": "gpu"},
        "data": {**saved["data"], "num_workers": 3},
    }
    _prepare(load_train_config(None, base=started_elsewhere), resume=True)
    with pytest.raises(InputError, match="config differs"):
        _prepare(load_train_config(None, base={**saved, "optimizer": {**saved["optimizer"], "lr": 0.5}}), resume=True)


# ---- evaluate / predict from the command line --------------------------------------------------------
def test_evaluate_another_folder_from_the_command_line(trained, tmp_path, capsys):
    # other images, two of the three classes, one RGB and of another size (converted and resized)
    root = _write_folder(tmp_path / "mine", 3, seed=9, levels={"dark": 0.2, "bright": 0.8})
    Image.fromarray(np.stack([_image(np.random.default_rng(3), 0.8, 40, 48)] * 3, -1)).save(root / "bright" / "rgb.png")
    assert (
        main(["evaluate", str(trained), "--data", str(root), "--format", "folder", "--out", str(tmp_path / "ev")]) == 0
    )
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["n_images"] == 7 and m["subset"] == "all images" and m["classes"] == ["bright", "dark", "mid"]
    assert np.asarray(m["confusion"]).sum(1).tolist() == [4, 3, 0] and m["per_class"]["mid"]["support"] == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and (tmp_path / "ev" / "figures" / "confusion.png").exists()
    correct = int(np.trace(np.asarray(m["confusion"])))
    assert m["errors"] == 7 - correct and f"{7 - correct} errors;" in printed
    assert m["accuracy_interval_95"] == pytest.approx(list(accuracy_interval(correct, 7)))


@pytest.mark.parametrize("problem", ["corrupt image", "unknown class", "format of another pipeline", "no cifar"])
def test_evaluate_bad_input_is_one_line_and_writes_nothing(trained, tmp_path, capsys, problem):
    root = _write_folder(tmp_path / "bad", 2, seed=4)
    fmt = "folder"
    if problem == "corrupt image":
        (root / "dark" / "broken.png").write_bytes(b"not a png at all")
        expect = "broken.png"
    elif problem == "unknown class":
        _write_folder(root, 2, seed=5, levels={"purple": 0.6})
        expect = "'purple' is not one of the model's classes"
    elif problem == "format of another pipeline":
        fmt, expect = "sd-saliency-900", "--format sd-saliency-900 does not apply"
    else:
        fmt, expect = "cifar10", "CIFAR-10"
    out = tmp_path / "ev"
    code = main(["evaluate", str(trained), "--data", str(root), "--format", fmt, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and expect in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_predict_writes_classes_and_probabilities_and_skips_bad_files(trained, tmp_path, capsys):
    rng = np.random.default_rng(11)
    folder = tmp_path / "inbox"
    folder.mkdir()
    for stem, level in (("a", 0.2), ("b", 0.8), ("c", 0.5)):
        Image.fromarray(_image(rng, level)).save(folder / f"{stem}.png")
    (folder / "broken.png").write_bytes(b"nope")
    assert main(["predict", str(trained), "--data", str(folder), "--out", str(tmp_path / "pred")]) == 0
    captured = capsys.readouterr()
    assert "broken.png" in captured.err and "skipped 1" in captured.out
    lines = (tmp_path / "pred" / "predictions.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header[:4] == ["stem", "file", "predicted", "probability"]
    assert header[4:] == ["p_bright", "p_dark", "p_mid"] and len(lines) == 4
    rows = {r.split(",")[0]: r.split(",") for r in lines[1:]}
    for row in rows.values():
        assert sum(float(v) for v in row[4:]) == pytest.approx(1, abs=1e-5)
    assert rows["a"][2] == "dark" and rows["b"][2] == "bright"  # the easy ends of the grey scale


def test_onnx_export_of_a_classifier_matches_pytorch(trained, tmp_path):
    from crackscope.deploy.export import export_onnx

    result = export_onnx(trained, tmp_path / "model.onnx")
    assert result["input_shape"] == [[2, 1, 64, 64], [1, 1, 96, 80]] and result["max_abs_diff"] < 1e-4


def _fake_cifar10(root: Path, seed: int) -> None:
    """CIFAR-10 python batches of 10 random images each (one per class): 50 training, 10 test."""
    import pickle

    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        d = {b"labels": list(range(10)), b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(d, protocol=2))


def test_cifar10_keeps_its_test_batch_and_decays_the_lr_to_zero(tmp_path):
    _fake_cifar10(tmp_path / "cifar", seed=0)
    cfg = {
        "name": "c10",
        "pipeline": "classify",
        "out_dir": str(tmp_path / "runs"),
        "data": {"root": str(tmp_path / "cifar"), "channels": 3, "val_fraction": 0.2, "batch_size": 16},
        "model": {"name": "resnet20", "width": 0.25},
        "loss": {"name": "cross_entropy"},
        "trainer": {"max_epochs": 2, "lr_decay": "cosine"},
    }
    run = train(load_train_config(None, base=cfg), progress=False)  # format "auto" finds the batches
    split = json.loads((run / "split.json").read_text())
    assert split["format"] == "cifar10" and split["stems"]["test"] == [f"test_batch/{r}" for r in range(10)]
    assert len(split["train"]) == 40 and len(split["val"]) == 10  # 20% of each class of the 50 training images
    assert not any(s.startswith("test_batch") for s in split["stems"]["train"] + split["stems"]["val"])
    m = json.loads((run / "metrics.json").read_text())
    assert (
        m["n_images"] == 10 and m["classes"][0] == "airplane" and m["dataset"] == {"train": 40, "val": 10, "test": 10}
    )
    rows = [r.split(",") for r in (run / "logs" / "metrics.csv").read_text().splitlines()]
    col = rows[0].index("train/lr")
    assert sorted(float(r[col]) for r in rows[1:] if r[col]) == pytest.approx([0.0005, 0.001])  # cos(pi/2) half-way


def test_the_cifar10_config_trains_on_all_training_batches_with_a_linear_decay(tmp_path):
    _fake_cifar10(tmp_path / "cifar", seed=1)
    config = Path(__file__).resolve().parents[2] / "configs" / "binary" / "aoie_net_cifar10.yaml"
    cfg = load_train_config(
        config,
        [
            f"data.root={tmp_path / 'cifar'}",
            f"out_dir={tmp_path / 'runs'}",
            "trainer.max_epochs=4",
            "data.batch_size=25",
            "model.width=0.25",
        ],
    )
    run = train(cfg, progress=False)
    split = json.loads((run / "split.json").read_text())
    assert len(split["train"]) == 50 and not split.get("val")  # every training image, none held out
    assert json.loads((run / "metrics.json").read_text())["n_images"] == 10  # the test batch
    rows = [r.split(",") for r in (run / "logs" / "metrics.csv").read_text().splitlines()]
    assert not any(h.startswith("val/") for h in rows[0])
    col = rows[0].index("train/lr")
    # linear to 0 over 4 epochs, stepped per epoch: 1e-3 * (1 - e / 4)
    assert [float(r[col]) for r in rows[1:] if r[col]] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])


def test_classify_grid_table_layout():
    from crackscope.engine.classify import classify_table

    rows = [
        {
            "model": "aoie_net_resnet20",
            "accuracy": 0.99,
            "precision": 0.98,
            "recall": 0.97,
            "f1": 0.975,
            "parameters": 274430,
            "epochs_run": 90,
            "weights_epoch": 71,
        }
    ]
    table = classify_table(rows)
    assert table.splitlines()[0] == "| model | accuracy | precision | recall | F1 | parameters | epochs (kept) |"
    assert "| aoie_net_resnet20 | 0.9900 | 0.9800 | 0.9700 | 0.9750 | 274,430 | 90 (71) |" in table


def test_packed_export_of_a_binary_classifier_reproduces_it(dataset, tmp_path, capsys):
    from crackscope.deploy.packed import load_packed
    from crackscope.engine.runs import load_run

    cfg = _cfg(dataset, tmp_path, name="aoie")
    cfg["model"] = {"name": "aoie_net_resnet20", "width": 0.25}
    cfg["trainer"]["max_epochs"] = 1
    run = train(load_train_config(None, base=cfg), progress=False)
    assert main(["export", str(run), "--format", "packed"]) == 0
    assert "activation bits flipped 0 of" in capsys.readouterr().out
    packed = load_packed(run / "export" / "model.packed.safetensors")
    _, model, _ = load_run(run)
    x = torch.rand(4, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = model(x)
    got = packed(x)
    assert torch.equal(got.argmax(1), expected.argmax(1))
    assert (got - expected).abs().max() <= 1e-4 * max(1.0, float(expected.abs().max()))
    assert packed.meta["classes"] == ["bright", "dark", "mid"]


def test_packed_export_of_a_full_precision_run_is_refused(trained, capsys):
    code = main(["export", str(trained), "--format", "packed"])
    err = capsys.readouterr().err
    assert code == 2 and "full-precision" in err and len(err.strip().splitlines()) == 1, err
