"""The FastAPI application of ``crackscope serve``: the page and its HTTP API (docs/serve.md).

* ``GET /``: the page (``static/``); ``GET /api/models``: the shipped models (``crackscope models
  --json``) and ``GET /api/settings``: the allowed folder and the upload limit;
* ``POST /api/inspect``: one photo (multipart ``file``) inspected at once, as ``crackscope
  inspect-image PHOTO``; returns its summary.json, every crack (cracks.csv) and links to the mask,
  the overlay and the other files;
* ``POST /api/jobs``: many photos (``files``) or a folder on this computer under the allowed root
  (``folder``), inspected in the background as ``crackscope inspect-image FOLDER``; ``GET
  /api/jobs/{id}`` gives progress, then every photo's result; ``GET /api/jobs/{id}/report.zip``
  the report folder (masks, overlays, CSVs, index.html) and ``GET /api/jobs/{id}/files/{path}``
  one of its files.

Options (form fields): ``mm_per_pixel``, ``mode`` (``cascade`` or ``all``: every window),
``scale``, ``models`` (a shipped pair, default ``cracks``). A bad request is HTTP 4xx with one
line, ``{"detail": "..."}``, and keeps nothing.
"""

from __future__ import annotations

import csv
import json
import zipfile
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from crackscope import __version__
from crackscope.deploy.inspect_options import InspectOptions
from crackscope.errors import InputError
from crackscope.serve.jobs import Job, Jobs
from crackscope.serve.uploads import UploadError, allowed_folder, safe_name, save_upload

__all__ = ["create_app", "MODES"]

MODES = {"cascade": "the tile classifier screens, the segmenter runs where it flags", "all": "every window"}
_SLACK = 1 << 20  # multipart framing and form fields on top of the photos


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _options(mm_per_pixel: str, mode: str, scale: str) -> InspectOptions:
    if mode not in MODES:
        raise UploadError(400, f"mode {mode!r} is not one of {', '.join(MODES)}")
    values: dict = {"all_tiles": mode == "all"}
    if mm_per_pixel.strip():
        values["mm_per_pixel"] = mm_per_pixel.strip()
    if scale.strip():
        values["scale"] = scale.strip()
    return InspectOptions.parse(values, names={"mm_per_pixel": "mm_per_pixel", "scale": "scale"})


def _models(pair: str, options: InspectOptions) -> tuple[Path, Path | None]:
    from crackscope.shipped import PAIRS, folder

    if pair not in PAIRS:
        raise UploadError(400, f"models {pair!r} is not one of {', '.join(PAIRS)}")
    return folder(pair, "segmenter"), None if options.all_tiles else folder(pair, "classifier")


def _setup(
    mm_per_pixel: Annotated[str, Form(description="Millimetres per pixel (empty: sizes in px only).")] = "",
    mode: Annotated[str, Form(description="cascade, or all (every window).")] = "cascade",
    scale: Annotated[str, Form(description="Resample the photo by this factor first (empty: 1).")] = "",
    models: Annotated[str, Form(description="A shipped pair (crackscope models).")] = "cracks",
) -> tuple[InspectOptions, Path, Path | None]:
    """The form's options of one inspection: (options, segmenter folder, classifier folder or None)."""
    options = _options(mm_per_pixel, mode, scale)
    return (options, *_models(models, options))


Setup = Annotated[tuple, Depends(_setup)]


def _photo_result(job: Job, output: str) -> dict:
    """One photo's result as the API returns it, read from the files inspect-image wrote."""
    folder = job.out / output if output else job.out
    summary = json.loads((folder / "summary.json").read_text())
    summary["image"] = job.names.get(summary["image"], summary["image"])
    prefix = f"/api/jobs/{job.id}/files/" + (quote(output) + "/" if output else "")
    return {
        "file": summary["image"],
        "output": output,
        "summary": summary,
        "cracks": _read_csv(folder / "cracks.csv"),
        "links": {
            name.replace(".", "_"): prefix + name
            for name in ("overlay.png", "mask.png", "cracks.csv", "tiles.csv", "summary.json")
        },
    }


def _job_state(job: Job) -> dict:
    from crackscope.deploy.cascade.report_html import severity_key

    state = {
        "job": job.id,
        "status": job.status,
        "done": job.done,
        "total": job.total,
        "error": job.error,
        "photos": [],
        "skipped": [],
        "links": {},
    }
    if job.status == "done" and job.kind == "folder":
        rows = sorted(job.result["rows"], key=severity_key, reverse=True)
        state["photos"] = [_photo_result(job, row["output"]) for row in rows]
        for line in job.result["skipped"]:
            path, reason = line.split("\t", 1)
            state["skipped"].append({"file": job.names.get(path, path), "reason": reason})
        state["links"] = {"zip": f"/api/jobs/{job.id}/report.zip", "index": f"/api/jobs/{job.id}/files/index.html"}
    return state


def create_app(root: str | Path = ".", max_upload_bytes: int = 50_000_000, jobs: Jobs | None = None) -> FastAPI:
    """The application. ``root``: the folder whose photos may be named by path; ``max_upload_bytes``:
    the largest photo accepted; ``jobs``: where jobs live (default: a temporary folder of the server's)."""
    from crackscope.deploy.cascade import inspect_folder, inspect_image_file
    from crackscope.engine.image_predictions import list_prediction_images

    root = Path(root).resolve()
    jobs = jobs or Jobs()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        jobs.close()  # the jobs' folders go with the server

    app = FastAPI(title="crackscope", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.jobs, app.state.root = jobs, root

    @app.exception_handler(InputError)
    async def _input_error(request: Request, err: InputError):
        return JSONResponse({"detail": str(err)}, status_code=getattr(err, "status", 400))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError):
        parts = [f"{e['loc'][-1]}: {e['msg']}" for e in err.errors()]
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    @app.exception_handler(Exception)
    async def _internal(request: Request, err: Exception):
        return JSONResponse({"detail": f"internal error: {type(err).__name__}: {err}"}, status_code=500)

    @app.middleware("http")
    async def _too_large(request: Request, call_next):
        """Refuse a body larger than the limit allows before reading it (413, nothing kept)."""
        length = request.headers.get("content-length", "")
        if request.method == "POST" and length.isdigit():
            single = request.url.path == "/api/inspect"
            limit = max_upload_bytes + _SLACK if single else 1000 * max_upload_bytes
            if int(length) > limit:
                what = "one photo" if single else "one upload"
                detail = f"the upload ({int(length) / 1e6:.1f} MB) is larger than the limit of {what}"
                return JSONResponse({"detail": f"{detail} ({limit / 1e6:g} MB)"}, status_code=413)
        return await call_next(request)

    static = resources.files("crackscope.serve") / "static"

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(str(static / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/api/models")
    def models():
        from crackscope.shipped import DEFAULT_PAIR, MODELS, PAIRS, describe

        return {"default_pair": DEFAULT_PAIR, "pairs": PAIRS, "models": [describe(name) for name in MODELS]}

    @app.get("/api/settings")
    def settings():
        return {"root": str(root), "max_upload_mb": max_upload_bytes / 1e6, "modes": MODES, "version": __version__}

    @app.post("/api/inspect")
    def inspect(file: Annotated[UploadFile, File(description="One photo (any Pillow format).")], setup: Setup):
        options, segmenter, classifier = setup
        job = jobs.new("image")
        try:
            path = save_upload(
                file.file, file.filename or "photo", job.photos / safe_name(file.filename, set()), max_upload_bytes
            )
            job.names[str(path)] = file.filename or path.name
            job.total = 1
            with jobs.inference:
                inspect_image_file(path, segmenter, job.out, classifier_path=classifier, options=options)
        except BaseException:
            jobs.discard(job)
            raise
        job.done, job.status = 1, "done"
        return {"job": job.id, **_photo_result(job, "")}

    @app.post("/api/jobs", status_code=202)
    def create_job(
        setup: Setup,
        files: Annotated[list[UploadFile] | None, File(description="Photos to inspect.")] = None,
        folder: Annotated[str, Form(description="Or a folder of photos under the allowed root.")] = "",
    ):
        options, segmenter, classifier = setup
        files = files or []
        if files and folder.strip():
            raise UploadError(400, "give photos or a folder, not both")
        if not files and not folder.strip():
            raise UploadError(400, "no photos given: choose photos or name a folder")
        source = allowed_folder(folder, root) if not files else None
        if source is not None:
            try:
                total = len(list_prediction_images(source))
            except InputError:
                raise UploadError(400, f"folder {folder}: no image files in it") from None
        job = jobs.new("folder")
        try:
            taken: set[str] = set()
            for upload in files:
                name = upload.filename or "photo"
                path = save_upload(upload.file, name, job.photos / safe_name(name, taken), max_upload_bytes)
                job.names[str(path)] = name
        except BaseException:
            jobs.discard(job)
            raise
        job.total = total if source is not None else len(files)

        def work(job: Job) -> dict:
            def progress(done: int, total: int) -> None:
                job.done, job.total = done, total

            return inspect_folder(
                source or job.photos, segmenter, job.out, classifier_path=classifier, options=options, progress=progress
            )

        jobs.submit(job, work)
        return {"job": job.id, "total": job.total, "links": {"status": f"/api/jobs/{job.id}"}}

    def _job(job_id: str) -> Job:
        job = jobs.get(job_id)
        if job is None:
            raise UploadError(404, f"no job {job_id} (results live until the server stops)")
        return job

    @app.get("/api/jobs/{job_id}")
    def job_state(job_id: str):
        return _job_state(_job(job_id))

    @app.get("/api/jobs/{job_id}/files/{path:path}")
    def job_file(job_id: str, path: str):
        job = _job(job_id)
        file = (job.out / path).resolve()
        if not file.is_relative_to(job.out.resolve()) or not file.is_file():
            raise UploadError(404, f"job {job_id} has no file {path}")
        return FileResponse(str(file))

    @app.get("/api/jobs/{job_id}/report.zip")
    def job_zip(job_id: str):
        job = _job(job_id)
        if job.status != "done":
            raise UploadError(409, f"job {job_id} is {job.status}; its report is not ready")
        archive = job.dir / "report.zip"
        if not archive.is_file():
            tmp = archive.with_suffix(".zip.tmp")
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for file in sorted(p for p in job.out.rglob("*") if p.is_file()):
                    zf.write(file, Path("report") / file.relative_to(job.out))
            tmp.replace(archive)
        return FileResponse(str(archive), media_type="application/zip", filename="crackscope-report.zip")

    return app
