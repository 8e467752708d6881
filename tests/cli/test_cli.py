"""The crackscope command as a user meets it: help, a full run, and bad input."""

import json

import pytest


@pytest.mark.parametrize("verb", [[], ["simulate"], ["simulate", "wavefield"], ["inspect"], ["version"]])
def test_help_everywhere(verb, cli):
    out = cli(*verb, "--help")
    assert out.returncode == 0 and "Usage" in out.stdout


def test_simulate_then_inspect(tmp_path, cli):
    store = tmp_path / "demo.zarr"
    sim = cli("simulate", "wavefield", "--preset", "tiny", "--samples", "4", "--batch", "2", "--out", str(store))
    assert sim.returncode == 0, sim.stderr
    assert "wrote 4 samples" in sim.stderr
    assert "\r" not in sim.stderr  # no progress bar when stderr is not a terminal
    ins = cli("inspect", str(store), "--out", str(tmp_path / "report"))
    assert ins.returncode == 0, ins.stderr
    assert "crack" in ins.stdout.lower()
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["n_done"] == 4
    assert (tmp_path / "report" / "inspect.png").stat().st_size > 10_000


def test_yaml_config_is_used(tmp_path, cli):
    cfg = tmp_path / "plate.yaml"
    cfg.write_text("preset: tiny\nn_time: 50\ncracks:\n  count_max: 1\n")
    store = tmp_path / "y.zarr"
    out = cli("simulate", "wavefield", "--config", str(cfg), "--samples", "2", "--out", str(store))
    assert out.returncode == 0, out.stderr
    import zarr

    g = zarr.open_group(str(store), mode="r")
    assert g["signals"].shape[-1] == 50 and g.attrs["config"]["cracks"]["count_max"] == 1


BAD = [
    (["--samples", "0"], "--samples"),
    (["--samples", "-3"], "--samples"),
    (["--samples", "2", "--set", "width=-1e-6"], "width"),
    (["--samples", "2", "--set", "height=0"], "height"),
    (["--samples", "2", "--set", "poisson_ratio=0.45"], "poisson_ratio"),
    (["--samples", "2", "--set", "time_step=1e-9"], "time_step"),
    (["--samples", "2", "--set", "no_such_key=1"], "no_such_key"),
    (["--samples", "2", "--batch", "0"], "--batch"),
    (["--samples", "2", "--device", "tpu"], "--device"),
    (["--samples", "2", "--preset", "huge"], "huge"),
    (["--samples", "2", "--set", "cracks.width_um_min=-0.5"], "width_um_min"),
    (["--samples", "2", "--set", "cracks.width_um_max=8"], "width_um_max=8.0"),  # the tiny plate is 7.2 µm
    (["--samples", "2", "--preset", "small", "--set", "cracks.width_um_min=6"], "width_um_min=6.0"),
]


@pytest.mark.parametrize("args,named", BAD)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, args, named, cli):
    store = tmp_path / "bad.zarr"
    extra = [] if "--preset" in args else ["--preset", "tiny"]
    out = cli("simulate", "wavefield", *extra, *args, "--out", str(store))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], out.stderr
    assert "Traceback" not in out.stderr
    assert not store.exists()


def test_bad_config_file_and_unwritable_output(tmp_path, cli):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("poisson_ratio: [1, 2\n")
    out = cli("simulate", "wavefield", "--config", str(bad_yaml), "--samples", "1", "--out", str(tmp_path / "a.zarr"))
    assert out.returncode == 2 and str(bad_yaml) in out.stderr and len(out.stderr.strip().splitlines()) == 1
    missing = cli(
        "simulate",
        "wavefield",
        "--config",
        str(tmp_path / "nope.yaml"),
        "--samples",
        "1",
        "--out",
        str(tmp_path / "a.zarr"),
    )
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    target = blocker / "sub" / "a.zarr"
    unwritable = cli("simulate", "wavefield", "--preset", "tiny", "--samples", "1", "--out", str(target))
    assert unwritable.returncode == 2 and "not writable" in unwritable.stderr and str(target) in unwritable.stderr
    assert not (tmp_path / "a.zarr").exists()


def test_inspect_of_something_that_is_not_a_store(tmp_path, cli):
    out = cli("inspect", str(tmp_path))
    assert out.returncode == 2 and str(tmp_path) in out.stderr and "Traceback" not in out.stderr
