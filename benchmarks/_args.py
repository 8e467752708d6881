"""Argument parsing the benchmarks share."""

from __future__ import annotations

from crackscope.errors import InputError


def named_values(values: list[str], flag: str) -> dict[str, str]:
    """``NAME=VALUE`` arguments of a repeated option (``--model shipped=cracks/segmenter``), as
    ``{NAME: VALUE}`` in the order given; one that is not NAME=VALUE is an :class:`InputError` naming it."""
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise InputError(f"{flag} {item!r} is not NAME=VALUE")
        out[name] = value
    return out
