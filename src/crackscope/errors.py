"""Errors that mean "the user gave us something we cannot use".

The CLI turns an :class:`InputError` (and pydantic's validation errors) into one line naming the
bad value, exit code 2 and no traceback; anything else is an internal failure (exit code 1).
"""

from __future__ import annotations


class InputError(ValueError):
    """A bad value, file or option supplied by the user; the message names it."""


def format_validation_error(err: Exception, prefix: str = "") -> str:
    """One line for a pydantic ``ValidationError``: ``key: message (got value)``."""
    errors = getattr(err, "errors", None)
    if not callable(errors):
        return str(err)
    parts = []
    for e in errors():
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "__root__")
        key = f"{prefix}{loc}" if loc else prefix.rstrip(".")
        msg = e.get("msg", "invalid value")
        msg = msg.removeprefix("Value error, ")
        if e.get("type") in ("extra_forbidden",):
            msg = "unknown key"
            parts.append(f"{key}: {msg}")
            continue
        value = e.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        parts.append(f"{key}: {msg}{shown}" if key else msg)
    return "; ".join(parts)
