"""Progress bars that show on a terminal and stay quiet when output is piped or logged."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(iterable=None, *, desc: str = "", total: int | None = None, enabled: bool | None = None, **kw):
    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, disable=not enabled, leave=False, dynamic_ncols=True, **kw)
