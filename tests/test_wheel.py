"""The package as a user gets it: the wheel built by ``pip wheel --no-deps`` holds the code, the
report template, the web page and every shipped model; installed (not editable) into a fresh virtual
environment outside the checkout, ``crackscope inspect-image PHOTO --out report/`` runs with no other
argument and measures the crack drawn on the photo.

What it proves: the package data are declared (nothing is read from the checkout: the import and the
models come from the new environment), names resolve through importlib.resources in an installed
package, and the console script works. What it does not: the new environment borrows the project
environment's installed dependencies (a .pth file, no download), so it does not check that pip
resolves them from the wheel's metadata."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from crackscope.shipped import MODELS

ROOT = Path(__file__).resolve().parents[1]
MAX_WHEEL_MB = 55  # the 11 shipped models are 55 MB of files; docs/models.md gives the measured size

pytestmark = pytest.mark.wheel


def _run(argv, **kw):
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, **kw)
    assert done.returncode == 0, f"{argv}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (pip builds in the source tree; the checkout
    stays clean)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    constraints = ROOT / ".venv" / "constraints.txt"
    limit = ["-c", str(constraints)] if constraints.is_file() else []
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(tmp / "dist"), *limit])
    (built,) = (tmp / "dist").glob("crackscope-*.whl")
    return built


def test_the_wheel_holds_every_model_the_page_and_the_template_and_is_small(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in MODELS:
        for file in ("config.yaml", "model.safetensors", "metrics.json", "README.md"):
            assert f"crackscope/weights/{model}/{file}" in names, (model, file)
    assert {"crackscope/serve/static/index.html", "crackscope/serve/static/app.js"} <= names
    assert "crackscope/deploy/cascade/templates/report.html" in names
    assert not any(n.startswith(("tests/", "benchmarks/", "configs/")) for n in names)
    assert wheel.stat().st_size < MAX_WHEEL_MB * 1e6, f"{wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB"


def test_inspect_image_runs_from_a_fresh_environment_outside_the_checkout(wheel, tmp_path, draw_crack_photos):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)])
    purelib = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    # the dependencies (torch, ...) of the project's environment, after the new one's own packages
    (purelib / "zz_crackscope_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "user"
    (photo, drawn), *_ = draw_crack_photos(work / "photos").values()  # the wide crack
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    where = _run([str(python), "-c", "import crackscope.shipped as s; print(s.weights_root())"], cwd=work, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv) and not Path(where.stdout.strip()).is_relative_to(ROOT)

    crackscope = venv / "bin" / "crackscope"
    done = _run([str(crackscope), "inspect-image", str(photo.relative_to(work)), "--out", "report"], cwd=work, env=env)
    summary = json.loads((work / "report" / "summary.json").read_text())
    assert summary["segmenter"] == "cracks/segmenter" and summary["classifier"] == "cracks/tile_classifier"
    assert summary["cracks"]["count"] >= 1
    assert summary["cracks"]["total_length_px"] == pytest.approx(drawn, rel=0.10)  # the crack drawn on it
    assert "cracks, total length" in done.stdout
    models = _run([str(crackscope), "models"], cwd=work, env=env).stdout
    assert all(name in models for name in MODELS)
