"""The jobs of ``crackscope serve``: each request that inspects photos is a job with its own random
id and its own temporary folder (``photos/`` for uploads, ``report/`` for what inspect-image writes),
so that browser tabs and API clients never see each other's results. Jobs run one at a time (the
cores are shared); their folders live until the server stops or :data:`MAX_JOBS` newer jobs push
the oldest finished ones out. A job that fails keeps its error line and nothing else."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from crackscope.errors import InputError

__all__ = ["Job", "Jobs", "MAX_JOBS"]

MAX_JOBS = 50  # finished jobs kept (with their files) before the oldest go


@dataclass
class Job:
    """One inspection: ``status`` queued / running / done / failed, ``done`` of ``total`` photos,
    ``error`` (one line) when it failed, ``result`` (what the library call returned) when done."""

    id: str
    dir: Path
    kind: str  # "image" (POST /api/inspect) or "folder" (POST /api/jobs)
    status: str = "queued"
    done: int = 0
    total: int = 0
    error: str | None = None
    result: dict | None = None
    names: dict[str, str] = field(default_factory=dict)  # saved upload path -> the name it was uploaded as

    @property
    def photos(self) -> Path:
        return self.dir / "photos"

    @property
    def out(self) -> Path:
        return self.dir / "report"

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")


class Jobs:
    """The jobs of one server: created, looked up by id, run in the background one at a time."""

    def __init__(self, base: str | Path | None = None, max_jobs: int = MAX_JOBS):
        self._tmp = tempfile.TemporaryDirectory(prefix="crackscope-serve-") if base is None else None
        self.base = Path(self._tmp.name if self._tmp else base)
        self.max_jobs = max_jobs
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.inference = threading.Lock()  # one inspection at a time, background or not
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crackscope-job")

    def new(self, kind: str) -> Job:
        job = Job(id=secrets.token_urlsafe(16), dir=self.base / secrets.token_hex(8), kind=kind)
        job.photos.mkdir(parents=True)
        with self._lock:
            self._jobs[job.id] = job
            finished = [j for j in self._jobs.values() if j.finished]
            for old in finished[: max(len(finished) - self.max_jobs, 0)]:
                self._drop(old)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _drop(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        shutil.rmtree(job.dir, ignore_errors=True)

    def discard(self, job: Job) -> None:
        """Forget a job and remove its folder (a refused request keeps nothing)."""
        with self._lock:
            self._drop(job)

    def fail(self, job: Job, message: str) -> None:
        """Mark a job failed with one line, its files removed."""
        shutil.rmtree(job.dir, ignore_errors=True)
        job.error, job.status = message, "failed"

    def submit(self, job: Job, work: Callable[[Job], dict]) -> None:
        """Run ``work(job)`` in the background; its return is the job's result, an :class:`InputError`
        its error line."""
        self._pool.submit(self._run, job, work)

    def _run(self, job: Job, work: Callable[[Job], dict]) -> None:
        job.status = "running"
        try:
            with self.inference:
                job.result = work(job)
            job.status = "done"
        except InputError as err:
            self.fail(job, str(err))
        except Exception as err:  # noqa: BLE001 (reported to the page as one line, never a traceback)
            self.fail(job, f"internal error: {type(err).__name__}: {err}")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._tmp is not None:
            self._tmp.cleanup()
