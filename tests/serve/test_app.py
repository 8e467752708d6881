"""The HTTP API of ``crackscope serve`` (FastAPI's TestClient): POST /api/inspect returns what
``crackscope inspect-image`` writes for the same photo, jobs never mix results, a folder job reports
progress and zips the report, GET /api/models is ``crackscope models --json``, and every bad request is
4xx with one line and leaves nothing behind."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from crackscope.cli import main
from crackscope.serve.app import create_app
from crackscope.serve.jobs import Jobs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def served(tmp_path, crack_photos):
    """(client, jobs folder, allowed root, photos) of an app whose root is TMP/root, photos inside it."""
    root = tmp_path / "root"
    photos = crack_photos(root / "photos")
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    jobs = Jobs(jobs_dir)
    with TestClient(create_app(root=root, max_upload_bytes=2_000_000, jobs=jobs)) as client:
        yield client, jobs_dir, root, photos


def _post_photo(client, path: Path, **form):
    with open(path, "rb") as fh:
        return client.post("/api/inspect", files={"file": (path.name, fh, "image/jpeg")}, data=form)


def _numbers(rows):
    return [{k: float(v) for k, v in r.items()} for r in rows]


def test_inspect_returns_what_the_cli_writes_for_the_same_photo(served, tmp_path):
    client, _, _, photos = served
    photo = photos["wide"][0]
    r = _post_photo(client, photo, mm_per_pixel="0.5")
    assert r.status_code == 200, r.text
    got = r.json()
    out = tmp_path / "cli"
    assert main(["inspect-image", str(photo), "--out", str(out), "--mm-per-pixel", "0.5"]) == 0
    cli_summary = json.loads((out / "summary.json").read_text())
    with open(out / "cracks.csv", newline="") as fh:
        cli_cracks = list(csv.DictReader(fh))
    assert got["file"] == "wide.jpg" and got["summary"]["segmenter"] == "cracks/segmenter"
    assert got["summary"]["cracks"]["count"] == cli_summary["cracks"]["count"] >= 1
    assert got["summary"]["cracks"]["total_length_mm"] == cli_summary["cracks"]["total_length_mm"]
    assert _numbers(got["cracks"]) == _numbers(cli_cracks)
    mask = client.get(got["links"]["mask_png"])
    overlay = client.get(got["links"]["overlay_png"])
    assert mask.status_code == overlay.status_code == 200
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(mask.content))), np.asarray(Image.open(out / "mask.png")))
    assert Image.open(io.BytesIO(overlay.content)).size == Image.open(photo).size


def test_two_jobs_at_once_keep_their_own_results(served):
    client, _, _, photos = served
    ids = {}
    for name in ("thin", "wide"):
        with open(photos[name][0], "rb") as fh:
            r = client.post("/api/jobs", files=[("files", (f"{name}.jpg", fh, "image/jpeg"))])
        assert r.status_code == 202, r.text
        ids[name] = r.json()["job"]
    assert ids["thin"] != ids["wide"]
    for name, job in ids.items():
        state = _wait(client, job)
        assert [p["file"] for p in state["photos"]] == [f"{name}.jpg"]
        assert all(link.startswith(f"/api/jobs/{job}/") for link in state["photos"][0]["links"].values())
    assert client.get("/api/jobs/not-a-job").status_code == 404


def _wait(client, job: str, polls: int = 2000) -> dict:
    """The job's state once finished (a bounded number of polls; nothing is timed)."""
    for _ in range(polls):
        state = client.get(f"/api/jobs/{job}").json()
        if state["status"] in ("done", "failed"):
            return state
    raise AssertionError(f"job {job} did not finish: {state}")


def test_a_folder_job_reports_progress_worst_first_and_zips_the_report(served):
    client, _, root, _ = served
    (root / "photos" / "broken.png").write_text("not an image")
    r = client.post("/api/jobs", data={"folder": "photos", "mm_per_pixel": "0.5"})
    assert r.status_code == 202 and r.json()["total"] == 4
    state = _wait(client, r.json()["job"])
    assert state["status"] == "done" and state["done"] == state["total"] == 4
    assert all(p["summary"]["cracks"]["mm_per_pixel"] == 0.5 for p in state["photos"])
    assert [p["file"] for p in state["photos"]] == [
        str(root / "photos" / f"{n}.jpg") for n in ("wide", "thin", "plain")
    ]
    assert [Path(s["file"]).name for s in state["skipped"]] == ["broken.png"]
    archive = client.get(state["links"]["zip"])
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    names = set(zipfile.ZipFile(io.BytesIO(archive.content)).namelist())
    for expected in ("report/index.html", "report/summary.csv", "report/skipped.txt", "report/wide/mask.png"):
        assert expected in names
    assert {"report/thin/cracks.csv", "report/plain/overlay.png"} <= names


def test_models_are_those_of_crackscope_models(served, capsys):
    client, *_ = served
    assert main(["models", "--json"]) == 0
    assert client.get("/api/models").json()["models"] == json.loads(capsys.readouterr().out)["models"]


BAD = [
    ("not an image", lambda p, root: {"file": ("notes.jpg", b"just some text", "image/jpeg")}, {}, 415, "notes.jpg"),
    ("empty file", lambda p, root: {"file": ("empty.jpg", b"", "image/jpeg")}, {}, 400, "empty.jpg is empty"),
    ("too large", lambda p, root: {"file": ("big.jpg", b"\xff" * 2_100_000, "image/jpeg")}, {}, 413, "MB"),
    ("bad mm", lambda p, root: {"file": ("a.jpg", p.read_bytes(), "image/jpeg")}, {"mm_per_pixel": "-1"}, 400, "mm"),
    ("bad mode", lambda p, root: {"file": ("a.jpg", p.read_bytes(), "image/jpeg")}, {"mode": "fast"}, 400, "mode"),
    ("no file", lambda p, root: None, {}, 422, "file"),
    ("unknown pair", lambda p, root: {"file": ("a.jpg", p.read_bytes(), "image/jpeg")}, {"models": "x"}, 400, "models"),
]


@pytest.mark.parametrize("problem,files,form,status,named", BAD, ids=[b[0] for b in BAD])
def test_a_bad_upload_is_4xx_one_line_and_keeps_nothing(served, problem, files, form, status, named):
    client, jobs_dir, root, photos = served
    given = files(photos["thin"][0], root)
    r = client.post("/api/inspect", files=given, data=form) if given else client.post("/api/inspect", data=form)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and named in detail and "Traceback" not in detail
    assert list(jobs_dir.iterdir()) == []


FOLDERS = [
    ("outside the root", lambda root: str(root.parent), 403, "outside the allowed folder"),
    ("climbing out", lambda root: "photos/../..", 403, "outside the allowed folder"),
    ("a link pointing out", lambda root: "escape", 403, "outside the allowed folder"),
    ("no such folder", lambda root: "nowhere", 404, "no such folder"),
    ("no photos in it", lambda root: "empty", 400, "no image files"),
]


@pytest.mark.parametrize("problem,folder,status,named", FOLDERS, ids=[f[0] for f in FOLDERS])
def test_a_folder_outside_the_allowed_root_is_refused(served, tmp_path, problem, folder, status, named):
    client, jobs_dir, root, _ = served
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", root / "escape")
    (root / "empty").mkdir()
    r = client.post("/api/jobs", data={"folder": folder(root)})
    assert r.status_code == status, r.text
    assert named in r.json()["detail"] and list(jobs_dir.iterdir()) == []


def test_a_job_file_outside_the_job_is_not_served(served):
    client, _, _, photos = served
    job = _post_photo(client, photos["thin"][0]).json()["job"]
    assert client.get(f"/api/jobs/{job}/files/summary.json").status_code == 200
    assert client.get(f"/api/jobs/{job}/files/../photos/thin.jpg").status_code == 404
    assert client.get(f"/api/jobs/{job}/files/%2E%2E/%2E%2E/etc/passwd").status_code == 404


def test_the_jobs_folder_goes_with_the_server(crack_photos):
    jobs = Jobs()  # a temporary folder of its own, as crackscope serve has
    photo = crack_photos()["thin"][0]
    with TestClient(create_app(root=photo.parent, jobs=jobs)) as client:
        assert _post_photo(client, photo).status_code == 200
        assert any(jobs.base.iterdir())
    assert not jobs.base.exists()
