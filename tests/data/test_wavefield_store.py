"""The Zarr store: round trip against direct simulation, determinism, resume after a kill, Ray."""

import signal

import numpy as np
import pytest

from crackscope import __version__
from crackscope.data.wavefield_store import cracks_for_sample, generate_wavefield_store, open_store
from crackscope.errors import InputError
from crackscope.physics import PlateConfig, rasterize_mask, simulate_wavefield

ARRAYS = (
    "signals",
    "masks",
    "reference",
    "n_cracks",
    "crack_length_um",
    "max_crack_length_um",
    "crack_points_m",
    "done",
)


@pytest.fixture(scope="module")
def cfg():
    return PlateConfig.preset("tiny", n_time=120)


@pytest.fixture(scope="module")
def store(cfg, tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "s.zarr"
    generate_wavefield_store(path, cfg, 7, seed=5, batch=3)
    return path


@pytest.fixture
def arrays(read_store):
    return lambda path: read_store(path, *ARRAYS)


def test_round_trip_equals_direct_simulation(cfg, store):
    g = open_store(store)
    assert g["signals"].shape == (7, 2, 81, 120) and g["masks"].shape == (7, 36, 36)
    assert g["done"][:].all()
    for i in (0, 4, 6):
        cracks = cracks_for_sample(cfg, 5, i)
        direct = simulate_wavefield(cfg, [cracks])
        np.testing.assert_array_equal(g["signals"][i], direct.signals[0].numpy())
        np.testing.assert_array_equal(g["masks"][i], rasterize_mask(cracks, cfg.width, cfg.height, 36))
        assert g["n_cracks"][i] == len(cracks)
        lengths = g["crack_length_um"][i]
        np.testing.assert_allclose(lengths[: len(cracks)], [c.length_um for c in cracks], rtol=1e-6)
        assert np.isnan(lengths[len(cracks) :]).all()
        assert g["max_crack_length_um"][i] == pytest.approx(max(c.length_um for c in cracks), rel=1e-6)
        pts = g["crack_points_m"][i, 0]
        np.testing.assert_allclose(pts[: len(cracks[0].points)], cracks[0].points)
    np.testing.assert_array_equal(g["reference"][...], simulate_wavefield(cfg, [[]]).signals[0].numpy())


def test_attributes_describe_the_simulation(cfg, store):
    attrs = dict(open_store(store).attrs)
    assert PlateConfig.model_validate(attrs["config"]) == cfg
    assert attrs["crackscope_version"] == __version__
    assert attrs["seed"] == 5 and attrs["n_samples"] == 7 and attrs["complete"]
    assert attrs["dt_s"] == pytest.approx(cfg.dt)
    assert len(attrs["sensor_xy_m"]) == 81
    masks = np.asarray(open_store(store)["masks"][...])
    assert attrs["mean_crack_pixel_fraction"] == pytest.approx(masks.mean())


def test_sample_depends_only_on_seed_and_index(cfg, store, tmp_path, arrays):
    other = tmp_path / "other.zarr"
    generate_wavefield_store(other, cfg, 5, seed=5, batch=2)  # other N, other batch boundaries
    a, b = arrays(store), arrays(other)
    for name in ("signals", "masks", "crack_points_m"):
        np.testing.assert_array_equal(a[name][:5], b[name])
    different = tmp_path / "different.zarr"
    generate_wavefield_store(different, cfg, 2, seed=6, batch=2)
    assert not np.array_equal(arrays(different)["masks"], a["masks"][:2])


def test_worker_processes_give_identical_arrays(cfg, store, tmp_path, arrays):
    path = tmp_path / "w.zarr"
    generate_wavefield_store(path, cfg, 7, seed=5, batch=3, workers=2)
    a, b = arrays(store), arrays(path)
    for name in ARRAYS:
        np.testing.assert_array_equal(a[name], b[name])


def test_resume_after_kill_equals_uninterrupted_run(cfg, store, tmp_path, arrays, cli):
    path = tmp_path / "killed.zarr"
    args = [
        "simulate",
        "wavefield",
        "--preset",
        "tiny",
        "--set",
        "n_time=120",
        "--samples",
        "7",
        "--seed",
        "5",
        "--batch",
        "3",
        "--out",
        str(path),
    ]
    # The fault hook SIGKILLs the process after it wrote the second batch's data, before its done flags.
    killed = cli(*args, env={"CRACKSCOPE_FAULT_KILL_AFTER_SAMPLES": "6"}, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    partial = arrays(path)
    assert partial["done"].tolist() == [1, 1, 1, 0, 0, 0, 0]  # the half-finished batch is not counted
    assert np.abs(partial["signals"][3:6]).max() > 0  # ...although its data had been written
    resumed = cli(*args, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming: 3 of 7" in resumed.stderr
    a, b = arrays(store), arrays(path)
    for name in ARRAYS:
        np.testing.assert_array_equal(a[name], b[name])


def test_mismatched_parameters_are_refused(cfg, store):
    with pytest.raises(InputError, match="seed"):
        generate_wavefield_store(store, cfg, 7, seed=6, batch=3)
    with pytest.raises(InputError, match="poisson_ratio"):
        generate_wavefield_store(store, cfg.replace(poisson_ratio=0.25), 7, seed=5, batch=3)


def test_bad_requests_write_nothing(cfg, tmp_path):
    for kwargs in ({"n_samples": 0}, {"n_samples": 3, "batch": 0}, {"n_samples": 3, "workers": 0}):
        n = kwargs.pop("n_samples")
        with pytest.raises(InputError):
            generate_wavefield_store(tmp_path / "x.zarr", cfg, n, **kwargs)
        assert not (tmp_path / "x.zarr").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="not writable"):
        generate_wavefield_store(blocker / "sub" / "x.zarr", cfg, 2)


@pytest.mark.ray
def test_ray_backend_matches_local(cfg, store, tmp_path, arrays):
    pytest.importorskip("ray")
    path = tmp_path / "ray.zarr"
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        generate_wavefield_store(path, cfg, 7, seed=5, batch=3, backend="ray")
    finally:
        ray.shutdown()
    a, b = arrays(store), arrays(path)
    for name in ARRAYS:
        np.testing.assert_array_equal(a[name], b[name])
