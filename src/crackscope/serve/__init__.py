"""``crackscope serve``: a local web page and HTTP API over the library calls of ``crackscope
inspect-image`` (docs/serve.md).

* :mod:`.app`: the FastAPI application (the page, ``POST /api/inspect``, ``POST /api/jobs``,
  ``GET /api/jobs/{id}``, its files and zip, ``GET /api/models``);
* :mod:`.jobs`: the jobs, each in its own temporary folder under its own random id, run one at a time;
* :mod:`.uploads`: checking and saving uploaded photos (size limit, empty files, non-images) and
  folders named by path (inside the allowed root only);
* ``static/``: the page (HTML, JavaScript and CSS, no outside resource).

FastAPI, uvicorn and python-multipart are the optional ``serve`` extra; :func:`serve` says so in one
line when they are missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from crackscope.errors import InputError

__all__ = ["serve", "LOOPBACK"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _bindable_port(host: str, port: int) -> int:
    """``port`` (a free one for 0) after checking that HOST:PORT can be bound; one line if not."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(infos[0][4][:2])
            return int(s.getsockname()[1])
    except OSError as err:
        raise InputError(f"cannot listen on {host}:{port} ({err.strerror or err})") from None


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    root: str | Path = ".",
    max_upload_mb: float = 50.0,
    log: Callable[[str], None] = print,
) -> None:
    """Run the page and API on http://HOST:PORT until interrupted. ``root``: the folder whose
    sub-folders the page may inspect by path; ``max_upload_mb``: the largest photo accepted."""
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn
    except ImportError as err:
        missing = err.name or str(err)
        raise InputError(
            f"crackscope serve needs the serve extra ({missing} is not installed): pip install 'crackscope[serve]'"
        ) from None
    from crackscope.serve.app import create_app

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"--root {root}: no such folder")
    if not max_upload_mb > 0:
        raise InputError(f"--max-upload-mb {max_upload_mb} must be a positive number of megabytes")
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port} must be in 0-65535")
    port = _bindable_port(host, port)
    app = create_app(root=root, max_upload_bytes=int(max_upload_mb * 1e6))
    shown = f"[{host}]" if ":" in host else host
    log(f"crackscope serve: open http://{shown}:{port}/ (photos by path under {root.resolve()}); Ctrl+C stops it")
    if host not in LOOPBACK:
        log(f"warning: --host {host} makes the page reachable from other computers; it has no login")
    uvicorn.run(app, host=host, port=port, log_level="warning")
