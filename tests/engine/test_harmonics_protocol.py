"""The harmonics re-split protocol: outputs with every method, resume without retraining, the paper's
learning-rate schedule, decision-level fusion checked by hand, and bad input (library and CLI)."""

import json
import shutil

import numpy as np
import pytest
import torch

from crackscope.data.splits import stratified_resplit
from crackscope.engine import harmonics_protocol as hp
from crackscope.engine.module import lr_multiplier
from crackscope.errors import InputError
from crackscope.physics.harmonics_config import HARMONIC_LENGTH, LABEL_NAMES

EPOCHS = 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_store(path, labels, harmonics=None, done=None):
    """A harmonics store with the real layout and attributes, filled with synthetic data (no simulation)."""
    from crackscope.data.harmonics_store import STORE_FORMAT, HarmonicsStoreRequest, _create_arrays, _describe
    from crackscope.data.wavefield_store import open_or_create_store
    from crackscope.physics import HarmonicsConfig

    labels = np.asarray(labels, dtype=np.int8)
    n = labels.size
    if harmonics is None:
        rng = np.random.default_rng(1)
        t = np.linspace(0.0, 1.0, HARMONIC_LENGTH, dtype=np.float32)
        amp = (1.0 + labels[:, None, None, None]).astype(np.float32) * 1e-11
        harmonics = amp * np.sin(2 * np.pi * 40 * t) + 1e-12 * rng.standard_normal((n, 3, 2, HARMONIC_LENGTH))
    req = HarmonicsStoreRequest(HarmonicsConfig.preset("tiny"), n, 0, 4)
    group = open_or_create_store(
        path, req, store_format=STORE_FORMAT, describe=_describe, create_arrays=_create_arrays, kind="harmonics"
    )
    group["harmonics"][:] = np.asarray(harmonics, dtype=np.float32)
    group["label"][:] = labels
    group["done"][:] = np.ones(n, dtype=np.uint8) if done is None else np.asarray(done, dtype=np.uint8)
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    labels = np.repeat(np.arange(len(LABEL_NAMES)), 3)  # 36 samples: 1 train / 1 val / 1 test per label
    return make_store(tmp_path_factory.mktemp("hstudy") / "h.zarr", labels)


@pytest.fixture(scope="module")
def study(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "out"
    result = hp.run_harmonics_study(store, out, resplits=2, epochs=EPOCHS, seed=3)
    return out, result


# ---- outputs ----------------------------------------------------------------------------------


def test_outputs_exist_with_every_method(study):
    out, result = study
    for name in ("study.json", "results.json", "table.md", "confusion.png", "resplits/r000.json", "resplits/r001.json"):
        assert (out / name).is_file(), name
    assert (out / "confusion.png").stat().st_size > 5_000
    results = json.loads((out / "results.json").read_text())
    assert results["n_resplits"] == 2 and results["ran_now"] == 2 and results["skipped"] == 0
    acc = results["accuracy"]
    assert set(acc) == {"a", "b", "c", "multi"}
    for s in "abc":
        assert set(acc[s]) == set(hp.SENSOR_METHODS)
    assert set(acc["multi"]) == set(hp.MULTI_METHODS)
    for group in acc.values():
        for st in group.values():
            assert 0.0 <= st["min"] <= st["mean"] <= st["max"] <= 1.0 and st["std"] >= 0 and st["n"] == 2
    table = (out / "table.md").read_text()
    for title in hp.METHOD_TITLES.values():
        assert title in table
    assert "sensor a | sensor b | sensor c" in table
    # the best method's confusion matrix sums every test sample of every re-split
    sizes = results["split_sizes"]
    assert sizes == {"n_train": 12, "n_val": 12, "n_test": 12}
    cm = np.asarray(results["best"]["confusion"])
    assert cm.shape == (12, 12) and cm.sum() == 2 * 12 and (cm.sum(axis=1) == 2).all()
    ordering = results["ordering"]
    assert set(ordering["checks"]) >= {"a: h2 < ds_classic", "multi_ds_classic < multi_conflict_weighted"}
    assert set(ordering["paired"]) == set(ordering["checks"])
    for name, pr in ordering["paired"].items():  # paired differences agree with the means
        assert pr["up"] + pr["same"] + pr["down"] == 2
        if abs(pr["mean_difference"]) > 1e-9:
            assert (pr["mean_difference"] > 0) == ordering["checks"][name]
    assert "Target ordering" in table


def test_resplit_records_are_consistent(study):
    out, _ = study
    rec = json.loads((out / "resplits" / "r001.json").read_text())
    assert rec["resplit"] == 1 and len(rec["test_indices"]) == 12
    for key, cm in rec["confusion"].items():
        group, method = key.split("/")
        cm = np.asarray(cm)
        assert cm.sum() == 12
        assert np.trace(cm) / 12 == pytest.approx(rec["accuracy"][group][method])
    for s in "abc":  # smoothed validation accuracies (correct + 1) / (n + 2), never 0 or 1
        for w, acc in zip(rec["weights"][s], (rec["val_accuracy"][s]["h2"], rec["val_accuracy"][s]["h3"])):
            assert w == pytest.approx((acc * 12 + 1) / 14) and 0 < w < 1


def test_resume_skips_finished_resplits(study, store):
    out, _ = study
    files = sorted((out / "resplits").glob("r*.json"))
    stamps = {p.name: p.stat().st_mtime_ns for p in files}
    again = hp.run_harmonics_study(store, out, resplits=2, epochs=EPOCHS, seed=3)
    assert again["ran_now"] == 0 and again["skipped"] == 2
    assert {p.name: p.stat().st_mtime_ns for p in files} == stamps
    assert again["accuracy"] == json.loads((out / "results.json").read_text())["accuracy"]


def test_killed_run_resumes_without_duplicating_work(study, store, tmp_path):
    out, _ = study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "resplits" / "r001.json").unlink()  # as if the run was killed during re-split 1
    kept = (copy / "resplits" / "r000.json").stat().st_mtime_ns
    result = hp.run_harmonics_study(store, copy, resplits=2, epochs=EPOCHS, seed=3)
    assert result["ran_now"] == 1 and result["skipped"] == 1
    assert (copy / "resplits" / "r000.json").stat().st_mtime_ns == kept
    # the retrained re-split is the same as before: same seeds, same data
    redone = json.loads((copy / "resplits" / "r001.json").read_text())
    original = json.loads((out / "resplits" / "r001.json").read_text())
    assert redone["accuracy"] == original["accuracy"] and redone["confusion"] == original["confusion"]


def test_a_sensor_does_not_depend_on_the_others(study, store, tmp_path):
    out, _ = study
    hp.run_harmonics_study(store, tmp_path / "b", resplits=1, epochs=EPOCHS, seed=3, sensors="b")
    alone = json.loads((tmp_path / "b" / "resplits" / "r000.json").read_text())
    full = json.loads((out / "resplits" / "r000.json").read_text())
    assert alone["accuracy"]["b"] == full["accuracy"]["b"]
    assert "multi" not in alone["accuracy"]


def test_other_settings_in_the_same_directory_are_refused(study, store):
    out, _ = study
    with pytest.raises(InputError, match="epochs"):
        hp.run_harmonics_study(store, out, resplits=2, epochs=EPOCHS + 1, seed=3)


def test_report_rebuilds_the_outputs_of_a_finished_study(study, store, tmp_path):
    out, result = study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    layout = hp.study_layout(copy)
    assert set(layout) == {"identity", "resplits", "results", "table", "confusion"}
    assert hp.resplit_path(copy, 1) == layout["resplits"] / "r001.json"
    for key in ("results", "table", "confusion"):
        layout[key].unlink()
    report = hp.report_study(copy)  # no data: names from study.json / the defaults
    assert all(path.exists() for path in layout.values())
    assert report["accuracy"] == result["accuracy"] and report["table"] == result["table"]
    assert report["store"] == result["store"] and report["label_names"] == result["label_names"]
    with_data = hp.report_study(copy, store)
    assert with_data["label_counts"] == result["label_counts"] and "ran_now" not in with_data
    with pytest.raises(InputError, match="re-split 2 is not finished"):
        hp.report_study(copy, resplits=3)
    with pytest.raises(InputError, match="not a harmonics study directory"):
        hp.report_study(tmp_path / "nothing")


def test_settings_are_a_strict_model_with_one_line_errors():
    s = hp.study_settings(epochs=5, init="paper", sensors=["c", "a"], fractions=(0.5, 0.25, 0.25))
    assert (s.epochs, s.init, s.sensors, s.fractions) == (5, "paper", ("c", "a"), (0.5, 0.25, 0.25))
    assert s.model_dump(mode="json")["sensors"] == ["c", "a"]
    with pytest.raises(InputError, match=r"^harmonics study: epoch: unknown key$"):
        hp.study_settings(epoch=5)
    with pytest.raises(InputError, match=r"^harmonics study: lr_end: must satisfy lr_end <= lr_start"):
        hp.study_settings(lr_start=1e-4, lr_end=1e-3)
    with pytest.raises(InputError, match=r"^harmonics study: sensors: .*twice"):
        hp.study_settings(sensors="a,a")


# ---- pieces -----------------------------------------------------------------------------------


def test_learning_rate_goes_geometrically_from_0p003_to_0p0001_in_20_levels():
    epochs = 600
    lrs = [hp.learning_rate(e, epochs) for e in range(epochs)]
    levels = sorted(set(lrs), reverse=True)
    assert len(levels) == 20
    assert lrs[0] == pytest.approx(0.003) and lrs[-1] == pytest.approx(0.0001)
    for k, lr in enumerate(levels):
        assert lr == pytest.approx(0.003 * (0.0001 / 0.003) ** (k / 19), rel=1e-12)
        assert lrs.count(lr) == 30  # equal stages of epochs / 20
    ratios = np.asarray(levels[1:]) / np.asarray(levels[:-1])
    assert np.allclose(ratios, (1 / 30) ** (1 / 19))
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # never increases
    assert hp.learning_rate(5, 40) == pytest.approx(0.003 * (1 / 30) ** (2 / 19))  # epoch 5 of 40: level 2
    with pytest.raises(InputError):
        hp.learning_rate(600, 600)
    # the one schedule module: lr_multiplier's exponential steps, bit for bit
    assert lrs == [
        0.003
        * lr_multiplier(e, decay="exponential-steps", max_epochs=epochs, decay_steps=20, decay_final=0.0001 / 0.003)
        for e in range(epochs)
    ]
    assert lr_multiplier(7, decay="exponential-steps", max_epochs=10, decay_steps=1, decay_final=0.5) == 1.0


def test_trainer_uses_the_schedule(monkeypatch):
    seen = []
    real = torch.optim.Adam.step

    def step(self, *a, **kw):
        seen.append(self.param_groups[0]["lr"])
        return real(self, *a, **kw)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 12))
    x, y = torch.randn(10, 1, 8), torch.arange(10)
    loss = hp.train_classifier(model, x, y, epochs=40, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert np.isfinite(loss)
    assert len(seen) == 40 * 3  # 3 mini-batches per epoch
    assert seen[::3] == [hp.learning_rate(e, 40) for e in range(40)]


def test_every_network_gets_the_schedule_and_the_2d_cnn_a_tenth_of_it(store, monkeypatch):
    calls = {}
    real = hp.train_classifier

    def spy(model, x, y, **kw):
        calls[type(model).__name__, x.shape[1]] = (kw["lr_start"], kw["lr_end"], kw["epochs"])
        return real(model, x, y, **kw)

    monkeypatch.setattr(hp, "train_classifier", spy)
    data = hp.load_study_data(store)
    hp.run_resplit(data, hp.StudySettings(epochs=1, sensors="a"), 0)
    expected = {
        ("HarmonicCNN1D", 1): (0.003, 0.0001, 1),
        ("HarmonicCNN2D", 2): (0.0003, 0.00001, 1),
        ("HarmonicCNN1D", 2): (0.003, 0.0001, 1),
        ("HarmonicFeatureFusion", 2): (0.003, 0.0001, 1),
    }
    assert set(calls) == set(expected)
    for key, value in expected.items():
        assert calls[key] == pytest.approx(value, rel=1e-12), key


def test_stratified_split_keeps_every_label_in_every_part():
    labels = np.repeat(np.arange(12), [3, 4, 5, 10, 3, 3, 3, 3, 3, 3, 3, 20])
    tr, va, te = hp.resplit_indices(labels, (0.6, 0.2, 0.2), 0, 0)
    assert np.array_equal(np.sort(np.concatenate([tr, va, te])), np.arange(labels.size))
    for part in (tr, va, te):
        assert set(labels[part]) == set(range(12))
    assert (labels[tr] == 11).sum() == 12 and (labels[va] == 11).sum() == 4 and (labels[te] == 11).sum() == 4
    again = hp.resplit_indices(labels, (0.6, 0.2, 0.2), 0, 0)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again))
    # re-split r is the shared stratified_resplit drawn with default_rng(SeedSequence([seed, r]))
    shared = stratified_resplit(labels, (0.6, 0.2, 0.2), np.random.default_rng(np.random.SeedSequence([0, 0])))
    assert [list(p) for p in (tr, va, te)] == [shared[k] for k in ("train", "val", "test")]


def test_split_of_the_published_study_is_pinned():
    """The label counts of the study in docs/results/harmonics.md (480 plates, seed 0, 10 re-splits):
    its split sizes 289 / 97 / 94, and a digest of all ten re-splits (taken from the split code that
    made the published numbers), so a change of the split rule or its draws cannot pass unnoticed."""
    import hashlib

    counts = [43, 37, 40, 34, 35, 48, 43, 31, 36, 56, 39, 38]  # AD .. CG, results.json label_counts
    labels = np.repeat(np.arange(12), counts)
    digest = hashlib.sha256()
    for r in range(10):
        parts = hp.resplit_indices(labels, (0.6, 0.2, 0.2), 0, r)
        assert [p.size for p in parts] == [289, 97, 94]
        for p in parts:
            digest.update(p.astype(np.int64).tobytes())
    assert digest.hexdigest()[:16] == "f0e7d1d265fe60f3"


def test_decision_fusion_by_hand():
    from crackscope.fusion import combine_dempster

    # docs/fusion.md Example 5 as sensor a (K = 4); sensor b agrees with itself
    p = {
        "a": {"h2": np.array([[0.6, 0.2, 0.1, 0.1]]), "h3": np.array([[0.05, 0.15, 0.7, 0.1]])},
        "b": {"h2": np.array([[0.5, 0.3, 0.1, 0.1]]), "h3": np.array([[0.6, 0.2, 0.1, 0.1]])},
    }
    acc = {"a": (0.95, 0.80), "b": (0.9, 0.7)}
    fused = hp.fuse_decisions(p, acc)
    # classic Dempster of two Bayesian masses = normalised element-wise product
    prod = p["a"]["h2"] * p["a"]["h3"]
    assert np.allclose(fused["a"]["ds_classic"], prod / prod.sum())
    assert np.allclose(fused["a"]["ds_classic"], combine_dempster(p["a"]["h2"], p["a"]["h3"]))
    assert fused["a"]["ds_classic"].argmax() == 2  # C: follows the weaker 3rd harmonic
    # sensitivity-weighted: label weights (A 0.20, B 0.01, C 0.05, D 0.01), by hand
    assert np.allclose(fused["a"]["ds_sensitivity"], [[20 / 33, 1 / 33, 35 / 99, 1 / 99]])
    assert np.allclose(fused["b"]["ds_sensitivity"], [[0.30, 0.0018, 0.0003, 0.0003]] / np.float64(0.3024))
    # multi-sensor classic: normalised product of the per-sensor sensitivity-weighted masses
    ma, mb = fused["a"]["ds_sensitivity"], fused["b"]["ds_sensitivity"]
    assert np.allclose(fused["multi"]["multi_ds_classic"], ma * mb / (ma * mb).sum())
    # conflict-weighted with two sensors: equal weights, the average combined with itself once
    mean = (ma + mb) / 2
    assert np.allclose(fused["multi"]["multi_conflict_weighted"], mean**2 / (mean**2).sum())


def test_decision_fusion_survives_saturated_softmaxes():
    # two certain harmonics that disagree: plain Dempster is undefined; the floor makes it a tie
    p = {"a": {"h2": np.array([[1.0, 0.0, 0.0]]), "h3": np.array([[0.0, 1.0, 0.0]])}}
    fused = hp.fuse_decisions(p, {"a": (0.9, 0.6)})
    assert np.allclose(fused["a"]["ds_classic"], [[0.5, 0.5, 0.0]])
    # the sensitivity weights break the tie toward the more accurate harmonic
    assert fused["a"]["ds_sensitivity"].argmax() == 0
    assert fused["a"]["ds_sensitivity"][0, 0] == pytest.approx(0.4 / (0.4 + 0.1))


def test_input_scaling_uses_the_training_maximum():
    x = np.zeros((3, 2, 5), dtype=np.float32)
    x[0, 0, 2], x[1, 0, 1], x[2, 1, 4] = -4e-11, 2e-11, 3e-12
    scale = hp.channel_scale(x)
    assert scale.shape == (1, 2, 1) and np.allclose(scale.ravel(), [4e-11, 3e-12])
    assert np.abs(x / scale).max() == pytest.approx(1.0)


# ---- bad input --------------------------------------------------------------------------------


def test_bad_input_raises_input_error(store, tmp_path):
    with pytest.raises(InputError, match="not a crackscope harmonics store"):
        hp.run_harmonics_study(tmp_path, tmp_path / "o1", resplits=1, epochs=1)
    import zarr

    zarr.open_group(str(tmp_path / "other.zarr"), mode="w", attributes={"format": "something/1"})
    with pytest.raises(InputError, match="not a crackscope harmonics store"):
        hp.run_harmonics_study(tmp_path / "other.zarr", tmp_path / "o2", resplits=1, epochs=1)
    few = make_store(tmp_path / "few.zarr", [0, 0, 0, 1, 1])
    with pytest.raises(InputError, match=r"label AE has only 2 samples"):
        hp.run_harmonics_study(few, tmp_path / "o3", resplits=1, epochs=1)
    labels = np.repeat(np.arange(12), 3)
    bad = np.ones((36, 3, 2, HARMONIC_LENGTH), dtype=np.float32) * 1e-11
    bad[7, 1, 1, 100] = np.nan
    bad[9, 0, 0, 5] = np.inf
    nan = make_store(tmp_path / "nan.zarr", labels, harmonics=bad)
    with pytest.raises(InputError, match=r"NaN/Inf \(first at sample 7, sensor b, harmonic h3, time 100; 2 samples"):
        hp.run_harmonics_study(nan, tmp_path / "o4", resplits=1, epochs=1)
    unfinished = make_store(tmp_path / "part.zarr", labels, done=[1] * 35 + [0])
    with pytest.raises(InputError, match="35 of 36 samples are finished"):
        hp.run_harmonics_study(unfinished, tmp_path / "o5", resplits=1, epochs=1)
    for kw, msg in [
        ({"sensors": "a,d"}, "unknown sensor 'd'"),
        ({"sensors": "a,a"}, "twice"),
        ({"sensors": ""}, "at least one"),
        ({"epochs": 0}, r"epochs: .*\(got 0\)"),
        ({"resplits": 0}, "--resplits"),
        ({"seed": -1}, r"seed: .*\(got -1\)"),
        ({"init": "seed"}, r"init: Input should be 'default' or 'paper' \(got 'seed'\)"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"device": "tpu"}, "--device"),
        ({"fractions": (0.5, 0.5, 0.5)}, "fractions: must be three numbers"),
    ]:
        with pytest.raises(InputError, match=msg) as err:
            hp.run_harmonics_study(store, tmp_path / "o6", **{"resplits": 1, "epochs": 1, **kw})
        assert "\n" not in str(err.value)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o6").exists()  # refused before writing anything


def test_cli_refuses_a_non_store_with_exit_2_and_one_line(tmp_path, cli):
    out = cli(
        "harmonics-study",
        tmp_path / "missing",
        "--out",
        tmp_path / "o",
        "--resplits",
        1,
        "--epochs",
        1,
        env={"CRACKSCOPE_DEBUG": ""},
        timeout=120,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "not a crackscope harmonics store" in lines[0]
    assert out.stdout == ""


def write_signal_folder(root, harmonics, labels, sensors=("a", "b", "c"), samples=None):
    """A measured-signal folder (one .npy per sample, sensor and harmonic) with manifest.csv."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["sample,file,label,sensor,channel"]
    for n in range(len(labels)) if samples is None else samples:
        for k, s in enumerate(sensors):
            for h, ch in enumerate(("h2", "h3")):
                name = f"p{n:03d}_{s}_{ch}.npy"
                np.save(root / name, harmonics[n, k, h])
                rows.append(f"p{n:03d},{name},{LABEL_NAMES[labels[n]]},{s},{ch}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_measured_signal_folder_gives_the_same_study_as_the_store(study, store, tmp_path):
    """The same harmonics as .npy files + manifest: same labels (sorted names = AD..CG), same sensor
    order, hence the same splits, seeds and accuracies as the store study."""
    from crackscope.data.harmonics_store import open_harmonics_store

    out, _ = study
    g = open_harmonics_store(store)
    harmonics, labels = np.asarray(g["harmonics"][:]), np.asarray(g["label"][:]).astype(int)
    folder = write_signal_folder(tmp_path / "lab", harmonics, labels)
    data = hp.load_study_data(folder)
    assert data.sensor_names == ("a", "b", "c") and data.label_names == LABEL_NAMES
    np.testing.assert_array_equal(data.harmonics, harmonics)
    hp.run_harmonics_study(folder, tmp_path / "o", resplits=1, epochs=EPOCHS, seed=3)
    measured = json.loads((tmp_path / "o" / "resplits" / "r000.json").read_text())
    simulated = json.loads((out / "resplits" / "r000.json").read_text())
    assert measured["accuracy"] == simulated["accuracy"] and measured["confusion"] == simulated["confusion"]


def test_measured_folder_with_own_sensor_and_label_names(tmp_path):
    """Two sensors named left/right and three labels: the study adapts (3-class confusion matrix)."""
    labels = np.repeat([0, 1, 2], 3)
    t = np.linspace(0.0, 1.0, 1000)
    root = tmp_path / "lab"
    root.mkdir()
    rows = ["sample,file,label,sensor,channel"]
    for n, lab in enumerate(labels):
        for s in ("left", "right"):
            for ch, f in (("h2", 20), ("h3", 30)):
                name = f"{n}_{s}_{ch}.txt"
                (root / name).write_text("\n".join(f"{(lab + 1) * np.sin(2 * np.pi * f * x):.6g}" for x in t))
                rows.append(f"s{n},{name},crack{lab},{s},{ch}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    result = hp.run_harmonics_study(root, tmp_path / "o", resplits=1, epochs=1)
    assert set(result["accuracy"]) == {"left", "right", "multi"}
    assert result["label_names"] == ["crack0", "crack1", "crack2"]
    assert np.asarray(result["best"]["confusion"]).shape == (3, 3)
    with pytest.raises(InputError, match="unknown sensor 'a'; choose from left, right"):
        hp.run_harmonics_study(root, tmp_path / "o2", resplits=1, epochs=1, sensors="a")
    # a sample recorded by one sensor only is named
    (root / "manifest.csv").write_text("\n".join(rows[:-2]) + "\n")
    with pytest.raises(InputError, match="sample 's8' has no recordings of sensor right"):
        hp.load_study_data(root)


def test_ordering_check_counts_ties_as_not_holding():
    """Equal means (here the same per-re-split accuracies in another order, whose float means may
    differ in the last bit) do not satisfy '<'; a larger mean does; paired counts by hand."""
    st = lambda values: {"mean": float(np.mean(values))}  # noqa: E731
    acc_lo, acc_hi = [0.81, 0.86, 0.93], [0.93, 0.81, 0.86]
    accuracy = {
        "a": {"h2": st([0.5, 0.6, 0.7]), "ds_classic": st([0.6, 0.6, 0.7]), "ds_sensitivity": st(acc_lo)},
        "multi": {"multi_ds_classic": st(acc_lo), "multi_conflict_weighted": st(acc_hi)},
    }
    records = [
        {
            "accuracy": {
                "a": {"h2": h2, "ds_classic": dc, "ds_sensitivity": ds},
                "multi": {"multi_ds_classic": mc, "multi_conflict_weighted": mw},
            }
        }
        for h2, dc, ds, mc, mw in zip([0.5, 0.6, 0.7], [0.6, 0.6, 0.7], acc_lo, acc_lo, acc_hi)
    ]
    result = hp.ordering_check(accuracy, ["a"], records)
    checks, paired = result["checks"], result["paired"]
    assert checks["a: h2 < ds_classic"] and checks["a: ds_classic < ds_sensitivity"]
    assert not checks["best sensor ds_sensitivity < multi_ds_classic"]  # identical values
    assert not checks["multi_ds_classic < multi_conflict_weighted"]  # same values, other order
    assert not result["all_hold"]
    assert (paired["a: h2 < ds_classic"]["up"], paired["a: h2 < ds_classic"]["same"]) == (1, 2)
    assert paired["multi_ds_classic < multi_conflict_weighted"]["up"] == 1
    assert paired["multi_ds_classic < multi_conflict_weighted"]["down"] == 2
