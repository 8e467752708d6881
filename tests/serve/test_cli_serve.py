"""``crackscope serve`` as a user starts it: it listens on 127.0.0.1 unless told otherwise and answers
there; without the serve extra, or with a bad option, it is one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest


def test_it_listens_on_the_loopback_address_by_default(tmp_path, running_server):
    with running_server(tmp_path) as (url, line):
        assert url.startswith("http://127.0.0.1:") and str(tmp_path.resolve()) in line
        with urllib.request.urlopen(url + "/api/settings") as r:
            assert json.loads(r.read())["root"] == str(tmp_path.resolve())
        with urllib.request.urlopen(url + "/") as r:
            assert b"Drop photos here" in r.read()


def test_without_the_serve_extra_it_says_how_to_install_it(cli):
    code = (
        "import sys; sys.modules['fastapi'] = None\n"  # as if FastAPI were not installed
        "from crackscope.cli import main; sys.exit(main(['serve']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: crackscope serve needs the serve extra (fastapi is not installed): pip install 'crackscope[serve]'"
    ]


@pytest.mark.parametrize(
    "args,named",
    [(["--root", "/no/such/folder"], "--root /no/such/folder"), (["--max-upload-mb", "0"], "--max-upload-mb")],
)
def test_bad_options_are_one_line_exit_2(cli, args, named):
    done = cli("serve", *args, timeout=300)
    assert done.returncode == 2 and named in done.stderr and len(done.stderr.strip().splitlines()) == 1
