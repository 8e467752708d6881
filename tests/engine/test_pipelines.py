"""The pipeline registry is the one place the CLI, config validation, training and export look
pipelines up: every entry point it names exists, and the formats it advertises are the readers'."""

import dataclasses

import pytest

from crackscope.data import classification, surface
from crackscope.data.tiles import TILE_FORMAT
from crackscope.engine import pipelines
from crackscope.engine.config import TrainConfig
from crackscope.errors import InputError


def test_every_named_entry_point_imports():
    for pipeline in pipelines.REGISTRY.values():
        for field in dataclasses.fields(pipeline):
            value = getattr(pipeline, field.name)
            if isinstance(value, pipelines.Lazy):
                module, name = value.target.split(":")
                mod = __import__(module, fromlist=[name])
                assert callable(getattr(mod, name)), value.target


def test_the_four_pipelines_and_what_they_offer():
    assert set(pipelines.REGISTRY) == {"wavefield", "surface", "classify", "harmonics"}
    assert pipelines.trainable() == ("wavefield", "surface", "classify")
    harmonics = pipelines.get("harmonics")
    assert harmonics.study is not None and not harmonics.trains
    with pytest.raises(InputError, match="'crackscope evaluate' does not apply to the harmonics pipeline"):
        harmonics.require("evaluate", "evaluate")
    with pytest.raises(InputError, match="unknown pipeline 'xray'; choose one of wavefield, surface"):
        pipelines.get("xray")


def test_formats_are_the_readers_formats():
    assert pipelines.get("surface").formats == surface.FORMATS
    assert pipelines.get("classify").formats == (*classification.FORMATS, TILE_FORMAT)
    assert pipelines.get("wavefield").formats == ()


def test_config_validation_and_monitor_come_from_the_registry():
    base = {"name": "r", "model": {"name": "unet"}, "loss": {"name": "dice"}}
    cfg = TrainConfig.model_validate({**base, "pipeline": "surface", "data": {"root": "x"}})
    assert cfg.monitor == pipelines.get("surface").monitor == "val/miou"
    with pytest.raises(ValueError, match="does not train with 'crackscope train'"):
        TrainConfig.model_validate({**base, "pipeline": "harmonics", "data": {"kind": "surface", "root": "x"}})


def test_a_new_pipeline_is_one_register_call():
    entry = pipelines.Pipeline(name="toy", summary="a test entry", study=pipelines.Lazy("math:fsum"))
    try:
        pipelines.register(entry)
        assert pipelines.get("toy").study([0.1] * 10) == 1.0
        assert "toy" not in pipelines.trainable()
        with pytest.raises(ValueError, match="registered twice"):
            pipelines.register(entry)
    finally:
        pipelines.REGISTRY.pop("toy", None)
