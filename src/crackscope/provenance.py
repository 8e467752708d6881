"""Where a result was made: the machine (CPU, cores, GPU), the software, the source commit, the load
other processes put on the cores; and writing a result's JSON / Markdown / CSV record atomically.

One reader for each, shared by training (metrics.json's ``hardware``) and by the studies in
``benchmarks/``, so every record names the machine the same way.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "CpuLoad",
    "available_cpus",
    "cpu_name",
    "git_commit",
    "gpu_name",
    "hardware",
    "measured_on",
    "write_results",
]


def cpu_name() -> str:
    """The CPU's model name, e.g. ``Intel(R) Xeon(R) Processor`` (Linux: the first ``model name`` of
    /proc/cpuinfo); elsewhere, or where the kernel names none, :func:`platform.processor`, then the
    machine type (``x86_64``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                if name:
                    return name
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask on Linux, else all of the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def gpu_name() -> str | None:
    """The name of CUDA device 0, or None without one."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def hardware() -> dict:
    """The machine and software a measurement ran on: ``cpu`` (:func:`cpu_name`), ``cpus``
    (:func:`available_cpus`), ``logical_cpus``, ``machine``, ``gpu`` (:func:`gpu_name`), ``torch``
    and ``torch_threads``, ``python``, and ``allocator_env``: the environment variables that change
    the C allocator under PyTorch (glibc's ``MALLOC_*``, ``LD_PRELOAD`` of another malloc), which
    move timings by a third on large images (docs/survey.md), and ``allocator``: whether crackscope's
    own settings (:func:`crackscope.allocator.keep_large_blocks`) were applied in this process."""
    import torch

    from crackscope.allocator import allocator_state, user_allocator_env

    return {
        "cpu": cpu_name(),
        "cpus": available_cpus(),
        "logical_cpus": os.cpu_count(),
        "machine": platform.machine(),
        "gpu": gpu_name(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "allocator_env": user_allocator_env(),
        "allocator": allocator_state(),
    }


def git_commit(where: str | Path | None = None) -> str | None:
    """The commit checked out in the git work tree holding ``where`` (default: crackscope's own
    source), with ``+dirty-src`` appended when the tree's ``src/`` has uncommitted changes; None
    outside a git work tree or without git."""
    where = Path(where) if where is not None else Path(__file__).resolve().parent
    if where.is_file():
        where = where.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(where), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--", ":/src")  # ':/': from the top of the work tree
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty-src" if dirty else "")


def measured_on() -> dict:
    """``date`` (UTC, ISO 8601), ``commit`` (:func:`git_commit`), ``hardware`` ('CPU name, N
    threads', torch's thread count) and ``python`` of a measurement."""
    import torch

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "hardware": f"{cpu_name()}, {torch.get_num_threads()} threads",
        "python": platform.python_version(),
    }


class CpuLoad:
    """CPU time other processes used while the blocks run under it ran (Linux /proc/stat), summed
    over every ``with`` block; timings are unreliable when it is high."""

    def __init__(self):
        self.foreign_cpu_s = 0.0
        self.wall_s = 0.0
        self.known = True

    @staticmethod
    def _busy_s() -> float | None:
        try:
            vals = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, IndexError, ValueError):
            return None
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
        guest = sum(vals[8:10]) if len(vals) > 9 else 0  # already counted in user/nice
        return (sum(vals) - idle - guest) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _self_s() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def __enter__(self):
        self._b0, self._s0, self._t0 = self._busy_s(), self._self_s(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall_s += time.perf_counter() - self._t0
        b1 = self._busy_s()
        if b1 is None or self._b0 is None:
            self.known = False
        else:
            self.foreign_cpu_s += max(0.0, (b1 - self._b0) - (self._self_s() - self._s0))
        return False

    def fraction(self) -> float | None:
        """Other processes' CPU time over (wall time x available CPUs)."""
        if not self.known or self.wall_s <= 0:
            return None
        return round(self.foreign_cpu_s / (self.wall_s * available_cpus()), 3)

    def record(self) -> dict:
        if self.fraction() is None:
            return {}
        return {"other_processes_cpu_s": round(self.foreign_cpu_s, 3), "other_processes_cpu_fraction": self.fraction()}


def shown_path(path: str | Path, root: str | Path) -> str:
    """``path`` as a result file records it: relative to ``root`` (a project's folder) when inside
    it, else resolved."""
    path, root = Path(path).resolve(), Path(root).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def write_results(
    stem: str | Path,
    record: dict | list | None = None,
    markdown: str | None = None,
    rows: list[dict] | None = None,
    *,
    indent: int = 2,
    default=None,
) -> list[Path]:
    """A result's files, each written atomically (a reader never sees half of one): ``stem.json``
    (``record``, indented by ``indent``, ``default`` for values JSON lacks), ``stem.md``
    (``markdown`` as given) and ``stem.csv`` (``rows``, the first row's keys as the header); only
    those given. The folder is made. Returns the paths written."""
    from crackscope.io import atomic_write_csv, atomic_write_text

    stem = Path(stem)
    written = []
    if record is not None:
        text = json.dumps(record, indent=indent, default=default) + "\n"
        written.append(atomic_write_text(stem.with_name(stem.name + ".json"), text))
    if markdown is not None:
        written.append(atomic_write_text(stem.with_name(stem.name + ".md"), markdown))
    if rows:
        written.append(atomic_write_csv(stem.with_name(stem.name + ".csv"), rows))
    return written
