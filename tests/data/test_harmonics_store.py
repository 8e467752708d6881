"""The harmonics Zarr store: round trip, determinism, balanced labels, resume after a kill, refusals."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from crackscope import __version__
from crackscope.data.harmonics_store import (
    draw_parameters,
    draw_sample,
    generate_harmonics_store,
    open_harmonics_store,
)
from crackscope.data.wavefield_store import sample_rng
from crackscope.errors import InputError
from crackscope.physics import HarmonicsConfig
from crackscope.physics.harmonics import simulate_crack_groups
from crackscope.physics.harmonics_config import LABEL_NAMES, label_of, label_ranges

ARRAYS = ("harmonics", "amplitudes", "n_cracks", "crack_size_um", "label", "done")


pytestmark = pytest.mark.usefixtures("one_numba_thread")


@pytest.fixture(scope="module")
def cfg():
    return HarmonicsConfig.preset("tiny")


@pytest.fixture(scope="module")
def store(cfg, tmp_path_factory):
    path = tmp_path_factory.mktemp("hstore") / "h.zarr"
    generate_harmonics_store(path, cfg, 7, seed=5, batch=3)
    return path


@pytest.fixture
def arrays(read_store):
    return lambda path: read_store(path, *ARRAYS)


def test_round_trip_equals_direct_simulation(cfg, store):
    g = open_harmonics_store(store)
    assert g["harmonics"].shape == (7, 3, 2, 4760) and g["amplitudes"].shape == (7, 3, 3)
    assert g["done"][:].all()
    for i in (0, 4, 6):
        label, n, size, cracks = draw_sample(cfg, 5, i)
        direct = simulate_crack_groups(cfg, [cracks], crack_size_um=[size])
        np.testing.assert_array_equal(g["harmonics"][i], direct.harmonics[0])
        np.testing.assert_array_equal(g["amplitudes"][i], direct.amplitudes[0])
        assert g["label"][i] == label == direct.labels[0] == label_of(n, size, cfg)
        assert g["n_cracks"][i] == n == len(cracks)
        assert g["crack_size_um"][i] == pytest.approx(size, rel=1e-6)
        assert np.abs(g["harmonics"][i]).max() > 0


def test_attributes_describe_the_simulation(cfg, store):
    attrs = dict(open_harmonics_store(store).attrs)
    assert HarmonicsConfig.model_validate(attrs["config"]) == cfg
    assert attrs["crackscope_version"] == __version__ and attrs["complete"]
    assert attrs["seed"] == 5 and attrs["n_samples"] == 7
    assert attrs["label_names"] == list(LABEL_NAMES) and attrs["sensor_names"] == ["a", "b", "c"]
    assert len(attrs["sensor_xy_m"]) == 3
    assert attrs["harmonic_sample_interval_s"] * 4760 == pytest.approx(cfg.n_time * cfg.dt)
    assert sum(attrs["label_counts"].values()) == 7


def test_sample_depends_only_on_seed_and_index(cfg, store, tmp_path, arrays):
    other = tmp_path / "other.zarr"
    generate_harmonics_store(other, cfg, 5, seed=5, batch=2)  # other N, other batch boundaries
    a, b = arrays(store), arrays(other)
    for name in ARRAYS:
        np.testing.assert_array_equal(a[name][:5], b[name])
    different = tmp_path / "different.zarr"
    generate_harmonics_store(different, cfg, 2, seed=6, batch=2)
    assert not np.array_equal(arrays(different)["harmonics"], a["harmonics"][:2])


def test_labels_are_uniform_deterministic_and_within_their_ranges(cfg):
    n = 2400
    drawn = [draw_parameters(cfg, sample_rng(11, i)) for i in range(n)]
    assert drawn == [draw_parameters(cfg, sample_rng(11, i)) for i in range(n)]
    labels = np.array([d[0] for d in drawn])
    counts = np.bincount(labels, minlength=12)
    # binomial(2400, 1/12): mean 200, sd 13.5; +-60 is 4.4 sd
    assert counts.min() > 140 and counts.max() < 260, counts
    for label, count, size in drawn:
        (n_lo, n_hi), (s_lo, s_hi) = label_ranges(label, cfg)
        assert n_lo <= count <= n_hi and s_lo <= size <= s_hi
        assert label_of(count, size, cfg) == label
    # every count of a label's range occurs (uniform over the integers, ends included)
    lab0 = [c for lab, c, _ in drawn if lab == 0]
    (n_lo, n_hi), _ = label_ranges(0, cfg)
    assert set(lab0) == set(range(n_lo, n_hi + 1))


def _generate_in_subprocess(path, env=None):
    code = textwrap.dedent(f"""
        import sys
        from crackscope.data.harmonics_store import generate_harmonics_store
        from crackscope.physics import HarmonicsConfig
        generate_harmonics_store({str(path)!r}, HarmonicsConfig.preset("tiny"), 7, seed=5, batch=3,
                                 log=lambda s: print(s, file=sys.stderr))
    """)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NUMBA_NUM_THREADS": "1", **(env or {})},
    )


def test_resume_after_kill_equals_uninterrupted_run(store, tmp_path, arrays):
    path = tmp_path / "killed.zarr"
    # The fault hook SIGKILLs the process after it wrote the second batch's data, before its done flags.
    killed = _generate_in_subprocess(path, env={"CRACKSCOPE_FAULT_KILL_AFTER_SAMPLES": "6"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    partial = arrays(path)
    assert partial["done"].tolist() == [1, 1, 1, 0, 0, 0, 0]  # the half-finished batch is not counted
    assert np.abs(partial["harmonics"][3:6]).max() > 0  # ...although its data had been written
    resumed = _generate_in_subprocess(path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming: 3 of 7" in resumed.stderr
    a, b = arrays(store), arrays(path)
    for name in ARRAYS:
        np.testing.assert_array_equal(a[name], b[name])


def test_mismatched_parameters_and_bad_requests_are_refused(cfg, store, tmp_path):
    with pytest.raises(InputError, match="seed"):
        generate_harmonics_store(store, cfg, 7, seed=6, batch=3)
    with pytest.raises(InputError, match="crack_gap"):
        generate_harmonics_store(store, cfg.replace(crack_gap=0.0), 7, seed=5, batch=3)
    for kwargs in ({"n_samples": 0}, {"n_samples": 3, "batch": 0}, {"n_samples": 3, "workers": 0}):
        n = kwargs.pop("n_samples")
        with pytest.raises(InputError):
            generate_harmonics_store(tmp_path / "x.zarr", cfg, n, **kwargs)
        assert not (tmp_path / "x.zarr").exists()
    with pytest.raises(InputError, match="not a crackscope harmonics store"):
        open_harmonics_store(tmp_path)
    # class edges whose densest group (400 cracks of 1.2 µm: 96 µm² of a 27.6 µm² region) cannot fit
    crowded = cfg.replace(crack_count_edges=(2, 8, 14, 400))
    for layout in ("nested", "random"):
        with pytest.raises(InputError, match=r"crack_count_edges=\[2, 8, 14, 400\].*does not fit"):
            generate_harmonics_store(tmp_path / "x.zarr", crowded.replace(crack_layout=layout), 3)
        assert not (tmp_path / "x.zarr").exists()


def test_a_wavefield_store_is_not_taken_for_a_harmonics_store(tiny_store, cfg):
    with pytest.raises(InputError, match="not a crackscope harmonics store"):
        open_harmonics_store(tiny_store)
    with pytest.raises(InputError, match="not a crackscope harmonics store"):
        generate_harmonics_store(tiny_store, cfg, 3)


def test_worker_processes_give_identical_arrays(cfg, store, tmp_path, arrays):
    path = tmp_path / "w.zarr"
    generate_harmonics_store(path, cfg, 7, seed=5, batch=3, workers=2)
    a, b = arrays(store), arrays(path)
    for name in ARRAYS:
        np.testing.assert_array_equal(a[name], b[name])


def test_cli_simulate_harmonics(tmp_path, cli):
    env = {"NUMBA_NUM_THREADS": "1"}
    args = ["simulate", "harmonics", "--preset", "tiny", "--samples", 3, "--batch", 3, "--out"]
    ok = cli(*args, tmp_path / "h.zarr", env=env)
    assert ok.returncode == 0, ok.stderr
    group = open_harmonics_store(tmp_path / "h.zarr")
    assert group["harmonics"].shape == (3, 3, 2, 4760) and bool(np.all(group["done"][:]))
    bad = cli(*args, tmp_path / "bad.zarr", "--set", "no_such_field=1", env=env)
    assert bad.returncode == 2 and "no_such_field" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad.zarr").exists()
