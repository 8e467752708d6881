import os
import re
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import pytest


@pytest.fixture(scope="session")
def running_server():
    """running_server(root, *args): the context manager :func:`_running_server`."""
    return _running_server


@contextmanager
def _running_server(root, *args):
    """``crackscope serve --port 0 --root ROOT *args`` in a process of its own, as a user starts it;
    yields (base URL, the line it printed). Waits (a bounded number of tries) until it answers;
    stopped at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "crackscope.cli", "serve", "--port", "0", "--root", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        line = proc.stderr.readline()
        found = re.search(r"open (http://\S+)/ ", line)
        assert found, f"crackscope serve printed {line!r}; {proc.stderr.read() if proc.poll() is not None else ''}"
        url = found.group(1)
        for _ in range(600):
            try:
                with urllib.request.urlopen(url + "/api/settings") as r:
                    if r.status == 200:
                        break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.1)
        else:
            pytest.fail(f"crackscope serve at {url} never answered")
        yield url, line
    finally:
        proc.terminate()
        proc.wait(timeout=60)
