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
                if field.name == "logged":  # the validation keys: a tuple of names
                    assert all(isinstance(k, str) for k in getattr(mod, name)) and value.resolve()
                else:
                    assert callable(getattr(mod, name)), value.target
        for table in pipeline.grid_tables.values():
            assert callable(pipelines.resolve(table))


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


def test_format_help_names_every_format_it_accepts():
    for pipeline in pipelines.REGISTRY.values():
        for fmt in pipeline.formats:
            assert fmt in pipeline.format_help, (pipeline.name, fmt)
        if pipeline.trains:
            assert pipeline.data_help and pipeline.predict_help and pipeline.data_config is not None


def test_no_module_outside_the_registry_branches_on_a_pipeline_name():
    """A comparison of ``pipeline`` with a name, or a lookup of a name's entry, anywhere in the
    package but the registry would make a new pipeline touch that file too."""
    import re
    from pathlib import Path

    import crackscope

    names = "|".join(pipelines.REGISTRY)
    branch = re.compile(
        rf"pipeline\w*\s*(==|!=|in|not in)\s*[\(\[]?\s*[\"']({names})[\"']"
        rf"|pipelines\.get\(\s*[\"']({names})[\"']\s*\)(?!\.study)"
    )
    root = Path(crackscope.__file__).parent
    found = []
    for path in root.rglob("*.py"):
        if path.name == "pipelines.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if branch.search(line):
                found.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_a_pipeline_needs_a_known_task_and_a_data_class_to_train():
    with pytest.raises(ValueError, match="task 'detection' is not one of"):
        pipelines.Pipeline(name="x", summary="", task="detection")
    with pytest.raises(ValueError, match="needs a data_config"):
        pipelines.Pipeline(name="x", summary="", datamodule=pipelines.Lazy("math:fsum"))
