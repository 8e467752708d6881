"""Run configuration: YAML files and ``key=value`` overrides in, validated pydantic objects out.

Errors name the file and the bad key or value in one line (see :mod:`crackscope.errors`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from crackscope.errors import InputError, format_validation_error

M = TypeVar("M", bound=BaseModel)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; an unreadable file or malformed YAML is an :class:`InputError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise InputError(f"config file {path}: cannot be read ({err.strerror or err})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"config file {path}: invalid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"config file {path}: expected a mapping of keys to values, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a nested mapping, returning a copy."""
    out = _deep_copy(data)
    for item in overrides:
        if "=" not in item:
            raise InputError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        if not key:
            raise InputError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise InputError(f"override {item!r}: value is not valid YAML") from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InputError(f"override {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def validate(model: type[M], data: dict[str, Any], source: str = "config") -> M:
    """``model.model_validate(data)`` with one-line error messages naming ``source`` and the key."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise InputError(f"{source}: {format_validation_error(err)}") from None


def _deep_copy(data):
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data
