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


def require_positive_int(name: str, value) -> int:
    """``int(value)`` if it is an integer >= 1 (Python or numpy; bools refused), else an
    :class:`InputError` naming ``name``."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer (got {value!r})")
    return int(value)


def dataset_index(i, n: int, what: str) -> int:
    """A valid non-negative position for ``dataset[i]`` of ``n`` items (negative counts from the end)."""
    import numpy as np

    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
        raise TypeError(f"{what} index must be an integer, got {i!r}")
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of range for {what} of {n} items")
    return int(i) % n


def exit_code_of(main, argv=None) -> int:
    """``main(argv)``'s exit code, with crackscope's contract for bad input: an :class:`InputError`
    is one line on stderr (``error: ...``) and exit code 2, no traceback. For the entry points of
    scripts (the benchmarks) that are not Typer commands."""
    import sys

    try:
        return main(argv)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def named_values(values: list[str], flag: str) -> dict[str, str]:
    """``NAME=VALUE`` arguments of a script's repeated option (``--model shipped=cracks/segmenter``)
    as ``{NAME: VALUE}`` in the order given, split at the first ``=``; one that is not NAME=VALUE is
    an :class:`InputError` naming the option and the value."""
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise InputError(f"{flag} {item!r} is not NAME=VALUE")
        out[name] = value
    return out
