"""The training engine end to end on a tiny store: run directory, resume after a kill, evaluate,
predict, export, grid, and bad input."""

import json
import shutil
import signal

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from crackscope.engine.config import load_train_config
from crackscope.engine.train import train
from crackscope.errors import InputError

EPOCHS = 2


# In-process runs and the CLI runs (OMP_NUM_THREADS=1) both on one thread: multi-threaded float
# reductions may be reordered when other jobs share the cores, and resume is compared bit for bit.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg_dict(store, out_dir, name="run", **model):
    return {
        "name": name,
        "out_dir": str(out_dir),
        "seed": 3,
        "data": {"store": str(store), "batch_size": 8, "split": [0.6, 0.2, 0.2]},
        "model": {"name": "micro_crack_attention_next", "activation": "gelu", **model},
        "loss": {"name": "CWDL"},
        "trainer": {"max_epochs": EPOCHS},
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from crackscope.data.wavefield_store import generate_wavefield_store
    from crackscope.physics import PlateConfig

    path = tmp_path_factory.mktemp("engine") / "tiny.zarr"
    generate_wavefield_store(path, PlateConfig.preset("tiny", n_time=120), 20, seed=1, batch=10)
    return path


@pytest.fixture(scope="module")
def trained(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = load_train_config(None, base=_cfg_dict(store, out))
    return train(cfg, progress=False)


def test_run_directory_contract(trained):
    for name in (
        "config.yaml",
        "split.json",
        "model.safetensors",
        "metrics.json",
        "size_table.md",
        "figures/masks.png",
        "checkpoints/last.ckpt",
        "checkpoints/epoch000.ckpt",
        "checkpoints/epoch001.ckpt",
    ):
        assert (trained / name).exists(), name
    m = json.loads((trained / "metrics.json").read_text())
    for key in ("dsc", "accuracy", "iou", "precision", "recall"):
        assert 0.0 <= m[key] <= 1.0
    assert set(m["by_crack_size"]) == {">0", ">1", ">2", ">3", ">4"}
    split = json.loads((trained / "split.json").read_text())
    assert m["n_samples"] == len(split["test"]) == 4 and m["by_crack_size"][">0"]["n_samples"] == 4
    assert not set(split["test"]) & set(split["train"])
    # checkpoints load without executing code
    ckpt = torch.load(trained / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == EPOCHS - 1
    weights = load_file(str(trained / "model.safetensors"))
    assert (
        sum(v.numel() for k, v in weights.items() if "running" not in k and "num_batches" not in k) == m["parameters"]
    )
    logs = (trained / "logs" / "metrics.csv").read_text()
    assert "val/dsc" in logs and "train/loss" in logs
    # the run's wall time holds at least its optimiser steps (samples / steps-only throughput)
    step_seconds = EPOCHS * len(split["train"]) / m["train_samples_per_s"]
    assert m["fit_seconds"] >= round(step_seconds, 1) > 0


def test_metrics_json_matches_an_independent_computation(trained, store):
    """Recompute DSC of the test split from predictions.npz and the raw masks, by hand."""
    import zarr

    from crackscope.engine.wavefield import predict_run

    pred = np.load(predict_run(trained, store, trained / "pred"))
    split = json.loads((trained / "split.json").read_text())["test"]
    masks = np.asarray(zarr.open_group(str(store), mode="r")["masks"][...])
    rows = [int(np.nonzero(pred["sample_index"] == i)[0][0]) for i in split]
    p, t = pred["mask"][rows].astype(bool), masks[split].astype(bool)
    tp, fp, fn = (p & t).sum(), (p & ~t).sum(), (~p & t).sum()
    expected = 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    m = json.loads((trained / "metrics.json").read_text())
    assert m["dsc"] == pytest.approx(expected)
    assert m["accuracy"] == pytest.approx((p == t).mean())
    # mean per-plate DSC (1 for an empty plate predicted empty) and the background class's IoU
    per_plate = [1.0 if not (a | b).any() else 2 * (a & b).sum() / (a.sum() + b.sum()) for a, b in zip(p, t)]
    assert m["dsc_per_sample"] == pytest.approx(np.mean(per_plate))
    tn = (~p & ~t).sum()
    assert m["iou_background"] == pytest.approx(tn / (tn + fp + fn))
    # the cell oracle, by loops: every pixel of each 4 x 4 sensor cell (9 x 9 grid of 36 x 36) holding crack
    oracle = np.zeros_like(t)
    for k in range(len(t)):
        for cy in range(9):
            for cx in range(9):
                cell = (k, slice(4 * cy, 4 * cy + 4), slice(4 * cx, 4 * cx + 4))
                oracle[cell] = t[cell].any()
    otp, ofp, ofn = (oracle & t).sum(), (oracle & ~t).sum(), (~oracle & t).sum()
    assert m["cell_oracle_dsc"] == pytest.approx(2 * otp / (2 * otp + ofp + ofn))
    assert m["by_crack_size"][">0"]["cell_oracle_dsc"] == pytest.approx(m["cell_oracle_dsc"])
    table = (trained / "size_table.md").read_text()
    for row in ("DSC, pooled crack pixels", "DSC, mean per plate", "IoU, background", "cell oracle DSC"):
        assert f"| {row} |" in table


def test_resume_after_kill_ends_with_the_same_metrics(store, tmp_path, cli, killed_training):
    # The reference is an uninterrupted run of the same command, also in a fresh process: with Adam,
    # last-bit float differences between an in-process and a fresh-process run (memory alignment
    # picks other vector paths) grow to lr-sized steps wherever a gradient is ~0.
    straight_file = tmp_path / "straight.yaml"
    straight_file.write_text(yaml.safe_dump(_cfg_dict(store, tmp_path / "runs", name="straight")))
    assert cli("train", "--config", straight_file).returncode == 0
    trained = tmp_path / "runs" / "straight"
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(yaml.safe_dump(_cfg_dict(store, tmp_path / "runs")))
    killed = killed_training(cfg_file, epochs=1)  # SIGKILLed right after epoch 1's checkpoints
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = tmp_path / "runs" / "run"
    assert (run / "checkpoints" / "last.ckpt").exists() and not (run / "metrics.json").exists()
    killed_ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    first_epoch_seconds = killed_ckpt["crackscope_fit_seconds"]
    again = cli("train", "--config", cfg_file)
    assert again.returncode == 2 and "--resume" in again.stderr  # refuses to overwrite silently
    resumed = cli("train", "--config", cfg_file, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    first_log = (run / "logs" / "metrics.csv").read_text().splitlines()
    assert first_log and all(line.startswith(("epoch", "0,")) for line in first_log)  # epoch 0 kept
    assert any(line.startswith("1,") for line in (run / "logs" / "resume1" / "metrics.csv").read_text().splitlines())
    a = json.loads((trained / "metrics.json").read_text())
    b = json.loads((run / "metrics.json").read_text())
    for key in ("dsc", "iou", "precision", "recall", "accuracy", "best_epoch"):
        assert a[key] == b[key], key
    # the wall time of the killed session's epoch is kept and the resumed session's added to it
    assert b["fit_seconds"] > round(first_epoch_seconds, 1) > 0
    wa, wb = load_file(str(trained / "model.safetensors")), load_file(str(run / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_evaluate_other_store_uses_every_sample_and_export_matches(trained, store, tmp_path, cli):
    other = tmp_path / "other.zarr"
    shutil.copytree(store, other)
    out = cli("evaluate", trained, "--data", other, "--out", tmp_path / "ev")
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["n_samples"] == 20
    assert (
        "| DSC, pooled crack pixels |" in out.stdout
        and (tmp_path / "ev" / "figures" / "masks.png").stat().st_size > 5000
    )
    exp = cli("export", trained, "--format", "onnx")
    assert exp.returncode == 0, exp.stderr
    diff = float(exp.stdout.strip().rsplit("=", 1)[1])
    assert diff < 1e-4


def test_threshold_chosen_on_validation_is_used_by_evaluate_predict_and_export(store, tmp_path, cli):
    """trainer.choose_threshold: the operating point is the grid threshold with the highest DSC on the
    validation plates (recomputed here by hand from the model's probabilities), and evaluate,
    predict and the ONNX export all carry it."""
    import onnx
    import zarr

    from crackscope.engine.runs import load_run
    from crackscope.engine.wavefield import predict_run, wavefield_dataset
    from crackscope.metrics import THRESHOLD_GRID

    base = _cfg_dict(store, tmp_path, name="chosen")
    base["trainer"]["choose_threshold"] = True
    cfg = load_train_config(None, base=base)
    assert cfg.monitor == "val/dsc_best"
    run = train(cfg, progress=False)
    point = json.loads((run / "operating_point.json").read_text())
    split = json.loads((run / "split.json").read_text())
    _, model, _ = load_run(run)
    ds = wavefield_dataset(store, split["val"], False, "global")
    with torch.no_grad():
        p = torch.sigmoid(model(torch.stack([ds[i][0] for i in range(len(ds))]))).numpy()[:, 0]
    y = np.asarray(zarr.open_group(str(store), mode="r")["masks"][...])[split["val"]] > 0

    def dsc(t):
        tp, fp, fn = ((p > t) & y).sum(), ((p > t) & ~y).sum(), ((p <= t) & y).sum()
        return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)

    best = max(dsc(t) for t in THRESHOLD_GRID)
    assert point["threshold"] in THRESHOLD_GRID and point["n_samples"] == len(split["val"])
    assert point["dsc"] == pytest.approx(best) and dsc(point["threshold"]) == pytest.approx(best)
    assert min(t for t in THRESHOLD_GRID if dsc(t) == pytest.approx(best)) == point["threshold"]
    assert "val/dsc_best" in (run / "logs" / "metrics.csv").read_text()
    assert json.loads((run / "metrics.json").read_text())["threshold"] == point["threshold"]
    pred = np.load(predict_run(run, store, tmp_path / "pred"))
    assert float(pred["threshold"]) == pytest.approx(point["threshold"])
    prob = pred["probability"].astype(np.float32)  # stored as float16: skip pixels within its rounding
    clear = np.abs(prob - point["threshold"]) > 1e-3
    assert np.array_equal(pred["mask"][clear], (prob > point["threshold"])[clear])
    exp = cli("export", run, "--format", "onnx")
    assert exp.returncode == 0, exp.stderr
    meta = {m.key: m.value for m in onnx.load(str(run / "export" / "model.onnx")).metadata_props}
    assert float(meta["crack_threshold"]) == point["threshold"]


def test_simulate_yaml_remakes_the_plates_and_guards_the_geometry(trained, store, tmp_path, cli):
    """RUN/simulate.yaml holds the training store's simulator settings: simulating with it and the
    store's seed gives the store's plates again; a store of the same tensor shapes but another plate
    size is refused in one line naming the field."""
    import zarr

    from crackscope.data.wavefield_store import generate_wavefield_store
    from crackscope.physics import PlateConfig

    sim = trained / "simulate.yaml"
    again = cli(
        "simulate",
        "wavefield",
        "--config",
        sim,
        "--samples",
        4,
        "--seed",
        1,
        "--batch",
        10,
        "--out",
        tmp_path / "again.zarr",
    )
    assert again.returncode == 0, again.stderr
    a, b = zarr.open_group(str(store), mode="r"), zarr.open_group(str(tmp_path / "again.zarr"), mode="r")
    assert np.array_equal(a["masks"][:4], b["masks"][:4])
    assert np.allclose(a["signals"][:4], b["signals"][:4], rtol=0, atol=1e-6 * float(np.abs(a["signals"][:4]).max()))
    other = tmp_path / "wide.zarr"
    generate_wavefield_store(other, PlateConfig.preset("tiny", n_time=120, width=8e-6), 3, seed=2, batch=3)
    out = cli("evaluate", trained, "--data", other, "--out", tmp_path / "ev")
    assert out.returncode == 2 and "width=8e-06" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ev").exists()


def test_bad_input(store, trained, tmp_path, cli):
    with pytest.raises(InputError, match="no_such_key"):
        load_train_config(None, base={**_cfg_dict(store, tmp_path), "no_such_key": 1})
    with pytest.raises(InputError, match="activation"):
        train(load_train_config(None, base=_cfg_dict(store, tmp_path, activation="swish")))
    with pytest.raises(InputError, match="loss"):
        train(load_train_config(None, base={**_cfg_dict(store, tmp_path), "loss": {"name": "hinge"}}))
    assert not (tmp_path / "run").exists()
    broken = tmp_path / "broken.zarr"
    shutil.copytree(store, broken)
    shutil.rmtree(broken / "masks")
    out = cli("evaluate", trained, "--data", broken, "--out", tmp_path / "x")
    assert out.returncode == 2 and "'masks'" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    cfg_file = tmp_path / "bad.yaml"
    cfg_file.write_text(yaml.safe_dump({**_cfg_dict(store, tmp_path), "trainer": {"max_epochz": 3}}))
    out = cli("train", "--config", cfg_file)
    assert out.returncode == 2 and "max_epochz" in out.stderr and "Traceback" not in out.stderr


def test_grid_runs_then_skips_finished(store, tmp_path, cli):
    base = tmp_path / "base.yaml"
    cfg = _cfg_dict(store, tmp_path)
    cfg["trainer"]["max_epochs"] = 1
    base.write_text(yaml.safe_dump(cfg))
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        yaml.safe_dump(
            {
                "name": "g",
                "base": "base.yaml",
                "out_dir": str(tmp_path / "grid"),
                "axes": {"model.activation": ["relu", "elu"], "loss.name": ["DL"]},
            }
        )
    )
    first = cli("grid", grid)
    assert first.returncode == 0, first.stderr
    table = (tmp_path / "grid" / "table.md").read_text()
    assert "| relu | DL |" in table and "| elu | DL |" in table
    rows = (tmp_path / "grid" / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 3
    second = cli("grid", grid)
    assert second.returncode == 0 and "2 already finished" in second.stderr


def test_mda_figure_for_a_run(trained, tmp_path, cli):
    out = cli("mda", trained, "--layers", "bottleneck,up2", "--out", tmp_path / "mda.png", "--max-samples", "8")
    assert out.returncode == 0, out.stderr
    png = (tmp_path / "mda.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    bad = cli("mda", trained, "--layers", "no.such.layer", "--out", tmp_path / "x.png")
    assert bad.returncode == 2 and "no.such.layer" in bad.stderr


@pytest.mark.ray
def test_grid_on_a_local_ray_cluster(store, tmp_path, cli):
    pytest.importorskip("ray")
    base = tmp_path / "base.yaml"
    cfg = _cfg_dict(store, tmp_path)
    cfg["trainer"]["max_epochs"] = 1
    cfg["model"] = {"name": "simple_cnn", "activation": "relu"}
    base.write_text(yaml.safe_dump(cfg))
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        yaml.safe_dump(
            {
                "name": "r",
                "base": "base.yaml",
                "out_dir": str(tmp_path / "grid"),
                "runs": [{"loss.name": "DL"}],
                "table": "models",
            }
        )
    )
    out = cli("grid", grid, "--backend", "ray")
    assert out.returncode == 0, out.stderr
    assert "| simple_cnn | DL |" in (tmp_path / "grid" / "table.md").read_text()
    assert (tmp_path / "grid" / "r-DL-s0" / "metrics.json").exists()


def test_two_process_ddp_on_cpu(store, tmp_path, cli):
    """--devices 2 starts Lightning DDP (gloo on CPU); rank 0 writes the run directory."""
    cfg = _cfg_dict(store, tmp_path, name="ddp")
    cfg["trainer"]["max_epochs"] = 1
    cfg_file = tmp_path / "ddp.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    out = cli("train", "--config", cfg_file, "--devices", "2")
    assert out.returncode == 0, out.stderr
    m = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert (
        m["n_samples"] == 4
        and yaml.safe_load((tmp_path / "ddp" / "config.yaml").read_text())["trainer"]["devices"] == 2
    )


def test_init_weights_starts_a_run_from_another_runs_weights(store, trained, tmp_path):
    """trainer.init_weights (fine-tuning): at a learning rate of 1e-12, Adam moves each parameter by at
    most ~1e-12 per step, so the fine-tuned parameters must equal the source run's (a run from another
    seed's random start is nowhere near them)."""
    source = load_file(str(trained / "model.safetensors"))
    base = _cfg_dict(store, tmp_path, name="tuned")
    base["optimizer"] = {"name": "adam", "lr": 1e-12}
    base["trainer"] = {"max_epochs": 1, "init_weights": str(trained), "weights": "last"}
    tuned_run = train(load_train_config(None, base=base), progress=False)
    tuned = load_file(str(tuned_run / "model.safetensors"))
    from crackscope.engine.runs import load_run

    params = {name for name, _ in load_run(tuned_run)[1].named_parameters()}
    assert params and params <= set(tuned)
    for name in params:
        torch.testing.assert_close(tuned[name], source[name], rtol=0, atol=1e-6)
    # without it, another seed's random start (the same seed would start where the source run did)
    fresh_cfg = {**base, "name": "fresh", "seed": 4, "trainer": {"max_epochs": 1, "weights": "last"}}
    fresh = load_file(str(train(load_train_config(None, base=fresh_cfg), progress=False) / "model.safetensors"))
    assert max((fresh[n] - source[n]).abs().max().item() for n in params) > 1e-2
    # the file itself is taken too; a missing one or one of another shape is one line, nothing written
    base["name"], base["trainer"] = "bad", {"max_epochs": 1, "init_weights": str(tmp_path / "nope")}
    with pytest.raises(InputError, match="init_weights .*nope"):
        train(load_train_config(None, base=base))
    base["trainer"]["init_weights"] = str(trained / "model.safetensors")
    with pytest.raises(InputError, match="model.safetensors does not fit"):
        train(load_train_config(None, base={**base, "model": {**base["model"], "channels": [8, 16, 32, 64]}}))
    assert not (tmp_path / "bad").exists()


def test_training_on_streamed_plates(store, tmp_path):
    """data.stream_plates: every epoch trains on that many fresh plates (here 20 in batches of 8:
    three steps per epoch, where the store's 12 training plates make two), validation and test stay
    the store's."""
    import csv

    base = _cfg_dict(store, tmp_path, name="stream")
    base["data"]["stream_plates"] = 20
    run = train(load_train_config(None, base=base), progress=False)
    rows = list(csv.DictReader((run / "logs" / "metrics.csv").open()))
    steps = {int(r["step"]) for r in rows if r.get("train/loss")}
    assert max(steps) + 1 == 3 * EPOCHS
    m = json.loads((run / "metrics.json").read_text())
    assert m["n_samples"] == len(json.loads((run / "split.json").read_text())["test"]) == 4
    # what it trained on, for the grids' data table: 20 fresh plates per epoch, the store's T = 120
    assert (m["stream_plates"], m["n_time"]) == (20, 120)


def test_simulate_yaml_of_a_store_older_than_crack_widths_keeps_its_line_cracks(store, tmp_path):
    """A store written before notches existed has no crack widths in its attributes; its
    simulate.yaml spells width 0, so reading it back never takes a preset's notch widths."""
    import zarr

    from crackscope.engine.wavefield import write_simulate_yaml
    from crackscope.physics.config import PlateConfig, load_plate_config

    old = tmp_path / "old.zarr"
    shutil.copytree(store, old)
    group = zarr.open_group(str(old), mode="r+")
    config = dict(group.attrs["config"])
    config["cracks"] = {k: v for k, v in config["cracks"].items() if not k.startswith("width_um")}
    group.attrs["config"] = config
    written = yaml.safe_load(write_simulate_yaml(tmp_path, old).read_text())
    assert written["cracks"]["width_um_min"] == written["cracks"]["width_um_max"] == 0.0
    back = load_plate_config(None, tmp_path / "simulate.yaml")  # no preset: the paper's notches would fill a gap
    assert back == PlateConfig.model_validate(config) and back.cracks.width_um_max == 0.0


def test_train_plates_caps_the_training_split_and_keeps_validation_and_test(store, tmp_path):
    """data.train_plates N: the run trains on the first N plates of the same seeded split (so the
    caps of a learning curve are nested), and validation and test are the uncapped split's, so runs
    with different N are scored on the same plates. More than the split holds is one line."""
    from crackscope.engine.config import WavefieldData
    from crackscope.engine.wavefield import make_split

    full = make_split(WavefieldData(store=store, split=(0.6, 0.2, 0.2)), 3, tmp_path)
    assert len(full["train"]) == 12  # 0.6 of the store's 20 plates
    small = make_split(WavefieldData(store=store, split=(0.6, 0.2, 0.2), train_plates=5), 3, tmp_path)
    smaller = make_split(WavefieldData(store=store, split=(0.6, 0.2, 0.2), train_plates=2), 3, tmp_path)
    assert small["train"] == full["train"][:5] and smaller["train"] == small["train"][:2]
    assert small["val"] == full["val"] and small["test"] == full["test"]
    with pytest.raises(InputError, match="data.train_plates 13 is more than the 12 training plates"):
        make_split(WavefieldData(store=store, split=(0.6, 0.2, 0.2), train_plates=13), 3, tmp_path)
