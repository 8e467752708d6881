"""The options of ``crackscope inspect-image``: one validated :class:`InspectOptions`, each option with
its default, its constraint and its description (the command's ``--help``).

The command line, :func:`crackscope.deploy.cascade.inspect_image`,
:func:`~crackscope.deploy.cascade.inspect_image_file` and
:func:`~crackscope.deploy.cascade.inspect_folder` all take this one object; a bad value is one
:class:`~crackscope.errors.InputError` line naming it, as ``--flag value`` on the command line and
by its keyword in Python. This module imports neither torch nor the cascade, so that the command line
reads the options' defaults and help without them.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crackscope.errors import InputError

__all__ = ["InspectOptions", "inspect_options", "DEFAULT_TILE", "MAX_SCALE", "MAX_OVERLAP", "RUNTIMES"]

DEFAULT_TILE = 64
MAX_SCALE = 16.0  # --scale in (0, MAX_SCALE]
MAX_OVERLAP = 0.5  # crackscope.deploy.tiling.MAX_OVERLAP (not imported: it imports torch); a test ties them
# of the tile classifier: auto (ONNX Runtime for a full-precision network, PyTorch for a binary one),
# PyTorch, bit-packed (1-bit networks), ONNX Runtime
Runtime = Literal["auto", "torch", "packed", "onnx"]
RUNTIMES = get_args(Runtime)
# crackscope.nn.flip_tta.TTA_MODES (not imported: it imports torch); a test ties them
Tta = Literal["none", "flip", "d8"]


def _option(default, error: str, description: str, **constraints):
    """A field with the end of the one line that refuses a bad value (``--tile 0 <error>``)."""
    return Field(default, description=description, json_schema_extra={"error": error}, **constraints)


class InspectOptions(BaseModel):
    """Every option of ``crackscope inspect-image`` that says how to inspect; the image, the two
    models and the output folder (IMAGE, ``--segmenter``, ``--classifier``, ``--out``) are what to
    inspect, with what and where to, and are arguments of the functions. ``None``: a default taken
    from the models (their runs' tile side, operating point and training window)."""

    # strict as crackscope.engine.config._Strict (not imported: it imports torch), and frozen
    model_config = ConfigDict(extra="forbid", frozen=True)

    tile: int | None = _option(
        None,
        "must be a positive number of pixels",
        "Tile side in pixels (default: the classifier's, 64).",
        ge=1,
    )
    threshold: float | None = _option(
        None,
        "must be a probability in [0, 1]",
        "Classifier crack probability that flags a tile (default: the classifier's validated operating point, "
        "else 0.5).",
        ge=0.0,
        le=1.0,
    )
    all_tiles: bool = _option(False, "must be true or false", "Baseline: segment every window, no classifier.")
    runtime: Runtime = _option(
        "auto",
        f"is not one of {', '.join(RUNTIMES)}",
        "Classifier runtime: onnx (ONNX Runtime), torch, packed (1-bit networks: XNOR/popcount), or auto: onnx "
        "for a full-precision classifier, torch for a binary one. All give the same flags up to float rounding.",
    )
    mm_per_pixel: float | None = _option(
        None,
        "must be a positive number of millimetres per pixel",
        "Size of one pixel on the surface, in mm: crack lengths, widths and areas are also reported in mm.",
        gt=0.0,
        allow_inf_nan=False,
    )
    window: int | None = _option(
        None,
        "must be a positive number of pixels",
        "Segmentation window side in pixels (default: the window the classifier's operating point was chosen "
        "for, else the segmenter's training crop, else the tile side).",
        ge=1,
    )
    overlap: float | None = _option(
        None,
        f"must be a fraction of the window in [0, {MAX_OVERLAP}]",
        f"Overlap of neighbouring segmentation windows, a fraction of the window in [0, {MAX_OVERLAP}], blended "
        "with raised-cosine weights; 0: non-overlapping, stitched (default: the classifier's operating point's, "
        "else 0.25).",
        ge=0.0,
        le=MAX_OVERLAP,
    )
    batch: int = _option(64, "must be a positive number of windows", "Windows per segmenter call.", ge=1)
    follow: int = _option(
        0,
        "must be a whole number of rounds, 0 or more",
        "Cascade: rounds of following cracks out of the segmented tiles; a tile the classifier did not flag is "
        "segmented too when the mask's crack reaches it and its crack probability is at least the follow threshold "
        "(0: only the flagged tiles).",
        ge=0,
    )
    follow_threshold: float = _option(
        0.0,
        "must be a probability in [0, 1]",
        "Cascade: the classifier crack probability a tile that a followed crack reaches needs to be segmented "
        "(hysteresis: lower than the flagging threshold).",
        ge=0.0,
        le=1.0,
    )
    tta: Tta = _option(
        "none",
        f"is not one of {', '.join(get_args(Tta))}",
        "Segmenter test-time augmentation: none, flip (the window's four mirrors averaged, 4 passes) or d8 (also "
        "transposed, 8 passes).",
    )
    scale: float = _option(
        1.0,
        f"must be a number in (0, {MAX_SCALE:g}] (> 1 enlarges the image)",
        "Resample the image by this factor before inference, the mask back after: > 1 for cracks thinner than "
        "in the training photos, < 1 for thicker ones.",
        gt=0.0,
        le=MAX_SCALE,
    )

    @field_validator(
        "tile",
        "threshold",
        "mm_per_pixel",
        "window",
        "overlap",
        "batch",
        "follow",
        "follow_threshold",
        "scale",
        mode="before",
    )
    @classmethod
    def _not_a_bool(cls, value):
        if isinstance(value, bool):  # pydantic would take True as 1
            raise ValueError("a number, not a bool")
        return value

    @staticmethod
    def flag(name: str) -> str:
        """The command-line flag of option ``name``: ``mm_per_pixel`` -> ``--mm-per-pixel``."""
        return "--" + name.replace("_", "-")

    @classmethod
    def parse(cls, values: Mapping[str, Any], names: Mapping[str, str] | None = None) -> InspectOptions:
        """The options ``values`` (option name -> value; missing ones take their defaults), validated
        once. A bad value is one :class:`InputError` line, ``<name> <value> <what it must be>``, ``name``
        from ``names`` (default: the option's flag, ``--tile``); several bad values share the line."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as err:
            raise InputError(_one_line(err, names)) from None


def _one_line(err: ValidationError, names: Mapping[str, str] | None) -> str:
    parts = []
    for e in err.errors():
        field = str(e["loc"][0]) if e.get("loc") else ""
        name = (names or {}).get(field) or InspectOptions.flag(field)
        info = InspectOptions.model_fields.get(field)
        if info is None:
            parts.append(f"unknown option {name}")
            continue
        value = e.get("input")
        shown = str(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else repr(value)
        parts.append(f"{name} {shown} {info.json_schema_extra['error']}")
    return "; ".join(parts)


def inspect_options(
    options: InspectOptions | None,
    keywords: Mapping[str, Any],
    who: str,
    accepted: Iterable[str] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> InspectOptions:
    """The options of a Python call: ``options`` (default: all at their defaults) with the keyword
    arguments ``keywords`` set on top, the one place where the keyword form becomes an
    :class:`InspectOptions`. ``accepted``: the keywords ``who`` takes (default: every option);
    ``aliases``: keyword -> option (``batch_size`` -> ``batch``). A bad value is one
    :class:`InputError` line naming its keyword; an unknown keyword or ``options`` of another type is
    a :class:`TypeError`, as Python's own for a wrong call. Given no keywords, ``options`` is returned
    as it is (validated when it was built)."""
    if options is not None and not isinstance(options, InspectOptions):
        raise TypeError(f"{who}() takes its options as an InspectOptions, got {type(options).__name__}")
    aliases = dict(aliases or {})
    accepted = set(InspectOptions.model_fields if accepted is None else accepted)
    for key in keywords:
        if key not in accepted:
            raise TypeError(f"{who}() got an unexpected keyword argument {key!r}")
    if not keywords:
        return options if options is not None else InspectOptions()
    base = {} if options is None else options.model_dump()
    fields = {aliases.get(key, key): value for key, value in keywords.items()}
    names = {aliases.get(key, key): key for key in keywords}
    return InspectOptions.parse({**base, **fields}, names={name: name for name in InspectOptions.model_fields} | names)
