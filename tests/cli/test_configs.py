"""Every shipped config validates and reproduces its preset."""

from pathlib import Path

import pytest

from crackscope.physics import PlateConfig
from crackscope.physics.config import load_plate_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "wavefield").glob("simulate_*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_simulation_configs_equal_their_presets(path):
    preset = path.stem.removeprefix("simulate_")
    assert load_plate_config(None, path) == PlateConfig.preset(preset)


def test_configs_exist():
    assert {p.stem for p in CONFIGS} >= {"simulate_paper", "simulate_small", "simulate_tiny"}


def test_overrides_beat_the_file_which_beats_the_preset(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: tiny\nn_time: 50\ncracks: {count_max: 2}\n")
    cfg = load_plate_config(None, path, ["n_time=60"])
    assert cfg.n_time == 60 and cfg.cracks.count_max == 2
    assert cfg.width == PlateConfig.preset("tiny").width and cfg.cracks.length_um_max == 3.2
